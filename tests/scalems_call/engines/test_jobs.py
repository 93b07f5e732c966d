"""Independent calls run at once when asked: ``--jobs N``, ``$SCALEMS_CALL_JOBS`` or
``jobs`` in the store's settings, for ``exec`` and ``run()`` alike; the progress line
tells running calls from queued ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalems_call import output, pack, run
from scalems_call.engines.executors import default_executor, pool_submit
from scalems_call.engines.schedule import Counts, run_graph
from scalems_store import FileStore
from scalems_store.store.config import Config
from tests.conftest import RunCli
from tests.scalems_call import funcs
from tests.scalems_call.engines import meeting
from tests.scalems_store.cli.test_store_cli import one_line_error


def two_meetings(store: FileStore, tmp_path: Path) -> list[str]:
    """Two calls that succeed in meeting only if they run at the same time."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    return [pack(meeting.meet, (a, b), store=store), pack(meeting.meet, (b, a), store=store)]


def met(run_cli: RunCli, fps: list[str], *options: str, env: dict[str, str] | None = None) -> bool:
    done = run_cli("scalems-call", "exec", *fps, "--json", *options, env=env)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line)["result"] for line in done.stdout.decode().splitlines()]
    return all(
        run_cli("scalems-call", "result", fp).stdout.count(b"return      True") for fp in results
    )


def test_exec_takes_its_jobs_from_the_store_settings(run_cli: RunCli, tmp_path: Path) -> None:
    """With ``[core] jobs = 2`` in the store's config, a plain exec runs two independent
    calls at once."""
    with FileStore(tmp_path / ".scalems") as store:
        fps = two_meetings(store, tmp_path)
        Config(store.root).update("core", {"jobs": "2"})
    assert met(run_cli, fps)


def test_exec_takes_its_jobs_from_the_environment(run_cli: RunCli, tmp_path: Path) -> None:
    """$SCALEMS_CALL_JOBS wins over the store's settings (here 1)."""
    with FileStore(tmp_path / ".scalems") as store:
        fps = two_meetings(store, tmp_path)
        Config(store.root).update("core", {"jobs": "1"})
    assert met(run_cli, fps, env={"SCALEMS_CALL_JOBS": "2"})


def test_run_takes_its_jobs_from_the_environment(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run() of a call over two independent calls runs them at once under
    $SCALEMS_CALL_JOBS=2 (and run(jobs=...) says the same)."""
    meetings = two_meetings(store, tmp_path)
    top = pack(meeting.both, [output(fp) for fp in meetings], store=store)
    monkeypatch.setenv("SCALEMS_CALL_JOBS", "2")
    result = run(top, store=store)
    assert result.status == "success" and result.return_value is True


def test_a_bad_jobs_setting_is_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    """A jobs setting that is not a number is one line naming where it was set."""
    with FileStore(tmp_path / ".scalems") as store:
        fp = pack(funcs.add, (1, 2), store=store)
        Config(store.root).update("core", {"jobs": "many"})
    done = run_cli("scalems-call", "exec", fp)
    assert done.returncode == 1
    assert one_line_error(done).startswith("BadSetting: jobs in ")
    done = run_cli("scalems-call", "exec", fp, env={"SCALEMS_CALL_JOBS": "0"})
    assert one_line_error(done).startswith("BadSetting: $SCALEMS_CALL_JOBS = '0'")
    assert run_cli("scalems-call", "exec", fp, "--jobs", "1").returncode == 0


def test_progress_tells_running_from_queued(store: FileStore, tmp_path: Path) -> None:
    """Four calls on two workers: the progress counts 2 running and 2 queued (not 4
    running) while the first two run, and never more running than workers."""
    flag = tmp_path / "flag"
    flag.touch()
    fps = [
        pack(funcs.count_and_wait, (str(tmp_path / f"l{i}"), str(flag)), store=store)
        for i in range(4)
    ]
    seen: list[tuple[int, int]] = []

    def report(counts: Counts) -> None:
        seen.append((counts.running, counts.queued))
        if counts.running == 2 and flag.exists():
            flag.unlink()  # both workers are busy: let the calls end

    outcomes = run_graph(
        store,
        fps,
        engine=lambda: default_executor(2),
        submit=pool_submit(store, 60.0),
        report=report,
    )
    assert all(outcomes[fp].state == "success" for fp in fps)
    assert (2, 2) in seen
    assert max(running for running, _ in seen) == 2
    assert all(running + queued <= 4 for running, queued in seen)
