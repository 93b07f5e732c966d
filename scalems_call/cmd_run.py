"""``scalems-call`` commands that make and run calls: pack, exec, rerun, command."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from scalems_store.clickshared import echo_json, open_store

if TYPE_CHECKING:
    from scalems_store import FileStore


def _pairs(values: tuple[str, ...], option: str, parse_json: bool) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint=option)
        if parse_json:
            try:
                pairs[name] = json.loads(value)
            except ValueError:
                pairs[name] = value
        else:
            pairs[name] = value
    return pairs


def _json_option(text: str | None, option: str, kind: type) -> Any:
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None
    except RecursionError:
        raise click.BadParameter("nested too deeply", param_hint=option) from None
    if not isinstance(value, kind):
        raise click.BadParameter(
            f"must be a JSON {'array' if kind is list else 'object'}", param_hint=option
        )
    return value


@click.command(name="pack")
@click.argument("target", metavar="MODULE:FUNC")
@click.option("--args-json", metavar="JSON", help="Positional arguments as a JSON array.")
@click.option("--kwargs-json", metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option(
    "--skeleton",
    metavar="DIR|FP",
    help="Initial work directory: a directory or a tree fingerprint.",
)
@click.option(
    "--env", "env", multiple=True, metavar="NAME=VALUE", help="Environment override (repeatable)."
)
@click.option(
    "--require",
    "require",
    multiple=True,
    metavar="NAME=VALUE",
    help="Requirement, e.g. ranks=2 (repeatable).",
)
@click.pass_context
def pack_command(
    ctx: click.Context,
    target: str,
    args_json: str | None,
    kwargs_json: str | None,
    skeleton: str | None,
    env: tuple[str, ...],
    require: tuple[str, ...],
) -> None:
    """Pack a call of MODULE:FUNC into the store and print its fingerprint.

    MODULE is imported as Python would from the current directory; it must
    also be importable where the call runs.
    """
    args = _json_option(args_json, "--args-json", list)
    kwargs = _json_option(kwargs_json, "--kwargs-json", dict)
    environment = _pairs(env, "--env", parse_json=False)
    requirements = _pairs(require, "--require", parse_json=True)
    from .runner import pack
    from .targets import import_target, unreachable_module

    func = import_target(target)
    local = unreachable_module(func, skeleton)
    if local is not None:
        click.echo(
            f"warning: module {local!r} was found in the current directory, which the call's "
            "work directory is not: install it, add it to PYTHONPATH, or ship it with "
            "--skeleton .",
            err=True,
        )
    store = open_store(ctx, create=True)
    click.echo(
        pack(
            func,
            args,
            kwargs,
            store=store,
            skeleton=skeleton,
            environment=environment,
            requirements=requirements,
        )
    )


@click.command(name="exec")
@click.argument("fingerprints", nargs=-1, required=True, metavar="FP...")
@click.option("--force", is_flag=True, help="Run even if a result is cached.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop a call after this long.",
)
@click.option(
    "--keep-workdir", is_flag=True, help="Keep work directories and print their paths on stderr."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON record per call.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    help="Run up to N calls at once on this machine.",
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
@click.pass_context
def exec_command(
    ctx: click.Context,
    fingerprints: tuple[str, ...],
    force: bool,
    timeout: float | None,
    keep_workdir: bool,
    as_json: bool,
    jobs: int,
    dask_address: str | None,
    parsl_config: str | None,
) -> None:
    """Run calls by fingerprint (prefixes accepted); print each result fingerprint.

    A call whose latest run succeeded, with every object present, is not run
    again (unless --force). Several calls run one after the other, or in
    parallel with --jobs, or on Dask (--dask) or Parsl (--parsl-config); the
    store must be reachable at the same path from every worker. Exit status 0
    when every call succeeded, 1 when any raised, timed out or could not be loaded.
    """
    from . import cache

    if sum((jobs > 1, dask_address is not None, parsl_config is not None)) > 1:
        raise click.UsageError("choose one of --jobs, --dask and --parsl-config")
    store = open_store(ctx)
    calls = list(dict.fromkeys(cache.resolve_call(store, fp) for fp in fingerprints))
    if jobs > 1 or dask_address or parsl_config:
        outcomes = _run_on_engine(store, calls, force, timeout, jobs, dask_address, parsl_config)
    else:
        outcomes = [_run_here(store, call_fp, force, timeout, keep_workdir) for call_fp in calls]
    failed = False
    for call_fp, (result_fp, status, cached, problem) in zip(calls, outcomes, strict=True):
        failed = failed or status != "success"
        if as_json:
            click.echo(
                json.dumps(
                    {"call": call_fp, "result": result_fp, "status": status, "cached": cached}
                )
            )
        else:
            click.echo(result_fp or "-")
        if status != "success":
            click.echo(f"call {call_fp[:12]} {status}: {problem}", err=True)
    sys.exit(1 if failed else 0)


Outcome = tuple[str | None, str | None, bool, str]
"""``(result fingerprint, status, cached, last line of the problem)`` of one call."""


def _run_here(
    store: FileStore, call_fp: str, force: bool, timeout: float | None, keep_workdir: bool
) -> Outcome:
    from . import cache

    hit = None if force else cache.hit(store, call_fp)
    if hit is not None:
        return hit[0], "success", True, ""
    from .execute import execute

    done = execute(store, call_fp, force=force, timeout=timeout, keep_workdir=keep_workdir)
    if done.workdir:
        click.echo(f"work directory kept: {done.workdir}", err=True)
    return done.result, done.record.get("status"), done.cached, _exception_line(done.record)


def _run_on_engine(
    store: FileStore,
    calls: list[str],
    force: bool,
    timeout: float | None,
    jobs: int,
    dask_address: str | None,
    parsl_config: str | None,
) -> list[Outcome]:
    from scalems_store.clickshared import progress_bar

    from . import executors

    with progress_bar("calls", len(calls)) as advance:
        progress = None if advance is None else (lambda done, total: advance(done))
        if parsl_config:
            config = executors.load_parsl_config(parsl_config)
            results = executors.run_many_parsl(
                calls, store=store, config=config, force=force, timeout=timeout, progress=progress
            )
        else:
            engine = (
                executors.dask_executor(dask_address)
                if dask_address
                else executors.default_executor(jobs)
            )
            with engine as executor:
                results = executors.run_many(
                    calls,
                    store=store,
                    executor=executor,
                    force=force,
                    timeout=timeout,
                    progress=progress,
                )
    outcomes = []
    for call_fp in calls:
        result = results[call_fp]
        problem = _last_line(result.traceback) or str(result.exception or "")
        outcomes.append((result.fingerprint, result.status, result.cached, problem))
    return outcomes


def _last_line(text: str | None) -> str:
    """The last non-blank line of a traceback (the exception), or ''."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _exception_line(record: dict[str, Any]) -> str:
    if record.get("status") == "success":
        return ""
    last = _last_line(record.get("traceback"))
    if last:
        return last
    if not record.get("exception"):
        return "(no exception recorded)"
    from .serialize import from_hex  # imports dill: only for a failure without a traceback

    return str(from_hex(record["exception"]))


@click.command(name="rerun")
@click.argument("fingerprint", metavar="FP")
@click.option(
    "--check", is_flag=True, required=True, help="Compare the rerun with the recorded result."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop the call after this long.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@click.pass_context
def rerun_command(
    ctx: click.Context, fingerprint: str, check: bool, timeout: float | None, as_json: bool
) -> None:
    """Run a call again and compare with its recorded result; exit 3 if anything differs.

    Compared: status, return value, exception, stdout, stderr, and every file
    of the output directory. The rerun's result is stored but does not
    replace the recorded one.
    """
    from . import cache
    from .check import differences
    from .execute import execute

    store = open_store(ctx)
    call_fp = cache.resolve_call(store, fingerprint)
    recorded_fp, recorded = cache.latest(store, call_fp)
    fresh = execute(store, call_fp, force=True, timeout=timeout, publish=False)
    found = differences(store, recorded, fresh.record)
    if as_json:
        echo_json(
            {"call": call_fp, "recorded": recorded_fp, "rerun": fresh.result, "differences": found}
        )
    else:
        for line in found:
            click.echo(line)
        verdict = "reproduced" if not found else f"{len(found)} difference(s)"
        click.echo(f"{verdict}: recorded {recorded_fp[:12]}, rerun {fresh.result[:12]}", err=True)
    sys.exit(3 if found else 0)


@click.command(name="command")
@click.argument("fingerprint", metavar="FP")
@click.pass_context
def command_command(ctx: click.Context, fingerprint: str) -> None:
    """Print the command line that runs this call (for batch systems, job arrays)."""
    import shlex

    from . import cache

    store = open_store(ctx)
    call_fp = cache.resolve_call(store, fingerprint)
    click.echo(
        shlex.join(
            [sys.executable, "-m", "scalems_call.commands", "--store", store.root, "exec", call_fp]
        )
    )
