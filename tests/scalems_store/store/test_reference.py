"""FileReference, get_file_reference and FileStoreManager, as in SCALE-MS."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import scalems_store
from scalems_store import (
    FileReference,
    FileStore,
    FileStoreManager,
    InvalidFingerprint,
    InvalidPath,
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


def test_filestore_method_takes_every_form(store: FileStore, tmp_path: Path) -> None:
    """FileStore.get_file_reference (and its sync twin) take a path, a prefix, a label, a
    URI and bytes; each reference is of this store and names the same object."""
    path = tmp_path / "results.csv"
    path.write_bytes(b"step,energy\n0,-1.5\n")
    ref = asyncio.run(store.get_file_reference(path))
    fp = ref.key()
    assert fp == scalems_store.hash_file(path) and fp in store
    store.set_label("latest", fp)
    forms = [path, str(fp[:6]), "latest", f"blake3:{fp}", fp, bytes.fromhex(fp)]
    for form in forms:
        for got in (asyncio.run(store.get_file_reference(form)), store.file_reference(form)):
            assert got == ref and got.key() == fp, form
            assert got.filestore() is store
            assert got.as_uri() == Path(store.object_path(fp)).as_uri()
            assert asyncio.run(got.localize()) is got
            assert Path(got).read_bytes() == path.read_bytes()


def test_method_and_function_share_one_dispatcher(store: FileStore) -> None:
    """A type registered on scalems_store.get_file_reference (as SCALE-MS allows) is taken by
    FileStore.get_file_reference too: the method is the same implementation."""

    class Named:
        def __init__(self, text: str) -> None:
            self.text = text

    @get_file_reference.register(Named)
    async def _(obj: Named, filestore: FileStore | None = None, mode: str = "rb") -> FileReference:
        assert filestore is not None
        return await filestore.get_file_reference(obj.text, mode=mode)

    fp = store.add_bytes(b"named")
    assert asyncio.run(store.get_file_reference(Named(fp[:5]))).key() == fp
    assert asyncio.run(get_file_reference(Named(fp), filestore=store)).key() == fp


def test_method_refuses_what_it_cannot_name(store: FileStore, tmp_path: Path) -> None:
    """A missing path, a directory, an unknown name, short bytes and other types are refused
    with the store's errors, synchronously and not."""
    (tmp_path / "dir").mkdir()
    cases: list[tuple[object, type[Exception]]] = [
        (tmp_path / "missing.txt", InvalidPath),
        (tmp_path / "dir", InvalidPath),
        ("no-such-label", ObjectNotFound),
        (b"\x00" * 31, InvalidFingerprint),
        (3.5, TypeError),
    ]
    for obj, error in cases:
        with pytest.raises(error):
            asyncio.run(store.get_file_reference(obj))
        with pytest.raises(error):
            store.file_reference(obj)
    assert list(store.iter_fingerprints()) == []


def test_default_store_is_the_environments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without filestore=, the module function uses $SCALEMS_STORE, as FileStore() does."""
    monkeypatch.setenv("SCALEMS_STORE", str(tmp_path / "env-store"))
    path = tmp_path / "a.txt"
    path.write_bytes(b"a")
    ref = asyncio.run(get_file_reference(path))
    assert ref.filestore().root == str(tmp_path / "env-store")
    assert Path(ref).read_bytes() == b"a"


def test_file_store_manager_life_cycle(tmp_path: Path) -> None:
    """A manager holds one FileStore while open (filestore() and datastore() give the same
    one); close() is True the first time, False after, and the store is then gone."""
    manager = FileStoreManager(tmp_path / "managed")
    store = manager.filestore()
    assert isinstance(store, FileStore) and store.root == str(tmp_path / "managed")
    assert manager.filestore() is store and manager.datastore() is store
    fp = store.add_bytes(b"kept")
    assert store.list()  # the index is open
    assert manager.close() is True
    assert store._index is None  # closed: the index connection is released
    assert manager.close() is False
    assert manager.filestore() is None and manager.datastore() is None
    assert "closed" in repr(manager)
    with FileStoreManager(tmp_path / "managed") as again:
        reopened = again.filestore()
        assert reopened is not None and reopened.read_bytes(fp) == b"kept"
    assert again.filestore() is None


def test_file_store_manager_default_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no directory the manager opens the default store ($SCALEMS_STORE, else
    ./.scalems), creating it."""
    monkeypatch.chdir(tmp_path)
    manager = FileStoreManager()
    store = manager.filestore()
    assert store is not None and store.root == str(tmp_path / ".scalems")
    assert (tmp_path / ".scalems" / "store.json").is_file()
    assert manager.close()


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
