"""Nothing referenced is ever lost: gc, import, export and verify trust the bytes, not side files.

Each test here is a case found by an attacker or a careless user on an earlier
version, where a label, a recorded result or a running call lost an object,
or damage went unseen.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from scalems_call import pack, run
from scalems_call.execution import cache as call_cache
from scalems_store import (
    ArchiveError,
    FileStore,
    InvalidContent,
    StoreError,
    gc,
    hash_bytes,
    verify,
)
from scalems_store.core import layout
from scalems_store.core.fingerprint import MMAP_THRESHOLD
from scalems_store.maint.bundle import export, import_bundle
from scalems_store.objects import content
from tests.conftest import MakeStore
from tests.recordutil import call_record, ran_call, result_record
from tests.scalems_call import funcs


def outputs(store: FileStore, result: str) -> set[str]:
    """The objects a result record names (its call, stdout, stderr and directory)."""
    return set(content.references("result", store.read_bytes(result)))


def bundle(manifest: dict[str, Any], objects: dict[str, bytes]) -> bytes:
    """A bundle file written by hand: *manifest* (format fields added) and *objects*."""
    data = json.dumps({"format": "scalems-bundle", "version": 1, "refs": [], **manifest}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in [
            ("bundle.json", data),
            *((f"objects/{k}", v) for k, v in objects.items()),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def snapshot(store: FileStore) -> dict[str, bytes]:
    """Every file under the store but the index and tmp/, with its bytes."""
    found = {}
    for top, _, names in os.walk(store.root):
        for name in names:
            path = os.path.join(top, name)
            rel = os.path.relpath(path, store.root)
            if not rel.startswith(("index.sqlite", "tmp")):
                found[rel] = Path(path).read_bytes()
    return found


# -- data loss -------------------------------------------------------------------


def test_import_cannot_rewrite_what_the_store_knows(store: FileStore, tmp_path: Path) -> None:
    """A bundle re-declaring a stored result with fewer references (or as a blob) is refused
    whole; gc then still keeps the result's outputs and the result can be read back."""
    call, result = ran_call(store, tmp_path)
    data = store.read_bytes(result)
    before = snapshot(store)
    for claim in ({"kind": "result", "refs": [call]}, {"kind": "blob", "refs": []}):
        forged = bundle({"objects": [{"fingerprint": result, **claim}]}, {result: data})
        with pytest.raises(InvalidContent, match=result):
            import_bundle(store, io.BytesIO(forged))
        assert snapshot(store) == before
    gc(store, grace=0)
    assert all(fp in store for fp in outputs(store, result))
    _, record = call_cache.latest(store, call)
    store.materialize(record["directory"], tmp_path / "out")
    assert (tmp_path / "out" / "results" / "upper.txt").read_text() == "INPUT\n"


@pytest.mark.parametrize(
    "meta",
    [b"\x00garbage\xff", b'{"kind": "result", "refs": 5}', b'{"kind": "blob", "refs": []}', b""],
    ids=["garbage", "refs-not-a-list", "says-blob", "empty"],
)
def test_damaged_meta_is_found_and_costs_nothing(
    store: FileStore, tmp_path: Path, meta: bytes
) -> None:
    """Whatever a result's meta file says, gc keeps what the result's bytes name; verify
    reports the damage and mends the file; nothing raises a traceback."""
    call, result = ran_call(store, tmp_path)
    os.chmod(store.objects.meta_path(result), 0o644)
    Path(store.objects.meta_path(result)).write_bytes(meta)
    assert gc(store, grace=0).removed == []
    assert all(fp in store for fp in outputs(store, result))
    assert call_cache.hit(store, call) is not None
    store.info(result)
    report = verify(store)
    assert not report.ok and any(fp == result and "meta" in what for fp, what in report.problems)
    assert verify(store).ok, "verify mended the meta file"
    assert store.kind(result) == "result"


def test_gc_never_follows_a_symlink(store: FileStore, tmp_path: Path) -> None:
    """A symlink where a fan-out directory should be is skipped by gc (nothing outside the
    store is touched) and reported by verify."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / ("c" * 62)
    victim.write_bytes(b"not yours")
    os.symlink(outside, os.path.join(store.root, "objects", "ab"))
    (Path(store.root) / "objects" / "cd").mkdir()
    os.symlink(victim, Path(store.root) / "objects" / "cd" / ("e" * 62))
    report = gc(store, grace=0)
    assert victim.read_bytes() == b"not yours"
    assert len(report.skipped) == 2
    problems = verify(store).problems
    assert len(problems) == 2 and all("symlink" in what for _, what in problems)


def test_young_objects_keep_what_they_name(store: FileStore, tmp_path: Path) -> None:
    """A call packed a moment ago keeps its (old, otherwise unreferenced) skeleton."""
    (tmp_path / "d").mkdir()
    tree = store.add_tree(tmp_path / "d")
    os.utime(store.object_path(tree), (0, 0))
    call = store.add_bytes(call_record(tree), kind="call")
    assert gc(store, grace=3600).removed == []
    assert tree in store and call in store


def test_old_and_unreferenced_goes(store: FileStore, tmp_path: Path) -> None:
    """Beyond its grace period an unreferenced call goes, and what only it named too."""
    (tmp_path / "d").mkdir()
    tree = store.add_tree(tmp_path / "d")
    call = store.add_bytes(call_record(tree), kind="call")
    for fp in (tree, call):
        os.utime(store.object_path(fp), (0, 0))
    assert sorted(gc(store, grace=3600).removed) == sorted([tree, call])


# -- wrong answers --------------------------------------------------------------------


def test_a_forged_result_is_never_a_hit(store: FileStore, tmp_path: Path) -> None:
    """A result that is not a result of the call (a tree; another call's result), whether
    a bundle brings it or a ref file names it, is refused or ignored, and verify reports it."""
    _, result = ran_call(store, tmp_path)
    other = pack(funcs.add, (1, 2), store=store)
    (tmp_path / "t").mkdir()
    tree = store.add_tree(tmp_path / "t")
    forged = bundle(
        {
            "objects": [{"fingerprint": tree, "kind": "tree", "refs": []}],
            "refs": [{"namespace": "calls", "key": other, "values": [tree]}],
        },
        {tree: store.read_bytes(tree)},
    )
    with pytest.raises(InvalidContent, match="not"):
        import_bundle(store, io.BytesIO(forged))
    assert call_cache.results(store, other) == []
    store.set_ref("calls", other, [result])  # by hand: another call's result
    assert call_cache.hit(store, other) is None
    problems = verify(store).problems
    assert any(fp == result and "result of call" in what for fp, what in problems)
    assert run(other, store=store).return_value == 3


def test_readding_the_right_bytes_repairs_a_corrupt_object(
    store: FileStore, tmp_path: Path
) -> None:
    """Adding the correct content of a corrupt object again replaces it (small and large)."""
    small = b"small content"
    large = tmp_path / "large"
    large.write_bytes(os.urandom(MMAP_THRESHOLD + 4096))
    for fp, again in (
        (store.add_bytes(small), lambda: store.add_bytes(small)),
        (store.add_file(large), lambda: store.add_file(large)),
    ):
        path = store.object_path(fp)
        os.chmod(path, 0o644)
        with open(path, "r+b") as stream:
            stream.write(b"X")
        assert not verify(store, [fp]).ok
        assert again() == fp
        assert verify(store, [fp]).ok


def test_export_of_a_corrupt_object_fails(store: FileStore, tmp_path: Path) -> None:
    """export checks what it writes: a corrupt object is an error naming it."""
    blob = store.add_bytes(b"payload " * 100)
    os.chmod(store.object_path(blob), 0o644)
    with open(store.object_path(blob), "r+b") as stream:
        stream.write(b"X")
    with pytest.raises(StoreError, match=blob):
        export(store, [blob], io.BytesIO())


# -- bad input: one line, store unchanged ------------------------------------------------


def _object(fp: str, **fields: Any) -> dict[str, Any]:
    return {"fingerprint": fp, "kind": "blob", "refs": [], **fields}


@pytest.mark.parametrize(
    "manifest",
    [
        lambda fp: [],
        lambda fp: {"objects": "x"},
        lambda fp: {"objects": [{"fingerprint": fp, "refs": []}]},
        lambda fp: {"objects": [{"fingerprint": fp, "kind": "blob"}]},
        lambda fp: {"objects": [_object(fp, refs=[5])]},
        lambda fp: {"objects": [_object(fp, kind="evil")]},
        lambda fp: {"objects": [_object(fp[:4])]},
        lambda fp: {"objects": [_object(fp.upper())]},
        lambda fp: {"objects": [_object(fp), _object(fp)]},
        lambda fp: {"objects": [_object(fp)], "refs": [{"namespace": "calls", "values": []}]},
        lambda fp: {"objects": [_object(fp)], "refs": [{"namespace": "calls", "key": fp}]},
        lambda fp: {"objects": [_object(fp)], "refs": [{"namespace": "../x", "key": fp}]},
        lambda fp: {
            "objects": [_object(fp)],
            "refs": [{"namespace": "labels", "key": fp, "values": [fp]}],
        },
        lambda fp: {
            "objects": [_object(fp)],
            "refs": [{"namespace": "\u00e9", "key": fp, "values": [fp]}],
        },
        lambda fp: {"objects": [_object(fp)], "refs": ["calls"]},
    ],
)
def test_bad_manifests_are_one_error(store: FileStore, manifest: Any) -> None:
    """A manifest of the wrong shape is an ArchiveError, and nothing is written."""
    data = b"payload"
    fp = hash_bytes(data)
    body = manifest(fp)
    if isinstance(body, dict):
        body = {"format": "scalems-bundle", "version": 1, "refs": [], **body}
    raw = json.dumps(body).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, payload in (("bundle.json", raw), (f"objects/{fp}", data)):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(ArchiveError, match="manifest"):
        import_bundle(store, io.BytesIO(buffer.getvalue()))
    assert list(store.iter_fingerprints()) == [] and os.listdir(store.tmp) == []


def test_a_bundle_whose_objects_lie_is_refused_whole(store: FileStore) -> None:
    """A valid object listed with the wrong kind makes the import refuse everything."""
    good, bad = b"good", b"not a call record"
    forged = bundle(
        {
            "objects": [
                {"fingerprint": hash_bytes(good), "kind": "blob", "refs": []},
                {"fingerprint": hash_bytes(bad), "kind": "call", "refs": []},
            ]
        },
        {hash_bytes(good): good, hash_bytes(bad): bad},
    )
    with pytest.raises(InvalidContent, match=hash_bytes(bad)):
        import_bundle(store, io.BytesIO(forged))
    assert list(store.iter_fingerprints()) == [] and os.listdir(store.tmp) == []


def test_stale_index_is_found_and_mended(store: FileStore) -> None:
    """An object deleted by hand is still listed by the index until verify mends it."""
    fp = store.add_bytes(b"short-lived")
    os.unlink(store.object_path(fp))
    assert [i.fingerprint for i in store.list()] == [fp]
    report = verify(store)
    assert any(f == fp and "index" in what for f, what in report.problems)
    assert store.list() == []


def test_an_index_that_lies_about_kinds_is_found_and_mended(store: FileStore) -> None:
    """Kinds rewritten in index.sqlite (a call listed as a blob, a blob as a call): verify
    names each and rebuilds the index from the objects; ls --kind is right again."""
    import sqlite3

    call = store.add_bytes(call_record(), kind="call")
    blob = store.add_bytes(b"plain")
    store.close()
    with sqlite3.connect(os.path.join(store.root, "index.sqlite")) as db:
        db.execute("UPDATE objects SET kind = 'blob' WHERE fingerprint = ?", (call,))
        db.execute("UPDATE objects SET kind = 'call' WHERE fingerprint = ?", (blob,))
    assert [info.fingerprint for info in store.list("call")] == [blob]
    report = verify(store)
    said = {fp: what for fp, what in report.problems}
    assert said[call] == "the index says it is a blob, it is a call (index mended)"
    assert said[blob] == "the index says it is a call, it is a blob (index mended)"
    assert [info.fingerprint for info in store.list("call")] == [call]
    assert verify(store).ok


def test_records_refuse_what_is_not_a_record(store: FileStore) -> None:
    """A call or result claim is checked against the bytes; a reference that is not a full
    fingerprint makes the record malformed."""
    with pytest.raises(InvalidContent):
        store.add_bytes(b"{}", kind="result")
    short = call_record().replace(b'"skeleton":null', b'"skeleton":"blake3:abcd"')
    with pytest.raises(InvalidContent, match="not a full fingerprint"):
        store.add_bytes(short, kind="call")
    record = result_record("0" * 64, stdout="1" * 64)
    with pytest.raises(InvalidContent, match="references"):
        store.add_bytes(record, kind="result", refs=["0" * 64])
    assert store.add_bytes(record, kind="result", refs=["0" * 64, "1" * 64]) in store
    assert list(store.iter_fingerprints()) == [hash_bytes(record)]


def test_a_new_store_made_by_many_processes_at_once(tmp_path: Path) -> None:
    """Sixteen processes opening a store that does not exist yet all succeed."""
    import subprocess
    import sys

    root = tmp_path / "new"
    script = (
        "import sys; from scalems_store import FileStore\n"
        "with FileStore(sys.argv[1]) as s: print(s.add_bytes(sys.argv[2].encode()))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(root), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(16)
    ]
    results = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 16, [e for _, e in results]
    with FileStore(root, create=False) as store:
        assert len(list(store.iter_fingerprints())) == 16
    assert sorted(os.listdir(tmp_path)) == ["new"], "no staging directory left"


def test_a_damaged_ref_stops_gc(make_store: MakeStore) -> None:
    """A ref file holding something else than fingerprints names nothing, and gc, which
    cannot know what it was to keep, deletes nothing."""
    store = make_store()
    key = store.add_bytes(call_record(), kind="call")
    path = Path(store.refs.path("calls", key))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not-a-fingerprint\n" + layout.to_uri(key).encode())
    assert store.get_ref("calls", key) == []
    with pytest.raises(StoreError, match="refs"):
        gc(store, grace=0)
    assert key in store


def test_gc_dry_run_says_what_gc_does(store: FileStore) -> None:
    """A dry run lists exactly what a real run then removes (young objects in neither)."""
    old, young = store.add_bytes(b"old"), store.add_bytes(b"young")
    os.utime(store.object_path(old), (0, 0))
    assert gc(store, grace=3600, dry_run=True).removed == [old]
    assert gc(store, grace=3600).removed == [old] and young in store


def test_an_empty_ref_stops_gc_and_is_reported(store: FileStore, tmp_path: Path) -> None:
    """A ref file emptied (a crash, a full disk, a hand) named results that are now
    unknown: gc deletes nothing and verify names the file. The store never writes one:
    a ref set to no values is removed."""
    call, result = ran_call(store, tmp_path)
    path = Path(store.refs.path("calls", call))
    path.write_bytes(b"")
    with pytest.raises(StoreError, match="refs"):
        gc(store, grace=0)
    assert outputs(store, result) | {result} <= set(store.iter_fingerprints())
    assert (str(path), "is empty") in verify(store).problems
    store.set_ref("calls", call, [])
    assert not path.exists()


def test_a_damaged_record_that_a_ref_reaches_stops_gc(store: FileStore, tmp_path: Path) -> None:
    """A recorded result whose bytes no longer read as a result (and whose meta file is
    gone) named outputs gc cannot know: it deletes nothing."""
    _call, result = ran_call(store, tmp_path)
    named = outputs(store, result)
    damaged = Path(store.object_path(result))
    damaged.chmod(0o644)
    damaged.write_bytes(damaged.read_bytes()[:40])
    Path(store.objects.meta_path(result)).unlink()
    with pytest.raises(StoreError, match="cannot be read"):
        gc(store, grace=0)
    assert named <= set(store.iter_fingerprints())


def test_gc_never_sweeps_through_a_symlinked_tmp(store: FileStore, tmp_path: Path) -> None:
    """tmp/ replaced by a symlink: gc removes nothing where it points, and verify says so."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "old-file").write_text("not yours")
    os.utime(outside / "old-file", (1, 1))
    (outside / "leases").mkdir()
    shutil.rmtree(store.tmp)
    os.symlink(outside, store.tmp)
    gc(store, grace=0)
    assert (outside / "old-file").read_text() == "not yours"
    assert (store.tmp, "a symlink where a directory of the store should be") in verify(
        store
    ).problems


def gc_first(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every ref update run ``gc --grace 0`` just before it, as a gc on another
    machine might at that moment; return the count of objects each gc removed."""
    removed: list[int] = []
    update = FileStore.update_ref

    def gc_then_update(self: FileStore, *args: Any) -> Any:
        removed.append(len(gc(self, grace=0).removed))
        return update(self, *args)

    monkeypatch.setattr(FileStore, "update_ref", gc_then_update)
    return removed


def test_gc_between_a_runs_outputs_and_its_ref_keeps_them(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gc (at any grace) while a runner has stored a result and its outputs but not yet
    the ref naming them: nothing of the result is lost."""
    removed = gc_first(store, monkeypatch)
    call, result = ran_call(store, tmp_path)
    assert removed == [0]
    assert verify(store).ok, verify(store).problems
    assert outputs(store, result) <= set(store.iter_fingerprints())
    assert call_cache.latest(store, call)[0] == result


def test_gc_during_an_import_keeps_what_its_refs_name(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gc (at any grace) after an import published its objects, before its refs name
    them: nothing imported is lost."""
    source = make_store("source")
    call, result = ran_call(source, tmp_path)
    data = io.BytesIO()
    export(source, [call], data)
    target = make_store("target")
    removed = gc_first(target, monkeypatch)
    import_bundle(target, io.BytesIO(data.getvalue()))
    assert removed == [0]
    assert verify(target).ok, verify(target).problems
    assert {call, result} | outputs(source, result) <= set(target.iter_fingerprints())


def test_concurrent_ref_updates_lose_nothing(store: FileStore) -> None:
    """Four processes recording results of one call at once: every result is kept."""
    import multiprocessing

    key = store.add_bytes(call_record(), kind="call")
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_record_many, args=(store.root, key, worker)) for worker in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert len(set(store.get_ref("calls", key))) == 4 * 25


def _record_many(root: str, key: str, worker: int) -> None:
    with FileStore(root) as store:
        for n in range(25):
            value = hash_bytes(b"%d-%d" % (worker, n))

            def prepend(known: list[str], value: str = value) -> list[str]:
                return [value, *known]

            store.update_ref("calls", key, prepend)


def test_an_old_bundle_does_not_make_its_result_the_latest(
    make_store: MakeStore, tmp_path: Path
) -> None:
    """Results merged by import keep the store's own order: importing an older run of a
    call keeps the newer one the latest; a store that has a result keeps it the latest
    when a newer run of the same call comes in (the store's order, not a claimed time)."""
    store = make_store("here")
    call, old = ran_call(store, tmp_path)
    old_bundle = io.BytesIO()
    export(store, [call], old_bundle)
    elsewhere = make_store("elsewhere")
    import_bundle(elsewhere, io.BytesIO(old_bundle.getvalue()))
    new = run(call, store=store, force=True).fingerprint
    assert new is not None and new != old
    import_bundle(store, io.BytesIO(old_bundle.getvalue()))
    assert call_cache.latest(store, call)[0] == new
    new_bundle = io.BytesIO()
    export(store, [call], new_bundle)
    import_bundle(elsewhere, io.BytesIO(new_bundle.getvalue()))
    assert call_cache.latest(elsewhere, call)[0] == old
    assert call_cache.results(elsewhere, call) == [old, new]


def test_gc_puts_back_only_what_is_the_object_it_is_named_after(store: FileStore) -> None:
    """A file in tmp/ named as gc names an object it moved aside (a gc killed mid-way) is
    put back only if its bytes are that object's: a planted one never becomes an object."""
    from scalems_store.objects.files import ASIDE

    real = b"moved aside by a gc that was killed"
    fp = store.add_bytes(real)
    os.rename(store.object_path(fp), Path(store.tmp, f"{ASIDE}{fp}-1"))  # as gc does
    planted = hash_bytes(b"the name of an object")
    os.makedirs(os.path.dirname(store.object_path(planted)), exist_ok=True)
    Path(store.tmp, f"{ASIDE}{planted}-1").write_bytes(b"forged content")
    gc(store, grace=3600)
    assert fp in store and store.read_bytes(fp) == real
    assert planted not in store


def test_a_meta_file_replaced_by_a_directory_is_reported_and_verify_goes_on(
    store: FileStore,
) -> None:
    """verify reports a meta file it cannot mend (a directory in its place) and checks
    every other object (it used to stop there with StoreNotWritable)."""
    call = store.add_bytes(call_record(), kind="call")
    broken = store.add_bytes(result_record(call), kind="result")
    meta = Path(store.objects.meta_path(broken))
    meta.unlink()
    meta.mkdir()
    (meta / "inside").write_text("x")
    victim = store.add_bytes(b"damaged later")
    Path(store.object_path(victim)).chmod(0o644)
    Path(store.object_path(victim)).write_bytes(b"damaged!")
    said = dict(verify(store).problems)
    assert said[broken].startswith("its meta file cannot be mended: ")
    assert "corrupt" in said[victim]


def test_a_ref_update_goes_on_when_its_lock_file_cannot_be_opened(store: FileStore) -> None:
    """A lock file that cannot be opened (another user's in a shared store, or something
    else in its place) never stops a runner from recording its result."""
    key = store.add_bytes(call_record(), kind="call")
    value = hash_bytes(b"a result")
    os.makedirs(os.path.join(store.tmp, "locks", f"ref-calls-{key[:2]}"))
    assert store.update_ref("calls", key, lambda known: [value, *known]) == [value]
    assert store.get_ref("calls", key) == [value]
    lock = os.path.join(store.tmp, "locks", f"ref-calls-{value[:2]}")
    store.update_ref("calls", value, lambda known: [key])
    assert os.stat(lock).st_mode & 0o777 == 0o666  # the other users may lock it too


def test_gc_reads_pins_before_refs(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that names what it pinned and lets go while gc reads its roots: gc sees
    the pin or, read after it, the name; an old object so named is never deleted."""
    from scalems_store.objects import pins as pins_module

    fp = store.add_bytes(b"output of a run")
    os.utime(store.object_path(fp), (1000, 1000))  # old: only a root keeps it
    writer = pins_module.Pins(store.tmp, durable=False)
    writer.add(fp)
    live = pins_module.live

    def the_writer_finishes_first(tmp: str) -> set[str]:
        store.set_label("named", fp)  # the ref is written, then the pin let go
        writer.close()
        return live(tmp)

    monkeypatch.setattr(pins_module, "live", the_writer_finishes_first)
    gc(store, grace=0)
    assert fp in store


def test_a_pin_file_of_any_size_is_read_whole(store: FileStore) -> None:
    """An import of a million objects pins a million fingerprints: gc reads them all."""
    from scalems_store.objects import pins as pins_module

    many = [hash_bytes(b"%d" % i) for i in range(300_000)]
    writer = pins_module.Pins(store.tmp, durable=False)
    try:
        os.write(writer.fd, "".join(fp + "\n" for fp in many).encode())
        assert pins_module.live(store.tmp) == set(many)
    finally:
        writer.close()
    assert pins_module.live(store.tmp) == set()


def test_pins_are_a_threads_own(store: FileStore) -> None:
    """Two runners sharing one store in two threads: one that is done does not unpin
    what the other is about to name."""
    import threading

    from scalems_store.objects import pins as pins_module

    inside, done = threading.Barrier(2), threading.Event()
    seen: list[set[str]] = []

    def short() -> None:
        with store.writer.pinned():
            store.add_bytes(b"short")
            inside.wait()
        done.set()

    def long() -> None:
        with store.writer.pinned():
            inside.wait()
            done.wait()
            store.add_bytes(b"long")
            seen.append(pins_module.live(store.tmp))

    threads = [threading.Thread(target=short), threading.Thread(target=long)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert seen == [{hash_bytes(b"long")}]


def test_adding_content_whose_object_became_a_fifo_replaces_it(store: FileStore) -> None:
    """Re-adding an object whose file was replaced by a FIFO does not wait on the FIFO:
    the right bytes take its place."""
    fp = store.add_bytes(b"content")
    path = store.object_path(fp)
    os.chmod(path, 0o644)
    os.unlink(path)
    os.mkfifo(path)
    assert store.add_bytes(b"content") == fp
    assert store.read_bytes(fp) == b"content"
