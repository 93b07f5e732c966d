"""docs/scale.md's "No shared filesystem", followed as written on a real Slurm whose jobs cannot
open the client's store: the workers keep node-local stores and reach only the remote (a path
standing for a project filesystem). The client's store is guarded (tests/scalems_call/guard):
every process of a Slurm job that opens, lists or writes anything in it fails with
PermissionError and is logged with its job id."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from scalems_store import FileStore
from tests.scalems_call.engines.hpc.conftest import (
    SCALEMS_CALL,
    adapt,
    doc_blocks,
    lines,
    step_lines,
    walkthrough_script,
)
from tests.scalems_call.engines.hpc.localslurm import PARTITION, LocalSlurm

pytest.importorskip("parsl")

SECTION = "No shared filesystem"
STEPS = ["setup", "mysim.py", "slurm_config.py", "batch", "results", "again"]
FP = re.compile(r"^[0-9a-f]{64}$")
GUARD = Path(__file__).resolve().parents[2] / "guard"


def walkthrough(tmp: Path, guard_log: Path) -> str:
    """The section's blocks as one bash script, each step marked on stdout and stderr; the
    workers' environment also turns on the guard."""
    venv = os.path.dirname(os.path.dirname(SCALEMS_CALL))
    work = tmp / "work"
    worker_env = (
        f"export SCALEMS_STORE={tmp}/scratch/store; export SCALEMS_GUARD_ROLE=worker "
        f"PYTHONPATH={GUARD} SCALEMS_GUARD_DIR={work}/.scalems SCALEMS_GUARD_LOG={guard_log}"
    )
    blocks = adapt(
        doc_blocks(SECTION),
        {
            "~/venv": venv,
            "~/work": str(work),
            "/project/me/store": f"{tmp}/project/store",
            "export SCALEMS_STORE=/local/scratch/$USER/store": worker_env,
            'partition="compute"': f"partition={PARTITION!r}",
        },
    )
    return walkthrough_script(blocks, STEPS, work)


def test_no_shared_filesystem_walkthrough(slurm: LocalSlurm, tmp_path: Path) -> None:
    """20 simulations and an analysis run as one Slurm job with --remote: the workers never
    open the client's store (no job process is in the guard's log, and the client's
    commands are), the remote records every result, signed; the client pulls them; the
    second exec serves all 21 calls from the remote with no Slurm job."""
    guard_log = tmp_path / "guard.log"
    (tmp_path / "walkthrough.sh").write_text(walkthrough(tmp_path, guard_log))
    env = {k: v for k, v in slurm.env.items() if not k.startswith(("SCALEMS_", "PYTHONPATH"))}
    client_root = tmp_path / "work" / ".scalems"
    env |= {
        "PYTHONPATH": str(GUARD),
        "SCALEMS_GUARD_DIR": str(client_root),
        "SCALEMS_GUARD_LOG": str(guard_log),
        "SCALEMS_STORE_FSYNC": "0",
    }
    logged_before = len(slurm.jobs_completed())
    proc = subprocess.run(
        ["bash", str(tmp_path / "walkthrough.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out, err = step_lines(proc.stdout), step_lines(proc.stderr)
    assert list(out) == STEPS

    guarded = [line.split() for line in lines(guard_log)]
    assert guarded, "the guard logs the client's own commands"
    from_jobs = [line for line in guarded if line[1] != "-" or line[2] != "-"]
    assert from_jobs == [], from_jobs

    sims, (ana,) = lines(tmp_path / "work" / "sims.txt"), lines(tmp_path / "work" / "analysis.txt")
    assert len(set(sims)) == 20 and all(FP.match(fp) for fp in [*sims, ana])
    (result,) = out["batch"]
    assert any(line.startswith("sent ") for line in err["batch"]), err["batch"]  # the calls
    remote = FileStore(tmp_path / "project" / "store")
    for call in [*sims, ana]:
        (recorded,) = remote.get_ref("calls", call)
        assert remote.signatures(recorded), call
    assert remote.get_ref("calls", ana) == [result]
    worker = FileStore(tmp_path / "scratch" / "store")
    assert worker.get_ref("calls", ana) == [result]
    # one Slurm job: Parsl's block
    slurm.wait_until(lambda: not slurm.squeue(), timeout=30, what="the block to end")
    slurm.wait_until(
        lambda: len(slurm.jobs_completed()) > logged_before, timeout=10, what="the block"
    )
    (block,) = slurm.jobs_completed()[logged_before:]
    assert block["Name"].startswith("parsl.")

    # pulled: the client holds the results; result shows the analysis; get reads a walk
    client = FileStore(client_root)
    assert client.get_ref("calls", ana) == [result]
    *shown_lines, walked = out["results"]
    shown = dict(line.split(None, 1) for line in shown_lines if line[:1] not in (" ", ""))
    assert (shown["call"], shown["result"], shown["status"]) == (ana, result, "success")
    assert re.fullmatch(r"-?\d+\.\d{6}", walked), walked

    assert out["again"][0] == result and len(out["again"]) == 21
    assert len([line for line in err["again"] if "cached on project" in line]) == 21
    assert len(slurm.jobs_completed()) == logged_before + 1 and not slurm.squeue()
