"""Types of the optional C speed-up (see _speedups.c)."""

from collections.abc import Sequence

from typing_extensions import Buffer

from .treeread import Entry

def write_files(root: bytes, data: Buffer, entries: Sequence[Entry], /) -> None: ...
def read_files(paths: Sequence[str], limit: int, /) -> list[tuple[bytes, int] | None]: ...
