"""Functions the everyday-use tests pack into calls (importable by the child via PYTHONPATH)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def leave_specials() -> str:
    """Leave what a tree cannot hold in the output directory: a fifo, an absolute symlink."""
    Path("kept.txt").write_text("kept\n")
    os.mkfifo("pipe")
    os.symlink("/etc/hostname", "absolute")
    return "done"


def varying_log(lines: int) -> int:
    """Print the same lines each run but the last, and write them to log.txt too."""
    text = "".join(f"step {n}\n" for n in range(lines)) + f"finished at {time.time_ns()}\n"
    Path("log.txt").write_text(text)
    print(text, end="")
    return lines


def scale(values: list[float], factor: float = 2.0, *, label: str = "") -> list[float]:
    """A plain function with positional, default and keyword-only arguments."""
    return [v * factor for v in values]


def wait_while(flag: str) -> str:
    """Run until the file *flag* is removed."""
    while os.path.exists(flag):
        time.sleep(0.05)
    return "released"


def simulate(seed: int) -> int:
    """Write a small trajectory, traj.csv, that depends on *seed* (and a result/ directory)."""
    Path("traj.csv").write_text("".join(f"{step},{seed * step}\n" for step in range(5)))
    Path("result").mkdir(exist_ok=True)
    Path("result", "energy.txt").write_text(f"{seed * 10}\n")
    return seed


def analyse(trajectory: str) -> int:
    """Count the lines of a trajectory file given by path."""
    return len(Path(trajectory).read_text().splitlines())
