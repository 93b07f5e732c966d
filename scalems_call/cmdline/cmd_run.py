"""``scalems-call`` commands that make and run calls: pack, exec, rerun, command."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from scalems_call.cmdline.cmd_exec import timeout_option
from scalems_call.identity.errors import CallError
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


def call_arguments(args: Any, kwargs: Any, where: str) -> tuple[list[Any], dict[str, Any]]:
    """A call's arguments from command-line JSON (an array and an object), their references
    (``{"$output": FP}``...) turned into what they stand for: the one parser of
    ``--args-json``/``--kwargs-json`` and of each line of ``--many``.

    Raises:
        click.BadParameter: *args* is not an array or *kwargs* not an object (*where* says
            which option or line).
    """
    from scalems_call.identity.upstream import from_json

    for value, kind, name in ((args, list, "args"), (kwargs, dict, "kwargs")):
        if not isinstance(value, kind):
            what = "array" if kind is list else "object"
            raise click.BadParameter(f"{name} must be a JSON {what}", param_hint=where)
    return from_json(args), from_json(kwargs)


@click.command(name="pack")
@click.argument("target", metavar="MODULE:FUNC")
@click.option("--args-json", metavar="JSON", help="Positional arguments as a JSON array.")
@click.option("--kwargs-json", metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option(
    "--many",
    type=click.File("r", encoding="utf-8"),
    metavar="FILE|-",
    help='Pack one call a line of FILE (- for stdin): {"args": [...], "kwargs": {...}}; '
    "print one fingerprint a line, in order. A bad line packs nothing.",
)
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
    many: Any,
    skeleton: str | None,
    env: tuple[str, ...],
    require: tuple[str, ...],
) -> None:
    """Pack a call of MODULE:FUNC into the store and print its fingerprint.

    MODULE is imported as Python would from the current directory. The source
    of your own modules the call needs (MODULE and what it imports, but the
    standard library and installed distributions) is stored with the call and
    is part of its fingerprint: exec runs that code, wherever it runs.
    Installed distributions are recorded by version. With --many, every line
    of FILE is one call's arguments, and --skeleton, --env and --require apply
    to each; every line is checked before anything is packed.
    """
    if many is not None and (args_json is not None or kwargs_json is not None):
        raise click.UsageError("--many takes the arguments from its lines, not --args-json")
    environment = _pairs(env, "--env", parse_json=False)
    requirements = _pairs(require, "--require", parse_json=True)
    if many is not None:
        calls = _lines(many)
    else:
        args, kwargs = call_arguments(
            _json_option(args_json, "--args-json", list),
            _json_option(kwargs_json, "--kwargs-json", dict),
            "--args-json/--kwargs-json",
        )
        calls = [(None, args, kwargs)]
    from scalems_call.engines.runner import Shape, call_record, check_call
    from scalems_call.identity.targets import import_target

    func = import_target(target)
    for number, args, kwargs in calls:
        with _at_line(number):  # before a store is made for nothing
            check_call(func, args, kwargs, requirements)
    named = _file_named([[args, kwargs] for _, args, kwargs in calls], skeleton)
    if named is not None:
        click.echo(
            f"warning: argument {named!r} names a file outside the skeleton: the call gets "
            "the string, not the file, and its content is not part of the call's identity; "
            f'pass {{"$file": {json.dumps(named)}}} (input_file() in Python) to pass it by content',
            err=True,
        )
    store = open_store(ctx, create=True)
    base = None
    if skeleton is not None and calls:  # a directory is added once for all the calls
        base = store.add_tree(skeleton) if os.path.isdir(skeleton) else skeleton
    shape = Shape(base, environment, requirements)
    records = []
    for number, args, kwargs in calls:
        with _at_line(number):
            records.append(call_record(func, args, kwargs, store, shape))
    with store.batch():  # durable together: one sync for the lot
        fingerprints = [store.add_bytes(record, kind="call") for record in records]
    click.echo("".join(f"{fp}\n" for fp in fingerprints), nl=False)


@contextlib.contextmanager
def _at_line(number: int | None) -> Iterator[None]:
    """Name the line of ``--many`` in an error of the call it gives."""
    try:
        yield
    except CallError as exc:
        if number is None:
            raise
        raise type(exc)(f"line {number}: {exc}") from None


def _lines(stream: Any) -> list[tuple[int | None, list[Any], dict[str, Any]]]:
    """The calls of ``--many`` with their line numbers: one JSON object a line (blank
    lines skipped).

    Raises:
        click.BadParameter: a line that is not ``{"args": [...], "kwargs": {...}}``,
            naming its number.
    """
    calls: list[tuple[int | None, list[Any], dict[str, Any]]] = []
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        where = f"--many (line {number})"
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint=where) from None
        except RecursionError:
            raise click.BadParameter("nested too deeply", param_hint=where) from None
        if not isinstance(value, dict) or not set(value) <= {"args", "kwargs"}:
            raise click.BadParameter(
                'expected {"args": [...], "kwargs": {...}} (either may be left out)',
                param_hint=where,
            )
        args, kwargs = call_arguments(value.get("args", []), value.get("kwargs", {}), where)
        calls.append((number, args, kwargs))
    return calls


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
    trust = cache.verdict(store, recorded_fp, call_fp)
    if not trust.served:  # comparing decodes its return value: it could run code
        raise CallError(
            f"result {recorded_fp[:12]} is {trust.describe()}: not compared (trust its "
            "signer with 'scalems-store trust add KEY' first)"
        )
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
