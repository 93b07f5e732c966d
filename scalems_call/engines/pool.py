"""The local process pool: a worker that dies costs only the call it was running.

``concurrent.futures.ProcessPoolExecutor`` breaks as a whole when one worker
dies: every call it holds, queued ones included, fails with ``BrokenProcessPool``,
its other workers are terminated, and it takes no more work. Here each worker
is a process of its own, served by a thread of the coordinator that hands it
one call at a time: when it dies, that call alone fails, with
:class:`WorkerLost` (which the coordinator retries), a new worker takes its
place, and the queued calls run as if nothing had happened.

Workers are started (``spawn``: safe with the coordinator's threads) when the
first calls arrive, one per call up to the pool's width.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from multiprocessing.connection import Connection, wait
from typing import Any

Work = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class WorkerLost(Exception):
    """The worker process running a call died (killed, out of memory...) before it answered."""


class WorkerPool(Executor):
    """Runs submitted functions in *workers* processes, one call at a time each.

    Args:
        workers: How many calls run at once.
        context: The ``multiprocessing`` context that starts workers (``spawn`` by default).
    """

    def __init__(self, workers: int, context: Any = None) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.width = workers
        self._context = context or multiprocessing.get_context("spawn")
        self._queue: collections.deque[tuple[Future[Any], Work] | None] = collections.deque()
        self._ready = threading.Condition()
        self._slots: list[threading.Thread] = []
        self._workers: dict[int, Any] = {}  # slot -> its live worker process
        self._closed = False
        self.lost = 0
        """Workers that died while running a call (each replaced)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._queue.append((future, (fn, args, kwargs)))
            if len(self._slots) < self.width:  # a slot (and its worker) per call, up to the width
                slot = threading.Thread(
                    target=self._serve, args=(len(self._slots),), name="scalems-pool", daemon=True
                )
                self._slots.append(slot)
                slot.start()
            self._ready.notify()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking calls; let the queued ones run (or cancel them) and the workers end."""
        with self._ready:
            self._closed = True
            if cancel_futures:
                while self._queue:
                    item = self._queue.popleft()
                    if item is not None:
                        item[0].cancel()
            self._queue.extend([None] * len(self._slots))  # one stop per slot, after the calls
            self._ready.notify_all()
        if wait:
            for slot in self._slots:
                slot.join()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """Leaving on an error (Ctrl-C): the calls running end, the queued ones never start."""
        self.shutdown(wait=True, cancel_futures=exc_type is not None)

    def processes(self) -> list[int]:
        """The PIDs of the live workers (for a test, or a display)."""
        with self._ready:
            return [p.pid for p in self._workers.values() if p.is_alive()]

    def _next(self) -> tuple[Future[Any], Work] | None:
        with self._ready:
            while not self._queue:
                self._ready.wait()
            return self._queue.popleft()

    def _serve(self, slot: int) -> None:
        """One slot: takes calls from the queue and runs each on its worker, starting a
        new worker where the last one died."""
        worker: tuple[Any, Connection] | None = None
        try:
            while (item := self._next()) is not None:
                future, work = item
                if not future.set_running_or_notify_cancel():
                    continue
                if worker is not None and not worker[0].is_alive():
                    self._stop(slot, *worker)  # it died while idle: it ran nothing of ours
                    worker = None
                if worker is None:
                    try:
                        worker = self._start(slot)
                    except BaseException as exc:
                        future.set_exception(exc)
                        continue
                worker = self._run(worker, future, work)
        finally:
            if worker is not None:
                self._stop(slot, *worker)

    def _start(self, slot: int) -> tuple[Any, Connection]:
        import signal

        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_worker, args=(theirs,), name="scalems-worker")
        # started with Ctrl-C blocked (as the standard library starts its resource
        # tracker): one pressed while it starts up waits until it ignores it (_worker)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        theirs.close()
        with self._ready:
            self._workers[slot] = process
        return process, ours

    def _run(
        self, worker: tuple[Any, Connection], future: Future[Any], work: Work
    ) -> tuple[Any, Connection] | None:
        """Run *work* on *worker*; return the worker, or None if it died (the future then
        holds :class:`WorkerLost`)."""
        process, conn = worker
        try:
            conn.send(work)
        except (OSError, EOFError):
            pass  # it died before the call reached it: seen below
        except BaseException as exc:  # the call cannot be pickled
            future.set_exception(exc)
            return worker
        ready = wait([conn, process.sentinel])
        answer = None
        if conn in ready:
            with contextlib.suppress(OSError, EOFError):
                answer = conn.recv()
        if answer is None:
            process.join()  # reaped at once: a lease it held is then seen to be free
            conn.close()
            self.lost += 1
            future.set_exception(WorkerLost(f"pool worker {process.pid} died ({_how(process)})"))
            return None
        ok, value = answer
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
        return worker

    def _stop(self, slot: int, process: Any, conn: Connection) -> None:
        with contextlib.suppress(OSError):
            conn.send(None)
        process.join()
        conn.close()
        with self._ready:
            self._workers.pop(slot, None)


def _how(process: Any) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _worker(conn: Connection) -> None:
    """A worker's loop: run each call received, send back ``(True, result)`` or
    ``(False, exception)``; end on None or when the coordinator is gone. It ignores
    Ctrl-C: the coordinator stops the calls of a run it stops (see
    :mod:`scalems_call.engines.schedule`), Ctrl-C at a terminal or a signal to it alone."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        while True:
            try:
                work = conn.recv()
            except (EOFError, OSError):
                return
            if work is None:
                return
            fn, args, kwargs = work
            try:
                answer: tuple[bool, Any] = (True, fn(*args, **kwargs))
            except BaseException as exc:  # KeyboardInterrupt too: the call's own end
                answer = (False, exc)
            try:
                conn.send(answer)
            except (OSError, EOFError):
                return
            except Exception as exc:  # an answer that cannot be pickled
                conn.send((False, RuntimeError(f"cannot send the call's answer back: {exc!r}")))
    except KeyboardInterrupt:  # Ctrl-C while waiting for work: nothing of ours runs
        os._exit(130)
