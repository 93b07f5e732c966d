"""@task and submit(executor=...): the Python face of graphs."""

from __future__ import annotations

import importlib
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import pytest

from scalems_call import CallFailed, CallResult, submit
from scalems_call.execution import cache
from scalems_store import FileStore
from tests.scalems_call import funcs


def test_a_task_packs_when_called_and_runs_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calling a task packs (nothing runs); a handle is an argument of another task;
    .result() runs what is missing and returns the value; .fingerprint names the call."""
    monkeypatch.setenv("SCALEMS_TEST_TASK_STORE", str(tmp_path / "store"))
    from tests.scalems_call import tasks

    tasks = importlib.reload(tasks)
    sims = [tasks.simulate(seed) for seed in range(3)]
    ana = tasks.analyze(sims, sims[2].output("traj.csv"))
    store = FileStore(tmp_path / "store")
    assert all(cache.hit(store, s.fingerprint) is None for s in sims), "packing runs nothing"
    assert ana.result() == 0 + 10 + 20 + 3
    assert cache.hit(store, ana.fingerprint) is not None
    called = {fp for fp in store.references(ana.fingerprint) if store.kind(fp) == "call"}
    assert called == {s.fingerprint for s in sims}
    assert tasks.analyze(sims, sims[2].output("traj.csv")).fingerprint == ana.fingerprint


def test_a_failing_task_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """.result() of a task that failed raises CallFailed with what went wrong."""
    from scalems_call import task

    store = FileStore(tmp_path / "store")
    failing = task(funcs.fail_and_count, store=store)  # not a decorator: the name is kept
    with pytest.raises(CallFailed, match="deliberate failure"):
        failing(str(tmp_path / "ledger")).result()


def test_submit_with_an_executor_returns_a_future(store: FileStore, tmp_path: Path) -> None:
    """submit(..., executor=pool) returns a Future of a CallResult; without one, the
    CallResult itself (SCALE-MS)."""
    here = submit(funcs.add, (1, 2), store=store)
    assert isinstance(here, CallResult) and here.return_value == 3
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = submit(funcs.add, (2, 3), store=store, executor=pool)
        assert isinstance(future, Future)
        assert future.result(timeout=120).return_value == 5
