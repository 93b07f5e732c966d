"""Creating the members of a parsed tree archive under a new directory.

The entries come from :func:`scalems_store.tar.treeread.iter_entries`, which has
checked every name, type and bound. Everything is created relative to a
descriptor of the root, one component at a time, so neither the depth of the
tree nor the length of the root's path is limited by anything but the
system's limit on one relative path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from scalems_store.core.errors import ArchiveError
from scalems_store.core.fingerprint import usable_cores
from scalems_store.tar.tarformat import DIR, SYMLINK
from scalems_store.tar.treeread import Entry

if TYPE_CHECKING:
    import mmap

try:
    import scalems_store._speedups as _speedups
except ImportError:  # built without a C compiler: the Python loop does the same, slower
    _speedups = None  # type: ignore[assignment]

PARALLEL_FILES = 64
"""Fewest files worth a second writing thread."""
BATCH = 1024
"""Files per call of the C loop: between calls, signals are handled and errors seen."""

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def write_entries(
    data: bytes | mmap.mmap,
    entries: list[Entry],
    root: str,
    sources: Mapping[int, str] | None = None,
) -> None:
    """Create *entries* under the empty directory *root*, taking file data from *data*,
    or, for a file whose data offset is in *sources*, copying the file named there (a
    piece of a tree stored thin, checked with the tree already).

    Directories and symlinks are made as they come, then the files are written.

    Raises:
        OSError: a member cannot be created or written.
        ArchiveError: a source is shorter than its member.
    """
    root_fd = os.open(root, _DIRECTORY)
    try:
        made = {""}
        files = []
        for entry in entries:
            parent = entry.path.rpartition("/")[0]
            if parent not in made:
                _make_dirs(root_fd, parent, made)
            if entry.type == DIR:
                if entry.path not in made:
                    _make_dirs(root_fd, entry.path, made)
            elif entry.type == SYMLINK:
                os.symlink(entry.linkname, entry.path, dir_fd=root_fd)
            else:
                files.append(entry)
        copied = [f for f in files if sources and f.offset in sources]
        if copied:
            files = [f for f in files if f.offset not in (sources or {})]
        view = memoryview(data)
        try:
            _write_files(view, files, root, root_fd)
        finally:
            view.release()
        for entry in copied:
            assert sources is not None
            _copy_file(entry, sources[entry.offset], root_fd)
    finally:
        os.close(root_fd)


def _copy_file(entry: Entry, source: str, root_fd: int) -> None:
    """Create the file *entry* under *root_fd* with the bytes of the file at *source*: a
    kernel copy (a shared extent where the filesystem can), else read and write."""
    parent, _, name = entry.path.rpartition("/")
    dir_fd = os.open(parent or ".", _DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
    try:
        fd = os.open(name, _CREATE, entry.mode, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        copy_from(source, fd, entry.size)
    finally:
        os.close(fd)


def copy_from(source: str, fd: int, size: int) -> None:
    """Write the first *size* bytes of the file at *source* to *fd*: a kernel copy (a
    shared extent where the filesystem can), else read and write.

    Raises:
        ArchiveError: *source* is shorter.
    """
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        left = size
        while left:
            try:
                done = os.copy_file_range(src, fd, left)
            except OSError:  # not between these filesystems: copy by hand
                done = len(chunk := os.read(src, min(left, 8 << 20)))
                _write_all(fd, memoryview(chunk))
            if not done:
                raise ArchiveError(f"{source!r} is shorter than the member it holds")
            left -= done
    finally:
        os.close(src)


def _make_dirs(root_fd: int, path: str, made: set[str]) -> None:
    """Create the directory *path* under *root_fd* and its missing parents (without recursion)."""
    missing = []
    while path not in made:
        missing.append(path)
        path = path.rpartition("/")[0]
    for path in reversed(missing):
        os.mkdir(path, dir_fd=root_fd)
        made.add(path)


def _write_files(view: memoryview, files: list[Entry], root: str, root_fd: int) -> None:
    """Create and fill *files* under *root*: with the C loop, on two threads when there
    are cores to spare (it runs without the GIL); else with the Python loop."""
    if _speedups is None:
        _write_files_py(view, files, root_fd)
        return
    import threading

    target = os.fsencode(root)
    stop = threading.Event()

    def write(part: list[Entry]) -> None:
        try:
            for start in range(0, len(part), BATCH):
                if stop.is_set():
                    return
                _speedups.write_files(target, view, part[start : start + BATCH])
        except BaseException:
            stop.set()
            raise

    if len(files) < PARALLEL_FILES or usable_cores() < 2:
        write(files)
        return
    middle = split_point(files)
    failure: list[BaseException] = []

    def second_half() -> None:
        try:
            write(files[middle:])
        except BaseException as exc:  # raised below, in the caller's thread
            failure.append(exc)

    helper = threading.Thread(target=second_half, name="scalems-extract")
    helper.start()
    try:
        write(files[:middle])
    except BaseException:
        stop.set()
        raise
    finally:
        helper.join()
    if failure:
        raise failure[0]


def split_point(files: list[Entry]) -> int:
    """Return half of *files*, moved to a directory boundary nearby if there is one: two
    threads creating files in one directory queue on its lock."""
    middle = len(files) // 2
    parent = files[middle].path.rpartition("/")[0]
    for step in range(1, len(files) // 4):
        for at in (middle - step, middle + step):
            if files[at].path.rpartition("/")[0] != parent:
                return at + 1 if at < middle else at
    return middle


def _write_files_py(view: memoryview, files: list[Entry], root_fd: int) -> None:
    # files come in path order, so those of one directory mostly follow each other:
    # keep one directory open (a tree may hold more directories than we may open files)
    open_dir, dir_fd = None, -1
    try:
        for entry in files:
            parent, _, name = entry.path.rpartition("/")
            if parent != open_dir:
                if open_dir is not None:
                    os.close(dir_fd)
                    open_dir = None
                dir_fd = os.open(parent or ".", _DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
                open_dir = parent
            fd = os.open(name, _CREATE, entry.mode, dir_fd=dir_fd)
            try:
                with view[entry.offset : entry.offset + entry.size] as chunk:
                    if os.write(fd, chunk) != entry.size:
                        _write_all(fd, chunk[os.lseek(fd, 0, os.SEEK_CUR) :])
            finally:
                os.close(fd)
    finally:
        if open_dir is not None:
            os.close(dir_fd)


def _write_all(fd: int, chunk: memoryview) -> None:
    while chunk:
        written = os.write(fd, chunk)
        chunk = chunk[written:]
