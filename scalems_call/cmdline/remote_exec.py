"""``scalems-call exec --remote NAME``: a remote store as the cache, as Bazel's remote cache.

One exchange asks the remote for the closure of every call named. A call whose
newest result there succeeded, signed by a key this store trusts, is a hit:
only its result record (one small object) comes here, never its outputs, and
its line is printed from it (:func:`scalems_call.execution.remote.remote_hits`).

The others run one of two ways:

- here (``exec`` without an engine of workers): their closures (record, code,
  skeleton, the calls they take from with their results and outputs) are pulled
  into this store, they run here, and their closures, now with the new results,
  are pushed back (:func:`push_back`);
- on workers (``--jobs N``, ``--dask``, ``--parsl-config``): only the call records
  of the graph come here (to plan it), and the hits of the calls below are found
  on the remote too; each call to run goes to a worker, which fetches what it
  needs from the remote into a store of its own and pushes the result back
  (:mod:`scalems_call.execution.remote`). This store never holds their outputs:
  ``scalems-store pull`` brings them, and ``scalems-store get`` or
  ``scalems-call result -o`` fetch what they need of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scalems_store.core.errors import StoreError
from scalems_store.maint.bundle import Entry
from scalems_store.objects import content

if TYPE_CHECKING:
    from scalems_call.execution.remote import Where
    from scalems_store import FileStore
    from scalems_store.remote.peer import Peer


@dataclass
class Session:
    """An ``exec --remote``: the connection, and what is left to run."""

    peer: Peer
    where: Where
    misses: tuple[str, ...]
    """The calls named that were no hit (full fingerprints)."""
    hits: list[tuple[str, str]] = field(default_factory=list)
    """``(call, result)`` of each call named (in order) that was a hit."""
    served: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    """On workers: the hits on the remote of the calls below those named."""


def serve_hits(
    store: FileStore, remote_name: str, names: tuple[str, ...], force: bool, on_workers: bool
) -> Session:
    """Connect to the remote; print the result of each call it has a hit for (a line on
    stdout, a note on stderr); make ready what the others need here (their closures, or,
    *on_workers*, only their graphs' call records)."""
    import click

    from scalems_call.execution import remote as remote_calls
    from scalems_store.core.errors import ObjectNotFound
    from scalems_store.remote import settings, sync

    remote = settings.find(store.root, remote_name)
    peer = sync.open_peer(remote, create=True)
    try:
        try:
            session = _prepare(store, peer, list(names), force, on_workers)
        except ObjectNotFound as exc:  # a call packed here, not sent yet: send it, ask again
            sent = _send(store, peer, list(names), exc)
            peer.close()  # a fresh look: a bucket's listing is kept by its connection
            peer = sync.open_peer(remote, create=True)
            session = _prepare(store, peer, sent, force, on_workers)
        session.where = remote_calls.where_for(store, remote)
    except BaseException:
        peer.close()
        raise
    for call, result in session.hits:
        click.echo(result)
        click.echo(f"call {call[:12]}: cached on {remote.name}", err=True)
    return session


def _prepare(
    store: FileStore, peer: Peer, names: list[str], force: bool, on_workers: bool
) -> Session:
    from scalems_call.execution import cache
    from scalems_call.execution.remote import remote_hits
    from scalems_store.remote import lookup, sync

    # with labels: says if a name is one; with the named calls' result records (over SSH)
    closure = lookup.closure_with_records(store, peer, list(dict.fromkeys(names)), True)
    calls = {name: _named(closure.entries, closure.labels, name) for name in names}
    hits = {} if force else remote_hits(store, peer, closure, list(dict.fromkeys(calls.values())))
    misses = tuple(dict.fromkeys(c for c in calls.values() if c not in hits))
    session = Session(peer, None, misses)  # type: ignore[arg-type]  # where: set by the caller
    session.hits = [(calls[n], hits[calls[n]]) for n in names if calls[n] in hits]
    if not misses:
        return session
    if not on_workers:
        sync.pull(store, peer, sync.plan_pull(store, peer, list(misses), False))
        return session
    graph = [e for e in closure.entries if e.kind == content.CALL]
    absent = [e for e in graph if e.fingerprint not in store]
    if absent:
        peer.receive(store, absent, None)
    below = [e.fingerprint for e in graph if e.fingerprint not in misses]
    found = {} if not below else remote_hits(store, peer, closure, below)
    session.served.update({c: (fp, cache.load_result(store, fp)) for c, fp in found.items()})
    # a call served here that the remote has no hit for: its result goes there, so that the
    # workers running the calls that take from it find its outputs
    known: dict[str, bool] = {}
    here = [
        e.fingerprint
        for e in graph
        if e.fingerprint not in found
        and not (force and e.fingerprint in misses)
        and cache.hit(store, e.fingerprint, known) is not None
    ]
    if here:
        import click

        plan = sync.plan_push(store, peer, here, False)
        sync.push(store, peer, plan)
        click.echo(plan.summary("sent", f"to {peer.where}") + " (results found here)", err=True)
    return session


def _send(store: FileStore, peer: Peer, names: list[str], failure: StoreError) -> list[str]:
    """Send the closures of the calls *names* name here that the remote lacks (a line on
    stderr says so); return their full fingerprints.

    Raises:
        ObjectNotFound: a name is neither on the remote nor here (the remote's error).
    """
    import click

    from scalems_call.execution import cache
    from scalems_store.remote import sync

    try:
        calls = [cache.resolve_call(store, name) for name in names]
    except StoreError:
        raise failure from None
    there = peer.have(list(dict.fromkeys(calls)))
    missing = [fp for fp in dict.fromkeys(calls) if fp not in there]
    plan = sync.plan_push(store, peer, missing, False)
    sync.push(store, peer, plan)
    click.echo(plan.summary("sent", f"to {peer.where}"), err=True)
    return calls


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


def stop_file(session: Session) -> str:
    """The stop file of a run on workers with stores of their own: in the remote store's
    ``tmp/`` for a path remote (every worker sees it), else in this machine's temporary
    directory (seen by workers on this machine only: elsewhere a stopped run's calls end
    when the engine shuts down, as Parsl cancelling its blocks does)."""
    import tempfile

    remote = session.where.remote
    where = os.path.join(remote.url, "tmp") if remote.scheme == "file" else tempfile.gettempdir()
    return os.path.join(where, f"scalems-stop-{os.getpid()}-{os.urandom(6).hex()}")


def push_back(store: FileStore, peer: Peer, calls: list[str]) -> None:
    """Push the closures of *calls* (with the results just recorded) to the remote."""
    from scalems_store.remote import sync

    sync.push(store, peer, sync.plan_push(store, peer, calls, False))
