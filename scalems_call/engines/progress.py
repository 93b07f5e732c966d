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
    """``12/200 done (5 cached, 1 failed), 2 running, 10 queued, about 1m20s left``:
    running calls have started; queued ones wait for the engine (or for this process)."""
    text = (
        f"{counts.done}/{counts.total} done ({counts.cached} cached, {counts.failed} failed), "
        f"{counts.running} running, {counts.queued} queued"
    )
    eta = counts.eta()
    return text if eta is None else f"{text}, about {_duration(eta)} left"


def summary(counts: Counts) -> str:
    """``200 calls: 194 ran, 5 cached, 1 failed in 2m03s``; for a run stopped by Ctrl-C,
    ``12 calls: 0 ran, 0 cached, 0 failed, 2 stopped, 10 not started in 1s``."""
    ran = counts.done - counts.cached - counts.failed
    took = _duration(time.monotonic() - counts.started)
    ended = f"{counts.total} calls: {ran} ran, {counts.cached} cached, {counts.failed} failed"
    if halted(counts):
        ended += f", {counts.stopped} stopped, {counts.not_started} not started"
    return f"{ended} in {took}"


def halted(counts: Counts) -> bool:
    """Whether the run was stopped (Ctrl-C, SIGTERM) before every call ended."""
    return bool(counts.stopped or counts.not_started)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


@contextlib.contextmanager
def live(stream: TextIO) -> Iterator[Callable[[Counts], None]]:
    """Yield a reporter that keeps one line of progress on *stream* when it is a
    terminal; at the end, the line gives way to a summary. Elsewhere (a log file) only
    a run that was stopped (Ctrl-C, SIGTERM) ends with the summary."""
    tty = stream.isatty()
    last: list[Counts] = []

    def show(counts: Counts) -> None:
        last[:] = [counts]
        if tty:
            stream.write(_CLEAR + line(counts))
            stream.flush()

    try:
        yield show
    finally:
        if tty:
            stream.write(_CLEAR)
        if last and (tty or halted(last[0])):
            stream.write(summary(last[0]) + "\n")
        stream.flush()
