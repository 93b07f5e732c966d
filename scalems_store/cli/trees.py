"""``scalems-store`` commands that look inside objects: ls-tree, diff."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import click

from scalems_store.cli.shared import diff_parameters, echo_json, open_store

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from scalems_store.store.filestore import FileStore
    from scalems_store.tar.treeread import Entry


@click.command(name="ls-tree")
@click.argument("fingerprint", metavar="FP[:PATH]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records (sizes in bytes).")
@click.pass_context
def ls_tree(ctx: click.Context, fingerprint: str, as_json: bool) -> None:
    """List a tree (or one directory of it, FP:PATH): mode, size and path of each member.

    FP may be a tree, a result (its output directory) or a call (the output
    directory of its newest result). The tree is checked against its
    fingerprint first; nothing is extracted.
    """
    from scalems_store.core.humane import size
    from scalems_store.store.treeview import locate, open_tree_at
    from scalems_store.tar.tarformat import DIR, FILE, SYMLINK

    store = open_store(ctx)
    spot = locate(store, fingerprint)
    with open_tree_at(store, spot) as tree:
        members = tree.members(spot.path or "")
    if as_json:
        echo_json(
            [
                {
                    "path": m.path,
                    "type": {FILE: "file", DIR: "directory", SYMLINK: "symlink"}[m.type],
                    "mode": f"{_mode(m):04o}",
                    "size": m.size,
                    **({"target": m.linkname} if m.type == SYMLINK else {}),
                }
                for m in members
            ]
        )
        return
    kinds = {FILE: stat.S_IFREG, DIR: stat.S_IFDIR, SYMLINK: stat.S_IFLNK}
    for m in members:
        mode = stat.filemode(kinds[m.type] | _mode(m))
        shown = size(m.size) if m.type == FILE else "-"
        suffix = "/" if m.type == DIR else f" -> {m.linkname}" if m.type == SYMLINK else ""
        click.echo(f"{mode}  {shown:>9}  {m.path}{suffix}")


@click.command(name="diff")
@diff_parameters
@click.pass_context
def diff(ctx: click.Context, first: str, second: str, patch: bool, as_json: bool) -> None:
    """Show what differs between two trees, blobs, results or calls.

    Trees: the files added, removed and changed, with sizes. Results (of one
    call): status, return value, exception, stdout, stderr and the files of
    the output directory. FP:PATH and FP:PATH compare two files, or two
    directories, of trees, results' output directories or calls' newest
    results (CALL:traj.csv). Exit status as diff(1)'s: 0 when they are the same,
    1 when they differ, 2 on trouble (an error is one line on stderr).
    """
    show_diff(ctx, first, second, patch=patch, as_json=as_json)


def show_diff(
    ctx: click.Context,
    first: str,
    second: str,
    *,
    patch: bool,
    as_json: bool,
    describe: Callable[[Any], str] | None = None,
) -> None:
    """Print what differs between FIRST and SECOND and exit as diff(1) does (see
    :func:`diff`); *describe* shows the arguments of call records (scalems-call's)."""
    from scalems_store.cli.commandline import error_line
    from scalems_store.core.errors import StoreError
    from scalems_store.query.diff import PATCH_LINES, compare

    try:
        store = open_store(ctx)
        kind, changes = compare(
            store, first, second, patch=PATCH_LINES if patch else 0, describe=describe
        )
        names = [_named(store, first), _named(store, second)]
    except StoreError as exc:
        click.echo(error_line(exc), err=True)
        ctx.exit(2)
    if as_json:
        echo_json(
            {
                "kind": kind,
                "a": names[0],
                "b": names[1],
                "same": not changes,
                "changes": [change.as_dict() for change in changes],
            }
        )
    else:
        for change in changes:
            click.echo(change.line())
            for line in change.patch:
                click.echo(f"    {line}")
        if describe is None and any(c.where.startswith("argument") for c in changes):
            click.echo("(scalems-call diff shows the arguments' values)", err=True)
    ctx.exit(1 if changes else 0)


def _named(store: FileStore, spec: str) -> str:
    """``FP`` or ``FP:path`` with the name before the colon resolved in full."""
    from scalems_store.store.treeview import split_spec

    name, path = split_spec(spec)
    return store.resolve(name) + ("" if path is None else f":{path}")


def _mode(member: Entry) -> int:
    """A member's permission bits; a symlink has none of its own (shown 0777, as ls does)."""
    from scalems_store.tar.tarformat import SYMLINK

    return 0o777 if member.type == SYMLINK else member.mode
