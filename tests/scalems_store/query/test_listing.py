"""Listing and checking many objects: the C listing and the Python one agree; verify in
several processes finds what one process finds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scalems_store import FileStore, verify
from scalems_store.core.fingerprint import hash_file
from scalems_store.maint import audit
from scalems_store.objects import files as objects
from tests.scalems_store.store.test_store import flip_byte


def damaged_store(store: FileStore, tmp_path: Path) -> tuple[list[str], str]:
    """A store of small and large objects, one of them corrupt, with a stray and a symlink."""
    fps = [store.add_bytes(os.urandom(100) + b"%d" % i) for i in range(300)]
    fps.append(store.add_bytes(os.urandom(5 << 20)))
    bad = fps[7]
    os.chmod(store.object_path(bad), 0o644)
    with open(store.object_path(bad), "r+b") as stream:
        stream.write(b"X")
    Path(store.root, "objects", "zz").mkdir()
    os.symlink(tmp_path, Path(store.root, "objects", fps[0][:2], "f" * 62))
    return fps, bad


@pytest.mark.parametrize("sizes", [True, False])
def test_the_c_listing_is_the_python_listing(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sizes: bool
) -> None:
    """Both listings give the same objects, sizes, times and anomalies."""
    fps, _ = damaged_store(store, tmp_path)
    c_odd: list[tuple[str, str]] = []
    py_odd: list[tuple[str, str]] = []
    in_c = sorted(store.objects.listing(lambda p, w: c_odd.append((p, w)), sizes=sizes))
    monkeypatch.setattr(objects, "_speedups", None)
    in_python = sorted(store.objects.listing(lambda p, w: py_odd.append((p, w))))
    assert [row[0] for row in in_c] == sorted(fps) == [row[0] for row in in_python]
    if sizes:
        assert in_c == in_python
    assert sorted(c_odd) == sorted(py_odd) and len(c_odd) == 2


def test_verify_in_several_processes_finds_the_same(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashing forked over the cores reports exactly what one process reports, also once
    BLAKE3's thread pool is running in the parent (a forked child must not use it)."""
    fps, bad = damaged_store(store, tmp_path)
    hash_file(store.object_path(fps[-1]))  # a large object: hashed on all cores, here
    monkeypatch.setattr(audit, "PARALLEL", 10**9)
    alone = verify(store)
    monkeypatch.setattr(audit, "PARALLEL", 1)
    monkeypatch.setattr(audit, "READ_BATCH", 16)
    forked = verify(store)
    assert sorted(forked.problems) == sorted(alone.problems)
    assert forked.checked == alone.checked == 301
    assert any(fp == bad and what.startswith("corrupt") for fp, what in forked.problems)


def test_verify_hashes_large_objects_in_the_hashing_processes(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forked over the cores, each process hashes the large objects of its share as it
    meets them (none is left for the parent to hash after the small ones), and a corrupt
    large one is found there."""
    fps, _ = damaged_store(store, tmp_path)
    large = [fps[-1], store.add_bytes(os.urandom(5 << 20))]
    flip_byte(store, large[1], 3 << 20)

    def parent_hash(*args: object, **kwargs: object) -> str:
        raise AssertionError("a large object was left for the parent")

    monkeypatch.setattr(audit, "hash_file", parent_hash)
    monkeypatch.setattr(audit, "PARALLEL", 1)
    monkeypatch.setattr(audit, "READ_BATCH", 16)
    report = verify(store)
    assert report.checked == 302
    corrupt = {fp for fp, what in report.problems if what.startswith("corrupt")}
    assert corrupt == {fps[7], large[1]}


def test_verify_hashes_here_what_a_dead_hashing_process_left(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hashing process that dies (killed, out of memory) before it reports a shard
    leaves that shard to the parent: every object is still checked, the corrupt one found."""
    _, bad = damaged_store(store, tmp_path)
    real = audit._hash_shards

    def die_after_one(shards: list[tuple[int, int]], todo: int, out: int) -> None:
        if os.read(todo, 4):  # takes a shard and dies with it
            os._exit(9)
        real(shards, todo, out)

    monkeypatch.setattr(audit, "_hash_shards", die_after_one)
    monkeypatch.setattr(audit, "PARALLEL", 1)
    monkeypatch.setattr(audit, "READ_BATCH", 16)
    report = verify(store)
    assert report.checked == 301
    assert any(fp == bad and what.startswith("corrupt") for fp, what in report.problems)


def test_ls_json_records_are_what_json_writes(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ls --json`` makes each record's text itself (for speed): it must be exactly
    what ``json.dumps`` writes, for plain rows, labelled ones, records with references,
    and rows a damaged index makes odd (characters JSON escapes, an infinite time)."""
    import json
    import sqlite3

    from scalems_store.query import info
    from tests.recordutil import call_record

    blob = store.add_bytes(b"plain")
    store.add_bytes(b"labelled", label="run-1.final_v2")
    store.set_label("x", blob)
    inner = store.add_bytes(b"inside")
    tree_call = store.add_bytes(call_record(inner, func="f"), kind="call")
    monkeypatch.setattr(info, "CHUNK_ROWS", 2)  # records with labels or refs in each chunk

    def listed() -> str:
        text = "".join(info.json_text(store))
        assert text == json.dumps([i.as_dict() for i in info.describe_all(store)], sort_keys=True)
        return text

    parsed = {r["fingerprint"]: r for r in json.loads(listed())}
    assert parsed[tree_call]["refs"] == [inner] and parsed[blob]["labels"] == ["x"]
    store.index.flush()
    with sqlite3.connect(Path(store.root, "index.sqlite")) as db:
        db.execute("UPDATE objects SET kind = ? WHERE fingerprint = ?", ('bl"ob\n', blob))
        db.execute("UPDATE objects SET created = 1e400 WHERE fingerprint = ?", (inner,))
    parsed = {r["fingerprint"]: r for r in json.loads(listed())}
    assert parsed[blob]["labels"] == ["x"] and parsed[blob]["kind"] == 'bl"ob\n'


def test_a_sample_checks_references_against_the_whole_store(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify --sample: a sampled record's references are looked for among all objects,
    not only among the sampled ones."""
    import random

    from tests.recordutil import call_record

    inner = store.add_bytes(b"the skeleton's place")
    call = store.add_bytes(call_record(inner, func="f"), kind="call")
    monkeypatch.setattr(random, "sample", lambda population, k: [call])
    report = verify(store, sample=0.5)
    assert report.ok, report.problems
    assert report.checked == 1
