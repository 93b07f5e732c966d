"""Functions whose calls write output files, for the tests of store growth (importable by
the child process that runs a call)."""

from __future__ import annotations

import os
import random


def write_output(seed: int, size: int) -> int:
    """Write *size* bytes, random from *seed*, to ``out/traj.bin`` in the work directory."""
    os.makedirs("out", exist_ok=True)
    with open(os.path.join("out", "traj.bin"), "wb") as stream:
        stream.write(random.Random(seed).randbytes(size))
    return size
