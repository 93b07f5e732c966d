"""Functions the Slurm tests pack as calls (importable on the node: the blocks' ``worker_init``
puts the repository on ``PYTHONPATH``)."""

from __future__ import annotations

import os
import time


def job_and_wait(ledger: str, flag: str) -> str:
    """Append this run's Slurm job id to *ledger*, run until the file *flag* is removed, and
    return the job id."""
    job = os.environ.get("SLURM_JOB_ID", "")
    with open(ledger, "a") as stream:
        stream.write(f"{job}\n")
    while os.path.exists(flag):
        time.sleep(0.05)
    return job
