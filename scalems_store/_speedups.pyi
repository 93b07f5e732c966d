"""Types of the optional C speed-up (see _speedups.c)."""

from collections.abc import Sequence

from typing_extensions import Buffer

from .treeread import Entry

def write_files(root: bytes, data: Buffer, entries: Sequence[Entry], /) -> None: ...
def read_files(paths: Sequence[str], limit: int, /) -> list[tuple[bytes, int] | None]: ...
def scan_objects(
    top: str, sizes: bool, /
) -> tuple[list[tuple[str, int, float]], list[tuple[str, str]]]: ...
def syncfs(fd: int, /) -> None: ...
