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
