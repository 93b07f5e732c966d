"""Run many calls, and the graphs below them, on an engine: a process pool, Dask, or Parsl.

Engines only decide where and when a call runs; how it runs is always
:func:`scalems_call.execution.execute.execute` (the function behind ``scalems-call exec``),
on a worker that reaches the store through a shared path. The coordinator
(:mod:`scalems_call.engines.schedule`) serves what is cached and submits the rest,
upstream first; the engine is made only when something must run; per-call
leases in the store make duplicate submissions run once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any

from scalems_call.engines.results import to_result
from scalems_call.engines.schedule import Engine, Ran, Submit, run_graph, stop_file
from scalems_call.execution import cache
from scalems_call.identity.compat import CallResult
from scalems_call.identity.errors import LaunchError, Stopped
from scalems_store import FileStore
from scalems_store.core import layout

if TYPE_CHECKING:
    from scalems_call.engines.pool import WorkerPool
    from scalems_call.execution.remote import Where

Progress = Callable[[int, int], None]


def exec_on_worker(
    store_root: str, call_fp: str, force: bool = False, timeout: float | None = None
) -> str:
    """Run one call by fingerprint against the store at *store_root*; return the result fingerprint.

    This is what engines ship to their workers: a module-level function, so
    it pickles by reference, taking only strings.
    """
    return exec_for_coordinator(store_root, call_fp, force, timeout)[0]


def exec_for_coordinator(
    store_root: str,
    call_fp: str,
    force: bool = False,
    timeout: float | None = None,
    stop: str | None = None,
) -> Ran:
    """Like :func:`exec_on_worker`, also telling whether the result was served (another
    runner had made it while this one waited) rather than run here. *stop* is the run's
    stop file (see :mod:`scalems_call.engines.schedule`)."""
    from scalems_call.execution.execute import execute

    done = execute(_worker_store(store_root), call_fp, force=force, timeout=timeout, stop=stop)
    return done.result, done.cached


_worker_stores: dict[tuple[int, str], tuple[tuple[int, int], FileStore]] = {}


def _worker_store(root: str) -> FileStore:
    """The store at *root*, opened once per worker process: opening it (and its index)
    for every call cost a worker about 1 ms a call. Opened again if the directory at
    *root* is another one now (a store removed and made again)."""
    try:  # store.json is written once, as the store is made: it tells one store from the next
        st = os.stat(os.path.join(root, layout.STORE_FILE))
    except OSError:
        return FileStore(root, create=False)  # raises the store's own error
    key, identity = (os.getpid(), root), (st.st_ino, st.st_mtime_ns)
    found = _worker_stores.get(key)
    if found is not None and found[0] == identity:
        return found[1]
    if found is not None:
        found[1].close()
    store = FileStore(root, create=False)
    _worker_stores[key] = (identity, store)
    return store


def default_executor(jobs: int | None = None) -> WorkerPool:
    """A local process pool (``spawn``: safe with the threads a coordinator may run) in
    which a worker that dies costs only the call it ran (see :mod:`.pool`)."""
    from scalems_call.engines.pool import WorkerPool
    from scalems_store.core.fingerprint import usable_cores

    return WorkerPool(jobs or usable_cores())


def run_many(
    fingerprints: Iterable[str],
    *,
    store: FileStore,
    executor: Executor | None = None,
    force: bool = False,
    timeout: float | None = None,
    progress: Progress | None = None,
    retries: int = 2,
) -> dict[str, CallResult]:
    """Run calls, and the graph below each, on *executor*; serve what is cached.

    Args:
        fingerprints: Call fingerprints, prefixes or labels (duplicates run once).
        store: The store; workers must reach it at the same path.
        executor: Any ``concurrent.futures.Executor`` (a ``ProcessPoolExecutor``,
            ``distributed.Client(...).get_executor()``, ...); a local process
            pool when None, made only if something must run.
        force: Run the calls named even if their result is cached.
        timeout: Per-call timeout in seconds.
        progress: Called as ``progress(done, total)`` as calls of the graph finish.
        retries: Times a call whose worker was lost is submitted again.

    Returns:
        A :class:`CallResult` per call named. A call whose submission failed (its
        worker died more than *retries* times, the engine refused it) gets
        ``status="error"`` and the engine's exception; one below which a call
        failed gets ``status="upstream-failed"``; the others still complete.
    """
    engine: Engine = default_executor if executor is None else lambda: _given(executor)
    stop = stop_file(store)
    submit = pool_submit(store, timeout, stop)
    return _run(store, fingerprints, engine, submit, force, progress, retries, stop)


def _run(
    store: FileStore,
    fingerprints: Iterable[str],
    engine: Engine,
    submit: Submit,
    force: bool,
    progress: Progress | None,
    retries: int,
    stop: str | None = None,
) -> dict[str, CallResult]:
    calls = list(dict.fromkeys(cache.resolve_call(store, fp) for fp in fingerprints))
    report = None if progress is None else (lambda counts: progress(counts.done, counts.total))
    outcomes = run_graph(
        store,
        calls,
        engine=engine,
        submit=submit,
        force=force,
        retries=retries,
        report=report,
        stop=stop,
    )
    return {fp: to_result(store, outcomes[fp]) for fp in calls}


@contextlib.contextmanager
def _given(executor: Executor) -> Iterator[Executor]:
    """An executor the caller made (and shuts down)."""
    yield executor


def pool_submit(store: FileStore, timeout: float | None, stop: str | None = None) -> Submit:
    """Submit one call's exec to a ``concurrent.futures`` executor's worker (*stop*: the
    run's stop file)."""

    def submit(executor: Executor, call_fp: str, force: bool) -> Future[Ran]:
        return executor.submit(exec_for_coordinator, store.root, call_fp, force, timeout, stop)

    return submit


def remote_submit(
    how: str, store: FileStore, where: Where, timeout: float | None, stop: str | None
) -> Submit:
    """Submit one call to a worker that runs it against the remote *where* names, from a
    store of its own (:func:`scalems_call.execution.remote.run_against`), never *store*:
    the result record it sends back is kept in *store* (for the outcome), nothing else.
    *how*: ``pool`` (any ``concurrent.futures`` executor, Dask's) or ``parsl``."""
    from scalems_call.execution.remote import run_against

    def submit(executor: Executor, call_fp: str, force: bool) -> Future[Ran]:
        if how == "parsl":
            assert isinstance(executor, _ParslExecutor)
            inner = executor.submit_remote(where, call_fp, force, timeout, stop)
        else:
            inner = executor.submit(run_against, where, call_fp, force, timeout, stop)
        return _Recorded(store, inner)

    return submit


class _Recorded(Future):
    """The future of a call run on a worker with its own store: done when the worker's is,
    with the result record it sent kept in the client's store; cancelled only when the
    worker's future could be (not started yet)."""

    def __init__(self, store: FileStore, inner: Future[Any]) -> None:
        super().__init__()
        self._inner = inner
        inner.add_done_callback(lambda done: self._settle(store, done))

    def cancel(self) -> bool:
        return self._inner.cancel() and super().cancel()

    def running(self) -> bool:
        return not self.done() and self._inner.running()

    def _settle(self, store: FileStore, done: Future[Any]) -> None:
        if done.cancelled():  # (called back from within cancel, or the engine cancelled it)
            Future.cancel(self)
            return
        if self.cancelled():
            return
        try:
            fetched = done.result()
            kept = store.add_bytes(fetched.record, kind="result")
            if kept != fetched.result:
                raise LaunchError(f"the worker sent the record of {kept}, not {fetched.result}")
        except BaseException as exc:  # the worker's error (a lost worker: retried), or ours
            if not self.done():
                self.set_exception(exc)
            return
        self.set_result((fetched.result, fetched.cached))


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
            "--dask needs the 'distributed' package (pip install distributed, or "
            "pip install '.[dask]' in the scalems-store checkout)"
        ) from exc

    @contextlib.contextmanager
    def connected() -> Any:
        try:
            client = Client(address)  # connect timeout: Dask's distributed.comm.timeouts.connect
        except (OSError, TimeoutError, ValueError) as exc:  # ValueError: not an address
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
            "--parsl-config needs Parsl (pip install parsl, or pip install '.[parsl]' in the "
            "scalems-store checkout)"
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
    store: FileStore,
    call_fp: str,
    *,
    force: bool = False,
    timeout: float | None = None,
    stop: str | None = None,
) -> str:
    """The shell command a Parsl ``bash_app`` runs for one call: ``scalems-call exec``."""
    import shlex
    import sys

    argv = [sys.executable, "-m", "scalems_call.cmdline.commands", "--store", store.root]
    argv += ["exec", call_fp]
    if force:
        argv.append("--force")
    if timeout is not None:
        argv += ["--timeout", str(timeout)]
    if stop is not None:
        argv += ["--stop-file", stop]
    return shlex.join(argv)


def run_many_parsl(
    fingerprints: Iterable[str],
    *,
    store: FileStore,
    config: Any = None,
    force: bool = False,
    timeout: float | None = None,
    progress: Progress | None = None,
    retries: int = 2,
) -> dict[str, CallResult]:
    """Like :func:`run_many`, on Parsl: each call to run is a ``python_app`` that runs it
    in the worker, as ``scalems-call exec`` would.

    Args:
        config: A ``parsl.config.Config`` to load (and clean up afterwards) when
            something must run; when None, Parsl must already be loaded by the caller.

    Calls with ``requirements={"ranks": N}`` run ``scalems-call exec`` as a ``bash_app``
    and ask Parsl for N ranks through ``parsl_resource_specification``; under an
    executor in MPI mode, ``exec`` then launches with Parsl's ``$PARSL_MPI_PREFIX``.
    Parsl's own memoization is off: the store is the cache.
    """
    stop = stop_file(store)
    return _run(
        store,
        fingerprints,
        parsl_engine(store, config),
        parsl_submit(timeout, stop),
        force,
        progress,
        retries,
        stop,
    )


def parsl_engine(
    store: FileStore, config: Any, note: Callable[[str], None] | None = None
) -> Engine:
    """Loads Parsl (if *config* is given) when a first call must run; cleans up after.
    *note* is told of a config that does not replace a lost block (see
    :func:`strategy_note`)."""

    @contextlib.contextmanager
    def loaded() -> Iterator[Executor]:
        import parsl

        if config is not None:
            if note is not None and (text := strategy_note(config)) is not None:
                note(text)
            _load_deaf_to_ctrl_c(parsl, config)
        try:
            yield _ParslExecutor(store)
        finally:
            if config is not None:
                parsl.dfk().cleanup()

    return loaded


def strategy_note(config: Any) -> str | None:
    """What to tell a user whose Parsl config never replaces a block: calls retried after
    their block was lost would wait for one that never comes."""
    strategy = getattr(config, "strategy", "simple")
    if strategy not in (None, "none"):
        return None
    return (
        f"note: the Parsl config has strategy={strategy!r}: a lost block is not replaced, "
        "so calls retried after losing theirs wait for a block that never comes; "
        "use strategy='simple' (Parsl's default) or --retries 0"
    )


def _load_deaf_to_ctrl_c(parsl: Any, config: Any) -> None:
    """Load Parsl with SIGINT ignored, so that the processes it starts (its interchange)
    inherit that: Ctrl-C in a terminal reaches the whole process group, and an
    interchange killed by it leaves Parsl's cleanup waiting for ever with the block
    still running. We get the Ctrl-C, and cancel the block on the way out."""
    import signal

    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals are the host program's
        parsl.load(config)
        return
    try:
        parsl.load(config)
    finally:
        signal.signal(signal.SIGINT, previous)


def parsl_submit(timeout: float | None, stop: str | None = None) -> Submit:
    """Submit one call to Parsl (see :class:`_ParslExecutor`; *stop*: the run's stop file)."""

    def submit(executor: Executor, call_fp: str, force: bool) -> Future[Ran]:
        assert isinstance(executor, _ParslExecutor)
        return executor.submit_call(call_fp, force, timeout, stop)

    return submit


def parsl_resources(requirements: dict[str, Any]) -> dict[str, int]:
    """Parsl's ``parsl_resource_specification`` for a call: ``ranks`` (and ``nodes``,
    default 1, the ranks spread evenly over them); empty for a call without ranks.

    Raises:
        LaunchError: see :func:`scalems_call.execution.launch.mpi_shape`.
    """
    from scalems_call.execution.launch import mpi_shape

    shape = mpi_shape(requirements)
    if shape is None:
        return {}
    ranks, nodes = shape
    return {"num_ranks": ranks, "num_nodes": nodes, "ranks_per_node": ranks // nodes}


class _ParslExecutor(Executor):
    """Submits calls to Parsl: as a ``python_app`` running :func:`exec_for_coordinator` in
    the worker (as the pool and Dask engines do: the worker's fork server starts each call,
    with no interpreter to start), or, for a call that asks for ranks, its ``scalems-call
    exec`` as a ``bash_app``, which an executor in MPI mode launches with its prefix."""

    def __init__(self, store: FileStore) -> None:
        from parsl import bash_app, python_app

        self._store = store
        self._in_worker = python_app(cache=False)(exec_for_coordinator)
        self._remote_app: Any = None

        @bash_app(cache=False)
        def scalems_exec(
            command: str, parsl_resource_specification: dict[str, Any] | None = None
        ) -> str:
            return command

        self._app = scalems_exec

    def submit_remote(
        self, where: Where, call_fp: str, force: bool, timeout: float | None, stop: str | None
    ) -> Future[Any]:
        """Run one call in a worker against a remote, from the worker's own store.

        Raises:
            LaunchError: the call asks for ranks (its ``bash_app`` would need a shared store).
        """
        if parsl_resources(cache.load_call(self._store, call_fp).get("requirements") or {}):
            raise LaunchError(
                f"call {call_fp[:12]} asks for MPI ranks: with --remote, calls with ranks "
                "do not run on Parsl yet (run them without --remote, on a shared store)"
            )
        if self._remote_app is None:
            from parsl import python_app

            from scalems_call.execution.remote import run_against

            self._remote_app = python_app(cache=False)(run_against)
        future: Future[Any] = self._remote_app(where, call_fp, force, timeout, stop)
        return future

    def submit_call(
        self, call_fp: str, force: bool, timeout: float | None, stop: str | None = None
    ) -> Future[Ran]:
        """Run one call in a worker (see :data:`Ran`)."""
        spec = parsl_resources(cache.load_call(self._store, call_fp).get("requirements") or {})
        if not spec:
            ran: Future[Ran] = self._in_worker(self._store.root, call_fp, force, timeout, stop)
            return ran
        command = parsl_command(self._store, call_fp, force=force, timeout=timeout, stop=stop)
        before = cache.results(self._store, call_fp)[:1]
        app_future = self._app(command, parsl_resource_specification=spec)
        result: Future[Ran] = Future()

        def done(finished: Future[Any]) -> None:
            from scalems_call.execution.launch import stop_requested

            recorded = cache.results(self._store, call_fp)[:1]
            failure = finished.exception()
            if failure is not None and recorded == before and stop_requested(stop):
                result.set_exception(Stopped("the run was stopped"))
                return
            # exit 0: a result (new, or one another runner recorded); exit 1: the call failed,
            # which is recorded all the same; anything else left no new result
            if recorded and (failure is None or recorded != before):
                result.set_result((recorded[0], False))
            else:
                result.set_exception(failure or RuntimeError("no result was recorded"))

        app_future.add_done_callback(done)
        return result
