"""Shared fixtures: a fresh store, a store factory, and the installed entry points."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scalems_store import FileStore

REPO = Path(__file__).resolve().parent.parent

MakeStore = Callable[..., FileStore]
RunCli = Callable[..., "subprocess.CompletedProcess[bytes]"]


def local_file(uri: str | None) -> Path:
    """The path of a ``file://`` URI recorded in a result."""
    assert uri is not None and uri.startswith("file://"), uri
    return Path(uri.removeprefix("file://"))


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Keep tests away from a user's store, code cache and key pair (their own
    ``$XDG_CONFIG_HOME`` and ``$XDG_CACHE_HOME``); make test helper modules importable by
    children."""
    monkeypatch.delenv("SCALEMS_STORE", raising=False)
    monkeypatch.setenv("SCALEMS_CALL_CODE_CACHE", str(tmp_path_factory.getbasetemp() / "code"))
    monkeypatch.delenv("SCALEMS_TRUST_UNSIGNED", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("SCALEMS_STORE_FSYNC", "0")
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), path])))
    # as in an activated virtual environment: its scripts (Parsl's interchange, ours) are on PATH
    monkeypatch.setenv(
        "PATH", os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    )


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[MakeStore]:
    """Return a factory of fresh stores under tmp_path."""
    made: list[FileStore] = []

    def make(name: str = "store", **kwargs: object) -> FileStore:
        store = FileStore(tmp_path / name, **kwargs)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., FileStore]) -> FileStore:
    """A fresh, empty store."""
    return make_store()


def entry_point(name: str) -> list[str]:
    """The command line of an installed console script (falling back to ``python -m``)."""
    found = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if found:
        return [found]
    module = {"scalems-store": "scalems_store", "scalems-call": "scalems_call.cmdline.console"}[
        name
    ]
    return [sys.executable, "-m", module]


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Run an installed entry point in a subprocess in tmp_path; return the completed process."""

    def run(
        name: str,
        *args: str,
        input: bytes | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*entry_point(name), *args],
            input=input,
            capture_output=True,
            cwd=cwd or tmp_path,
            env={**os.environ, **(env or {})},
            timeout=timeout,
        )

    return run


def loopback_cluster(workers: int) -> Any:
    """A Dask ``LocalCluster`` of worker processes on 127.0.0.1 (skips without Dask)."""
    distributed = pytest.importorskip("distributed")
    return distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        # its HTTP server on a free port: it always starts one (8787 unless told), and
        # warns if another cluster on the machine holds 8787
        dashboard_address="127.0.0.1:0",
        silence_logs=50,
    )


def loopback_parsl_config(run_dir: Path, **htex: Any) -> Any:
    """A Parsl ``Config`` of one local block of a ``HighThroughputExecutor`` ("htex") with 2
    workers on 127.0.0.1, its run directory *run_dir*; *htex* adds to the executor's
    settings (skips without Parsl)."""
    pytest.importorskip("parsl")
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    return Config(
        executors=[
            HighThroughputExecutor(
                label="htex",
                address="127.0.0.1",
                loopback_address="127.0.0.1",
                max_workers_per_node=2,
                provider=LocalProvider(init_blocks=1, max_blocks=1),
                **htex,
            )
        ],
        run_dir=str(run_dir),
        initialize_logging=False,  # Parsl leaves its log file open otherwise
    )


def require(missing: str | None) -> None:
    """Skip with the reason when a part the machine lacks is missing; under .ci/run
    (``SCALEMS_CI=1``), where nothing may skip, fail instead."""
    if missing is None:
        return
    if os.environ.get("SCALEMS_CI"):
        pytest.fail(f"{missing} (under .ci/run nothing may skip)")
    pytest.skip(missing)
