"""What every benchmark group shares: timing whole commands and calls, and reporting
each figure as a ratio against a peer measured in the same run."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

BIN = Path(sys.executable).parent
PY = sys.executable
ROWS: list[tuple[str, str, str, str]] = []


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if not found:
        raise SystemExit(f"benchmark needs {name!r} on PATH")
    return found


class Command(NamedTuple):
    """A whole command to time, with its environment and a step run untimed before it."""

    argv: list[str]
    env: dict[str, str] | None = None
    before: Callable[[], None] | None = None


def run_timed(command: Command | list[str]) -> float:
    """Wall time of one run of *command*, in seconds (its ``before`` step untimed)."""
    if not isinstance(command, Command):
        command = Command(command)
    if command.before is not None:
        command.before()
    start = time.perf_counter()
    subprocess.run(
        command.argv,
        check=True,
        env={**os.environ, **(command.env or {})},
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def timed(command: Command | list[str], repeat: int = 5) -> float:
    """Median wall time of a whole command, in seconds."""
    return statistics.median(run_timed(command) for _ in range(repeat))


def timed_pair(
    ours: Command | list[str], peer: Command | list[str], repeat: int = 21
) -> tuple[float, float]:
    """Median wall times of two commands, run alternately so that machine drift cancels."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        a.append(run_timed(ours))
        b.append(run_timed(peer))
    return statistics.median(a), statistics.median(b)


def in_process(func: Callable[[], object], repeat: int = 2000) -> float:
    """Median per-call time of *func* over batches, in seconds."""
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            func()
        batches.append((time.perf_counter() - start) / repeat)
    return statistics.median(batches)


def report(
    what: str, ours: float, peer: float, peer_name: str, target: str, unit: str = "s"
) -> None:
    ratio = ours / peer if peer else float("inf")
    scale, suffix = (1000, "ms") if unit == "s" and max(ours, peer) < 1 else (1, unit)
    ROWS.append(
        (
            what,
            f"{ours * scale:.2f} {suffix}",
            f"{peer_name} {peer * scale:.2f} {suffix}",
            f"{ratio:.2f}x  (target {target})",
        )
    )
    print(
        f"{what:<48} {ours * scale:9.2f} {suffix:<3} vs {peer_name:<28} {peer * scale:9.2f}"
        f" {suffix:<3} ratio {ratio:5.2f}  (target {target})",
        flush=True,
    )


def fresh(path: Path) -> Callable[[], None]:
    def clear() -> None:
        shutil.rmtree(path, ignore_errors=True)

    return clear
