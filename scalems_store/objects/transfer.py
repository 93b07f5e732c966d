"""Moving bytes into and out of the store: copies that hash as they go, and chunked reads."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING

from scalems_store.core.errors import InvalidPath
from scalems_store.core.fingerprint import CHUNK, MMAP_THRESHOLD, new_hasher
from scalems_store.core.fsutil import write_all
from scalems_store.core.threads import Beside

if TYPE_CHECKING:
    import threading

    from blake3 import blake3

Progress = Callable[[int], None]
"""Called with the number of bytes (or objects) done so far."""

COPY_STEP = 64 << 20
"""Bytes per ``copy_file_range`` call: small enough to report progress and stop early."""

COPY_CHUNK = 16 << 20
"""Bytes per step of a copy that hashes as it goes: the writer stays close behind the hash."""


def read_chunks(stream: IO[bytes], progress: Progress | None) -> Iterator[bytes]:
    """Yield *stream* in chunks, reporting the bytes read so far to *progress*."""
    done = 0
    while chunk := stream.read(CHUNK):
        done += len(chunk)
        if progress is not None:
            progress(done)
        yield chunk


def copy_fd(
    src: int,
    dst: int,
    size: int,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> None:
    """Copy *size* bytes from *src* to *dst*, in the kernel where it can."""
    done = 0
    kernel = True
    while done < size and not (stop is not None and stop.is_set()):
        step = min(COPY_STEP, size - done)
        if kernel:
            try:
                copied = os.copy_file_range(src, dst, step, done, done)
            except OSError:
                kernel = False  # not supported here (another filesystem, an old kernel)
                continue
        else:
            chunk = os.pread(src, min(step, CHUNK), done)
            copied = len(chunk)
            os.pwrite(dst, chunk, done)
        if copied == 0:
            raise InvalidPath("file shrank while being added; try again")
        done += copied
        if progress is not None:
            progress(done)


FICLONE = 0x40049409
"""Linux ioctl: make a file share another's blocks (a reflink), as ``cp --reflink`` does."""


def clone(src: int, dst: int) -> bool:
    """Make the empty file *dst* share the blocks of *src* (btrfs, XFS, ...); False where
    the filesystem cannot, or *src* and *dst* lie on different filesystems."""
    if not sys.platform.startswith("linux"):
        return False
    import fcntl

    try:
        fcntl.ioctl(dst, FICLONE, src)
    except OSError:
        return False
    return True


def copy_and_hash(
    src: int,
    dst: int,
    size: int,
    enough: Callable[[str], bool] | None = None,
    progress: Progress | None = None,
) -> tuple[str, bool]:
    """Copy *size* bytes of *src* into the empty file *dst* and hash them,
    by the cheapest route the filesystems allow (a small file is simply read,
    hashed and written):

    - a reflink where the filesystem shares blocks (btrfs, XFS): no copy at all,
      and the source is hashed on all cores;
    - elsewhere the kernel's ``copy_file_range`` (as ``cp`` copies; on NFS, SMB or
      Ceph the server copies without sending the data) while BLAKE3's own threads
      hash *src* beside it, on every core: the copy and the hash overlap, and
      neither waits for the other.

    Returns:
        ``(fingerprint, complete)``. When *enough* returns true for the
        fingerprint (the content is stored already), the copy stops early and
        *complete* is False: *dst* then holds only part of the bytes.

    Raises:
        InvalidPath: *src* cannot be read (the reason only: the caller knows the name).
        OSError: *dst* cannot be written.
    """
    if size < MMAP_THRESHOLD:
        return _copy_hashing_read(src, dst, size, new_hasher(size), progress), True
    if clone(src, dst):
        if progress is not None:
            progress(size)
        # the source, not the clone: its pages are the ones likely in memory
        fp = hash_fd(src, size, new_hasher(size))
        assert fp is not None  # never cancelled
        return fp, True
    return _copy_beside_hash(src, dst, size, new_hasher(size), enough, progress)


def copy_hashing(
    src: int,
    dst: int,
    size: int,
    hasher: blake3,
    enough: Callable[[str], bool] | None = None,
    progress: Progress | None = None,
) -> tuple[str, bool]:
    """Copy *size* bytes from *src* to the empty file *dst* and hash them, reading them once
    (for a *dst* that is no file, such as a pipe, which the kernel cannot copy into).

    One thread hashes *src* through a memory map while this one writes the same
    pages to *dst*, just behind it, so each page comes from memory once (the
    kernel copy plus a separate hash read everything twice). Where *src* cannot
    be mapped, the bytes are read, hashed and written in chunks.

    Returns:
        ``(fingerprint, complete)``. When *enough* returns true for the
        fingerprint (the content is stored already), the copy stops early and
        *complete* is False: *dst* then holds only part of the bytes.
    """
    import mmap

    try:
        mapping = mmap.mmap(src, size, prot=mmap.PROT_READ)
    except (OSError, ValueError):
        return _copy_hashing_read(src, dst, size, hasher, progress), True
    import threading

    with mapping:
        with contextlib.suppress(AttributeError, OSError):
            mapping.madvise(mmap.MADV_SEQUENTIAL)
        view = memoryview(mapping)
        stop = threading.Event()  # the hash says: no need to copy further
        cancel = threading.Event()  # the copy failed: no need to hash further

        def hash_all() -> str | None:
            try:
                for offset in range(0, size, COPY_CHUNK):
                    if cancel.is_set():
                        return None
                    with view[offset : offset + COPY_CHUNK] as part:
                        hasher.update(part)
                fp = hasher.hexdigest()
                if enough is not None and enough(fp):
                    stop.set()
                return fp
            except BaseException:
                stop.set()
                raise

        hashing = Beside(hash_all, "scalems-hash")
        done = 0
        try:
            while done < size and not stop.is_set():
                # no view of the mapping may outlive this block (an error's traceback
                # would keep it), or the mapping cannot be closed
                with view[done : done + COPY_CHUNK] as part:
                    written = os.write(dst, part)
                    while written < len(part):
                        with part[written:] as rest:
                            written += os.write(dst, rest)
                    done += written
                if progress is not None:
                    progress(done)
        except BaseException:
            cancel.set()
            raise
        finally:
            hashing.wait()
            view.release()
    fp = hashing.result()
    assert fp is not None  # only a cancelled hash has none, and then the copy raised
    return fp, done == size


def _copy_beside_hash(
    src: int,
    dst: int,
    size: int,
    hasher: blake3,
    enough: Callable[[str], bool] | None,
    progress: Progress | None,
) -> tuple[str, bool]:
    """Copy in the kernel while a thread hashes *src* (with *hasher*'s threads); stop
    copying once *enough*. A copy that fails stops the hash at its next step."""
    import threading

    stop = threading.Event()  # the hash says: no need to copy further
    cancel = threading.Event()  # the copy failed: no need to hash further

    def hash_all() -> str | None:
        fp = hash_fd(src, size, hasher, cancel)
        if fp is not None and enough is not None and enough(fp):
            stop.set()
        return fp

    hashing = Beside(hash_all, "scalems-hash")
    try:
        copy_fd(src, dst, size, stop, progress)
    except BaseException:
        cancel.set()
        raise
    finally:
        hashing.wait()
    fp = hashing.result()
    assert fp is not None  # only a cancelled hash has none, and then the copy raised
    return fp, not stop.is_set()


def hash_fd(
    fd: int, size: int, hasher: blake3, cancel: threading.Event | None = None
) -> str | None:
    """Hash the first *size* bytes of the open file *fd* with *hasher*, a step of
    :data:`COPY_STEP` at a time; None if *cancel* was set meanwhile."""
    import mmap

    try:
        mapping = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    except (OSError, ValueError):
        return _copy_hashing_read(fd, None, size, hasher, None)
    with mapping:
        with contextlib.suppress(AttributeError, OSError):
            mapping.madvise(mmap.MADV_SEQUENTIAL)
        with memoryview(mapping) as view:
            for offset in range(0, size, COPY_STEP):
                if cancel is not None and cancel.is_set():
                    return None
                with view[offset : offset + COPY_STEP] as part:
                    hasher.update(part)
    return hasher.hexdigest()


def _copy_hashing_read(
    src: int, dst: int | None, size: int, hasher: blake3, progress: Progress | None
) -> str:
    """Read, hash and (if *dst*) write *size* bytes of *src* in chunks: for files
    that cannot be memory-mapped."""
    done = 0
    while done < size:
        try:
            chunk = os.pread(src, min(CHUNK, size - done), done)
        except OSError as exc:
            raise InvalidPath(exc.strerror or str(exc)) from exc
        if not chunk:
            raise InvalidPath("file shrank while being added; try again")
        hasher.update(chunk)
        if dst is not None:
            write_all(dst, chunk)
        done += len(chunk)
        if progress is not None:
            progress(done)
    return hasher.hexdigest()
