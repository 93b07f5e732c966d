"""Files passed by content: ``input_file(path)`` and ``{"$file": PATH}`` (issue 21, case 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalems_call import InvalidCall, input_file, pack, run
from scalems_call.identity.serialize import from_hex
from scalems_store import FileStore
from tests.conftest import RunCli
from tests.scalems_call import funcs


def test_a_file_passed_by_content_is_part_of_the_identity(store: FileStore, tmp_path: Path) -> None:
    """Issue 21, case 5: a call reading /project/params/ext.cfg; the file edited and the
    call packed again is a new call, which reads the new content from its own copy."""
    cfg = tmp_path / "params" / "ext.cfg"
    cfg.parent.mkdir()
    cfg.write_text("steps = 10\n")
    first = pack(funcs.read_text, (input_file(cfg),), store=store)
    assert pack(funcs.read_text, (input_file(str(cfg)),), store=store) == first
    assert run(first, store=store).return_value == ("ext.cfg", "steps = 10\n")
    cfg.write_text("steps = 20\n")
    second = pack(funcs.read_text, (input_file(cfg),), store=store)
    assert second != first
    assert run(second, store=store).return_value == ("ext.cfg", "steps = 20\n")
    assert run(first, store=store).return_value == ("ext.cfg", "steps = 10\n")  # cached
    cfg.unlink()
    assert run(first, store=store, force=True).return_value == ("ext.cfg", "steps = 10\n")


def test_the_file_is_stored_and_named_by_the_record(store: FileStore, tmp_path: Path) -> None:
    """The record's ``files`` names the blob, which the store reads as a reference (gc and
    bundles keep it); the output directory does not hold the delivered copy."""
    (tmp_path / "in.txt").write_text("x")
    fp = pack(funcs.read_text, (input_file(tmp_path / "in.txt"),), store=store)
    record = json.loads(store.read_bytes(fp))
    blob = record["files"][0]["file"][len("blake3:") :]
    assert record["files"][0]["name"] == "in.txt"
    assert store.read_bytes(blob) == b"x"
    assert blob in store.references(fp)
    result = run(fp, store=store)
    assert result.status == "success"
    assert result.fingerprint is not None
    directory = json.loads(store.read_bytes(result.fingerprint))["directory"]
    listed = store.tree_entries(directory[len("blake3:") :])
    assert all(".scalems-inputs" not in entry.path for entry in listed)


def test_a_missing_file_is_refused_at_once(tmp_path: Path) -> None:
    """input_file of a path that is not a file is an InvalidCall."""
    with pytest.raises(InvalidCall, match="no such file"):
        input_file(tmp_path / "absent")


def test_cli_takes_files_by_content_and_warns_of_paths(run_cli: RunCli, tmp_path: Path) -> None:
    """``{"$file": PATH}`` in --args-json passes a file by content; a plain string naming an
    existing file outside the skeleton gets one warning that suggests it."""
    cfg = tmp_path / "ext.cfg"
    cfg.write_text("a = 1\n")
    target = "tests.scalems_call.funcs:read_text"
    by_content = run_cli(
        "scalems-call", "pack", target, "--args-json", json.dumps([{"$file": str(cfg)}])
    )
    assert by_content.returncode == 0 and by_content.stderr == b"", by_content.stderr
    fp = by_content.stdout.decode().strip()
    assert run_cli("scalems-call", "exec", fp).returncode == 0
    shown = json.loads(run_cli("scalems-call", "result", fp, "--json").stdout)
    assert from_hex(shown["return_value"]) == ("ext.cfg", "a = 1\n")
    by_name = run_cli(
        "scalems-call", "pack", "tests.scalems_call.funcs:add", "--args-json",
        json.dumps([str(cfg), str(cfg)]),
    )  # fmt: skip
    warned = by_name.stderr.decode()
    assert warned.count("warning:") == 1
    assert "input_file" in warned and '{"$file": ' in warned
    missing = run_cli("scalems-call", "pack", target, "--args-json", '[{"$file": "nope"}]')
    assert missing.returncode == 1
    assert b"no such file" in missing.stderr
