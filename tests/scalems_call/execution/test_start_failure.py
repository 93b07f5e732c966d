"""A call whose process never started is an ``error`` (could not be started), not ``killed``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from scalems_call import pack, run
from scalems_store import FileStore
from tests.conftest import local_file, require
from tests.scalems_call import funcs

REFUSAL = "srun: error: Unable to create step for job 42: More processors requested than permitted"


def test_a_launcher_that_refuses_to_start_the_call_is_an_error(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """srun inside a 1-task allocation refuses a 2-rank step and exits 1: the call is
    recorded as an error that says it could not be started, with srun's line in its
    stderr; not as killed."""
    require(None if importlib.util.find_spec("mpi4py") else "mpi4py is not installed")
    launcher = tmp_path / "srun"
    launcher.write_text(f"#!/bin/sh\necho '{REFUSAL}' >&2\nexit 1\n")
    launcher.chmod(0o755)
    monkeypatch.setenv("SCALEMS_MPIEXEC", str(launcher))
    result = run(pack(funcs.add, (1, 2), store=store, requirements={"ranks": 2}), store=store)
    assert result.status == "error"
    assert "could not be started" in str(result.exception)
    assert "status 1" in str(result.exception)
    assert REFUSAL in local_file(result.stderr).read_text()


def test_a_call_that_exits_without_a_result_is_still_killed(store: FileStore) -> None:
    """A call that began and left with os._exit is still 'killed' (it started)."""
    result = run(pack(funcs.hard_exit, store=store), store=store)
    assert result.status == "killed" and "status 7" in str(result.exception)
