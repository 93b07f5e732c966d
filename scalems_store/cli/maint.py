"""``scalems-store`` commands that look after a store: verify, gc, export, import, reindex."""

from __future__ import annotations

import os
import sys

import click

from scalems_store.cli.shared import echo_json, open_store, parse_duration, progress_bar


@click.command()
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
    from scalems_store.maint.audit import verify as verify_store

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


@click.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be deleted.")
@click.option(
    "--grace",
    default="14d",
    show_default=True,
    metavar="DURATION",
    help="Keep anything younger (30s, 10m, 2h, 7d).",
)
@click.option(
    "--keep-results",
    type=click.IntRange(min=1),
    metavar="N",
    help="First keep only the newest N recorded results of each call.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@click.pass_context
def gc(
    ctx: click.Context, dry_run: bool, grace: str, keep_results: int | None, as_json: bool
) -> None:
    """Delete objects that no label or ref reaches, and stale temporary files.

    With --keep-results N, each call keeps only its newest N recorded results;
    the objects of the others go unless a label, a kept result (one that
    consumed them) or a young object still reaches them.
    """
    from scalems_store.maint.collect import gc as collect

    seconds = parse_duration(grace)
    report = collect(open_store(ctx), grace=seconds, dry_run=dry_run, keep_results=keep_results)
    if as_json:
        echo_json(
            {
                "removed": report.removed,
                "freed": report.freed,
                "kept_young": report.kept_young,
                "temp_removed": report.temp_removed,
                "kept_others": report.kept_others,
                "forgotten": [d._asdict() for d in report.forgotten],
                "dry_run": dry_run,
            }
        )
        return
    for fp in report.removed:
        click.echo(fp)
    from scalems_store.core.humane import size

    verb = "would remove" if dry_run else "removed"
    if keep_results is not None:
        calls = len({d.call for d in report.forgotten})
        click.echo(
            f"{'would forget' if dry_run else 'forgot'} {len(report.forgotten)} older results "
            f"of {calls} calls",
            err=True,
        )
    age = grace.strip() if grace.strip()[-1:].isalpha() else f"{grace.strip()} s"
    click.echo(
        f"{verb} {len(report.removed)} objects ({size(report.freed)}) and {report.temp_removed} "
        f"temporary files; kept {report.kept_young} unreferenced objects younger than {age}"
        + (
            f" and {report.kept_others} that other members of this shared store own"
            if report.kept_others
            else ""
        ),
        err=True,
    )


@click.command(name="export")
@click.argument("fingerprints", nargs=-1, required=True, metavar="FP...")
@click.option(
    "-o", "--output", required=True, metavar="BUNDLE", help="Bundle file to write ('-' for stdout)."
)
@click.option("--labels", is_flag=True, help="Carry the labels that name objects of the bundle.")
@click.pass_context
def export_command(
    ctx: click.Context, fingerprints: tuple[str, ...], output: str, labels: bool
) -> None:
    """Write the closure of objects to one bundle file, to import into another store.

    A call travels with its skeleton and its recorded results (with their
    stdout, stderr and directory objects); a blob or tree travels alone. With
    --labels, every label naming an object of the bundle travels too.
    """
    from scalems_store.maint.bundle import export, open_output

    store = open_store(ctx)
    targets = [store.resolve(fp) for fp in fingerprints]
    if output == "-":
        count = export(store, targets, sys.stdout.buffer, labels=labels)
    else:
        stream = open_output(output)  # refuses an existing file, which is never touched
        try:
            with stream:
                count = export(store, targets, stream, labels=labels)
        except BaseException:
            os.unlink(output)  # ours, and incomplete
            raise
    click.echo(f"exported {count} objects", err=True)


@click.command(name="import")
@click.argument("bundle", metavar="BUNDLE")
@click.option("--no-labels", is_flag=True, help="Do not recreate the bundle's labels.")
@click.option("-v", "--verbose", is_flag=True, help="Print each object's fingerprint.")
@click.pass_context
def import_command(ctx: click.Context, bundle: str, no_labels: bool, verbose: bool) -> None:
    """Verify and add every object of a bundle ('-' for stdin); print a one-line summary.

    Each object is checked against its fingerprint before it is published; a
    corrupt or truncated bundle names the object that failed. The bundle's
    labels are recreated (unless --no-labels); a label this store already has
    for another object is kept, and said so. Importing the same bundle twice
    is harmless.
    """
    from scalems_store.maint.bundle import import_objects

    if bundle != "-" and not os.path.isfile(bundle):
        what = "not a file" if os.path.exists(bundle) else "no such file"
        raise click.BadParameter(f"{what}: {bundle!r}", param_hint="BUNDLE")
    store = open_store(ctx, create=True)
    if bundle == "-":
        done = import_objects(store, sys.stdin.buffer, labels=not no_labels)
    else:
        with open(bundle, "rb") as stream:
            done = import_objects(store, stream, labels=not no_labels)
    if verbose and done.objects:
        click.echo("\n".join(done.objects))  # one write: a bundle may hold a million objects
    for name, fp in sorted(done.kept.items()):
        click.echo(
            f"label {name!r} kept: it names another object here (the bundle's: {fp})", err=True
        )
    labelled = f", {len(done.labels)} labels" if done.labels else ""
    click.echo(f"imported {len(done.objects)} objects ({done.new} new){labelled}", err=True)


@click.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild the metadata index from the objects and labels.

    The index (index.sqlite) only caches what the object, meta and label files
    say, and the files inside trees (what 'scalems-call why' of a file's
    fingerprint reads); a missing or corrupt index is rebuilt automatically. Run this after a
    writer crashed between publishing an object and indexing it.
    """
    from scalems_store.query.treefiles import relist

    store = open_store(ctx)
    count = store.reindex()
    trees = relist(store)
    listed = "" if trees is None else f" and the files of {trees} trees"
    click.echo(f"indexed {count} objects{listed}", err=True)
