"""Trees stored thin: the one place that knows a tree's file may not hold its whole archive.

A tree holding files of :data:`~scalems_store.tar.thintar.THRESHOLD` bytes or more
is stored in the thin form of :mod:`scalems_store.tar.thintar`: its archive with each
such file's bytes left out and stored once as a blob of its own (a *piece*), so
that a large input repeated in every output directory of a pipeline costs its bytes
once. The tree's fingerprint is still the BLAKE3 of its whole archive; everything
that reads a tree's bytes reads them through here (:func:`open_expanded`,
:func:`expanded_file`), and a thin tree's pieces are references of it, as its
stored bytes name them (gc keeps them, bundles carry them, verify checks them).

A stored object is thin when its bytes begin with the thin magic and it has a meta
file (a blob, whatever its bytes, has none); :func:`head_is_thin` alone is the
careful reading (gc, verify) that keeps whatever might be a piece.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import BinaryIO

from scalems_store.core.errors import (
    ArchiveError,
    CorruptObject,
    ObjectNotFound,
    StoreError,
    StoreNotWritable,
)
from scalems_store.core.fingerprint import new_hasher
from scalems_store.core.fsutil import new_temp, unlink_quietly, write_all
from scalems_store.objects.files import ObjectDir
from scalems_store.tar import thintar
from scalems_store.tar.thintar import Header


def head_is_thin(fd: int) -> bool:
    """Whether the file open at *fd* begins with the thin magic."""
    try:
        return thintar.is_thin(os.pread(fd, len(thintar.MAGIC), 0))
    except OSError:
        return False


def is_thin(objects: ObjectDir, fp: str, fd: int) -> bool:
    """Whether object *fp*, open at *fd*, is stored thin (the magic, and a meta file)."""
    return head_is_thin(fd) and os.path.lexists(objects.meta_path(fp))


def header(objects: ObjectDir, fp: str, stream: BinaryIO) -> Header:
    """Read the thin header of object *fp* from *stream* (at its start).

    Raises:
        CorruptObject: the header cannot be read.
    """
    try:
        return thintar.read_header(stream, f"tree {fp}")
    except ArchiveError as exc:
        raise CorruptObject(f"object {fp} is corrupt: {exc}") from None


def pieces_of(objects: ObjectDir, fp: str) -> tuple[str, ...]:
    """The pieces a thin tree's stored bytes name (sorted, each once); nothing for any
    other object, or one whose header cannot be read."""
    from scalems_store.objects.files import open_stored

    try:
        with open_stored(objects, fp) as stream:
            if not head_is_thin(stream.fileno()):
                return ()
            found = header(objects, fp, stream)
    except StoreError:
        return ()
    return tuple(sorted({piece.fp for piece in found.pieces}))


def pieces_in(data: bytes, what: str) -> tuple[str, ...]:
    """The pieces named by the thin tree whose stored bytes begin with *data* (its header
    whole); nothing if it is not one.

    Raises:
        ArchiveError: a thin tree whose header cannot be read.
    """
    if not thintar.is_thin(data):
        return ()
    found = thintar.read_header(io.BytesIO(data), what)
    return tuple(sorted({piece.fp for piece in found.pieces}))


class Expanded(io.RawIOBase):
    """The whole archive of a thin tree, read from its literal bytes and its pieces."""

    def __init__(self, stream: BinaryIO, head: Header, chunks: Iterator[bytes]) -> None:
        self._stream, self.header, self._chunks = stream, head, chunks
        self._rest = memoryview(b"")

    @property
    def size(self) -> int:
        return self.header.size

    def readable(self) -> bool:
        return True

    def chunks(self) -> Iterator[bytes | memoryview]:
        """What is left to read, in the chunks it is rebuilt in (no copy)."""
        if self._rest:
            yield self._rest
            self._rest = memoryview(b"")
        yield from self._chunks

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._rest = memoryview(chunk)
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


def expanded(
    objects: ObjectDir, fp: str, stream: BinaryIO, other: ObjectDir | None = None
) -> Expanded:
    """The whole archive of thin tree *fp*, whose stored bytes *stream* is open at its
    start (it is closed with the result); pieces come from *objects* (else *other*).

    Raises:
        CorruptObject: its header cannot be read (a missing or short piece is found
            as it is read: :class:`CorruptObject` then).
    """
    try:
        head = header(objects, fp, stream)
    except BaseException:
        stream.close()
        raise

    def open_piece(piece: str) -> BinaryIO:
        from scalems_store.objects.files import open_stored

        try:
            return open_stored(objects, piece)
        except ObjectNotFound:
            if other is None:
                raise CorruptObject(
                    f"object {fp} is damaged: its piece {piece} is missing (see "
                    "'scalems-store verify')"
                ) from None
            return open_stored(other, piece)

    def chunks() -> Iterator[bytes]:
        try:
            yield from thintar.expand(stream, head, open_piece, f"tree {fp}")
        except ArchiveError as exc:
            raise CorruptObject(f"object {fp} is corrupt: {exc}") from None

    return Expanded(stream, head, chunks())


def open_expanded(objects: ObjectDir, fp: str) -> BinaryIO:
    """Object *fp* as a stream of its whole bytes, thin or not (unchecked: the reader
    hashes what it reads, as it does any object's)."""
    from scalems_store.objects.files import open_stored

    stream = open_stored(objects, fp)
    if not is_thin(objects, fp, stream.fileno()):
        return stream
    return io.BufferedReader(expanded(objects, fp, stream))


def size(objects: ObjectDir, fp: str) -> int:
    """The size of object *fp*'s whole bytes (a thin tree's archive, not its file)."""
    from scalems_store.objects.files import open_stored

    with open_stored(objects, fp) as stream:
        if not is_thin(objects, fp, stream.fileno()):
            return os.fstat(stream.fileno()).st_size
        return header(objects, fp, stream).size


def expanded_hash(objects: ObjectDir, fp: str, *, careful: bool = False) -> str | None:
    """What thin tree *fp* expands to (its fingerprint when sound), or None if it is not
    stored thin; *careful*: take the magic alone (no meta file needed), as verify does.

    Raises:
        CorruptObject: a header that cannot be read, a piece missing or of the wrong size.
    """
    from scalems_store.objects.files import open_stored

    stream = open_stored(objects, fp)
    thin = head_is_thin(stream.fileno()) if careful else is_thin(objects, fp, stream.fileno())
    if not thin:
        stream.close()
        return None
    with expanded(objects, fp, stream) as whole:
        hasher = new_hasher(whole.size)
        for chunk in whole.chunks():
            hasher.update(chunk)
    return str(hasher.hexdigest())


def file_expands_to(objects: ObjectDir, fp: str, path: str) -> bool:
    """Whether the file at *path* (outside ``objects/``: moved aside by gc) is tree *fp*
    stored thin, whose pieces in *objects* rebuild it."""
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed with what expands it
    except OSError:
        return False
    if not head_is_thin(stream.fileno()):
        stream.close()
        return False
    try:
        with expanded(objects, fp, stream) as whole:
            hasher = new_hasher(whole.size)
            for chunk in whole.chunks():
                hasher.update(chunk)
    except (StoreError, OSError):
        return False
    return str(hasher.hexdigest()) == fp


@contextlib.contextmanager
def headers_file(objects: ObjectDir, fp: str, tmp: str) -> Iterator[tuple[str, dict[int, str]]]:
    """For listing the files of tree *fp* without reading its pieces: the path of a file
    holding its archive (its own, or for a thin tree a temporary sparse file whose
    pieces' bytes are holes), and the piece at each data offset (nothing for a whole
    tree). Unchecked: the files-in-trees index is a cache (verify checks trees).

    Raises:
        CorruptObject: a thin header that cannot be read.
    """
    from scalems_store.objects.files import open_stored

    stream = open_stored(objects, fp)
    if not is_thin(objects, fp, stream.fileno()):
        stream.close()
        yield objects.path(fp), {}
        return
    with stream:
        head = header(objects, fp, stream)
        try:
            fd, path = new_temp(tmp, "tree-")
        except StoreNotWritable:
            import tempfile

            fd, path = tempfile.mkstemp(prefix="scalems-tree-")
        try:
            at = 0
            for piece in (*head.pieces, thintar.Piece(head.size - head.zeros, 0, "")):
                for chunk in thintar.literal_run(stream, piece.offset - at, f"tree {fp}"):
                    os.pwrite(fd, chunk, at)
                    at += len(chunk)
                at += piece.length  # a hole: never written
            os.ftruncate(fd, head.size)
            yield path, {piece.offset: piece.fp for piece in head.pieces}
        finally:
            os.close(fd)
            unlink_quietly(path)


WHOLE = "whole-"
"""Prefix of the file in ``tmp/`` holding a thin tree's whole archive for a path (see
:func:`whole_path`)."""


def whole_path(objects: ObjectDir, fp: str, tmp: str) -> str:
    """A path whose file holds object *fp*'s whole bytes, for what reads objects by path
    (SCALE-MS's ``FileReference``): its own file, or for a tree stored thin
    ``tmp/whole-<fp>``, rebuilt and checked, published by rename, read-only (made again
    when gc has swept it).

    Raises:
        CorruptObject: a thin tree that does not rebuild to its fingerprint.
    """
    from scalems_store.objects.files import open_stored

    with open_stored(objects, fp) as stream:
        if not is_thin(objects, fp, stream.fileno()):
            return objects.path(fp)
    final = os.path.join(tmp, WHOLE + fp)
    with contextlib.suppress(OSError):
        os.utime(final, follow_symlinks=False)  # gc counts its grace from this use
        if os.lstat(final).st_size == size(objects, fp):
            return final
    with expanded_file(objects, fp, tmp) as path:
        spare = f"{final}.{os.urandom(6).hex()}"
        try:  # the checked copy, given its name whole (never half-written)
            os.link(path, spare)
            os.chmod(spare, 0o444)
            os.replace(spare, final)
        except OSError as exc:
            unlink_quietly(spare)
            raise StoreError(f"cannot write a whole copy of tree {fp}: {exc.strerror}") from exc
    return final


@contextlib.contextmanager
def expanded_file(objects: ObjectDir, fp: str, tmp: str) -> Iterator[str]:
    """The path of a file holding object *fp*'s whole bytes: its own file, or (a thin
    tree) a temporary file in *tmp* written from its pieces and checked against its
    fingerprint while written, removed at the end.

    Raises:
        CorruptObject: a thin tree that does not expand to its fingerprint.
    """
    from scalems_store.objects.files import matches, open_stored

    stream = open_stored(objects, fp)
    if not is_thin(objects, fp, stream.fileno()):
        stream.close()
        yield objects.path(fp)
        return
    try:  # held (a shared flock) while it is read: gc leaves it alone
        fd, path = new_temp(tmp, "tree-")
    except StoreNotWritable:  # a store this user may only read
        import tempfile

        fd, path = tempfile.mkstemp(prefix="scalems-tree-")
    try:
        with expanded(objects, fp, stream) as whole:
            hasher = new_hasher(whole.size)
            for chunk in whole.chunks():
                hasher.update(chunk)
                write_all(fd, chunk)
        matches(fp, hasher.hexdigest())
        yield path
    finally:
        os.close(fd)
        unlink_quietly(path)
