"""Issue 24, item 6: the store need not only grow. ``gc --keep-results N`` keeps the newest
N results of each call; ``scalems-call forget`` drops a call's results. Both keep what a
label or a kept result reaches, and both have --dry-run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from scalems_call import pack, run
from scalems_call.identity.upstream import output
from scalems_store import FileStore
from tests.conftest import RunCli
from tests.scalems_call.cmdline import everyday_funcs
from tests.scalems_store.cli.test_store_cli import one_line_error


def _verified(run_cli: RunCli) -> bool:
    """verify finds nothing gc removed that anything needs (refs/cutoff/ keys are content
    keys, not objects: verify on main reports them, which is not this test's concern)."""
    done = run_cli("scalems-store", "verify")
    problems = [line for line in done.stdout.decode().splitlines() if "refs/cutoff/" not in line]
    return problems == []


class History(NamedTuple):
    up: str
    down: str
    results: list[str]


def _record(store: FileStore, fp: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(store.read_bytes(fp))
    return record


@pytest.fixture
def history(tmp_path: Path) -> History:
    """A call run four times (R1 labelled, R2 consumed by a downstream call, R3, R4 newest),
    each run writing a different log.txt and stdout."""
    with FileStore(tmp_path / ".scalems") as store:
        up = pack(everyday_funcs.varying_log, (2,), store=store)
        down = pack(everyday_funcs.analyse, (output(up, "log.txt"),), store=store)
        results = []
        for number in range(4):
            results.append(str(run(up, store=store, force=number > 0).fingerprint))
            if number == 1:
                assert run(down, store=store).status == "success"
        store.set_label("first-run", results[0])
        assert store.get_ref("calls", up) == results[::-1]
        down_result = store.get_ref("calls", down)[0]
        consumed = _record(store, down_result)["consumed"]
        assert [c["result"] for c in consumed] == [f"blake3:{results[1]}"]
    return History(up, down, results)


def _unique_objects(store: FileStore, result: str) -> set[str]:
    record = _record(store, result)
    return {result, *(record[f].removeprefix("blake3:") for f in ("stdout", "directory"))}


def test_gc_keep_results(run_cli: RunCli, tmp_path: Path, history: History) -> None:
    """gc --keep-results 1 keeps R4 (newest) recorded; of the others only R3's objects go:
    R1 is labelled, R2 consumed by a kept result; --dry-run changes nothing."""
    r1, r2, r3, r4 = history.results
    up = history.up
    with FileStore(tmp_path / ".scalems") as store:
        doomed = _unique_objects(store, r3)
        kept = set().union(*(_unique_objects(store, r) for r in (r1, r2, r4)))
        before = sorted(store.iter_fingerprints())
    dry = run_cli(
        "scalems-store", "gc", "--keep-results", "1", "--grace", "0", "--dry-run", "--json"
    )
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["forgotten"] == [{"call": up, "result": r} for r in (r3, r2, r1)]
    assert set(report["removed"]) == doomed
    with FileStore(tmp_path / ".scalems") as store:
        assert sorted(store.iter_fingerprints()) == before
        assert store.get_ref("calls", up) == [r4, r3, r2, r1]
    done = run_cli("scalems-store", "gc", "--keep-results", "1", "--grace", "0")
    assert done.returncode == 0, done.stderr
    assert "forgot 3 older results of 1 calls" in done.stderr.decode()
    with FileStore(tmp_path / ".scalems") as store:
        assert store.get_ref("calls", up) == [r4]
        present = set(store.iter_fingerprints())
        assert not doomed & present and kept <= present
        assert store.get_ref("calls", history.down)  # other calls untouched
    assert _verified(run_cli)
    assert run_cli("scalems-call", "exec", up, "--json").stdout.count(b'"cached": true') == 1


def test_gc_keep_results_must_be_positive(run_cli: RunCli, history: History) -> None:
    """--keep-results 0 is a usage error (forget drops every result, by name)."""
    proc = run_cli("scalems-store", "gc", "--keep-results", "0")
    assert proc.returncode == 2 and "Usage error" in one_line_error(proc)


def test_forget(run_cli: RunCli, tmp_path: Path, history: History) -> None:
    """forget CALL drops its results; the next exec runs it again; a gc then removes what
    nothing else reaches (not R1, labelled, nor R2, consumed by a kept result)."""
    r1, r2, r3, r4 = history.results
    up = history.up
    with FileStore(tmp_path / ".scalems") as store:
        store.set_label("the-step", up)
        doomed = _unique_objects(store, r3) | _unique_objects(store, r4)
    dry = run_cli("scalems-call", "forget", "the-step", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.decode().split() == [
        "would", "forget", r4, "(call", f"{up[:12]})",
        "would", "forget", r3, "(call", f"{up[:12]})",
        "would", "forget", r2, "(call", f"{up[:12]})",
        "would", "forget", r1, "(call", f"{up[:12]})",
    ]  # fmt: skip
    with FileStore(tmp_path / ".scalems") as store:
        assert store.get_ref("calls", up) == [r4, r3, r2, r1]
    done = run_cli("scalems-call", "forget", "the-step")
    assert done.returncode == 0, done.stderr
    with FileStore(tmp_path / ".scalems") as store:
        assert store.get_ref("calls", up) == []
    assert run_cli("scalems-store", "gc", "--grace", "0").returncode == 0
    with FileStore(tmp_path / ".scalems") as store:
        present = set(store.iter_fingerprints())
        assert not doomed & present
        assert {up, r1, r2} <= present  # the label keeps the call; a kept result keeps R2
    again = run_cli("scalems-call", "exec", up, "--json")
    assert json.loads(again.stdout)["cached"] is False
    assert _verified(run_cli)


def test_forget_refuses_what_is_not_a_call(run_cli: RunCli, history: History) -> None:
    """forget of a result (or a missing name) is one line, exit 1, and changes nothing."""
    proc = run_cli("scalems-call", "forget", history.results[0])
    assert proc.returncode == 1 and "not a call" in one_line_error(proc)
    proc = run_cli("scalems-call", "forget", "no-such-label")
    assert proc.returncode == 1
