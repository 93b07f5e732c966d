"""Moving bytes into the store: the kernel copy of a file and the chunked read of a stream."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING

from .errors import InvalidPath
from .fingerprint import CHUNK

if TYPE_CHECKING:
    import threading

Progress = Callable[[int], None]
"""Called with the number of bytes (or objects) done so far."""

COPY_STEP = 64 << 20
"""Bytes per ``copy_file_range`` call: small enough to report progress and stop early."""


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
