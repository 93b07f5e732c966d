"""Running calls by fingerprint: cache hits, capture, failures, timeouts, reruns."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from scalems_call import CallResult, InvalidCall, pack, run, submit
from scalems_call.execution import cache as call_cache
from scalems_store import FileStore, InvalidContent
from scalems_store.core import layout
from tests.conftest import local_file
from tests.recordutil import forge
from tests.scalems_call import funcs


def ledger_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_cache_hit_does_not_run_again(store: FileStore, tmp_path: Path) -> None:
    """The second run of a call is served from the store: the side effect happens once."""
    ledger = tmp_path / "ledger"
    fp = pack(funcs.count_runs, (str(ledger), {"answer": 42}), store=store)
    first = run(fp, store=store)
    second = run(fp[:10], store=store)
    assert first.return_value == second.return_value == {"answer": 42}
    assert (first.cached, second.cached) == (False, True)
    assert first.fingerprint == second.fingerprint
    assert ledger_lines(ledger) == 1
    forced = run(fp, store=store, force=True)
    assert ledger_lines(ledger) == 2 and not forced.cached
    assert call_cache.results(store, fp)[0] == forced.fingerprint


def test_failed_run_recorded_but_not_a_hit(store: FileStore, tmp_path: Path) -> None:
    """A call that raises records exception and traceback, and runs again next time."""
    ledger = tmp_path / "ledger"
    fp = pack(funcs.fail_and_count, (str(ledger),), store=store)
    result = run(fp, store=store)
    assert result.status == "failed"
    assert result.exception == "ValueError('deliberate failure')"
    assert result.traceback is not None
    assert "Traceback" in result.traceback and "deliberate failure" in result.traceback
    run(fp, store=store)
    assert ledger_lines(ledger) == 2


def test_environment_overrides_visible(store: FileStore) -> None:
    """Environment overrides of the call record are set in the child."""
    result = submit(
        funcs.read_environment,
        ("SCALEMS_TEST_VAR",),
        store=store,
        environment={"SCALEMS_TEST_VAR": "from-record"},
    )
    assert result.return_value == "from-record"


def test_skeleton_in_and_outputs_archived(store: FileStore, tmp_path: Path) -> None:
    """Skeleton files are in the work directory; files the call writes are in the archived tree."""
    skeleton = tmp_path / "skel"
    skeleton.mkdir()
    (skeleton / "input.txt").write_text("md input\n")
    result = submit(funcs.use_skeleton, store=store, skeleton=skeleton)
    assert result.return_value == ["input.txt", "results"]
    tree = layout.normalize(store.list(kind="result")[0].fingerprint)
    record = json.loads(store.read_bytes(tree))
    store.materialize(record["directory"], tmp_path / "out")
    assert (tmp_path / "out" / "results" / "upper.txt").read_text() == "MD INPUT\n"
    assert (tmp_path / "out" / "input.txt").read_text() == "md input\n"
    local_file(result.directory)


def test_output_of_subprocesses_and_fd_writes_captured(store: FileStore) -> None:
    """stdout/stderr are captured at the descriptor level: children and os.write included."""
    result = submit(funcs.talk, store=store)
    assert result.return_value == "done"
    stdout = local_file(result.stdout).read_text()
    stderr = local_file(result.stderr).read_text()
    assert stdout == "python stdout\nsubprocess stdout\n"
    assert stderr == "fd-level stderr\n"


def test_timeout(store: FileStore) -> None:
    """A call past its timeout is stopped and recorded as timed out."""
    started = time.monotonic()
    result = submit(funcs.sleep, (60,), store=store, timeout=1)
    assert time.monotonic() - started < 30
    assert result.status == "timeout" and "TimeoutError" in str(result.exception)


def test_child_that_dies_is_recorded(store: FileStore) -> None:
    """A child that exits without reporting is recorded as killed, with its exit status."""
    result = submit(funcs.hard_exit, store=store)
    assert result.status == "killed" and "status 7" in str(result.exception)


def test_provenance_names_the_packages_the_call_used(store: FileStore) -> None:
    """The result records the versions of the third-party packages loaded by the call."""
    result = submit(funcs.use_hypothesis, store=store)
    assert result.fingerprint is not None
    packages = json.loads(store.read_bytes(result.fingerprint))["provenance"]["packages"]
    assert packages["hypothesis"] == result.return_value
    assert "json" not in packages and "os" not in packages  # the standard library is implied


def test_processes_left_behind_end_with_the_call(store: FileStore, tmp_path: Path) -> None:
    """A process the call started and did not wait for is stopped before the archive is made."""
    pidfile = tmp_path / "stray.pid"
    result = submit(funcs.leave_a_process, (str(pidfile),), store=store)
    assert result.status == "success" and result.return_value == "returned"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} outlived the call"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """True while *pid* runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_missing_object_makes_a_miss(store: FileStore, tmp_path: Path) -> None:
    """A hit needs every referenced object: deleting the stdout blob forces a new run."""
    ledger = tmp_path / "ledger"
    fp = pack(funcs.count_runs, (str(ledger),), store=store)
    first = run(fp, store=store)
    os.unlink(local_file(first.stdout))
    again = run(fp, store=store)
    assert not again.cached and ledger_lines(ledger) == 2


def test_not_a_call(store: FileStore) -> None:
    """Running a blob, or a malformed call record, is an InvalidCall."""
    blob = store.add_bytes(b"just data")
    with pytest.raises(InvalidCall, match="not a call"):
        run(blob, store=store)
    with pytest.raises(InvalidContent, match="not a call"):
        store.add_bytes(b"{not json", kind="call")
    bad = forge(store, b"{not json", "call")
    with pytest.raises(InvalidCall, match="malformed"):
        run(bad, store=store)


def test_result_record_format(store: FileStore) -> None:
    """The result record is canonical JSON with ResultPack fields, blake3 URIs and provenance."""
    result = submit(funcs.add, (2, 3), store=store)
    assert isinstance(result, CallResult) and result.return_value == 5
    assert result.fingerprint is not None
    data = store.read_bytes(result.fingerprint)
    record = json.loads(data)
    assert data == json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    for field in ("stdout", "stderr", "directory"):
        assert record[field].startswith("blake3:")
    assert record["call"] == result.call and record["status"] == "success"
    assert set(record["provenance"]) >= {"host", "python", "dill", "start", "end", "duration"}
    assert store.kind(result.fingerprint) == "result"
    assert set(store.references(result.fingerprint)) >= {
        result.call,
        layout.normalize(record["directory"]),
    }


def test_a_call_killed_from_outside_lets_the_runner_go_first(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call that dies of SIGTERM or SIGKILL the runner did not send (a cancelled job)
    is recorded only after a pause, in which a runner that is being killed too dies
    first (and its engine retries the call); an exit status is recorded at once."""
    import signal

    from scalems_call.execution import launch

    paused: list[str] = []
    monkeypatch.setattr(launch, "_let_our_end_come", lambda: paused.append("paused"))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        result = submit(funcs.kill_self, (int(sig),), store=store)
        assert result.status == "killed" and f"signal {int(sig)}" in str(result.exception)
    assert paused == ["paused", "paused"]
    assert submit(funcs.hard_exit, store=store).status == "killed"
    assert paused == ["paused", "paused"]
