"""The "A Slurm job array" recipe of docs/scale.md, its commands read from the doc (the store
path adapted), on a real Slurm whose MaxArraySize is 4, so that 4 calls take two arrays."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.conftest import REPO, require
from tests.scalems_call.engines.hpc.conftest import (
    SCALEMS_CALL,
    adapt,
    doc_blocks,
    exec_json,
    lines,
    pack,
    result_json,
    scalems_call,
)
from tests.scalems_call.engines.hpc.localslurm import LocalSlurm, find


def recipe(store: Path) -> tuple[str, str, str]:
    """The doc's blocks: the listing and submitting lines, job.sh, and the listing without jq."""
    blocks = adapt(doc_blocks("A Slurm job array"), {"/project/store": str(store)})
    assert [lang for lang, _ in blocks] == ["sh", "sh", "sh"]
    submit, job_sh, without_jq = (code for _, code in blocks)
    return submit, job_sh, without_jq


def newest_list(directory: Path) -> Path:
    """The list of calls the recipe wrote last."""
    return max(directory.glob("calls-*.txt"), key=lambda path: path.stat().st_mtime_ns)


def test_job_array_recipe_runs_every_pending_call(slurm: LocalSlurm, tmp_path: Path) -> None:
    """The doc's recipe lists the calls not yet done, submits them as arrays within
    MaxArraySize, each task runs its call with the index left alone; afterwards every call has
    its result, and the recipe run again submits nothing."""
    require(None if find("jq") else "jq is not installed (the recipe's listing uses it)")
    store = tmp_path / "store"
    submit, job_sh, without_jq = recipe(store)
    expected = {
        pack(slurm, store, "add", n, 10 * n, cwd=tmp_path): repr(11 * n) for n in range(1, 6)
    }
    # one call already done: the recipe lists only the others
    done = next(iter(expected))
    scalems_call(slurm, "--store", str(store), "exec", done, cwd=tmp_path)
    pending = sorted(fp for fp in expected if fp != done)
    (tmp_path / "job.sh").write_text(job_sh)
    # as the doc says: the venv active (its scalems-call first on PATH), which sbatch passes on
    # to the tasks; the calls' module importable; no store named but the recipe's own
    shell = {
        "PATH": f"{os.path.dirname(SCALEMS_CALL)}:{slurm.env['PATH']}",
        "PYTHONPATH": str(REPO),
    }
    assert "SCALEMS_STORE" not in slurm.env

    export = submit.splitlines()[0]  # the recipe's first line names the store
    assert export == f"export SCALEMS_STORE={store}"
    alternative = slurm.run(
        "bash", "-c", f"{export}; list=without-jq.txt; {without_jq}", cwd=tmp_path, env=shell
    )
    assert sorted(lines(tmp_path / "without-jq.txt")) == pending, alternative.stderr

    logged_before = len(slurm.jobs_completed())
    first = slurm.run("bash", "-e", "-c", submit, cwd=tmp_path, env=shell)
    listed = newest_list(tmp_path)
    assert sorted(lines(listed)) == pending
    assert lines(listed) == lines(tmp_path / "without-jq.txt")  # the same list, in the same order
    # MaxArraySize=4: tasks 1-3, then the 4th call as task 1 of a second array
    submitted = [line for line in first.stdout.splitlines() if line.startswith("Submitted")]
    assert len(submitted) == 2, first.stdout + first.stderr

    slurm.wait_until(lambda: not slurm.squeue(), timeout=120, what="the array tasks to end")
    outputs = "".join(f"{out.name}: {out.read_text()}" for out in tmp_path.glob("slurm-*.out"))
    slurm.wait_until(
        lambda: len(slurm.jobs_completed()) >= logged_before + len(pending),
        timeout=15,
        what="the array tasks in the completion log",
    )
    tasks = slurm.jobs_completed()[logged_before:]
    assert len(tasks) == len(pending)
    assert {task["JobState"] for task in tasks} == {"COMPLETED"}, outputs
    # the tasks left the index alone (SCALEMS_STORE_INDEX=off in job.sh) and marked it stale
    assert (store / "index.sqlite.stale").exists()

    for call_fp, value in expected.items():
        result = result_json(slurm, store, call_fp, cwd=tmp_path)
        assert (result["status"], result["return_value_repr"]) == ("success", value)

    time.sleep(1)  # a new second: the recipe names its list by the time
    again = slurm.run("bash", "-e", "-c", submit, cwd=tmp_path, env=shell)
    assert lines(newest_list(tmp_path)) == []
    assert "Submitted" not in again.stdout + again.stderr  # no `sbatch --array=1-0`
    assert not slurm.squeue()

    hits = scalems_call(slurm, "--store", str(store), "exec", *expected, "--json", cwd=tmp_path)
    records = exec_json(hits)
    assert [record["call"] for record in records] == list(expected)
    assert all(record["cached"] and record["status"] == "success" for record in records)
    assert len(slurm.jobs_completed()) == logged_before + len(pending)
    rows = json.loads(
        scalems_call(slurm, "--store", str(store), "ls", "--json", cwd=tmp_path).stdout
    )
    assert {row["call"]: row["status"] for row in rows} == dict.fromkeys(expected, "success")
