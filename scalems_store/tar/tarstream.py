"""A strict streaming tar reader, for bundles read from a pipe or a file.

It reads what ``tarfile.open(fileobj=..., mode="w|", format=tarfile.PAX_FORMAT)``
writes for regular files, and nothing else: members are regular files, with a
pax ``x`` header where a name or a size needs one. Links, directories,
devices, sparse files (GNU ``S`` members or ``GNU.sparse.*`` records), global
headers and GNU long names are refused, as is any header that breaks a rule
of :mod:`scalems_store.tar.tarformat`. A member's data is never buffered whole:
the caller reads it in chunks, and what it leaves unread is skipped.

Member names are returned as they are, checked only to be UTF-8 without NUL:
a caller that makes paths of them must check them itself.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

from scalems_store.core.errors import ArchiveError, UnsafeArchive
from scalems_store.tar.tarformat import (
    BLOCK,
    FILE,
    NO_PAX,
    OLD_FILE,
    PADDING,
    PAX,
    ZERO_BLOCK,
    Pax,
    check_header,
    check_pax_size,
    corrupt,
    member_name,
    member_size,
    parse_pax,
    refuse_type,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

SKIP_CHUNK = 1 << 20
"""Bytes per read when skipping what the caller left of a member."""


class Readable(Protocol):
    """A binary stream, read forward (a file, a pipe, ``sys.stdin.buffer``, a socket file)."""

    def read(self, size: int = ..., /) -> bytes | None: ...


class Member(NamedTuple):
    """One regular file of a tar stream."""

    name: str
    """The member's name, as stored (UTF-8, no NUL; not checked as a path)."""
    size: int
    """The number of bytes of its data."""


class _Source:
    """The stream, read exactly, with the count of bytes consumed."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.offset = 0

    def read_some(self, size: int) -> bytes:
        """Read 1 to *size* bytes (b"" only at the end of the stream)."""
        chunk = self.stream.read(size) or b""
        self.offset += len(chunk)
        return chunk

    def read_exact(self, size: int, what: str) -> bytes:
        """Read exactly *size* bytes.

        Raises:
            ArchiveError: the stream ends first ("truncated archive: <what> ...").
        """
        chunks = []
        left = size
        while left:
            chunk = self.read_some(left)
            if not chunk:
                raise ArchiveError(f"truncated archive: {what} ends at offset {self.offset}")
            chunks.append(chunk)
            left -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class MemberData(io.RawIOBase):
    """The data of one member: ``read(n)`` gives at most *n* of its bytes, then b"".

    Reading raises :class:`ArchiveError` if the stream ends before the member
    does. Once the reader has moved on to the next member, this is closed.
    """

    def __init__(self, source: _Source, member: Member) -> None:
        super().__init__()
        self._source = source
        self._member = member
        self.left = member.size
        """Bytes of the member not read yet."""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Return up to *size* bytes of the member (all that is left when *size* < 0).

        Raises:
            ArchiveError: the stream ends before the member does.
            ValueError: the reader has moved on to the next member.
        """
        if self.closed:
            raise ValueError("read of a tar member after the reader moved on")
        if size is None or size < 0:
            chunks = []
            while self.left:
                chunks.append(self._take(self.left))
            return b"".join(chunks)
        return self._take(size)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def _take(self, size: int) -> bytes:
        if not self.left or not size:
            return b""
        chunk = self._source.read_some(min(size, self.left))
        if not chunk:
            raise ArchiveError(f"truncated archive: {self._truncated()} at the end of the stream")
        self.left -= len(chunk)
        return chunk

    def _truncated(self) -> str:
        done = self._member.size - self.left
        return f"member {self._member.name!r} (read {done} of {self._member.size} bytes)"

    def finish(self) -> None:
        """Skip what is left of the member and its padding, then close.

        Raises:
            ArchiveError: the stream ends first.
        """
        while self.left:
            self._take(SKIP_CHUNK)
        size = self._member.size
        self._source.read_exact(len(PADDING[size % BLOCK]), f"padding of {self._member.name!r}")
        self.close()


def read_members(stream: Readable) -> Iterator[tuple[Member, MemberData]]:
    """Yield each regular file of the tar archive read from *stream*, with its data.

    The stream is read forward only (a pipe will do). Before the next member is
    yielded, whatever the caller did not read of the last one is skipped. The
    archive ends with a zero block, which must be followed by nothing but zeros
    (read to the end of the stream).

    Args:
        stream: A blocking binary stream positioned at the start of the archive
            (its ``read(n)`` returns 1 to *n* bytes, or b"" at its end).

    Raises:
        ArchiveError: the stream ends without an end-of-archive marker or inside
            a member, a header is corrupt (checksum, magic, a negative or
            malformed number, a bad pax record, a name that is not UTF-8 or
            has NUL).
        UnsafeArchive: a member is not a regular file (a link, a directory, a
            device, a sparse file, a global header, a GNU long name), or has a
            pax record that is not a path, a size or harmless metadata.
    """
    source = _Source(stream)
    pax = NO_PAX
    while True:
        at = source.offset
        block = source.read_exact(BLOCK, "the archive has no end-of-archive marker and")
        if block == ZERO_BLOCK:
            _check_end(source, pax, at)
            return
        check_header(block, at)
        size = member_size(block, pax, at)
        if block[156:157] == PAX:
            pax = _next_pax(source, size, pax, at)
            continue
        member = _member(block, size, pax, at)
        pax = NO_PAX
        data = MemberData(source, member)
        yield member, data
        data.finish()


def _next_pax(source: _Source, size: int, pax: Pax, at: int) -> Pax:
    """Read and parse the payload of the pax header at offset *at*."""
    if pax is not NO_PAX:
        raise corrupt(at, "a pax header follows a pax header")
    check_pax_size(size, at)
    payload = source.read_exact(size + len(PADDING[size % BLOCK]), "a pax header")
    return parse_pax(payload[:size], at)


def _member(block: bytes, size: int, pax: Pax, at: int) -> Member:
    """Return the member of header *block*, or raise if it is not a plain regular file."""
    name = member_name(block, pax, at)
    typeflag = block[156:157]
    if typeflag != FILE and typeflag != OLD_FILE:
        raise refuse_type(name, typeflag)
    if pax.refused:
        raise UnsafeArchive(f"archive member {name!r} is {pax.refused}")
    if pax.linkpath is not None or block[157] != 0:
        raise UnsafeArchive(f"archive member {name!r} is a regular file with a link target")
    if not name:
        raise corrupt(at, "a member has an empty name")
    return Member(name, size)


def _check_end(source: _Source, pax: Pax, at: int) -> None:
    """Check what follows the first zero block: nothing but zeros to the end of the stream
    (the second zero block, and the padding of a record, as tar writes them)."""
    if pax is not NO_PAX:
        raise corrupt(at, "a pax header is followed by the end of the archive")
    offset = at + BLOCK
    while chunk := source.read_some(1 << 16):
        if chunk.strip(b"\0"):
            raise corrupt(offset, "data after the end-of-archive marker")
        offset += len(chunk)
