"""``scalems-store remote``, ``push``, ``pull``, ``fetch``: closures to and from other stores."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from scalems_store.cli.shared import ErrorGroup, echo_json, open_store, progress_bar
from scalems_store.core.humane import size


@click.group(name="remote", cls=ErrorGroup)
def remote_group() -> None:
    """Name the other stores that push, pull and fetch reach (kept in <store>/config)."""


@remote_group.command(name="add")
@click.argument("name")
@click.argument("url")
@click.option("--default", "make_default", is_flag=True, help="Make it the default remote.")
@click.option("--endpoint-url", metavar="URL", help="S3: the endpoint of an S3-compatible server.")
@click.option(
    "--command",
    metavar="CMD",
    help="SSH: how to run scalems-store on the far side (default: scalems-store).",
)
@click.pass_context
def remote_add(
    ctx: click.Context,
    name: str,
    url: str,
    make_default: bool,
    endpoint_url: str | None,
    command: str | None,
) -> None:
    """Add remote NAME at URL; the first remote added is the default.

    URL is a path (or file:// URL) of another store, ssh://[user@]host[:port]/path,
    s3://bucket/prefix or http(s)://... (read-only).
    """
    from scalems_store.remote import settings

    store = open_store(ctx, create=True)
    remote = settings.add(
        store.root,
        name,
        url,
        default=make_default,
        endpoint_url=endpoint_url,
        command=command,
    )
    default = settings.default_name(store.root) == name
    click.echo(f"added remote {name} -> {remote.url}" + (" (default)" if default else ""), err=True)


@remote_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def remote_list(ctx: click.Context, as_json: bool) -> None:
    """List the remotes: name and URL, the default marked with *."""
    from scalems_store.remote import settings

    store = open_store(ctx)
    found = settings.remotes(store.root)
    default = settings.default_name(store.root)
    if as_json:
        echo_json(
            [
                {
                    **{k: v for k, v in r._asdict().items() if v is not None},
                    "default": r.name == default,
                }
                for r in found
            ]
        )
        return
    for remote in found:
        mark = "*" if remote.name == default else " "
        click.echo(f"{mark} {remote.name}\t{remote.url}")


@remote_group.command(name="remove")
@click.argument("name")
@click.pass_context
def remote_remove(ctx: click.Context, name: str) -> None:
    """Forget remote NAME (nothing on it is touched)."""
    from scalems_store.remote import settings

    settings.remove(open_store(ctx).root, name)
    click.echo(f"removed remote {name}", err=True)


remote_option = click.option(
    "--remote", "-r", "remote_name", metavar="NAME", help="The remote (default: the default one)."
)
labels_option = click.option(
    "--labels", is_flag=True, help="Labels named (or, with no names, all labels) travel too."
)


@click.command()
@click.argument("names", nargs=-1, metavar="[FP|LABEL...]")
@remote_option
@labels_option
@click.option("--dry-run", is_flag=True, help="Only say what would be sent.")
@click.pass_context
def push(
    ctx: click.Context, names: tuple[str, ...], remote_name: str | None, labels: bool, dry_run: bool
) -> None:
    """Send closures to a remote: each object with all it references, and for a call
    its code, skeleton, upstream calls and recorded results.

    With no names, everything that labels and recorded results reach. Only what
    the remote lacks is sent (asked in one exchange), in packs it verifies before
    it publishes them; refs are updated last. An interrupted push, run again,
    sends only what did not arrive.
    """
    from scalems_store.remote import settings, sync

    store = open_store(ctx)
    remote = settings.find(store.root, remote_name)
    with sync.open_peer(remote, create=not dry_run) as peer:
        plan = sync.plan_push(store, peer, list(names) or None, labels)
        if not dry_run:
            with _bar(f"pushing to {remote.name}", plan.bytes) as bar:
                sync.push(store, peer, plan, bar)
    click.echo(plan.summary("would send" if dry_run else "sent", f"to {remote.name}"), err=True)


@click.command()
@click.argument("names", nargs=-1, required=True, metavar="FP|LABEL...")
@remote_option
@labels_option
@click.pass_context
def pull(ctx: click.Context, names: tuple[str, ...], remote_name: str | None, labels: bool) -> None:
    """Bring closures from a remote, with their refs (a call's recorded results).

    Names are resolved on the remote. Every object is verified before it is
    published here; refs are updated last, once everything they name is here.
    """
    _bring(ctx, names, remote_name, labels, refs=True)


@click.command()
@click.argument("names", nargs=-1, required=True, metavar="FP|LABEL...")
@remote_option
@click.pass_context
def fetch(ctx: click.Context, names: tuple[str, ...], remote_name: str | None) -> None:
    """Bring the objects of closures from a remote, but not their refs or labels."""
    _bring(ctx, names, remote_name, False, refs=False)


def _bring(
    ctx: click.Context, names: tuple[str, ...], remote_name: str | None, labels: bool, *, refs: bool
) -> None:
    from scalems_store.remote import settings, sync

    store = open_store(ctx, create=True)
    remote = settings.find(store.root, remote_name)
    verb = "pulling" if refs else "fetching"
    with sync.open_peer(remote) as peer:
        plan = sync.plan_pull(store, peer, list(names), labels)
        with _bar(f"{verb} from {remote.name}", plan.bytes) as bar:
            sync.pull(store, peer, plan, bar, refs=refs)
    click.echo(plan.summary("received", f"from {remote.name}"), err=True)


@contextmanager
def _bar(label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar in bytes (with the rate and time left, on a terminal), advanced by
    the increments a transfer reports."""
    with progress_bar(f"{label} ({size(total)})", total) as advance:
        if advance is None:
            yield None
            return
        done = 0

        def step(count: int) -> None:
            nonlocal done
            done += count
            advance(done)

        yield step


@click.command(hidden=True)
@click.option("--stdio", is_flag=True, required=True, help="Speak the framed protocol on stdio.")
@click.option("--create", is_flag=True, help="Create the store if there is none.")
@click.argument("path")
def serve(stdio: bool, create: bool, path: str) -> None:
    """Serve the store at PATH to a push, pull or fetch over SSH (run by the client)."""
    from scalems_store.remote.serve import serve as serve_stdio

    serve_stdio(path, create, sys.stdin.buffer, sys.stdout.buffer)
