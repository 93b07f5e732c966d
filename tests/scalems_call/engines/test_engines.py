"""Many calls on engines: a process pool, Dask distributed, Parsl; duplicates; dead workers; MPI."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from scalems_call import LaunchError, pack, run
from scalems_call.engines.executors import exec_on_worker, parsl_resources, run_many
from scalems_call.execution import cache as call_cache
from scalems_call.execution import launch
from scalems_store import FileStore
from scalems_store.core.errors import StoreNotFound
from tests.conftest import local_file, loopback_cluster, loopback_parsl_config
from tests.scalems_call import funcs


class CountingExecutor(Executor):
    """Wraps an executor and counts submissions."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return self.inner.submit(fn, *args, **kwargs)


def twenty_calls(store: FileStore, ledger: Path) -> list[str]:
    fps = [pack(funcs.count_runs, (str(ledger), i), store=store) for i in range(19)]
    return [*fps, pack(funcs.fail_and_count, (str(ledger),), store=store)]


def check_twenty(store: FileStore, fps: list[str], results: dict[str, Any], ledger: Path) -> None:
    assert list(results) == fps
    assert [results[fp].return_value for fp in fps[:19]] == list(range(19))
    assert all(results[fp].status == "success" for fp in fps[:19])
    assert results[fps[19]].status == "failed" and "deliberate" in results[fps[19]].exception
    assert len(ledger.read_text().splitlines()) == 20


def spawn_pool(workers: int = 2) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def test_process_pool_runs_misses_only(store: FileStore, tmp_path: Path) -> None:
    """20 calls through a process pool; a second pass submits only the failed call again."""
    ledger = tmp_path / "ledger"
    fps = twenty_calls(store, ledger)
    done: list[int] = []
    with spawn_pool() as pool:
        counting = CountingExecutor(pool)
        results = run_many(
            fps, store=store, executor=counting, progress=lambda n, total: done.append(n)
        )
        check_twenty(store, fps, results, ledger)
        assert counting.submitted == 20 and done[-1] == 20
        again = run_many(fps + fps[:3], store=store, executor=counting)
    assert counting.submitted == 21, "only the failed call is resubmitted"
    assert all(again[fp].cached for fp in fps[:19])


def test_submission_failure_is_reported_per_call(store: FileStore, tmp_path: Path) -> None:
    """An engine that fails one submission yields an error for that call; the rest complete."""

    class Flaky(Executor):
        def __init__(self) -> None:
            self.count = 0

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            self.count += 1
            future: Future[Any] = Future()
            if self.count == 2:
                future.set_exception(RuntimeError("worker lost"))
            elif self.count == 3:
                raise ValueError("the engine refused this one")
            else:
                future.set_result(fn(*args, **kwargs))
            return future

    fps = [pack(funcs.add, (i, i), store=store) for i in range(4)]
    results = run_many(fps, store=store, executor=Flaky())
    assert [results[fp].status for fp in fps] == ["success", "error", "error", "success"]
    assert "worker lost" in str(results[fps[1]].exception)
    assert "refused" in str(results[fps[2]].exception)
    assert results[fps[3]].return_value == 6


def test_duplicate_concurrent_submissions_run_once(store: FileStore, tmp_path: Path) -> None:
    """The same call submitted to several workers at once runs once; all get the same result."""
    ledger = tmp_path / "ledger"
    fp = pack(funcs.count_runs, (str(ledger), "x"), store=store)
    pack(funcs.sleep, (0.5,), store=store)
    with spawn_pool(3) as pool:
        futures = [pool.submit(exec_on_worker, store.root, fp) for _ in range(3)]
        assert len({f.result(timeout=120) for f in futures}) == 1
    assert ledger.read_text() == "ran\n"


def test_killed_worker_loses_nothing(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killing a pool worker mid-call reports an error, leaves no ref, and calls run afterwards."""
    monkeypatch.setenv("SCALEMS_CALL_LEASE_TTL", "1")
    fp = pack(funcs.sleep, (20,), store=store)
    pool = spawn_pool(1)
    outcome: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: outcome.update(run_many([fp], store=store, executor=pool))
    )
    worker.start()
    runs = Path(store.root, "tmp")
    deadline = time.monotonic() + 60
    while not any(p.name.startswith("run-") for p in runs.iterdir()):
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.1)
    for process in list(pool._processes.values()):  # the test kills the worker on purpose
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
    worker.join(60)
    pool.shutdown()
    assert outcome[fp].status == "error"
    assert call_cache.results(store, fp) == [] and store.list(kind="result") == []
    time.sleep(1.5)  # the dead worker's lease goes stale
    quick = pack(funcs.add, (1, 1), store=store)
    assert run(quick, store=store).return_value == 2


def test_dask_local_cluster(store: FileStore, tmp_path: Path) -> None:
    """20 calls through Dask distributed's executor on a loopback LocalCluster."""
    distributed = pytest.importorskip("distributed")
    ledger = tmp_path / "ledger"
    fps = twenty_calls(store, ledger)
    with loopback_cluster(2) as cluster, distributed.Client(cluster) as client:
        counting = CountingExecutor(client.get_executor())
        results = run_many(fps, store=store, executor=counting)
        check_twenty(store, fps, results, ledger)
        run_many(fps, store=store, executor=counting)
    assert counting.submitted == 21


def test_parsl_htex_loopback(store: FileStore, tmp_path: Path) -> None:
    """20 calls as Parsl apps on a HighThroughputExecutor with a LocalProvider on 127.0.0.1."""
    from scalems_call.engines.executors import run_many_parsl

    config = loopback_parsl_config(tmp_path / "runinfo")
    ledger = tmp_path / "ledger"
    fps = twenty_calls(store, ledger)
    import parsl

    parsl.load(config)
    try:
        results = run_many_parsl(fps, store=store)
        check_twenty(store, fps, results, ledger)
        again = run_many_parsl(fps, store=store)
    finally:
        parsl.dfk().cleanup()
    assert [again[fp].cached for fp in fps] == [True] * 19 + [False], (
        "only the failed call is resubmitted"
    )
    assert len(ledger.read_text().splitlines()) == 21


def test_parsl_resources_for_ranks_and_nodes() -> None:
    """ranks (and nodes, default 1) become Parsl's resource specification; bad values say why."""
    assert parsl_resources({}) == {}
    assert parsl_resources({"ranks": 4}) == {"num_ranks": 4, "num_nodes": 1, "ranks_per_node": 4}
    assert parsl_resources({"ranks": 8, "nodes": 2}) == {
        "num_ranks": 8,
        "num_nodes": 2,
        "ranks_per_node": 4,
    }
    assert parsl_resources({"nodes": 2}) == {}  # nodes alone: no ranks to spread
    with pytest.raises(LaunchError, match="nodes must divide ranks"):
        parsl_resources({"ranks": 8, "nodes": 3})
    for bad in ({"ranks": 8, "nodes": "2"}, {"ranks": 2, "nodes": 0}, {"ranks": True}):
        with pytest.raises(LaunchError, match="must be a positive integer"):
            parsl_resources(bad)


def have_mpi() -> str | None:
    if launch.mpi_launcher() is None:
        return "no MPI launcher (mpiexec); the test extra installs the mpich wheel"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (it needs an MPI library to build)"
    return None


@pytest.mark.skipif(have_mpi() is not None, reason=str(have_mpi()))
def test_two_rank_mpi_call(store: FileStore) -> None:
    """ranks=2 runs under mpiexec: rank 0's return value is the result; all stdout is kept."""
    result = run(pack(funcs.mpi_rank_info, store=store, requirements={"ranks": 2}), store=store)
    assert result.status == "success", result.traceback
    assert result.return_value == (0, 2)
    stdout = local_file(result.stdout).read_text()
    assert sorted(stdout.splitlines()) == ["rank 0 of 2", "rank 1 of 2"]


@pytest.mark.skipif(have_mpi() is not None, reason=str(have_mpi()))
def test_two_rank_mpi_call_under_parsl_mpi_mode(store: FileStore, tmp_path: Path) -> None:
    """Under Parsl's MPIExecutor, a ranks call launches with the prefix Parsl composes for it."""
    pytest.importorskip("parsl")
    from parsl.config import Config
    from parsl.executors import MPIExecutor
    from parsl.launchers import SimpleLauncher
    from parsl.providers import LocalProvider

    from scalems_call.engines.executors import run_many_parsl

    # MPI mode reads the block's nodes from the batch system; here, a PBS node file
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("localhost\n")
    config = Config(
        executors=[
            MPIExecutor(
                label="mpi",
                address="127.0.0.1",
                max_workers_per_block=1,
                mpi_launcher="mpiexec",
                provider=LocalProvider(
                    launcher=SimpleLauncher(),
                    # a launcher that fails: the call must use Parsl's prefix, not the fallback
                    worker_init=f"export PBS_NODEFILE={nodefile} SCALEMS_MPIEXEC=/bin/false",
                    init_blocks=1,
                    max_blocks=1,
                ),
            )
        ],
        run_dir=str(tmp_path / "runinfo"),
        initialize_logging=False,
    )
    fp = pack(funcs.mpi_rank_info, store=store, requirements={"ranks": 2})
    results = run_many_parsl([fp], store=store, config=config)
    result = results[fp]
    assert result.status == "success", result.traceback
    assert result.return_value == (0, 2)
    stdout = local_file(result.stdout).read_text()
    assert sorted(stdout.splitlines()) == ["rank 0 of 2", "rank 1 of 2"]


def test_no_mpi_launcher_is_a_clear_error(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an MPI launcher (or mpi4py), a ranks call fails at once with a clear error."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SCALEMS_MPIEXEC", raising=False)
    monkeypatch.delenv("PARSL_MPI_PREFIX", raising=False)
    monkeypatch.setattr(launch, "mpi_launcher", lambda: None)
    fp = pack(funcs.add, (1, 2), store=store, requirements={"ranks": 2})
    started = time.monotonic()
    with pytest.raises(LaunchError, match=r"MPI|mpi4py"):
        run(fp, store=store)
    assert time.monotonic() - started < 10


def test_mpi_launcher_found_next_to_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With PATH lacking it, the launcher beside the running Python (a virtual environment
    that is not activated) is used; with none there either, there is none."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SCALEMS_MPIEXEC", raising=False)
    beside = tmp_path / "venv" / "bin"
    beside.mkdir(parents=True)
    assert launch.mpi_launcher(str(beside / "python")) is None
    launcher = beside / "mpiexec"
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)
    assert launch.mpi_launcher(str(beside / "python")) == str(launcher)


@pytest.mark.skipif(have_mpi() is not None, reason=str(have_mpi()))
def test_a_rank_count_that_differs_fails_the_call(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A launcher that starts the ranks as separate one-rank worlds (srun without PMI)
    makes the call fail with a LaunchError naming both numbers, not succeed wrongly."""
    fake = tmp_path / "srun-without-pmi"
    fake.write_text('#!/bin/sh\nshift 2\n"$@" &\n"$@"\nwait\n')
    fake.chmod(0o755)
    monkeypatch.setenv("SCALEMS_MPIEXEC", str(fake))
    result = run(pack(funcs.mpi_rank_info, store=store, requirements={"ranks": 2}), store=store)
    assert result.status == "error" and result.return_value is None
    assert "asked for 2 ranks, ran with 1" in str(result.exception)
    assert call_cache.hit(store, result.call or "") is None


def test_a_worker_opens_its_store_once(tmp_path: Path) -> None:
    """Workers keep the store open between calls, and open it again when the directory
    at that path is another store now (removed and made again)."""
    import shutil

    from scalems_call.engines import executors

    root = tmp_path / "store"
    FileStore(root).close()
    first = executors._worker_store(str(root))
    assert executors._worker_store(str(root)) is first
    shutil.rmtree(root)
    with FileStore(root) as again:
        fp = again.add_bytes(b"in the new store")
    second = executors._worker_store(str(root))
    assert second is not first and fp in second
    with pytest.raises(StoreNotFound):
        executors._worker_store(str(tmp_path / "nothing here"))
