"""Scale-out benchmark: many short calls on 1 vs 2 workers, process pool and Dask.

Each call sleeps 50 ms. Reported: the speed-up of 2 workers over 1 for each
engine (target >= 1.8x), and the per-call overhead of going through the store
(pack + exec by fingerprint + result record) against submitting the same
function directly to the same executor.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from callfuncs import nap
from common import report

CALLS = 200


def _through_store(work: Path, name: str, executor: Executor, count: int) -> float:
    from scalems_call import pack
    from scalems_call.engines.executors import run_many
    from scalems_store import FileStore

    root = work / f"store-scale-{name}"
    shutil.rmtree(root, ignore_errors=True)
    with FileStore(root, durable=False) as store:
        fps = [pack(nap, (i,), store=store) for i in range(count)]
        start = time.perf_counter()
        results = run_many(fps, store=store, executor=executor)
        elapsed = time.perf_counter() - start
    assert all(r.status == "success" for r in results.values())
    return elapsed


def _direct(executor: Executor, count: int) -> float:
    start = time.perf_counter()
    futures = [executor.submit(nap, i) for i in range(count)]
    assert [f.result() for f in futures] == list(range(count))
    return time.perf_counter() - start


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _dask(workers: int) -> Any:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=50,
    )
    return cluster, Client(cluster)


def bench_scale(work: Path, quick: bool) -> None:
    count = 40 if quick else CALLS
    engines = {"process pool": _pool}
    try:
        import distributed  # noqa: F401

        engines["dask"] = _dask
    except ImportError:
        print("distributed is not installed: skipping Dask")
    for name, make in engines.items():
        timings = {}
        direct = {}
        for workers in (1, 2):
            made = make(workers)
            cluster, client = made if isinstance(made, tuple) else (None, None)
            executor = client.get_executor() if client is not None else made
            try:
                _direct(executor, 4)  # warm the workers up
                timings[workers] = _through_store(
                    work, f"{name}-{workers}".replace(" ", "-"), executor, count
                )
                direct[workers] = _direct(executor, count)
            finally:
                if cluster is not None and client is not None:
                    client.close()
                    cluster.close()
                else:
                    executor.shutdown()
        report(
            f"{name}: {count} x 50 ms calls, 2 workers vs 1",
            timings[1] / timings[2],
            1.0,
            "speed-up",
            ">= 1.8x",
            unit="x",
        )
        overhead = (timings[1] - direct[1]) / count
        report(
            f"{name}: overhead per call via the store",
            overhead,
            direct[1] / count,
            "direct submit per call",
            "info",
        )
