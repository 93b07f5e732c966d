"""Work beside the caller on a second thread: a producer and a consumer in step, a
reader a few items ahead, a function run alongside."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def pipelined(chunks: Iterable[bytes], consume: Callable[[bytes], None], depth: int = 8) -> None:
    """Feed *chunks* to *consume* in a second thread, so that producing and consuming overlap.

    *consume* should release the GIL (hashing, writing). An error on either
    side stops both and is raised here. The first chunk is consumed here: content
    of one chunk (most objects) needs no thread, which would cost more than it saves.
    """
    chunks = iter(chunks)
    first = next(chunks, None)
    if first is None:
        return
    consume(first)
    second = next(chunks, None)
    if second is None:
        return
    chunks = itertools.chain((second,), chunks)
    import queue
    import threading

    handoff: queue.Queue[bytes | None] = queue.Queue(depth)
    failure: list[BaseException] = []

    def drain() -> None:
        try:
            while (chunk := handoff.get()) is not None:
                consume(chunk)
        except BaseException as exc:  # re-raised in the producer's thread
            failure.append(exc)
            while handoff.get() is not None:
                pass  # keep the producer from blocking on a full queue

    worker = threading.Thread(target=drain, name="scalems-writer")
    worker.start()
    try:
        for chunk in chunks:
            if failure:
                break
            handoff.put(chunk)
    finally:
        handoff.put(None)
        worker.join()
    if failure:
        raise failure[0]


def ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield *items*, computed by a second thread up to *depth* items ahead of the caller.

    Worth it when computing an item releases the GIL (system calls in C). An
    error in the thread is raised here, in order; a caller that stops early
    stops the thread.
    """
    import queue
    import threading

    ready: queue.Queue[tuple[bool, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def compute() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                ready.put((True, item))
        except BaseException as exc:  # re-raised in the caller's thread
            ready.put((False, exc))
            return
        ready.put((False, None))

    worker = threading.Thread(target=compute, name="scalems-ahead", daemon=True)
    worker.start()
    try:
        while True:
            ok, value = ready.get()
            if not ok:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        while worker.is_alive():  # unblock a worker waiting to put, then let it end
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.01)
        worker.join()


class Beside(Generic[T]):
    """Run *func* on a second thread from now on, beside the caller's own work.

    :meth:`result` waits for it and returns its value or raises its error in the
    caller's thread; :meth:`wait` only waits (when the caller's own error wins).
    """

    def __init__(self, func: Callable[[], T], name: str) -> None:
        import threading

        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(func,), name=name)
        self._thread.start()

    def _run(self, func: Callable[[], T]) -> None:
        try:
            self._value = func()
        except BaseException as exc:  # re-raised in the caller's thread
            self._error = exc

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
