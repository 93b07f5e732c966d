"""The tar header codec shared by tree archives and bundles (pure: no I/O).

Encoding writes ustar headers, and pax ``x`` headers where ustar is too small,
byte for byte as :mod:`tarfile` writes ``PAX_FORMAT`` for the normalized
entries of a tree (mtime 0, uid/gid 0, empty user and group names).

Decoding holds the one implementation of each rule that the readers
(:mod:`scalems_store.tar.treeread` over a mapped file, :mod:`scalems_store.tar.tarstream`
over a stream) apply to a header: checksum and magic, numbers (octal or
base-256, never negative), pax records (lengths, keys, values), member names
and sizes. Every rule fails with :class:`ArchiveError`; none trusts a value
without a bound, so a reader always makes progress or stops.
"""

from __future__ import annotations

from typing import NamedTuple

from scalems_store.core.errors import ArchiveError, UnsafeArchive

BLOCK = 512
RECORD = 20 * BLOCK
MAX_USTAR_SIZE = 8**11
"""Smallest size that needs a pax ``size`` record (11 octal digits hold less)."""
MAX_PAX_SIZE = 1 << 20
"""Largest pax header payload a reader accepts (ours hold a path, a link and a size)."""

FILE, DIR, SYMLINK, PAX = b"0", b"5", b"2", b"x"
OLD_FILE = b"\0"
"""Type flag of a regular file in pre-POSIX archives."""

ZERO_BLOCK = bytes(BLOCK)
PADDING = [bytes(-n % BLOCK) for n in range(BLOCK)]
"""``PADDING[n % BLOCK]``: the zeros that follow *n* bytes of member data."""

_MODES = {0: b"0000000\0", 0o644: b"0000644\0", 0o755: b"0000755\0"}
_ZERO8 = b"0000000\0"
_MTIME0 = b"00000000000\0"
# devmajor/devminor are NUL for non-device members, as tarfile writes them since 3.11.4
_TAIL = b"ustar\x0000" + bytes(64) + bytes(16) + bytes(155)
_PAD12 = bytes(12)
_CHKSUM_BLANK = 8 * 0x20
_MAGIC = b"ustar\0"
_PAX_NAME = b"././@PaxHeader"
_MODE_SUMS = {mode: sum(field) for mode, field in _MODES.items()}
# every byte of a header but the name, mode, size, type and link is fixed: sum those once
_FIXED_SUM = 2 * sum(_ZERO8) + sum(_MTIME0) + sum(_TAIL) + _CHKSUM_BLANK


# ---------------------------------------------------------------------------
# Encoding


def header(name: bytes, mode: int, size: int, typeflag: bytes, link: bytes = b"") -> bytes:
    """Return one 512-byte ustar header with the normalized fields.

    Args:
        name: The member name, at most 100 bytes.
        mode: 0, 0o644 or 0o755.
        size: The data size, below :data:`MAX_USTAR_SIZE`.
        typeflag: One byte.
        link: The link target, at most 100 bytes.
    """
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


def pax_records(records: list[tuple[bytes, bytes]]) -> bytes:
    """Encode pax records ``"<len> <key>=<value>\\n"``, where len counts itself."""
    out = []
    for key, value in records:
        length = len(key) + len(value) + 3
        total = length + len(str(length))
        total = length + len(str(total))
        out.append(b"%d %s=%s\n" % (total, key, value))
    return b"".join(out)


def padded(data: bytes) -> bytes:
    """Return *data* followed by the zeros that fill its last block."""
    return data + PADDING[len(data) % BLOCK]


def _fits_ustar(text: str, limit: int) -> bool:
    return len(text) <= limit and text.isascii()


def entry_header(name: str, mode: int, size: int, typeflag: bytes, link: str = "") -> bytes:
    """Return the header block(s) of one entry, with a pax header where ustar is too small.

    Args:
        name: The member name (a directory's ends with ``/``).
        mode: 0o644 or 0o755.
        size: The data size, any size.
        typeflag: :data:`FILE`, :data:`DIR` or :data:`SYMLINK`.
        link: A symlink's target.

    Returns:
        One ustar block, or a pax header, its records and a ustar block.
    """
    records = []
    if not _fits_ustar(name, 100):
        records.append((b"path", name.encode()))
    if not _fits_ustar(link, 100):
        records.append((b"linkpath", link.encode()))
    if size >= MAX_USTAR_SIZE:
        records.append((b"size", b"%d" % size))
    block = header(
        name.encode("ascii", "replace")[:100],
        mode,
        0 if size >= MAX_USTAR_SIZE else size,
        typeflag,
        link.encode("ascii", "replace")[:100],
    )
    if not records:
        return block
    payload = pax_records(records)
    return header(_PAX_NAME, 0, len(payload), PAX) + padded(payload) + block


# ---------------------------------------------------------------------------
# Decoding


def corrupt(offset: int, why: str) -> ArchiveError:
    """Return the error for a header at *offset* that breaks a rule."""
    return ArchiveError(f"corrupt tar header at offset {offset}: {why}")


def number(field: bytes, offset: int) -> int:
    """Decode a numeric header field: octal digits, or GNU base-256.

    Octal digits may be led by spaces and ended by spaces or NULs (an empty
    field is 0). Base-256 is a first byte 0x80 and a big-endian number.

    Raises:
        ArchiveError: not a number, or a negative one.
    """
    digits = field.rstrip(b"\0 ")
    if digits.isdigit():  # the common case: plain digits (int() refuses 8 and 9)
        try:
            return int(digits, 8)
        except ValueError:
            pass
    return _unusual_number(field, offset)


def _unusual_number(field: bytes, offset: int) -> int:
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    if field[:1] == b"\xff":
        raise corrupt(offset, f"negative number {field!r}")
    digits = field.split(b"\0", 1)[0].strip(b" ")
    if digits.translate(None, b"01234567"):
        raise corrupt(offset, f"bad number {field!r}")
    return int(digits or b"0", 8)


def check_header(block: bytes, offset: int, checksum: bool = True) -> None:
    """Refuse a header block with a wrong checksum (when *checksum*) or no POSIX magic.

    Raises:
        ArchiveError: the checksum does not match, or the block is not ustar/pax.
    """
    if checksum:
        field = block[148:156]
        if number(field, offset) != sum(block) - sum(field) + _CHKSUM_BLANK:
            raise corrupt(offset, "checksum mismatch")
    if block[257:263] != _MAGIC:
        raise ArchiveError(f"unsupported tar header at offset {offset}: not POSIX ustar/pax")


_TYPES = {
    FILE: "a regular file",
    OLD_FILE: "a regular file",
    b"1": "a hardlink",
    SYMLINK: "a symlink",
    b"3": "a character device",
    b"4": "a block device",
    DIR: "a directory",
    b"6": "a fifo",
    b"7": "a contiguous file",
    PAX: "a pax header",
    b"g": "a global pax header",
    b"L": "a GNU long name",
    b"K": "a GNU long link",
    b"S": "a GNU sparse file",
}


def describe_type(typeflag: bytes) -> str:
    """Return what a member of type *typeflag* is, for an error message."""
    return _TYPES.get(typeflag) or f"of unsupported type {typeflag!r}"


def refuse_type(name: str, typeflag: bytes) -> UnsafeArchive:
    """Return the error for member *name*, whose type the reader does not take."""
    return UnsafeArchive(f"archive member {name!r} is {describe_type(typeflag)}")


def member_size(block: bytes, pax: Pax, offset: int) -> int:
    """Return the data size of the member of header *block*: the pax size, or the ustar one.

    Raises:
        ArchiveError: the ustar size field is not a number (a pax size was checked
            by :func:`parse_pax`); the size is never negative.
    """
    if pax.size is not None:
        return pax.size
    return number(block[124:136], offset)


def member_name(block: bytes, pax: Pax, offset: int) -> str:
    """Return the name of the member of header *block*: the pax path, or prefix/name.

    Raises:
        ArchiveError: the name is not UTF-8.
    """
    if pax.path:
        return pax.path
    try:
        name = block[0:100].split(b"\0", 1)[0].decode()
        if block[345]:
            return block[345:500].split(b"\0", 1)[0].decode() + "/" + name
    except UnicodeDecodeError:
        raise ArchiveError(
            f"archive member at offset {offset} has a name that is not UTF-8"
        ) from None
    return name


def link_name(block: bytes, pax: Pax, offset: int) -> str:
    """Return the link target of the member of header *block*: the pax linkpath, or ustar's.

    Raises:
        ArchiveError: the target is not UTF-8.
    """
    if pax.linkpath:
        return pax.linkpath
    try:
        return block[157:257].split(b"\0", 1)[0].decode()
    except UnicodeDecodeError:
        raise ArchiveError(
            f"archive member at offset {offset} has a link target that is not UTF-8"
        ) from None


# -- pax records --------------------------------------------------------------


class Pax(NamedTuple):
    """What a pax ``x`` header says about the member that follows it."""

    path: str = ""
    """The member's name; empty when the header does not set it."""
    linkpath: str | None = None
    """The link target; None when the header has no ``linkpath`` record."""
    size: int | None = None
    """The data size; None when the header has no ``size`` record."""
    refused: str = ""
    """Why the member cannot be read (a sparse file, an unknown record); empty if it can."""


NO_PAX = Pax()
"""The records in force when no pax header precedes a member."""

_IGNORED_KEYS = frozenset(
    (b"mtime", b"atime", b"ctime", b"uid", b"gid", b"uname", b"gname", b"comment")
)
"""Metadata records tarfile and GNU tar may write, which neither reader uses."""
_MAX_DIGITS = 20
"""Digits of a pax record length or size: more than any real archive needs."""


def check_pax_size(size: int, offset: int) -> None:
    """Refuse a pax header at *offset* whose payload of *size* bytes is too large to read.

    Raises:
        ArchiveError: *size* is over :data:`MAX_PAX_SIZE`.
    """
    if size > MAX_PAX_SIZE:
        raise corrupt(offset, f"pax header of {size} bytes (at most {MAX_PAX_SIZE})")


def parse_pax(payload: bytes, offset: int) -> Pax:
    """Decode the records of the pax header at *offset*.

    Every byte must belong to a record ``"<len> <key>=<value>\\n"``; a key may
    appear once. ``path`` and ``linkpath`` must be UTF-8 without NUL, ``size``
    decimal digits. GNU sparse records and unknown keys do not fail here: they
    make :attr:`Pax.refused` say why the member cannot be read, so that the
    reader can name it.

    Raises:
        ArchiveError: a record is malformed, repeated, or has a bad value.
    """
    fields: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(payload):
        key, value, pos = _pax_record(payload, pos, offset)
        if key in fields:
            raise corrupt(offset, f"pax record {key!r} appears twice")
        fields[key] = value
    refused = ""
    for key in fields:
        if key.startswith(b"GNU.sparse."):
            refused = f"a sparse file (pax record {key!r})"
        elif key not in _IGNORED_KEYS and key not in (b"path", b"linkpath", b"size"):
            refused = refused or f"described by an unsupported pax record {key!r}"
    link = fields.get(b"linkpath")
    return Pax(
        _pax_text(fields.get(b"path", b""), "path", offset),
        None if link is None else _pax_text(link, "linkpath", offset),
        _pax_size(fields.get(b"size"), offset),
        refused,
    )


def _pax_record(payload: bytes, pos: int, offset: int) -> tuple[bytes, bytes, int]:
    """Return ``(key, value, end)`` of the record at *pos* of *payload*."""
    space = payload.find(b" ", pos, pos + _MAX_DIGITS + 1)
    digits = payload[pos:space] if space > pos else b""
    if not digits.isdigit():
        raise corrupt(offset, f"pax record at {pos} has no valid length")
    end = pos + int(digits)
    if end - 1 <= space or end > len(payload) or payload[end - 1] != 0x0A:
        raise corrupt(offset, f"pax record at {pos} has a bad length {int(digits)}")
    key, equals, value = payload[space + 1 : end - 1].partition(b"=")
    if not equals or not key:
        raise corrupt(offset, f"pax record at {pos} is not key=value")
    return key, value, end


def _pax_text(value: bytes, key: str, offset: int) -> str:
    try:
        text = value.decode()
    except UnicodeDecodeError:
        raise corrupt(offset, f"pax {key} is not UTF-8") from None
    if "\0" in text:
        raise corrupt(offset, f"pax {key} {text!r} contains a NUL byte")
    return text


def _pax_size(value: bytes | None, offset: int) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > _MAX_DIGITS:
        raise corrupt(offset, f"pax size {value[:40]!r} is not a size")
    return int(value)
