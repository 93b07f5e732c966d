"""Run many calls on an engine: a process pool, Dask distributed, or Parsl.

Engines only decide where and when a call runs; how it runs is always
:func:`scalems_call.execute.execute` (the function behind ``scalems-call exec``),
on a worker that reaches the store through a shared path. The coordinating
process checks the cache first and submits only the misses; per-call leases in
the store make duplicate submissions run once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, as_completed
from typing import Any

from scalems_store import FileStore

from . import cache
from .compat import CallResult
from .errors import LaunchError
from .runner import to_call_result

Progress = Callable[[int, int], None]


def exec_on_worker(
    store_root: str, call_fp: str, force: bool = False, timeout: float | None = None
) -> str:
    """Run one call by fingerprint against the store at *store_root*; return the result fingerprint.

    This is what engines ship to their workers: a module-level function, so
    it pickles by reference, taking only strings.
    """
    from .execute import execute

    with FileStore(store_root, create=False) as store:
        return execute(store, call_fp, force=force, timeout=timeout).result


def default_executor(jobs: int | None = None) -> Executor:
    """A local process pool (``spawn``: safe with the threads a coordinator may run)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from scalems_store.fingerprint import usable_cores

    return ProcessPoolExecutor(
        max_workers=jobs or usable_cores(), mp_context=multiprocessing.get_context("spawn")
    )


def run_many(
    fingerprints: Iterable[str],
    *,
    store: FileStore,
    executor: Executor | None = None,
    force: bool = False,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> dict[str, CallResult]:
    """Run calls by fingerprint on *executor*, serving cached results without submitting them.

    Args:
        fingerprints: Call fingerprints or prefixes (duplicates run once).
        store: The store; workers must reach it at the same path.
        executor: Any ``concurrent.futures.Executor`` (a ``ProcessPoolExecutor``,
            ``distributed.Client(...).get_executor()``, ...); a local process
            pool when None.
        force: Run even the calls whose result is cached.
        timeout: Per-call timeout in seconds.
        progress: Called as ``progress(done, total)`` as calls finish.

    Returns:
        A :class:`CallResult` per call fingerprint. A call whose submission
        failed (a worker died, the engine refused it) gets ``status="error"``
        and the engine's exception; the others still complete.
    """
    calls = list(dict.fromkeys(cache.resolve_call(store, fp) for fp in fingerprints))
    results: dict[str, CallResult] = {}
    misses = []
    for call_fp in calls:
        found = None if force else cache.hit(store, call_fp)
        if found is None:
            misses.append(call_fp)
        else:
            results[call_fp] = to_call_result(store, found[0], found[1], cached=True)
    total = len(calls)
    if progress is not None:
        progress(len(results), total)
    if not misses:
        return results
    own = executor is None
    pool = default_executor() if executor is None else executor
    try:
        futures: dict[Future[str], str] = {
            _submit(pool, store.root, call_fp, force, timeout): call_fp for call_fp in misses
        }
        for future in as_completed(futures):
            call_fp = futures[future]
            results[call_fp] = _collect(store, call_fp, future)
            if progress is not None:
                progress(len(results), total)
    finally:
        if own:
            pool.shutdown()
    return {call_fp: results[call_fp] for call_fp in calls}


def _submit(
    pool: Executor, root: str, call_fp: str, force: bool, timeout: float | None
) -> Future[str]:
    """Submit one call; an engine that refuses it gives a failed future, not an exception."""
    try:
        return pool.submit(exec_on_worker, root, call_fp, force, timeout)
    except Exception as exc:
        refused: Future[str] = Future()
        refused.set_exception(exc)
        return refused


def _collect(store: FileStore, call_fp: str, future: Future[str]) -> CallResult:
    try:
        result_fp = future.result()
    except Exception as exc:
        return CallResult(exception=repr(exc), status="error", call=call_fp)
    return to_call_result(store, result_fp, cache.load_result(store, result_fp))


def dask_executor(address: str) -> Any:
    """A context manager yielding an executor on the Dask scheduler at *address*.

    Raises:
        LaunchError: the scheduler cannot be reached.
    """
    import contextlib

    try:
        from distributed import Client
    except ImportError as exc:
        raise LaunchError(
            "--dask needs the 'distributed' package (pip install 'scalems-store[dask]')"
        ) from exc

    @contextlib.contextmanager
    def connected() -> Any:
        try:
            client = Client(address)  # connect timeout: Dask's distributed.comm.timeouts.connect
        except (OSError, TimeoutError) as exc:
            raise LaunchError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from exc
        try:
            yield client.get_executor()
        finally:
            client.close()

    return connected()


def load_parsl_config(path: str) -> Any:
    """Return the ``config`` (a ``parsl.config.Config``) defined by the Python file at *path*.

    Raises:
        LaunchError: Parsl is not installed, or the file does not define ``config``.
    """
    import runpy

    try:
        from parsl.config import Config
    except ImportError as exc:
        raise LaunchError(
            "--parsl-config needs Parsl (pip install 'scalems-store[parsl]')"
        ) from exc
    try:
        namespace = runpy.run_path(path)
    except Exception as exc:
        raise LaunchError(f"cannot load Parsl config {path!r}: {exc!r}") from exc
    config = namespace.get("config")
    if not isinstance(config, Config):
        raise LaunchError(f"{path!r} does not define 'config' as a parsl.config.Config")
    return config


def parsl_command(
    store: FileStore, call_fp: str, *, force: bool = False, timeout: float | None = None
) -> str:
    """The shell command a Parsl ``bash_app`` runs for one call: ``scalems-call exec``."""
    import shlex
    import sys

    argv = [sys.executable, "-m", "scalems_call.commands", "--store", store.root, "exec", call_fp]
    if force:
        argv.append("--force")
    if timeout is not None:
        argv += ["--timeout", str(timeout)]
    return shlex.join(argv)


def run_many_parsl(
    fingerprints: Iterable[str],
    *,
    store: FileStore,
    config: Any = None,
    force: bool = False,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> dict[str, CallResult]:
    """Like :func:`run_many`, on Parsl: each miss runs ``scalems-call exec`` as a ``bash_app``.

    Args:
        config: A ``parsl.config.Config`` to load (and clean up afterwards); when
            None, Parsl must already be loaded by the caller.

    Calls with ``requirements={"ranks": N}`` ask Parsl for N ranks through
    ``parsl_resource_specification``; under an executor in MPI mode, ``exec``
    then launches with Parsl's ``$PARSL_MPI_PREFIX``. Parsl's own memoization
    is off: the store is the cache.
    """
    import parsl

    if config is not None:
        parsl.load(config)
    try:
        return run_many(
            fingerprints,
            store=store,
            executor=_ParslExecutor(store, force, timeout),
            force=force,
            timeout=timeout,
            progress=progress,
        )
    finally:
        if config is not None:
            parsl.dfk().cleanup()


def parsl_resources(requirements: dict[str, Any]) -> dict[str, int]:
    """Parsl's ``parsl_resource_specification`` for a call: ``ranks`` (and ``nodes``,
    default 1, the ranks spread evenly over them); empty for a call without ranks.

    Raises:
        LaunchError: ``nodes`` is not a positive integer that divides ``ranks``.
    """
    ranks = requirements.get("ranks")
    if not ranks:
        return {}
    nodes = requirements.get("nodes", 1)
    if not isinstance(nodes, int) or nodes < 1 or not isinstance(ranks, int) or ranks % nodes:
        raise LaunchError(
            f"requirements ranks={ranks!r}, nodes={nodes!r}: nodes must be a positive "
            "integer that divides ranks"
        )
    return {"num_ranks": ranks, "num_nodes": nodes, "ranks_per_node": ranks // nodes}


class _ParslExecutor(Executor):
    """The subset of ``Executor`` that :func:`run_many` uses, submitting Parsl bash apps."""

    def __init__(self, store: FileStore, force: bool, timeout: float | None) -> None:
        from parsl import bash_app

        self._store = store
        self._force = force
        self._timeout = timeout

        @bash_app(cache=False)
        def scalems_exec(
            command: str, parsl_resource_specification: dict[str, Any] | None = None
        ) -> str:
            return command

        self._app = scalems_exec

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        call_fp = args[1]
        command = parsl_command(self._store, call_fp, force=self._force, timeout=self._timeout)
        spec = parsl_resources(cache.load_call(self._store, call_fp).get("requirements") or {})
        before = cache.results(self._store, call_fp)[:1]
        app_future = (
            self._app(command, parsl_resource_specification=spec) if spec else self._app(command)
        )
        result: Future[str] = Future()

        def done(finished: Future[Any]) -> None:
            recorded = cache.results(self._store, call_fp)[:1]
            failure = finished.exception()
            # exit 0: a result (new, or one another runner recorded); exit 1: the call failed,
            # which is recorded all the same; anything else left no new result
            if recorded and (failure is None or recorded != before):
                result.set_result(recorded[0])
            else:
                result.set_exception(failure or RuntimeError("no result was recorded"))

        app_future.add_done_callback(done)
        return result
