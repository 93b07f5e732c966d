"""The files beside ``index.sqlite`` that say it may be behind the store.

The index is a cache; two kinds of marker say when it cannot be trusted:

- ``index.sqlite.stale``: a process could not write to the index; the next one
  that opens it claims the marker (renames it away first, so that an update
  missed meanwhile leaves a new one) and rebuilds;
- ``index.sqlite.pending-<host>-<pid>``: a process holds rows it has not
  written yet (see :meth:`scalems_store.store.index.Index.add`); if it dies first,
  the next process on that host finds the marker of a dead pid, claims it and
  rebuilds.
"""

from __future__ import annotations

import contextlib
import os

from scalems_store.core.fsutil import unlink_quietly


def claim_stale(marker: str) -> bool:
    """Take the stale marker an updater left; True if there was one."""
    claimed = f"{marker}.{os.getpid()}"
    try:
        os.rename(marker, claimed)
    except OSError:
        return False
    unlink_quietly(claimed)
    return True


def leave_stale(marker: str) -> None:
    """Say the index missed an update."""
    touch(marker)


def pending(index_path: str) -> str:
    """This process's pending-rows marker."""
    return f"{index_path}.pending-{_host()}-{os.getpid()}"


def claim_dead_pending(index_path: str) -> bool:
    """Take the pending-rows markers of processes on this host that died before writing
    their rows; True if there was one (the index then misses objects)."""
    folder, prefix = os.path.split(index_path)
    mine = f"{prefix}.pending-{_host()}-"
    try:
        names = [n for n in os.listdir(folder or ".") if n.startswith(mine)]
    except OSError:
        return False
    claimed = False
    for name in names:
        pid = name[len(mine) :]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            unlink_quietly(os.path.join(folder, name))
            claimed = True
    return claimed


def touch(path: str) -> None:
    """Create *path* if it is not there (quietly: a read-only store indexes nothing)."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _host() -> str:
    # the node name is what gethostname() returns; the socket module costs ~3 ms to import
    return os.uname().nodename.replace("/", "_")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
