"""Hand-made tar blocks, for archives no well-behaved writer would produce, and a
deadline to parse them in."""

from __future__ import annotations

import contextlib
import faulthandler
import signal
from collections.abc import Iterator
from types import FrameType

BLOCK = 512
END = bytes(2 * BLOCK)


def octal(value: int, width: int) -> bytes:
    """A numeric field of *width* bytes: octal digits and a NUL."""
    return b"%0*o\0" % (width - 1, value)


def header(
    name: bytes = b"f",
    *,
    size: int | bytes = 0,
    typeflag: bytes = b"0",
    mode: bytes = b"0000644\0",
    link: bytes = b"",
    prefix: bytes = b"",
    magic: bytes = b"ustar\x0000",
    checksum: int | None = None,
) -> bytes:
    """One 512-byte header; *size* is a number or the raw 12-byte field; the checksum is
    computed unless given."""
    size_field = octal(size, 12) if isinstance(size, int) else size.ljust(12, b"\0")[:12]
    fields = [
        name.ljust(100, b"\0")[:100],
        mode.ljust(8, b"\0")[:8],
        octal(0, 8),
        octal(0, 8),
        size_field,
        octal(0, 12),
        b" " * 8,
        typeflag,
        link.ljust(100, b"\0")[:100],
        magic.ljust(8, b"\0")[:8],
        bytes(64),
        bytes(16),
        prefix.ljust(155, b"\0")[:155],
        bytes(12),
    ]
    block = b"".join(fields)
    assert len(block) == BLOCK
    total = sum(block) if checksum is None else checksum
    return block[:148] + b"%06o\0 " % total + block[156:]


def record(key: bytes, value: bytes) -> bytes:
    """One well-formed pax record ``"<len> key=value\\n"``."""
    body = b" %s=%s\n" % (key, value)
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length += 1
    return b"%d%s" % (length, body)


def padded(data: bytes) -> bytes:
    """*data* followed by zeros up to a whole block."""
    return data + bytes(-len(data) % BLOCK)


def finish(data: bytes) -> bytes:
    """*data* followed by the end of the archive, two zero blocks, padded to 10240 bytes
    as tarfile does."""
    data += END
    return data + bytes(-len(data) % (20 * BLOCK))


def pax(payload: bytes, *, size: int | bytes | None = None, typeflag: bytes = b"x") -> bytes:
    """A pax header block (its size the payload's unless given) and its padded payload."""
    declared = len(payload) if size is None else size
    return header(b"././@PaxHeader", size=declared, typeflag=typeflag, mode=b"0000000\0") + (
        padded(payload)
    )


def member(name: bytes, data: bytes = b"", typeflag: bytes = b"0") -> bytes:
    """A member with data (a regular file unless *typeflag* says otherwise): header and
    padded data."""
    return header(name, size=len(data), typeflag=typeflag) + padded(data)


class Overrun(AssertionError):
    """The code under test ran past its deadline: it hangs."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail with :class:`Overrun` if the block runs longer than *seconds*.

    A SIGALRM interrupts Python code; a hang outside it (in C, holding the GIL)
    ends the whole run with a traceback a little later.
    """

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Overrun(f"still running after {seconds} s: the parser does not make progress")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(seconds * 3 + 10, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)
