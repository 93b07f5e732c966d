"""The child side of ``scalems-call exec``: run one call record in this process.

Usage: ``python -m scalems_call.execution.child CALL_RECORD OUTCOME_JSON``. The working
directory, environment and stdout/stderr redirection are set up by the parent.
The outcome (status, return value, exception, traceback) is written atomically
to OUTCOME_JSON, outside the working directory. Under MPI every rank runs the
call and rank 0 writes the outcome.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import sys
import traceback
from typing import Any


def _world() -> tuple[int, int | None]:
    """This process's MPI rank and the world size; ``(0, None)`` when not run under MPI."""
    if "mpi4py" in sys.modules or "mpi4py.MPI" in sys.modules:
        from mpi4py import MPI  # optional, only under MPI

        return int(MPI.COMM_WORLD.Get_rank()), int(MPI.COMM_WORLD.Get_size())
    return 0, None


def run(call_path: str) -> dict[str, Any]:
    """Load and run the call at *call_path*; return its outcome."""
    from scalems_call.identity.compat import deserialize_call, invoke
    from scalems_call.identity.errors import CallError
    from scalems_call.identity.serialize import to_bytes

    _use_recorded_code()
    try:
        with open(call_path, "rb") as stream:
            call = deserialize_call(stream.read(), _deliverer())
    except (CallError, OSError) as unloadable:
        return {
            "status": "error",
            "exception": repr(unloadable),
            "traceback": traceback.format_exc(),
        }
    if "scalems_call.engines.task" in sys.modules:  # the call is a task: here, it is its function
        setattr(sys.modules["scalems_call.engines.task"], "IN_CHILD", True)  # noqa: B010 (a module)
    value, raised, text = invoke(call)
    if raised is not None:
        return {"status": "failed", "exception": repr(raised), "traceback": text}
    try:
        encoded = None if value is None else to_bytes(value, "return value").hex()
    except CallError as problem:
        return {"status": "failed", "exception": repr(problem), "traceback": traceback.format_exc()}
    return {"status": "success", "return_value": encoded}


def _use_recorded_code() -> None:
    """Put the call's recorded code (written out by the runner) first on the import path,
    and forget any module of the same names imported already (the fork server's), so that
    neither the current directory, nor ``PYTHONPATH``, nor what was loaded before shadows it."""
    where = os.environ.pop("SCALEMS_CALL_CODE", None)
    if where is None:
        return
    import importlib

    tops = {name.partition(".")[0] for name in os.listdir(where)}
    tops = {name[:-3] if name.endswith(".py") else name for name in tops}
    for name in list(sys.modules):
        if name.partition(".")[0] in tops:
            del sys.modules[name]
    sys.path.insert(0, where)
    importlib.invalidate_caches()


def _deliverer() -> Any:
    """What references to other calls' outputs in the arguments stand for, as the runner
    delivered them (``$SCALEMS_CALL_INPUTS``; see :mod:`scalems_call.execution.inputs`)."""
    where = os.environ.pop("SCALEMS_CALL_INPUTS", None)
    if where is None:
        return None
    from scalems_call.identity.serialize import from_hex

    with open(where, encoding="utf-8") as stream:
        delivered = json.load(stream)

    def deliver(call: str, path: str | None) -> Any:
        if path is None:
            value = delivered["values"][call]
            return None if value is None else from_hex(value)
        return delivered["paths"][f"{call} {path}"]

    return deliver


def _die_with_runner() -> None:
    """Ask Linux to kill this process if the runner that started it dies (no orphaned calls)."""
    runner = os.environ.pop("SCALEMS_RUNNER_PID", None)
    if runner is not None and sys.platform.startswith("linux"):
        die_with(int(runner))


def die_with(parent: int) -> None:
    """Be killed when process *parent* (this one's parent) dies; exit at once if it has
    died already (Linux only)."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)  # the parent died before we got here


def _platform() -> str:
    """Like ``platform.platform()`` ("Linux-6.1.0-x86_64-with-glibc2.36"), without its
    ``uname -p`` subprocess (a fork and exec in every call)."""
    system, _, release, _, machine = os.uname()
    libc = None
    with contextlib.suppress(AttributeError, ValueError, OSError):  # not glibc
        libc = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    return f"{system}-{release}-{machine}" + (f"-with-{libc.replace(' ', '')}" if libc else "")


def _package_versions() -> dict[str, str]:
    """The versions of the non-standard top-level packages loaded when the call ended
    (numpy, the user's own package...), as their ``__version__`` says."""
    found = {}
    for name, module in list(sys.modules.items()):
        if "." in name or name.startswith("_") or name in sys.stdlib_module_names:
            continue
        version = getattr(module, "__version__", None)
        if isinstance(version, str):
            found[name] = version
    return dict(sorted(found.items()))


def main(argv: list[str]) -> int:
    """Run the call; write the outcome; exit 0 on success, 1 otherwise."""
    _die_with_runner()
    call_path, outcome_path = argv
    with contextlib.suppress(OSError):  # the call has begun (see launch.STARTED)
        os.close(os.open(outcome_path + ".started", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    outcome = run(call_path)
    import dill

    outcome["provenance"] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": _platform(),
        "dill": dill.__version__,
        "packages": _package_versions(),
    }
    rank, size = _world()
    if size is not None:
        outcome["mpi_world_size"] = size
    sys.stdout.flush()
    sys.stderr.flush()
    if rank == 0:
        temp = f"{outcome_path}.{os.getpid()}"
        with open(temp, "w", encoding="utf-8") as stream:
            json.dump(outcome, stream)
        os.replace(temp, outcome_path)
    return 0 if outcome["status"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
