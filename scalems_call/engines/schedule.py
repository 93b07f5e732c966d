"""Run the graph below some calls on an engine: upstream first, independent calls at once.

The coordinator plans from the store (:mod:`scalems_call.engines.graph`), serves what is
cached, and submits each call whose upstream calls are all done as one
``exec`` of its own to the engine (a process pool, Dask, Parsl, or this
process). A call that fails makes every call that takes from it
``upstream-failed`` (naming it); independent branches go on. A call whose
worker, block or node was lost (not one that raised) is submitted again, up to
*retries* times. Nothing is started when nothing needs to run: the engine is
made on the first submission.

Ctrl-C, or SIGTERM to the coordinator, stops the run under every engine: the
coordinator submits nothing more, cancels what the engine has not started, and
makes the run's stop file (``tmp/stop-*`` in the store, named in every
submission), which each runner looks for while its call runs (and before it
starts one): the calls running are stopped as a timeout stops them, and record
nothing. Each call then counts as ``stopped`` or ``not-started``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from scalems_call.engines import graph
from scalems_call.execution import cache
from scalems_call.identity.errors import Stopped
from scalems_store import FileStore

Ran = tuple[str, bool]
"""What one call's exec gives: its result fingerprint, and whether it was served (another
runner had just made it) rather than run."""
Submit = Callable[[Executor, str, bool], "Future[Ran]"]
"""``submit(executor, call, force)``: one call's exec on the engine."""
Engine = Callable[[], AbstractContextManager[Executor]]
"""Makes (and at the end shuts down) the executor, when a first call must run."""

STOPPED, NOT_STARTED = "stopped", "not-started"
"""How calls of a run stopped by Ctrl-C or SIGTERM end: stopped while they ran, or never
started."""
RECOUNT = 1.0
"""Seconds between two looks at which submitted calls have started, for a live display."""
STOP_WAIT = 15.0
"""Seconds a stopped run waits for its calls to stop (each runner gives its call
:data:`scalems_call.execution.launch.KILL_GRACE` seconds after SIGTERM)."""

LOST_WORKER = frozenset(
    {"BrokenProcessPool", "BrokenExecutor", "KilledWorker", "ManagerLost", "WorkerLost"}
)
"""Exceptions that mean the worker, block or node went away, not that the call failed."""


@dataclass
class Outcome:
    """How one call of the graph ended in this run."""

    call: str
    state: str
    """``success``, ``cached``, ``failed``... (a result's status), or ``upstream-failed``."""
    result: str | None = None
    record: dict[str, Any] | None = None
    problem: str = ""
    """For a call that did not succeed: the last line of what went wrong."""
    because: str | None = None
    """For an upstream-failed call: the call below that failed."""
    error: BaseException | None = None
    """What kept the call from running at all (the engine's error), if that is known."""


@dataclass
class Counts:
    """Progress of a graph run, as a live display shows it."""

    total: int
    done: int = 0
    cached: int = 0
    failed: int = 0
    running: int = 0
    queued: int = 0
    """Calls submitted to the engine that have not started yet."""
    stopped: int = 0
    """Calls stopped while they ran (Ctrl-C, SIGTERM)."""
    not_started: int = 0
    """Calls a stopped run never started."""
    started: float = field(default_factory=time.monotonic)
    ran: list[float] = field(default_factory=list)
    """Wall seconds of each call run so far (for the time left)."""

    def eta(self) -> float | None:
        """Seconds left, guessed from the calls run so far."""
        left = self.total - self.done
        if not self.ran or not left:
            return None
        per_call = (time.monotonic() - self.started) / max(len(self.ran), 1)
        return left * per_call


class InlineExecutor(Executor):
    """Runs what is submitted at once, in this process (the engine of a plain ``exec``).
    Made when a call must run: it starts this process's fork server at once."""

    def __init__(self) -> None:
        from scalems_call.execution import forkserver

        forkserver.prestart()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


def here(store: FileStore, timeout: float | None = None, keep_workdir: bool = False) -> Submit:
    """Submit one call's exec to an :class:`InlineExecutor`: it runs in this process."""

    def submit(executor: Executor, call_fp: str, force: bool) -> Future[Ran]:
        return executor.submit(exec_here, store, call_fp, force, timeout, keep_workdir)

    return submit


def exec_here(
    store: FileStore, call_fp: str, force: bool, timeout: float | None, keep_workdir: bool
) -> Ran:
    """Run one call in this process's store (see :data:`Ran`)."""
    from scalems_call.execution.execute import execute

    done = execute(store, call_fp, force=force, timeout=timeout, keep_workdir=keep_workdir)
    if done.workdir:
        import sys

        print(f"work directory kept: {done.workdir}", file=sys.stderr)
    return done.result, done.cached


JOBS_VARIABLE = "SCALEMS_CALL_JOBS"


def default_jobs(store: FileStore) -> int:
    """How many calls ``exec`` and :func:`run` run at once on this machine when not told:
    ``$SCALEMS_CALL_JOBS``, else ``jobs`` in the ``[core]`` section of the store's
    settings file (``<store>/config``), else 1. ``auto`` is every usable core.

    Raises:
        BadSetting: the value is neither a whole number above 0 nor ``auto``.
    """
    from scalems_store.core.errors import BadSetting
    from scalems_store.store.config import Config

    text = os.environ.get(JOBS_VARIABLE)
    where = f"${JOBS_VARIABLE}"
    if text is None:
        text, where = Config(store.root).get("core", "jobs"), f"jobs in {store.root}/config"
    if text is None:
        return 1
    if text.strip().lower() == "auto":
        from scalems_store.core.fingerprint import usable_cores

        return usable_cores()
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise BadSetting(f"{where} = {text!r}: give the calls to run at once (1, 2, ...) or auto")
    return jobs


def lost_worker(exc: BaseException) -> bool:
    """Whether *exc* means the call's worker was lost (so running it again may succeed)."""
    if type(exc).__name__ in LOST_WORKER:
        return True
    if type(exc).__name__ == "BashExitFailure":  # Parsl: an MPI call's exec died of a signal
        code = getattr(exc, "exitcode", 0) or 0
        return code < 0 or code > 128
    from concurrent.futures import BrokenExecutor

    return isinstance(exc, BrokenExecutor)


def run_graph(
    store: FileStore,
    roots: list[str],
    *,
    engine: Engine,
    submit: Submit,
    force: bool = False,
    retries: int = 2,
    report: Callable[[Counts], None] | None = None,
    log: Callable[[str], None] | None = None,
    stop: str | None = None,
    served: Mapping[str, tuple[str, dict[str, Any]]] | None = None,
    leases: bool = True,
) -> dict[str, Outcome]:
    """Run what is missing of the graph below *roots*; return an outcome for every call.

    Args:
        roots: Full call fingerprints.
        engine: Makes the executor on first need (an owned pool is made again after
            it broke).
        submit: Submits one call's exec.
        force: Run the roots even when cached (what they take from is run only if missing).
        retries: Times a call whose worker was lost is submitted again.
        report: Called with the progress after every change.
        log: Called with a line for each retry.
        stop: The run's stop file, which *submit* names to every runner (see
            :func:`stop_file`): made when the run is stopped, removed at its end.
        served: Hits found elsewhere (on a remote), ``{call: (result, record)}``: served
            as cached ones are.
        leases: The runners take their leases in *store* (False: they run calls from
            stores of their own, so every call submitted counts as running).

    Raises:
        KeyboardInterrupt, SystemExit: the run was stopped (Ctrl-C, SIGTERM): *report*
            has had the last counts, stopped and not started calls included.
    """
    plan = graph.plan(store, roots)
    runner = _Coordinator(store, plan, engine, submit, set(roots) if force else set())
    runner.retries, runner.report, runner.log, runner.stop = retries, report, log, stop
    runner.served, runner.leases = dict(served or {}), leases
    return runner.run()


def stop_file(store: FileStore) -> str:
    """A new run's stop file: a name in the store's ``tmp/`` (made only if it is stopped)."""
    return os.path.join(store.tmp, f"stop-{os.getpid()}-{os.urandom(6).hex()}")


class _Coordinator:
    def __init__(
        self, store: FileStore, plan: graph.Plan, engine: Engine, submit: Submit, forced: set[str]
    ) -> None:
        self.store, self.plan, self.engine, self.submit, self.forced = (
            store,
            plan,
            engine,
            submit,
            forced,
        )
        self.retries = 2
        self.report: Callable[[Counts], None] | None = None
        self.log: Callable[[str], None] | None = None
        self.outcomes: dict[str, Outcome] = {}
        self.waiting = {fp: len(node.upstream) for fp, node in plan.nodes.items()}
        self.calls = {fp: node.record for fp, node in plan.nodes.items()}
        self.known: dict[str, bool] = {}
        self.counts = Counts(len(plan.nodes))
        self.running: dict[Future[Ran], tuple[str, int, float]] = {}
        self.stop: str | None = None
        self.served: dict[str, tuple[str, dict[str, Any]]] = {}
        self.leases = True
        self.ready: collections.deque[str] = collections.deque()
        """Calls whose upstream calls are done, not yet served or submitted."""
        self.submitting: str | None = None
        """The call being submitted (being run, by the inline engine)."""
        self._stack = contextlib.ExitStack()
        self._executor: Executor | None = None
        self._submitted_to: dict[Future[Ran], Executor] = {}
        self._listed: tuple[float, set[str]] = (-RECOUNT, set())
        self._told = False
        """The engine has said of a future that it is running (so it says so)."""

    def run(self) -> dict[str, Outcome]:
        try:
            try:
                ready = self.ready
                ready.extend(fp for fp in self.plan.order if self.waiting[fp] == 0)
                while ready or self.running:
                    while ready:
                        ready.extend(self._start(ready.popleft()))
                    if self.running:
                        ready.extend(self._collect())
            except (KeyboardInterrupt, SystemExit):  # Ctrl-C; SIGTERM (see catch_sigterm)
                self._halt()
                raise
            finally:
                self._stack.close()  # the engine (as made again after it broke)
        finally:
            if self.stop is not None:  # once the engine is shut down: nothing reads it now
                with contextlib.suppress(OSError):
                    os.unlink(self.stop)
        return self.outcomes

    def _start(self, fp: str) -> list[str]:
        """Serve *fp* from the cache (returning what that makes ready) or submit it."""
        found = None
        if fp not in self.forced:
            found = self.served.get(fp) or cache.hit(self.store, fp, self.known, self.calls)
        if found is not None:
            return self._done(fp, Outcome(fp, graph.CACHED, found[0], found[1]), cached=True)
        self._submit(fp, 0)
        return []

    def _submit(self, fp: str, attempt: int) -> None:
        executor = self._engine()  # an engine that cannot be made ends the run: its error
        self.submitting = fp
        if isinstance(executor, InlineExecutor):  # it runs now, here: say so first
            self.counts.running, self.counts.queued = 1, len(self.ready)
            self._report()
        try:
            future = self.submit(executor, fp, fp in self.forced)
        except Exception as exc:  # the engine refused this call
            future = Future()
            future.set_exception(exc)
        self.submitting = None
        self.running[future] = (fp, attempt, time.monotonic())
        self._submitted_to[future] = executor
        self._recount()

    def _engine(self) -> Executor:
        if self._executor is None:
            self._executor = self._stack.enter_context(self.engine())
        return self._executor

    def _collect(self) -> list[str]:
        # with a display, look again every RECOUNT seconds at which calls have started
        pulse = None if self.report is None else RECOUNT
        finished, _ = wait(list(self.running), timeout=pulse, return_when=FIRST_COMPLETED)
        ready: list[str] = []
        for future in finished:
            fp, attempt, started = self.running.pop(future)
            executor = self._submitted_to.pop(future, None)
            exc = future.exception()
            if exc is not None and lost_worker(exc) and attempt < self.retries:
                self._retry(fp, attempt, exc, executor)
                continue
            self.counts.ran.append(time.monotonic() - started)
            ready.extend(self._done(fp, self._outcome(fp, future)))
        self._recount()
        return ready

    def _recount(self) -> None:
        """Count the calls submitted as running (their runner holds their lease: true for
        every engine) or queued (the engine has not started them), and report."""
        if self.report is None:
            self.counts.running = len(self.running)  # nobody looks: no need to tell them apart
            return
        # the one run here (inline) has ended: submitting it ran it
        inline = isinstance(self._executor, InlineExecutor)
        running = 0 if inline else len(self._leased(fresh=False))
        self.counts.running = running
        self.counts.queued = len(self.running) - running + len(self.ready)
        self._report()

    def _retry(self, fp: str, attempt: int, exc: BaseException, executor: Executor | None) -> None:
        if self.log is not None:
            self.log(
                f"call {fp[:12]}: worker lost ({type(exc).__name__}: {exc}); "
                f"retry {attempt + 1} of {self.retries}"
            )
        broke = type(exc).__name__ == "BrokenProcessPool"
        if broke and self._executor is not None and executor is self._executor:
            # an owned pool that broke: make a new one, once (the other calls it held
            # fail with it, and go to the new pool)
            self._stack.close()
            self._stack, self._executor = contextlib.ExitStack(), None
        self._submit(fp, attempt + 1)

    def _outcome(self, fp: str, future: Future[Ran]) -> Outcome:
        exc = future.exception()
        if exc is not None:
            return Outcome(fp, "error", problem=f"{type(exc).__name__}: {exc}", error=exc)
        result_fp, served = future.result()
        record = cache.load_result(self.store, result_fp)
        status = str(record.get("status"))
        if status != "success":
            return Outcome(fp, status, result_fp, record, _problem(record))
        # served: another runner had it, and the worker waited and served its result
        return Outcome(fp, graph.CACHED if served else status, result_fp, record)

    def _done(self, fp: str, outcome: Outcome, cached: bool = False) -> list[str]:
        """Record how *fp* ended; return the calls that became ready."""
        ready: list[str] = []
        self.outcomes[fp] = outcome
        ok = outcome.state in ("success", graph.CACHED)
        self.known[fp] = ok
        self.counts.done += 1
        self.counts.cached += cached
        self.counts.failed += not ok
        self._report()
        for down in self.plan.nodes[fp].downstream:
            if not ok:
                self._fail_below(down, outcome)
                continue
            self.waiting[down] -= 1
            if self.waiting[down] == 0 and down not in self.outcomes:
                ready.append(down)
        return ready

    def _fail_below(self, fp: str, failed: Outcome) -> None:
        """Mark *fp* and everything that takes from it upstream-failed, naming the call
        that failed and how."""
        if failed.because is not None:  # it failed because of a call further below
            because, problem = failed.because, failed.problem
        else:
            because = failed.call
            problem = f"upstream call {because[:12]} failed" + (
                f": {failed.problem}" if failed.problem else ""
            )
        pending = [fp]
        while pending:
            call = pending.pop()
            if call in self.outcomes:
                continue
            self.outcomes[call] = Outcome(
                call, graph.UPSTREAM_FAILED, problem=problem, because=because
            )
            self.known[call] = False
            self.counts.done += 1
            self.counts.failed += 1
            pending.extend(self.plan.nodes[call].downstream)
        self._report()

    def _report(self) -> None:
        if self.report is not None:
            self.report(self.counts)

    def _halt(self) -> None:
        """The run is stopped: make its stop file, cancel what the engine has not started,
        wait (a while) for the calls running to stop, and count how each call ended."""
        if self.stop is not None:
            with contextlib.suppress(OSError):
                os.close(os.open(self.stop, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        started = self._leased()
        for future, (fp, _, _) in self.running.items():
            # one started is waited for: it stops, and cleans up (without leases to tell,
            # every one is asked to cancel: the engine cancels only what has not started)
            if fp not in started or not self.leases:
                with contextlib.suppress(Exception):  # a Parsl future cannot be cancelled
                    future.cancel()
        going = [future for future in self.running if not future.done()]
        if going:
            wait(going, timeout=STOP_WAIT)
        if not self.leases:  # those the engine could not cancel had started
            started = self._leased()
        for future, (fp, _, _) in list(self.running.items()):
            ended = _how_stopped(future, fp in started)
            if ended is None:  # it ended on its own meanwhile
                self._done(fp, self._outcome(fp, future))
            else:
                self._end(fp, ended)
        self.running.clear()
        if self.submitting is not None and self.submitting not in self.outcomes:
            inline = isinstance(self._executor, InlineExecutor)  # it was running it here
            self._end(self.submitting, STOPPED if inline else NOT_STARTED)
        for fp in self.plan.order:
            if fp not in self.outcomes:
                self._end(fp, NOT_STARTED)
        self.counts.running = self.counts.queued = 0
        self._report()

    def _end(self, fp: str, state: str) -> None:
        """Count *fp* as stopped or never started by a stopped run."""
        said = "stopped while it ran" if state == STOPPED else "not started: the run was stopped"
        self.outcomes[fp] = Outcome(fp, state, problem=said)
        self.known[fp] = False
        if state == STOPPED:
            self.counts.stopped += 1
        else:
            self.counts.not_started += 1

    def _leased(self, fresh: bool = True) -> set[str]:
        """The calls submitted whose runner holds their lease now: they have started.
        Unless *fresh*, the leases are listed at most every :data:`RECOUNT` seconds (a
        run submitting thousands of calls at once lists them once). Where the runners keep
        their leases in stores of their own: those the engine says are running, where it
        says so (a pool does), else every call submitted that it has not cancelled."""
        from scalems_store.store.lease import lease_dir

        if not self.leases:  # the engine's word, where it gives it (a pool does), else all
            told = {fp for future, (fp, _, _) in self.running.items() if future.running()}
            self._told |= bool(told)
            going = {fp for future, (fp, _, _) in self.running.items() if not future.cancelled()}
            return told if self._told else going
        if fresh or time.monotonic() - self._listed[0] >= RECOUNT:
            try:
                self._listed = (time.monotonic(), set(os.listdir(lease_dir(self.store.root))))
            except OSError:
                self._listed = (time.monotonic(), set())
        held = self._listed[1]
        return {fp for fp, _, _ in self.running.values() if fp in held}


def _how_stopped(future: Future[Ran], started: bool) -> str | None:
    """How a call submitted to a stopped run ended: :data:`STOPPED`, :data:`NOT_STARTED`,
    or None when it ended on its own (it finished, or failed, before the stop)."""
    if future.cancelled() or not future.done():
        return STOPPED if started else NOT_STARTED
    exc = future.exception()
    if isinstance(exc, Stopped):
        return STOPPED if exc.started else NOT_STARTED
    if isinstance(exc, KeyboardInterrupt | SystemExit) or (exc is not None and lost_worker(exc)):
        return STOPPED if started else NOT_STARTED  # a worker of the user's own pool got it
    return None


def _problem(record: dict[str, Any]) -> str:
    """The last line of what went wrong in a result, the error named as everywhere else
    (``ImportFailed: ...``, not ``scalems_call.identity.errors.ImportFailed: ...``)."""
    lines = [line for line in (record.get("traceback") or "").splitlines() if line.strip()]
    if lines:
        return _QUALIFIED.sub("", lines[-1])
    return str(record.get("status"))


_QUALIFIED = re.compile(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*(?::|$))")
"""The module path before an exception's name at the start of a traceback's last line."""
