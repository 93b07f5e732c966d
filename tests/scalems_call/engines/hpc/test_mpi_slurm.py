"""MPI calls under Parsl's MPIExecutor on a real Slurm: the ranks form one world of the size
asked for, or the call fails saying so (docs/scale.md, "MPI ranks")."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalems_call.execution import launch
from tests.conftest import require
from tests.scalems_call.engines.hpc.conftest import (
    exec_json,
    pack,
    parsl_exec,
    result_json,
    scalems_call,
    worker_init,
)
from tests.scalems_call.engines.hpc.localslurm import LocalSlurm, write_mpi_config

pytest.importorskip("parsl")


def mpi_missing() -> str | None:
    """Why a 2-rank call cannot run here, or None."""
    if launch.mpi_launcher() is None:
        return "no MPI launcher (mpiexec); the test extra installs the mpich wheel"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed"
    return None


def run_two_ranks(
    slurm: LocalSlurm, tmp_path: Path, launcher: str, init: str
) -> tuple[dict[str, object], dict[str, object]]:
    """Run ``mpi_rank_info`` with ``ranks=2`` through an MPIExecutor block; return its exec
    record and its result record."""
    require(mpi_missing())
    store = tmp_path / "store"
    call = pack(slurm, store, "mpi_rank_info", cwd=tmp_path, options=("--require", "ranks=2"))
    # a fallback launcher that fails: the ranks must come from the prefix Parsl composes
    config = write_mpi_config(
        tmp_path / "mpi_config.py",
        run_dir=tmp_path / "runinfo",
        worker_init=worker_init() + "; export SCALEMS_MPIEXEC=/bin/false" + init,
        mpi_launcher=launcher,
    )
    proc = scalems_call(
        slurm,
        *parsl_exec(store, [call], config),
        cwd=tmp_path,
        check=False,
    )
    (record,) = exec_json(proc)
    assert record["call"] == call, proc.stdout + proc.stderr
    return record, result_json(slurm, store, call, cwd=tmp_path)


def stdout_of(slurm: LocalSlurm, tmp_path: Path, result: dict[str, object]) -> list[str]:
    out = scalems_call(
        slurm,
        "--store",
        str(tmp_path / "store"),
        "result",
        str(result["call"]),
        "--stdout",
        cwd=tmp_path,
    ).stdout
    return sorted(out.splitlines())


@pytest.mark.parametrize(
    ("launcher", "init"),
    [("srun", "; export SLURM_MPI_TYPE=pmi2"), ("mpiexec", "")],
    ids=["srun-pmi2", "mpiexec"],
)
def test_two_rank_call_runs_as_one_world(
    slurm: LocalSlurm, tmp_path: Path, launcher: str, init: str
) -> None:
    """With srun and SLURM_MPI_TYPE=pmi2 (or with MPICH's mpiexec), a ranks=2 call runs as one
    world of 2: rank 0 returns (0, 2) and both ranks' lines are in its stdout."""
    assert "MpiDefault=none" in slurm.conf.read_text()  # srun alone would give no PMI
    record, result = run_two_ranks(slurm, tmp_path, launcher, init)
    assert record["status"] == "success", result
    assert result["return_value_repr"] == "(0, 2)"
    assert result["provenance"]["mpi_world_size"] == 2  # type: ignore[index]
    assert stdout_of(slurm, tmp_path, result) == ["rank 0 of 2", "rank 1 of 2"]


def test_srun_without_pmi_fails_naming_both_rank_counts(slurm: LocalSlurm, tmp_path: Path) -> None:
    """With srun and no PMI (Slurm's MpiDefault=none), the two ranks start as two one-rank
    worlds, and the call fails with "LaunchError: asked for 2 ranks, ran with 1" instead of
    succeeding with the wrong answer."""
    record, result = run_two_ranks(slurm, tmp_path, "srun", "")
    assert record["status"] == "error"
    assert result["status"] == "error"
    assert result["return_value_repr"] == "None"
    assert str(result["traceback"]).startswith("LaunchError: asked for 2 ranks, ran with 1 ")
    assert stdout_of(slurm, tmp_path, result) == ["rank 0 of 1", "rank 0 of 1"]
