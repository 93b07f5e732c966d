"""Starting a call's process and watching it: the child Python (forked by the fork
server, or a fresh interpreter; under MPI, through the launcher), its exit, its
timeout, and what it reported.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from scalems_call.execution import forkserver
from scalems_call.identity.errors import LaunchError, Stopped

KILL_GRACE = 5.0
STARTED = ".started"
"""What the call's process adds to its outcome file's name, as a file, once it runs:
a process that exits without it never started the call."""
HEARTBEAT = 30.0
STOP_POLL = 0.2
"""Seconds between two looks at a run's stop file while its call runs."""


def child_command(call_path: str, outcome_path: str, requirements: dict[str, Any]) -> list[str]:
    """The command line that runs a call record in a child Python (under MPI for ``ranks``).

    Raises:
        LaunchError: ranks are required but no MPI launcher or mpi4py is available.
    """
    command = [sys.executable, "-m", "scalems_call.execution.child", call_path, outcome_path]
    shape = mpi_shape(requirements)
    if shape is None:
        return command
    ranks = shape[0]
    import importlib.util
    import shlex

    if importlib.util.find_spec("mpi4py") is None:
        raise LaunchError(f"the call requires {ranks} MPI ranks but mpi4py is not installed")
    python = [sys.executable, "-m", "mpi4py", *command[1:]]
    prefix = os.environ.get("PARSL_MPI_PREFIX")  # set by Parsl's MPI mode for this task's ranks
    if prefix:
        return [*shlex.split(prefix), *python]
    launcher = mpi_launcher()
    if launcher is None:
        raise LaunchError(
            f"the call requires {ranks} MPI ranks but no MPI launcher (mpiexec) is on PATH "
            "or next to this Python (pip install '.[mpi]' in the scalems-store checkout, or set "
            "SCALEMS_MPIEXEC)"
        )
    return [*shlex.split(launcher), "-n", str(ranks), *python]


def mpi_shape(requirements: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(ranks, nodes)`` a call asks for (nodes default to 1), or None without ranks.

    Raises:
        LaunchError: ranks or nodes is not a positive integer, or nodes does not divide ranks.
    """
    ranks, nodes = requirements.get("ranks"), requirements.get("nodes")
    for name, value in (("ranks", ranks), ("nodes", nodes)):
        if value is not None and (type(value) is not int or value < 1):
            raise LaunchError(f"requirement {name}={value!r} must be a positive integer")
    if ranks is None:
        return None
    if nodes is not None and ranks % nodes:
        raise LaunchError(
            f"requirements ranks={ranks!r}, nodes={nodes!r}: nodes must divide ranks "
            "(the ranks are spread evenly over the nodes)"
        )
    return ranks, nodes or 1


def mpi_launcher(python: str = sys.executable) -> str | None:
    """The MPI launcher: ``$SCALEMS_MPIEXEC``, else ``mpiexec`` or ``mpirun`` on PATH, else
    next to *python* (the ``mpich`` wheel's, in a virtual environment not activated)."""
    here = os.path.dirname(python)
    return (
        os.environ.get("SCALEMS_MPIEXEC")
        or shutil.which("mpiexec")
        or shutil.which("mpirun")
        or shutil.which("mpiexec", path=here)
        or shutil.which("mpirun", path=here)
    )


def spawn(
    command: list[str],
    rundir: str,
    work: str,
    environment: dict[str, str],
    timeout: float | None,
    requirements: dict[str, Any],
    stop: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the child; return its outcome and the timing.

    Raises:
        Stopped: the file *stop* appeared while the call ran: it was stopped.
    """
    outcome_path = os.path.join(rundir, "outcome.json")
    command = [outcome_path if arg == "" else arg for arg in command]
    stdout, stderr = os.path.join(rundir, "stdout"), os.path.join(rundir, "stderr")
    for path in (stdout, stderr):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644))
    started = time.time()
    child = _start(command, work, environment, requirements, stdout, stderr)
    usage: dict[str, Any] = {}
    try:
        status = _wait(child, rundir, timeout, usage, stop)
    finally:
        # processes the call left behind (in its session) would go on changing the work
        # directory while it is archived: they end with the call, as under a batch system
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        if isinstance(child, forkserver.Launched):
            child.close()
    ended = time.time()
    code = child.returncode
    if status != "timeout" and code in _OUTSIDE_KILLS and not os.path.exists(outcome_path):
        _let_our_end_come()
    outcome = _read_outcome(outcome_path, status, code, timeout)
    return outcome, {"start": started, "end": ended, "exit_code": child.returncode, **usage}


Child = subprocess.Popen[bytes] | forkserver.Launched

_OUTSIDE_KILLS = {-signal.SIGTERM, -signal.SIGKILL, -signal.SIGHUP}
"""How a call ends when its job is cancelled or its node lost (the runner sent none)."""
OUTSIDE_KILL_PAUSE = 2.0
"""Seconds the runner waits before recording such an end (see :func:`_let_our_end_come`)."""


def _let_our_end_come() -> None:
    """The call was killed from outside. When the whole job is being cancelled (scancel of
    a block), the runner is next: let it die before it records 'killed', so that the
    engine sees a lost worker and runs the call again. A call killed alone (the OOM
    killer) is recorded a moment later, as before."""
    time.sleep(OUTSIDE_KILL_PAUSE)


def _start(
    command: list[str],
    work: str,
    environment: dict[str, str],
    requirements: dict[str, Any],
    stdout: str,
    stderr: str,
) -> Child:
    """Start the call's process: forked by the fork server where it may be, else a fresh
    interpreter (or the MPI launcher's)."""
    direct = command[1:3] == ["-m", "scalems_call.execution.child"]  # not through an MPI launcher
    if direct and forkserver.wanted(environment, requirements):
        try:
            return forkserver.server().start(command[3:], work, environment, stdout, stderr)
        except OSError:
            pass  # no fork server here after all: a fresh interpreter does the same
    env = {**os.environ, **environment}
    if direct:
        env["SCALEMS_RUNNER_PID"] = str(os.getpid())
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        try:
            return subprocess.Popen(
                command,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except OSError as exc:
            raise LaunchError(f"cannot start {command[0]!r}: {exc.strerror}") from exc


def check_world_size(outcome: dict[str, Any], requirements: dict[str, Any]) -> dict[str, Any]:
    """The outcome of a call that asked for MPI ranks, turned into an error if it ran with
    another number (e.g. ``srun`` without PMI starts N copies of one rank each)."""
    ranks = requirements.get("ranks")
    if ranks is None or outcome.get("status") in ("timeout", "killed"):
        return outcome
    if outcome.get("status") == "error" and "mpi_world_size" not in outcome:
        return outcome  # it could not be started: that says more
    size = outcome.get("mpi_world_size")
    if size == ranks:
        return outcome
    ran = "without MPI" if size is None else f"with {size}"
    problem = LaunchError(
        f"asked for {ranks} ranks, ran {ran} (is the launcher's PMI set up? see docs/scale.md)"
    )
    return {
        **outcome,
        "status": "error",
        "exception": repr(problem),
        "traceback": f"LaunchError: {problem}\n",
        "return_value": None,
    }


def stop_requested(stop: str | None) -> bool:
    """Whether the run whose stop file is *stop* was stopped: its coordinator (Ctrl-C,
    SIGTERM) made the file, in the store's ``tmp/``, which every worker reaches."""
    return stop is not None and os.path.lexists(stop)


def refuse_if_stopped(stop: str | None) -> None:
    """Raise :class:`Stopped` (not started) if the run was stopped before the call began."""
    if stop_requested(stop):
        raise Stopped("the run was stopped before this call started", False)


def _wait(
    child: Child,
    rundir: str,
    timeout: float | None,
    usage: dict[str, Any],
    stop: str | None = None,
) -> str | None:
    """Wait for the child, touching *rundir* so gc sees it is alive; return 'timeout' if killed.
    What the child used (see :func:`forkserver.cost`) goes into *usage*. A run's stop file
    (*stop*) is looked for every :data:`STOP_POLL` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    beat = time.monotonic() + HEARTBEAT
    every = HEARTBEAT if stop is None else STOP_POLL
    try:
        with _ExitWatch(child, usage) as exited:
            while True:
                left = every if deadline is None else deadline - time.monotonic()
                if exited(max(min(every, left, beat - time.monotonic()), 0)):
                    return None
                if deadline is not None and time.monotonic() >= deadline:
                    _stop(child, exited)
                    return "timeout"
                if stop_requested(stop):
                    _stop(child, exited)
                    raise Stopped("the run was stopped while this call ran")
                if time.monotonic() >= beat:
                    os.utime(rundir)
                    beat = time.monotonic() + HEARTBEAT
    except BaseException:
        _stop(child)
        raise


class _ExitWatch:
    """``exited(seconds)``: wait up to *seconds* for the child to exit; True once it has.

    On Linux a pidfd wakes us the moment the child exits; ``Popen.wait(timeout)``
    polls with sleeps of up to 50 ms instead, which a short call would pay for. (A
    forked child's exit arrives as a message, which wakes us as promptly.)
    """

    def __init__(self, child: Child, usage: dict[str, Any]) -> None:
        self.child = child
        self.usage = usage
        self.pidfd: int | None = None

    def __enter__(self) -> Callable[[float], bool]:
        if isinstance(self.child, subprocess.Popen):
            with contextlib.suppress(AttributeError, OSError):  # not Linux, or before 5.3
                self.pidfd = os.pidfd_open(self.child.pid)
        return self.exited

    def __exit__(self, *exc: object) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)

    def exited(self, seconds: float) -> bool:
        if self.pidfd is not None:
            import select

            ready, _, _ = select.select([self.pidfd], [], [], seconds)
            if not ready:
                return False
            if self.child.returncode is None:  # reaped here, for what it used
                _, status, used = os.wait4(self.child.pid, 0)
                self.child.returncode = os.waitstatus_to_exitcode(status)
                self.usage.update(forkserver.cost(used))
            return True
        try:
            self.child.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        if isinstance(self.child, forkserver.Launched) and self.child.usage:
            self.usage.update(self.child.usage)
        return True


def _stop(child: Child, exited: Callable[[float], bool] | None = None) -> None:
    """Terminate the child's whole process group, then kill it if it lingers."""
    for sig, grace in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        if exited is not None:  # reaped by the watch, which takes what the child used
            while not exited(HEARTBEAT if grace is None else grace):
                if grace is not None:
                    break
            else:
                return
            continue
        try:
            child.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _read_outcome(
    path: str, status: str | None, code: int | None, timeout: float | None
) -> dict[str, Any]:
    import json

    if status == "timeout":
        exc: BaseException = TimeoutError(f"the call did not finish within {timeout} seconds")
        return {"status": "timeout", "exception": repr(exc), "traceback": _said(exc)}
    try:
        with open(path, encoding="utf-8") as stream:
            outcome: dict[str, Any] = json.load(stream)
            return outcome
    except (FileNotFoundError, ValueError):
        pass
    if code is not None and code >= 0 and not os.path.exists(path + STARTED):
        # it never ran the call: a launcher that refused (srun asked for more tasks than
        # its allocation has), an interpreter that could not start
        exc = LaunchError(
            f"the call's process exited with status {code} before the call began: it could "
            "not be started (its stderr says why)"
        )
        return {"status": "error", "exception": repr(exc), "traceback": _said(exc)}
    how = (
        f"was killed by signal {-code}"
        if code is not None and code < 0
        else f"exited with status {code}"
    )
    exc = ChildProcessError(f"the call's process {how} without reporting a result")
    return {"status": "killed", "exception": repr(exc), "traceback": _said(exc)}


def _said(exc: BaseException) -> str:
    """What a call stopped by its runner says instead of a traceback: one line."""
    return f"{type(exc).__name__}: {exc}\n"
