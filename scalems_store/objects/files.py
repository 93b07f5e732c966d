"""The ``objects/`` and ``meta/`` directories: where each object lives, listed and removed
without ever following a symlink.

``objects/ab/cdef...`` holds the bytes of object ``abcdef...``. ``meta/ab/cdef...``
caches the kind and references of an object that is not a plain blob, as
:mod:`scalems_store.objects.content` reads them from the object's bytes; it is checked
against them by verify and never decides on its own what gc deletes.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, NamedTuple

from scalems_store.core import layout
from scalems_store.core.errors import (
    AmbiguousPrefix,
    CorruptObject,
    ObjectNotFound,
    StoreError,
    StoreNotWritable,
)
from scalems_store.core.fsutil import read_regular, replace_atomic
from scalems_store.objects.content import KINDS

try:
    import scalems_store._speedups as _speedups
except ImportError:  # built without a C compiler: the Python loop does the same, slower
    _speedups = None  # type: ignore[assignment]

Anomaly = Callable[[str, str], None]
"""Called as ``anomaly(path, what is wrong)`` for something that does not belong."""

ASIDE = "gc-"
"""Prefix of an object gc moved into ``tmp/`` before judging it (see :meth:`ObjectDir.evict`)."""
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Meta(NamedTuple):
    """What a ``meta/`` file says of an object."""

    kind: str
    refs: tuple[str, ...]


DAMAGED = Meta("damaged", ())
"""What :meth:`ObjectDir.meta_state` returns for a meta file that cannot be read."""


class ObjectInfo(NamedTuple):
    """What the store knows of one object."""

    fingerprint: str
    kind: str
    size: int
    created: float
    labels: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {**self._asdict(), "labels": list(self.labels), "refs": list(self.refs)}


class ObjectDir:
    """The fan-out directory of objects under a store root."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.top = os.path.join(root, layout.OBJECTS)
        self.meta_top = os.path.join(root, layout.META)

    def path(self, fingerprint: str) -> str:
        """Where object *fingerprint* (full hex) lives, present or not."""
        # as os.path.join(top, oid_to_path(fp)), without its cost on the path of every add
        return f"{self.top}/{fingerprint[:2]}/{fingerprint[2:]}"

    def meta_path(self, fingerprint: str) -> str:
        """Where the ``meta/`` file of *fingerprint* lives, present or not."""
        return os.path.join(self.meta_top, layout.oid_to_path(fingerprint))

    def lstat(self, fingerprint: str) -> os.stat_result | None:
        """The object file's own status (a symlink is not followed), or None if absent."""
        try:
            return os.lstat(self.path(fingerprint))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def present(self, fingerprint: str) -> bool:
        """True when the object is a regular file in the store."""
        st = self.lstat(fingerprint)
        return st is not None and stat.S_ISREG(st.st_mode)

    def fanouts(self, anomaly: Anomaly | None = None) -> list[str]:
        """The two-hex fan-out directories, sorted; anything else is reported to *anomaly*."""
        if _symlinked(self.top, anomaly):
            return []
        try:
            entries = list(os.scandir(self.top))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for entry in entries:
            hexname = len(entry.name) == 2 and layout.HEX_DIGITS.issuperset(entry.name)
            if hexname and entry.is_dir(follow_symlinks=False):
                found.append(entry.name)
                continue
            if anomaly is not None:
                anomaly(entry.path, _what(entry))
        return sorted(found)

    def scan(self, fanout: str, anomaly: Anomaly | None = None) -> Iterator[os.DirEntry[str]]:
        """The object files of one fan-out directory (regular files named by a
        fingerprint), unsorted; symlinks and strays go to *anomaly*."""
        try:
            entries = os.scandir(os.path.join(self.top, fanout))
        except (FileNotFoundError, NotADirectoryError):
            return
        with entries:
            for entry in entries:
                if layout.is_fingerprint(fanout + entry.name) and entry.is_file(
                    follow_symlinks=False
                ):
                    yield entry
                elif anomaly is not None:
                    anomaly(entry.path, _what(entry))

    def resolve(self, text: str) -> str:
        """Return the full fingerprint named by a fingerprint, ``blake3:`` URI or prefix.

        Raises:
            InvalidFingerprint: *text* is not a fingerprint or a prefix of 4+ hex digits.
            ObjectNotFound: no object matches.
            AmbiguousPrefix: several objects match; the error lists them.
        """
        hexpart = layout.normalize(text)
        where = os.path.dirname(self.top)
        if len(hexpart) == layout.FINGERPRINT_LENGTH:
            if not self.present(hexpart):
                raise ObjectNotFound(f"no object {hexpart} in store {where!r}")
            return hexpart
        rest = hexpart[2:]
        found = sorted(
            hexpart[:2] + entry.name
            for entry in self.scan(hexpart[:2])
            if entry.name.startswith(rest)
        )
        if not found:
            raise ObjectNotFound(f"no object matches prefix {hexpart!r} in store {where!r}")
        if len(found) > 1:
            raise AmbiguousPrefix(hexpart, found)
        return found[0]

    def listing(
        self, anomaly: Anomaly | None = None, *, sizes: bool = True
    ) -> list[tuple[str, int, float]]:
        """``(fingerprint, size, mtime)`` of every object, unsorted, following no symlink;
        what does not belong goes to *anomaly* (in C, without the GIL, where built).
        Without *sizes*, size and mtime may be -1 and 0 (no object is stat'ed where the
        directory tells its type)."""
        if _speedups is None:
            return [
                (fanout + entry.name, st.st_size, st.st_mtime)
                for fanout in self.fanouts(anomaly)
                for entry in self.scan(fanout, anomaly)
                for st in _lstat(entry)
            ]
        found, odd = _speedups.scan_objects(self.top, sizes)
        if anomaly is not None:
            for path, what in odd:
                anomaly(path, _ODD[what])
        return found

    def with_meta(self) -> set[str]:
        """Every object that has a file under ``meta/`` (whatever it holds)."""
        found: set[str] = set()
        if _symlinked(self.meta_top, None):
            return found
        try:
            fanouts = [e.name for e in os.scandir(self.meta_top) if e.is_dir(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return found
        for fanout in fanouts:
            with (
                contextlib.suppress(OSError),
                os.scandir(os.path.join(self.meta_top, fanout)) as entries,
            ):
                found.update(fanout + entry.name for entry in entries)
        return found

    def __iter__(self) -> Iterator[str]:
        """Every object's fingerprint, sorted."""
        for fanout in self.fanouts():
            yield from sorted(fanout + entry.name for entry in self.scan(fanout))

    def evict(
        self, fingerprint: str, tmp: str, keep: Callable[[os.stat_result], bool]
    ) -> os.stat_result | None:
        """Remove an object unless *keep* says otherwise of the file once it is out of sight;
        return its status if it was removed.

        The object is first renamed into *tmp*, without following any symlink, then
        judged: a writer that touched it (to add the same content again) before the
        rename is seen by *keep* and the object is put back; one that comes after
        finds it gone and publishes it again. Either way no add is lost.
        """
        aside = f"{ASIDE}{fingerprint}-{os.urandom(6).hex()}"
        with (
            _opened(self.top) as top_fd,
            _opened(tmp) as tmp_fd,
            _opened(fingerprint[:2], top_fd) as dir_fd,
        ):
            if top_fd is None or tmp_fd is None or dir_fd is None:
                return None
            name = fingerprint[2:]
            try:
                if not stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    return None
                os.rename(name, aside, src_dir_fd=dir_fd, dst_dir_fd=tmp_fd)
            except FileNotFoundError:
                return None
            seen = os.stat(aside, dir_fd=tmp_fd, follow_symlinks=False)
            if keep(seen):
                with contextlib.suppress(FileExistsError):  # published again meanwhile
                    os.link(aside, name, src_dir_fd=tmp_fd, dst_dir_fd=dir_fd)
                os.unlink(aside, dir_fd=tmp_fd)
                return None
            os.unlink(aside, dir_fd=tmp_fd)
        self.remove_meta(fingerprint)
        return seen

    def remove_meta(self, fingerprint: str) -> None:
        """Remove the meta file of *fingerprint*, if any (never following a symlink)."""
        with _opened(self.meta_top) as top_fd, _opened(fingerprint[:2], top_fd) as dir_fd:
            if dir_fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(fingerprint[2:], dir_fd=dir_fd)

    def read_meta(self, fingerprint: str) -> Meta | None:
        """The meta file of *fingerprint* if it exists and is well formed, else None."""
        try:
            meta = json.loads(read_regular(self.meta_path(fingerprint), 1 << 20))
        except (OSError, ValueError, RecursionError):
            return None
        return _valid_meta(meta)

    def meta_state(self, fingerprint: str) -> Meta | None:
        """The meta file: a :class:`Meta`, None when there is none, :data:`DAMAGED`."""
        found = self.read_meta(fingerprint)
        if found is None and os.path.lexists(self.meta_path(fingerprint)):
            return DAMAGED
        return found

    def write_meta(self, fingerprint: str, meta: Meta, tmp: str, *, durable: bool) -> None:
        """Record an object's kind and references (what its content says) in ``meta/``."""
        data = layout.canonical({"kind": meta.kind, "refs": list(meta.refs)})
        path = self.meta_path(fingerprint)
        try:
            replace_atomic(path, data, tmp, durable=durable)
        except StoreNotWritable:
            with contextlib.suppress(OSError):
                if os.lstat(path).st_uid != os.geteuid():
                    return  # another member's, in a shared store: a cache its owner mends
            raise


def _valid_meta(meta: object) -> Meta | None:
    if not isinstance(meta, dict) or meta.get("kind") not in KINDS:
        return None
    refs = meta.get("refs", [])
    if not isinstance(refs, list) or not all(
        isinstance(ref, str) and layout.is_fingerprint(ref) for ref in refs
    ):
        return None
    return Meta(meta["kind"], tuple(sorted(set(refs))))


def _symlinked(path: str, anomaly: Anomaly | None) -> bool:
    if os.path.islink(path):
        if anomaly is not None:
            anomaly(path, "a symlink where a directory of the store should be")
        return True
    return False


_ODD = {
    "stray": "not an object (stray entry inside objects/)",
    "symlink": "a symlink inside objects/ (not followed)",
    "symlinked": "a symlink where a directory of the store should be",
}


def _lstat(entry: os.DirEntry[str]) -> list[os.stat_result]:
    """The entry's own status, or none if it went meanwhile."""
    try:
        return [entry.stat(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _what(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return "a symlink inside objects/ (not followed)"
    return "not an object (stray entry inside objects/)"


@contextlib.contextmanager
def _opened(path: str, dir_fd: int | None = None) -> Iterator[int | None]:
    """A directory descriptor opened without following a symlink; None if it is not there
    or is a symlink. A relative *path* is opened in *dir_fd*, and not at all without one."""
    if dir_fd is None and not os.path.isabs(path):
        yield None
        return
    try:
        fd = os.open(path, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError:  # missing, not a directory, or a symlink (ELOOP)
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def open_stored(objects: ObjectDir, fp: str) -> BinaryIO:
    """Open the file of object *fp* (full fingerprint) as stored, never through a symlink.

    Raises:
        ObjectNotFound: it is not there.
    """
    try:
        # O_NONBLOCK: a FIFO where the object should be must not wait for a writer
        fd = os.open(objects.path(fp), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise ObjectNotFound(f"no object {fp} in store {os.path.dirname(objects.top)!r}") from None
    except OSError as exc:
        raise StoreError(f"cannot read object {fp}: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CorruptObject(
            f"object {fp} is corrupt: not a regular file (see 'scalems-store verify')"
        )
    return os.fdopen(fd, "rb")


def matches(fp: str, got: str) -> None:
    """Raise :class:`CorruptObject` unless the bytes read of object *fp* hashed to *got*."""
    if got != fp:
        raise CorruptObject(f"object {fp} is corrupt: its content no longer matches its name")
