"""``scalems-store``: the command-line face of :class:`scalems_store.FileStore`.

Results go to stdout, diagnostics to stderr. A :class:`StoreError` is printed
as one line ``ErrorName: message`` with exit status 1; usage errors exit 2.
"""

from __future__ import annotations

import os
import sys

import click

from .clickshared import (
    ErrorGroup,
    echo_json,
    open_store,
    parse_duration,
    progress_bar,
    run_main,
    store_option,
)


@click.group(cls=ErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@store_option
@click.version_option(package_name="scalems-store", prog_name="scalems-store")
@click.pass_context
def cli(ctx: click.Context, store_path: str | None) -> None:
    """A content-addressed store: files and directories named by their BLAKE3.

    Fingerprints may be given in full, as blake3:<hex>, or as a unique prefix
    of at least 4 hex digits.
    """
    ctx.obj = store_path


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the store (if it does not exist) and print its path."""
    click.echo(open_store(ctx, create=True).root)


@cli.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH... | -")
@click.option("--label", metavar="NAME", help="Point this label at the (last) added object.")
@click.option("--expect", metavar="FP", help="Refuse content whose fingerprint is not FP.")
@click.pass_context
def add(ctx: click.Context, paths: tuple[str, ...], label: str | None, expect: str | None) -> None:
    """Add files (as blobs) and directories (as trees); print one fingerprint per line.

    '-' reads a blob from standard input. Adding content that is already
    stored is not an error: the same fingerprint is printed.
    """
    if expect and len(paths) > 1:
        raise click.UsageError("--expect takes a single PATH")
    for path in paths:
        if path != "-" and not os.path.lexists(path):
            raise click.BadParameter(f"no such file or directory: {path!r}", param_hint="PATH")
    store = open_store(ctx, create=True)
    for number, path in enumerate(paths, 1):
        this_label = label if number == len(paths) else None
        if path == "-":
            fp = store.add_stream(sys.stdin.buffer, label=this_label, expect=expect)
        elif os.path.isdir(path):
            with progress_bar(f"archiving {path}", None) as advance:
                fp = store.add_tree(path, label=this_label, expect=expect, progress=advance)
        else:
            with progress_bar(f"adding {path}", os.path.getsize(path)) as advance:
                fp = store.add_file(path, label=this_label, expect=expect, progress=advance)
        click.echo(fp)


@cli.command()
@click.argument("fingerprint", metavar="FP")
@click.option(
    "-o", "--output", metavar="DEST", help="Write a blob to DEST or extract a tree into DEST."
)
@click.pass_context
def get(ctx: click.Context, fingerprint: str, output: str | None) -> None:
    """Write an object out, checked against its fingerprint.

    A blob goes to DEST or standard output; a tree is extracted into DEST,
    which must be new or an empty directory (without -o, the tree's tar
    archive goes to standard output).
    """
    store = open_store(ctx)
    if output is not None:
        store.materialize(fingerprint, output)
        return
    if sys.stdout.isatty() and store.kind(store.resolve(fingerprint)) == "tree":
        raise click.UsageError("FP is a tree: give -o DIR to extract it (or redirect stdout)")
    sys.stdout.flush()
    store.write_to(fingerprint, sys.stdout.buffer)


@cli.command(name="ls")
@click.option(
    "--kind",
    type=click.Choice(["blob", "tree", "call", "result"]),
    help="Only objects of this kind.",
)
@click.option("--label", metavar="NAME", help="Only the object this label points at.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON records (fingerprint, kind, size, created)."
)
@click.pass_context
def list_objects(ctx: click.Context, kind: str | None, label: str | None, as_json: bool) -> None:
    """List objects, one full fingerprint a line, sorted."""
    store = open_store(ctx)
    if as_json:
        echo_json([info.as_dict() for info in store.list(kind, label)])
        return
    fingerprints = (
        store.index.fingerprints()
        if kind is None and label is None
        else [info.fingerprint for info in store.list(kind, label)]
    )
    if fingerprints:
        sys.stdout.write("\n".join(fingerprints) + "\n")


@cli.command()
@click.argument("fingerprint", metavar="FP")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON record.")
@click.pass_context
def info(ctx: click.Context, fingerprint: str, as_json: bool) -> None:
    """Show an object's kind, size, creation time, labels and references."""
    import time

    details = open_store(ctx).info(fingerprint)
    if as_json:
        echo_json(details.as_dict())
        return
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(details.created))
    click.echo(f"fingerprint  {details.fingerprint}")
    click.echo(f"kind         {details.kind}")
    click.echo(f"size         {details.size}")
    click.echo(f"created      {created}")
    click.echo(f"labels       {' '.join(details.labels) or '-'}")
    for ref in details.refs:
        click.echo(f"refers to    {ref}")


@cli.command()
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
                from .errors import ObjectNotFound

                raise ObjectNotFound(f"no label {name!r}")
            click.echo(labels[name])
        for other, fp in labels.items() if name is None else ():
            click.echo(f"{other}\t{fp}")


@cli.command()
@click.argument("fingerprints", nargs=-1, metavar="[FP...]")
@click.option(
    "--sample", type=click.FloatRange(0, 1, min_open=True), help="Check a random fraction only."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@click.pass_context
def verify(
    ctx: click.Context, fingerprints: tuple[str, ...], sample: float | None, as_json: bool
) -> None:
    """Re-hash objects and check labels and refs; exit 1 if anything is corrupt or missing."""
    from .audit import verify as verify_store

    store = open_store(ctx)
    targets = list(fingerprints) or None

    def count() -> int:
        return len(targets) if targets else sum(1 for _ in store.iter_fingerprints())

    with progress_bar("verifying", count) as bar:
        report = verify_store(store, targets, sample=sample, progress=bar)
    if as_json:
        echo_json(
            {
                "checked": report.checked,
                "problems": [{"fingerprint": f, "problem": p} for f, p in report.problems],
            }
        )
    else:
        for fp, problem in report.problems:
            click.echo(f"{fp}  {problem}")
        click.echo(report.summary(), err=True)
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be deleted.")
@click.option(
    "--grace",
    default="14d",
    show_default=True,
    metavar="DURATION",
    help="Keep anything younger (30s, 10m, 2h, 7d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@click.pass_context
def gc(ctx: click.Context, dry_run: bool, grace: str, as_json: bool) -> None:
    """Delete objects that no label or ref reaches, and stale temporary files."""
    from .collect import gc as collect

    seconds = parse_duration(grace)
    report = collect(open_store(ctx), grace=seconds, dry_run=dry_run)
    if as_json:
        echo_json(
            {
                "removed": report.removed,
                "freed": report.freed,
                "kept_young": report.kept_young,
                "temp_removed": report.temp_removed,
                "dry_run": dry_run,
            }
        )
        return
    for fp in report.removed:
        click.echo(fp)
    verb = "would remove" if dry_run else "removed"
    age = grace.strip() if grace.strip()[-1:].isalpha() else f"{grace.strip()} s"
    click.echo(
        f"{verb} {len(report.removed)} objects ({report.freed} bytes) and {report.temp_removed} "
        f"temporary files; kept {report.kept_young} unreferenced objects younger than {age}",
        err=True,
    )


@cli.command(name="export")
@click.argument("fingerprints", nargs=-1, required=True, metavar="FP...")
@click.option(
    "-o", "--output", required=True, metavar="BUNDLE", help="Bundle file to write ('-' for stdout)."
)
@click.pass_context
def export_command(ctx: click.Context, fingerprints: tuple[str, ...], output: str) -> None:
    """Write the closure of objects to one bundle file, to import into another store.

    A call travels with its skeleton and its recorded results (with their
    stdout, stderr and directory objects); a blob or tree travels alone.
    """
    from .bundle import export, open_output

    store = open_store(ctx)
    targets = [store.resolve(fp) for fp in fingerprints]
    if output == "-":
        count = export(store, targets, sys.stdout.buffer)
    else:
        stream = open_output(output)  # refuses an existing file, which is never touched
        try:
            with stream:
                count = export(store, targets, stream)
        except BaseException:
            os.unlink(output)  # ours, and incomplete
            raise
    click.echo(f"exported {count} objects", err=True)


@cli.command(name="import")
@click.argument("bundle", metavar="BUNDLE")
@click.pass_context
def import_command(ctx: click.Context, bundle: str) -> None:
    """Verify and add every object of a bundle ('-' for stdin); print their fingerprints.

    Each object is checked against its fingerprint before it is published; a
    corrupt or truncated bundle names the object that failed. Importing the
    same bundle twice is harmless.
    """
    from .bundle import import_bundle

    if bundle != "-" and not os.path.isfile(bundle):
        raise click.BadParameter(f"no such file: {bundle!r}", param_hint="BUNDLE")
    store = open_store(ctx, create=True)
    if bundle == "-":
        imported = import_bundle(store, sys.stdin.buffer)
    else:
        with open(bundle, "rb") as stream:
            imported = import_bundle(store, stream)
    for fp in imported:
        click.echo(fp)
    click.echo(f"imported {len(imported)} objects", err=True)


@cli.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild the metadata index from the objects and labels.

    The index (index.sqlite) only caches what the object, meta and label files
    say; a missing or corrupt index is rebuilt automatically. Run this after a
    writer crashed between publishing an object and indexing it.
    """
    count = open_store(ctx).reindex()
    click.echo(f"indexed {count} objects", err=True)


def main() -> None:
    """Run ``scalems-store`` through click (the console script starts at console.main)."""
    run_main(cli, "scalems-store")


if __name__ == "__main__":
    main()
