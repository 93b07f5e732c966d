"""Small crash-safe filesystem helpers shared by the store's writers."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from .errors import StoreNotWritable

T = TypeVar("T")


def fsync_dir(path: str) -> None:
    """Make a rename or link inside directory *path* durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_temp(directory: str, prefix: str) -> tuple[int, str]:
    """Create a unique empty file in *directory*; return ``(fd, path)``."""
    path = os.path.join(directory, f"{prefix}{os.urandom(16).hex()}")
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), path
    except OSError as exc:
        raise not_writable(directory, exc) from exc


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of *data* to *fd*."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def replace_atomic(path: str, data: bytes, temp_dir: str, *, durable: bool) -> None:
    """Replace the file at *path* with *data* so readers see the old or the new, never half."""
    fd, temp = new_temp(temp_dir, "ref-")
    try:
        write_all(fd, data)
        if durable:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.replace(temp, path)
        if durable:
            fsync_dir(os.path.dirname(path))
    except OSError as exc:
        raise not_writable(path, exc) from exc
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def not_writable(path: str, exc: OSError) -> StoreNotWritable:
    """Translate an ``OSError`` met while writing *path* into the store's error."""
    reason = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system"}.get(
        exc.errno or 0, exc.strerror or str(exc)
    )
    return StoreNotWritable(f"cannot write {path!r}: {reason}")


def pipelined(chunks: Iterable[bytes], consume: Callable[[bytes], None], depth: int = 8) -> None:
    """Feed *chunks* to *consume* in a second thread, so that producing and consuming overlap.

    *consume* should release the GIL (hashing, writing). An error on either
    side stops both and is raised here.
    """
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


def unlink_quietly(path: str) -> None:
    """Remove *path* if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
