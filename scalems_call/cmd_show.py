"""``scalems-call`` commands that show calls and results: result, ls."""

from __future__ import annotations

import sys

import click

from scalems_store.clickshared import echo_json, open_store

from .errors import CallError


@click.command(name="result")
@click.argument("fingerprint", metavar="FP")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result record (and the decoded return value).",
)
@click.option("--stdout", "show", flag_value="stdout", help="Print the captured stdout only.")
@click.option("--stderr", "show", flag_value="stderr", help="Print the captured stderr only.")
@click.option("-o", "--output", metavar="DIR", help="Extract the output directory into DIR.")
@click.pass_context
def result_command(
    ctx: click.Context, fingerprint: str, as_json: bool, show: str | None, output: str | None
) -> None:
    """Show the latest result of a call (or a result given by fingerprint)."""
    from . import cache, display

    store = open_store(ctx)
    result_fp, record = cache.latest(store, fingerprint)
    if output is not None:
        if not record.get("directory"):
            raise CallError(f"result {result_fp} recorded no output directory")
        store.materialize(record["directory"], output)
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


@click.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
@click.pass_context
def ls_command(ctx: click.Context, as_json: bool) -> None:
    """List calls with the status and time of their latest result."""
    from . import display

    rows = display.call_rows(open_store(ctx))
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['call']}  {row['status']:<8}  {row['time'] or '-'}")
