"""Retries through real losses on Slurm: a cancelled Parsl block, a killed Parsl worker; and
no retry of a call that failed by its own exception (docs/scale.md, "Lost workers and
retries")."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from scalems_store.store.lease import LEASES, read_holder
from tests.scalems_call.engines.hpc.conftest import (
    exec_json,
    lines,
    pack,
    parsl_exec,
    result_json,
    run_directories,
    scalems_call_background,
    wait_for,
    worker_init,
)
from tests.scalems_call.engines.hpc.localslurm import LocalSlurm, write_parsl_config

pytest.importorskip("parsl")

FUNCS = "tests.scalems_call.engines.hpc.slurm_funcs"


def lease_holder(store: Path, call_fp: str) -> int | None:
    """The PID of the runner holding *call_fp*'s lease (a Parsl worker), if any."""
    holder = read_holder(str(store / LEASES / call_fp))
    return None if holder is None else holder.get("pid")


def test_calls_of_a_cancelled_block_end_with_results_in_the_same_exec(
    slurm: LocalSlurm, tmp_path: Path
) -> None:
    """When the block running calls is scancelled, their managers are reported lost, each such
    call is retried (logged on stderr) in a new block Parsl starts, and every call ends with a
    result in the same exec."""
    store = tmp_path / "store"
    flag = tmp_path / "flag"
    flag.touch()
    ledgers = [tmp_path / f"ledger-{n}" for n in range(4)]
    fps = [
        pack(slurm, store, "job_and_wait", str(ledger), str(flag), cwd=tmp_path, module=FUNCS)
        for ledger in ledgers
    ]
    config = write_parsl_config(
        tmp_path / "slurm_config.py", run_dir=tmp_path / "runinfo", worker_init=worker_init()
    )
    logged_before = len(slurm.jobs_completed())
    running = scalems_call_background(
        slurm,
        *parsl_exec(store, fps, config),
        cwd=tmp_path,
    )
    try:
        # the block's two workers each run a call, which waits for the flag
        wait_for(
            lambda: sum(bool(lines(ledger)) for ledger in ledgers) == 2,
            "two calls to start",
            running=running,
        )
        first_block = next(lines(ledger)[0] for ledger in ledgers if lines(ledger))
        assert [job["id"] for job in slurm.squeue()] == [first_block]
        slurm.run("scancel", first_block)
        # two calls start in the next block (the retried ones, or the two that were waiting)
        wait_for(
            lambda: sum(len(lines(ledger)) for ledger in ledgers) == 4,
            "two calls to start in a new block",
            timeout=60,
            running=running,
        )
        flag.unlink()
        done = running.finish(timeout=90)
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.finish()
    assert done.returncode == 0, done.stdout + done.stderr
    records = exec_json(done)
    assert [(r["call"], r["status"], r["cached"]) for r in records] == [
        (fp, "success", False) for fp in fps
    ]

    runs = {fp: lines(ledger) for fp, ledger in zip(fps, ledgers, strict=True)}
    second_block = runs[fps[-1]][-1]
    assert second_block != first_block
    lost = [fp for fp in fps if runs[fp][0] == first_block]
    assert len(lost) == 2
    for fp in fps:
        # a lost call ran in both blocks; each call ended (and returned) in the second
        assert runs[fp] == ([first_block] if fp in lost else []) + [second_block]
        result = result_json(slurm, store, fp, cwd=tmp_path)
        assert result["return_value_repr"] == repr(second_block)
        retried = f"call {fp[:12]}: worker lost (ManagerLost: "
        assert (retried in done.stderr) == (fp in lost), done.stderr
    retry_lines = [line for line in done.stderr.splitlines() if "worker lost" in line]
    assert len(retry_lines) == 2 and all(line.endswith("retry 1 of 2") for line in retry_lines)

    slurm.wait_until(lambda: not slurm.squeue(), timeout=30, what="Parsl's blocks to end")
    slurm.wait_until(
        lambda: len(slurm.jobs_completed()) >= logged_before + 2,
        timeout=10,
        what="both blocks in the completion log",
    )
    blocks = slurm.jobs_completed()[logged_before:]
    assert [(job["JobId"], job["JobState"]) for job in blocks] == [
        (first_block, "CANCELLED"),  # by the test
        (second_block, "CANCELLED"),  # by Parsl's cleanup
    ]
    assert run_directories(store) == []  # the cancelled runners removed theirs


def test_a_killed_worker_is_retried_and_a_call_that_raises_is_not(
    slurm: LocalSlurm, tmp_path: Path
) -> None:
    """A call whose Parsl worker on the node (the runner holding its lease) is SIGKILLed is run
    again in the same exec at once (the dead runner's lease taken over, its run directory
    removed), while a call that raises runs once and fails."""
    store = tmp_path / "store"
    flag = tmp_path / "flag"
    flag.touch()
    ledger, failures = tmp_path / "ledger", tmp_path / "failures"
    waits = pack(slurm, store, "job_and_wait", str(ledger), str(flag), cwd=tmp_path, module=FUNCS)
    fails = pack(slurm, store, "fail_and_count", str(failures), cwd=tmp_path)
    # a lease from another host is taken over only after this TTL: a retry within it shows the
    # lease of a dead runner on this host was taken over at once
    config = write_parsl_config(
        tmp_path / "slurm_config.py",
        run_dir=tmp_path / "runinfo",
        worker_init=worker_init() + "; export SCALEMS_CALL_LEASE_TTL=600",
    )
    logged_before = len(slurm.jobs_completed())
    running = scalems_call_background(
        slurm,
        *parsl_exec(store, [waits, fails], config),
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: lines(ledger) and lines(failures), "both calls to run", running=running)
        # the call that raised has run; its runner records the failure and then removes its run
        # directory, which it may not have done yet
        wait_for(
            lambda: not [d for d in run_directories(store) if d.startswith(f"run-{fails[:12]}-")],
            "the failed call's runner to end",
            timeout=30,
            running=running,
        )
        dead_rundirs = run_directories(store)
        assert len(dead_rundirs) == 1 and dead_rundirs[0].startswith(f"run-{waits[:12]}-")
        pid = lease_holder(store, waits)
        assert pid is not None and pid != running.proc.pid  # a worker of the block runs it
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(lines(ledger)) == 2, "the retry to run", timeout=30, running=running)
        flag.unlink()
        done = running.finish(timeout=60)
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.finish()
    assert done.returncode == 1, done.stdout + done.stderr  # one call failed
    records = {record["call"]: record for record in exec_json(done)}
    assert (records[waits]["status"], records[fails]["status"]) == ("success", "failed")

    block = lines(ledger)[0]
    assert lines(ledger) == [block, block]  # killed, then run again in the same block
    assert result_json(slurm, store, waits, cwd=tmp_path)["return_value_repr"] == repr(block)
    assert f"call {waits[:12]}: worker lost (WorkerLost: " in done.stderr
    assert "retry 1 of 2" in done.stderr
    assert lines(failures) == ["ran"]  # the call that raised ran once
    assert f"call {fails[:12]}: worker lost" not in done.stderr
    failed = result_json(slurm, store, fails, cwd=tmp_path)
    assert failed["status"] == "failed"
    assert "ValueError('deliberate failure')" in failed["exception_repr"]
    assert not set(dead_rundirs) & set(run_directories(store))

    slurm.wait_until(lambda: not slurm.squeue(), timeout=30, what="Parsl's block to end")
    slurm.wait_until(
        lambda: len(slurm.jobs_completed()) > logged_before, timeout=10, what="the block"
    )
    assert [job["JobId"] for job in slurm.jobs_completed()[logged_before:]] == [block]
