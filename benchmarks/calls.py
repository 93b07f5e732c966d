"""Calls at scale: the runner's own cost per call, and graphs of thousands of calls.

- runner cost: 200 trivial calls through ``run_many`` on 2 process-pool workers,
  against the same function submitted straight to the same pool; with the fork
  server (the default) and with a fresh interpreter per call;
- planning a graph of 10,000 calls (200 fan-ins of 50 calls each, then one
  reducer) and ``scalems-call status`` of it, against nothing: the target is
  absolute (< 1 s);
- a fully cached graph of 1,000 calls, one ``run``, against 1,000 single cache hits;
- a fan-out of 200 x 50 ms calls and one reducer, 2 workers against 1;
- ``scalems-call pack --many`` of 200 calls, against a Python process packing the
  same 200 with ``pack()`` (the target is absolute: < 2 s).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from callfuncs import nap, total, trivial
from common import PY, Command, fresh, report, timed_pair, tool

CALLS = 200


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _fresh_store(work: Path, name: str) -> Any:
    from scalems_store import FileStore

    root = work / f"store-calls-{name}"
    shutil.rmtree(root, ignore_errors=True)
    return FileStore(root, durable=False)


def _runner_cost(work: Path, count: int, forkserver: str) -> tuple[float, float]:
    """Wall time of *count* trivial calls via ``run_many`` and straight to the same pool."""
    from scalems_call import pack
    from scalems_call.engines.executors import run_many

    os.environ["SCALEMS_CALL_FORKSERVER"] = forkserver  # the pool's workers inherit it
    try:
        with _fresh_store(work, f"cost-{forkserver}") as store, _pool(2) as pool:
            list(pool.map(trivial, range(8)))  # workers up and warm
            run_many(
                [pack(trivial, (-1 - i,), store=store) for i in range(4)],
                store=store,
                executor=pool,
            )  # each worker's fork server up
            fps = [pack(trivial, (i,), store=store) for i in range(count)]
            start = time.perf_counter()
            results = run_many(fps, store=store, executor=pool)
            ours = time.perf_counter() - start
            assert all(r.status == "success" for r in results.values())
            start = time.perf_counter()
            assert list(
                f.result() for f in [pool.submit(trivial, i) for i in range(count)]
            ) == list(range(count))
            direct = time.perf_counter() - start
    finally:
        os.environ.pop("SCALEMS_CALL_FORKSERVER", None)
    return ours, direct


def _fan(store: Any, fans: int, width: int, func: Any = trivial) -> str:
    """Pack *fans* fan-ins of *width* calls each, and one reducer of the fan-ins."""
    from scalems_call import output, pack

    tag = 0
    middles = []
    for _ in range(fans):
        leaves = []
        for _ in range(width):
            leaves.append(output(pack(func, (tag,), store=store)))
            tag += 1
        middles.append(output(pack(total, (leaves,), store=store)))
    return pack(total, (middles,), store=store)


def bench_calls(work: Path, quick: bool) -> None:
    from scalems_call import run
    from scalems_call.engines import graph
    from scalems_call.engines.executors import run_many

    count = 40 if quick else CALLS
    for forkserver, name in (("on", "fork server"), ("off", "fresh interpreter")):
        ours, direct = _runner_cost(work, count, forkserver)
        # 2 workers run calls side by side: a worker spends twice the wall time on each
        per_call = 2 * (ours - direct) / count
        report(
            f"runner cost per trivial call, 2 workers ({name})",
            per_call,
            2 * direct / count,
            "same function, same pool",
            "<= 10 ms" if forkserver == "on" else "info",
        )

    fans, width = (20, 50) if quick else (200, 50)
    with _fresh_store(work, "plan") as store:
        root = _fan(store, fans, width)
        start = time.perf_counter()
        planned = graph.plan(store, [root])
        graph.states(store, planned)
        planning = time.perf_counter() - start
        report(
            f"plan + states of a {fans * (width + 1) + 1}-call graph",
            planning,
            1.0,
            "the target",
            "< 1 s",
        )
        call_cli = tool("scalems-call")
        start = time.perf_counter()
        subprocess.run(
            [call_cli, "--store", str(store.root), "status", root, "--json"],
            stdout=subprocess.DEVNULL,
            check=False,
        )
        status = time.perf_counter() - start
        report(
            f"scalems-call status of the {fans * (width + 1) + 1}-call graph",
            status,
            1.0,
            "the target",
            "< 1 s",
        )

    fans = 2 if quick else 20
    with _fresh_store(work, "cached") as store:
        root = _fan(store, fans, 49)
        with _pool(2) as pool:
            run_many([root], store=store, executor=pool)
        planned = graph.plan(store, [root])
        calls = list(planned.nodes)
        start = time.perf_counter()
        assert run(root, store=store).cached
        whole = time.perf_counter() - start
        start = time.perf_counter()
        for fp in calls:
            run(fp, store=store)
        singles = time.perf_counter() - start
        report(
            f"run() of a cached {len(calls)}-call graph",
            whole,
            singles,
            f"{len(calls)} single cache hits",
            "< 2x",
        )

    fans, width = (4, 10) if quick else (4, 50)
    timings = {}
    for workers in (1, 2):
        with _fresh_store(work, f"fan-{workers}") as store, _pool(workers) as pool:
            list(pool.map(trivial, range(4)))
            root = _fan(store, fans, width, nap)
            start = time.perf_counter()
            assert run_many([root], store=store, executor=pool)[root].status == "success"
            timings[workers] = time.perf_counter() - start
    report(
        f"fan-out {fans * width} x 50 ms + reducers, 2 workers vs 1",
        timings[1] / timings[2],
        1.0,
        "speed-up",
        ">= 1.7x",
        unit="x",
    )


def bench_pack_many(work: Path, quick: bool) -> None:
    """``pack --many`` of 200 calls (a fresh store each time) against ``pack()`` in Python."""
    count = 40 if quick else CALLS
    lines = work / "pack-many.jsonl"
    lines.write_text("".join(f'{{"args": [{i}]}}\n' for i in range(count)))
    ours_store, peer_store = work / "store-pack-many", work / "store-pack-api"
    here = str(Path(__file__).resolve().parent)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    script = (
        "from callfuncs import trivial; from scalems_call import pack; "
        "from scalems_store import FileStore\n"
        f"with FileStore({str(peer_store)!r}) as store:\n"
        f"    print(*(pack(trivial, (i,), store=store) for i in range({count})), sep='\\n')"
    )
    cli = tool("scalems-call")
    argv = [cli, "--store", str(ours_store), "pack", "callfuncs:trivial", "--many", str(lines)]
    ours, peer = timed_pair(
        Command(argv, env, fresh(ours_store)),
        Command([PY, "-c", script], env, fresh(peer_store)),
        repeat=5,
    )
    report(f"pack --many, {count} calls", ours, peer, f"pack() x {count}, one process", "< 2 s")
