"""Names: labels wherever a fingerprint goes, and a store found as git finds .git."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scalems_store import FileStore, ObjectNotFound, StoreNotFound, default_root


def test_a_label_names_its_object(store: FileStore) -> None:
    """resolve() takes a label; a label wins over a hex prefix it also spells."""
    fp = store.add_bytes(b"labelled", label="input-v2")
    assert store.resolve("input-v2") == fp
    other = store.add_bytes(b"other")
    store.set_label(other[:4], fp)  # a label spelled like the other object's prefix
    assert store.resolve(other[:4]) == fp
    assert store.resolve(other[:5]) == other
    assert store.resolve(fp) == fp and store.resolve("blake3:" + fp) == fp
    with pytest.raises(ObjectNotFound):
        store.resolve("no-such-label")


def test_the_nearest_store_is_found_from_a_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --store or $SCALEMS_STORE, the nearest .scalems upwards is the store."""
    project = tmp_path / "project"
    FileStore(project / ".scalems").close()
    deep = project / "analysis" / "run1"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert os.path.realpath(default_root()) == os.path.realpath(project / ".scalems")
    with FileStore() as store:
        assert not store.created and store.root == str(project / ".scalems")
    monkeypatch.setenv("SCALEMS_STORE", str(tmp_path / "elsewhere"))
    assert default_root() == str(tmp_path / "elsewhere")


def test_a_store_inside_the_directory_given_is_suggested(tmp_path: Path) -> None:
    """--store pointing at a project that holds .scalems says so."""
    FileStore(tmp_path / "project" / ".scalems").close()
    with pytest.raises(StoreNotFound, match=r"did you mean --store .*project/\.scalems"):
        FileStore(tmp_path / "project", create=False)
    with pytest.raises(StoreNotFound, match=r"did you mean"):
        FileStore(tmp_path / "project")


def test_created_says_whether_opening_made_the_store(tmp_path: Path) -> None:
    """FileStore.created is True only for the call that made the store."""
    with FileStore(tmp_path / "s") as first, FileStore(tmp_path / "s") as second:
        assert first.created and not second.created
