"""Giving a written temporary file its object's name, whatever is found there.

The last step of every add: the bytes are complete (and durable, where the
store is) in a temporary file under ``tmp/``; :meth:`Placer.place` makes them
object *fp*. It never replaces a sound object, repairs a damaged one, and
publishes again when a gc removed the object meanwhile.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from scalems_store.core.errors import InvalidPath
from scalems_store.core.fingerprint import hash_file
from scalems_store.core.fsutil import Temp, fsync_dir, make_dirs

try:
    import scalems_store._speedups as _speedups
except ImportError:  # pragma: no cover - the C extension is optional
    _speedups = None  # type: ignore[assignment]


class Placer:
    """Places temporary files as objects of one store (*durable*: flush the names)."""

    def __init__(self, durable: bool) -> None:
        self.durable = durable
        self.renames = True
        """Whether rename_noreplace works here (until it says it does not)."""

    def place(
        self,
        fp: str,
        final: str,
        temp: Temp | None,
        write: Callable[[], Temp] | None,
        *,
        sync_dir: bool = True,
        move: bool = False,
    ) -> Temp | None:
        """Link *temp* to *final*. If an object is there already, touch it, so that gc's
        grace counts from now; if it no longer matches its name, replace it atomically
        (re-adding the right bytes repairs it); if gc removed it meanwhile, link again.
        Without *temp*, it is written by *write* only when needed. Returns the temporary
        file (to discard), if any. *move*: rename it instead of linking it, where the
        filesystem can, for a caller that will not need it again (a group commit)."""
        while True:
            if temp is not None:
                if self.durable and not temp.synced:
                    temp.sync()  # written in a batch, published on its own
                try:
                    if move:
                        self._move_in(temp, final)
                    else:
                        os.link(temp.path, final)
                except FileExistsError:
                    pass
                except FileNotFoundError:
                    # a new fan-out directory (which another writer may be making too);
                    # the temporary file itself gone means there is nothing to publish
                    if not os.path.lexists(temp.path):
                        raise
                    make_dirs(os.path.dirname(final))
                    continue
                except OSError:
                    os.rename(temp.path, final)  # a filesystem without hardlinks
                    return temp
                else:
                    if sync_dir:
                        self._synced(final)
                    return temp
            state = existing(fp, final)
            if state == "ok":
                return temp
            if temp is None:
                if write is None:
                    raise InvalidPath(f"object {fp} vanished while being added; try again")
                temp, write = write(), None
            elif state == "corrupt":
                os.rename(temp.path, final)  # the right bytes replace the damaged ones at once
                self._synced(final)
                return temp

    def _move_in(self, temp: Temp, final: str) -> None:
        """Give *temp*'s file the name *final* unless that is taken (FileExistsError):
        one rename that refuses to replace, where the filesystem has it, else a hard
        link (the temporary name then goes at discard)."""
        if self.renames and _speedups is not None:
            try:
                _speedups.rename_noreplace(temp.path, final)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                self.renames = False  # not on this filesystem (NFS...)
            else:
                temp.moved = True
                return
        os.link(temp.path, final)

    def _synced(self, final: str) -> None:
        if self.durable:
            fsync_dir(os.path.dirname(final))


def touch(path: str) -> bool:
    """Touch the stored object at *path* so that gc's grace counts from now (a gc running
    now spares it); False if it is gone."""
    try:
        os.utime(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    except PermissionError:
        pass  # another user's object in a shared store may refuse: it exists
    return True


def existing(fp: str, path: str) -> str:
    """Touch the stored object at *path* so that gc's grace counts from its latest add,
    and check it: ``ok``, ``gone`` (gc removed it) or ``corrupt``."""
    if not touch(path):
        return "gone"
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return "corrupt"  # a FIFO, a symlink...: not read (a FIFO would never end)
        return "ok" if hash_file(path) == fp or _thin_sound(fp, path) else "corrupt"
    except FileNotFoundError:
        return "gone"


def _thin_sound(fp: str, path: str) -> bool:
    """Whether the object at *path* is tree *fp* stored thin, and rebuilds to it."""
    from scalems_store.core.errors import StoreError
    from scalems_store.objects import thin
    from scalems_store.objects.files import ObjectDir

    root = os.path.dirname(os.path.dirname(os.path.dirname(path)))  # <root>/objects/ab/cd…
    try:
        return thin.expanded_hash(ObjectDir(root), fp) == fp
    except StoreError:
        return False
