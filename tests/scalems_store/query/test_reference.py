"""FileReference and get_file_reference, as in SCALE-MS."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import scalems_store
from scalems_store import (
    FileReference,
    FileStore,
    InvalidFingerprint,
    ObjectNotFound,
    get_file_reference,
)


def test_path_adds_file_idempotently(store: FileStore, tmp_path: Path) -> None:
    """A Path is added (twice is fine) and the reference opens like a file."""
    path = tmp_path / "input.txt"
    path.write_bytes(b"data")
    ref = asyncio.run(get_file_reference(path, filestore=store))
    again = asyncio.run(get_file_reference(path, filestore=store))
    assert isinstance(ref, FileReference) and isinstance(ref, os.PathLike)
    assert ref == again and ref.key() == scalems_store.hash_bytes(b"data")
    with open(ref, "rb") as stream:
        assert stream.read() == b"data"
    assert ref.as_uri().startswith("file://") and ref.as_uri().endswith(ref.key()[2:])
    assert ref.is_local() and ref.filestore() is store
    assert asyncio.run(ref.localize()) is ref
    assert asyncio.run(ref.aread()) == b"data"


def test_str_and_bytes_look_up(store: FileStore) -> None:
    """A str is a fingerprint or prefix; bytes are a raw 32-byte digest."""
    fp = store.add_bytes(b"x")
    assert asyncio.run(get_file_reference(fp[:8], filestore=store)).key() == fp
    assert asyncio.run(get_file_reference(bytes.fromhex(fp), filestore=store)).key() == fp
    with pytest.raises(ObjectNotFound):
        asyncio.run(get_file_reference("0000" * 16, filestore=store))
    with pytest.raises(InvalidFingerprint):
        asyncio.run(get_file_reference(b"short", filestore=store))
    with pytest.raises(TypeError):
        asyncio.run(get_file_reference(42, filestore=store))


def test_all_is_complete() -> None:
    """Every public name is in __all__ and importable."""
    public = {name for name in dir(scalems_store) if not name.startswith("_")}
    assert public <= set(scalems_store.__all__) | {
        "annotations",
        "importlib",
        "TYPE_CHECKING",
        "Any",
    }
    for name in scalems_store.__all__:
        assert getattr(scalems_store, name) is not None
