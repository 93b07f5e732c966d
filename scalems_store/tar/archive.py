"""Deterministic tree archives: archive a directory, and extract an archive safely.

A tree is an uncompressed POSIX (pax) tar of a directory, made so that the same
directory gives the same bytes on any machine:

* entries sorted by the UTF-8 bytes of their relative path, directories included
  (the root itself is not an entry; a directory's name ends with ``/``);
* mtime 0, uid/gid 0, empty user and group names, mode 0644 or 0755 (the
  executable bit is the only permission kept; directories are 0755);
* symlinks kept only when relative and inside the tree (see :func:`check_link`);
  hardlinks stored as files; devices, fifos and sockets refused;
* a pax ``x`` header only where ustar cannot hold a value (a path or link
  longer than 100 bytes or not ASCII, a file of 8 GiB or more), exactly as
  :mod:`tarfile` writes ``PAX_FORMAT``; the archive ends with two zero blocks
  and is padded to a 10240-byte record.

Headers are written here (by :mod:`scalems_store.tar.tarformat`) rather than by
:mod:`tarfile`, which is several times slower at this;
``tests/store/test_archive.py`` checks that both give the same bytes. Archives
are parsed by :mod:`scalems_store.tar.treeread` and their members created by
:mod:`scalems_store.tar.unpack`; this module is the face of all three.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Callable, Iterator

from scalems_store.core.errors import ArchiveError, InvalidPath, UnsafeArchive
from scalems_store.core.fingerprint import usable_cores
from scalems_store.core.threads import ahead
from scalems_store.tar.extraction import extract, prepare_destination
from scalems_store.tar.tarformat import (
    BLOCK,
    DIR,
    FILE,
    MAX_USTAR_SIZE,
    PADDING,
    PAX,
    RECORD,
    SYMLINK,
    entry_header,
    header,
    padded,
)
from scalems_store.tar.treeread import Entry, check_link, iter_entries, list_entries

try:
    import scalems_store._speedups as _speedups
except ImportError:  # built without a C compiler: the Python loop does the same, slower
    _speedups = None  # type: ignore[assignment]

__all__ = [
    "BLOCK",
    "DIR",
    "FILE",
    "MAX_USTAR_SIZE",
    "PAX",
    "RECORD",
    "SYMLINK",
    "Entry",
    "check_link",
    "entry_header",
    "extract",
    "iter_entries",
    "iter_tree",
    "list_entries",
    "prepare_destination",
]

FLUSH = 1 << 20
READ_CHUNK = 8 << 20
SMALL_FILE = 64 << 10
"""Files up to this size are read by the C reader, a batch of them at a time and two
batches ahead: 48 MiB in memory at most, whatever the tree (a directory of 5 MiB frames
took gigabytes when the C reader took files up to READ_CHUNK). Larger files are read one by
one, which costs them nothing more than their bytes."""


# ---------------------------------------------------------------------------
# Archiving


def _scan(
    root: str, skip: Callable[[str, str], None] | None, exclude: frozenset[tuple[int, int]]
) -> list[tuple[str, str, int]]:
    """Return ``(relative path, absolute path, kind)`` for everything under *root*,
    leaving out the directories whose ``(st_dev, st_ino)`` is in *exclude*."""
    inodes = {ino for _, ino in exclude}
    found: list[tuple[str, str, int]] = []
    pending = [("", root)]
    while pending:
        rel_dir, abs_dir = pending.pop()
        try:
            entries = list(os.scandir(abs_dir))
        except OSError as exc:
            raise ArchiveError(f"cannot read directory {abs_dir!r}: {exc.strerror}") from exc
        for item in entries:
            rel = rel_dir + item.name
            try:
                rel.encode()
            except UnicodeEncodeError:
                _refuse(skip, rel, "its name is not valid UTF-8", ArchiveError)
                continue
            if item.is_symlink():
                found.append((rel, item.path, stat.S_IFLNK))
            elif item.is_dir(follow_symlinks=False):
                if item.inode() in inodes and _identity(item) in exclude:
                    continue
                found.append((rel, item.path, stat.S_IFDIR))
                pending.append((rel + "/", item.path))
            elif item.is_file(follow_symlinks=False):
                found.append((rel, item.path, stat.S_IFREG))
            else:
                _refuse(skip, rel, "it is a special file (device, fifo or socket)", UnsafeArchive)
    # sorted so that the same tree always hashes the same (str order == UTF-8 byte order)
    found.sort()
    return found


def _identity(item: os.DirEntry[str]) -> tuple[int, int]:
    info = item.stat(follow_symlinks=False)
    return info.st_dev, info.st_ino


def _refuse(skip: Callable[[str, str], None] | None, rel: str, why: str, error: type) -> None:
    if skip is None:
        raise error(f"cannot archive {rel!r}: {why}")
    skip(rel, why)


def iter_tree(
    root: str | os.PathLike[str],
    *,
    skip: Callable[[str, str], None] | None = None,
    progress: Callable[[int], None] | None = None,
    exclude: frozenset[tuple[int, int]] = frozenset(),
) -> Iterator[bytes]:
    """Yield the bytes of the deterministic archive of the directory *root*.

    Args:
        root: The directory to archive.
        skip: Called as ``skip(path, reason)`` for an entry that cannot be
            archived (a special file, an unsafe symlink); when None, such an
            entry raises instead.
        progress: Called with the number of entries written so far, now and then.
        exclude: ``(st_dev, st_ino)`` of directories to leave out with all they
            hold (the store itself, when it lies inside *root*).

    Raises:
        InvalidPath: *root* is not a directory.
        ArchiveError: a file cannot be read or changed while being archived.
        UnsafeArchive: a special file or an unsafe symlink, when *skip* is None.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise InvalidPath(f"not a directory: {root!r}")
    buffer: list[bytes] = []
    buffered = total = 0
    entries = _scan(root, skip, exclude)
    contents = small_files([path for _, path, kind in entries if kind == stat.S_IFREG])
    for count, (rel, path, kind) in enumerate(entries, 1):
        if kind == stat.S_IFDIR:
            block = entry_header(rel + "/", 0o755, 0, DIR)
        elif kind == stat.S_IFLNK:
            target = _readlink(path)
            try:
                check_link(rel, target)
            except UnsafeArchive as exc:
                _refuse(skip, rel, str(exc), UnsafeArchive)
                continue
            block = entry_header(rel, 0o644, 0, SYMLINK, target)
        else:
            read = next(contents)
            if read is not None:
                data, mode = read
                size = len(data)
            else:
                fd, size, mode = _open_file(path)
                try:
                    if size > READ_CHUNK:
                        head = entry_header(rel, mode, size, FILE)
                        yield b"".join(buffer) + head
                        yield from _stream(fd, path, size)
                        total += buffered + len(head) + size + (-size % BLOCK)
                        buffer, buffered = [], 0
                        continue
                    data = os.read(fd, size) if size else b""
                    if len(data) != size:
                        data = _read_exact(fd, path, size, data)
                finally:
                    os.close(fd)
            if len(rel) <= 100 and rel.isascii():
                # the common case, inlined: a short ASCII name needs no pax header
                block = header(rel.encode(), mode, size, FILE) + data + PADDING[size % BLOCK]
            else:
                block = entry_header(rel, mode, size, FILE) + padded(data)
        buffer.append(block)
        buffered += len(block)
        if buffered >= FLUSH:
            yield b"".join(buffer)
            total += buffered
            buffer, buffered = [], 0
            if progress is not None:
                progress(count)
    # two zero blocks end the archive; pad it to a whole record as tarfile does
    total += buffered + 2 * BLOCK
    buffer.append(bytes(2 * BLOCK + (-total % RECORD)))
    yield b"".join(buffer)


READ_BATCH = 256
"""Files per call of the C reader."""


def small_files(paths: list[str]) -> Iterator[tuple[bytes, int] | None]:
    """``(bytes, mode)`` of each of *paths*, read by the C reader in batches without the
    GIL; None for a path it could not read plainly (not a regular file of at most
    :data:`SMALL_FILE` bytes, a symlink, a file written while it was read) and for every
    path without the C module, which the caller then reads, and reports errors for, itself.

    With cores to spare, a thread reads the next batches while the caller formats this one.
    """
    if _speedups is None:
        return itertools.repeat(None)
    limit = min(SMALL_FILE, READ_CHUNK)
    starts = range(0, len(paths), READ_BATCH)
    batches: Iterator[list[tuple[bytes, int] | None]] = (
        _speedups.read_files(paths[at : at + READ_BATCH], limit) for at in starts
    )
    if len(starts) >= 3 and usable_cores() >= 2:
        batches = ahead(batches)
    return itertools.chain.from_iterable(batches)


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError as exc:
        raise ArchiveError(f"cannot read symlink {path!r}: {exc.strerror}") from exc


def _open_file(path: str) -> tuple[int, int, int]:
    """Open a regular file without following links; return ``(fd, size, mode)``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ArchiveError(f"cannot read {path!r}: {exc.strerror}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ArchiveError(f"{path!r} changed type while being archived")
    return fd, info.st_size, 0o755 if info.st_mode & 0o100 else 0o644


def _read_exact(fd: int, path: str, size: int, data: bytes = b"") -> bytes:
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            raise ArchiveError(f"{path!r} shrank while being archived")
        data += more
    return data


def _stream(fd: int, path: str, size: int) -> Iterator[bytes]:
    left = size
    while left:
        chunk = os.read(fd, min(READ_CHUNK, left))
        if not chunk:
            raise ArchiveError(f"{path!r} shrank while being archived")
        left -= len(chunk)
        yield chunk
    yield bytes(-size % BLOCK)


# ---------------------------------------------------------------------------
# Extracting
