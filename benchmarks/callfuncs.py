"""The functions benchmark calls run: a module that imports nothing heavy, so that a
call's child pays for its own function's import only (as a user's small module)."""

from __future__ import annotations

import time

SLEEP = 0.05


def trivial(tag: int) -> int:
    return tag


def nap(tag: int, seconds: float = SLEEP) -> int:
    time.sleep(seconds)
    return tag


def total(values: list[int]) -> int:
    return sum(values)


def simulate(seed: int, diverge: bool = False) -> int:
    """Write two small output files, or, asked to diverge, fail first."""
    if diverge:
        raise FloatingPointError(f"seed {seed} diverged")
    with open("traj.csv", "w") as stream:
        stream.write(f"{seed},0\n")
    with open("md.log", "w") as stream:
        stream.write("done\n")
    return seed
