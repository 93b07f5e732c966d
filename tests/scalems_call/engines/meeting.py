"""Calls that tell whether they ran at the same time as another."""

from __future__ import annotations

import time
from pathlib import Path


def meet(here: str, there: str, seconds: float = 10.0) -> bool:
    """Say *here*, then wait up to *seconds* for *there*: True if the other call came
    while this one ran (they ran at once), False if it never did."""
    Path(here).touch()
    deadline = time.monotonic() + seconds
    while not Path(there).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def both(first: bool, second: bool) -> bool:
    return first and second
