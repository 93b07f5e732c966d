"""A live line of progress for a graph run on a terminal, and a summary at its end."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from scalems_call.engines.schedule import Counts

_CLEAR = "\r\x1b[K"


def line(counts: Counts) -> str:
    """``12/200 done (5 cached, 1 failed), 2 running, about 1m20s left``."""
    text = (
        f"{counts.done}/{counts.total} done ({counts.cached} cached, {counts.failed} failed), "
        f"{counts.running} running"
    )
    eta = counts.eta()
    return text if eta is None else f"{text}, about {_duration(eta)} left"


def summary(counts: Counts) -> str:
    """``200 calls: 194 ran, 5 cached, 1 failed in 2m03s``."""
    ran = counts.done - counts.cached - counts.failed
    took = _duration(time.monotonic() - counts.started)
    return (
        f"{counts.total} calls: {ran} ran, {counts.cached} cached, {counts.failed} failed in {took}"
    )


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


@contextlib.contextmanager
def live(stream: TextIO) -> Iterator[Callable[[Counts], None] | None]:
    """Yield a reporter that keeps one line of progress on *stream* when it is a
    terminal (None otherwise); at the end, the line gives way to a summary."""
    if not stream.isatty():
        yield None
        return
    last: list[Counts] = []

    def show(counts: Counts) -> None:
        last[:] = [counts]
        stream.write(_CLEAR + line(counts))
        stream.flush()

    try:
        yield show
    finally:
        stream.write(_CLEAR)
        if last:
            stream.write(summary(last[0]) + "\n")
        stream.flush()
