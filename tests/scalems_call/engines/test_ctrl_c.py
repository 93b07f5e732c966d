"""Ctrl-C at a real terminal stops a batch under every engine: the calls running are
stopped, nothing more starts, and the summary says so, with no traceback from anyone.

The batch runs on a pseudo-terminal (``pty.fork``: the command is the session leader,
the terminal's foreground process group is its own, pool workers included), and Ctrl-C
is typed into it (``\\x03``), so the terminal sends SIGINT to that whole group, as a
user's Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scalems_call import pack
from scalems_store import FileStore
from tests.conftest import entry_point, loopback_cluster
from tests.scalems_call import funcs

CALLS = 12
RUNNING = 2
NAP = 60.0
"""Seconds each call would sleep: far longer than a test may wait, were it not stopped."""


def pack_batch(store: FileStore, pids: Path) -> list[str]:
    """Twelve calls that write their pid to pids/<i> as they start, then sleep."""
    pids.mkdir()
    return [pack(funcs.pid_and_sleep, (str(pids / str(i)), NAP), store=store) for i in range(CALLS)]


def started(pids: Path) -> list[int]:
    found = []
    for path in pids.iterdir():
        with contextlib.suppress(ValueError):
            found.append(int(path.read_text()))
    return found


def on_terminal_interrupted(
    argv: list[str], cwd: Path, running: int, pids: Path, signum: int | None = None
) -> tuple[int, str]:
    """Run *argv* on a new pseudo-terminal; once *running* calls have started, type Ctrl-C
    (or, with *signum*, send that signal to the command alone); return its exit status
    and everything it wrote on the terminal."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover (the child execs at once)
        try:
            os.chdir(cwd)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    out = bytearray()
    sent = None
    deadline = time.monotonic() + 120
    try:
        while True:
            if sent is None and len(started(pids)) >= running:
                time.sleep(0.3)  # the calls are running, not just starting
                if signum is None:
                    os.write(fd, b"\x03")
                else:
                    os.kill(pid, signum)
                sent = time.monotonic()
            assert time.monotonic() < deadline, out.decode(errors="replace")
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 1 << 16)
                except OSError:  # EIO: the command and everyone on the terminal are gone
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        with contextlib.suppress(ProcessLookupError):
            if sent is None or time.monotonic() >= deadline:
                os.killpg(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped counts)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def check_stopped(
    store: FileStore, pids: Path, status: int, said: str, running: int, exit_status: int = 130
) -> None:
    """The run ended at once, said how many calls were stopped and not started, started
    no call after the Ctrl-C, left no call process, and recorded nothing."""
    assert status == exit_status, said
    assert f"{running} stopped, {CALLS - running} not started" in said, said
    for bad in ("Traceback", "Error", "Exception", "warning"):
        assert bad not in said, said
    ran = started(pids)
    assert len(ran) == running, said  # nothing queued started after the Ctrl-C
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in ran):
        assert time.monotonic() < deadline, "a stopped call's process is still alive"
        time.sleep(0.05)
    tmp = Path(store.tmp)
    assert list(Path(store.root, "refs", "calls").rglob("*")) == [] or not any(
        p.is_file() for p in Path(store.root, "refs", "calls").rglob("*")
    ), "a stopped call recorded a result"
    leftovers = [p.name for p in tmp.iterdir() if p.name.startswith(("run-", "stop-"))]
    assert leftovers == [], leftovers
    assert list((tmp / "leases").iterdir()) == [] if (tmp / "leases").exists() else True


@pytest.fixture
def batch(store: FileStore, tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    pids = tmp_path / "pids"
    yield pack_batch(store, pids), pids


def exec_argv(store: FileStore, fps: list[str], *options: str) -> list[str]:
    return [*entry_point("scalems-call"), "--store", store.root, "exec", *fps, *options]


@pytest.mark.parametrize(
    ("options", "running"), [((), 1), (("--jobs", str(RUNNING)), RUNNING)], ids=["here", "jobs"]
)
def test_ctrl_c_stops_the_batch(
    store: FileStore,
    tmp_path: Path,
    batch: tuple[list[str], Path],
    options: tuple[str, ...],
    running: int,
) -> None:
    """Ctrl-C with 12 queued calls, 2 running (--jobs 2) or 1 (here): those running are
    stopped, the 10 (11) others never start, and the summary says so."""
    fps, pids = batch
    status, said = on_terminal_interrupted(exec_argv(store, fps, *options), tmp_path, running, pids)
    check_stopped(store, pids, status, said, running)


def test_sigterm_to_the_coordinator_alone_stops_the_batch(
    store: FileStore, tmp_path: Path, batch: tuple[list[str], Path]
) -> None:
    """SIGTERM to the coordinator alone (kill PID, not the terminal's group) stops the
    calls its pool workers run too: exit 143, the same summary."""
    fps, pids = batch
    argv = exec_argv(store, fps, "--jobs", str(RUNNING))
    status, said = on_terminal_interrupted(argv, tmp_path, RUNNING, pids, signal.SIGTERM)
    check_stopped(store, pids, status, said, RUNNING, exit_status=143)


def test_ctrl_c_stops_the_batch_on_dask(
    store: FileStore, tmp_path: Path, batch: tuple[list[str], Path]
) -> None:
    """On Dask (a cluster the terminal's Ctrl-C does not reach), the calls running on its
    workers are stopped and the queued ones cancelled."""
    fps, pids = batch
    with loopback_cluster(RUNNING) as cluster:
        argv = exec_argv(store, fps, "--dask", cluster.scheduler_address)
        status, said = on_terminal_interrupted(argv, tmp_path, RUNNING, pids)
    check_stopped(store, pids, status, said, RUNNING)


def test_ctrl_c_stops_the_batch_on_parsl(
    store: FileStore, tmp_path: Path, batch: tuple[list[str], Path]
) -> None:
    """On Parsl (a HighThroughputExecutor with a local block of 2 workers), the calls
    running are stopped, the others never start, and the block is cleaned up."""
    pytest.importorskip("parsl")
    fps, pids = batch
    config = tmp_path / "parsl_config.py"
    config.write_text(
        "from parsl.config import Config\n"
        "from parsl.executors import HighThroughputExecutor\n"
        "from parsl.providers import LocalProvider\n"
        "config = Config(\n"
        "    executors=[HighThroughputExecutor(label='htex', address='127.0.0.1',\n"
        "        loopback_address='127.0.0.1', max_workers_per_node=2,\n"
        "        provider=LocalProvider(init_blocks=1, max_blocks=1))],\n"
        f"    run_dir={str(tmp_path / 'runinfo')!r}, initialize_logging=False)\n"
    )
    argv = exec_argv(store, fps, "--parsl-config", str(config))
    status, said = on_terminal_interrupted(argv, tmp_path, RUNNING, pids)
    check_stopped(store, pids, status, said, RUNNING)
