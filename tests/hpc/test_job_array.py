"""The "A Slurm job array" recipe of docs/scale.md, as written there, on a real Slurm."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import REPO
from tests.hpc.conftest import SCALEMS_CALL, exec_json, pack, result_json, scalems_call, unavailable
from tests.hpc.localslurm import LocalSlurm

# docs/scale.md, "A Slurm job array": the store path and scalems-call adapted (the venv's)
LIST_CALLS = (
    "scalems-call ls --json | jq -r '.[] | select(.status != \"success\") | .call' > calls.txt"
)
JOB_SH = """\
#!/bin/bash
# job.sh
#SBATCH --time=01:00:00
FP=$(sed -n "${{SLURM_ARRAY_TASK_ID}}p" calls.txt)
exec {scalems_call} --store {store} exec "$FP"
"""


def test_job_array_recipe_runs_every_pending_call(slurm: LocalSlurm, tmp_path: Path) -> None:
    """The doc's calls.txt + job.sh run each pending call as one array task; afterwards every
    call has its result, the list of pending calls is empty, and exec serves all from cache."""
    if shutil.which("jq") is None:
        unavailable("jq is not installed (the recipe's first line uses it)")
    store = tmp_path / "store"
    expected = {
        pack(slurm, store, "add", n, 10 * n, cwd=tmp_path): repr(11 * n) for n in range(1, 6)
    }
    # one call already done: the recipe lists only the others
    done = next(iter(expected))
    scalems_call(slurm, "--store", str(store), "exec", done, cwd=tmp_path)
    (tmp_path / "job.sh").write_text(JOB_SH.format(scalems_call=SCALEMS_CALL, store=store))
    as_doc = {"SCALEMS_STORE": str(store)}  # the doc's `scalems-call ls` names no store
    bin_dir = str(Path(SCALEMS_CALL).parent)
    # sbatch passes the submitting shell's environment on: the venv on PATH, tests importable
    path = {"PATH": f"{bin_dir}:{slurm.env['PATH']}", "PYTHONPATH": str(REPO), **as_doc}

    slurm.run("bash", "-c", LIST_CALLS, cwd=tmp_path, env=path)
    listed = (tmp_path / "calls.txt").read_text().split()
    assert sorted(listed) == sorted(fp for fp in expected if fp != done)

    logged_before = len(slurm.jobs_completed())
    array = slurm.run(
        "bash",
        "-c",
        "sbatch --array=1-$(wc -l < calls.txt) --wait job.sh",
        cwd=tmp_path,
        env=path,
        timeout=120,
        check=False,
    )
    outputs = "".join(f"{out.name}: {out.read_text()}" for out in tmp_path.glob("slurm-*.out"))
    assert array.returncode == 0, array.stdout + array.stderr + outputs
    slurm.wait_until(
        lambda: len(slurm.jobs_completed()) >= logged_before + len(listed),
        timeout=15,
        what="the array tasks in the completion log",
    )
    tasks = slurm.jobs_completed()[logged_before:]
    assert len(tasks) == len(listed)
    assert {task["JobState"] for task in tasks} == {"COMPLETED"}
    assert not slurm.squeue()

    for call_fp, value in expected.items():
        result = result_json(slurm, store, call_fp, cwd=tmp_path)
        assert (result["status"], result["return_value_repr"]) == ("success", value)
    slurm.run("bash", "-c", LIST_CALLS, cwd=tmp_path, env=path)
    assert (tmp_path / "calls.txt").read_text() == ""

    again = scalems_call(slurm, "--store", str(store), "exec", *expected, "--json", cwd=tmp_path)
    records = exec_json(again)
    assert [record["call"] for record in records] == list(expected)
    assert all(record["cached"] and record["status"] == "success" for record in records)
    assert len(slurm.jobs_completed()) == logged_before + len(listed)
    rows = json.loads(
        scalems_call(slurm, "--store", str(store), "ls", "--json", cwd=tmp_path).stdout
    )
    assert {row["call"]: row["status"] for row in rows} == dict.fromkeys(expected, "success")
