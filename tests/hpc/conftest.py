"""A real Slurm for the tests in this directory: one node on localhost, 2 CPUs (``nproc``).

The ``slurm`` fixture (one for the whole directory) starts munged, slurmctld and slurmd with
every file in a temporary directory (see :mod:`tests.hpc.localslurm`) and stops them by PID
afterwards. Where Slurm cannot run (not root, not installed, a daemon does not start) the
tests skip with the reason; under CI (``$SCALEMS_CI`` set) they fail with it instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.conftest import REPO
from tests.hpc.localslurm import LocalSlurm, SlurmUnavailable, start

UNDER_CI = bool(os.environ.get("SCALEMS_CI"))


def unavailable(reason: str) -> NoReturn:
    """Skip, or under CI (``$SCALEMS_CI``) fail: CI must have every part these tests need."""
    if UNDER_CI:
        pytest.fail(f"{reason} (SCALEMS_CI is set: this must work under CI)", pytrace=False)
    pytest.skip(reason)


# Package scope: one Slurm for every test in tests/hpc (the only ones that use it), stopped right
# after the last of them, in that test's teardown, rather than at pytest's session finish. So the
# daemons do not idle through the rest of the suite, and their teardown (with its leftover check)
# does not depend on the session-finish hooks: one that raises (pytest's own cleanup of old
# numbered temp dirs can) skips the teardown of session fixtures.
@pytest.fixture(scope="package")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    """A running single-node Slurm; stopped (jobs cancelled, daemons ended) after the last test
    of tests/hpc."""
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


def scalems_call(
    slurm: LocalSlurm, *args: str, cwd: Path, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``scalems-call`` with this Slurm's environment, the repository
    importable (for ``tests.call.funcs``); raise with its output when it fails and *check*."""
    return slurm.run(
        SCALEMS_CALL,
        *args,
        cwd=cwd,
        check=check,
        timeout=timeout,
        env={"PYTHONPATH": str(REPO), "SCALEMS_STORE_FSYNC": "0"},
    )


def pack(slurm: LocalSlurm, store: Path, func: str, *args: object, cwd: Path) -> str:
    """Pack ``tests.call.funcs:<func>(*args)`` into *store*; return the call fingerprint."""
    out = scalems_call(
        slurm,
        "--store",
        str(store),
        "pack",
        f"tests.call.funcs:{func}",
        "--args-json",
        json.dumps(list(args)),
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
