"""Leases: one holder at a time per key (a call being run), safe on a shared filesystem.

A lease is a file ``tmp/leases/<key>`` created with ``O_EXCL`` (atomic on local
and NFSv3+ filesystems) and kept fresh by a heartbeat that touches its mtime.
It records its holder (host, PID namespace, PID) and the holder's scratch
directory (a call's run directory). A lease whose mtime is older than its
time-to-live belongs to a holder that died, as does one whose holder ran on
this host (same PID namespace) and has exited; it is taken over by renaming it
aside (only one taker's rename can succeed; a taker that finds it moved a
newer lease, not the stale one it judged, puts it back), the dead holder's
scratch directory is removed, and a new lease is created.

Live leases are roots for gc: their keys, the keys' closures and their scratch
directories are never deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any

from scalems_store.core import layout
from scalems_store.core.errors import BadSetting
from scalems_store.core.fsutil import read_regular, remove_tree

DEFAULT_TTL = 60.0


def default_ttl() -> float:
    """Seconds a lease lives without a heartbeat: ``$SCALEMS_CALL_LEASE_TTL``, else 60.

    Raises:
        BadSetting: the variable is not a number of seconds above 0.
    """
    text = os.environ.get("SCALEMS_CALL_LEASE_TTL")
    if text is None:
        return DEFAULT_TTL
    try:
        ttl = float(text)
    except ValueError:
        ttl = 0.0
    if not 0 < ttl < float("inf"):
        raise BadSetting(
            f"SCALEMS_CALL_LEASE_TTL={text!r}: give the seconds (above 0) a lease lives "
            "without a heartbeat"
        )
    return ttl


LEASES = os.path.join(layout.TMP, "leases")
_ASIDE = ".stale-"


def scratch_for(directory: str, key: str) -> str:
    """A new scratch directory's path in *directory* for the holder of lease *key*: named
    after the key, as a taker checks before it removes a dead holder's scratch."""
    return os.path.join(os.path.abspath(directory), f"run-{key[:12]}-{os.urandom(6).hex()}")


def _is_scratch_of(path: str, key: str) -> bool:
    """Whether *path* may be removed as the scratch directory of a dead holder of *key*:
    an absolute path named as :func:`scratch_for` names it, and a directory (not a
    symlink). A lease file is writable by any user of a shared store: what it names
    must not be able to point a taker (or gc) at any other directory."""
    name = os.path.basename(path)
    prefix = f"run-{key[:12]}-"
    suffix = name[len(prefix) :]
    if not os.path.isabs(path) or not name.startswith(prefix) or len(suffix) != 12:
        return False
    if not layout.HEX_DIGITS.issuperset(suffix):
        return False
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def lease_dir(root: str) -> str:
    """Where the leases of the store at *root* live."""
    return os.path.join(root, LEASES)


class Lease:
    """The lease on one key, held while its work runs.

    Args:
        path: The lease file.
        ttl: Seconds without a heartbeat after which another host's lease is stale.
        scratch: A directory the holder works in, removed if the holder dies and
            its lease is taken over.
    """

    def __init__(self, path: str, ttl: float | None = None, scratch: str | None = None) -> None:
        self.path = path
        self.ttl = default_ttl() if ttl is None else ttl
        self.scratch = scratch
        self.period = max(self.ttl / 4, 0.05)
        """Seconds between heartbeats."""

    def try_acquire(self) -> bool:
        """Take the lease if it is free or stale; return whether we hold it."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if self._create():
            return True
        if not self.reap():
            return False
        return self._create()

    def reap(self) -> bool:
        """Remove the lease if its holder is gone, and the holder's scratch directory;
        return True if it was stale (or already gone)."""
        try:
            judged = stale(self.path, self.ttl)
        except FileNotFoundError:
            return True
        if judged is None:
            return False
        aside = f"{self.path}{_ASIDE}{os.urandom(6).hex()}"
        try:
            os.rename(self.path, aside)  # only one taker's rename of the stale lease succeeds
        except FileNotFoundError:
            return False
        moved = os.lstat(aside)
        if _identity(moved) != _identity(judged):
            # another taker replaced the stale lease between our look and our rename:
            # we moved *its* live lease aside. Put it back and stand down.
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(aside)
            return False
        holder = read_holder(aside)
        remove_tree(aside)  # a file, or whatever else was put in a lease's place
        scratch = (holder or {}).get("scratch")
        if isinstance(scratch, str) and _is_scratch_of(scratch, os.path.basename(self.path)):
            with contextlib.suppress(OSError):
                remove_tree(scratch)  # the dead holder's run directory
        return True

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return False
        holder: dict[str, Any] = {**_whoami(), "pid": os.getpid(), "since": time.time()}
        if self.scratch is not None:
            holder["scratch"] = self.scratch
        os.write(fd, json.dumps(holder).encode())
        os.close(fd)
        HEARTBEATS.add(self)
        return True

    def release(self) -> None:
        """Stop the heartbeat and remove the lease."""
        HEARTBEATS.remove(self)  # no heartbeat touches the file once this returns
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def wait_free(self, poll: float = 0.2) -> None:
        """Block until nobody holds the lease (or it went stale)."""
        while True:
            try:
                if stale(self.path, self.ttl) is not None:
                    return
            except FileNotFoundError:
                return
            time.sleep(poll)


class Heartbeats:
    """One thread per process that keeps every lease the process holds fresh, each
    every :attr:`Lease.period` seconds.

    A thread per lease, started as it is taken and joined as it is released, cost a
    short call some 20 ms on a busy machine (the scheduler's waits, not CPU). This
    thread is started with the first lease and then sleeps while the process holds none.
    A forked child starts with no leases and no thread: it does not keep its parent's
    leases alive (a child that outlived a dead parent would keep them from being taken
    over).
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._changed = threading.Condition()
        self._due: dict[Lease, float] = {}
        self._thread: threading.Thread | None = None
        self._wakes: float | None = None
        """When the thread wakes next (None: when told to)."""

    def add(self, lease: Lease) -> None:
        """Keep *lease* fresh from now on, a first heartbeat one period from now."""
        with self._changed:
            due = self._due[lease] = time.monotonic() + lease.period
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="scalems-lease", daemon=True)
                self._thread.start()
            elif self._wakes is None or due < self._wakes:
                # woken only if it would sleep past this heartbeat: a wake-up per call
                # cost a busy machine a thread switch and a wait for the lock per call
                self._changed.notify()

    def remove(self, lease: Lease) -> None:
        """Stop touching *lease*; once this returns, its file is never touched again."""
        with self._changed:  # the thread touches files holding this lock
            self._due.pop(lease, None)

    def held(self) -> int:
        """How many leases are kept fresh."""
        with self._changed:
            return len(self._due)

    def _run(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                for lease, due in self._due.items():
                    if due <= now:
                        with contextlib.suppress(OSError):  # gone (taken over): nothing to keep
                            os.utime(lease.path)
                        self._due[lease] = now + lease.period
                self._wakes = min(self._due.values(), default=None)
                self._changed.wait(None if self._wakes is None else self._wakes - now)


HEARTBEATS = Heartbeats()
"""The heartbeat thread of this process."""


def stale(path: str, ttl: float | None = None) -> os.stat_result | None:
    """The lease file at *path*, if its holder is gone: its heartbeat stopped, or it
    ran here and has exited; None while the holder lives.

    Raises:
        FileNotFoundError: nobody holds the lease.
    """
    seen = os.lstat(path)
    if not stat.S_ISREG(seen.st_mode):
        return seen  # a FIFO, a symlink...: no holder made it (each makes a regular file)
    if time.time() - seen.st_mtime > (default_ttl() if ttl is None else ttl):
        return seen
    holder = read_holder(path)
    if holder is None or {**holder, **_whoami()} != holder:
        return (
            None  # being written, or another machine (or PID namespace): only its heartbeat tells
        )
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


def read_holder(path: str) -> dict[str, Any] | None:
    """What a lease file says of its holder, or None if it cannot be read."""
    try:
        holder = json.loads(read_regular(path, 1 << 16).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return holder if isinstance(holder, dict) else None


def live(root: str, ttl: float | None = None) -> dict[str, dict[str, Any]]:
    """The live leases of the store at *root*: key -> holder (possibly empty if unreadable).

    A lease whose liveness cannot be judged counts as live.
    """
    found: dict[str, dict[str, Any]] = {}
    ttl = default_ttl() if ttl is None else ttl
    try:
        with os.scandir(lease_dir(root)) as entries:
            names = [e.name for e in entries if e.is_file(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return found
    for name in names:
        if _ASIDE in name:
            continue
        path = os.path.join(lease_dir(root), name)
        try:
            if stale(path, ttl) is not None:
                continue
        except FileNotFoundError:
            continue
        found[name] = read_holder(path) or {}
    return found


def _identity(seen: os.stat_result) -> tuple[int, int, int, int]:
    """Which lease file this is: inode numbers are reused at once, so the mtime and size too."""
    return seen.st_dev, seen.st_ino, seen.st_mtime_ns, seen.st_size


def _whoami() -> dict[str, str]:
    """Where a lease holder runs: its pid means something on this host and PID namespace only."""
    where = {"host": os.uname().nodename}  # gethostname()'s answer, without importing socket
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
