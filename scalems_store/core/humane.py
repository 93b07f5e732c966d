"""How both command-line tools show sizes, durations, paths and news to people.

Text output is for reading: ``1.2 MiB``, ``3m 04s``, ``.scalems``. JSON output
keeps exact numbers (bytes, seconds) and absolute paths. Nothing here imports
click, so the quick paths use it too.
"""

from __future__ import annotations

import os
import sys

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size(count: int) -> str:
    """A byte count in binary units, three significant digits at most: ``1.2 MiB``.

    Args:
        count: A number of bytes (not negative).

    Returns:
        ``"0 B"`` ... ``"1023 B"``, then ``"1.0 KiB"``, ``"12.5 MiB"``, ``"512 GiB"``.
    """
    value = float(count)
    for unit in _UNITS:
        # compared as printed, so that 1023.96 KiB shows as 1.0 MiB, not 1024.0 KiB
        if round(value, 1) < 1024 or unit == _UNITS[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{count} B"
    return f"{value:.1f} {unit}" if round(value, 1) < 100 else f"{value:.0f} {unit}"


def duration(seconds: float) -> str:
    """A duration as people read it: ``0.42 s``, ``12.3 s``, ``3m 04s``, ``2h 05m``, ``3d 4h``.

    Args:
        seconds: A duration in seconds (not negative).
    """
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def path(where: str) -> str:
    """*where* as a user would type it here: relative when it lies under the current
    directory (``.scalems``), else absolute."""
    absolute = os.path.abspath(where)
    try:
        here = os.getcwd()
    except OSError:  # the current directory was removed
        return absolute
    relative = os.path.relpath(absolute, here)
    return absolute if relative.startswith("..") else relative


def announce_created(root: str) -> None:
    """Tell the person at the terminal that the store at *root* was just created.

    One line on stderr, ``created store .scalems``, when stderr is a terminal (as
    progress bars are): a script's stderr, and a test runner's, stays the command's
    own diagnostics.
    """
    if sys.stderr.isatty():
        print(f"created store {path(root)}", file=sys.stderr, flush=True)
