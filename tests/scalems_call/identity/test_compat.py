"""The SCALE-MS scalems.call surface keeps its behaviour under scalems_call."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from pathlib import Path

import pytest

import scalems_call
from scalems_call import (
    CallResult,
    deserialize_call,
    deserialize_result,
    main,
    serialize_call,
    serialize_result,
)

ECHO_ARGS = (["/bin/echo", "hello", "world"],)


def returned_stdout(result: CallResult) -> bytes:
    """The captured stdout of the ``subprocess.CompletedProcess`` a call returned."""
    assert isinstance(result.return_value, subprocess.CompletedProcess), result.exception
    return result.return_value.stdout


def test_echo_round_trip_through_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A serialized subprocess.run call deserializes and runs, returning the CompletedProcess."""
    monkeypatch.chdir(tmp_path)
    record = serialize_call(subprocess.run, args=ECHO_ARGS, kwargs={"capture_output": True})
    pack = json.loads(record)
    assert set(pack) >= {
        "func",
        "args",
        "kwargs",
        "outputs",
        "requirements",
        "skeleton",
        "environment",
        "encoder",
        "decoder",
        "func_code",
    }
    call = deserialize_call(record)
    result = main(call)
    assert isinstance(result, CallResult)
    assert result.exception is None
    assert returned_stdout(result) == b"hello world\n"
    assert result.directory == pathlib.Path(tmp_path).as_uri()
    again = deserialize_result(serialize_result(result))
    assert returned_stdout(again) == b"hello world\n" and again.directory == result.directory


def test_echo_round_trip_through_command_line(tmp_path: Path) -> None:
    """python -m scalems_call CALL.json RESULT.json writes the result and exits 0."""
    (tmp_path / "call.json").write_text(
        serialize_call(subprocess.run, args=ECHO_ARGS, kwargs={"capture_output": True})
    )
    proc = subprocess.run(
        [sys.executable, "-m", "scalems_call", "call.json", "result.json"],
        cwd=tmp_path,
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    result = deserialize_result((tmp_path / "result.json").read_text())
    assert returned_stdout(result) == b"hello world\n"
    assert result.directory == tmp_path.as_uri()
    assert result.exception is None


def test_exception_is_repr_and_exit_1(tmp_path: Path) -> None:
    """A call that raises records repr(exception), and the command line exits 1."""
    from tests.scalems_call import funcs

    (tmp_path / "call.json").write_text(
        serialize_call(funcs.fail_and_count, args=(str(tmp_path / "l"),))
    )
    proc = subprocess.run(
        [sys.executable, "-m", "scalems_call", "call.json", "result.json"],
        cwd=tmp_path,
        capture_output=True,
    )
    assert proc.returncode == 1
    result = deserialize_result((tmp_path / "result.json").read_text())
    assert result.exception == "ValueError('deliberate failure')"
    assert b"Traceback" not in proc.stderr


def test_cli_function_returns_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cli(*argv) runs in-process and returns 0, or 1 for a missing call file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "call.json").write_text(serialize_call(len, args=([1, 2, 3],)))
    assert scalems_call.cli("prog", "call.json", "result.json") == 0
    assert deserialize_result((tmp_path / "result.json").read_text()).return_value == 3
    assert scalems_call.cli("prog", "missing.json", "result.json") == 1


def test_outputs_select_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only requested outputs are filled in; the exception always is."""
    monkeypatch.chdir(tmp_path)
    call = deserialize_call(serialize_call(len, args=([1],)))
    call.outputs = ["exception"]
    result = main(call)
    assert result.return_value is None and result.directory is None


def test_all_is_complete() -> None:
    """Every public name is in __all__ and importable, including the SCALE-MS ones."""
    for name in (
        "CallResult",
        "CallPack",
        "ResultPack",
        "serialize_call",
        "deserialize_call",
        "main",
        "cli",
        "serialize_result",
        "deserialize_result",
        "pack",
        "run",
        "submit",
        "CallError",
    ):
        assert name in scalems_call.__all__
    for name in scalems_call.__all__:
        assert getattr(scalems_call, name) is not None
