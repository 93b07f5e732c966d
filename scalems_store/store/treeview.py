"""A tree object read in place: its paths looked up, read, listed and extracted one at a time.

:class:`TreeView` maps a tree object once, checks it against its fingerprint
before anything is read from it, and parses it with the same checks as
extraction (:mod:`scalems_store.tar.treeread`). A path is looked up through the
tree's own symlinks (which stay inside the tree), never through the
filesystem. ``scalems-store get TREE:path``, ``ls-tree`` and ``diff`` use it,
and so can a call that needs one file of another call's output directory.

``FP:path`` is one path of a tree as typed on a command line (like git's
``T:path``). ``FP`` names a tree, a result (its output directory) or a call (the output
directory of its newest recorded result): ``scalems-store get CALL:traj.csv``
writes that file's bytes without extracting anything; ``get TREE:traj -o DIR``
extracts that directory alone. :func:`locate` is the one resolver of these names;
``get``, ``ls-tree``, ``diff``, ``why``, ``scalems-call result CALL PATH`` and
:meth:`FileStore.open` / :meth:`FileStore.read_bytes` all go through it. A plain
``FP`` goes straight to the store; only a path loads this module.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NamedTuple, Protocol

from scalems_store.core import layout
from scalems_store.core.errors import InvalidContent, InvalidPath, ObjectNotFound, StoreError
from scalems_store.core.fingerprint import new_hasher
from scalems_store.objects import content
from scalems_store.tar.tarformat import DIR, FILE, SYMLINK
from scalems_store.tar.treeread import Entry, iter_entries, mapped

if TYPE_CHECKING:
    import mmap

    from scalems_store.objects.files import ObjectDir


class TreeStore(Protocol):
    """What this module needs of a store: :class:`~scalems_store.store.filestore.FileStore`
    has it, and this module does not import it (FileStore's ``open`` and ``read_bytes``
    of ``FP:path`` come here: the arrow points one way)."""

    root: str
    objects: ObjectDir

    def __contains__(self, fingerprint: object) -> bool: ...
    def resolve(self, text: str) -> str: ...
    def kind(self, fingerprint: str) -> str: ...
    def object_path(self, fingerprint: str) -> str: ...
    def get_ref(self, namespace: str, key: str) -> list[str]: ...
    def read_bytes(self, fingerprint: str, *, verify: bool = True) -> bytes: ...
    def write_to(self, fingerprint: str, out: IO[bytes]) -> int: ...
    def materialize(self, fingerprint: str, dest: str | os.PathLike[str]) -> str: ...


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

    def __init__(self, store: TreeStore, name: str) -> None:
        from scalems_store.objects.reading import matches

        self.fingerprint = store.resolve(name)
        kind = store.kind(self.fingerprint)
        if kind != "tree":
            raise InvalidPath(f"{name!r} is a {kind}, not a tree: it has no paths")
        from scalems_store.objects import thin

        # the archive's file: the object's own or, for a tree stored thin, a sparse copy
        # of its headers and small files (held until close), each large file read from
        # its piece; a thin tree is rebuilt and hashed (in chunks) to check it
        self._held = thin.headers_file(
            store.objects, self.fingerprint, os.path.join(store.root, layout.TMP)
        )
        self._file, pieces = self._held.__enter__()
        self._sources = {offset: store.objects.path(fp) for offset, fp in pieces.items()}
        self._mapped = mapped(self._file)
        try:
            self.data: bytes | mmap.mmap = self._mapped.__enter__()
            if self._sources:
                matches(self.fingerprint, str(thin.expanded_hash(store.objects, self.fingerprint)))
            else:
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
        """Release the mapping of the tree (and the sparse copy of a thin tree's headers)."""
        try:
            self._mapped.__exit__()
        finally:
            self._held.__exit__(None, None, None)

    def open_member(self, entry: Entry) -> tuple[BinaryIO, int]:
        """A file holding the bytes of file *entry*, open for reading (it stays readable
        after :meth:`close`), and where in it they start."""
        source = self._sources.get(entry.offset)
        if source is not None:
            return open(source, "rb"), 0
        return open(self._file, "rb"), entry.offset

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
        source = self._sources.get(entry.offset)
        if source is not None:  # a large file of a tree stored thin: its piece
            with mapped(source) as data, memoryview(data) as whole:
                for start in range(0, entry.size, size):
                    with whole[start : min(start + size, entry.size)] as part:
                        yield part
            return
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
        return extract(self._file, dest, checked=True, member=member or None, sources=self._sources)


def open_tree(store: TreeStore, name: str) -> TreeView:
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


# -- FP:path: a path of a tree, a result or a call ------------------------------


class Spot(NamedTuple):
    """What ``FP`` or ``FP:path`` names."""

    fingerprint: str
    """The object named before the colon (full fingerprint)."""
    tree: str | None
    """The tree the path is in: the object itself, a result's output directory, or that
    of a call's newest result; None when no path was given."""
    path: str | None
    """The path inside :attr:`tree` (``""``: its top); None when none was given."""


def split_spec(text: str) -> tuple[str, str | None]:
    """Split ``FP:path`` into the object's name and the path; ``(text, None)`` without one.

    The name is anything :meth:`FileStore.resolve` takes (a ``blake3:`` URI keeps its
    colon); the path is everything after the next colon, so it may hold colons itself.
    """
    scheme = layout.URI_SCHEME if text.startswith(layout.URI_SCHEME) else ""
    name, colon, path = text[len(scheme) :].partition(":")
    return (scheme + name, path) if colon else (text, None)


def has_path(text: str) -> bool:
    """Whether *text* is ``FP:path`` rather than a plain name (cheap: no lookup)."""
    return split_spec(text)[1] is not None


def locate(store: TreeStore, spec: str) -> Spot:
    """Resolve ``FP`` or ``FP:path``: the object, and the tree its path is in.

    Raises:
        InvalidPath: the object has no paths (a blob), or a result recorded no output
            directory in the store.
        ObjectNotFound: a call has no recorded result here.
    """
    name, path = split_spec(spec)
    fp = store.resolve(name)
    return Spot(fp, None if path is None else directory_of(store, fp, name), path)


def directory_of(store: TreeStore, fp: str, name: str | None = None) -> str:
    """The tree object *fp* (typed as *name*) stands for: a tree itself, a result's output
    directory, or the output directory of a call's newest recorded result.

    Raises:
        InvalidPath, ObjectNotFound: see :func:`locate`.
    """
    kind = store.kind(fp)
    if kind == content.TREE:
        return fp
    if kind == content.CALL:
        return directory_of(store, newest_result(store, fp))
    if kind == content.RESULT:
        directory = _record(store, fp, kind).get("directory")
        if isinstance(directory, str) and directory.startswith(layout.URI_SCHEME):
            return layout.normalize(directory)
        raise InvalidPath(f"result {fp} recorded no output directory in the store")
    shown = name or fp
    raise InvalidPath(f"{shown!r} is a {kind}, not a tree (nor a result or call): it has no paths")


def newest_result(store: TreeStore, call: str) -> str:
    """The newest result recorded for *call* that is present and really its result.

    Raises:
        ObjectNotFound: there is none.
    """
    for fp in store.get_ref(content.CALLS, call):
        try:
            if fp in store and _record(store, fp, content.RESULT).get("call") == call:
                return fp
        except StoreError:
            continue  # damaged or not a result: verify reports it
    raise ObjectNotFound(f"call {call} has no recorded result in {store.root!r}")


def _record(store: TreeStore, fp: str, kind: str) -> dict[str, object]:
    try:
        return content.decode(store.read_bytes(fp), kind)
    except InvalidContent as exc:
        raise InvalidContent(f"{fp}: {exc}") from None


def open_tree_at(store: TreeStore, spot: Spot) -> TreeView:
    """Open (checked) the tree *spot*'s path is in; a spot without a path must name a
    tree, a result or a call. Close the view when done."""
    return open_tree(store, spot.tree or directory_of(store, spot.fingerprint))


def file_bytes(store: TreeStore, spec: str) -> bytes:
    """The bytes of the file ``FP:path`` names, checked (the tree is, as it is opened).

    Raises:
        InvalidPath: nothing is there, or it is a directory.
    """
    spot = locate(store, spec)
    with open_tree_at(store, spot) as view:
        return view.read(spot.path or "")


def open_file(store: TreeStore, spec: str) -> BinaryIO:
    """A binary stream of the file ``FP:path`` names: its bytes in the tree object, read
    in place (the tree is checked against its fingerprint first).

    Raises:
        InvalidPath: nothing is there, or it is a directory.
    """
    spot = locate(store, spec)
    with open_tree_at(store, spot) as view:
        entry = view.entry(spot.path or "")
        if view.is_dir(spot.path or ""):
            raise InvalidPath(f"{spot.path!r} of tree {view.fingerprint} is a directory")
        stream, start = view.open_member(entry)
    return io.BufferedReader(_Window(stream, start, entry.size))


class _Window(io.RawIOBase):
    """The bytes ``[start, start + size)`` of a file, as a file of their own."""

    def __init__(self, stream: BinaryIO, start: int, size: int) -> None:
        self._stream, self._start, self._size, self._at = stream, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._at, os.SEEK_END: self._size}[whence]
        self._at = max(base + offset, 0)
        return self._at

    def tell(self) -> int:
        return self._at

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._size - self._at)
        if wanted <= 0:
            return 0
        at = self._start + self._at
        got = os.preadv(self._stream.fileno(), [memoryview(buffer)[:wanted]], at)
        self._at += got
        return got

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


def file_fingerprint(store: TreeStore, spec: str) -> tuple[str, str, str]:
    """What ``FP:path`` holds: ``(fingerprint, tree, path)``, the BLAKE3 of a file's
    bytes (the tree's own fingerprint for its top), the tree it is in and its path
    there with the tree's symlinks followed. Other directories are refused: they are
    no object.

    Raises:
        InvalidPath: nothing is there, or it is a directory below the top.
    """
    from scalems_store.core.fingerprint import new_hasher

    spot = locate(store, spec)
    with open_tree_at(store, spot) as view:
        path = view.resolve(spot.path or "")
        if path == "":
            return view.fingerprint, view.fingerprint, path
        if view.is_dir(path):
            raise InvalidPath(
                f"{spot.path!r} is a directory of tree {view.fingerprint}: name a file in it"
            )
        hasher = new_hasher(view.entry(path).size)
        for part in view.chunks(path):
            hasher.update(part)
        return hasher.hexdigest(), view.fingerprint, path


def write_spec(store: TreeStore, spec: str, out: IO[bytes]) -> int:
    """Write ``FP`` (a blob, or a tree's archive) or ``FP:path`` (one file of a tree) to
    a binary stream; return the number of bytes. ``FP:`` is the whole tree.

    Raises:
        InvalidPath: the path is missing or is a directory (it needs a destination).
        CorruptObject: the object does not match its fingerprint.
    """
    spot = locate(store, spec)
    if spot.tree is None or not spot.path:
        return store.write_to(spot.tree or spot.fingerprint, out)
    with open_tree_at(store, spot) as view:
        if view.is_dir(spot.path):
            raise InvalidPath(
                f"{spot.path!r} is a directory of tree {view.fingerprint}: "
                "give -o DIR to extract it"
            )
        return view.write_to(spot.path, out)


def materialize_spec(store: TreeStore, spec: str, dest: str | os.PathLike[str]) -> str:
    """Write ``FP`` or ``FP:path`` out to *dest*, checked first (see
    :meth:`FileStore.materialize` and :meth:`TreeView.extract`); return the fingerprint
    of the tree it came from (or of the object, without a path)."""
    spot = locate(store, spec)
    if spot.tree is None or not spot.path:
        return store.materialize(spot.tree or spot.fingerprint, dest)
    with open_tree_at(store, spot) as view:
        view.extract(spot.path, dest)
        return view.fingerprint
