"""function_call_to_subprocess: a call as a batch system's task, as SCALE-MS gave it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import scalems_call
from scalems_call import (
    InvalidCall,
    deserialize_call,
    deserialize_result,
    function_call_to_subprocess,
)
from scalems_call.execution import launch
from scalems_store import FileReference, FileStore, FileStoreManager
from tests.conftest import require
from tests.scalems_call import funcs


def run_as_batch_system(task: scalems_call._Subprocess, scratch: Path, *launcher: str) -> Path:
    """Place the task's input files in *scratch*, run its command line there (under
    *launcher*, if any), and return the path of its one output file."""
    scratch.mkdir()
    for name, ref in task.input_filenames.items():
        shutil.copyfile(ref, scratch / name)
    done = subprocess.run(
        [*launcher, task.executable, *task.arguments],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=120,
    )
    (output,) = task.output_filenames
    assert (scratch / output).is_file(), done.stderr
    return scratch / output


def test_task_is_the_seeds_shape(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The task names <label>-input.json (the call record, stored as a call) and
    <label>-output.json, and runs python3 with this interpreter's -X options."""
    monkeypatch.setattr(sys, "_xoptions", {"dev": True, "frozen_modules": "off"})
    task = asyncio.run(
        function_call_to_subprocess(
            funcs.add, label="sum", args=(2,), kwargs={"b": 3}, manager=store
        )
    )
    assert isinstance(task, scalems_call._Subprocess) and task.uid == "sum"
    (ref,) = task.input_filenames.values()
    assert list(task.input_filenames) == ["sum-input.json"] and isinstance(ref, FileReference)
    assert ref.filestore() is store and store.kind(ref.key()) == "call"
    assert Path(ref).read_text() == scalems_call.serialize_call(
        funcs.add, args=(2,), kwargs={"b": 3}
    )
    call = deserialize_call(Path(ref).read_bytes())
    assert call.func is funcs.add and call.args == (2,) and call.kwargs == {"b": 3}
    assert task.output_filenames == ("sum-output.json",)
    assert task.executable == "python3"
    assert task.arguments == (
        "-Xdev",
        "-Xfrozen_modules=off",
        "-m",
        "scalems_call",
        "sum-input.json",
        "sum-output.json",
    )
    assert task.requirements == {}
    with pytest.raises(AttributeError):
        task.uid = "other"  # type: ignore[misc]  # frozen, as in SCALE-MS


def test_ranks_run_under_mpi4py(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a ranks requirement the command runs under -m mpi4py; requirements pass
    through as a copy."""
    monkeypatch.setattr(sys, "_xoptions", {})
    requirements = {"ranks": 2}
    task = asyncio.run(
        function_call_to_subprocess(
            funcs.mpi_rank_info, label="mpi", manager=store, requirements=requirements
        )
    )
    assert task.arguments == (
        "-m",
        "mpi4py",
        "-m",
        "scalems_call",
        "mpi-input.json",
        "mpi-output.json",
    )
    assert task.requirements == requirements and task.requirements is not requirements
    record = deserialize_call(Path(task.input_filenames["mpi-input.json"]).read_bytes())
    assert record.requirements == requirements


def test_run_as_a_batch_system_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in a scratch directory holding the localized input, the task writes an output
    that deserialize_result reads: the return value, or the exception raised."""
    monkeypatch.setattr(sys, "_xoptions", {})
    with FileStoreManager(tmp_path / "store") as manager:
        ok = asyncio.run(
            function_call_to_subprocess(funcs.add, label="ok", args=(2, 3), manager=manager)
        )
        bad = asyncio.run(
            function_call_to_subprocess(funcs.add, label="bad", args=(2, "x"), manager=manager)
        )
    output = run_as_batch_system(ok, tmp_path / "ok")
    result = deserialize_result(output.read_text())
    assert result.return_value == 5 and result.exception is None
    assert result.directory == (tmp_path / "ok").as_uri()
    failed = deserialize_result(run_as_batch_system(bad, tmp_path / "bad").read_text())
    assert failed.return_value is None
    assert failed.exception is not None and failed.exception.startswith("TypeError(")


def test_manager_without_a_store_is_refused(tmp_path: Path) -> None:
    """A closed manager, or anything without datastore(), is a clear InvalidCall."""
    manager = FileStoreManager(tmp_path / "store")
    manager.close()
    for bad in (manager, object()):
        with pytest.raises(InvalidCall, match="no open store"):
            asyncio.run(function_call_to_subprocess(funcs.add, label="x", manager=bad))


def have_mpi() -> str | None:
    if launch.mpi_launcher() is None:
        return "no MPI launcher (mpiexec); the test extra installs the mpich wheel"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (the test extra installs it)"
    return None


def test_two_ranks_see_a_world_of_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Launched with mpiexec -n 2, as a batch system launches a ranks task, the call sees
    a world of 2, and the output holds rank 0's return value."""
    require(have_mpi())
    monkeypatch.setattr(sys, "_xoptions", {})
    store = FileStore(tmp_path / "store")
    task = asyncio.run(
        function_call_to_subprocess(
            funcs.mpi_rank_info, label="mpi", manager=store, requirements={"ranks": 2}
        )
    )
    mpiexec = launch.mpi_launcher()
    assert mpiexec is not None
    output = run_as_batch_system(task, tmp_path / "scratch", mpiexec, "-n", "2")
    result = deserialize_result(output.read_text())
    assert result.exception is None and result.return_value == (0, 2)
