"""Reading tree archives: parse the headers of a mapped archive and refuse anything unsafe.

A tree archive holds only files, directories, symlinks and the pax headers
that carry their long names, links and sizes (see :mod:`scalems_store.tar.archive`).
Each header is decoded by the rules of :mod:`scalems_store.tar.tarformat`; on top
of those, every member must be a relative path without ``..``, stored once,
not under a symlink or a file, and a symlink must stay inside the tree.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from typing import NamedTuple

from scalems_store.core.errors import ArchiveError, UnsafeArchive
from scalems_store.core.fsutil import open_regular
from scalems_store.tar.tarformat import (
    BLOCK,
    DIR,
    FILE,
    NO_PAX,
    OLD_FILE,
    PAX,
    SYMLINK,
    ZERO_BLOCK,
    Pax,
    check_header,
    check_pax_size,
    corrupt,
    link_name,
    member_name,
    member_size,
    number,
    parse_pax,
    refuse_type,
)

MAX_PATH = 4095
"""Longest member path, in bytes, that can be created under a directory (PATH_MAX - 1)."""


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


_entry_of = tuple.__new__
"""``_entry_of(Entry, fields)``: an Entry made without the keyword handling of ``Entry()``."""


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


def clean_name(name: str) -> str:
    """Return a member name as a safe relative path.

    Raises:
        UnsafeArchive: the name is absolute, contains ``..``, is empty or too long.
    """
    if name and name[0] not in "/." and "/." not in name and "//" not in name:
        path = name.rstrip("/")  # already clean: the common case, written by us
    elif name.startswith("/"):
        raise UnsafeArchive(f"archive member {name!r} has an absolute path")
    else:
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise UnsafeArchive(f"archive member {name!r} contains '..'")
        path = "/".join(parts)
    if not path:
        raise UnsafeArchive(f"archive member {name!r} has an empty path")
    if len(path) > MAX_PATH // 4 and len(path.encode()) > MAX_PATH:
        raise UnsafeArchive(f"archive member {path[:60]!r}... has a path over {MAX_PATH} bytes")
    return path


def iter_entries(data: bytes | mmap.mmap, *, checked: bool = False) -> Iterator[Entry]:
    """Parse a tree archive and yield its members, refusing anything unsafe.

    Every header advances the position by at least one block, so any input
    ends in an entry list or an error.

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
    pax = NO_PAX
    pos = 0
    end = len(data)
    while True:
        if pos + BLOCK > end:
            raise ArchiveError("truncated archive: no end-of-archive marker")
        block = data[pos : pos + BLOCK]
        if block == ZERO_BLOCK:
            if pax is not NO_PAX:
                raise corrupt(pos, "a pax header is followed by the end of the archive")
            return
        check_header(block, pos, not checked)
        size = member_size(block, pax, pos)
        data_at = pos + BLOCK
        pos = data_at + size + (-size % BLOCK)
        if pos > end:
            raise ArchiveError(
                f"truncated archive: member at offset {data_at - BLOCK} runs past the end"
            )
        if block[156:157] == PAX:
            pax = _next_pax(data, data_at, size, pax)
            continue
        yield _entry(block, pax, size, data_at, seen)
        pax = NO_PAX


def _next_pax(data: bytes | mmap.mmap, data_at: int, size: int, pax: Pax) -> Pax:
    """Parse the pax header whose payload starts at *data_at*."""
    if pax is not NO_PAX:
        raise corrupt(data_at - BLOCK, "a pax header follows a pax header")
    check_pax_size(size, data_at - BLOCK)
    return parse_pax(data[data_at : data_at + size], data_at - BLOCK)


def _entry(block: bytes, pax: Pax, size: int, data_at: int, seen: dict[str, bytes]) -> Entry:
    """Return the entry of the member header *block*, or raise if it is not allowed."""
    at = data_at - BLOCK
    typeflag = block[156:157]
    name = member_name(block, pax, at)
    if typeflag == OLD_FILE:
        typeflag = FILE
    elif typeflag != DIR and typeflag != SYMLINK and typeflag != FILE:
        raise refuse_type(name, typeflag)
    if pax.refused:
        raise UnsafeArchive(f"archive member {name!r} is {pax.refused}")
    path = clean_name(name)
    _check_parents(path, typeflag, seen)
    if typeflag == FILE:
        mode = 0o755 if number(block[100:108], at) & 0o100 else 0o644
        return _entry_of(Entry, (path, typeflag, mode, size, data_at, ""))
    if size:
        raise corrupt(at, f"{path!r} is not a file but holds {size} bytes of data")
    if typeflag == DIR:
        return _entry_of(Entry, (path, typeflag, 0o755, 0, data_at, ""))
    link = link_name(block, pax, at)
    check_link(path, link)
    return Entry(path, typeflag, 0o644, 0, data_at, link)


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
    """Return the members of the tree archive at *path* (validated).

    Raises:
        ArchiveError, UnsafeArchive: see :func:`iter_entries`.
    """
    with mapped(path) as data:
        return list(iter_entries(data, checked=checked))


class mapped:
    """Context manager: the bytes of a file, memory-mapped when non-empty."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.map: mmap.mmap | None = None

    def __enter__(self) -> bytes | mmap.mmap:
        with os.fdopen(open_regular(os.fspath(self.path), follow=True), "rb") as stream:
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
