"""Deterministic tree archives: write, parse and safely extract.

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

Headers are written here rather than by :mod:`tarfile`, which is several times
slower at this; ``tests/store/test_archive.py`` checks that both give the same
bytes.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import stat
from collections.abc import Callable, Iterator
from typing import NamedTuple

from .errors import ArchiveError, InvalidPath, UnsafeArchive
from .fingerprint import usable_cores
from .fsutil import Beside, ahead

try:
    from . import _speedups
except ImportError:  # built without a C compiler: the Python loop does the same, slower
    _speedups = None  # type: ignore[assignment]

BLOCK = 512
RECORD = 20 * BLOCK
FLUSH = 1 << 20
READ_CHUNK = 8 << 20
MAX_USTAR_SIZE = 8**11

FILE, DIR, SYMLINK = b"0", b"5", b"2"
PAX = b"x"
_MODES = {0: b"0000000\0", 0o644: b"0000644\0", 0o755: b"0000755\0"}
_ZERO8 = b"0000000\0"
_MTIME0 = b"00000000000\0"
# devmajor/devminor are NUL for non-device members, as tarfile writes them since 3.11.4
_TAIL = b"ustar\x0000" + bytes(64) + bytes(16) + bytes(155)
_PAD12 = bytes(12)
_CHKSUM_BLANK = 8 * 0x20
_TAIL_SUM = sum(_TAIL)
_PAX_NAME = b"././@PaxHeader"
_ZERO_BLOCK = bytes(BLOCK)
_PADDING = [bytes(-n % BLOCK) for n in range(BLOCK)]


class Entry(NamedTuple):
    """One member of a tree archive, as read back by :func:`iter_entries`."""

    path: str
    """Relative path with ``/`` separators, no trailing slash."""
    type: bytes
    """:data:`FILE`, :data:`DIR` or :data:`SYMLINK`."""
    mode: int
    size: int
    offset: int
    """Offset of the file's data in the archive."""
    linkname: str = ""


# ---------------------------------------------------------------------------
# Writing


_MODE_SUMS = {mode: sum(field) for mode, field in _MODES.items()}
# every byte of a header but the name, mode, size, type and link is fixed: sum those once
_FIXED_SUM = 2 * sum(_ZERO8) + sum(_MTIME0) + _TAIL_SUM + _CHKSUM_BLANK


def _header(name: bytes, mode: int, size: int, typeflag: bytes, link: bytes = b"") -> bytes:
    """Return one 512-byte ustar header with the normalized fields."""
    size_field = b"%011o\0" % size
    checksum = _FIXED_SUM + sum(name) + _MODE_SUMS[mode] + sum(size_field) + typeflag[0] + sum(link)
    return b"".join(
        (
            name.ljust(100, b"\0"),
            _MODES[mode],
            _ZERO8,
            _ZERO8,
            size_field,
            _MTIME0,
            b"%06o\0 " % checksum,
            typeflag,
            link.ljust(100, b"\0"),
            _TAIL,
            _PAD12,
        )
    )


def _pax_records(records: list[tuple[bytes, bytes]]) -> bytes:
    """Encode pax records ``"<len> <key>=<value>\\n"``, where len counts itself."""
    out = []
    for key, value in records:
        length = len(key) + len(value) + 3
        total = length + len(str(length))
        total = length + len(str(total))
        out.append(b"%d %s=%s\n" % (total, key, value))
    return b"".join(out)


def _fits_ustar(text: str, limit: int) -> bool:
    return len(text) <= limit and text.isascii()


def entry_header(name: str, mode: int, size: int, typeflag: bytes, link: str = "") -> bytes:
    """Return the header block(s) of one entry, with a pax header where ustar is too small."""
    records = []
    if not _fits_ustar(name, 100):
        records.append((b"path", name.encode()))
    if not _fits_ustar(link, 100):
        records.append((b"linkpath", link.encode()))
    if size >= MAX_USTAR_SIZE:
        records.append((b"size", b"%d" % size))
    header = _header(
        name.encode("ascii", "replace")[:100],
        mode,
        0 if size >= MAX_USTAR_SIZE else size,
        typeflag,
        link.encode("ascii", "replace")[:100],
    )
    if not records:
        return header
    payload = _pax_records(records)
    return _header(_PAX_NAME, 0, len(payload), PAX) + _padded(payload) + header


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def check_link(path: str, target: str) -> None:
    """Refuse a symlink at *path* whose *target* could resolve outside the tree.

    A target is accepted when it is relative and made of leading ``..``
    components (no more than the link's depth) followed only by plain names.
    With ``..`` allowed only before the first name, no chain of such links can
    climb out of the tree, whatever the other links point at.

    Raises:
        UnsafeArchive: the target is absolute, climbs too far, or has ``..`` after a name.
    """
    if not target or target.startswith("/"):
        raise UnsafeArchive(
            f"symlink {path!r} -> {target!r} is not a relative link inside the tree"
        )
    ups = 0
    named = False
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if named:
                raise UnsafeArchive(f"symlink {path!r} -> {target!r} has '..' after a name")
            ups += 1
        else:
            named = True
    if ups > path.count("/"):
        raise UnsafeArchive(f"symlink {path!r} -> {target!r} points outside the tree")


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
    contents = _small_files([path for _, path, kind in entries if kind == stat.S_IFREG])
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
                block = _header(rel.encode(), mode, size, FILE) + data + _PADDING[size % BLOCK]
            else:
                block = entry_header(rel, mode, size, FILE) + _padded(data)
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


def _small_files(paths: list[str]) -> Iterator[tuple[bytes, int] | None]:
    """``(bytes, mode)`` of each of *paths*, read by the C reader in batches without the
    GIL; None for a path it could not read plainly (and for every path without the C
    module), which the caller then reads, and reports errors for, itself.

    With cores to spare, a thread reads the next batches while the caller formats this one.
    """
    if _speedups is None:
        return itertools.repeat(None)
    starts = range(0, len(paths), READ_BATCH)
    batches: Iterator[list[tuple[bytes, int] | None]] = (
        _speedups.read_files(paths[at : at + READ_BATCH], READ_CHUNK) for at in starts
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
# Reading


def _octal(field: bytes, offset: int) -> int:
    try:
        return int(field.rstrip(b"\0 ") or b"0", 8)
    except ValueError:
        raise ArchiveError(f"corrupt tar header at offset {offset}: bad number {field!r}") from None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "strict")


def _parse_pax(payload: bytes, offset: int) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(payload):
        space = payload.find(b" ", pos)
        try:
            length = int(payload[pos:space])
            key, _, value = payload[space + 1 : pos + length - 1].partition(b"=")
            records[key.decode()] = value.decode("utf-8", "strict")
        except (ValueError, UnicodeDecodeError):
            raise ArchiveError(f"corrupt pax header at offset {offset}") from None
        if length <= 0:
            raise ArchiveError(f"corrupt pax header at offset {offset}")
        pos += length
    return records


def _clean_name(name: str) -> str:
    """Return a member name as a safe relative path, or raise :class:`UnsafeArchive`."""
    if name and name[0] not in "/." and "/." not in name and "//" not in name:
        return name.rstrip("/")  # already clean: the common case, written by us
    if name.startswith("/"):
        raise UnsafeArchive(f"archive member {name!r} has an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"archive member {name!r} contains '..'")
    if not parts:
        raise UnsafeArchive(f"archive member {name!r} has an empty path")
    return "/".join(parts)


_REFUSED_TYPES = {
    b"1": "a hardlink",
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a fifo",
    b"7": "a contiguous file",
    b"g": "a global pax header",
    b"L": "a GNU long name",
    b"K": "a GNU long link",
}


def iter_entries(data: bytes | mmap.mmap, *, checked: bool = False) -> Iterator[Entry]:
    """Parse a tree archive and yield its members, refusing anything unsafe.

    Args:
        data: The archive's bytes.
        checked: The caller verified the archive's fingerprint, so the per-header
            checksums (which guard against the same corruption) are skipped.

    Raises:
        ArchiveError: the archive is truncated or a header is corrupt.
        UnsafeArchive: a member is absolute, contains ``..``, is a special file or
            hardlink, is stored twice, lies under a symlink or file, or is a
            symlink that could point outside the tree.
    """
    seen: dict[str, bytes] = {}
    pax: dict[str, str] = {}
    pos = 0
    end = len(data)
    while True:
        if pos + BLOCK > end:
            raise ArchiveError("truncated archive: no end-of-archive marker")
        block = data[pos : pos + BLOCK]
        if block == _ZERO_BLOCK:
            return
        if (
            not checked
            and _octal(block[148:156], pos) != sum(block) - sum(block[148:156]) + _CHKSUM_BLANK
        ):
            raise ArchiveError(f"corrupt tar header at offset {pos}: checksum mismatch")
        if block[257:263] != b"ustar\0":
            raise ArchiveError(f"unsupported tar header at offset {pos}: not POSIX ustar/pax")
        typeflag = block[156:157]
        size = int(pax["size"]) if "size" in pax else _octal(block[124:136], pos)
        data_at = pos + BLOCK
        pos = data_at + size + (-size % BLOCK)
        if pos > end:
            raise ArchiveError(
                f"truncated archive: member at offset {data_at - BLOCK} runs past the end"
            )
        if typeflag == PAX:
            pax = _parse_pax(bytes(data[data_at : data_at + size]), data_at - BLOCK)
            continue
        try:
            name = pax.get("path") or _joined_name(block)
            link = (pax.get("linkpath") or _text(block[157:257])) if typeflag == SYMLINK else ""
        except UnicodeDecodeError:
            raise ArchiveError(
                f"archive member at offset {data_at - BLOCK} has a name that is not UTF-8"
            ) from None
        pax = {}
        if typeflag == b"\0":
            typeflag = FILE
        if typeflag in _REFUSED_TYPES:
            raise UnsafeArchive(f"archive member {name!r} is {_REFUSED_TYPES[typeflag]}")
        if typeflag not in (FILE, DIR, SYMLINK):
            raise UnsafeArchive(f"archive member {name!r} has unsupported type {typeflag!r}")
        path = _clean_name(name)
        _check_parents(path, typeflag, seen)
        if typeflag == SYMLINK:
            check_link(path, link)
        mode = 0o755 if typeflag == DIR or _octal(block[100:108], pos) & 0o100 else 0o644
        yield Entry(path, typeflag, mode, size if typeflag == FILE else 0, data_at, link)


def _joined_name(block: bytes) -> str:
    name = _text(block[0:100])
    return f"{_text(block[345:500])}/{name}" if block[345] else name


def _check_parents(path: str, typeflag: bytes, seen: dict[str, bytes]) -> None:
    """Refuse a member stored twice or lying under a symlink or a file; note its parents."""
    previous = seen.get(path)
    if previous is not None and not (previous == DIR and typeflag == DIR):
        raise UnsafeArchive(f"archive member {path!r} appears more than once")
    parent = path
    while "/" in parent:
        parent = parent.rsplit("/", 1)[0]
        kind = seen.get(parent)
        if kind is None:
            seen[parent] = DIR
        elif kind != DIR:
            raise UnsafeArchive(f"archive member {path!r} lies under non-directory {parent!r}")
        else:
            break
    seen[path] = typeflag


def list_entries(path: str | os.PathLike[str], *, checked: bool = False) -> list[Entry]:
    """Return the members of the tree archive at *path* (validated)."""
    with _mapped(path) as data:
        return list(iter_entries(data, checked=checked))


class _mapped:
    """Context manager: the bytes of a file, memory-mapped when non-empty."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.map: mmap.mmap | None = None

    def __enter__(self) -> bytes | mmap.mmap:
        with open(self.path, "rb") as stream:
            if os.fstat(stream.fileno()).st_size == 0:
                return b""
            self.map = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        return self.map

    def __exit__(self, *exc: object) -> None:
        if self.map is not None:
            # BufferError: a view of the map is still alive in the traceback of an
            # error being raised; the map is unmapped when that view goes
            with contextlib.suppress(BufferError):
                self.map.close()


# ---------------------------------------------------------------------------
# Extracting


def prepare_destination(dest: str | os.PathLike[str]) -> str:
    """Check that *dest* is new or an empty directory; return it as a string.

    Raises:
        InvalidPath: *dest* exists and is not an empty directory.
    """
    dest = os.fspath(dest)
    if os.path.lexists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise InvalidPath(f"destination {dest!r} exists and is not an empty directory")
    return dest


def extract(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    checked: bool = False,
    verify: Callable[[], object] | None = None,
) -> int:
    """Extract the tree archive at *archive* into the new or empty directory *dest*.

    Every member is validated before anything is written, the tree is built in a
    hidden sibling directory and renamed into place, so a refusal or an error
    leaves *dest* as it was.

    Args:
        checked: The archive's fingerprint was verified (see :func:`iter_entries`).
        verify: A check of the archive's fingerprint, run on a second thread while
            the headers are parsed (implies *checked*). Nothing is written unless
            it passes, and its error is the one raised, even if parsing failed too.

    Returns:
        The number of members extracted.

    Raises:
        InvalidPath: *dest* exists and is not an empty directory.
        ArchiveError, UnsafeArchive: see :func:`iter_entries`.
    """
    dest = prepare_destination(dest)
    with _mapped(archive) as data:
        if verify is None:
            entries = list(iter_entries(data, checked=checked))
        else:
            entries = _parse_verifying(data, verify)
        parent = os.path.dirname(os.path.abspath(dest))
        staging = os.path.join(parent, f".{os.path.basename(dest)}.{os.urandom(6).hex()}.tmp")
        try:
            os.makedirs(parent, exist_ok=True)
            os.mkdir(staging)
            _write_entries(data, entries, staging)
            os.rename(staging, dest)
        except OSError as exc:
            _remove_tree(staging)
            raise ArchiveError(f"cannot extract into {dest!r}: {exc.strerror or exc}") from exc
        except BaseException:
            _remove_tree(staging)
            raise
    return len(entries)


def _parse_verifying(data: bytes | mmap.mmap, verify: Callable[[], object]) -> list[Entry]:
    """Parse the archive's headers while *verify* runs on another thread (it hashes
    without the GIL); *verify*'s error comes first."""
    verifying = Beside(verify, "scalems-verify")
    try:
        entries = list(iter_entries(data, checked=True))
    except (ArchiveError, UnsafeArchive):
        verifying.result()  # corrupt bytes explain a bad header: report the corruption
        raise
    finally:
        verifying.wait()
    verifying.result()
    return entries


def _remove_tree(path: str) -> None:
    import shutil  # imported here: shutil pulls in compression modules at import

    shutil.rmtree(path, ignore_errors=True)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _write_entries(data: bytes | mmap.mmap, entries: list[Entry], root: str) -> None:
    """Create directories and symlinks as they come, then write the files."""
    made = {""}
    files = []
    for entry in entries:
        parent = entry.path.rpartition("/")[0]
        if parent not in made:
            os.makedirs(f"{root}/{parent}", exist_ok=True)
            made.add(parent)
        if entry.type == DIR:
            if entry.path not in made:
                os.makedirs(f"{root}/{entry.path}", exist_ok=True)
                made.add(entry.path)
        elif entry.type == SYMLINK:
            os.symlink(entry.linkname, f"{root}/{entry.path}")
        else:
            files.append(entry)
    view = memoryview(data)
    try:
        _write_files(view, files, root)
    finally:
        view.release()


PARALLEL_FILES = 64
"""Fewest files worth a second writing thread."""
BATCH = 1024
"""Files per call of the C loop: between calls, signals are handled and errors seen."""


def _write_files(view: memoryview, files: list[Entry], root: str) -> None:
    """Create and fill *files* under *root*: with the C loop, on two threads when there
    are cores to spare (it runs without the GIL); else with the Python loop."""
    if _speedups is None:
        _write_files_py(view, files, root)
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
    middle = _split_point(files)
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


def _split_point(files: list[Entry]) -> int:
    """Half of *files*, moved to a directory boundary nearby if there is one: two
    threads creating files in one directory queue on its lock."""
    middle = len(files) // 2
    parent = files[middle].path.rpartition("/")[0]
    for step in range(1, len(files) // 4):
        for at in (middle - step, middle + step):
            if files[at].path.rpartition("/")[0] != parent:
                return at + 1 if at < middle else at
    return middle


def _write_files_py(view: memoryview, files: list[Entry], root: str) -> None:
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
                dir_fd = os.open(f"{root}/{parent}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
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
