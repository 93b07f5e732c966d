"""The local Slurm itself: batch jobs run and are logged, srun places tasks on the node's CPUs."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tests.scalems_call.engines.hpc.localslurm import LocalSlurm


def test_batch_job_runs_and_is_logged(slurm: LocalSlurm, tmp_path: Path) -> None:
    """An `sbatch --wrap` job writes its file on the node and the completion log records it."""
    written = tmp_path / "written.txt"
    job = slurm.sbatch(
        "--wait", f"--output={tmp_path}/job.out", wrap=f'echo "$SLURM_JOB_ID" > {written}'
    )
    assert written.read_text().strip() == job
    slurm.wait_until(
        lambda: any(entry["JobId"] == job for entry in slurm.jobs_completed()),
        timeout=10,
        what=f"job {job} in the completion log",
    )
    entry = next(entry for entry in slurm.jobs_completed() if entry["JobId"] == job)
    assert entry["JobState"] == "COMPLETED"
    assert entry["ExitCode"] == "0:0"
    assert entry["NodeList"] == slurm.node
    assert entry["Name"] == "wrap"


def test_failed_batch_job_is_logged_as_failed(slurm: LocalSlurm, tmp_path: Path) -> None:
    """A batch job that exits 3 is recorded as FAILED with its exit code, and leaves the node up."""
    job = slurm.sbatch(f"--output={tmp_path}/job.out", wrap="exit 3")
    slurm.wait_until(
        lambda: any(entry["JobId"] == job for entry in slurm.jobs_completed()),
        timeout=15,
        what=f"job {job} in the completion log",
    )
    entry = next(entry for entry in slurm.jobs_completed() if entry["JobId"] == job)
    assert (entry["JobState"], entry["ExitCode"]) == ("FAILED", "3:0")
    slurm.wait_idle(timeout=10)


def test_srun_runs_two_tasks_on_the_two_cpus(slurm: LocalSlurm) -> None:
    """The node offers `nproc` CPUs and `srun -n 2 hostname` prints the node's name twice."""
    assert slurm.node_cpus() == slurm.cpus == len(os.sched_getaffinity(0))
    lines = slurm.run("srun", "-n", "2", "hostname", timeout=30).stdout.splitlines()
    assert lines == [socket.gethostname()] * 2
