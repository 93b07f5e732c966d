"""A real Slurm for the tests in this directory: one node on localhost, 2 CPUs (``nproc``).

The ``slurm`` fixture (one for the whole directory) starts munged, slurmctld and slurmd with
every file in a temporary directory (see :mod:`tests.scalems_call.engines.hpc.localslurm`)
and stops them by PID afterwards. Where Slurm cannot run (not root, not installed, a daemon
does not start) the tests skip with the reason; under CI (``$SCALEMS_CI`` set) they fail
with it instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest

from tests.conftest import REPO
from tests.scalems_call.engines.hpc.localslurm import LocalSlurm, SlurmUnavailable, start

UNDER_CI = bool(os.environ.get("SCALEMS_CI"))


def unavailable(reason: str) -> NoReturn:
    """Skip, or under CI (``$SCALEMS_CI``) fail: CI must have every part these tests need."""
    if UNDER_CI:
        pytest.fail(f"{reason} (SCALEMS_CI is set: this must work under CI)", pytrace=False)
    pytest.skip(reason)


# Package scope: one Slurm for every test in tests/scalems_call/engines/hpc (the only ones that
# use it), stopped right after the last of them, in that test's teardown, rather than at
# pytest's session finish. So the daemons do not idle through the rest of the suite, and their
# teardown (with its leftover check) does not depend on the session-finish hooks: one that
# raises (pytest's own cleanup of old numbered temp dirs can) skips the teardown of session
# fixtures.
@pytest.fixture(scope="package")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    """A running single-node Slurm; stopped (jobs cancelled, daemons ended) after the last test
    of tests/scalems_call/engines/hpc."""
    root = tmp_path_factory.mktemp("slurm")
    own_root = len(str(root)) > 80  # munged's socket path must fit a sockaddr_un
    if own_root:
        root = Path(tempfile.mkdtemp(prefix="slurm-"))
    try:
        cluster = start(root)
    except SlurmUnavailable as exc:
        unavailable(str(exc))
    pids = [proc.pid for proc in cluster.processes.values()]
    try:
        yield cluster
    finally:
        killed = cluster.stop()
    # no leftovers: the daemons are gone (reaped), and no job process outlived them
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not alive, f"daemons still running: {alive}"
    assert not killed, f"job processes outlived Slurm (killed): {killed}"
    assert not cluster.leftovers(), cluster.leftovers()
    if own_root:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _idle_node(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test that uses Slurm starts on an idle node, and leaves no job of its own behind."""
    if "slurm" not in request.fixturenames:
        yield
        return
    cluster: LocalSlurm = request.getfixturevalue("slurm")
    cluster.wait_idle(timeout=30)
    yield
    cluster.cancel_all()


SCALEMS_CALL = os.path.join(os.path.dirname(sys.executable), "scalems-call")


def worker_init() -> str:
    """What a block runs before its workers: the venv first on PATH, the repository importable,
    and the index left alone (as docs/scale.md says for workers)."""
    venv_bin = os.path.dirname(sys.executable)
    return (
        f"export PATH={venv_bin}:$PATH; export PYTHONPATH={REPO}; "
        "export SCALEMS_STORE_INDEX=off; export SCALEMS_STORE_FSYNC=0"
    )


def parsl_exec(store: Path, calls: list[str], config: Path, *, json: bool = True) -> list[str]:
    """The arguments of ``scalems-call --store STORE exec CALLS --parsl-config CONFIG [--json]``."""
    found = ["--store", str(store), "exec", *calls, "--parsl-config", str(config)]
    return [*found, "--json"] if json else found


def scalems_call(
    slurm: LocalSlurm, *args: str, cwd: Path, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``scalems-call`` with this Slurm's environment, the repository
    importable (for ``tests.scalems_call.funcs``); raise with its output when it fails and
    *check*."""
    return slurm.run(
        SCALEMS_CALL,
        *args,
        cwd=cwd,
        check=check,
        timeout=timeout,
        env={"PYTHONPATH": str(REPO), "SCALEMS_STORE_FSYNC": "0"},
    )


def pack(
    slurm: LocalSlurm,
    store: Path,
    func: str,
    *args: object,
    cwd: Path,
    module: str = "tests.scalems_call.funcs",
    options: tuple[str, ...] = (),
) -> str:
    """Pack ``<module>:<func>(*args)`` (and pack *options*) into *store*; return the call
    fingerprint."""
    out = scalems_call(
        slurm,
        "--store",
        str(store),
        "pack",
        f"{module}:{func}",
        "--args-json",
        json.dumps(list(args)),
        *options,
        cwd=cwd,
    ).stdout
    return out.strip()


def exec_json(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """The records ``scalems-call exec --json`` printed, one per call."""
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def result_json(slurm: LocalSlurm, store: Path, call_fp: str, cwd: Path) -> dict[str, Any]:
    """``scalems-call result FP --json``: the latest result record of a call."""
    out = scalems_call(slurm, "--store", str(store), "result", call_fp, "--json", cwd=cwd).stdout
    record: dict[str, Any] = json.loads(out)
    return record


@dataclass
class Background:
    """A command running in the background, its output going to files."""

    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    streams: tuple[IO[bytes], IO[bytes]]

    def output(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()

    def finish(self, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Wait for the command (killing it after *timeout*); return what it did."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            for stream in self.streams:
                stream.close()
        return subprocess.CompletedProcess(
            self.proc.args, self.proc.returncode, self.stdout.read_text(), self.stderr.read_text()
        )


def scalems_call_background(
    slurm: LocalSlurm, *args: str, cwd: Path, session: bool = False
) -> Background:
    """Start the installed ``scalems-call`` as :func:`scalems_call` would, in the background
    (with *session*, as the leader of a process group of its own, as in a terminal)."""
    stdout, stderr = cwd / "background.out", cwd / "background.err"
    streams = (open(stdout, "wb"), open(stderr, "wb"))  # noqa: SIM115 - closed by finish()
    env = {**slurm.env, "PYTHONPATH": str(REPO), "SCALEMS_STORE_FSYNC": "0"}
    proc = subprocess.Popen(
        [SCALEMS_CALL, *args],
        cwd=cwd,
        env=env,
        stdout=streams[0],
        stderr=streams[1],
        start_new_session=session,
    )
    return Background(proc, stdout, stderr, streams)


def wait_for(
    predicate: Any, what: str, timeout: float = 60, running: Background | None = None
) -> None:
    """Poll *predicate* until true; fail (with the background command's output) after *timeout*
    or when the background command has ended meanwhile."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if running is not None and running.proc.poll() is not None:
            pytest.fail(f"ended while waiting for {what}:\n{running.output()}")
        if time.monotonic() > deadline:
            extra = running.output() if running is not None else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}\n{extra}")
        time.sleep(0.1)


def lines(path: Path) -> list[str]:
    """The lines of *path* (none if it does not exist)."""
    return path.read_text().splitlines() if path.exists() else []


def run_directories(store: Path) -> list[str]:
    """The run directories (``tmp/run-*``) in *store*."""
    return sorted(path.name for path in (store / "tmp").glob("run-*"))


# -- docs/scale.md ----------------------------------------------------------------------------
SCALE_MD = REPO / "docs" / "scale.md"


def doc_blocks(section: str) -> list[tuple[str, str]]:
    """The fenced code blocks, ``(language, code)``, of the section of docs/scale.md titled
    *section*, in order."""
    text = SCALE_MD.read_text()
    found = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert found, f"docs/scale.md has no section {section!r}"
    return re.findall(r"^```(\w*)\n(.*?)^```", found.group(1), re.S | re.M)


def adapt(blocks: list[tuple[str, str]], replacements: dict[str, str]) -> list[tuple[str, str]]:
    """*blocks* with each key of *replacements* replaced by its value (in order); each key must
    occur, so that a doc that changes cannot leave the test running something else."""
    text = "\0".join(code for _, code in blocks)
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the docs/scale.md section"
        text = text.replace(old, new)
    return [(lang, code) for (lang, _), code in zip(blocks, text.split("\0"), strict=True)]


def walkthrough_script(
    blocks: list[tuple[str, str]], steps: list[str], python_under: Path | str
) -> str:
    """A docs/scale.md walk-through's *blocks* (one a step of *steps*) as one bash script:
    each step marked on stdout and stderr (``@@ STEP``, see :func:`step_lines`), each shell
    block run as it is, each Python block written to the file its first line names (a
    comment ``# PYTHON_UNDER/.../STEP``)."""
    assert len(blocks) == len(steps)
    script = ["set -eo pipefail"]
    for step, (lang, code) in zip(steps, blocks, strict=True):
        script.append(f"echo '@@ {step}'; echo '@@ {step}' >&2")
        if lang == "python":
            first = code.splitlines()[0]
            assert first.startswith(f"# {python_under}/") and first.endswith(f"/{step}"), first
            script.append(f"cat > {first[2:]} <<'PYTHON'\n{code}PYTHON")
        else:
            assert lang == "sh", lang
            script.append(code)
    return "\n".join(script) + "\n"


def step_lines(output: str) -> dict[str, list[str]]:
    """The lines of a walk-through script's output, by step."""
    found: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("@@ "):
            current = found.setdefault(line[3:], [])
        elif current is not None:
            current.append(line)
    return found
