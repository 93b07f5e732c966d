"""FileStore: put, resolve, read, labels, index, verify, gc."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalems_store import (
    AmbiguousPrefix,
    CorruptObject,
    FileStore,
    FingerprintMismatch,
    InvalidFingerprint,
    InvalidLabel,
    InvalidPath,
    ObjectNotFound,
    StoreNotFound,
    UnsupportedFormat,
    gc,
    verify,
)
from scalems_store.core.fingerprint import MMAP_THRESHOLD, hash_bytes, hash_file
from tests.recordutil import call_record, result_record

EMPTY_BLAKE3 = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
HELLO_BLAKE3 = "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"


def objects_on_disk(store: FileStore) -> list[str]:
    return sorted(store.iter_fingerprints())


def test_golden_fingerprints(store: FileStore) -> None:
    """Fingerprints are BLAKE3-256 hex, pinned by known vectors."""
    assert store.add_bytes(b"") == EMPTY_BLAKE3
    assert store.add_bytes(b"hello") == HELLO_BLAKE3


def test_layout_and_read_only(store: FileStore) -> None:
    """Objects live at objects/ab/<rest>, are read-only, and store.json names the format."""
    fp = store.add_bytes(b"hello")
    path = Path(store.root, "objects", fp[:2], fp[2:])
    assert path.read_bytes() == b"hello"
    assert path.stat().st_mode & 0o777 == 0o444
    assert json.loads(Path(store.root, "store.json").read_text()) == {
        "format": "scalems-store",
        "hash": "blake3",
        "version": 1,
    }


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=5000))
def test_property_bytes_round_trip(store: FileStore, data: bytes) -> None:
    """Any bytes come back unchanged, under their BLAKE3, and re-adding is idempotent."""
    fp = store.add_bytes(data)
    assert fp == hash_bytes(data)
    assert store.read_bytes(fp) == data
    assert store.add_bytes(data) == fp


def test_add_file_small_and_large(store: FileStore, tmp_path: Path) -> None:
    """Small and large files (copied and hashed in one read) are stored exactly."""
    for size in (10, MMAP_THRESHOLD + 12345):
        path = tmp_path / f"f{size}"
        data = os.urandom(size)
        path.write_bytes(data)
        fp = store.add_file(path)
        assert fp == hash_bytes(data)
        assert Path(store.object_path(fp)).read_bytes() == data
        assert store.add_file(path) == fp
    assert os.listdir(Path(store.root, "tmp")) == []


@pytest.mark.parametrize("leave_cores", [0, 1, 64])
def test_hash_file_is_the_same_on_any_number_of_threads(tmp_path: Path, leave_cores: int) -> None:
    """Hashing a large file on fewer threads (next to a copy) does not change its name."""
    data = os.urandom(2 * MMAP_THRESHOLD + 7)
    path = tmp_path / "big"
    path.write_bytes(data)
    assert hash_file(path, leave_cores=leave_cores) == hash_bytes(data)


def test_add_file_rejects_directory_and_missing(store: FileStore, tmp_path: Path) -> None:
    """Directories and missing paths are InvalidPath, and nothing is stored."""
    with pytest.raises(InvalidPath, match="directory"):
        store.add_file(tmp_path)
    with pytest.raises(InvalidPath, match="cannot read"):
        store.add_file(tmp_path / "missing")
    assert objects_on_disk(store) == []


def test_expect_mismatch_leaves_store_unchanged(store: FileStore, tmp_path: Path) -> None:
    """--expect refuses content with another fingerprint and stores nothing."""
    path = tmp_path / "big"
    path.write_bytes(os.urandom(MMAP_THRESHOLD + 1))
    for add in (
        lambda: store.add_bytes(b"x", expect=HELLO_BLAKE3),
        lambda: store.add_file(path, expect="abcd"),
    ):
        with pytest.raises(FingerprintMismatch):
            add()
    assert objects_on_disk(store) == []
    assert os.listdir(Path(store.root, "tmp")) == []
    assert store.add_bytes(b"hello", expect="blake3:" + HELLO_BLAKE3) == HELLO_BLAKE3


def colliding_inputs() -> tuple[bytes, bytes]:
    """Two inputs whose fingerprints share their first 4 hex digits (found by search)."""
    seen: dict[str, bytes] = {}
    for i in range(100_000):
        data = str(i).encode()
        prefix = hash_bytes(data)[:4]
        if prefix in seen:
            return seen[prefix], data
        seen[prefix] = data
    raise AssertionError("no collision found")


def test_prefix_resolution(store: FileStore) -> None:
    """Unique prefixes resolve; ambiguous ones list candidates; bad ones are refused."""
    a, b = (store.add_bytes(x) for x in colliding_inputs())
    unique = store.add_bytes(b"unique")
    assert store.resolve(unique[:4]) == unique
    assert store.resolve(unique.upper()) == unique
    assert store.resolve("blake3:" + unique[:10]) == unique
    with pytest.raises(AmbiguousPrefix) as info:
        store.resolve(a[:4])
    assert info.value.candidates == sorted([a, b])
    assert a in str(info.value) and b in str(info.value)
    assert store.resolve(a[:12]) == a
    for bad in ("abc", "0" * 65, ""):
        with pytest.raises(InvalidFingerprint):
            store.resolve(bad)
    with pytest.raises(ObjectNotFound, match="no label 'xyz1'"):
        store.resolve("xyz1")  # not hex: a label name, and there is no such label
    with pytest.raises(ObjectNotFound):
        store.resolve("0" * 64)


def test_kinds_and_refs_recorded(store: FileStore, tmp_path: Path) -> None:
    """A record's kind is recorded and its references read from its bytes; adding it again
    as a blob keeps its kind."""
    (tmp_path / "s").mkdir()
    target = store.add_tree(tmp_path / "s")
    fp = store.add_bytes(call_record(target), kind="call", refs=[target])
    assert store.kind(fp) == "call" and store.references(fp) == (target,)
    store.add_bytes(call_record(target))
    assert store.kind(fp) == "call"
    (tmp_path / "d").mkdir()
    tree = store.add_tree(tmp_path / "d")
    assert store.info(tree).kind == "tree"
    assert [i.fingerprint for i in store.list(kind="call")] == [fp]


def test_a_store_inside_the_directory_is_left_out(tmp_path: Path) -> None:
    """The default ./.scalems of a project is not archived into the project's tree."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "input.txt").write_text("x")
    with FileStore(project / ".scalems") as store:
        first = store.add_tree(project)
        assert store.add_tree(project) == first  # the store grew; the tree did not change
        assert [e.path for e in store.tree_entries(first)] == ["input.txt"]
        with FileStore(tmp_path / "elsewhere") as other:
            assert other.add_tree(project) != first  # another store's view includes .scalems
        with pytest.raises(InvalidPath, match="the store itself"):
            store.add_tree(project / ".scalems")


def test_index_is_a_cache(store: FileStore, tmp_path: Path) -> None:
    """Deleting or corrupting index.sqlite loses nothing: it is rebuilt from the files."""
    a = store.add_bytes(b"a", label="first")
    (tmp_path / "d").mkdir()
    t = store.add_tree(tmp_path / "d")
    expected = [(i.fingerprint, i.kind, i.size) for i in store.list()]
    store.close()
    index = Path(store.root, "index.sqlite")
    for damage in ("delete", "garbage"):
        for suffix in ("", "-wal", "-shm"):
            Path(str(index) + suffix).unlink(missing_ok=True)
        if damage == "garbage":
            index.write_bytes(b"this is not a database" * 100)
        with FileStore(store.root) as again:
            assert [(i.fingerprint, i.kind, i.size) for i in again.list()] == expected
            assert [i.fingerprint for i in again.list(label="first")] == [a]
            assert again.kind(t) == "tree"
    with FileStore(store.root) as again:
        again.index.db.execute("DELETE FROM objects")
        assert again.list() == []
        assert again.reindex() == 2


def test_an_unusable_index_fails_nothing(store: FileStore, tmp_path: Path) -> None:
    """With no usable index (here a directory in its place), adds, labels and listings work
    from the files; the next process that can open the index brings it up to date."""
    a = store.add_bytes(b"a")
    store.close()
    index = Path(store.root, "index.sqlite")
    kept = tmp_path / "kept.sqlite"
    index.rename(kept)  # a complete index that will miss what is added next
    index.mkdir()
    with FileStore(store.root) as blocked:
        b = blocked.add_bytes(b"b", label="second")
        assert [i.fingerprint for i in blocked.list()] == sorted([a, b])
        assert [i.fingerprint for i in blocked.list(label="second")] == [b]
        assert blocked.index.fingerprints() == sorted([a, b])
    assert Path(store.root, "index.sqlite.stale").exists()
    index.rmdir()
    kept.rename(index)
    with FileStore(store.root) as healed:
        assert healed.index.fingerprints() == sorted([a, b])
        assert [i.fingerprint for i in healed.list(label="second")] == [b]
        assert not Path(store.root, "index.sqlite.stale").exists()


def test_workers_can_leave_the_index_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SCALEMS_STORE_INDEX=off: no sqlite is touched; the next process with it on catches up."""
    monkeypatch.setenv("SCALEMS_STORE_INDEX", "off")
    root = tmp_path / "shared"
    with FileStore(root) as worker:
        fp = worker.add_bytes(b"from a compute node", label="node")
        assert worker.index.fingerprints() == [fp]
        assert [i.fingerprint for i in worker.list(label="node")] == [fp]
    assert not Path(root, "index.sqlite").exists()
    monkeypatch.setenv("SCALEMS_STORE_INDEX", "on")
    with FileStore(root) as login:
        assert [i.fingerprint for i in login.list(label="node")] == [fp]
    assert Path(root, "index.sqlite").exists()
    assert not Path(root, "index.sqlite.stale").exists()


def test_unknown_format_refused(tmp_path: Path) -> None:
    """A store of an unknown version is refused with a clear message and left as it was."""
    root = tmp_path / "s"
    FileStore(root).close()
    (root / "store.json").write_text('{"format": "scalems-store", "version": 9, "hash": "blake3"}')
    with pytest.raises(UnsupportedFormat, match="version 9"):
        FileStore(root)
    assert json.loads((root / "store.json").read_text())["version"] == 9


def test_missing_store_and_foreign_directory(tmp_path: Path) -> None:
    """Opening without create fails clearly; a non-empty non-store directory is not taken over."""
    with pytest.raises(StoreNotFound):
        FileStore(tmp_path / "nothing", create=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("precious")
    with pytest.raises(StoreNotFound, match="not a store"):
        FileStore(tmp_path / "busy")
    assert os.listdir(tmp_path / "busy") == ["thesis.tex"]


def test_labels(store: FileStore) -> None:
    """Labels point at objects, can be moved and removed, and bad names are refused."""
    a, b = store.add_bytes(b"a"), store.add_bytes(b"b")
    store.set_label("run-1", a[:6])
    assert store.labels() == {"run-1": a}
    store.set_label("run-1", b)
    assert store.labels() == {"run-1": b} and store.info(b).labels == ("run-1",)
    for bad in ("", "a/b", "../x", ".hidden", "x" * 201):
        with pytest.raises(InvalidLabel):
            store.set_label(bad, a)
    store.remove_label("run-1")
    assert store.labels() == {}


def test_materialize_blob_checks_and_refuses_overwrite(store: FileStore, tmp_path: Path) -> None:
    """A blob is copied out; an existing destination is never overwritten."""
    fp = store.add_bytes(b"payload")
    store.materialize(fp, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"payload"
    with pytest.raises(InvalidPath, match="exists"):
        store.materialize(fp, tmp_path / "out")


def flip_byte(store: FileStore, fp: str, offset: int = 0) -> None:
    path = store.object_path(fp)
    os.chmod(path, 0o644)
    data = bytearray(Path(path).read_bytes())
    data[offset] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def test_verify_finds_corruption_and_missing(store: FileStore, tmp_path: Path) -> None:
    """verify names every corrupt object and every label or ref to a missing one."""
    good = store.add_bytes(b"good")
    bad = store.add_bytes(b"bad!")
    gone = store.add_bytes(b"gone", label="lost")
    assert verify(store).ok
    flip_byte(store, bad)
    os.unlink(store.object_path(gone))
    report = verify(store)
    problems: dict[str, list[str]] = {}
    for fp, what in report.problems:
        problems.setdefault(fp, []).append(what)
    assert set(problems) == {bad, gone}
    assert problems[bad][0].startswith("corrupt") and any("lost" in p for p in problems[gone])
    assert verify(store, [good]).ok
    with pytest.raises(CorruptObject):
        store.read_bytes(bad)
    with pytest.raises(CorruptObject):
        store.materialize(bad, tmp_path / "never")
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("offset", [512, 0, 124, 257], ids=["data", "name", "size", "magic"])
def test_corrupt_tree_not_extracted(store: FileStore, tmp_path: Path, offset: int) -> None:
    """A tree whose bytes were altered is refused as corrupt, even where the altered
    header also fails to parse (the check runs beside the parsing), and nothing is written."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"content")
    fp = store.add_tree(tmp_path / "d")
    flip_byte(store, fp, offset)
    with pytest.raises(CorruptObject):
        store.materialize(fp, tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["d", "store"]


def test_gc_roots_closure_and_grace(store: FileStore) -> None:
    """gc keeps labelled objects, refs and what they reference, and anything young."""
    kept = store.add_bytes(b"kept", label="keep")
    child = store.add_bytes(b"child")
    key = store.add_bytes(call_record(), kind="call")
    parent = store.add_bytes(result_record(key, stdout=child), kind="result")
    store.set_ref("calls", key, [parent])
    orphan = store.add_bytes(b"orphan")
    assert gc(store, grace=3600).removed == []
    report = gc(store, grace=0, dry_run=True)
    assert report.removed == [orphan] and orphan in store
    report = gc(store, grace=0)
    assert report.removed == [orphan] and report.freed == 6
    assert orphan not in store
    assert all(fp in store for fp in (kept, child, parent, key))
    assert [i.fingerprint for i in store.list()].count(orphan) == 0


def test_gc_sweeps_stale_temp_files(store: FileStore) -> None:
    """Leftovers in tmp/ from a dead writer are swept once older than the grace period."""
    leftover = Path(store.root, "tmp", "put-dead")
    leftover.write_bytes(b"partial")
    assert gc(store, grace=3600).temp_removed == 0 and leftover.exists()
    assert gc(store, grace=0).temp_removed == 1 and not leftover.exists()


def test_refs_round_trip(store: FileStore) -> None:
    """Refs hold an ordered list of fingerprints under a key, replaced atomically."""
    key, a, b = (store.add_bytes(x) for x in (b"k", b"a", b"b"))
    assert store.get_ref("calls", key) == []
    store.set_ref("calls", key, [a, b])
    assert store.get_ref("calls", key) == [a, b]
    assert list(store.iter_refs("calls")) == [("calls", key, [a, b])]


def test_list_carries_labels_and_references_as_info_does(store: FileStore) -> None:
    """FileStore.list() gives each object the labels and references info() gives it."""
    from tests.recordutil import call_record, result_record

    blob = store.add_bytes(b"out")
    call = store.add_bytes(call_record(), kind="call")
    result = store.add_bytes(result_record(call, stdout=blob), kind="result")
    store.set_label("mine", result)
    store.set_label("also", result)
    listed = {info.fingerprint: info for info in store.list()}
    for fp in (blob, call, result):
        assert listed[fp] == store.info(fp)._replace(created=listed[fp].created)
    assert listed[result].labels == ("also", "mine")
    assert set(listed[result].refs) == {call, blob}
