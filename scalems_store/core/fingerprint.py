"""BLAKE3-256 fingerprints of bytes, files and streams.

An object's name is the BLAKE3-256 of its exact bytes as 64 lowercase hex
digits, so anyone can check an object with ``b3sum``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from blake3 import blake3

from scalems_store.core.fsutil import read_regular

# Below this size a file is read whole: threads and mmap cost more than they save.
MMAP_THRESHOLD = 4 << 20
CHUNK = 8 << 20


def new_hasher(size_hint: int = 0, *, leave_cores: int = 0) -> blake3:
    """Return a BLAKE3 hasher, multithreaded when the input is large: on every core,
    or on all but *leave_cores* kept free for work running alongside (a copy)."""
    if size_hint < MMAP_THRESHOLD:
        return blake3()
    if not leave_cores:
        return blake3(max_threads=blake3.AUTO)
    threads = usable_cores() - leave_cores
    return blake3(max_threads=threads) if threads > 1 else blake3()


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """Return the fingerprint of *data*."""
    return new_hasher(len(data)).update(data).hexdigest()


def hash_chunks(chunks: Iterable[bytes]) -> str:
    """Return the fingerprint of the concatenation of *chunks*."""
    hasher = blake3()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest()


def hash_file(
    path: str | os.PathLike[str], size: int | None = None, *, leave_cores: int = 0
) -> str:
    """Return the fingerprint of the file at *path*.

    Large files are hashed through ``mmap`` on all cores, as ``b3sum`` does,
    less *leave_cores* kept free for work running alongside (a copy).
    """
    if size is None:
        size = os.stat(path).st_size
    if size >= MMAP_THRESHOLD:
        hasher = new_hasher(size, leave_cores=leave_cores)
        hasher.update_mmap(os.fspath(path))
        return hasher.hexdigest()
    return hash_bytes(read_regular(os.fspath(path), follow=True))  # a FIFO must not block


def usable_cores() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
