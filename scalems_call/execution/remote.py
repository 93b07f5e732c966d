"""A call run against a remote, from a store of its own: what an engine's worker does
under ``exec --remote``.

The worker has no client settings and never sees the client's store: each call
comes with a :class:`Where` (the remote's URL and settings, the keys the client
trusts). The worker opens its own store (:func:`worker_root`: node-local
scratch), asks the remote for the call's closure (one exchange), and

- serves a result the remote records, succeeded and signed by a trusted key, as a
  hit: only its record comes here (:func:`remote_hit`), never its outputs;
- otherwise fetches what the call needs (:func:`needed`: its record, code,
  skeleton, and the calls it takes from with their results and outputs; not its
  own older results), runs it as ``exec`` does, and pushes the result's closure
  (signed, with its signature) back to the remote.

Imports: :mod:`scalems_store` (its remote folder), :mod:`.execute`, :mod:`.cache`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from scalems_call.execution import cache
from scalems_call.identity.errors import InvalidCall
from scalems_store.core.errors import StoreError
from scalems_store.maint.bundle import Entry
from scalems_store.objects import content
from scalems_store.store.refs import Ref

if TYPE_CHECKING:
    from scalems_store import FileStore
    from scalems_store.remote.peer import Closure, Peer
    from scalems_store.remote.settings import Remote

WORKER_STORE_ENV = "SCALEMS_STORE"
"""A worker's store: ``$SCALEMS_STORE`` as the worker sees it (node-local scratch), unless
it names the client's store."""


class Where(NamedTuple):
    """What a worker needs to run calls against a remote (strings only: it pickles)."""

    remote: Remote
    client: str
    """The client's store path: never opened here, only compared, so that a worker that
    inherited ``$SCALEMS_STORE`` from the client does not use the client's store."""
    trusted: tuple[str, ...]
    """The public keys (hex) whose results the client serves: its own, then those it lists."""
    unsigned: bool
    """The client serves unsigned results too (``--trust-unsigned``)."""


class Fetched(NamedTuple):
    """What one call gave on a worker: its result, whether it was served (a hit) rather
    than run, and the result record's bytes (so the client needs no request for it)."""

    result: str
    cached: bool
    record: bytes


def where_for(store: FileStore, remote: Remote) -> Where:
    """The :class:`Where` a client with *store* sends its workers for *remote*."""
    from scalems_store.trust import keys, policy

    trust = policy.of(store)
    mine = keys.own_public()
    trusted = tuple(dict.fromkeys([*([mine] if mine else []), *sorted(trust.listed())]))
    return Where(remote, os.path.abspath(store.root), trusted, trust.unsigned())


def worker_root(where: Where) -> str:
    """Where this worker's store is: ``$SCALEMS_STORE`` (say ``/local/scratch/$USER/store``),
    unless unset or naming the client's store; else ``<tmp>/scalems-<uid>/store`` under the
    node's temporary directory (``$TMPDIR``, else ``/tmp``), one store for all the
    workers of a user on a node (they share what they fetch; stores take many writers)."""
    given = os.environ.get(WORKER_STORE_ENV)
    if given and os.path.abspath(os.path.expanduser(given)) != where.client:
        return os.path.abspath(os.path.expanduser(given))
    return os.path.join(tempfile.gettempdir(), f"scalems-{os.getuid()}", "store")


def run_against(
    where: Where,
    call_fp: str,
    force: bool = False,
    timeout: float | None = None,
    stop: str | None = None,
) -> Fetched:
    """Serve *call_fp* from the remote, or fetch what it needs, run it in this worker's own
    store and push its result back. What engines ship to workers under ``exec --remote``
    (module level, taking only plain values: it pickles by reference).

    Raises:
        RemoteError: the remote cannot be reached, or lacks the call.
        Stopped, LaunchError: as :func:`scalems_call.execution.execute.execute`.
    """
    from scalems_call.execution.execute import execute
    from scalems_store.remote import lookup, sync

    store = _worker_store(where)
    with _connected(where.remote) as peer:
        closure = lookup.closure_with_records(store, peer, [call_fp], False)
        if not force and (hit := remote_hit(store, peer, closure, call_fp)) is not None:
            return Fetched(hit, True, store.read_bytes(hit))
        entries, refs = needed(closure, call_fp)
        plan = sync.Plan(closure._replace(entries=entries, refs=refs, labels={}), [])
        plan = plan._replace(missing=[e for e in entries if e.fingerprint not in store])
        sync.pull(store, peer, plan)
        done = execute(store, call_fp, force=force, timeout=timeout, stop=stop)
        sync.push(store, peer, sync.plan_push(store, peer, [call_fp], False))
        return Fetched(done.result, done.cached, store.read_bytes(done.result))


def needed(closure: Closure, call: str) -> tuple[list[Entry], list[Ref]]:
    """What running *call* needs of its *closure*: the call record and all it references
    (code, skeleton, the calls it takes from), and the results of those calls with
    everything they reference; not the call's own results. Returns the entries (in the
    closure's order, each after what it references) and the refs of the calls taken from."""
    entries = {e.fingerprint: e for e in closure.entries}
    results = {ref.key: ref.values for ref in closure.refs if ref.namespace == content.CALLS}
    wanted: set[str] = set()
    pending = [call]
    while pending:
        fp = pending.pop()
        if fp in wanted or fp not in entries:
            continue
        wanted.add(fp)
        pending.extend(entries[fp].refs)
        if fp != call:  # a call taken from: its results are its outputs
            pending.extend(results.get(fp, ()))
    refs = [
        ref
        for ref in closure.refs
        if ref.key in wanted and ref.key != call and ref.namespace == content.CALLS
    ]
    return [e for e in closure.entries if e.fingerprint in wanted], refs


def remote_hit(store: FileStore, peer: Peer, closure: Closure, call: str) -> str | None:
    """The result the remote serves for *call*: its newest result that a key *store* trusts
    signed (only such a result counts, as locally), if that one succeeded and consumed
    what the calls it takes from record now on the remote (their newest result). Only
    result records come here (verified, with their signatures), never outputs."""
    return remote_hits(store, peer, closure, [call]).get(call)


def remote_hits(store: FileStore, peer: Peer, closure: Closure, calls: list[str]) -> dict[str, str]:
    """:func:`remote_hit` of each of *calls* (all in *closure*), with the newest result
    records of them all brought in one exchange: ``{call: result}`` for the hits."""
    recorded = {ref.key: ref.values for ref in closure.refs if ref.namespace == content.CALLS}
    kinds = {e.fingerprint: e for e in closure.entries}
    wanted = [fp for call in calls for fp in recorded.get(call, ())]
    absent = [kinds.get(fp) or Entry(fp, content.RESULT, ()) for fp in dict.fromkeys(wanted)]
    # a record here without a signature (kept as an outcome) comes again, with its signatures
    absent = [
        e for e in absent if e.fingerprint not in store or not store.signatures(e.fingerprint)
    ]
    if absent:
        peer.receive(store, absent, None)
    hits: dict[str, str] = {}
    for call in calls:
        found = _trusted_newest(store, call, recorded.get(call, []))
        if found is not None and _current(found[1], recorded):
            hits[call] = found[0]
    return hits


def _trusted_newest(
    store: FileStore, call: str, results: list[str]
) -> tuple[str, dict[str, Any]] | None:
    """The first of *results* (newest first) that is a result of *call* a trusted key signed."""
    for fp in results:
        if fp not in store:
            continue
        try:
            record = cache.load_result(store, fp)
        except (InvalidCall, StoreError, OSError):  # a record that does not parse is no hit
            continue
        if record.get("call") == call and cache.served(store, fp, record):
            return fp, record
    return None


def _current(record: dict[str, Any], recorded: dict[str, list[str]]) -> bool:
    """Whether a successful *record* stands: what it consumed is each upstream call's newest
    result on the remote (a rerun upstream makes it stale: the worker decides, with the
    outputs at hand, whether the new output is the same content)."""
    from scalems_store.core import layout

    if record.get("status") != "success":
        return False
    for item in record.get("consumed") or []:
        newest = recorded.get(layout.normalize(item["call"]), [])
        if not newest or layout.to_uri(newest[0]) != item.get("result"):
            return False
    return True


# -- one store and a few connections per worker process ----------------------------------

_lock = threading.Lock()
_stores: dict[str, FileStore] = {}
_idle: dict[Remote, list[Peer]] = {}


def _worker_store(where: Where) -> FileStore:
    """This worker's store (made on first use), trusting what the client trusts."""
    from scalems_store import FileStore

    root = worker_root(where)
    with _lock:
        store = _stores.get(root)
        if store is None or not os.path.isdir(store.root):
            store = _stores[root] = FileStore(root, create=True)
    _trust_as_client(store, where)
    return store


def _trust_as_client(store: FileStore, where: Where) -> None:
    """Make *store* trust the keys the client trusts (and unsigned results if it does)."""
    from scalems_store.trust import keys, policy

    trust = policy.of(store)
    mine = keys.own_public()
    for key in where.trusted:
        if key != mine and key not in trust.listed():
            policy.add(store, key, "client")
    if trust.unsigned() != where.unsigned and not os.environ.get(policy.UNSIGNED_ENV):
        policy.set_unsigned(store, where.unsigned)


@contextlib.contextmanager
def _connected(remote: Remote) -> Iterator[Peer]:
    """A connection to *remote*. Over SSH it is reused by the next call of this process
    when this one ends well (a connection costs a login; the far side reads the store
    afresh for each request); closed when something failed. Other transports connect
    afresh for each call (a bucket's connection keeps the listing it made)."""
    from scalems_store.remote import sync

    reuse = remote.scheme == "ssh"
    with _lock:
        pool = _idle.setdefault(remote, [])
        peer = pool.pop() if pool and reuse else None
    if peer is None:
        peer = sync.open_peer(remote, create=True)
    try:
        yield peer
    except BaseException:
        peer.close()
        raise
    if not reuse:
        peer.close()
        return
    with _lock:
        _idle[remote].append(peer)
