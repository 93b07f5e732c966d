"""``scalems-call`` commands that make and run calls: pack, exec, rerun, command."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from scalems_call.cmdline.cmd_exec import timeout_option
from scalems_store.cli.shared import echo_json, open_store

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
    help="Requirement: ranks=N (MPI), nodes=N, interpreter=fresh (repeatable).",
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

    MODULE is imported as Python would from the current directory. The source
    of your own modules the call needs (MODULE and what it imports, but the
    standard library and installed distributions) is stored with the call and
    is part of its fingerprint: exec runs that code, wherever it runs.
    Installed distributions are recorded by version.
    """
    from scalems_call.identity.upstream import from_json

    args = from_json(_json_option(args_json, "--args-json", list))
    kwargs = from_json(_json_option(kwargs_json, "--kwargs-json", dict))
    environment = _pairs(env, "--env", parse_json=False)
    requirements = _pairs(require, "--require", parse_json=True)
    from scalems_call.engines.runner import check_call, pack
    from scalems_call.identity.targets import import_target

    func = import_target(target)
    check_call(func, args, kwargs, requirements)  # before a store is made for nothing
    named = _file_named([args, kwargs], skeleton)
    if named is not None:
        click.echo(
            f"warning: argument {named!r} names a file outside the skeleton: the call gets "
            "the string, not the file, and its content is not part of the call's identity; "
            f'pass {{"$file": {json.dumps(named)}}} (input_file() in Python) to pass it by content',
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


def _file_named(value: Any, skeleton: str | None) -> str | None:
    """The first string in *value* (arguments from JSON) that names an existing file
    outside the *skeleton* directory, or None."""
    import os

    if isinstance(value, str):
        if not value or "\0" in value or not os.path.isfile(value):
            return None
        if skeleton is not None and os.path.isdir(skeleton):
            inside = os.path.realpath(os.path.join(skeleton, value))
            if os.path.isfile(inside):
                return None
        return value
    items = value.values() if isinstance(value, dict) else value
    if isinstance(items, list | tuple) or isinstance(value, dict):
        for item in items:
            found = _file_named(item, skeleton)
            if found is not None:
                return found
    return None


@click.command(name="rerun")
@click.argument("fingerprint", metavar="FP")
@click.option(
    "--check", is_flag=True, required=True, help="Compare the rerun with the recorded result."
)
@click.option(
    "--deep",
    is_flag=True,
    help="Run the whole graph below FP again, from scratch, and name every call that differs.",
)
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@click.pass_context
def rerun_command(
    ctx: click.Context,
    fingerprint: str,
    check: bool,
    deep: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Run a call again and compare with its recorded result; exit 3 if anything differs.

    Compared: status, return value, exception, stdout, stderr, and every file
    of the output directory (a text file's first differing lines are shown).
    Provenance (host, times) is not compared: two results that agree on all
    the rest still have different fingerprints. The rerun's result is stored
    but does not replace the recorded one. With --deep, every call below FP
    runs again too, in a scratch store, each taking the others' fresh outputs.
    """
    from scalems_call.execution import cache

    store = open_store(ctx)
    call_fp = cache.resolve_call(store, fingerprint)
    if deep:
        _rerun_deep(store, call_fp, timeout, as_json)
    from scalems_call.execution.check import compare
    from scalems_call.execution.execute import execute

    recorded_fp, recorded = cache.latest(store, call_fp)
    fresh = execute(store, call_fp, force=True, timeout=timeout, publish=False)
    found = compare(store, recorded, fresh.record)
    if as_json:
        summaries = [difference.summary for difference in found]
        echo_json(
            {
                "call": call_fp,
                "recorded": recorded_fp,
                "rerun": fresh.result,
                "differences": summaries,
            }
        )
    else:
        for difference in found:
            for line in difference.lines():
                click.echo(line)
        verdict = (
            f"{len(found)} difference(s)"
            if found
            else "reproduced (the two result fingerprints differ only by provenance: host, times)"
        )
        click.echo(f"{verdict}: recorded {recorded_fp[:12]}, rerun {fresh.result[:12]}", err=True)
    sys.exit(3 if found else 0)


def _rerun_deep(store: FileStore, call_fp: str, timeout: float | None, as_json: bool) -> None:
    from scalems_call.engines.deep import rerun_deep
    from scalems_call.execution import cache
    from scalems_call.identity.describe import function_name

    rows = rerun_deep(store, call_fp, timeout=timeout, log=lambda line: None)
    differing = [row for row in rows if row["differences"]]
    if as_json:
        echo_json({"call": call_fp, "calls": rows})
    else:
        for row in differing:
            name = function_name(cache.load_call(store, row["call"]))
            click.echo(f"call {row['call'][:12]} {name}: {len(row['differences'])} difference(s)")
            for line in row["differences"]:
                click.echo(f"    {line}")
        click.echo(f"{len(rows) - len(differing)} of {len(rows)} calls reproduced", err=True)
    sys.exit(3 if differing else 0)


@click.command(name="command")
@click.argument("fingerprint", metavar="FP")
@click.pass_context
def command_command(ctx: click.Context, fingerprint: str) -> None:
    """Print the command line that runs this call (for batch systems, job arrays)."""
    import shlex

    from scalems_call.execution import cache

    store = open_store(ctx)
    call_fp = cache.resolve_call(store, fingerprint)
    command = [sys.executable, "-m", "scalems_call.cmdline.commands", "--store", store.root]
    click.echo(shlex.join([*command, "exec", call_fp]))
