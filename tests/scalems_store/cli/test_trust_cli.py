"""Trust through the installed commands: gc beside running calls, damaged roots, deep trees."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from scalems_call import pack
from scalems_store import FileStore
from scalems_store.core.fsutil import remove_tree
from tests import tarcraft
from tests.conftest import RunCli, entry_point
from tests.recordutil import call_record, forge
from tests.scalems_call import funcs
from tests.scalems_store.tar.test_tarstream import HAND_SPARSE, gnu_tar_sparse

TRACEBACK = b"Traceback"


def wait_for(predicate: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start_exec(tmp_path: Path, fp: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*entry_point("scalems-call"), "exec", fp, "--json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("labelled", [False, True], ids=["unlabelled", "labelled"])
def test_gc_while_a_call_runs(run_cli: RunCli, tmp_path: Path, labelled: bool) -> None:
    """gc --grace 0 while a call runs keeps its record, its lease and its run directory; a
    second exec of the same call waits for the first instead of running it again."""
    root = tmp_path / ".scalems"
    flag, ledger = tmp_path / "flag", tmp_path / "ledger"
    flag.touch()
    with FileStore(root) as store:
        fp = pack(funcs.count_and_wait, (str(ledger), str(flag)), store=store)
        if labelled:
            store.set_label("running", fp)
    os.utime(root / "objects" / fp[:2] / fp[2:], (0, 0))  # old: only the lease protects it
    first = start_exec(tmp_path, fp)
    lease = root / "tmp" / "leases" / fp
    wait_for(lambda: ledger.exists(), "the call to start")
    collected = run_cli("scalems-store", "gc", "--grace", "0")
    assert collected.returncode == 0, collected.stderr
    assert (root / "objects" / fp[:2] / fp[2:]).exists() and lease.exists()
    assert [p.name for p in (root / "tmp").glob(f"run-{fp[:12]}-*")], "run directory kept"
    second = start_exec(tmp_path, fp)
    time.sleep(1)
    assert second.poll() is None, "the second exec waits for the first"
    flag.unlink()
    _, err_first = first.communicate(timeout=60)
    out_second, _ = second.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0, err_first
    assert json.loads(out_second)["cached"] is True
    assert ledger.read_text() == "ran\n", "the call ran once"
    verified = run_cli("scalems-store", "verify")
    assert verified.returncode == 0, verified.stdout


def test_a_dead_runners_run_directory_goes_with_its_lease(run_cli: RunCli, tmp_path: Path) -> None:
    """A runner killed mid-call leaves its run directory; the next exec of the call, taking
    its lease over, removes it (not gc, 14 days later)."""
    root = tmp_path / ".scalems"
    flag, ledger = tmp_path / "flag", tmp_path / "ledger"
    flag.touch()
    with FileStore(root) as store:
        fp = pack(funcs.count_and_wait, (str(ledger), str(flag)), store=store)
    runner = start_exec(tmp_path, fp)
    wait_for(lambda: ledger.exists(), "the call to start")
    left = list((root / "tmp").glob(f"run-{fp[:12]}-*"))
    assert len(left) == 1
    runner.kill()
    runner.communicate()
    flag.unlink()
    again = run_cli("scalems-call", "exec", fp)
    assert again.returncode == 0, again.stderr
    assert not left[0].exists()


def test_a_call_whose_output_is_very_deep(run_cli: RunCli, tmp_path: Path) -> None:
    """An output directory 1,100 levels deep is recorded, read back, verified and kept by gc."""
    with FileStore(tmp_path / ".scalems") as store:
        fp = pack(funcs.deep, (1100,), store=store)
    done = run_cli("scalems-call", "exec", fp)
    assert done.returncode == 0 and TRACEBACK not in done.stderr, done.stderr
    assert run_cli("scalems-store", "gc", "--grace", "0").returncode == 0
    assert run_cli("scalems-store", "verify").returncode == 0
    got = run_cli("scalems-call", "result", fp, "-o", "out")
    assert got.returncode == 0, got.stderr
    bottom = tmp_path / "out" / "/".join(["d"] * 1100) / "bottom.txt"
    assert bottom.read_text() == "deep\n"
    remove_tree(tmp_path / "out")  # pytest's own clean-up recurses


def damage(root: Path, how: str) -> None:
    """Damage a store's roots or meta files the way a careless hand or a crash could."""
    labels = root / "refs" / "labels"
    if how == "garbage-label":
        (labels / "broken").write_bytes(b"\xff\xfe not a fingerprint")
    elif how == "directory-label":
        (labels / "a-directory").mkdir()
    elif how == "garbage-ref":
        ref = sorted(p for p in (root / "refs" / "calls").rglob("*") if p.is_file())[0]
        os.chmod(ref, 0o644)
        ref.write_bytes(b"\x00\x01garbage")
    elif how == "meta-refs-5":
        meta = sorted(p for p in (root / "meta").rglob("*") if p.is_file())[0]
        os.chmod(meta, 0o644)
        meta.write_text('{"kind": "result", "refs": 5}')


@pytest.mark.parametrize("how", ["garbage-label", "directory-label", "garbage-ref", "meta-refs-5"])
def test_damaged_roots_never_give_a_traceback(run_cli: RunCli, tmp_path: Path, how: str) -> None:
    """Damaged labels, refs and meta files: every command answers in one line or works; gc
    deletes nothing when a root cannot be read; verify reports the damage."""
    root = tmp_path / ".scalems"
    with FileStore(root) as store:
        fp = pack(funcs.add, (1, 2), store=store)
        store.set_label("sum", fp)
    assert run_cli("scalems-call", "exec", fp).returncode == 0
    damage(root, how)
    before = {p.name for p in (root / "objects").rglob("*")}
    collected = run_cli("scalems-store", "gc", "--grace", "0")
    assert collected.returncode == (0 if how == "meta-refs-5" else 1), collected.stderr
    assert {p.name for p in (root / "objects").rglob("*")} == before, "gc deleted nothing"
    assert run_cli("scalems-store", "verify").returncode == 1, "verify reports the damage"
    commands = [
        ("scalems-store", "info", fp),
        ("scalems-store", "label"),
        ("scalems-store", "label", "sum"),
        ("scalems-store", "ls", "--json"),
        ("scalems-store", "export", fp, "-o", "out.bundle"),
        ("scalems-call", "exec", fp),
        ("scalems-call", "result", fp),
        ("scalems-call", "ls"),
        ("scalems-store", "gc", "--grace", "0"),
        ("scalems-store", "verify"),
    ]
    for command in commands:
        done = run_cli(*command)
        assert TRACEBACK not in done.stderr, (command, done.stderr)
        assert len(done.stderr.decode().strip().splitlines()) <= 1, (command, done.stderr)


def test_deeply_nested_arguments_are_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    """--args-json nested 20,000 deep is a usage error, not a RecursionError."""
    nested = "[" * 20000 + "]" * 20000
    done = run_cli("scalems-call", "pack", "tests.scalems_call.funcs:add", "--args-json", nested)
    assert done.returncode == 2 and TRACEBACK not in done.stderr, done.stderr
    assert len(done.stderr.decode().strip().splitlines()) == 1


def test_export_of_a_corrupt_object_leaves_no_bundle(run_cli: RunCli, tmp_path: Path) -> None:
    """export of a corrupt object fails in one line and removes the partial bundle."""
    root = tmp_path / ".scalems"
    with FileStore(root) as store:
        blob = store.add_bytes(b"payload " * 1000)
        path = Path(store.object_path(blob))
    path.chmod(0o644)
    with open(path, "r+b") as stream:
        stream.write(b"X")
    done = run_cli("scalems-store", "export", blob, "-o", "out.bundle")
    assert done.returncode == 1 and b"CorruptObject" in done.stderr, done.stderr
    assert not (tmp_path / "out.bundle").exists()


HOSTILE_TREE = tarcraft.pax(tarcraft.record(b"size", b"-1536")) + tarcraft.pax(b"") + tarcraft.END


def test_a_hostile_tree_is_one_line_everywhere(run_cli: RunCli, tmp_path: Path) -> None:
    """A tree whose pax size once sent the parser back forever: get, exec of a call with it
    as skeleton, and verify all answer at once, in one line."""
    root = tmp_path / ".scalems"
    with FileStore(root) as store:
        tree = forge(store, HOSTILE_TREE, "tree")
        call = store.add_bytes(call_record(tree), kind="call")
    for command, status in (
        (("scalems-store", "get", tree, "-o", "out"), 1),
        (("scalems-call", "exec", call), 1),
        (("scalems-store", "verify"), 1),
    ):
        done = run_cli(*command, timeout=30)
        assert done.returncode == status and TRACEBACK not in done.stderr, (command, done)
    assert not (tmp_path / "out").exists()
    found = run_cli("scalems-store", "verify").stdout.decode()
    assert tree in found and "not one" in found


@pytest.mark.parametrize("made_by", ["hand", "gnu tar"])
def test_a_sparse_bundle_is_refused(run_cli: RunCli, tmp_path: Path, made_by: str) -> None:
    """A 10 KiB bundle whose sparse member would expand to 300 MiB is refused in one line;
    nothing is written, tmp/ stays empty."""
    data = HAND_SPARSE if made_by == "hand" else gnu_tar_sparse(tmp_path)
    (tmp_path / "sparse.bundle").write_bytes(data)
    FileStore(tmp_path / ".scalems").close()
    done = run_cli("scalems-store", "import", "sparse.bundle", timeout=30)
    assert done.returncode == 1 and b"sparse" in done.stderr and TRACEBACK not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path / ".scalems" / "tmp") == []
    assert list((tmp_path / ".scalems" / "objects").iterdir()) == []
