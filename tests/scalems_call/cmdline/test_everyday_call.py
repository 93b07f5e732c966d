"""``scalems-call`` in everyday use (issue 12): the call log, names, results, the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scalems_call import pack, run
from scalems_call.identity.describe import function_name, short_arguments
from scalems_call.identity.serialize import to_hex
from scalems_call.identity.upstream import output
from scalems_store import FileStore
from tests.conftest import REPO, RunCli, entry_point
from tests.scalems_call.cmdline import everyday_funcs
from tests.scalems_store.cli.test_everyday_store import complete, on_terminal
from tests.scalems_store.cli.test_store_cli import one_line_error


def packed(tmp_path: Path, func: Any, *args: Any, **kwargs: Any) -> str:
    """Pack ``func(*args, **kwargs)`` into tmp_path/.scalems; return its fingerprint."""
    with FileStore(tmp_path / ".scalems") as store:
        return pack(func, args, kwargs, store=store)


def ran(tmp_path: Path, func: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    """Pack and run ``func(*args, **kwargs)``; return its fingerprint and its result's."""
    with FileStore(tmp_path / ".scalems") as store:
        call = pack(func, args, kwargs, store=store)
        result = run(call, store=store).fingerprint
    assert result is not None
    return call, result


def test_result_stdout_stderr_json_combinations(run_cli: RunCli, tmp_path: Path) -> None:
    """--stdout or --stderr alone print the stream; with each other, or with --json, they
    are a one-line usage error (exit 2)."""
    call, _ = ran(tmp_path, everyday_funcs.varying_log, 2)
    shown = run_cli("scalems-call", "result", call, "--stdout")
    assert shown.returncode == 0 and shown.stdout.startswith(b"step 0\nstep 1\nfinished at")
    assert run_cli("scalems-call", "result", call, "--stderr").stdout == b""
    for args in (["--stdout", "--stderr"], ["--json", "--stdout"], ["--stderr", "--json"]):
        proc = run_cli("scalems-call", "result", call, *args)
        assert proc.returncode == 2 and one_line_error(proc).startswith("Usage error:")
        assert proc.stdout == b""


def test_labels_name_calls_and_skeletons(run_cli: RunCli, tmp_path: Path) -> None:
    """exec, result, rerun, command and pack --skeleton take labels."""
    (tmp_path / "skel").mkdir()
    (tmp_path / "skel" / "input.txt").write_text("x")
    tree = run_cli("scalems-store", "add", "skel", "--label", "inputs").stdout.decode().strip()
    packed_call = run_cli(
        "scalems-call",
        "pack",
        "tests.scalems_call.cmdline.everyday_funcs:scale",
        "--args-json",
        "[[1, 2]]",
        "--skeleton",
        "inputs",
    )
    call = packed_call.stdout.decode().strip()
    with FileStore(tmp_path / ".scalems") as store:
        assert json.loads(store.read_bytes(call))["skeleton"] == f"blake3:{tree}"
    run_cli("scalems-store", "label", "my-step", call)
    result = run_cli("scalems-call", "exec", "my-step")
    assert result.returncode == 0, result.stderr
    shown = json.loads(run_cli("scalems-call", "result", "my-step", "--json").stdout)
    assert shown["fingerprint"] == result.stdout.decode().strip()
    assert shown["return_value_repr"] == "[2.0, 4.0]"
    assert run_cli("scalems-call", "rerun", "my-step", "--check").returncode == 0
    assert call in run_cli("scalems-call", "command", "my-step").stdout.decode()


def test_store_after_the_command(run_cli: RunCli, tmp_path: Path) -> None:
    """scalems-call takes --store after the command: pack, exec, result, ls."""
    packed_call = run_cli(
        "scalems-call", "pack", "tests.scalems_call.cmdline.everyday_funcs:scale",
        "--args-json", "[[1]]", "--store", "elsewhere",
    )  # fmt: skip
    assert packed_call.returncode == 0, packed_call.stderr
    call = packed_call.stdout.decode().strip()
    assert run_cli("scalems-call", "exec", call[:8], "--store", "elsewhere").returncode == 0
    shown = run_cli("scalems-call", "result", call[:8], "--json", "--store", "elsewhere")
    assert json.loads(shown.stdout)["call"] == call
    assert call[:12] in run_cli("scalems-call", "ls", "--store", "elsewhere").stdout.decode()
    assert not (tmp_path / ".scalems").exists()


def test_text_result_names_what_the_output_directory_left_out(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """An absolute symlink and a fifo left in the output directory are listed by the text
    result (and kept in the JSON provenance); sizes are in binary units."""
    call, _ = ran(tmp_path, everyday_funcs.leave_specials)
    shown = run_cli("scalems-call", "result", call).stdout.decode()
    assert "not archived (2, left out of the output directory):" in shown
    assert "              absolute: " in shown and "              pipe: " in shown
    assert "kept.txt  5 B" in shown and "stdout      0 B  blake3:" in shown
    record = json.loads(run_cli("scalems-call", "result", call, "--json").stdout)
    assert len(record["provenance"]["skipped"]) == 2


def test_ls_is_a_log_people_can_read(run_cli: RunCli, tmp_path: Path) -> None:
    """ls lists newest first: fingerprint (short on a terminal), status, start, duration,
    module:function and one-line arguments; a call being run is 'running'; filters
    narrow it; piped and in --json, fingerprints are whole."""
    first, _ = ran(tmp_path, everyday_funcs.scale, [1.5, 2.5], 3, label="x" * 200)
    (tmp_path / "flag").touch()
    waiting = packed(tmp_path, everyday_funcs.wait_while, str(tmp_path / "flag"))
    pending = packed(tmp_path, everyday_funcs.varying_log, 1)
    runner = subprocess.Popen([*entry_point("scalems-call"), "exec", waiting], cwd=tmp_path)
    try:
        lease = tmp_path / ".scalems" / "tmp" / "leases" / waiting
        deadline = time.monotonic() + 60
        while not lease.exists():
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.05)
        log = on_terminal(tmp_path, "scalems-call", "ls")[1].splitlines()
        piped = run_cli("scalems-call", "ls").stdout.decode().splitlines()
        rows = json.loads(run_cli("scalems-call", "ls", "--json").stdout)
    finally:
        (tmp_path / "flag").unlink()
        assert runner.wait(60) == 0
    assert log[0].split()[:2] == ["CALL", "STATUS"]
    assert [line.split()[0] for line in piped[1:]] == [row["call"] for row in rows]
    # a pending call counts from when it was packed: here, after the first one ran
    assert [row["call"] for row in rows] == [waiting, pending, first]
    assert [row["status"] for row in rows] == ["running", "pending", "success"]
    running, never, done = log[1:]
    assert running.startswith(f"{waiting[:12]}  running ") and waiting not in running
    assert "tests.scalems_call.cmdline.everyday_funcs:wait_while(" in running
    assert done.startswith(f"{first[:12]}  success  20")
    assert "tests.scalems_call.cmdline.everyday_funcs:scale([1.5, 2.5], 3, label='xxx" in done
    cost = len("  CPU       MEMORY   ")  # the CPU time and peak memory columns
    assert done.endswith("…)")
    assert len(done) < 160 + cost + len("scalems_call.cmdline.") - len("cli.")
    assert never.split()[1:4] == ["pending", "-", "-"]
    assert rows[2]["duration"] > 0 and rows[2]["start"].startswith("20")
    assert rows[1]["start"] is None and rows[0]["end"] is None

    def calls(*args: str) -> list[str]:
        listed = json.loads(run_cli("scalems-call", "ls", "--json", *args).stdout)
        return [row["call"] for row in listed]

    assert calls("--status", "success") == [waiting, first]
    assert calls("--status", "pending", "--status", "failed") == [pending]
    assert calls("--function", ":scale") == [first]
    assert calls("--function", "*:wait_*") == [waiting]
    assert calls("--since", "1h") == [waiting, pending, first]
    assert calls("--since", "2999-01-01") == []
    bad = run_cli("scalems-call", "ls", "--since", "someday")
    assert bad.returncode == 2 and one_line_error(bad).startswith("Usage error:")


def test_describe_reads_functions_and_arguments_without_importing(tmp_path: Path) -> None:
    """function_name and short_arguments read pickles without loading them: functions by
    reference or by value, partials, containers, and references to other calls' outputs."""
    import functools

    script = (
        "from scalems_call.identity.serialize import to_hex\n"
        "def simulate(steps):\n    return steps\n"
        "print(to_hex(simulate))\n"
    )
    by_value = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout.strip()
    assert function_name({"func": by_value}) == "__main__:simulate"
    assert function_name({"func": to_hex(everyday_funcs.scale)}) == (
        "tests.scalems_call.cmdline.everyday_funcs:scale"
    )
    partial = functools.partial(everyday_funcs.scale, factor=3.0)
    assert function_name({"func": to_hex(partial)}) == (
        "functools:partial(tests.scalems_call.cmdline.everyday_funcs:scale)"
    )
    assert function_name({"func": "not hex"}) == "<unknown>"
    record = {
        "args": [to_hex(v) for v in ([1, 2.5], {"a": (None, True)}, {3, 1}, b"xy")],
        "kwargs": {
            "up": to_hex(output("ab" * 32, "out/x.gro")),
            "value": to_hex(output("cd" * 32)),
            "when": to_hex(time.gmtime(0)),
        },
    }
    text = short_arguments(record, width=200)
    assert text == (
        "[1, 2.5], {'a': (None, True)}, {1, 3}, b'xy', up=output(abababab…, 'out/x.gro'), "
        "value=output(cdcdcdcd…), when=<time.struct_time>"
    )
    assert short_arguments(record, width=20) == text[:19] + "…"
    module, name = b"no_such_module_here", b"simulate"
    global_only = b"\x80\x04\x8c%c%s\x8c%c%s\x93." % (len(module), module, len(name), name)
    assert function_name({"func": global_only.hex()}) == "no_such_module_here:simulate"


def test_completion_of_calls(run_cli: RunCli, tmp_path: Path) -> None:
    """exec completes labels and fingerprints; pack --skeleton offers directories too."""
    call = packed(tmp_path, everyday_funcs.scale, [1.0])
    run_cli("scalems-store", "label", "step-one", call)
    assert complete(run_cli, "scalems-call", "scalems-call exec st") == ["plain,step-one"]
    assert complete(run_cli, "scalems-call", f"scalems-call exec {call[:4]}") == [f"plain,{call}"]
    offered = complete(run_cli, "scalems-call", "scalems-call pack m:f --skeleton st")
    assert offered == ["dir,st", "plain,step-one"]


def test_store_diff_of_two_results_shows_a_patch(run_cli: RunCli, tmp_path: Path) -> None:
    """scalems-store diff of two results of one call names the file and the stream that
    differ, with the first lines of a unified diff; rerun --check's comparison gives the
    same excerpts."""
    from scalems_call.execution import check

    call, old = ran(tmp_path, everyday_funcs.varying_log, 3)
    with FileStore(tmp_path / ".scalems") as store:
        new = str(run(call, store=store, force=True).fingerprint)
        records = [json.loads(store.read_bytes(fp)) for fp in (old, new)]
        found = check.compare(store, *records)
    proc = run_cli("scalems-store", "diff", "-p", old, new)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == "stdout differs: 53 B -> 53 B"  # "step 0".."step 2", the time
    assert "    --- a/stdout" in lines and "    +++ b/stdout" in lines
    assert any(line.startswith("    -finished at ") for line in lines)
    assert "changed  log.txt  (53 B -> 53 B)" in lines
    report = json.loads(run_cli("scalems-store", "diff", old, new, "--json").stdout)
    assert report["kind"] == "result" and not report["same"]
    assert {c["where"] for c in report["changes"]} == {"stdout", "directory"}
    assert [d.summary for d in found] == ["stdout differs", "file log.txt differs"]
    assert found[1].excerpt[:2] == ("--- recorded/log.txt", "+++ rerun/log.txt")
    assert found[1].lines()[1] == "    --- recorded/log.txt"
    assert check.differences(store, *records) == ["stdout differs", "file log.txt differs"]


def test_demo_names_the_environment_and_explains_the_rerun(tmp_path: Path) -> None:
    """Run outside an activated environment, the demo's hint names the environment's
    scalems-call; it explains why the rerun's result fingerprint differs."""
    env = {**os.environ, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "scalems_call.demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    script = os.path.join(os.path.dirname(sys.executable), "scalems-call")
    assert f"  {script} result " in proc.stdout
    assert "a result record includes its provenance (host, start and end times)" in (
        proc.stdout.replace("\n  ", " ")
    )
    if os.path.exists(os.path.join(os.path.dirname(sys.executable), "activate")):
        assert "(or activate the environment first: source " in proc.stdout


@pytest.mark.parametrize("width", [0, 1, 5])
def test_short_arguments_never_exceeds_the_width(width: int) -> None:
    """However narrow the width, the line is at most that long."""
    record = {"args": [to_hex("a long string argument")], "kwargs": {}}
    assert len(short_arguments(record, width)) <= max(width, 1)
