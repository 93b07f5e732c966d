"""A fork server: a fresh, isolated process for every call, without a fresh interpreter.

Starting Python and importing dill costs a call ~30-40 ms. The fork server is a
helper process, one per runner process, that has imported the child's modules
once and is otherwise idle: for each call it forks a child, which becomes what
``python -m scalems_call.execution.child`` would have been. The child is still its own
process, in its own session (process group), with its own work directory,
environment, standard streams (files of the run directory) and descriptors;
only the start-up is shared.

It is single-threaded (a fork of a threaded runner could inherit a lock held by
another thread) and started with the runner's environment. A call whose
environment changes how Python starts (``PYTHON*``, ``LD_*``), one under MPI
(``ranks``) and one that asks for it (``requirements={"interpreter": "fresh"}``)
get a fresh interpreter instead, as does every call where ``fork`` or passing
descriptors is not available, or ``$SCALEMS_CALL_FORKSERVER`` is ``off``.

Protocol (``AF_UNIX``/``SOCK_SEQPACKET``, JSON messages): the runner sends a
request and one end of a new socket pair; the server answers ``{"pid": N}`` on
it, then ``{"exit": CODE}`` once it has reaped the child. The runner's end of the
control socket closing (the runner died) makes the server kill every child's
process group and exit.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any, NoReturn

_STARTUP = ("PYTHON", "LD_", "DYLD_", "LANG", "LC_")
"""Variables read as Python starts (the locale decides its UTF-8 mode and the encoding
of its streams): a call that changes them gets a fresh interpreter. ``TZ`` is read
again in the child (``time.tzset``)."""
_PRELOAD = (
    "scalems_call.execution.child",
    "scalems_call.identity.compat",
    "scalems_call.identity.serialize",
    "dill",
)


def wanted(environment: dict[str, str], requirements: dict[str, Any]) -> bool:
    """True when a call with *environment* overrides and *requirements* may be forked."""
    if os.environ.get("SCALEMS_CALL_FORKSERVER", "on").lower() in ("off", "0", "no"):
        return False
    if not hasattr(os, "fork") or not hasattr(socket, "send_fds") or sys.platform != "linux":
        return False
    if requirements.get("ranks") is not None or requirements.get("interpreter") == "fresh":
        return False
    return not any(name.startswith(_STARTUP) for name in environment)


class Launched:
    """A call's process started by the fork server; waited for as a ``Popen`` is."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.usage: dict[str, Any] = {}
        """What the call's process used (``cpu_seconds``, ``max_rss_bytes``), once it ended."""
        self._channel = channel

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit (raising ``TimeoutExpired`` after *timeout* seconds)."""
        if self.returncode is None:
            ready, _, _ = select.select([self._channel], [], [], timeout)
            if not ready:
                raise subprocess.TimeoutExpired("call", timeout or 0)
            message = self._channel.recv(4096)
            self._channel.close()
            # no message: the server died (and killed the call with it)
            ended: dict[str, Any] = json.loads(message) if message else {"exit": -signal.SIGKILL}
            self.returncode = ended["exit"]
            self.usage = ended.get("usage") or {}
        return self.returncode

    def close(self) -> None:
        if self.returncode is None:
            self._channel.close()


def cost(used: Any) -> dict[str, Any]:
    """What a call's process used, from its ``resource.struct_rusage`` (as ``os.wait4``
    gives it: the process and every descendant it waited for): ``cpu_seconds`` (user
    and system) and ``max_rss_bytes`` (its peak resident memory, or that of its largest
    descendant)."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    return {
        "cpu_seconds": round(used.ru_utime + used.ru_stime, 6),
        "max_rss_bytes": int(used.ru_maxrss) * scale,
    }


class ForkServer:
    """The runner's side: starts the server, asks it for children."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.environment = dict(os.environ)
        self.process = subprocess.Popen(
            # started in "/", which -m puts first on sys.path: the server drops it (each
            # child puts its own work directory); not -P, which the calls would inherit
            [sys.executable, "-m", "scalems_call.execution.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,  # a Ctrl-C at the terminal reaches the runner, not it
        )
        theirs.close()
        self._control = ours
        self._lock = threading.Lock()

    def usable(self) -> bool:
        """Alive, and started with the variables Python reads at start-up as they are now."""
        return self.process.poll() is None and _startup(self.environment) == _startup(os.environ)

    def start(
        self, argv: list[str], cwd: str, environment: dict[str, str], stdout: str, stderr: str
    ) -> Launched:
        """Fork a child running ``python -m scalems_call.execution.child *argv*`` as set up here.

        Raises:
            OSError: the server is gone or could not fork.
        """
        wanted = {**os.environ, **environment}
        request = {  # the environment as changes to the server's own: a short message
            "argv": argv,
            "cwd": cwd,
            "set": {k: v for k, v in wanted.items() if self.environment.get(k) != v},
            "unset": [k for k in self.environment if k not in wanted],
            "stdout": stdout,
            "stderr": stderr,
        }
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with self._lock:
                socket.send_fds(self._control, [json.dumps(request).encode()], [theirs.fileno()])
            theirs.close()
            reply = mine.recv(4096)
            if not reply:
                raise ConnectionError("the fork server is gone")
            answer = json.loads(reply)
            if "error" in answer:
                raise OSError(answer["error"])
        except BaseException:
            theirs.close()
            mine.close()
            raise
        return Launched(int(answer["pid"]), mine)


_servers: dict[int, ForkServer] = {}
_retired: list[ForkServer] = []
_servers_lock = threading.Lock()


def prestart() -> None:
    """Start this process's fork server now, where one may be used at all: a runner about
    to run calls here does, so that the server's start-up overlaps the runner's own
    preparation (the lease, the run directory) instead of following it."""
    if wanted({}, {}):
        with contextlib.suppress(OSError):
            server()


def server() -> ForkServer:
    """This process's fork server, started on first use (and again if it died)."""
    with _servers_lock:
        found = _servers.get(os.getpid())  # a forked runner makes its own
        if found is not None and not found.usable():
            _retired.append(found)  # its running calls go on; it ends when this process does
            found = None
        if found is None:
            found = _servers[os.getpid()] = ForkServer()
        return found


def _startup(environment: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environment.items() if k.startswith(_STARTUP)}


# -- the server side ------------------------------------------------------------------


def serve(control_fd: int) -> dict[str, Any]:
    """Serve requests until the runner goes away (then exit). Returns only in a forked
    child, with the request it is to carry out."""
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    control = socket.socket(fileno=control_fd)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    calls: dict[int, socket.socket] = {}
    while True:
        try:
            ready, _, _ = select.select([control.fileno(), wake_read], [], [])
        except InterruptedError:
            continue
        if wake_read in ready:
            os.read(wake_read, 4096)
            _reap(calls)
        if control.fileno() not in ready:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(control, 1 << 20, 1)
        except OSError:
            message, fds = b"", []  # the runner died mid-message
        if not message or not fds:
            _shutdown(calls)
        channel = socket.socket(fileno=fds[0])
        request = json.loads(message)
        gc.freeze()  # what the children inherit is never traversed by their collector
        settled, settling = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(settled)
            os.close(settling)
            _tell(channel, {"error": f"cannot fork: {exc.strerror}"})
            channel.close()
            continue
        if pid == 0:
            # its own session before the runner learns its pid: from then on the runner's
            # killpg reaches it (a runner stopped at that moment left it running on)
            os.setsid()
            os.close(settling)
            os.close(settled)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for fd in (wake_read, wake_write):
                os.close(fd)
            for other in calls.values():
                other.close()
            channel.close()
            control.close()
            return dict(request)
        os.close(settling)
        with contextlib.suppress(OSError):
            os.read(settled, 1)  # end of file once the child has its session (or died)
        os.close(settled)
        if _tell(channel, {"pid": pid}):
            calls[pid] = channel
        else:  # the runner stopped waiting (it was killed): the call ends at once
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            channel.close()


def _tell(channel: socket.socket, message: dict[str, Any]) -> bool:
    """Send *message* to the runner; False if it is gone (no traceback: nothing is wrong)."""
    try:
        channel.send(json.dumps(message).encode())
    except OSError:
        return False
    return True


def _reap(calls: dict[int, socket.socket]) -> None:
    while True:
        try:
            pid, status, used = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        channel = calls.pop(pid, None)
        if channel is not None:
            # it may have gone
            _tell(channel, {"exit": os.waitstatus_to_exitcode(status), "usage": cost(used)})
            channel.close()


def _shutdown(calls: dict[int, socket.socket]) -> None:
    """The runner is gone: its calls end with it, as a fresh child's would."""
    for pid in calls:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    os._exit(0)


def become_child(request: dict[str, Any], server_pid: int) -> int:
    """In a forked child: take the call's session, streams, directory and environment,
    then run it as ``python -m scalems_call.execution.child`` would; return the exit status."""
    from scalems_call.execution import child

    child.die_with(server_pid)  # which kills us itself when the runner dies
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_APPEND),
        (2, request["stderr"], os.O_WRONLY | os.O_APPEND),
    ):
        try:
            opened = os.open(path, flags | os.O_CLOEXEC)
        except OSError:
            os._exit(1)  # its run directory is gone: the runner was stopped meanwhile
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(request["cwd"])
    for name in request["unset"]:
        os.environ.pop(name, None)
    os.environ.update(request["set"])
    if "TZ" in request["set"] or "TZ" in request["unset"]:
        import time

        time.tzset()  # a TZ of the call's own

    sys.argv = [child.__file__, *request["argv"]]
    sys.path.insert(0, request["cwd"])  # as -m puts the working directory first
    sys.modules["__main__"] = _main_of(child)
    return child.main(list(request["argv"]))


def _main_of(module: Any) -> Any:
    """A ``__main__`` as ``python -m`` makes of *module* (its names, not the server's):
    a function pickled by value from a script finds there what it would in a fresh
    interpreter, and nothing of the fork server."""
    import types

    main = types.ModuleType("__main__", module.__doc__)
    main.__dict__.update(
        {k: v for k, v in vars(module).items() if not (k.startswith("__") and k.endswith("__"))}
    )
    for name in ("__file__", "__spec__", "__loader__", "__package__", "__cached__"):
        setattr(main, name, getattr(module, name, None))
    return main


def end(status: int) -> NoReturn:
    """Exit as Python does, but for tearing down the modules (half a fresh interpreter's
    cost again): wait for the call's non-daemon threads, run its atexit handlers and
    weakref finalizers, collect its garbage, flush every file it left open. Only the
    ``__del__`` of objects still held by module globals does not run; a call that needs
    it asks for ``requirements={"interpreter": "fresh"}``."""
    import atexit
    import io

    try:
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
        atexit._run_exitfuncs()
        gc.collect()
        for found in gc.get_objects():  # the call's own objects: the server's are frozen
            if isinstance(found, io.IOBase):
                with contextlib.suppress(Exception):
                    if not found.closed:
                        found.flush()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    finally:
        if status < 0:  # ended by a signal, as the interpreter would be
            signal.signal(-status, signal.SIG_DFL)
            os.kill(os.getpid(), -status)
        os._exit(status)


if __name__ == "__main__":
    if sys.path and sys.path[0] == os.getcwd():
        del sys.path[0]  # "/", where it was started: each child puts its work directory
    server_pid = os.getpid()
    job = serve(int(sys.argv[1]))
    try:
        code = become_child(job, server_pid)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        import traceback

        traceback.print_exc()
        code = -signal.SIGINT  # as Python ends on an uncaught KeyboardInterrupt
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    end(code)
