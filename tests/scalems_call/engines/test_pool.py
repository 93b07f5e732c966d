"""A lost worker costs one call: the local pool, Dask and the coordinator's retries."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path

import pytest

from scalems_call import pack
from scalems_call.engines.executors import (
    default_executor,
    parsl_engine,
    parsl_submit,
    pool_submit,
)
from scalems_call.engines.pool import WorkerLost, WorkerPool
from scalems_call.engines.schedule import Engine, Outcome, Submit, run_graph
from scalems_store import FileStore
from scalems_store.store.lease import lease_dir, read_holder
from tests.conftest import loopback_cluster, loopback_parsl_config
from tests.scalems_call import funcs


def first_runner(store: FileStore, fps: list[str], skip: set[int]) -> tuple[str, int]:
    """The first call (and the PID of its worker) found running, by the lease it holds."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for fp in fps:
            holder = read_holder(os.path.join(lease_dir(store.root), fp))
            pid = None if holder is None else holder.get("pid")
            if isinstance(pid, int) and pid not in skip:
                return fp, pid
        time.sleep(0.05)
    raise AssertionError("no call started")


def run_in_thread(
    store: FileStore,
    fps: list[str],
    executor: Executor | Engine,
    submit: Submit | None = None,
    *,
    leases: bool = True,
) -> tuple[threading.Thread, dict[str, Outcome], list[str]]:
    """Run *fps* on *executor* (left open; or an engine, which makes one) in a thread; the
    outcomes and the retries logged. *leases*: as :func:`run_graph` takes it (false where
    the runners take their leases in stores of their own)."""
    outcomes: dict[str, Outcome] = {}
    retries: list[str] = []

    @contextlib.contextmanager
    def given() -> Iterator[Executor]:
        assert isinstance(executor, Executor)
        yield executor

    def go() -> None:
        outcomes.update(
            run_graph(
                store,
                fps,
                engine=given if isinstance(executor, Executor) else executor,
                submit=submit or pool_submit(store, None),
                retries=2,
                log=retries.append,
                leases=leases,
            )
        )

    thread = threading.Thread(target=go)
    thread.start()
    return thread, outcomes, retries


def test_a_killed_pool_worker_costs_only_its_call(store: FileStore) -> None:
    """kill -9 of one worker among queued calls: only its call uses a retry, every call
    succeeds, and the pool is back at full width (a new worker took the dead one's place)."""
    fps = [pack(funcs.sleep, (0.5 + i / 1000,), store=store) for i in range(6)]
    pool = default_executor(2)
    assert isinstance(pool, WorkerPool)
    try:
        thread, outcomes, retries = run_in_thread(store, fps, pool)
        victim, pid = first_runner(store, fps, set())
        os.kill(pid, signal.SIGKILL)
        thread.join(120)
        assert not thread.is_alive()
        assert {fp: outcomes[fp].state for fp in fps} == dict.fromkeys(fps, "success")
        assert len(retries) == 1, retries
        assert victim[:12] in retries[0] and "WorkerLost" in retries[0]
        assert "SIGKILL" in retries[0]
        assert pool.lost == 1
        workers = pool.processes()
        assert len(workers) == 2 and pid not in workers
    finally:
        pool.shutdown()
    assert pool.processes() == []


def test_pool_runs_calls_and_reports_their_errors() -> None:
    """Results and exceptions come back as they would from a ProcessPoolExecutor; a worker
    dying between calls is replaced without failing anything."""
    with WorkerPool(2) as pool:
        assert pool.submit(pow, 2, 10).result(60) == 1024
        failing = pool.submit(int, "x")
        with pytest.raises(ValueError, match="invalid literal"):
            failing.result(60)
        pids = pool.processes()
        assert len(pids) in (1, 2)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        while set(pids) & set(pool.processes()):
            time.sleep(0.01)
        assert [f.result(60) for f in [pool.submit(abs, -n) for n in range(6)]] == list(range(6))
        assert pool.lost == 0  # the deaths fell between calls: nothing was running
        assert not set(pids) & set(pool.processes())


def test_a_call_whose_worker_dies_fails_with_worker_lost() -> None:
    """The future of the call that was running says the worker was lost, and how."""
    with WorkerPool(1) as pool:
        assert pool.submit(abs, -1).result(60) == 1  # the worker exists
        (pid,) = pool.processes()
        lost = pool.submit(os._exit, 3)
        with pytest.raises(WorkerLost, match=f"pool worker {pid} died \\(exit status 3\\)"):
            lost.result(60)
        assert pool.submit(abs, -7).result(60) == 7


def test_leaving_on_an_error_cancels_the_queued_calls() -> None:
    """Ctrl-C in the coordinator: the calls running end, the queued ones never start."""
    pool = WorkerPool(1)
    with pytest.raises(KeyboardInterrupt), pool:
        running = pool.submit(time.sleep, 0.5)
        queued = pool.submit(abs, -1)
        while not running.running():
            time.sleep(0.01)
        raise KeyboardInterrupt
    assert running.result(0) is None
    assert queued.cancelled()


def test_dask_worker_killed_costs_at_most_its_call(store: FileStore) -> None:
    """Dask: a worker killed by its lease's PID is replaced by its nanny and its call run
    again elsewhere; every call succeeds, with at most one retry of ours."""
    distributed = pytest.importorskip("distributed")
    fps = [pack(funcs.sleep, (0.5 + i / 1000,), store=store) for i in range(6)]
    with loopback_cluster(2) as cluster, distributed.Client(cluster) as client:
        thread, outcomes, retries = run_in_thread(store, fps, client.get_executor())
        victim, pid = first_runner(store, fps, {os.getpid()})
        os.kill(pid, signal.SIGKILL)
        thread.join(180)
        assert not thread.is_alive()
        assert {fp: outcomes[fp].state for fp in fps} == dict.fromkeys(fps, "success")
        assert len(retries) <= 1 and all(victim[:12] in line for line in retries)
        client.wait_for_workers(2, timeout=60)


def test_parsl_worker_lost_costs_only_its_call(store: FileStore, tmp_path: Path) -> None:
    """Parsl (a HighThroughputExecutor, one local block of 2 workers): a worker killed by
    its lease's PID fails only its call, with Parsl's WorkerLost; that call is retried
    once, the queued calls keep their retries, and every call succeeds."""
    # the block's watchdog looks for dead workers every heartbeat_period
    config = loopback_parsl_config(tmp_path / "runinfo", heartbeat_period=1)
    fps = [pack(funcs.sleep, (0.5 + i / 1000,), store=store) for i in range(6)]
    engine = parsl_engine(store, config)
    thread, outcomes, retries = run_in_thread(store, fps, engine, parsl_submit(None))
    victim, pid = first_runner(store, fps, {os.getpid()})
    os.kill(pid, signal.SIGKILL)
    thread.join(180)
    assert not thread.is_alive()
    assert {fp: outcomes[fp].state for fp in fps} == dict.fromkeys(fps, "success")
    assert len(retries) == 1, retries
    assert victim[:12] in retries[0] and "WorkerLost" in retries[0]


def test_a_broken_process_pool_is_made_again_once(store: FileStore) -> None:
    """An engine that is a ``ProcessPoolExecutor`` breaks as a whole when a worker dies: the
    coordinator makes a new one once for all the calls it held (it used to make one per
    call, each shutting down the last and waiting for its call: the calls ran one at a time)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    fps = [pack(funcs.sleep, (0.5 + i / 1000,), store=store) for i in range(6)]
    made: list[ProcessPoolExecutor] = []

    @contextlib.contextmanager
    def engine() -> Iterator[Executor]:
        made.append(ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")))
        with made[-1]:
            yield made[-1]

    retries: list[str] = []
    outcomes: dict[str, Outcome] = {}
    thread = threading.Thread(
        target=lambda: outcomes.update(
            run_graph(
                store,
                fps,
                engine=engine,
                submit=pool_submit(store, None),
                log=retries.append,
            )
        )
    )
    thread.start()
    _, pid = first_runner(store, fps, set())
    os.kill(pid, signal.SIGKILL)
    thread.join(120)
    assert {fp: outcomes[fp].state for fp in fps} == dict.fromkeys(fps, "success")
    assert retries and all("BrokenProcessPool" in line for line in retries)
    assert len(made) == 2
