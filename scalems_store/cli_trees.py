"""``scalems-store`` commands that look inside objects: ls-tree."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import click

from .clickshared import echo_json, open_store

if TYPE_CHECKING:
    from .treeread import Entry


@click.command(name="ls-tree")
@click.argument("fingerprint", metavar="FP[:PATH]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records (sizes in bytes).")
@click.pass_context
def ls_tree(ctx: click.Context, fingerprint: str, as_json: bool) -> None:
    """List a tree (or one directory of it, FP:PATH): mode, size and path of each member.

    The tree is checked against its fingerprint first; nothing is extracted.
    """
    from .humane import size
    from .tarformat import DIR, FILE, SYMLINK
    from .treepath import split_spec
    from .treeview import open_tree

    name, path = split_spec(fingerprint)
    with open_tree(open_store(ctx), name) as tree:
        members = tree.members(path or "")
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


def _mode(member: Entry) -> int:
    """A member's permission bits; a symlink has none of its own (shown 0777, as ls does)."""
    from .tarformat import SYMLINK

    return 0o777 if member.type == SYMLINK else member.mode
