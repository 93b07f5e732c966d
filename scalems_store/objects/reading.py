"""Reading objects out of a store, always checked against their names.

An object's bytes are read through :func:`open_object` (or the functions here built on
it); a tree stored thin (:mod:`scalems_store.objects.thin`) reads as its whole
archive. :func:`open_stored` gives the stored file itself, for what moves or checks
stored files (bundles, verify).
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, BinaryIO

from scalems_store.core.errors import CorruptObject, InvalidPath, StoreError
from scalems_store.core.fingerprint import CHUNK, MMAP_THRESHOLD, hash_bytes, new_hasher
from scalems_store.core.fsutil import check_parent, new_temp, not_writable, unlink_quietly
from scalems_store.objects import content
from scalems_store.objects.files import DAMAGED, ObjectDir, matches, open_stored

if TYPE_CHECKING:
    from scalems_store.objects import thin


def open_object(objects: ObjectDir, fp: str) -> BinaryIO:
    """Open object *fp* (full fingerprint) for reading its whole bytes (a thin tree's
    archive, rebuilt from its pieces as it is read), never through a symlink.

    Raises:
        ObjectNotFound: it is not there.
    """
    from scalems_store.objects import thin

    return thin.open_expanded(objects, fp)


def _copied(fp: str, copy: Callable[[], tuple[str, bool]]) -> None:
    """Run *copy* of object *fp* (a copy that hashes what it reads), then check the hash."""
    try:
        got, _ = copy()
    except InvalidPath as exc:  # raised by transfer for the side it reads
        raise StoreError(f"cannot read object {fp}: {exc}") from exc
    matches(fp, got)


def write_to(objects: ObjectDir, fp: str, out: IO[bytes]) -> int:
    """Copy object *fp* to a binary stream, checked against its name; return its size.

    An object smaller than :data:`~scalems_store.core.fingerprint.MMAP_THRESHOLD` is read
    and checked whole before anything is written. A larger one is written as it is
    hashed (reading it twice would double the time of ``get FP > file``); if it
    turns out corrupt, or the copy fails, a regular file (or another seekable
    stream) is truncated back to where it stood, and where that cannot be done (a
    pipe) the error says that the bytes already written are not the object's.

    Raises:
        CorruptObject: the object does not match its name.
    """
    from scalems_store.objects import thin

    with open_object(objects, fp) as stream:
        if isinstance(stream, io.BufferedReader) and isinstance(stream.raw, thin.Expanded):
            return _write_expanded(stream.raw, fp, out)
        size = os.fstat(stream.fileno()).st_size
        if size < MMAP_THRESHOLD:
            data = stream.read()
            matches(fp, hash_bytes(data))
            out.write(data)
            return len(data)
        with _taken_back(out, f"the {size} bytes"):
            _write_hashing(stream, fp, size, out)
    return size


def _write_expanded(stream: thin.Expanded, fp: str, out: IO[bytes]) -> int:
    """Write a thin tree's whole archive to *out* as it is rebuilt and hashed; taken back
    as :func:`write_to` says if it turns out corrupt."""
    size = stream.size
    with _taken_back(out, "the bytes"):
        hasher = new_hasher(size)
        for chunk in stream.chunks():
            hasher.update(chunk)
            out.write(chunk)
        matches(fp, hasher.hexdigest())
    return size


@contextlib.contextmanager
def _taken_back(out: IO[bytes], written: str) -> Iterator[None]:
    """Take back what the block writes to *out* if it fails (see :func:`write_to`): a
    regular file or another seekable stream is truncated back to where it stood; where
    that cannot be done, a corrupt object's error says that *written* already written are
    not its content."""
    out.flush()
    rewind = _rewinder(out)
    try:
        yield
    except CorruptObject as exc:
        if rewind is None:
            raise CorruptObject(
                f"{exc}; {written} already written to the output are not its content: discard them"
            ) from None
        rewind()
        raise
    except BaseException:
        if rewind is not None:
            rewind()
        raise


def _write_hashing(stream: BinaryIO, fp: str, size: int, out: IO[bytes]) -> None:
    """Write all of *stream* (object *fp*) to *out* while hashing it; then check the hash."""
    out_fd = _file_descriptor(out)
    if out_fd is None:
        hasher = new_hasher(size)
        while chunk := stream.read(CHUNK):
            hasher.update(chunk)
            out.write(chunk)
        matches(fp, hasher.hexdigest())
        return
    from scalems_store.objects.transfer import copy_hashing

    # written from the object's pages as they are hashed, at the stream's
    # position (never a reflink: that would replace what the stream holds)
    hasher = new_hasher(size, leave_cores=1)
    _copied(fp, lambda: copy_hashing(stream.fileno(), out_fd, size, hasher))


def _rewinder(out: IO[bytes]) -> Callable[[], None] | None:
    """What takes *out* back to where it stands now (truncating what is written after),
    or None when it cannot be taken back (a pipe, a terminal)."""
    fd = _file_descriptor(out)
    if fd is None:
        if not out.seekable():
            return None
        start = out.tell()

        def rewind_stream() -> None:
            out.seek(start)
            out.truncate()

        return rewind_stream
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return None
    import fcntl

    # opened for appending (``>>``): writes go to the end, whatever the offset says
    appending = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND
    start = info.st_size if appending else os.lseek(fd, 0, os.SEEK_CUR)

    def rewind_file() -> None:
        with contextlib.suppress(OSError):
            out.flush()  # what the stream still buffers goes first, then is cut off
        os.ftruncate(fd, start)
        os.lseek(fd, start, os.SEEK_SET)

    return rewind_file


def copy_blob(objects: ObjectDir, fp: str, dest: str) -> None:
    """Copy object *fp* to the new file *dest*, checked in the same read; a corrupt copy
    is never linked into place.

    Raises:
        InvalidPath: *dest* exists.
        CorruptObject: the object does not match its name.
    """
    from scalems_store.objects.transfer import copy_and_hash

    if os.path.lexists(dest):
        raise InvalidPath(f"destination {dest!r} already exists")
    parent = check_parent(dest)
    fd, temp = new_temp(parent, f".{os.path.basename(dest)}.")
    try:
        with open_stored(objects, fp) as src:  # a blob: never thin
            size = os.fstat(src.fileno()).st_size
            _copied(fp, lambda: copy_and_hash(src.fileno(), fd, size))
        os.link(temp, dest)
    except FileExistsError:
        raise InvalidPath(f"destination {dest!r} already exists") from None
    except OSError as exc:
        raise not_writable(dest, exc) from exc
    finally:
        os.close(fd)
        unlink_quietly(temp)


def extract_tree(objects: ObjectDir, fp: str, dest: str, tmp: str) -> None:
    """Extract tree *fp* into the new or empty directory *dest*; its fingerprint is checked
    while the headers are parsed, and nothing is written unless it matches. A thin tree
    is first rebuilt into a temporary file in *tmp* (checked as it is written)."""
    from scalems_store.core.fingerprint import hash_file
    from scalems_store.objects import thin
    from scalems_store.tar import archive

    archive.prepare_destination(dest)
    # a thin tree: its headers and small files from a sparse copy of its archive, each
    # large file copied from its piece; rebuilt and hashed first (on a second thread,
    # while the headers are parsed): nothing is written unless it matches
    with thin.headers_file(objects, fp, tmp) as (path, pieces):
        if not pieces:
            archive.extract(path, dest, verify=lambda: matches(fp, hash_file(path)))
            return
        sources = {offset: objects.path(piece) for offset, piece in pieces.items()}
        archive.extract(
            path,
            dest,
            verify=lambda: matches(fp, str(thin.expanded_hash(objects, fp))),
            sources=sources,
        )


def kind(objects: ObjectDir, fp: str) -> str:
    """The kind of object *fp*: what its meta file records (``blob`` when it has none);
    where that file is damaged, what the bytes show."""
    meta = objects.meta_state(fp)
    if meta is None:
        return content.BLOB
    if meta is not DAMAGED:
        return meta.kind
    return sniff_kind(objects, fp)


def rows(objects: ObjectDir) -> list[tuple[str, str, int, float]]:
    """Every object's index row ``(fingerprint, kind, size, mtime)``, read from the files
    (a thin tree's size is its archive's)."""
    with_meta = objects.with_meta()  # blobs have none: their kind is read from nothing
    found = []
    for fp, size, mtime in objects.listing():
        kind_ = kind(objects, fp) if fp in with_meta else content.BLOB
        if kind_ == content.TREE:
            size = object_size(objects, fp, size)
        found.append((fp, kind_, size, mtime))
    return found


def object_size(objects: ObjectDir, fp: str, stored: int | None = None) -> int:
    """The size of object *fp*'s whole bytes (*stored*: its file's size, if known); the
    file's size where it cannot be read."""
    from scalems_store.objects import thin

    try:
        return thin.size(objects, fp)
    except StoreError:
        if stored is not None:
            return stored
        st = objects.lstat(fp)
        return 0 if st is None else st.st_size


def sniff_kind(objects: ObjectDir, fp: str) -> str:
    """The kind of object *fp* as its bytes alone show: a call or result record, else a
    tree if they parse as one, else a blob."""
    from scalems_store.core.errors import ArchiveError
    from scalems_store.objects import thin
    from scalems_store.tar import archive

    with open_stored(objects, fp) as stream:
        if thin.head_is_thin(stream.fileno()):
            return content.TREE
        data = stream.read(64)
        if content.might_be_record(data):
            found, _ = content.sniff(data + stream.read())
            if found is not None:
                return found
    try:
        archive.list_entries(objects.path(fp))
    except (ArchiveError, OSError):
        return content.BLOB
    return content.TREE


def _file_descriptor(stream: IO[bytes]) -> int | None:
    """The descriptor under *stream*, or None if it has none (an in-memory stream)."""
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
