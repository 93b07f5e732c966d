"""The thin form of a tree archive: its bytes with the data of each large file left out.

A tree object is named by the BLAKE3 of its whole archive (:mod:`.archive`); that
never changes. What a store keeps on disk for a tree that holds large files is
this thin form, so that a large file shared by many trees (a 20 MiB input in a
skeleton and in each of 200 output directories) is stored once, as a blob of its
own, named by its own BLAKE3 (its *piece*):

```
\\0scalems-thin-tree 1\\n                      magic and version (one line)
{"pieces":[[offset,length,"<hex>"],...],"size":N,"zeros":Z}\\n   canonical JSON, one line
<literal bytes>                                 the archive without the pieces' data
```

``size`` is the length of the whole archive; each piece is ``length`` bytes of the
archive at ``offset`` (ascending, not overlapping), which are the bytes of blob
``<hex>``; the literal bytes are everything else, in order, but for the last ``zeros``
bytes of the archive, which are zero (its end blocks and padding: ten KiB of every
archive). A whole archive never begins with a NUL byte followed by anything but NUL (its
first header names its first member, or it is all zeros), so the magic tells the two
forms apart. Nothing here does I/O but through the streams it is handed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, BinaryIO, NamedTuple

from scalems_store.core.errors import ArchiveError
from scalems_store.core.fingerprint import CHUNK

if TYPE_CHECKING:  # the rest of the codec is not imported by what only tells the forms apart
    from scalems_store.tar.treeread import Entry

VERSION = 1
MAGIC = b"\0scalems-thin-tree "
"""What a thin tree begins with (then its version and a newline)."""
HEAD = MAGIC + b"%d\n" % VERSION
THRESHOLD = 64 << 10
"""A file of at least this many bytes is a piece of its own (smaller ones stay inline: a
piece costs a header entry of about 90 bytes and a file of the store)."""
MAX_HEADER = 256 << 20
"""Longest header line read (about 2.5 million pieces)."""
MAX_ZEROS = THRESHOLD + (32 << 10)
"""Most zero bytes a thin tree may say end its archive. What follows the last piece of an
archive is at most a file kept inline (less than :data:`THRESHOLD` bytes), its padding,
the end blocks and the padding of the last record (10 KiB); a header claiming more is
refused, so that a few bytes from a peer cannot make a reader write terabytes of zeros."""


class Piece(NamedTuple):
    """``length`` bytes of the archive at ``offset``: the bytes of blob ``fp``."""

    offset: int
    length: int
    fp: str


class Header(NamedTuple):
    """What a thin tree's header says."""

    size: int
    """Length of the whole archive."""
    pieces: tuple[Piece, ...]
    zeros: int
    """Zero bytes that end the archive, not stored."""
    start: int
    """Where the literal bytes start in the thin file."""

    @property
    def literal(self) -> int:
        """How many literal bytes the thin file holds after its header."""
        return self.size - self.zeros - sum(piece.length for piece in self.pieces)


def is_thin(head: bytes) -> bool:
    """Whether bytes beginning so are a thin tree (of any version)."""
    return head.startswith(MAGIC)


def large_files(entries: Iterable[Entry], threshold: int | None = None) -> list[Entry]:
    """The members of an archive to store as pieces: regular files of *threshold* bytes
    (:data:`THRESHOLD` when None) or more, in archive order."""
    from scalems_store.tar.tarformat import FILE

    least = THRESHOLD if threshold is None else threshold
    return [entry for entry in entries if entry.type == FILE and entry.size >= least]


def encode_header(size: int, pieces: Iterable[Piece], zeros: int) -> bytes:
    """The header of a thin tree (magic, version and the JSON line)."""
    listed = [[piece.offset, piece.length, piece.fp] for piece in pieces]
    line = json.dumps(
        {"pieces": listed, "size": size, "zeros": zeros}, sort_keys=True, separators=(",", ":")
    )
    return HEAD + line.encode() + b"\n"


def trailing_zeros(data: bytes | memoryview, after: int) -> int:
    """How many zero bytes end *data* (the whole archive), counting none before *after*
    (the end of its last piece)."""
    view = memoryview(data)
    end = len(view)
    step = 4096
    while end > after:
        start = max(after, end - step)
        chunk = bytes(view[start:end])
        stripped = chunk.rstrip(b"\0")
        if stripped:
            return len(view) - (start + len(stripped))
        end = start
    return len(view) - after


def literal_chunks(data: bytes | memoryview, header: Header) -> Iterator[bytes | memoryview]:
    """The literal bytes of the thin form of the archive *data* (whole) under *header*."""
    view = memoryview(data)
    at = 0
    for piece in header.pieces:
        if piece.offset > at:
            yield view[at : piece.offset]
        at = piece.offset + piece.length
    end = header.size - header.zeros
    if end > at:
        yield view[at:end]


def read_header(stream: BinaryIO, what: str) -> Header:
    """Read and check the header of a thin tree from *stream* (at its start), leaving the
    stream at its literal bytes.

    Raises:
        ArchiveError: not a thin tree of a version this code reads, or a header that
            is malformed or does not add up.
    """
    first = stream.readline(len(HEAD) + 8)
    if not first.startswith(MAGIC):
        raise ArchiveError(f"{what} is not a thin tree")
    if first != HEAD:
        version = first[len(MAGIC) :].strip().decode("ascii", "replace")
        raise ArchiveError(
            f"{what} is a thin tree of version {version!r}; this version of scalems-store "
            f"reads version {VERSION} (upgrade it)"
        )
    line = stream.readline(MAX_HEADER)
    if not line.endswith(b"\n"):
        raise ArchiveError(f"{what}: thin tree header is cut short")
    return parse_header(line, len(first) + len(line), what)


def parse_header(line: bytes, start: int, what: str) -> Header:
    """Check the JSON line of a thin tree header; *start*: where its literal bytes begin."""
    try:
        value = json.loads(line)
        size, zeros, listed = value["size"], value["zeros"], value["pieces"]
        if set(value) != {"pieces", "size", "zeros"}:
            raise ValueError("unexpected fields")
        pieces = tuple(Piece(*_piece(item)) for item in listed)
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"{what}: malformed thin tree header ({exc})") from None
    if not all(type(n) is int and n >= 0 for n in (size, zeros)):  # not a bool either
        raise ArchiveError(f"{what}: malformed thin tree header (sizes)")
    if zeros > MAX_ZEROS:
        raise ArchiveError(
            f"{what}: thin tree header says its archive ends in {zeros} zero bytes "
            f"(at most {MAX_ZEROS})"
        )
    at = 0
    for piece in pieces:
        if piece.offset < at or piece.length <= 0:
            raise ArchiveError(f"{what}: thin tree pieces overlap or are out of order")
        at = piece.offset + piece.length
    if at + zeros > size:
        raise ArchiveError(f"{what}: thin tree pieces run past the archive's end")
    return Header(size, pieces, zeros, start)


def _piece(item: object) -> tuple[int, int, str]:
    if not isinstance(item, list) or len(item) != 3:
        raise ValueError("a piece is [offset, length, fingerprint]")
    offset, length, fp = item
    if not (type(offset) is int and type(length) is int and isinstance(fp, str)):
        raise ValueError("a piece is [offset, length, fingerprint]")
    if offset < 0 or len(fp) != 64 or fp.strip("0123456789abcdef"):
        raise ValueError(f"bad piece {str(item)[:90]}")
    return offset, length, fp


def expand(
    stream: IO[bytes], header: Header, open_piece: Callable[[str], IO[bytes]], what: str
) -> Iterator[bytes]:
    """The whole archive, in chunks: the literal bytes of *stream* (standing at them) with
    each piece's bytes (``open_piece(fp)``) put back, then the zeros.

    Raises:
        ArchiveError: the literal bytes or a piece are shorter or longer than the header
            says (the caller's fingerprint check finds any other damage).
    """
    at = 0
    for piece in header.pieces:
        yield from _exactly(stream, piece.offset - at, what)
        with open_piece(piece.fp) as source:
            yield from _exactly(source, piece.length, f"piece {piece.fp} of {what}")
            if source.read(1):
                raise ArchiveError(f"piece {piece.fp} of {what} is longer than its place")
        at = piece.offset + piece.length
    yield from _exactly(stream, header.size - header.zeros - at, what)
    if stream.read(1):
        raise ArchiveError(f"{what}: thin tree has bytes after its end")
    left = header.zeros
    while left:
        step = min(left, CHUNK)
        yield bytes(step)
        left -= step


def literal_run(stream: IO[bytes], size: int, what: str) -> Iterator[bytes]:
    """The next *size* literal bytes of a thin tree's *stream*, in chunks.

    Raises:
        ArchiveError: it ends first.
    """
    return _exactly(stream, size, what)


def _exactly(stream: IO[bytes], size: int, what: str) -> Iterator[bytes]:
    while size > 0:
        chunk = stream.read(min(size, CHUNK))
        if not chunk:
            raise ArchiveError(f"{what} is cut short")
        size -= len(chunk)
        yield chunk
