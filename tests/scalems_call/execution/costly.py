"""Calls that cost something known: CPU time and memory, in the call or a subprocess."""

from __future__ import annotations

import subprocess
import sys
import time

BURN = (
    "import time\n"
    "end = time.process_time() + {seconds}\n"
    "while time.process_time() < end:\n"
    "    pass\n"
)


def hold_memory(mib: int, seconds: float) -> int:
    """Touch *mib* MiB and burn *seconds* of CPU in this process."""
    block = bytearray(mib << 20)
    for at in range(0, len(block), 4096):
        block[at] = 1
    exec(BURN.format(seconds=seconds))
    return len(block)


def burn_in_subprocess(seconds: float) -> float:
    """Burn *seconds* of CPU in a child process, sleeping in this one."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", BURN.format(seconds=seconds)], check=True)
    return time.perf_counter() - started
