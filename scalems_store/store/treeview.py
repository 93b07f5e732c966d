"""A tree object read in place: its paths looked up, read, listed and extracted one at a time.

:class:`TreeView` maps a tree object once, checks it against its fingerprint
before anything is read from it, and parses it with the same checks as
extraction (:mod:`scalems_store.tar.treeread`). A path is looked up through the
tree's own symlinks (which stay inside the tree), never through the
filesystem. ``scalems-store get TREE:path``, ``ls-tree`` and ``diff`` use it,
and so can a call that needs one file of another call's output directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from scalems_store.core.errors import InvalidPath
from scalems_store.core.fingerprint import new_hasher
from scalems_store.tar.tarformat import DIR, FILE, SYMLINK
from scalems_store.tar.treeread import Entry, iter_entries, mapped

if TYPE_CHECKING:
    import mmap

    from scalems_store.store.filestore import FileStore

MAX_LINKS = 40
"""Symlinks followed in one lookup before it is refused as a loop (as Linux's ELOOP)."""


class TreeView:
    """A tree object, mapped and checked against its fingerprint, whose paths can be
    looked up, read, listed and extracted one at a time.

    Use it as a context manager (the mapping is released at the end); see :func:`open_tree`.

    Raises:
        InvalidPath: the object is not a tree.
        CorruptObject: the tree does not match its fingerprint.
        ArchiveError, UnsafeArchive: it cannot be parsed safely.
    """

    def __init__(self, store: FileStore, name: str) -> None:
        from scalems_store.objects.reading import matches

        self.fingerprint = store.resolve(name)
        kind = store.kind(self.fingerprint)
        if kind != "tree":
            raise InvalidPath(f"{name!r} is a {kind}, not a tree: it has no paths")
        self._file = store.object_path(self.fingerprint)
        self._mapped = mapped(self._file)
        self.data: bytes | mmap.mmap = self._mapped.__enter__()
        try:
            matches(self.fingerprint, new_hasher(len(self.data)).update(self.data).hexdigest())
            self.entries = list(iter_entries(self.data, checked=True))
        except BaseException:
            self.close()
            raise
        self._by_path = {entry.path: entry for entry in self.entries}
        self._dirs = {""} | {e.path for e in self.entries if e.type == DIR}
        for entry in self.entries:  # a directory may be implied by its members only
            self._dirs.update(_parents(entry.path))

    def __enter__(self) -> TreeView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the mapping of the tree."""
        self._mapped.__exit__()

    def resolve(self, path: str) -> str:
        """Return *path* with the tree's symlinks followed: the path of a file or
        directory of the tree (``""`` for its top).

        Raises:
            InvalidPath: nothing is at *path*, it climbs out with ``..``, or its links loop.
        """
        pending = _parts(path)
        done: list[str] = []
        hops = 0
        while pending:
            done.append(pending.pop(0))
            here = "/".join(done)
            entry = self._by_path.get(here)
            if entry is None and here not in self._dirs:
                raise InvalidPath(f"no {path!r} in tree {self.fingerprint}")
            if entry is not None and entry.type == SYMLINK:
                hops += 1
                if hops > MAX_LINKS:
                    raise InvalidPath(f"too many symlinks in {path!r} in tree {self.fingerprint}")
                pending = _follow(done[:-1], entry.linkname) + pending
                done = []
            elif entry is not None and entry.type == FILE and pending:
                raise InvalidPath(f"no {path!r} in tree {self.fingerprint}: {here!r} is a file")
        return "/".join(done)

    def is_dir(self, path: str) -> bool:
        """Whether *path* (symlinks followed) is a directory of the tree."""
        return self.resolve(path) in self._dirs

    def entry(self, path: str) -> Entry:
        """The member at *path* (symlinks followed); the top of the tree is a directory."""
        found = self.resolve(path)
        return self._by_path.get(found) or Entry(found, DIR, 0o755, 0, 0)

    def members(self, path: str = "") -> list[Entry]:
        """Every member under directory *path*, with paths relative to it, sorted.

        Raises:
            InvalidPath: *path* is not a directory of the tree.
        """
        top = self.resolve(path)
        if top not in self._dirs:
            raise InvalidPath(f"{path!r} in tree {self.fingerprint} is a file, not a directory")
        if not top:
            return list(self.entries)
        prefix = top + "/"
        cut = len(prefix)
        return [e._replace(path=e.path[cut:]) for e in self.entries if e.path.startswith(prefix)]

    def chunks(self, path: str, size: int = 8 << 20) -> Iterator[memoryview]:
        """The bytes of the file at *path*, as views of the tree valid until the next one.

        Raises:
            InvalidPath: there is no such file (or it is a directory).
        """
        entry = self.entry(path)
        if entry.type != FILE:
            raise InvalidPath(f"{path!r} in tree {self.fingerprint} is a directory, not a file")
        with memoryview(self.data) as whole:
            for start in range(entry.offset, entry.offset + entry.size, size):
                with whole[start : min(start + size, entry.offset + entry.size)] as part:
                    yield part

    def read(self, path: str) -> bytes:
        """The bytes of the file at *path* (see :meth:`chunks`)."""
        return b"".join(bytes(part) for part in self.chunks(path))

    def write_to(self, path: str, out: IO[bytes]) -> int:
        """Write the file at *path* to a binary stream; return its size."""
        written = 0
        for part in self.chunks(path):
            out.write(part)
            written += len(part)
        return written

    def extract(self, path: str, dest: str | os.PathLike[str]) -> int:
        """Write the file at *path* to the new file *dest* (keeping its executable bit), or
        extract the directory at *path* into the new or empty directory *dest*; return
        the number of members written. Nothing is left at *dest* if it fails.

        The writing is :func:`scalems_store.tar.archive.extract`'s (its *member*), given the
        path with the tree's symlinks followed; the tree was checked when it was opened.

        Raises:
            InvalidPath: nothing at *path*, or *dest* is in the way.
            UnsafeArchive: a symlink in the directory points out of it.
        """
        from scalems_store.tar.archive import extract

        member = self.resolve(path)
        return extract(self._file, dest, checked=True, member=member or None)


def open_tree(store: FileStore, name: str) -> TreeView:
    """Open the tree *name* names (a fingerprint, prefix or label), checked: see
    :class:`TreeView`."""
    return TreeView(store, name)


def _parts(path: str) -> list[str]:
    """The names of a path typed by a user: ``./a//b/`` is ``a/b``; ``..`` is refused."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidPath(f"path {path!r} in a tree must not contain '..'")
    return parts


def _follow(parent: list[str], target: str) -> list[str]:
    """The names a symlink in directory *parent* leads to (its target is checked to stay
    inside the tree when the tree is parsed)."""
    names = list(parent)
    for part in target.split("/"):
        if part == "..":
            if not names:
                raise InvalidPath(f"symlink target {target!r} leaves the tree")
            names.pop()
        elif part not in ("", "."):
            names.append(part)
    return names


def _parents(path: str) -> Iterator[str]:
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path
