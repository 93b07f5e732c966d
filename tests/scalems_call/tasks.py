"""Functions made tasks, as a notebook user would (importable by the call's child)."""

from __future__ import annotations

import os
from pathlib import Path

from scalems_call import task

STORE = os.environ.get("SCALEMS_TEST_TASK_STORE")


@task(store=STORE)
def simulate(seed: int) -> int:
    Path("traj.csv").write_text("".join(f"{seed},{i}\n" for i in range(seed + 1)))
    return seed * 10


@task(store=STORE)
def analyze(values: list[int], trajectory: str) -> int:
    return sum(values) + len(Path(trajectory).read_text().splitlines())
