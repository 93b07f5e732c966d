"""Per-call leases: one runner at a time per call fingerprint, safe on a shared filesystem.

A lease is a file created with ``O_EXCL`` (atomic on local and NFSv3+
filesystems) and kept fresh by a heartbeat that touches its mtime. A lease
whose mtime is older than its time-to-live belongs to a runner that died, as
does one whose holder ran on this host (same PID namespace) and has exited; it
is taken over by renaming it aside (only one taker's rename can succeed; a
taker that finds it moved a newer lease, not the stale one it judged, puts it
back) and creating a new one.
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
            judged = self._stale()
        except FileNotFoundError:
            return self._create()
        if judged is None:
            return False
        aside = f"{self.path}.stale-{os.urandom(6).hex()}"
        try:
            os.rename(self.path, aside)  # only one taker's rename of the stale lease succeeds
        except FileNotFoundError:
            return False
        moved = os.stat(aside)
        if _identity(moved) != _identity(judged):
            # another taker replaced the stale lease between our look and our rename:
            # we moved *its* live lease aside. Put it back and stand down.
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(aside)
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

    def _stale(self) -> os.stat_result | None:
        """The lease file, if its holder is gone: its heartbeat stopped, or it ran here
        and has exited; None while the holder lives.

        Raises:
            FileNotFoundError: nobody holds the lease.
        """
        seen = os.stat(self.path)
        if time.time() - seen.st_mtime > self.ttl:
            return seen
        try:
            with open(self.path, encoding="utf-8") as stream:
                holder = json.load(stream)
        except (OSError, ValueError):  # gone, or being written: trust the heartbeat
            return None
        if not isinstance(holder, dict) or {**holder, **_whoami()} != holder:
            return None  # another machine (or PID namespace): only its heartbeat tells
        pid = holder.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return seen  # it was killed before it could release the lease
        except PermissionError:
            pass
        return None

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
                if self._stale() is not None:
                    return
            except FileNotFoundError:
                return
            time.sleep(poll)


def _identity(seen: os.stat_result) -> tuple[int, int, int, int]:
    """Which lease file this is: inode numbers are reused at once, so the mtime and size too."""
    return seen.st_dev, seen.st_ino, seen.st_mtime_ns, seen.st_size


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
