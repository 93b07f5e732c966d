"""The fork server: a call forked from a warm process behaves as one in a fresh interpreter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalems_call import InvalidCall, pack, run
from scalems_store import FileStore
from tests.conftest import local_file
from tests.scalems_call import funcs

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the fork server is used on Linux only"
)

FORKED, FRESH = "forked", "fresh"


def started(store: FileStore, **options: object) -> str:
    fp = pack(funcs.how_started, store=store, **options)  # type: ignore[arg-type]
    result = run(fp, store=store)
    assert result.status == "success", result.exception
    return str(result.return_value)


def test_calls_are_forked_unless_they_need_a_fresh_interpreter(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forked by default; a fresh interpreter when asked, under a start-up variable
    (``PYTHON*``), or with the fork server switched off."""
    assert started(store) == FORKED
    assert started(store, requirements={"interpreter": "fresh"}) == FRESH
    assert started(store, environment={"PYTHONHASHSEED": "3"}) == FRESH
    monkeypatch.setenv("SCALEMS_CALL_FORKSERVER", "off")
    assert started(store, requirements={"interpreter": "forked"}) == FRESH


def test_a_locale_override_takes_a_fresh_interpreter(store: FileStore) -> None:
    """The locale decides Python's UTF-8 mode and stream encodings as it starts."""
    assert started(store, environment={"LC_ALL": "C"}) == FRESH
    assert started(store, environment={"LANG": "C"}) == FRESH
    assert started(store, environment={"TZ": "Asia/Tokyo"}) == FORKED


def test_forked_and_fresh_calls_see_the_same_interpreter(store: FileStore) -> None:
    """The same ``__main__`` (nothing of the server in it), flags and time zone."""
    seen = {}
    for interpreter in ("forked", "fresh"):
        fp = pack(
            funcs.what_python_shows,
            store=store,
            environment={"TZ": "Asia/Tokyo"},
            requirements={"interpreter": interpreter},
        )
        result = run(fp, store=store)
        assert result.status == "success", result.exception
        seen[interpreter] = result.return_value
    assert seen["forked"] == seen["fresh"]
    assert seen["fresh"] == {
        "main": "child.py",
        "server names": [],
        "safe_path": False,
        "tz": "+0900",
    }


@pytest.mark.parametrize("interpreter", ["forked", "fresh"])
def test_keyboard_interrupt_ends_as_python_does(store: FileStore, interpreter: str) -> None:
    """An uncaught KeyboardInterrupt ends the call by SIGINT, forked or fresh."""
    fp = pack(funcs.interrupt, store=store, requirements={"interpreter": interpreter})
    result = run(fp, store=store)
    assert result.status == "killed" and "signal 2" in str(result.exception), result.exception


def test_unknown_interpreter_is_refused(store: FileStore) -> None:
    with pytest.raises(InvalidCall, match=r"interpreter.*'fresh'"):
        pack(funcs.how_started, store=store, requirements={"interpreter": "warm"})


def test_a_call_sees_nothing_of_the_calls_before_it(store: FileStore) -> None:
    """Module state and environment changes of one call never reach the next."""
    for value in ("first", "second"):
        fp = pack(funcs.remember, (value,), store=store)
        result = run(fp, store=store)
        assert result.status == "success", result.exception
        assert result.return_value == ([], None)


@pytest.mark.parametrize("interpreter", ["forked", "fresh"])
def test_modules_of_the_work_directory_import(
    store: FileStore, tmp_path: Path, interpreter: str
) -> None:
    """The work directory comes first on sys.path, as with ``python -m``."""
    skeleton = tmp_path / "skeleton"
    skeleton.mkdir()
    (skeleton / "skeleton_module.py").write_text("VALUE = 'from the skeleton'\n")
    fp = pack(
        funcs.import_from_workdir,
        ("skeleton_module",),
        store=store,
        skeleton=str(skeleton),
        requirements={"interpreter": interpreter},
    )
    result = run(fp, store=store)
    assert (result.status, result.return_value) == ("success", "from the skeleton")


@pytest.mark.parametrize("interpreter", ["forked", "fresh"])
def test_exit_finishes_what_the_call_left(
    store: FileStore, tmp_path: Path, interpreter: str
) -> None:
    """Non-daemon threads are waited for, atexit handlers run, files left open and
    unflushed output are flushed: in a forked child exactly as in a fresh one."""
    fp = pack(
        funcs.leave_work_for_exit,
        ("left",),
        store=store,
        requirements={"interpreter": interpreter},
    )
    result = run(fp, store=store)
    assert result.status == "success", result.exception
    archive = local_file(result.directory)
    store.materialize(archive.parent.name + archive.name, tmp_path / "out")
    out = tmp_path / "out"
    for name in ("unclosed.txt", "atexit.txt", "thread.txt"):
        assert (out / name).read_text() == "left", name
    assert local_file(result.stdout).read_text() == "left"


@pytest.mark.parametrize("interpreter", ["forked", "fresh"])
def test_exit_status_and_capture_are_the_same(store: FileStore, interpreter: str) -> None:
    """Descriptor-level capture and an exit without a return work the same both ways."""
    talk = run(
        pack(funcs.talk, store=store, requirements={"interpreter": interpreter}), store=store
    )
    assert local_file(talk.stdout).read_text() == "python stdout\nsubprocess stdout\n"
    assert local_file(talk.stderr).read_text() == "fd-level stderr\n"
    died = run(
        pack(funcs.hard_exit, store=store, requirements={"interpreter": interpreter}), store=store
    )
    assert died.status == "killed" and "status 7" in str(died.exception)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie waiting for init has stopped running


def test_a_killed_runner_takes_its_forked_call_along(store: FileStore, tmp_path: Path) -> None:
    """kill -9 of the runner: the fork server kills the call's process group and exits."""
    pidfile = tmp_path / "call.pid"
    fp = pack(funcs.pid_and_sleep, (str(pidfile), 120), store=store)
    script = (
        "import sys\nfrom scalems_call import run\nfrom scalems_store import FileStore\n"
        "run(sys.argv[1], store=FileStore(sys.argv[2]))\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", script, fp, str(store.root)])
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() or not pidfile.read_text():
            assert runner.poll() is None, "the runner ended before the call started"
            assert time.monotonic() < deadline, "the call never started"
            time.sleep(0.05)
        call = int(pidfile.read_text())
        assert not _gone(call)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
        deadline = time.monotonic() + 20
        while not _gone(call):
            assert time.monotonic() < deadline, "the call outlived its runner"
            time.sleep(0.05)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


# a fresh process that runs one call in process and says whether its fork server was
# already starting when the call was launched, and whether it has one at the end
PRESTART = """
import os, sys
from scalems_call import run
from scalems_call.execution import forkserver, launch
from scalems_store import FileStore

seen = []
spawn = launch.spawn


def spy(*args, **kwargs):
    seen.append(os.getpid() in forkserver._servers)
    return spawn(*args, **kwargs)


launch.spawn = spy
result = run(sys.argv[2], store=FileStore(sys.argv[1]))
print(result.status, seen, os.getpid() in forkserver._servers)
"""


def test_a_call_to_run_starts_the_fork_server_before_its_launch(
    store: FileStore, tmp_path: Path
) -> None:
    """The server starts when a call must run here (its start-up overlapping the runner's
    preparation), not at the call's launch; a cache hit starts none; nor does a runner
    with the fork server switched off."""
    fp = pack(funcs.add, (2, 3), store=store)
    other = pack(funcs.add, (4, 5), store=store)

    def run_in_fresh_process(call: str, **env: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", PRESTART, store.root, call],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            check=True,
        )
        return done.stdout.strip()

    assert run_in_fresh_process(fp) == "success [True] True"
    assert run_in_fresh_process(fp) == "success [] False"  # served from the cache
    assert run_in_fresh_process(other, SCALEMS_CALL_FORKSERVER="off") == "success [False] False"
