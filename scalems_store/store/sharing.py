"""A store a Unix group shares (``scalems-store init --shared [GROUP]``).

The boundaries between members are the kernel's, set once on the store's
directories:

- every directory is the group's, with the setgid bit (what is made in it is the
  group's too) and group write, and the **sticky bit**: in a sticky directory only
  a file's owner (or the directory's, or root) may remove or rename it, or
  rename another file over it. So no member can delete, rename or replace another
  member's objects, meta files, labels or refs;
- the store's owner (who ran ``init --shared``) owns every directory, the 256
  fan-out directories of ``objects/``, ``meta/`` and ``refs/calls/`` included, so
  the owner's gc may remove any unreferenced file; a member's gc removes only that
  member's own;
- objects are mode 0444 (no one writes them, their owner included); refs, labels
  and meta files 0644: the group reads everything, writes only its own;
- a member never replaces another's ref file: each member records the results of
  a call in a file of its own, ``refs/<namespace>/ab/<key>~<uid>`` (see
  :class:`scalems_store.store.refs.RefDir`), and readers take a file as the
  member's who owns it, whatever its name says;
- ``tmp/leases`` is group-writable without the sticky bit: a member may take over
  the lease of another's runner that died (a lease decides only who runs a call
  now, never what is served);
- each run directory is its runner's alone (mode 0700);
- the settings file ``config`` (trusted keys, remotes) is the owner's, made by
  ``init --shared`` (mode 0644) so that no member can make it first, write it or
  rename another over it: a member cannot add a key of his own to the keys the
  store trusts. ``sigs/`` fans out as ``refs/calls/`` does: each member writes the
  signatures of the results he records, and removes none of another's.

A store is shared when its root directory has the sticky bit.
"""

from __future__ import annotations

import grp
import os
import stat

from scalems_store.core import layout
from scalems_store.core.errors import StoreError

SHARED_DIR = 0o3775
"""setgid, sticky, rwx for the owner and the group, r-x for others."""
LEASES_DIR = 0o2775
"""``tmp/leases``: setgid and group-writable, not sticky."""
_FANOUT = [f"{n:02x}" for n in range(256)]
_FANNED = (layout.OBJECTS, layout.META, os.path.join(layout.REFS, "calls"), layout.SIGS)


def is_shared(root: str) -> bool:
    """Whether the store at *root* is shared by a group (its root directory is sticky)."""
    try:
        return bool(os.stat(root).st_mode & stat.S_ISVTX)
    except OSError:
        return False


def group_id(group: str | None) -> int:
    """The id of *group* (a name or a number); the caller's own group when None.

    Raises:
        StoreError: there is no such group.
    """
    if group is None:
        return os.getegid()
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise StoreError(f"no group {group!r} (see 'getent group')") from None


def share(root: str, gid: int) -> int:
    """Give the store at *root* to group *gid* with the modes above; return the number of
    directories set. Existing files of the caller become the group's and readable by it
    (another member's files are left as they are: only their owner may change them).

    Raises:
        StoreError: a directory cannot be made or changed (not the caller's).
    """
    wanted = [""] + [os.path.join(top, name) for top in _FANNED for name in ["", *_FANOUT]]
    wanted += [layout.REFS, layout.LABELS, layout.TMP, os.path.join(layout.TMP, "locks")]
    try:
        for rel in wanted:
            _set(os.path.join(root, rel), gid, SHARED_DIR, directory=True)
        _set(os.path.join(root, layout.TMP, "leases"), gid, LEASES_DIR, directory=True)
        settings = os.path.join(root, layout.CONFIG)
        if not os.path.lexists(settings):
            os.close(os.open(settings, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        for top, _, files in os.walk(root):
            for name in files:
                _readable(os.path.join(top, name), gid)
    except OSError as exc:
        raise StoreError(
            f"cannot share the store at {root!r}: {exc.strerror}: {exc.filename}"
        ) from None
    return len(wanted) + 1


def _set(path: str, gid: int, mode: int, *, directory: bool) -> None:
    if directory:
        os.makedirs(path, exist_ok=True)
    os.chown(path, -1, gid, follow_symlinks=False)
    os.chmod(path, mode, follow_symlinks=False)


def _readable(path: str, gid: int) -> None:
    """Give the caller's own file at *path* to the group, readable by it."""
    info = os.lstat(path)
    if info.st_uid != os.geteuid() or not stat.S_ISREG(info.st_mode):
        return
    os.chown(path, -1, gid, follow_symlinks=False)
    os.chmod(path, stat.S_IMODE(info.st_mode) | 0o044, follow_symlinks=False)
