"""A lost pool worker: ``scalems-call exec`` of 12 calls of 2 s under ``--jobs 2``, with one
worker killed (SIGKILL) a second into its call, against the same run without the kill
(target: <= 1.2x). Runs alternated, medians.

Usage::

    python benchmarks/lostworker.py [--python PY] [--repeat N] [--workdir DIR]

``--python`` picks the interpreter (and so the installed version) that packs and runs
the calls: another checkout's venv measures the "before" side the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CALLS = 12
SECONDS = 2.0


def pack(python: str, store: Path) -> list[str]:
    """Pack the calls into a fresh *store* with *python*; return their fingerprints."""
    shutil.rmtree(store, ignore_errors=True)
    code = (
        "import sys, json; from scalems_call import pack; from callfuncs import nap; "
        "from scalems_store import FileStore; store = FileStore(sys.argv[1]); "
        f"print(json.dumps([pack(nap, (i, {SECONDS}), store=store) for i in range({CALLS})]))"
    )
    done = subprocess.run(
        [python, "-c", code, str(store)],
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(HERE)},
        capture_output=True,
        text=True,
        check=True,
    )
    fps: list[str] = json.loads(done.stdout)
    return fps


def holder(store: Path) -> int | None:
    """The PID holding the first lease found (a worker running a call), if any."""
    leases = store / "tmp" / "leases"
    try:
        names = sorted(p for p in leases.iterdir() if len(p.name) == 64)
    except FileNotFoundError:
        return None
    for path in names:
        try:
            pid = json.loads(path.read_text()).get("pid")
        except (OSError, ValueError):
            continue
        if isinstance(pid, int):
            return pid
    return None


def run(python: str, store: Path, fps: list[str], kill: bool) -> tuple[float, int]:
    """Wall time of one exec of all calls, and the retries it logged."""
    cli = [str(Path(python).parent / "scalems-call"), "--store", str(store)]
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*cli, "exec", *fps, "--jobs", "2"],
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(HERE)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if kill:
        pid = None
        while pid is None and proc.poll() is None:
            pid = holder(store)
            time.sleep(0.02)
        time.sleep(1.0)  # a second into its call
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    return wall, sum("retry" in line for line in err.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default="/dev/shm/scalems-bench")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    times: dict[bool, list[float]] = {False: [], True: []}
    retries: list[int] = []
    for _ in range(args.repeat):
        for kill in (False, True):
            store = work / "store-lostworker"
            fps = pack(args.python, store)
            wall, retried = run(args.python, store, fps, kill)
            times[kill].append(wall)
            if kill:
                retries.append(retried)
            print(
                f"{'kill' if kill else 'no kill'}: {wall:.1f} s, {retried} retries "
                f"(load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    plain, killed = statistics.median(times[False]), statistics.median(times[True])
    pairs = [k / p for p, k in zip(times[False], times[True], strict=True)]
    print(
        f"kill -9 of one worker, {CALLS} calls of {SECONDS:g} s, --jobs 2: {killed:.1f} s "
        f"vs {plain:.1f} s without: {killed / plain:.2f}x (target <= 1.2x; pair by pair "
        f"{', '.join(f'{r:.2f}' for r in pairs)}, median {statistics.median(pairs):.2f}x); "
        f"retries used {retries}"
    )


if __name__ == "__main__":
    main()
