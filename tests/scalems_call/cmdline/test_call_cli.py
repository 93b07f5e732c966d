"""``scalems-call`` through the installed entry point."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalems_call import pack, run
from scalems_call.execution import cache as call_cache
from scalems_call.identity.serialize import from_hex
from scalems_store import FileStore
from tests.conftest import RunCli, entry_point, loopback_cluster
from tests.recordutil import forge
from tests.scalems_call import funcs
from tests.scalems_call.legacy import legacy_pack
from tests.scalems_store.cli.test_store_cli import one_line_error, store_listing


def packed(tmp_path: Path, func: object, *args: object, **options: object) -> str:
    with FileStore(tmp_path / ".scalems") as store:
        return pack(func, args, store=store, **options)  # type: ignore[arg-type]


def test_pack_exec_result_ls(run_cli: RunCli, tmp_path: Path) -> None:
    """pack prints a fingerprint; exec runs once then hits the cache; result and ls show it."""
    (tmp_path / "ledger").touch()
    fp = (
        run_cli(
            "scalems-call",
            "pack",
            "tests.scalems_call.funcs:count_runs",
            "--args-json",
            json.dumps([str(tmp_path / "ledger"), [1, 2]]),
        )
        .stdout.decode()
        .strip()
    )
    first = run_cli("scalems-call", "exec", fp[:8])
    assert first.returncode == 0, first.stderr
    second = run_cli("scalems-call", "exec", fp, "--json")
    record = json.loads(second.stdout)
    assert record["cached"] is True and record["result"] == first.stdout.decode().strip()
    assert (tmp_path / "ledger").read_text() == "ran\n"
    shown = run_cli("scalems-call", "result", fp).stdout.decode()
    assert "status      success" in shown and "return      [1, 2]" in shown and "duration" in shown
    as_json = json.loads(run_cli("scalems-call", "result", fp, "--json").stdout)
    assert as_json["return_value_repr"] == "[1, 2]" and as_json["provenance"]["host"]
    listing = run_cli("scalems-call", "ls").stdout.decode()
    assert fp in listing and "success" in listing


def test_pack_options(run_cli: RunCli, tmp_path: Path) -> None:
    """--kwargs-json, --env, --require and --skeleton go into the record; env reaches the call."""
    (tmp_path / "skel").mkdir()
    (tmp_path / "skel" / "input.txt").write_text("x")
    fp = (
        run_cli(
            "scalems-call",
            "pack",
            "tests.scalems_call.funcs:read_environment",
            "--kwargs-json",
            '{"name": "V"}',
            "--env",
            "V=hello",
            "--require",
            "nodes=1",
            "--skeleton",
            "skel",
        )
        .stdout.decode()
        .strip()
    )
    with FileStore(tmp_path / ".scalems") as store:
        record = json.loads(store.read_bytes(fp))
    assert record["environment"] == {"V": "hello"} and record["requirements"] == {"nodes": 1}
    assert record["skeleton"].startswith("blake3:")
    assert run_cli("scalems-call", "exec", fp).returncode == 0
    assert "'hello'" in run_cli("scalems-call", "result", fp).stdout.decode()


def test_exec_failure_exit_1_and_stdout_stderr(run_cli: RunCli, tmp_path: Path) -> None:
    """A raising call exits 1 and records the traceback; --stdout prints captured output."""
    fp = packed(tmp_path, funcs.fail_and_count, str(tmp_path / "ledger"))
    proc = run_cli("scalems-call", "exec", fp)
    assert proc.returncode == 1 and "ValueError: deliberate failure" in proc.stderr.decode()
    shown = run_cli("scalems-call", "result", fp).stdout.decode()
    assert "Traceback" in shown
    # the record keeps the exception as the text of its repr: shown as it is, not quoted
    assert "exception   ValueError('deliberate failure')\n" in shown
    as_json = json.loads(run_cli("scalems-call", "result", fp, "--json").stdout)
    assert as_json["exception_repr"] == "ValueError('deliberate failure')"
    talk = packed(tmp_path, funcs.talk)
    run_cli("scalems-call", "exec", talk)
    assert (
        run_cli("scalems-call", "result", talk, "--stdout").stdout
        == b"python stdout\nsubprocess stdout\n"
    )
    assert run_cli("scalems-call", "result", talk, "--stderr").stdout == b"fd-level stderr\n"


def test_timeout_and_keep_workdir(run_cli: RunCli, tmp_path: Path) -> None:
    """--timeout stops a call (exit 1); --keep-workdir leaves the work directory."""
    fp = packed(tmp_path, funcs.sleep, 60)
    proc = run_cli("scalems-call", "exec", fp, "--timeout", "1")
    assert proc.returncode == 1
    # what stopped it, said once (not "timeout: timeout")
    assert proc.stderr.decode().splitlines() == [
        f"call {fp[:12]} timeout: TimeoutError: the call did not finish within 1.0 seconds"
    ]
    fixed = packed(tmp_path, funcs.write_fixed)
    kept = run_cli("scalems-call", "exec", fixed, "--keep-workdir")
    workdir = kept.stderr.decode().split("work directory kept: ")[1].strip()
    assert (Path(workdir) / "fixed.txt").read_text() == "always the same\n"


def test_result_output_directory(run_cli: RunCli, tmp_path: Path) -> None:
    """result -o DIR materializes the output directory."""
    fp = packed(tmp_path, funcs.write_fixed)
    run_cli("scalems-call", "exec", fp)
    assert run_cli("scalems-call", "result", fp, "-o", "out").returncode == 0
    assert (tmp_path / "out" / "fixed.txt").read_text() == "always the same\n"


def test_rerun_check(run_cli: RunCli, tmp_path: Path) -> None:
    """rerun --check: 0 for a deterministic call, 3 naming the file for one writing the time."""
    same = packed(tmp_path, funcs.write_fixed)
    run_cli("scalems-call", "exec", same)
    proc = run_cli("scalems-call", "rerun", same, "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    varying = packed(tmp_path, funcs.write_time)
    run_cli("scalems-call", "exec", varying)
    proc = run_cli("scalems-call", "rerun", varying, "--check")
    assert proc.returncode == 3
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == "file stamp.txt differs"
    assert "    --- recorded/stamp.txt" in lines and any(line.startswith("    +") for line in lines)
    report = json.loads(run_cli("scalems-call", "rerun", varying, "--check", "--json").stdout)
    assert report["differences"] == ["file stamp.txt differs"]


def test_command_line_for_batch_systems(run_cli: RunCli, tmp_path: Path) -> None:
    """command prints a command line that runs the call when executed elsewhere."""
    fp = packed(tmp_path, funcs.add, 4, 5)
    line = run_cli("scalems-call", "command", fp[:10]).stdout.decode().strip()
    argv = shlex.split(line)
    assert argv[-2:] == ["exec", fp]
    proc = subprocess.run(argv, capture_output=True, cwd="/", env=os.environ)
    assert proc.returncode == 0, proc.stderr
    assert "return      9" in run_cli("scalems-call", "result", fp).stdout.decode()


def test_user_errors_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    """Unknown fingerprints, bad modules, malformed records, bad JSON: one line, store intact."""
    with FileStore(tmp_path / ".scalems") as store:
        blob = store.add_bytes(b"data")
        malformed = forge(store, b'{"func": 1}', "call")
    before = store_listing(tmp_path / ".scalems")
    cases = [
        (["exec", "0000"], 1, "ObjectNotFound"),
        (["exec", blob], 1, "InvalidCall"),
        (["exec", malformed], 1, "InvalidCall"),
        (["pack", "no_such_module:f"], 1, "ImportFailed"),
        (["pack", "tests.scalems_call.funcs:nothing"], 1, "ImportFailed"),
        (["pack", "tests.scalems_call.funcs"], 1, "InvalidCall"),
        (["pack", "tests.scalems_call.funcs:add", "--args-json", "[1,"], 2, "Usage error"),
        (["pack", "tests.scalems_call.funcs:add", "--kwargs-json", "[1]"], 2, "Usage error"),
        (["result", blob], 1, "InvalidCall"),
    ]
    for args, status, error in cases:
        proc = run_cli("scalems-call", *args)
        assert proc.returncode == status, (args, proc.stderr)
        assert one_line_error(proc).startswith(error), args
    assert store_listing(tmp_path / ".scalems") == before


def test_module_missing_where_an_old_call_runs(run_cli: RunCli, tmp_path: Path) -> None:
    """A call packed before records carried code, whose module the runner cannot import,
    fails with one line and exit 1."""
    (tmp_path / "localmod.py").write_text("def f():\n    return 1\n")
    fp = legacy_pack(tmp_path / ".scalems", "localmod:f", [], tmp_path)
    proc = run_cli("scalems-call", "exec", fp)
    assert proc.returncode == 1
    assert one_line_error(proc).startswith(f"call {fp[:12]} error:")
    assert "localmod" in proc.stderr.decode()


def test_a_call_runs_its_recorded_code_when_the_module_is_gone(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """The module deleted after pack: the call still runs, from the code it recorded."""
    (tmp_path / "gone.py").write_text("def f():\n    return 41 + 1\n")
    call = run_cli("scalems-call", "pack", "gone:f").stdout.decode().strip()
    (tmp_path / "gone.py").unlink()
    done = run_cli("scalems-call", "exec", call, "--json")
    assert json.loads(done.stdout)["status"] == "success", done.stderr


def test_concurrent_duplicate_exec_runs_once(tmp_path: Path) -> None:
    """Two runners of the same call at once: it runs once and both print the same result."""
    fp = packed(tmp_path, funcs.count_runs, str(tmp_path / "ledger"), "slow")
    slow = packed(tmp_path, funcs.sleep, 1.5)
    procs = [
        subprocess.Popen(
            [*entry_point("scalems-call"), "exec", fp, slow], cwd=tmp_path, stdout=subprocess.PIPE
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert len(set(outputs)) == 1
    assert (tmp_path / "ledger").read_text() == "ran\n"


def start_runner(tmp_path: Path, fp: str, **options: object) -> subprocess.Popen[bytes]:
    """Start ``scalems-call exec FP`` and return once its run directory is made (the call
    may be starting or running)."""
    proc = subprocess.Popen(
        [*entry_point("scalems-call"), "exec", fp],
        cwd=tmp_path,
        **options,  # type: ignore[call-overload]
    )
    runs = tmp_path / ".scalems" / "tmp"
    deadline = time.monotonic() + 60
    while not (runs.is_dir() and any(p.name.startswith("run-") for p in runs.iterdir())):
        assert time.monotonic() < deadline and proc.poll() is None, "the call never started"
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_runner_leaves_no_ref(tmp_path: Path, sig: signal.Signals) -> None:
    """A runner killed mid-call leaves no result; the call runs again at once, not after a TTL."""
    flag = tmp_path / "flag"
    flag.touch()
    fp = packed(tmp_path, funcs.wait_for_removal, str(flag))
    proc = start_runner(tmp_path, fp)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == (-sig if sig == signal.SIGKILL else 128 + sig)
    with FileStore(tmp_path / ".scalems") as store:
        assert call_cache.results(store, fp) == []
        assert store.list(kind="result") == []
    if sig == signal.SIGTERM:  # unwound: nothing left behind
        assert os.listdir(tmp_path / ".scalems" / "tmp" / "leases") == []
        assert not [p for p in os.listdir(tmp_path / ".scalems" / "tmp") if p.startswith("run-")]
    flag.unlink()
    started = time.monotonic()
    done = subprocess.run(
        [*entry_point("scalems-call"), "exec", fp], cwd=tmp_path, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 20, "waited for the dead runner's lease to expire"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_runner_killed_as_its_call_starts_says_nothing(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A runner killed while the fork server starts its call leaves no traceback (the server
    wrote a BrokenPipeError, the call a FileNotFoundError for its removed run directory),
    and no call running on (issue 22, case 5)."""
    flag = tmp_path / "flag"
    flag.touch()
    fp = packed(tmp_path, funcs.wait_for_removal, str(flag))
    for _ in range(5):  # the window is narrow: the old code failed 2 times in 3
        proc = start_runner(tmp_path, fp, stderr=subprocess.PIPE)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        # nothing but, on SIGTERM, the summary a stopped batch prints (issue 24, item 1)
        lines = [line for line in err.decode().splitlines() if " stopped, " not in line]
        assert lines == [], err.decode()
    time.sleep(0.5)  # a call left running would be seen in its process list by now
    running = subprocess.run(["pgrep", "-f", "scalems_call.execution"], capture_output=True)
    mine = [int(p) for p in running.stdout.split() if _under(int(p), tmp_path)]
    assert mine == []


def _under(pid: int, directory: Path) -> bool:
    """Whether process *pid* works in *directory* (a call of this test)."""
    try:
        return os.readlink(f"/proc/{pid}/cwd").startswith(str(directory))
    except OSError:
        return False


def test_a_module_only_the_current_directory_has_travels_with_the_call(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """Issue 21, case 4: the README's flow (a module in the current directory, no
    PYTHONPATH) runs, from the project directory, a subdirectory or elsewhere."""
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "localmod.py").write_text("def triple(x):\n    return 3 * x\n")
    store = str(tmp_path / "store")
    bare = {"PYTHONPATH": ""}
    proc = run_cli(
        "scalems-call", "--store", store, "pack", "localmod:triple", "--args-json", "[2]",
        cwd=project, env=bare,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    fp = proc.stdout.decode().strip()
    for where in (project, project / "sub", tmp_path):
        done = run_cli(
            "scalems-call", "--store", store, "exec", fp, "--force", "--json", cwd=where, env=bare
        )
        assert json.loads(done.stdout)["status"] == "success", done.stderr
    result = run_cli("scalems-call", "--store", store, "result", fp, "--json", env=bare)
    assert from_hex(json.loads(result.stdout)["return_value"]) == 6


def test_exec_many_in_parallel(run_cli: RunCli, tmp_path: Path) -> None:
    """exec FP... --jobs 2 runs several calls; failures are reported per call and exit 1."""
    good = [packed(tmp_path, funcs.add, i, i) for i in range(4)]
    bad = packed(tmp_path, funcs.fail_and_count, str(tmp_path / "ledger"))
    proc = run_cli("scalems-call", "exec", *good, bad, "--jobs", "2", "--json")
    assert proc.returncode == 1
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["call"] for r in records] == [*good, bad]
    assert [r["status"] for r in records] == ["success"] * 4 + ["failed"]
    assert f"call {bad[:12]} failed" in proc.stderr.decode()
    assert run_cli("scalems-call", "exec", *good, "--jobs", "2").returncode == 0
    both = run_cli("scalems-call", "exec", good[0], "--jobs", "2", "--dask", "tcp://127.0.0.1:1")
    assert both.returncode == 2


def test_exec_on_unreachable_dask_is_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    """An unreachable Dask scheduler is a one-line error, not a traceback."""
    fp = packed(tmp_path, funcs.add, 1, 1)
    proc = run_cli(
        "scalems-call",
        "exec",
        fp,
        "--dask",
        "tcp://127.0.0.1:9",
        timeout=120,
        env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"},
    )
    assert proc.returncode == 1
    assert one_line_error(proc).startswith("LaunchError:")


def test_exec_on_a_dask_scheduler(run_cli: RunCli, tmp_path: Path) -> None:
    """exec FP... --dask ADDRESS runs the misses on that scheduler's workers."""
    fps = [packed(tmp_path, funcs.add, i, 10) for i in range(3)]
    with loopback_cluster(1) as cluster:
        proc = run_cli("scalems-call", "exec", *fps, "--dask", cluster.scheduler_address, "--json")
        again = run_cli("scalems-call", "exec", *fps, "--dask", cluster.scheduler_address, "--json")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [(r["call"], r["status"], r["cached"]) for r in records] == [
        (fp, "success", False) for fp in fps
    ]
    with FileStore(tmp_path / ".scalems") as store:
        assert [run(fp, store=store).return_value for fp in fps] == [10, 11, 12]
    assert [json.loads(line)["cached"] for line in again.stdout.decode().splitlines()] == [True] * 3


def test_parsl_config_must_define_config(run_cli: RunCli, tmp_path: Path) -> None:
    """--parsl-config with a file that defines no Config is a one-line error."""
    fp = packed(tmp_path, funcs.add, 1, 1)
    (tmp_path / "parsl_config.py").write_text("x = 1\n")
    proc = run_cli("scalems-call", "exec", fp, "--parsl-config", "parsl_config.py")
    assert proc.returncode == 1 and "config" in one_line_error(proc)


PARSL_CONFIG = """
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider

config = Config(
    executors=[
        HighThroughputExecutor(
            label="local",
            address="127.0.0.1",
            loopback_address="127.0.0.1",
            max_workers_per_node=2,
            provider=LocalProvider(init_blocks=1, max_blocks=1),
        )
    ],
    run_dir="runinfo",
    initialize_logging=False,
)
"""


def test_exec_with_parsl_config_file(run_cli: RunCli, tmp_path: Path) -> None:
    """exec FP... --parsl-config FILE.py runs the calls on Parsl and records their results."""
    pytest.importorskip("parsl")
    fps = [packed(tmp_path, funcs.add, i, 10) for i in range(3)]
    (tmp_path / "htex_local.py").write_text(PARSL_CONFIG)
    proc = run_cli(
        "scalems-call", "exec", *fps, "--parsl-config", "htex_local.py", "--json", timeout=300
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["status"] for r in records] == ["success"] * 3
    for i, fp in enumerate(fps):
        assert f"return      {i + 10}" in run_cli("scalems-call", "result", fp).stdout.decode()


def imported_by_runner(tmp_path: Path, *args: str) -> set[str]:
    """The modules the ``scalems-call`` process itself imports (not the call's child)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "scalems_call.cmdline.commands", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_exec_imports_only_what_it_needs(tmp_path: Path) -> None:
    """A cache hit imports no dill, asyncio or tarfile; a run imports dill only in its child."""
    fp = packed(tmp_path, funcs.add, 1, 2)
    ran = imported_by_runner(tmp_path, "exec", fp)
    hit = imported_by_runner(tmp_path, "exec", fp)
    assert "scalems_call.execution.execute" in ran and "scalems_call.execution.execute" not in hit
    assert not {"dill", "asyncio", "tarfile"} & ran
    assert not {"dill", "asyncio", "tarfile", "sqlite3", "subprocess"} & hit


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--kwargs-json", '{"nstep": 5}'], "arguments do not fit add(a, b)"),
        (["--args-json", "[1, 2, 3]"], "arguments do not fit add(a, b)"),
        (
            ["--args-json", "[1, 2]", "--require", "rank=4"],
            "unknown requirement 'rank'; known: interpreter, nodes, ranks",
        ),
        (["--args-json", "[1, 2]", "--require", "ranks=0"], "ranks=0 must be a positive"),
        (["--args-json", "[1, 2]", "--require", "ranks=abc"], "ranks='abc' must be a positive"),
        (["--args-json", "[1, 2]", "--require", "ranks=true"], "ranks=True must be a positive"),
        (["--args-json", "[1, 2]", "--require", "ranks=2.5"], "ranks=2.5 must be a positive"),
        (
            ["--args-json", "[1, 2]", "--require", "ranks=4", "--require", "nodes=3"],
            "ranks=4, nodes=3: nodes must divide ranks",
        ),
        (["--args-json", "[1, 2]", "--require", "nodes=0"], "nodes=0 must be a positive"),
        (["--args-json", "[1, 2]", "--skeleton", "no/such/dir"], "does not exist"),
        (["--args-json", "[1, 2]", "--skeleton", "afile"], "is not a directory"),
        (["--args-json", "[1, 2]", "--skeleton", "nosuch"], "no such directory, and no tree"),
    ],
)
def test_pack_refuses_at_once(
    run_cli: RunCli, tmp_path: Path, args: list[str], expected: str
) -> None:
    """Arguments that do not fit the signature, unknown requirements and a skeleton that is
    no directory are one line at pack time, not an error after a queue wait."""
    (tmp_path / "afile").write_text("x")
    done = run_cli("scalems-call", "pack", "tests.scalems_call.funcs:add", *args)
    assert done.returncode == 1, done.stdout
    assert expected in one_line_error(done)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, "SystemExit: the call exited with status 0 without returning"),
        (3, "SystemExit: the call exited with status 3 without returning"),
        ("bad input file", "SystemExit: bad input file"),
    ],
)
def test_sys_exit_is_reported_as_such(
    run_cli: RunCli, tmp_path: Path, code: object, expected: str
) -> None:
    """A function that calls sys.exit is a failed call that says so (not 'killed')."""
    fp = packed(tmp_path, funcs.leave, code)
    done = run_cli("scalems-call", "exec", fp)
    assert done.returncode == 1
    assert one_line_error(done) == f"call {fp[:12]} failed: {expected}"


def test_errors_are_named_without_their_module(run_cli: RunCli, tmp_path: Path) -> None:
    """A call that cannot be loaded is reported as 'ImportFailed: ...', as errors are
    everywhere else, not 'scalems_call.identity.errors.ImportFailed: ...'."""
    (tmp_path / "gone.py").write_text("def f():\n    return 1\n")
    call = legacy_pack(tmp_path / ".scalems", "gone:f", [], tmp_path)
    (tmp_path / "gone.py").unlink()
    done = run_cli("scalems-call", "exec", call)
    assert done.returncode == 1
    assert one_line_error(done).startswith(f"call {call[:12]} error: ImportFailed: ")


THREADS_NO_STRATEGY = """
from parsl.config import Config
from parsl.executors.threads import ThreadPoolExecutor

config = Config(executors=[ThreadPoolExecutor(max_threads=2)], strategy="none")
"""


def test_a_parsl_config_that_never_replaces_a_block_is_named(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """With strategy 'none', a lost block is never replaced: retried calls would wait for
    one. exec says so (the calls still run), unless there are no retries."""
    pytest.importorskip("parsl")
    from parsl.config import Config

    from scalems_call.engines.executors import strategy_note

    assert strategy_note(Config()) is None  # Parsl's default replaces blocks
    fp = packed(tmp_path, funcs.add, 2, 3)
    (tmp_path / "threads.py").write_text(THREADS_NO_STRATEGY)
    proc = run_cli("scalems-call", "exec", fp, "--parsl-config", "threads.py", timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert "strategy='none': a lost block is not replaced" in proc.stderr.decode()
    again = run_cli(
        "scalems-call", "exec", fp, "--force", "--retries", "0", "--parsl-config", "threads.py"
    )
    assert again.returncode == 0 and "strategy" not in again.stderr.decode()


def test_result_output_of_a_blob_directory_is_refused(run_cli: RunCli, tmp_path: Path) -> None:
    """A result whose directory names a blob: result -o DIR says so in one line and writes
    nothing (issue 22, case 6: it exited 0 and wrote the blob as the file DIR)."""
    fp = packed(tmp_path, funcs.add, 1, 2)
    with FileStore(tmp_path / ".scalems") as store:
        run(fp, store=store)
        record = json.loads(store.read_bytes(store.get_ref("calls", fp)[0]))
        blob = store.add_bytes(b"not a tree\n")
        record["directory"] = f"blake3:{blob}"
        forged = store.add_bytes(json.dumps(record, sort_keys=True).encode(), kind="result")
    refused = run_cli("scalems-call", "result", forged, "-o", "out")
    line = one_line_error(refused)
    assert refused.returncode == 1 and "is a blob, not a tree" in line
    assert not (tmp_path / "out").exists()
