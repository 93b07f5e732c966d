"""push, pull and fetch: closures moved between a store and a peer, over any transport.

Each is planned first, in batches (the closure at the source, then one
negotiation: which of its objects the destination has), so that a progress bar
can be sized, then carried out: the missing objects in packs, dependencies
first, each pack verified and published whole at the destination; then the refs
and labels, last, only once every object they name is there. Run again after an
interruption, a transfer sends only what did not arrive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from scalems_store.core.errors import BadSetting
from scalems_store.maint.bundle import Entry
from scalems_store.remote.peer import Closure, LocalPeer, Peer
from scalems_store.remote.peer import closure as local_closure
from scalems_store.remote.settings import Remote
from scalems_store.store.refs import Signature

if TYPE_CHECKING:
    from scalems_store.store.filestore import FileStore

Progress = Callable[[int], None]


class Plan(NamedTuple):
    """A transfer worked out: the closure, and what of it the destination lacks."""

    closure: Closure
    missing: list[Entry]

    @property
    def bytes(self) -> int:
        """The bytes of the objects to move."""
        sizes = self.closure.sizes
        return sum(sizes.get(entry.fingerprint, 0) for entry in self.missing)

    def summary(self, verb: str, where: str) -> str:
        """One line saying what the transfer moved (or would move)."""
        from scalems_store.core.humane import size

        closure = self.closure
        had = len(closure.entries) - len(self.missing)
        line = f"{verb} {_count(len(self.missing), 'object')} ({size(self.bytes)}) {where}"
        if had:
            line += f"; {had} there already"
        if closure.refs:
            line += f"; {_count(len(closure.refs), 'ref')}"
        if closure.labels:
            line += f"; labels {', '.join(sorted(closure.labels))}"
        return line


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def open_peer(remote: Remote, *, create: bool = False) -> Peer:
    """Connect to *remote*; *create* makes a store where a path or SSH remote has none.

    Raises:
        StoreNotFound: a path remote has no store (and *create* is False).
        RemoteError: the remote cannot be reached.
        BadSetting: its URL's scheme has no transport here.
    """
    if remote.scheme == "file":
        from scalems_store.store.filestore import FileStore

        return LocalPeer(FileStore(remote.url, create=create))
    if remote.scheme == "ssh":
        from scalems_store.remote.ssh import SshPeer

        return SshPeer(remote, create=create)
    if remote.scheme == "s3":
        from scalems_store.remote.s3 import S3Peer

        return S3Peer(remote, create=create)
    if remote.scheme in ("http", "https"):
        if create:
            raise BadSetting(
                f"remote {remote.name!r} is read-only (HTTP): push to a path, SSH or S3 remote"
            )
        from scalems_store.remote.http import open_http

        return open_http(remote)
    raise BadSetting(f"remote {remote.name!r}: no transport for {remote.scheme}:// yet")


def plan_push(store: FileStore, peer: Peer, names: list[str] | None, labels: bool) -> Plan:
    """What pushing *names* (None: everything labels and refs reach) would send.

    With no names, the refs and labels the peer holds already (at least these values,
    the same object) are not walked at all: each is set there only once its closure
    arrived, and every other ref is a root of its own here, so what they reach that
    the peer lacks is found from it. A push with nothing new is then one question.
    """
    closure = _unsettled_closure(store, peer, labels) if names is None else None
    if closure is None:
        closure = local_closure(store, names, labels)
    wanted = [entry.fingerprint for entry in closure.entries]
    there = peer.have(wanted) if wanted else set()
    return Plan(closure, [e for e in closure.entries if e.fingerprint not in there])


def _unsettled_closure(store: FileStore, peer: Peer, labels: bool) -> Closure:
    from scalems_store.maint import bundle
    from scalems_store.remote.peer import size_of

    known = store.labels()
    refs = list(store.iter_refs())
    same_refs, same_labels = peer.settled(refs, known)
    targets = [fp for name, fp in known.items() if name not in same_labels]
    targets += [ref.key for i, ref in enumerate(refs) if i not in same_refs]
    entries, walked = bundle.closure(store, targets) if targets else ([], [])
    keep = {(ref.namespace, ref.key) for i, ref in enumerate(refs) if i not in same_refs}
    walked = [ref for ref in walked if (ref.namespace, ref.key) in keep]
    travel = {n: fp for n, fp in known.items() if n not in same_labels} if labels else {}
    sizes = {e.fingerprint: size_of(store, e.fingerprint) for e in entries}
    return Closure(entries, walked, sizes, travel)


def push(store: FileStore, peer: Peer, plan: Plan, progress: Progress | None = None) -> None:
    """Send what *plan* says is missing, in packs, then the refs and labels (with the
    signatures of the results the refs name)."""
    peer.send_all(store, plan.missing, plan.closure.sizes, progress)
    if plan.closure.refs or plan.closure.labels:
        peer.update(plan.closure.refs, plan.closure.labels, _signatures(store, plan.closure))


def _signatures(store: FileStore, closure: Closure) -> dict[str, list[Signature]]:
    """The signatures recorded here of the results *closure*'s refs of calls name."""
    from scalems_store.objects import content

    found = {}
    for ref in closure.refs:
        if ref.namespace == content.CALLS:
            for fp in ref.values:
                sigs = store.signatures(fp)
                if sigs:
                    found[fp] = sigs
    return found


def plan_pull(store: FileStore, peer: Peer, names: list[str], labels: bool) -> Plan:
    """What pulling (or fetching) *names* from *peer* would bring."""
    from scalems_store.remote.peer import have

    closure = peer.closure(names, labels)
    here = have(store, [entry.fingerprint for entry in closure.entries])
    return Plan(closure, [e for e in closure.entries if e.fingerprint not in here])


def pull(
    store: FileStore, peer: Peer, plan: Plan, progress: Progress | None = None, *, refs: bool = True
) -> None:
    """Bring what *plan* says is missing, in packs; then, with *refs*, the refs and labels
    (``fetch`` is a pull without them)."""
    from scalems_store.remote.peer import apply

    peer.receive_all(store, plan.missing, plan.closure.sizes, progress)
    if refs:
        apply(store, plan.closure.refs, plan.closure.labels, plan.closure.signatures)
