"""``scalems-store`` commands on objects and names: init, add, get, ls, info, label."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from scalems_store.cli.adding import add_paths, check_paths
from scalems_store.cli.shared import echo_json, open_store, progress_bar
from scalems_store.core.errors import InvalidPath

if TYPE_CHECKING:
    from scalems_store.store.filestore import FileStore


@click.command()
@click.option(
    "--shared",
    metavar="[GROUP]",
    is_flag=False,
    flag_value="",
    default=None,
    help="Make it a store the Unix GROUP shares (default: your own group): no member can "
    "delete, rename or replace another's objects, labels or refs. See docs/scale.md.",
)
@click.pass_context
def init(ctx: click.Context, shared: str | None) -> None:
    """Create the store (if it does not exist) and print its path.

    With --shared, the store's directories become the group's, setgid and
    sticky: each member writes files of its own, which no other member may
    remove or replace. Run it as the store's owner (whose gc may remove every
    unreferenced file); a member's gc removes only that member's.
    """
    store = open_store(ctx, create=True)
    if shared is not None:
        from scalems_store.store.sharing import group_id, share

        share(store.root, group_id(shared or None))
    click.echo(store.root)


@click.command()
@click.argument("paths", nargs=-1, metavar="PATH... | -")
@click.option(
    "--files-from",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Also add the paths listed in FILE, one per line ('-': standard input).",
)
@click.option("-0", "--null", is_flag=True, help="The --files-from list is NUL-separated.")
@click.option("--label", metavar="NAME", help="Point this label at the (last) added object.")
@click.option("--expect", metavar="FP", help="Refuse content whose fingerprint is not FP.")
@click.pass_context
def add(
    ctx: click.Context,
    paths: tuple[str, ...],
    files_from: str | None,
    null: bool,
    label: str | None,
    expect: str | None,
) -> None:
    """Add files (as blobs) and directories (as trees); print one fingerprint per line.

    '-' reads a blob from standard input. Adding content that is already
    stored is not an error: the same fingerprint is printed. Many paths are
    added as one batch (made durable together): their fingerprints are
    printed once they are stored.

    \b
    Example:
      find data -type f -print0 | scalems-store add -0 --files-from -
    """
    if "-" in paths and files_from == "-":
        raise click.UsageError(
            "standard input cannot be both a blob ('-') and the --files-from list"
        )
    listed = list(paths) + (_read_list(files_from, null) if files_from is not None else [])
    if not listed:
        if files_from is not None:
            return  # an empty list (find found nothing): nothing to add
        raise click.UsageError("give a PATH, '-' or --files-from FILE")
    if expect and len(listed) > 1:
        raise click.UsageError("--expect takes a single PATH")
    try:
        directories = check_paths(listed)
    except InvalidPath as exc:
        raise click.BadParameter(str(exc), param_hint="PATH") from None
    store = open_store(ctx, create=True)
    alone = len(listed) == 1

    def add_one(path: str, directory: bool, named: str | None) -> str:
        return _add_one(store, path, directory, named, expect, alone)

    def report(added: list[str]) -> None:
        click.echo("\n".join(added), nl=bool(added))

    with progress_bar(f"adding {len(listed)} paths", len(listed)) as advance:
        add_paths(store, listed, directories, add_one, report, label=label, advance=advance)


def _add_one(
    store: FileStore,
    path: str,
    directory: bool,
    label: str | None,
    expect: str | None,
    alone: bool,
) -> str:
    """Add one path; a lone file or tree shows its own progress."""
    if path == "-":
        return store.add_stream(sys.stdin.buffer, label=label, expect=expect)
    if directory:
        with progress_bar(f"archiving {path}", None) if alone else _no_bar() as advance:
            return store.add_tree(path, label=label, expect=expect, progress=advance)
    with progress_bar(f"adding {path}", os.path.getsize(path)) if alone else _no_bar() as advance:
        return store.add_file(path, label=label, expect=expect, progress=advance)


@contextlib.contextmanager
def _no_bar() -> Iterator[None]:
    yield None


def _read_list(source: str, null: bool) -> list[str]:
    """The paths of a --files-from list (empty lines skipped), decoded as the OS does."""
    if source == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(source, "rb") as stream:
                data = stream.read()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {source!r}: {exc.strerror}", param_hint="--files-from"
            ) from None
    if not null and b"\0" in data:
        raise click.BadParameter(
            "the list holds NUL bytes: give -0 for a NUL-separated list (find -print0)",
            param_hint="--files-from",
        )
    paths = [os.fsdecode(part) for part in (data.split(b"\0") if null else data.splitlines())]
    if "-" in paths:
        raise click.BadParameter(
            "'-' in the list: standard input is not a listed file (a file named '-': ./-)",
            param_hint="--files-from",
        )
    return [path for path in paths if path]


@click.command()
@click.argument("fingerprint", metavar="FP[:PATH]")
@click.option(
    "-o",
    "--output",
    metavar="DEST",
    help="Write a blob (or file) to DEST, or extract a tree (or directory) into DEST.",
)
@click.pass_context
def get(ctx: click.Context, fingerprint: str, output: str | None) -> None:
    """Write an object out, checked against its fingerprint.

    A blob goes to DEST or standard output; a tree is extracted into DEST,
    which must be new or an empty directory (without -o, the tree's tar
    archive goes to standard output). FP:PATH is one file of a tree, written
    the same way, or one directory of it, extracted into DEST; FP may also be
    a result (its output directory) or a call (the output directory of its
    newest result): get CALL:traj.csv.

    What is not here is fetched from the default remote (one line on stderr
    says so): a call's newest result there, with its outputs.
    """
    from scalems_store.core.errors import ObjectNotFound

    store = open_store(ctx)
    try:
        _get(store, fingerprint, output)
    except ObjectNotFound as exc:  # not here: from the default remote, if it has it
        from scalems_store.remote.lazy import retry_spec

        spec, line = retry_spec(store, fingerprint, str(exc))
        click.echo(line, err=True)
        _get(store, spec, output)


def _get(store: FileStore, fingerprint: str, output: str | None) -> None:
    from scalems_store.store.treeview import locate, materialize_spec, write_spec

    if output is not None:
        materialize_spec(store, fingerprint, output)
        return
    spot = locate(store, fingerprint)
    whole = spot.tree is not None and not spot.path
    if sys.stdout.isatty() and (whole or store.kind(spot.fingerprint) == "tree"):
        raise click.UsageError("FP is a tree: give -o DIR to extract it (or redirect stdout)")
    sys.stdout.flush()
    write_spec(store, fingerprint, sys.stdout.buffer)


@click.command(name="ls")
@click.option(
    "--kind",
    type=click.Choice(["blob", "tree", "call", "result"]),
    help="Only objects of this kind.",
)
@click.option(
    "--label", metavar="LABEL|FP", help="Only the object a label (or a fingerprint) names."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON records (fingerprint, kind, size, created, labels, refs).",
)
@click.pass_context
def list_objects(ctx: click.Context, kind: str | None, label: str | None, as_json: bool) -> None:
    """List objects, one full fingerprint a line, sorted."""
    from scalems_store.query.info import json_text

    store = open_store(ctx)
    if label is not None:
        found = [store.info(label)]
        infos = [info for info in found if kind is None or info.kind == kind]
    else:
        infos = None
    if as_json:
        if infos is not None:
            echo_json([info.as_dict() for info in infos])
        elif sys.stdout.isatty():
            echo_json(json.loads("".join(json_text(store, kind))))
        else:  # a million objects in seconds: the records' texts are made in bulk
            for piece in json_text(store, kind):
                sys.stdout.write(piece)
            sys.stdout.write("\n")
        return
    if infos is not None:
        fingerprints = [info.fingerprint for info in infos]
    elif kind is not None:
        fingerprints = [row[0] for row in store.index.tuples(kind)]
    else:
        fingerprints = store.index.fingerprints()
    if fingerprints:
        sys.stdout.write("\n".join(fingerprints) + "\n")


@click.command()
@click.argument("fingerprint", metavar="FP")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON record (size in bytes).")
@click.pass_context
def info(ctx: click.Context, fingerprint: str, as_json: bool) -> None:
    """Show an object's kind, size, when it was first stored, labels and references."""
    import time

    from scalems_store.core.humane import size

    details = open_store(ctx).info(fingerprint)
    if as_json:
        echo_json(details.as_dict())
        return
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(details.created))
    exact = f" ({details.size} bytes)" if details.size >= 1024 else ""
    click.echo(f"fingerprint  {details.fingerprint}")
    click.echo(f"kind         {details.kind}")
    click.echo(f"size         {size(details.size)}{exact}")
    click.echo(f"created      {created}")
    click.echo(f"labels       {' '.join(details.labels) or '-'}")
    for ref in details.refs:
        click.echo(f"refers to    {ref}")


@click.command()
@click.argument("name", required=False)
@click.argument("fingerprint", metavar="[FP]", required=False)
@click.option("--remove", is_flag=True, help="Remove label NAME.")
@click.pass_context
def label(ctx: click.Context, name: str | None, fingerprint: str | None, remove: bool) -> None:
    """Point label NAME at object FP (labels are gc roots).

    With NAME only, print what it points at; with nothing, list every label.
    """
    store = open_store(ctx, create=fingerprint is not None)
    if remove:
        if name is None or fingerprint is not None:
            raise click.UsageError("--remove takes NAME only")
        store.remove_label(name)
    elif fingerprint is not None and name is not None:
        click.echo(store.set_label(name, fingerprint))
    else:
        labels = store.labels()
        if name is not None:
            if name not in labels:
                from scalems_store.core.errors import ObjectNotFound

                raise ObjectNotFound(f"no label {name!r}")
            click.echo(labels[name])
        for other, fp in labels.items() if name is None else ():
            click.echo(f"{other}\t{fp}")
