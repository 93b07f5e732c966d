"""``scalems-call`` commands that show calls and results: result, ls."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from scalems_call.identity.errors import CallError
from scalems_call.identity.records import STATUSES
from scalems_store.cli.shared import diff_parameters, echo_json, open_store, parse_duration

if TYPE_CHECKING:
    from scalems_store import FileStore


@click.command(name="result")
@click.argument("fingerprint", metavar="FP")
@click.argument("path", metavar="[PATH]", required=False)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result record (and the decoded return value).",
)
@click.option("--stdout", "stdout", is_flag=True, help="Print the captured stdout only.")
@click.option("--stderr", "stderr", is_flag=True, help="Print the captured stderr only.")
@click.option("-o", "--output", metavar="DIR", help="Extract the output directory into DIR.")
@click.pass_context
def result_command(
    ctx: click.Context,
    fingerprint: str,
    path: str | None,
    as_json: bool,
    stdout: bool,
    stderr: bool,
    output: str | None,
) -> None:
    """Show the latest result of a call (or a result given by fingerprint).

    With PATH, print that file of the output directory (result CALL traj.csv),
    or with -o write it (or extract that directory) to DEST. --stdout and
    --stderr print one stream's bytes as captured, so they take neither each
    other nor --json.

    A result that is not here (or whose outputs are not, with PATH or -o) is
    fetched from the default remote: its newest result of the call, with its
    outputs (one line on stderr says so).
    """
    from scalems_call.cmdline import display

    if path is not None:
        if stdout or stderr or as_json:
            raise click.UsageError(
                "PATH prints one file: it takes none of --stdout, --stderr, --json"
            )
        _write_path(ctx, fingerprint, path, output)
        return
    if stdout and stderr:
        raise click.UsageError("give --stdout or --stderr, not both (each prints one stream)")
    if as_json and (stdout or stderr):
        raise click.UsageError("--json prints the record: it takes neither --stdout nor --stderr")
    store = open_store(ctx)
    result_fp, record = _latest(store, fingerprint, needs=output is not None)
    if output is not None:
        if not record.get("directory"):
            raise CallError(f"result {result_fp} recorded no output directory")
        directory = store.resolve(record["directory"])
        if store.kind(directory) != "tree":  # a blob would be written as the file DIR
            raise CallError(
                f"result {result_fp} names {directory[:12]} as its output directory, but it "
                f"is a {store.kind(directory)}, not a tree: nothing written"
            )
        store.materialize(directory, output)
    show = "stdout" if stdout else "stderr" if stderr else None
    if show is not None:
        uri = record.get(show)
        if uri is None:
            raise CallError(f"result {result_fp} recorded no {show}")
        sys.stdout.flush()
        store.write_to(uri, sys.stdout.buffer)
    elif as_json:
        echo_json(display.as_json(store, result_fp, record))
    elif output is None:
        for line in display.lines(store, result_fp, record):
            click.echo(line)


def _write_path(ctx: click.Context, fingerprint: str, path: str, output: str | None) -> None:
    """Write PATH of the output directory of the result FP names (or of a call's newest)."""
    from scalems_store.store.treeview import materialize_spec, write_spec

    store = open_store(ctx)
    result_fp, record = _latest(store, fingerprint, needs=True)
    if not record.get("directory"):
        raise CallError(f"result {result_fp} recorded no output directory")
    spec = f"{result_fp}:{path}"
    if output is not None:
        materialize_spec(store, spec, output)
        return
    sys.stdout.flush()
    write_spec(store, spec, sys.stdout.buffer)


def _latest(store: FileStore, fingerprint: str, *, needs: bool) -> tuple[str, dict[str, Any]]:
    """The result to show (see :func:`scalems_call.execution.cache.latest`); where this store
    has none (or, when it *needs* them, not its outputs), the default remote's newest
    result of the call, fetched with its outputs (one line on stderr says so)."""
    from scalems_call.execution import cache
    from scalems_call.identity.errors import NoResult
    from scalems_store.core import layout
    from scalems_store.core.errors import ObjectNotFound

    try:
        found = cache.latest(store, fingerprint)
        directory = found[1].get("directory")
        if needs and isinstance(directory, str) and layout.normalize(directory) not in store:
            raise ObjectNotFound(f"the output directory of result {found[0]} is not here")
        return found
    except (NoResult, ObjectNotFound) as exc:
        from scalems_store.remote.lazy import fetch

        fetched = fetch(store, fingerprint, str(exc))
        click.echo(fetched.line, err=True)
        return cache.latest(store, fetched.fingerprint)


@click.command(name="diff")
@diff_parameters
@click.pass_context
def diff_command(ctx: click.Context, first: str, second: str, patch: bool, as_json: bool) -> None:
    """Show what differs between two calls, results, trees or blobs (as scalems-store
    diff), naming each argument of two calls that differs with both values:
    'argument seed differs: 7 -> 8'. Exit 0 when the same, 1 when not, 2 on trouble.
    """
    from scalems_call.identity.describe import argument_value
    from scalems_store.cli.trees import show_diff

    show_diff(ctx, first, second, patch=patch, as_json=as_json, describe=argument_value)


@click.command(name="forget")
@click.argument("calls", nargs=-1, required=True, metavar="CALL|LABEL...")
@click.option("--dry-run", is_flag=True, help="Only say what would be forgotten.")
@click.pass_context
def forget_command(ctx: click.Context, calls: tuple[str, ...], dry_run: bool) -> None:
    """Drop the recorded results of calls: the next exec runs them again.

    Their objects (output directories, stdout, stderr) go at the next
    'scalems-store gc', unless a label or a kept result (one that consumed
    them) still reaches them. A call record stays while a label or another
    call names it.
    """
    from scalems_call.execution import cache
    from scalems_store.maint.forget import forget

    store = open_store(ctx)
    fingerprints = list(dict.fromkeys(cache.resolve_call(store, call) for call in calls))
    dropped = forget(store, fingerprints, dry_run=dry_run)
    for call, result in dropped:
        click.echo(f"{'would forget' if dry_run else 'forgot'} {result}  (call {call[:12]})")
    verb = "would forget" if dry_run else "forgot"
    click.echo(
        f"{verb} {len(dropped)} results of {len({d.call for d in dropped})} calls; "
        "'scalems-store gc' frees what nothing else reaches",
        err=True,
    )


@click.command(name="ls")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["running", "pending", *STATUSES, "untrusted", "unsigned"]),
    help="Only calls of this status (repeatable).",
)
@click.option(
    "--function",
    metavar="PATTERN",
    help="Only calls of functions whose module:name contains PATTERN (or matches it, with * ? [).",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Only calls started (or packed) since WHEN: a duration ago (30m, 2h, 7d) or a date "
    "(2026-05-01, 2026-05-01T14:30).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON records (full fingerprints).")
@click.pass_context
def ls_command(
    ctx: click.Context,
    statuses: tuple[str, ...],
    function: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """List calls, newest first: status, start, duration, function and arguments.

    A call being run (a live lease) is 'running'; one never run is 'pending'.
    Functions and arguments are read from the call records without importing
    anything. On a terminal, fingerprints are shortened to 12 digits.
    """
    from scalems_call.cmdline import display

    after = None if since is None else _since(since)
    rows = [
        row
        for row in display.call_rows(open_store(ctx))
        if (not statuses or row["status"] in statuses)
        and (function is None or _matches(row["function"], function))
        and (after is None or row["when"] >= after)
    ]
    if as_json:
        echo_json([{k: v for k, v in row.items() if k != "when"} for row in rows])
        return
    # on a terminal, fingerprints are cut to fit the screen; piped, they are printed whole
    short = sys.stdout.isatty()
    if rows:
        click.echo(display.log_header(short))
    for row in rows:
        click.echo(display.log_line(row, short))


def _matches(name: str, pattern: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(name, pattern) if any(c in pattern for c in "*?[") else pattern in name


def _since(text: str) -> float:
    """Seconds since the epoch of ``--since``: a duration before now, or a (local) date."""
    from datetime import datetime

    try:
        return time.time() - parse_duration(text)
    except click.BadParameter:
        pass
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a duration (30m, 2h, 7d) nor a date (2026-05-01, "
            "2026-05-01T14:30)",
            param_hint="--since",
        ) from None
