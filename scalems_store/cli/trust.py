"""``scalems-store key`` and ``scalems-store trust``: your public key, the keys a store trusts."""

from __future__ import annotations

import click

from scalems_store.cli.shared import ErrorGroup, echo_json, open_store


@click.command(name="key")
def key_command() -> None:
    """Print your public key (ed25519:<hex>), making your key pair on first use.

    The key pair lives in $XDG_CONFIG_HOME/scalems (~/.config/scalems), outside
    every store; the private key is readable by you alone. Give the public key
    to those whose stores should trust the results you run:
    'scalems-store trust add KEY NAME' on their side.
    """
    from scalems_store.trust import keys

    keys.private_key()  # made on first use
    mine = keys.own_public()
    assert mine is not None  # written with the private key
    click.echo(keys.key_text(mine))


@click.group(name="trust", cls=ErrorGroup)
def trust_group() -> None:
    """The keys whose signed results this store serves (yours is always trusted).

    A result is served as a cache hit, decoded, or given to a call as input only
    when a trusted key signed it. Others (imported from people you do not trust,
    or recorded before signing existed) are data: shown, never unpickled.
    """


@trust_group.command(name="add")
@click.argument("key", metavar="KEY")
@click.argument("name", required=False, default="")
@click.pass_context
def trust_add(ctx: click.Context, key: str, name: str) -> None:
    """Trust the results KEY (ed25519:<hex>, from 'scalems-store key') signs; NAME says whose."""
    from scalems_store.trust import keys, policy

    added = policy.add(open_store(ctx), key, name)
    click.echo(f"trusted {keys.key_text(added)}{f' ({name})' if name else ''}", err=True)


@trust_group.command(name="remove")
@click.argument("key", metavar="KEY|NAME")
@click.pass_context
def trust_remove(ctx: click.Context, key: str) -> None:
    """Stop trusting a key (given as a key, or by the name it was added with)."""
    from scalems_store.trust import keys, policy

    for removed in policy.remove(open_store(ctx), key):
        click.echo(f"no longer trusted: {keys.key_text(removed)}", err=True)


@trust_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def trust_list(ctx: click.Context, as_json: bool) -> None:
    """List the trusted keys: yours first, then those the store's settings name."""
    from scalems_store.trust import keys, policy

    store = open_store(ctx)
    found = [
        {"key": keys.key_text(item.key), "name": item.name, "added": item.added or None}
        for item in policy.entries(store)
    ]
    if as_json:
        echo_json({"keys": found, "unsigned": policy.of(store).unsigned()})
        return
    for item in found:
        click.echo(f"{item['key']}  {item['name']}")
    if policy.of(store).unsigned():
        click.echo("(and every unsigned or foreign result: trust.unsigned is set)", err=True)


@trust_group.command(name="unsigned")
@click.argument("value", type=click.Choice(["on", "off"]))
@click.pass_context
def trust_unsigned(ctx: click.Context, value: str) -> None:
    """Serve results no trusted key signed, as before signing existed (on), or not (off)."""
    from scalems_store.trust import policy

    policy.set_unsigned(open_store(ctx), value == "on")


@trust_group.command(name="sign-existing")
@click.option("--dry-run", is_flag=True, help="Only list the results it would sign.")
@click.pass_context
def trust_sign_existing(ctx: click.Context, dry_run: bool) -> None:
    """Sign, with your key, the results recorded here before signing existed.

    It signs each result a call's record names that has nothing beside it: no
    signature, and no mark that it came by import (imports since signing
    existed leave one). Results imported with an older version have no such
    mark: run it only on a store whose old results you vouch for. Prints each
    result it signs.
    """
    from scalems_store.trust import policy

    store = open_store(ctx)
    count = 0
    for result_fp, call_fp in list(policy.unvouched(store)):
        if not dry_run:
            policy.sign(store, result_fp, call_fp)
        click.echo(result_fp)
        count += 1
    verb = "would sign" if dry_run else "signed"
    click.echo(f"{verb} {count} results", err=True)
