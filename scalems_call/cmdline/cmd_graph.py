"""``scalems-call`` commands that show graphs: status, graph, why."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from scalems_store.cli.shared import echo_json, open_store

if TYPE_CHECKING:
    from scalems_call.engines.graph import Plan, Standing
    from scalems_store import FileStore

FORMATS = ("text", "dot", "mermaid", "svg", "html")


def _planned(
    ctx: click.Context, fingerprints: tuple[str, ...]
) -> tuple[FileStore, Plan, dict[str, Standing]]:
    from scalems_call.engines import graph
    from scalems_call.execution import cache

    store = open_store(ctx)
    roots = list(dict.fromkeys(cache.resolve_call(store, fp) for fp in fingerprints))
    plan = graph.plan(store, roots)
    return store, plan, graph.states(store, plan)


@click.command(name="status")
@click.argument("fingerprints", nargs=-1, required=True, metavar="FP...")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per call.")
@click.pass_context
def status_command(ctx: click.Context, fingerprints: tuple[str, ...], as_json: bool) -> None:
    """Show the graph below calls: one line a call, with its function and short
    arguments (simulate(seed=7)), its state and duration.

    States: cached (exec serves it), stale (it may run again: something below
    changed or is not cached; or "code changed since pack: MODULE": your code on
    disk differs from what the call recorded and ran), missing (never run), running (a runner holds
    it now), failed, upstream-failed (a call below failed). Exit 0 when
    everything is cached, 1 otherwise.
    """
    from scalems_call.engines import graphview

    _, plan, standing = _planned(ctx, fingerprints)
    described = graphview.calls(plan, standing)
    if as_json:
        echo_json({"roots": plan.roots, "calls": described})
    else:
        for line in graphview.tree_lines(plan, described):
            click.echo(line)
    sys.exit(0 if all(c["state"] == "cached" for c in described) else 1)


@click.command(name="graph")
@click.argument("fingerprints", nargs=-1, required=True, metavar="FP...")
@click.option(
    "--format",
    "form",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text: edges; dot/mermaid: sources; svg: drawn by Graphviz; html: one page.",
)
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@click.pass_context
def graph_command(
    ctx: click.Context, fingerprints: tuple[str, ...], form: str, output: str | None
) -> None:
    """Draw the lineage graph below calls: calls (coloured by state), their input trees
    and output directories, named by their files.

    Calls of one function and shape are drawn as one box from 4 on
    ("200 x mdsim:simulate, 198 cached, 2 failed"); fewer, one box a call
    ("simulate(seed=7)", its state, and why it failed or is stale). text
    lists every edge. svg needs Graphviz's dot; html is one self-contained page
    (no network): a legend, the picture (drawn when dot is installed) and every
    call with its arguments, state, why, times and outputs, each group folded
    until its box or heading is clicked.
    """
    from scalems_call.engines import graphview
    from scalems_call.identity.errors import CallError

    store, plan, standing = _planned(ctx, fingerprints)
    draw = {
        "text": graphview.text,
        "dot": graphview.dot,
        "mermaid": graphview.mermaid,
        "svg": graphview.svg,
        "html": graphview.page,
    }[form]
    try:
        drawn = draw(plan, standing, store)
    except graphview.NoGraphviz as exc:
        raise CallError(str(exc)) from None
    if output is None:
        click.echo(drawn, nl=False)
    else:
        with open(output, "w", encoding="utf-8") as stream:
            stream.write(drawn)


@click.command(name="why")
@click.argument("fingerprint", metavar="FP|FP:PATH")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON record.")
@click.pass_context
def why_command(ctx: click.Context, fingerprint: str, as_json: bool) -> None:
    """Say which call (and result) made an object, and which calls took it.

    FP may also be the fingerprint (b3sum) of a file inside any stored tree,
    such as an output file you have: which call made it, as which file, and
    which calls consumed it. FP:PATH names such a file by where it is
    (CALL:traj.csv, RESULT:traj.csv, TREE:path).
    """
    from scalems_call.execution import cache
    from scalems_call.identity.describe import function_name, short_arguments
    from scalems_store.query.lineage import lineage

    store = open_store(ctx)
    fp, places = _object_or_file(store, fingerprint)
    found = lineage(store, fp, places)

    def named(call: str) -> str:
        try:
            record = cache.load_call(store, call)
        except Exception:  # a call record that is not here
            return "?"
        return f"{function_name(record)}({short_arguments(record, 40)})"

    if as_json:
        echo_json(
            {
                "object": fp,
                "note": _code_note(store, fp) if fp in store else None,
                "places": [{"tree": tree, "path": path} for tree, path in places],
                "made_by": [
                    {**link._asdict(), "function": named(link.call)} for link in found.made_by
                ],
                "taken_by": [
                    {**link._asdict(), "function": named(link.call)} for link in found.taken_by
                ],
            }
        )
        return
    kind = store.kind(fp) if fp in store else None
    if places:
        names = sorted({path for _, path in places})
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more names" if names[3:] else "")
        trees = len({tree for tree, _ in places})
        click.echo(f"file        {fp}  ({shown}, in {trees} tree{'s' * (trees != 1)})")
    if kind is not None and (kind != "blob" or not places):
        click.echo(f"object      {fp}  ({kind})")
    for link in found.made_by:
        made = f"{link.how} of result {str(link.result)[:12]}"
        where = f" as {link.path}" if link.path else ""
        click.echo(f"made by     call {link.call[:12]} {named(link.call)}{where} ({made})")
    for link in found.taken_by:  # declared as an input; consumed by a result of the call
        how = link.how if link.result is None else f"{link.how} by result {link.result[:12]}"
        where = f" as {link.path}" if link.path else ""
        click.echo(f"taken by    call {link.call[:12]} {named(link.call)}{where} ({how})")
    note = _code_note(store, fp) if kind is not None else None
    if note is not None:
        click.echo(note)
    if not found.made_by and not found.taken_by:
        if kind == "call":
            ran = bool(cache.results(store, fp))
            click.echo(
                f"a call ({named(fp)}); no call takes its output"
                + ("" if ran else "; it has not run (scalems-call exec)")
            )
        else:
            click.echo("no call made or took it (added by hand?)")


def _code_note(store: FileStore, fp: str) -> str | None:
    """What to know of a call's code, or that its result was reused from another call
    (see :func:`scalems_call.engines.graph.code_note`); None for an object that is not a
    call."""
    from scalems_call.engines.graph import code_note, reuse_note
    from scalems_call.execution import cache

    if store.kind(fp) != "call":
        return None
    newest = cache.newest(store, fp)
    reused = None if newest is None else reuse_note(cache.load_result(store, newest))
    return code_note(cache.load_call(store, fp)) or reused


def _object_or_file(store: FileStore, name: str) -> tuple[str, list[tuple[str, str]]]:
    """The fingerprint *name* names and where it is the content of a file inside a stored
    tree: an object (fingerprint, prefix, label), ``FP:path``, or the content of a file
    of some tree that is no object of its own."""
    from scalems_store.core.errors import InvalidFingerprint, ObjectNotFound
    from scalems_store.query.treefiles import places
    from scalems_store.store.treeview import file_fingerprint, has_path

    if has_path(name):
        fp, tree, path = file_fingerprint(store, name)
        if not path:
            return fp, []
        return fp, sorted({(tree, path), *places(store, fp)[1]})
    try:
        fp = store.resolve(name)
    except ObjectNotFound as exc:
        try:
            content, where = places(store, name)
        except InvalidFingerprint:  # a name that is no fingerprint: a missing label
            raise exc from None
        if content is None:
            raise ObjectNotFound(f"{exc}; nor is it the content of a file in any tree") from None
        return content, where
    return fp, places(store, fp)[1] if store.kind(fp) == "blob" else []
