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

COPY_STEP = 16 << 20
"""Bytes per ``copy_file_range`` call (and per step of a hash beside it): small enough
to report progress, stop early, and share the last steps of a copy between two threads."""

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


def copy_span(src: int, dst: int, start: int, end: int) -> None:
    """Copy bytes ``[start, end)`` of *src* to the same place in *dst*, in the kernel where
    it can (as ``cp``), else by reading and writing them."""
    done = start
    kernel = True
    while done < end:
        if kernel:
            try:
                copied = os.copy_file_range(src, dst, end - done, done, done)
            except OSError:
                kernel = False  # not supported here (another filesystem, an old kernel)
                continue
        else:
            chunk = os.pread(src, min(end - done, CHUNK), done)
            copied = len(chunk)
            os.pwrite(dst, chunk, done)
        if copied == 0:
            raise InvalidPath("file shrank while being added; try again")
        done += copied


class Spans:
    """The steps of a copy of *size* bytes, :data:`COPY_STEP` each, taken from the front by
    one thread and from the back by another (no step twice), and the bytes copied so far."""

    def __init__(self, size: int) -> None:
        import threading

        self._lock = threading.Lock()
        self._front, self._back = 0, -(-size // COPY_STEP)
        self.size = size
        self.copied = 0

    def first(self) -> tuple[int, int] | None:
        with self._lock:
            if self._front >= self._back:
                return None
            self._front += 1
            return self._span(self._front - 1)

    def last(self) -> tuple[int, int] | None:
        with self._lock:
            if self._front >= self._back:
                return None
            self._back -= 1
            return self._span(self._back)

    def _span(self, step: int) -> tuple[int, int]:
        return step * COPY_STEP, min(self.size, (step + 1) * COPY_STEP)

    def done(self, span: tuple[int, int]) -> int:
        with self._lock:
            self.copied += span[1] - span[0]
            return self.copied


def write_span(dst: int, view: memoryview, start: int, end: int) -> None:
    """Write bytes ``[start, end)`` of *view* (a map of the source) to the same place
    in *dst*."""
    with view[start:end] as part:
        done = 0
        while done < len(part):
            with part[done:] as rest:
                done += os.pwrite(dst, rest, start + done)


SERVER_COPY_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "ceph"})
"""Filesystems whose server can copy a file itself, so ``copy_file_range`` sends no data."""


def filesystem_type(fd: int) -> str | None:
    """The type of the filesystem holding *fd* (``ext4``, ``nfs4``...), None if unknown."""
    dev = os.fstat(fd).st_dev
    wanted = f"{os.major(dev)}:{os.minor(dev)}"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 2 and fields[2] == wanted and "-" in fields:
                    return fields[fields.index("-") + 1]
    except OSError:
        pass
    return None


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
    - on NFS, SMB or Ceph the kernel's ``copy_file_range`` (the server copies
      without sending the data) while BLAKE3 hashes *src* beside it;
    - elsewhere *src* is mapped, and this thread writes its pages to *dst* while a
      second one hashes them: each page is read from memory once (the kernel's copy
      and a hash beside it read every byte twice: 0.83 s of CPU for 512 MiB on
      tmpfs at load 7, against 0.71 s).

    Either way the hash leaves the copy one core (on two cores a hash on both made
    the copy wait for a core), and the hashing thread, once done, copies the last
    16 MiB steps from the back until the two meet: the copy and the hash overlap,
    and neither waits for the other.

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
    hasher = new_hasher(size, leave_cores=1)
    if filesystem_type(dst) in SERVER_COPY_FILESYSTEMS:
        return _copy_beside_hash(src, dst, size, hasher, enough, progress)
    return _write_beside_hash(src, dst, size, hasher, enough, progress)


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
    import threading

    with _mapped(src, size) as view:
        if view is None:
            return _copy_hashing_read(src, dst, size, hasher, progress), True
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
    """Copy in the kernel beside the hash (see :func:`_two_sided`)."""
    return _two_sided(
        size,
        lambda start, end: copy_span(src, dst, start, end),
        lambda cancel: hash_fd(src, size, hasher, cancel),
        enough,
        progress,
    )


def _write_beside_hash(
    src: int,
    dst: int,
    size: int,
    hasher: blake3,
    enough: Callable[[str], bool] | None,
    progress: Progress | None,
) -> tuple[str, bool]:
    """Write the pages of *src*, mapped, beside their hash (see :func:`_two_sided`);
    read, hash and write in chunks where *src* cannot be mapped."""
    with _mapped(src, size) as view:
        if view is None:
            return _copy_hashing_read(src, dst, size, hasher, progress), True
        return _two_sided(
            size,
            lambda start, end: write_span(dst, view, start, end),
            lambda cancel: _hash_steps(view, size, hasher, cancel),
            enough,
            progress,
        )


def _two_sided(
    size: int,
    copy: Callable[[int, int], None],
    digest: Callable[[threading.Event], str | None],
    enough: Callable[[str], bool] | None,
    progress: Progress | None,
) -> tuple[str, bool]:
    """Copy *size* bytes in :data:`COPY_STEP` steps from the front (``copy(start, end)``)
    while a second thread hashes them (``digest(cancel)``: None once *cancel* is set)
    and then copies from the back until the two meet; stop copying once *enough*. An
    error on either side stops the other at its next step."""
    import threading

    spans = Spans(size)
    stop = threading.Event()  # the hash says: no need to copy further
    cancel = threading.Event()  # a copy failed: no need to hash or copy further

    def hash_then_copy() -> str | None:
        try:
            fp = digest(cancel)
            if fp is None:
                return None
            if enough is not None and enough(fp):
                stop.set()
                return fp
            while not cancel.is_set() and (span := spans.last()) is not None:
                copy(*span)
                spans.done(span)
            return fp
        except BaseException:
            cancel.set()
            raise

    hashing = Beside(hash_then_copy, "scalems-hash")
    reported = 0
    try:
        while not (stop.is_set() or cancel.is_set()) and (span := spans.first()) is not None:
            copy(*span)
            reported = spans.done(span)
            if progress is not None:
                progress(reported)
    except BaseException:
        cancel.set()
        raise
    finally:
        hashing.wait()
    fp = hashing.result()  # its copy's error, if it had one
    assert fp is not None  # only a cancelled hash has none, and then a copy raised
    if stop.is_set():
        return fp, False
    if progress is not None and spans.copied > reported:
        progress(spans.copied)  # the steps the hashing thread copied last
    return fp, True


def hash_fd(
    fd: int, size: int, hasher: blake3, cancel: threading.Event | None = None
) -> str | None:
    """Hash the first *size* bytes of the open file *fd* with *hasher*, a step of
    :data:`COPY_STEP` at a time; None if *cancel* was set meanwhile."""
    with _mapped(fd, size) as view:
        if view is None:
            return _copy_hashing_read(fd, None, size, hasher, None)
        return _hash_steps(view, size, hasher, cancel)


def _hash_steps(
    view: memoryview, size: int, hasher: blake3, cancel: threading.Event | None
) -> str | None:
    """Hash the first *size* bytes of *view*, a step of :data:`COPY_STEP` at a time; None
    if *cancel* was set meanwhile."""
    for offset in range(0, size, COPY_STEP):
        if cancel is not None and cancel.is_set():
            return None
        with view[offset : offset + COPY_STEP] as part:
            hasher.update(part)
    return hasher.hexdigest()


@contextlib.contextmanager
def _mapped(fd: int, size: int) -> Iterator[memoryview | None]:
    """The first *size* bytes of the open file *fd*, mapped read-only for a sequential
    read, as a view released (and the mapping closed) when the block ends; None where
    *fd* cannot be mapped. No slice of the view may outlive the block (an error's
    traceback would keep one): take slices in ``with`` statements."""
    import mmap

    try:
        mapping = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    except (OSError, ValueError):
        yield None
        return
    with mapping:
        with contextlib.suppress(AttributeError, OSError):
            mapping.madvise(mmap.MADV_SEQUENTIAL)
        with memoryview(mapping) as view:
            yield view


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
