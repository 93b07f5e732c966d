"""``scalems-call exec``: run calls, and the graph below each, on an engine."""

from __future__ import annotations

import json
import sys
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any

import click

from scalems_call.engines import progress
from scalems_store.cli.shared import open_store, parse_duration

if TYPE_CHECKING:
    from scalems_call.engines.schedule import Engine, Outcome, Ran, Submit
    from scalems_call.execution.remote import Where
    from scalems_store import FileStore


def duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A ``--timeout`` in seconds, from ``90``, ``90s``, ``30m``, ``2h``..."""
    if value is None:
        return None
    seconds = parse_duration(value)
    if seconds <= 0:
        raise click.BadParameter("a timeout must be longer than 0 seconds")
    return seconds


timeout_option = click.option(
    "--timeout",
    callback=duration,
    metavar="DURATION",
    help="Stop a call after this long (90, 90s, 30m, 2h).",
)


@click.command(name="exec")
@click.argument("fingerprints", nargs=-1, required=True, metavar="FP...")
@click.option("--force", is_flag=True, help="Run the calls named even if their result is cached.")
@timeout_option
@click.option(
    "--keep-workdir", is_flag=True, help="Keep work directories and print their paths on stderr."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON record per call.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    help="Run up to N calls at once on this machine (default: $SCALEMS_CALL_JOBS, else "
    "'jobs' in the store's config [core] section, else 1).",
)
@click.option(
    "--dask", "dask_address", metavar="SCHEDULER_ADDRESS", help="Run the calls on a Dask cluster."
)
@click.option(
    "--parsl-config",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE.py",
    help="Run the calls on Parsl with the 'config' defined in FILE.py.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Times a call whose worker, block or node was lost is run again.",
)
@click.option(
    "--remote",
    "remote_name",
    metavar="NAME",
    help="Use remote NAME as the cache: a result it records is a hit (its outputs stay "
    "there, printed first); a call it lacks is pulled, run here and pushed back with its result.",
)
@click.option(
    "--strict-versions",
    is_flag=True,
    help="Refuse to run a call whose recorded distribution versions differ from those here.",
)
@click.option("--stop-file", hidden=True, help="The stop file of the run this exec is part of.")
@click.option(
    "--trust-unsigned",
    is_flag=True,
    help="Serve and use results no trusted key signed (unsigned or foreign), as before "
    "signing existed.",
)
@click.pass_context
def exec_command(
    ctx: click.Context,
    fingerprints: tuple[str, ...],
    force: bool,
    timeout: float | None,
    keep_workdir: bool,
    as_json: bool,
    jobs: int | None,
    dask_address: str | None,
    parsl_config: str | None,
    retries: int,
    remote_name: str | None,
    strict_versions: bool,
    stop_file: str | None,
    trust_unsigned: bool,
) -> None:
    """Run calls (fingerprint, prefix or label) and everything they take from; print each
    call's result fingerprint, one line per FP given.

    A call whose latest run succeeded, whose inputs are what they were, with
    every object present, is not run again (unless --force). Calls it takes
    from run first, independent ones at once (one after the other here; --jobs
    N on this machine, or on Dask or Parsl; the store must be reachable at the
    same path from every worker). A failed call makes those that take from it
    upstream-failed; the others go on. Exit status 0 when every call succeeded,
    1 otherwise.

    A call runs the code recorded when it was packed. Where an installed
    distribution's version differs from the one recorded, the result's
    provenance says so; with --strict-versions the call is not run.

    Ctrl-C (or SIGTERM) stops the calls running, under every engine, starts no
    other, and says how many were stopped and not started (exit 130, or 143).

    Only results a key the store trusts signed are served or taken as inputs
    (see 'scalems-store trust'); --trust-unsigned serves any result, signed or not
    (for this command and the runs it starts on this machine).
    """
    import os

    from scalems_call.engines import schedule
    from scalems_call.execution import cache
    from scalems_store.trust.policy import UNSIGNED_ENV

    if trust_unsigned:
        os.environ[UNSIGNED_ENV] = "1"  # for this process and the runners it starts

    if sum((jobs is not None, dask_address is not None, parsl_config is not None)) > 1:
        raise click.UsageError("choose one of --jobs, --dask and --parsl-config")
    if strict_versions:  # read by every runner of this process and the pools it starts
        import os

        from scalems_call.execution.code import STRICT_ENV

        os.environ[STRICT_ENV] = "1"
    store = open_store(ctx, create=remote_name is not None)
    if jobs is None and dask_address is None and parsl_config is None:
        jobs = schedule.default_jobs(store)
    # with workers (a pool, Dask, Parsl) and a remote, each worker runs its calls from a
    # store of its own and the remote, never from this store
    on_workers = remote_name is not None and (jobs is None or jobs > 1)
    session = None
    if remote_name is not None:
        from scalems_call.cmdline import remote_exec

        session = remote_exec.serve_hits(store, remote_name, fingerprints, force, on_workers)
        ctx.call_on_close(session.peer.close)
        fingerprints = session.misses
        if not fingerprints:
            sys.exit(0)
    named = [cache.resolve_call(store, fp) for fp in fingerprints]
    if stop_file is not None:  # one call of a run on Parsl, as a bash app
        _exec_one_of_a_run(store, named, force, timeout, stop_file)
        return
    where = session.where if session is not None and on_workers else None
    stop = schedule.stop_file(store) if session is None else remote_exec.stop_file(session)
    engine, submit = _engine(
        store, jobs, dask_address, parsl_config, timeout, keep_workdir, retries, stop, where
    )
    with progress.live(sys.stderr) as report:
        outcomes = schedule.run_graph(
            store,
            list(dict.fromkeys(named)),
            engine=engine,
            submit=submit,
            force=force,
            retries=retries,
            report=report,
            log=lambda line: click.echo(line, err=True),
            stop=stop,
            served=None if session is None else session.served,
            leases=where is None,
        )
    failed = False
    for call_fp in named:
        failed = _print(outcomes[call_fp], as_json) or failed
    _tell_what_was_left_out(outcomes)
    if session is not None and where is None:
        remote_exec.push_back(store, session.peer, named)
    sys.exit(1 if failed else 0)


def _exec_one_of_a_run(
    store: FileStore, named: list[str], force: bool, timeout: float | None, stop: str
) -> None:
    """``exec --stop-file``: run each call here, as one call of a run whose coordinator
    is elsewhere (a Parsl bash app), stopped when the run's stop file appears."""
    from scalems_call.execution.execute import execute

    failed = False
    for call_fp in named:
        done = execute(store, call_fp, force=force, timeout=timeout, stop=stop)
        click.echo(done.result)
        failed = failed or not done.ok
    sys.exit(1 if failed else 0)


def _print(outcome: Outcome, as_json: bool) -> bool:
    """Print one line for a call named; return True if it did not succeed."""
    ok = outcome.state in ("success", "cached")
    status = "success" if ok else outcome.state
    if as_json:
        line = {"call": outcome.call, "result": outcome.result, "status": status}
        click.echo(json.dumps({**line, "cached": outcome.state == "cached"}))
    else:
        click.echo(outcome.result or "-")
    if not ok:
        click.echo(f"call {outcome.call[:12]} {status}: {outcome.problem}", err=True)
    return not ok


def _tell_what_was_left_out(outcomes: dict[str, Outcome]) -> None:
    """Name what runs left out of their output directories (absolute symlinks, fifos...)."""
    for outcome in outcomes.values():
        skipped = ((outcome.record or {}).get("provenance") or {}).get("skipped") or []
        if skipped and outcome.state != "cached":
            left = "; ".join(skipped)
            click.echo(f"call {outcome.call[:12]}: not in its output directory: {left}", err=True)


def _engine(
    store: FileStore,
    jobs: int | None,
    dask_address: str | None,
    parsl_config: str | None,
    timeout: float | None,
    keep_workdir: bool,
    retries: int,
    stop: str,
    where: Where | None = None,
) -> tuple[Engine, Submit]:
    """Where calls run, made only when one must: here, a pool, Dask or Parsl (nothing of
    them is imported before). With *where*, workers run calls against that remote, from
    stores of their own."""
    from scalems_call.engines.schedule import InlineExecutor, here

    if parsl_config is not None:
        path = parsl_config

        def parsl_loaded() -> Any:
            from scalems_call.engines import executors

            config = executors.load_parsl_config(path)
            note = (lambda line: click.echo(line, err=True)) if retries else None
            return executors.parsl_engine(store, config, note)()

        return parsl_loaded, _submit("parsl", store, timeout, stop, where)
    if dask_address is not None:
        address = dask_address
        return lambda: _executors().dask_executor(address), _submit(
            "pool", store, timeout, stop, where
        )
    if jobs is not None and jobs > 1:
        return lambda: _executors().default_executor(jobs), _submit(
            "pool", store, timeout, stop, where
        )
    return InlineExecutor, here(store, timeout, keep_workdir)


def _executors() -> Any:
    from scalems_call.engines import executors

    return executors


def _submit(
    how: str, store: FileStore, timeout: float | None, stop: str, where: Where | None
) -> Submit:
    """The engine's way of submitting one call (made when the first call is submitted)."""

    def submit(executor: Executor, call_fp: str, force: bool) -> Future[Ran]:
        executors = _executors()
        if where is not None:
            made: Submit = executors.remote_submit(how, store, where, timeout, stop)
        elif how == "parsl":
            made = executors.parsl_submit(timeout, stop)
        else:
            made = executors.pool_submit(store, timeout, stop)
        return made(executor, call_fp, force)

    return submit
