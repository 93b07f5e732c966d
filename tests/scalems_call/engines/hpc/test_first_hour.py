"""docs/scale.md's "Your first hour on a cluster", followed step by step on a real Slurm: the
doc's own blocks, with /project (the shared filesystem) moved into a temporary directory, the
venv being this one, and the partition this Slurm's."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

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

SECTION = "Your first hour on a cluster"
STEPS = ["setup", "mysim.py", "slurm_config.py", "first batch", "checks", "again", "cleanup"]
FP = re.compile(r"^[0-9a-f]{64}$")


def walkthrough(project: Path) -> str:
    """The section's blocks as one bash script: each step marked on stdout and stderr, each
    Python block written to the file its first line names."""
    venv = os.path.dirname(os.path.dirname(SCALEMS_CALL))
    blocks = adapt(
        doc_blocks(SECTION),
        {
            "/project/venv": venv,
            "/project/": f"{project}/",
            'partition="compute"': f"partition={PARTITION!r}",
        },
    )
    return walkthrough_script(blocks, STEPS, project)


def test_first_hour_on_a_cluster(slurm: LocalSlurm, tmp_path: Path) -> None:
    """The walk-through runs as written: the batch runs as one Slurm job and every call
    succeeds, the checks show each call done with its output file, the second exec is served
    from the store without a job, and gc keeps every result (even with no grace period)."""
    project = tmp_path / "project"
    project.mkdir()
    store, work = project / "store", project / "work"
    (tmp_path / "walkthrough.sh").write_text(walkthrough(project))
    # a user's login shell: no store named, no path to this repository
    env = {k: v for k, v in slurm.env.items() if not k.startswith(("SCALEMS_", "PYTHONPATH"))}
    logged_before = len(slurm.jobs_completed())
    proc = subprocess.run(
        ["bash", str(tmp_path / "walkthrough.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out, err = step_lines(proc.stdout), step_lines(proc.stderr)
    assert list(out) == STEPS
    assert not any(err[step] for step in STEPS[:-1]), proc.stderr  # no warning, no error

    assert out["setup"] == [str(store)]
    calls = lines(work / "calls.txt")
    assert len(set(calls)) == 8 and all(FP.match(fp) for fp in calls)
    results = out["first batch"]
    assert len(results) == 8 and all(FP.match(fp) for fp in results)
    # the batch was one Slurm job: Parsl's block, cancelled by Parsl at the end
    slurm.wait_until(lambda: not slurm.squeue(), timeout=30, what="the block to end")
    slurm.wait_until(
        lambda: len(slurm.jobs_completed()) > logged_before, timeout=10, what="the block"
    )
    (block,) = slurm.jobs_completed()[logged_before:]
    assert block["Name"].startswith("parsl.") and block["JobState"] == "CANCELLED"

    # status: a line a call; ls: a header, a row a call (ls --status failed: nothing); result
    checks = out["checks"]
    status, header, rows = checks[:8], checks[8], checks[9:17]
    # a line a call, with its arguments: they tell the calls of one function apart
    assert len(status) == len(calls)
    for seed, (fp, line) in enumerate(zip(calls, status, strict=True), 1):
        assert line.startswith(f"{fp[:12]}  mysim:simulate({seed}, 1000) "), line
        assert "cached" in line.split(), line
    assert header.split()[:2] == ["CALL", "STATUS"]
    assert sorted((row.split()[0], row.split()[1], row.split("  ")[-1]) for row in rows) == sorted(
        (fp, "success", f"mysim:simulate({seed}, 1000)") for seed, fp in enumerate(calls, 1)
    )
    shown = dict(line.split(None, 1) for line in checks[17:] if line[:1] != " ")
    assert (shown["call"], shown["result"], shown["status"]) == (calls[0], results[0], "success")
    walk = lines(work / "walk-1" / "walk.txt")
    assert len(walk) == 1000 and walk[-1] == f"{float(shown['return']):.6f}"

    assert out["again"] == results  # served from the store: the same results, no job
    assert len(slurm.jobs_completed()) == logged_before + 1 and not slurm.squeue()

    assert err["cleanup"][0].startswith("would remove 0 objects")
    assert err["cleanup"][1].startswith("removed 0 objects")
    assert not (work / "runinfo").exists()
    # what gc keeps does not depend on age: with no grace at all, every result stays
    user = {**env, "SCALEMS_STORE": str(store)}
    gc = subprocess.run(
        [os.path.join(os.path.dirname(SCALEMS_CALL), "scalems-store"), "gc", "--grace", "0"],
        cwd=work,
        env=user,
        capture_output=True,
        text=True,
        check=True,
    )
    assert gc.stderr.startswith("removed 0 objects"), gc.stderr
    again = subprocess.run(
        [SCALEMS_CALL, "status", *calls], cwd=work, env=user, capture_output=True, text=True
    )
    assert again.returncode == 0 and again.stdout.count(" cached ") == 8, again.stdout
