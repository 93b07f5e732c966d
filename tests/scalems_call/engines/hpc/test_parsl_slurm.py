"""`scalems-call exec --parsl-config` on a real Slurm: Parsl's SlurmProvider runs the calls."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.scalems_call.engines.hpc.conftest import (
    exec_json,
    lines,
    pack,
    parsl_exec,
    result_json,
    scalems_call,
    scalems_call_background,
    wait_for,
    worker_init,
)
from tests.scalems_call.engines.hpc.localslurm import LocalSlurm, write_parsl_config

pytest.importorskip("parsl")


def test_exec_with_parsl_config_runs_calls_as_one_slurm_job(
    slurm: LocalSlurm, tmp_path: Path
) -> None:
    """Calls run in one Parsl block that is a Slurm job, the block is cancelled at the end, and
    a second identical exec serves every call from the store without submitting a job."""
    store = tmp_path / "store"
    ledger = tmp_path / "ledger.txt"
    calls = {
        pack(slurm, store, "add", 1, 2, cwd=tmp_path): "3",
        pack(slurm, store, "add", 20, 22, cwd=tmp_path): "42",
        pack(slurm, store, "count_runs", str(ledger), "counted", cwd=tmp_path): "'counted'",
    }
    job_id_call = pack(slurm, store, "read_environment", "SLURM_JOB_ID", cwd=tmp_path)
    config = write_parsl_config(
        tmp_path / "slurm_config.py", run_dir=tmp_path / "runinfo", worker_init=worker_init()
    )
    fps = [*calls, job_id_call]
    logged_before = slurm.jobs_completed()

    first = scalems_call(
        slurm,
        *parsl_exec(store, fps, config),
        cwd=tmp_path,
    )
    records = exec_json(first)
    assert [record["call"] for record in records] == fps
    assert all(record["status"] == "success" for record in records), first.stdout + first.stderr
    assert not any(record["cached"] for record in records)
    for call_fp, expected in calls.items():
        result = result_json(slurm, store, call_fp, cwd=tmp_path)
        assert (result["status"], result["return_value_repr"]) == ("success", expected)
    assert ledger.read_text() == "ran\n"

    # Parsl's cleanup cancelled its block: no job is left, and the log gained exactly that job,
    # the one the calls saw as $SLURM_JOB_ID
    slurm.wait_until(lambda: not slurm.squeue(), timeout=30, what="Parsl's block to end")
    slurm.wait_until(
        lambda: len(slurm.jobs_completed()) > len(logged_before),
        timeout=10,
        what="the block in the completion log",
    )
    new_jobs = slurm.jobs_completed()[len(logged_before) :]
    assert len(new_jobs) == 1, new_jobs
    block = new_jobs[0]
    assert block["Name"].startswith("parsl."), block
    assert block["JobState"] == "CANCELLED"  # by Parsl's cleanup: workers do not exit on their own
    assert block["NodeList"] == slurm.node
    seen_job = result_json(slurm, store, job_id_call, cwd=tmp_path)["return_value_repr"]
    assert seen_job == repr(block["JobId"])

    again = scalems_call(
        slurm,
        *parsl_exec(store, fps, config),
        cwd=tmp_path,
    )
    hits = exec_json(again)
    assert [(r["call"], r["result"]) for r in hits] == [(r["call"], r["result"]) for r in records]
    assert all(record["cached"] and record["status"] == "success" for record in hits)
    assert ledger.read_text() == "ran\n"
    time.sleep(2)  # a job submitted by the second exec would be logged (or queued) by now
    assert not slurm.squeue()
    assert slurm.jobs_completed()[len(logged_before) :] == new_jobs, "the cache-hit exec ran a job"


def test_ctrl_c_stops_exec_and_its_block(slurm: LocalSlurm, tmp_path: Path) -> None:
    """Ctrl-C in a terminal (SIGINT to exec's whole process group) stops a running
    ``exec --parsl-config`` within seconds, with status 130, and Parsl cancels its block."""
    store = tmp_path / "store"
    flag, ledger = tmp_path / "flag", tmp_path / "ledger"
    flag.touch()
    call = pack(
        slurm,
        store,
        "job_and_wait",
        str(ledger),
        str(flag),
        cwd=tmp_path,
        module="tests.scalems_call.engines.hpc.slurm_funcs",
    )
    config = write_parsl_config(
        tmp_path / "slurm_config.py", run_dir=tmp_path / "runinfo", worker_init=worker_init()
    )
    running = scalems_call_background(
        slurm,
        *parsl_exec(store, [call], config, json=False),
        cwd=tmp_path,
        session=True,
    )
    try:
        wait_for(lambda: lines(ledger), "the call to run", running=running)
        os.killpg(running.proc.pid, signal.SIGINT)
        try:
            running.proc.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"exec still running 10 s after Ctrl-C:\n{running.output()}")
    finally:
        flag.unlink()
        if running.proc.poll() is None:
            os.killpg(running.proc.pid, signal.SIGKILL)
        done = running.finish()
    assert done.returncode == 130, done.stderr
    slurm.wait_until(lambda: not slurm.squeue(), timeout=15, what="Parsl to cancel its block")
