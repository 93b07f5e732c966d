"""``scalems-call exec --remote NAME``: a remote store as the cache, as Bazel's remote cache.

For each call named: a successful result the remote records is a hit, and only
its result record (one small object) comes here, never its outputs; the call's
line is printed from it. Otherwise the call's closure (record, code, skeleton,
the calls it takes from and their results and outputs) is pulled, the call
runs here as ``exec`` runs it, and its closure (now with the new result) is
pushed back. What the coordinator pulls and pushes, its store holds: engines'
workers still reach that store as without ``--remote``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from scalems_store.maint.bundle import Entry
from scalems_store.objects import content

if TYPE_CHECKING:
    from scalems_store import FileStore
    from scalems_store.remote.peer import Peer


class Hit(NamedTuple):
    """A result the remote records for a call: served without its outputs."""

    call: str
    result: str
    status: str


def serve_hits(
    store: FileStore, remote_name: str, names: tuple[str, ...], force: bool
) -> tuple[Peer, tuple[str, ...]]:
    """Connect to the remote; print the result of each call it has a hit for (a line on
    stdout, a note on stderr); pull the closures of the others. Return the connection
    and the calls left to run here."""
    import click

    from scalems_store.remote import settings, sync

    remote = settings.find(store.root, remote_name)
    peer = sync.open_peer(remote, create=True)
    try:
        hits, misses = remote_hits(store, peer, list(names), force)
    except BaseException:
        peer.close()
        raise
    for hit in hits:
        click.echo(hit.result)
        click.echo(f"call {hit.call[:12]}: cached on {remote.name}", err=True)
    return peer, tuple(misses)


def remote_hits(
    store: FileStore, peer: Peer, names: list[str], force: bool = False
) -> tuple[list[Hit], list[str]]:
    """Split *names* into remote hits and the calls to run (full fingerprints), the latter
    with their closures pulled here. One exchange with the remote per call asks for its
    closure; a hit then brings only its result record (*force*: no hits)."""
    from scalems_store.remote import sync

    hits: list[Hit] = []
    misses: list[str] = []
    for name in names:
        closure = peer.closure([name], True)  # with labels: says if *name* is one
        call = _named(closure.entries, closure.labels, name)
        results = next((r.values for r in closure.refs if r.key == call), [])
        hit = None if force else _first_success(store, peer, results, closure.entries)
        if hit is not None:
            hits.append(Hit(call, *hit))
            continue
        plan = sync.plan_pull(store, peer, [call], False)
        sync.pull(store, peer, plan)
        misses.append(call)
    return hits, misses


def _named(entries: list[Entry], labels: dict[str, str], name: str) -> str:
    """The call *name* (a label, fingerprint or prefix) names on the remote: the
    call of its closure it labels or begins."""
    from scalems_call.identity.errors import InvalidCall

    text = name.removeprefix("blake3:").lower()
    found = [
        e
        for e in entries
        if e.fingerprint == labels.get(name)
        or (name not in labels and e.fingerprint.startswith(text))
    ]
    if len(found) != 1 or found[0].kind != content.CALL:
        what = found[0].kind if len(found) == 1 else "not one object"
        raise InvalidCall(f"{name} is not a call on the remote ({what})")
    return found[0].fingerprint


def _first_success(
    store: FileStore, peer: Peer, results: list[str], entries: list[Entry]
) -> tuple[str, str] | None:
    """The newest result that succeeded, ``(fingerprint, status)``: its record is brought
    here (verified) to read its status; its outputs are not."""
    kinds = {e.fingerprint: e for e in entries}
    for fp in results:
        if fp not in store:
            peer.receive(store, [kinds.get(fp) or Entry(fp, content.RESULT, ())], None)
        record = content.decode(store.read_bytes(fp), content.RESULT)
        if record.get("status") == "success":
            return fp, "success"
    return None


def push_back(store: FileStore, peer: Peer, calls: list[str]) -> None:
    """Push the closures of *calls* (with the results just recorded) to the remote."""
    from scalems_store.remote import sync

    sync.push(store, peer, sync.plan_push(store, peer, calls, False))
