"""Per-call leases: one runner at a time per call fingerprint, safe on a shared filesystem.

A lease is a file created with ``O_EXCL`` (atomic on local and NFSv3+
filesystems) and kept fresh by a heartbeat that touches its mtime. A lease
whose mtime is older than its time-to-live belongs to a runner that died, as
does one whose holder ran on this host (same PID namespace) and has exited; it
is taken over by renaming it aside (only one taker's rename can succeed) and
creating a new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator

DEFAULT_TTL = float(os.environ.get("SCALEMS_CALL_LEASE_TTL", "60"))


class Lease:
    """The lease on one call, held while it runs."""

    def __init__(self, path: str, ttl: float = DEFAULT_TTL) -> None:
        self.path = path
        self.ttl = ttl
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def try_acquire(self) -> bool:
        """Take the lease if it is free or stale; return whether we hold it."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if self._create():
            return True
        try:
            if not self._stale():
                return False
        except FileNotFoundError:
            return self._create()
        aside = f"{self.path}.stale-{os.urandom(6).hex()}"
        try:
            os.rename(self.path, aside)  # only one taker's rename of the stale lease succeeds
        except FileNotFoundError:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside)
        return self._create()

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        holder = {**_whoami(), "pid": os.getpid(), "since": time.time()}
        os.write(fd, json.dumps(holder).encode())
        os.close(fd)
        self._start_heartbeat()
        return True

    def _stale(self) -> bool:
        """The holder is gone: its heartbeat stopped, or it ran here and has exited.

        Raises:
            FileNotFoundError: nobody holds the lease.
        """
        if time.time() - os.stat(self.path).st_mtime > self.ttl:
            return True
        try:
            with open(self.path, encoding="utf-8") as stream:
                holder = json.load(stream)
        except (OSError, ValueError):  # gone, or being written: trust the heartbeat
            return False
        if not isinstance(holder, dict) or {**holder, **_whoami()} != holder:
            return False  # another machine (or PID namespace): only its heartbeat tells
        pid = holder.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True  # it was killed before it could release the lease
        except PermissionError:
            pass
        return False

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="scalems-lease", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(self.ttl / 4, 0.05)):
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.path)

    def release(self) -> None:
        """Stop the heartbeat and remove the lease."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def wait_free(self, poll: float = 0.2) -> None:
        """Block until nobody holds the lease (or it went stale)."""
        while True:
            try:
                if self._stale():
                    return
            except FileNotFoundError:
                return
            time.sleep(poll)


def _whoami() -> dict[str, str]:
    """Where a lease holder runs: its pid means something on this host and PID namespace only."""
    where = {"host": socket.gethostname()}
    with contextlib.suppress(OSError):
        where["pidns"] = os.readlink("/proc/self/ns/pid")
    return where


@contextlib.contextmanager
def held(lease: Lease) -> Iterator[Lease]:
    """Release *lease* (which the caller acquired) when the block ends."""
    try:
        yield lease
    finally:
        lease.release()
