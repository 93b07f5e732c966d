"""A guard on the client's store, for tests of workers that must never touch it.

Put this directory first on ``PYTHONPATH``: every Python process started with it
then runs this at start-up. With ``$SCALEMS_GUARD_DIR`` set (a directory, the
client's store), each opening, listing, making, renaming, linking, removing or
connecting (sqlite) of a path inside it is appended, as ``PID ROLE JOB EVENT PATH``
(``ROLE``: ``$SCALEMS_GUARD_ROLE``, ``JOB``: ``$SLURM_JOB_ID``, ``-`` where unset),
to the file ``$SCALEMS_GUARD_LOG``; where the role is ``worker``, it also fails
with ``PermissionError``, as an unreachable path would.
"""

from __future__ import annotations

import os
import sys

_EVENTS = {
    "open": 1,
    "os.listdir": 1,
    "os.scandir": 1,
    "os.mkdir": 1,
    "os.rmdir": 1,
    "os.remove": 1,
    "os.chmod": 1,
    "os.utime": 1,
    "os.chdir": 1,
    "os.truncate": 1,
    "os.rename": 2,
    "os.link": 2,
    "os.symlink": 2,
    "sqlite3.connect": 1,
    "shutil.rmtree": 1,
}


def _install() -> None:
    guarded = os.environ.get("SCALEMS_GUARD_DIR")
    log = os.environ.get("SCALEMS_GUARD_LOG")
    if not guarded or not log:
        return
    inside = os.path.realpath(guarded) + os.sep
    role = os.environ.get("SCALEMS_GUARD_ROLE") or "-"
    job = os.environ.get("SLURM_JOB_ID") or "-"
    deny = role == "worker"
    busy: list[bool] = []

    def hook(event: str, args: tuple[object, ...]) -> None:
        count = _EVENTS.get(event)
        if count is None or busy:
            return
        for arg in args[:count]:
            if isinstance(arg, bytes):
                arg = os.fsdecode(arg)
            if not isinstance(arg, str) or arg == ":memory:":
                continue
            path = os.path.abspath(arg)
            if not (path + os.sep).startswith(inside) and not (
                os.path.realpath(path) + os.sep
            ).startswith(inside):
                continue
            busy.append(True)
            try:
                with open(log, "a") as out:
                    out.write(f"{os.getpid()} {role} {job} {event} {path}\n")
            finally:
                busy.pop()
            if deny:
                raise PermissionError(13, "the client's store is out of a worker's reach", path)

    sys.addaudithook(hook)


_install()
