"""Many short calls on a real single-node Slurm (2 CPUs) through Parsl, against the same calls
on a local process pool and against plain Parsl apps on the same Slurm.

    python benchmarks/slurm_bench.py [--calls 200] [--repeat 3] [--workdir /dev/shm/...]
        [--modes ABCD] [--before BIN]

Each call sleeps 50 ms. Four whole processes, each timed from start to exit, alternated
(ABCD ABCD ...) with medians reported:

  A. ``scalems-call exec FP... --parsl-config slurm_config.py``: Parsl's SlurmProvider
     submits one block (a Slurm job) of 2 workers; every call runs in a worker as a
     ``python_app`` (as ``scalems-call exec`` would);
  B. ``scalems-call exec FP... --jobs 2``: a local process pool, no Slurm;
  C. the same function as plain Parsl ``python_app``s on the same config (a fresh Python
     that imports Parsl, loads the config, runs the apps, and cleans up);
  D. as C, but each call a plain Parsl ``bash_app`` that starts a fresh Python to sleep: the
     floor for any path that runs a call in an interpreter of its own.

  E. with ``--before BIN`` (the ``bin`` directory of another installation, an older
     checkout's venv): mode A with that installation, in the same rounds (its calls packed
     by its own Python, its Parsl workers started from its venv).

(A - C) / calls is the per-call overhead our path adds over plain Parsl; (D - C) / calls the
cost of one fresh interpreter per call, which our path no longer pays (the worker's fork
server starts each call's process). Slurm is started and stopped here (needs root,
slurm-wlm and munge: see tests/scalems_call/engines/hpc/localslurm.py). The stores are
on /dev/shm. Timings are a benchmark, never a test assertion.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import runpy
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SLEEP = 0.05


def sleeper(tag: int, seconds: float = SLEEP) -> int:
    """The benchmarked function: sleep, return the tag."""
    time.sleep(seconds)
    return tag


def python_sleep(tag: int, seconds: float = SLEEP) -> str:
    """The command line of mode D's bash app: a fresh Python that sleeps."""
    import shlex
    import sys

    return shlex.join([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def importable_sleeper() -> Callable[..., int]:
    """:func:`sleeper` from the module ``slurm_bench`` (not ``__main__``), so that it is
    serialized by reference and the workers import it (this directory is on their path)."""
    function: Callable[..., int] = importlib.import_module("slurm_bench").sleeper
    return function


def plain_parsl(config_path: str, calls: int, bash: bool = False) -> None:
    """Run *calls* sleepers as plain Parsl python apps on the config (mode C, in this
    process), or with *bash* as bash apps that each start a Python to sleep (mode D)."""
    import parsl
    from parsl import bash_app, python_app

    config = runpy.run_path(config_path)["config"]
    python_sleep = importlib.import_module("slurm_bench").python_sleep  # by reference, as above
    app = (
        bash_app(python_sleep, cache=False)
        if bash
        else python_app(importable_sleeper(), cache=False)
    )
    expected = [0] * calls if bash else list(range(calls))  # a bash app's exit status
    parsl.load(config)
    try:
        futures = [app(i) for i in range(calls)]
        assert [future.result() for future in futures] == expected
    finally:
        parsl.dfk().cleanup()


def pack_calls(root: Path, calls: int) -> list[str]:
    """A fresh store at *root* with *calls* sleeper calls; return their fingerprints."""
    from scalems_call import pack
    from scalems_store import FileStore

    importable = importable_sleeper()
    shutil.rmtree(root, ignore_errors=True)
    with FileStore(root, durable=False) as store:
        return [pack(importable, (i,), store=store) for i in range(calls)]


def pack_with(python: str, root: Path, calls: int) -> list[str]:
    """As :func:`pack_calls`, by another installation's *python*."""
    code = (
        "import json, shutil, sys; sys.path.insert(0, sys.argv[2]); "
        "from scalems_call import pack; from scalems_store import FileStore; "
        "from slurm_bench import sleeper; shutil.rmtree(sys.argv[1], ignore_errors=True); "
        "store = FileStore(sys.argv[1], durable=False); "
        f"print(json.dumps([pack(sleeper, (i,), store=store) for i in range({calls})]))"
    )
    done = subprocess.run(
        [python, "-c", code, str(root), str(HERE)], capture_output=True, text=True, check=True
    )
    fps: list[str] = json.loads(done.stdout)
    return fps


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise RuntimeError(f"{shlex.join(argv[:5])} ... exited {proc.returncode}\n{tail}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a dir on /dev/shm")
    parser.add_argument(
        "--quick-poll",
        action="store_true",
        help="Slurm polled every 1 s and 2 s heartbeats, as the tests run (default: "
        "Parsl's own settings, Slurm polled every 60 s, as on a real cluster)",
    )
    parser.add_argument(
        "--modes", default="ABCD", help="which of the modes A, B, C, D to run (default all)"
    )
    parser.add_argument(
        "--before", metavar="BIN", help="bin directory of an installation to compare (mode E)"
    )
    parser.add_argument("--plain-parsl", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--bash", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.plain_parsl:
        plain_parsl(options.plain_parsl, options.calls, options.bash)
        return

    sys.path.insert(0, str(REPO))
    from tests.scalems_call.engines.hpc import localslurm

    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    work = options.workdir or Path(tempfile.mkdtemp(prefix="slurm-bench-", dir=base))
    work.mkdir(parents=True, exist_ok=True)
    scalems_call = os.path.join(os.path.dirname(sys.executable), "scalems-call")
    pythonpath = os.pathsep.join([str(REPO), str(HERE)])
    venv_bin = os.path.dirname(sys.executable)
    try:
        with localslurm.running(work / "slurm") as slurm:
            print(f"Slurm up: node {slurm.node}, {slurm.node_cpus()} CPUs; work dir {work}")
            env = {**slurm.env, "PYTHONPATH": pythonpath, "SCALEMS_STORE_FSYNC": "0"}
            config = localslurm.write_parsl_config(
                work / "slurm_config.py",
                run_dir=work / "runinfo",
                workers=slurm.cpus,
                worker_init=(
                    f"export PATH={venv_bin}:$PATH; export PYTHONPATH={pythonpath}; "
                    "export SCALEMS_STORE_INDEX=off; export SCALEMS_STORE_FSYNC=0"
                ),
                cluster=not options.quick_poll,
            )
            before_config = work / "slurm_config_before.py"
            if options.before:
                localslurm.write_parsl_config(
                    before_config,
                    run_dir=work / "runinfo-before",
                    workers=slurm.cpus,
                    worker_init=(
                        f"export PATH={options.before}:$PATH; export PYTHONPATH={HERE}; "
                        "export SCALEMS_STORE_INDEX=off; export SCALEMS_STORE_FSYNC=0"
                    ),
                    cluster=not options.quick_poll,
                )
                options.modes += "E"
            n = options.calls

            def commands(fps: list[str], store: Path) -> dict[str, list[str]]:
                exec_ = [scalems_call, "--store", str(store), "exec", *fps]
                return {
                    "A scalems-call exec --parsl-config (Slurm)": [
                        *exec_,
                        "--parsl-config",
                        str(config),
                    ],
                    f"B scalems-call exec --jobs {slurm.cpus} (no Slurm)": [
                        *exec_,
                        "--jobs",
                        str(slurm.cpus),
                    ],
                    "C plain Parsl python_app (Slurm)": [
                        sys.executable,
                        __file__,
                        "--plain-parsl",
                        str(config),
                        "--calls",
                        str(n),
                    ],
                    "D plain Parsl bash_app, python -c (Slurm)": [
                        sys.executable,
                        __file__,
                        "--plain-parsl",
                        str(config),
                        "--calls",
                        str(n),
                        "--bash",
                    ],
                    "E the same as A, before (Slurm)": [
                        os.path.join(options.before or "", "scalems-call"),
                        "--store",
                        str(store),
                        "exec",
                        *fps,
                        "--parsl-config",
                        str(before_config),
                    ],
                }

            modes = [name for name in commands([], work) if name[0] in options.modes]
            times: dict[str, list[float]] = {name: [] for name in modes}
            load = os.getloadavg()[0]
            for round_ in range(options.repeat):
                for name in modes:
                    store = work / "store"
                    before = name.startswith("E")
                    # untimed: a fresh store, every call a miss
                    if before:
                        fps = pack_with(os.path.join(options.before, "python"), store, n)
                    else:
                        fps = pack_calls(store, n)
                    slurm.wait_idle(timeout=60)
                    run_env = {**env, "PYTHONPATH": str(HERE)} if before else env
                    times[name].append(timed(commands(fps, store)[name], run_env, work))
                    print(
                        f"  round {round_ + 1}: {name}: {times[name][-1]:.2f} s "
                        f"(load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
            median = {name: statistics.median(values) for name, values in times.items()}
            print(
                f"\n{n} calls of a {SLEEP * 1000:.0f} ms sleep, medians of {options.repeat} "
                f"(1-minute load average at the start {load:.1f}, at the end "
                f"{os.getloadavg()[0]:.1f}):"
            )
            for name, value in median.items():
                print(f"  {name:<45} {value:7.2f} s  ({value / n * 1000:.0f} ms/call)")
            by_mode = {name[0]: name for name in modes}
            if {"A", "C"} <= by_mode.keys():
                pairs = [
                    (a - c) / n * 1000
                    for a, c in zip(times[by_mode["A"]], times[by_mode["C"]], strict=True)
                ]
                print(
                    f"  A - C per call, round by round: {', '.join(f'{p:+.1f}' for p in pairs)} ms"
                )
            if {"E", "C"} <= by_mode.keys():
                pairs = [
                    (e - c) / n * 1000
                    for e, c in zip(times[by_mode["E"]], times[by_mode["C"]], strict=True)
                ]
                print(
                    f"  E - C per call (before), round by round: "
                    f"{', '.join(f'{p:+.1f}' for p in pairs)} ms"
                )
            if len(modes) != 4 or "E" in by_mode:
                return
            ours, local, plain, bash = (median[name] for name in modes)
            workers = slurm.cpus
            extra = (ours - plain) / n * 1000
            interpreter = (bash - plain) / n * 1000
            print(
                f"  overhead over plain Parsl: {extra:+.0f} ms of wall time per call, "
                f"{extra * workers:+.0f} ms per call on a worker "
                f"({workers} workers; {ours / plain:.2f}x); Slurm+Parsl vs local pool: "
                f"{ours / local:.2f}x"
            )
            print(
                f"  a fresh interpreter per call (D - C): {interpreter:+.0f} ms of "
                f"wall time per call, {interpreter * workers:+.0f} ms on a worker"
            )
    finally:
        if options.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
