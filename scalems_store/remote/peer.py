"""What every transport offers, and the one that reaches another store on disk.

A :class:`Peer` is the far side of a transfer, seen as six operations, each a
batch: which of these objects do you have (one answer for any number), what is
the closure of these names, take this pack, give me the pack of these objects,
update these refs (last, each only once every object it names is there), and
close. :class:`LocalPeer` does them on a :class:`FileStore` directly; over SSH
the same :class:`LocalPeer` does them on the far side (:mod:`.serve`), so both
sides write as local writes do: staged in ``tmp/``, verified, published by
rename, refs last.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import IO, NamedTuple, TypeVar

from scalems_store.core.errors import InvalidContent, RemoteError, StoreError
from scalems_store.maint import bundle
from scalems_store.maint.bundle import Entry
from scalems_store.objects import content
from scalems_store.remote import packs
from scalems_store.store.filestore import FileStore
from scalems_store.store.refs import Ref, Signature

T = TypeVar("T")

Progress = Callable[[int], None]
"""Called with the number of bytes just moved."""

_LIST_ABOVE = 4096
"""Asked about more objects than this, a store lists ``objects/`` once instead of a stat each."""


class Closure(NamedTuple):
    """What a transfer of some names moves: objects (each after what it references),
    the refs keyed by them, each object's size, the labels that travel, and the
    signatures of its results (where the transport carries them apart from packs)."""

    entries: list[Entry]
    refs: list[Ref]
    sizes: dict[str, int]
    labels: dict[str, str]
    signatures: dict[str, list[Signature]] = {}  # noqa: RUF012 (never changed in place)


class Peer:
    """The far side of a transfer. Every method is one exchange, whatever its size."""

    where: str = "remote"
    """How messages name this peer (a URL or path)."""

    def have(self, fingerprints: list[str]) -> set[str]:
        """Which of *fingerprints* the peer holds."""
        raise NotImplementedError

    def closure(self, names: list[str] | None, labels: bool) -> Closure:
        """The closure of *names* (labels, fingerprints or prefixes, resolved by the
        peer), or of everything its labels and refs reach when *names* is None; with
        *labels*, the labels given by name (or all, for None) travel too.

        Raises:
            ObjectNotFound, AmbiguousPrefix, InvalidFingerprint: a name the peer cannot resolve.
        """
        raise NotImplementedError

    def put(self, write: Callable[[IO[bytes]], object]) -> int:
        """Receive the pack that *write* writes to the stream it is given; the peer
        verifies it whole and publishes it, or nothing. Return its object count."""
        raise NotImplementedError

    def get(self, entries: list[Entry], read: Callable[[IO[bytes]], object]) -> None:
        """Send the pack of *entries* (which the peer holds) to *read*, as a stream."""
        raise NotImplementedError

    def settled(self, refs: list[Ref], labels: dict[str, str]) -> tuple[set[int], set[str]]:
        """Which of *refs* (their positions) the peer holds with at least these values,
        and which of *labels* it has set alike. A ref or label is set only once its
        closure is all there, so what is settled needs no walk. Default: none."""
        return set(), set()

    def send_all(
        self,
        store: FileStore,
        entries: list[Entry],
        sizes: dict[str, int],
        progress: Progress | None,
    ) -> None:
        """Send *entries* of *store* (dependencies first): a pack at a time by default."""
        for pack in packs.split(entries, sizes):
            self.send(store, pack, progress)

    def receive_all(
        self,
        store: FileStore,
        entries: list[Entry],
        sizes: dict[str, int],
        progress: Progress | None,
    ) -> None:
        """Bring *entries* into *store*, a pack at a time by default, each pack verified
        whole before it is published.

        Raises:
            RemoteError: the peer did not send an object of a pack.
        """
        for pack in packs.split(entries, sizes):
            self.receive(store, pack, progress)
            missing = [entry.fingerprint for entry in pack if entry.fingerprint not in store]
            if missing:
                raise RemoteError(
                    f"{self.where} did not send {len(missing)} objects, e.g. {missing[0]}"
                )

    def send(self, store: FileStore, entries: list[Entry], progress: Progress | None) -> None:
        """Send the objects *entries* of *store* (one pack), reporting bytes to *progress*."""
        self.put(lambda out: packs.write(store, entries, out, progress))

    def receive(self, store: FileStore, entries: list[Entry], progress: Progress | None) -> None:
        """Bring the objects *entries* into *store* (one pack), each verified before any
        is published."""
        self.get(entries, lambda stream: packs.receive(store, stream, progress))

    def update(
        self,
        refs: list[Ref],
        labels: dict[str, str],
        signatures: dict[str, list[Signature]] | None = None,
    ) -> None:
        """Merge *refs* into the peer's and set *labels*, once every object they name
        is there (else nothing changes: :func:`apply` says why); keep *signatures*
        beside the results they sign."""
        raise NotImplementedError

    def close(self) -> None:
        """End the exchange."""

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalPeer(Peer):
    """Another store on this machine (a path), or this store seen from the far side."""

    def __init__(self, store: FileStore) -> None:
        self.store = store
        self.where = store.root

    def have(self, fingerprints: list[str]) -> set[str]:
        return have(self.store, fingerprints)

    def closure(self, names: list[str] | None, labels: bool) -> Closure:
        return closure(self.store, names, labels)

    def put(self, write: Callable[[IO[bytes]], object]) -> int:
        return len(piped(write, lambda stream: packs.receive(self.store, stream)))

    def get(self, entries: list[Entry], read: Callable[[IO[bytes]], object]) -> None:
        piped(lambda out: packs.write(self.store, entries, out), read)

    def settled(self, refs: list[Ref], labels: dict[str, str]) -> tuple[set[int], set[str]]:
        return settled(self.store, refs, labels)

    def update(
        self,
        refs: list[Ref],
        labels: dict[str, str],
        signatures: dict[str, list[Signature]] | None = None,
    ) -> None:
        apply(self.store, refs, labels, signatures)

    def close(self) -> None:
        self.store.close()


def have(store: FileStore, fingerprints: list[str]) -> set[str]:
    """Which of *fingerprints* *store* holds: a stat each for a few, one listing for many."""
    if len(fingerprints) > _LIST_ABOVE:
        return set(fingerprints).intersection(store.iter_fingerprints())
    return {fp for fp in fingerprints if fp in store}


def closure(store: FileStore, names: list[str] | None, labels: bool) -> Closure:
    """:meth:`Peer.closure` on *store*."""
    known = store.labels()
    if names is None:
        targets = [*known.values(), *(ref.key for ref in store.iter_refs())]
        travel = dict(known) if labels else {}
    else:
        targets = [store.resolve(name) for name in names]
        travel = {n: fp for n, fp in zip(names, targets, strict=True) if known.get(n) == fp}
        travel = travel if labels else {}
    entries, refs = bundle.closure(store, targets)
    sizes = {e.fingerprint: size_of(store, e.fingerprint) for e in entries}
    return Closure(entries, refs, sizes, travel)


def order(entries: dict[str, Entry]) -> list[Entry]:
    """*entries* with each after everything it references (of those given)."""
    from scalems_store.maint.reach import dependencies_first

    ordered = dependencies_first(
        sorted(entries), lambda fp: [r for r in entries[fp].refs if r in entries]
    )
    return [entries[fp] for fp in ordered]


def size_of(store: FileStore, fp: str) -> int:
    """The size of object *fp* of *store* (0 if it is not there)."""
    try:
        return os.stat(store.object_path(fp)).st_size
    except OSError:
        return 0


def settled(store: FileStore, refs: list[Ref], labels: dict[str, str]) -> tuple[set[int], set[str]]:
    """:meth:`Peer.settled` on *store*."""
    same = set()
    for i, ref in enumerate(refs):
        there = store.get_ref(ref.namespace, ref.key)
        if there and set(ref.values).issubset(there) and ref.key in store:
            same.add(i)
    known = store.labels()
    return same, {name for name, fp in labels.items() if known.get(name) == fp}


def apply(
    store: FileStore,
    refs: list[Ref],
    labels: dict[str, str],
    signatures: dict[str, list[Signature]] | None = None,
) -> None:
    """Merge *refs* into *store*'s (union; a call's results newest first) and set
    *labels*, checked first, all of them: every object they name must be there, and
    a call's ref may name only results of that call. *signatures* are kept beside the
    results they sign (before any ref names them); whether to believe them is the
    trust's question, each time a result is served.

    Raises:
        RemoteError: an object a ref or label names is missing (nothing changes).
        InvalidContent: a call's ref names something that is not its result.
    """
    for ref in refs:
        for fp in (ref.key, *ref.values):
            if fp not in store:
                raise RemoteError(
                    f"refusing ref {ref.namespace}/{ref.key[:12]}: it names {fp}, which "
                    f"{store.root} does not hold (the objects did not all arrive)"
                )
        if ref.namespace == content.CALLS:
            for fp in ref.values:
                _check_result_of(store, ref.key, fp)
    for name, fp in labels.items():
        if fp not in store:
            raise RemoteError(f"refusing label {name!r}: {fp} is not in {store.root}")
    for fp, sigs in sorted((signatures or {}).items()):
        if sigs and fp in store and store.kind(fp) == content.RESULT:
            store.add_signatures(fp, sigs)
    for ref in refs:
        store.update_ref(ref.namespace, ref.key, bundle.merger(store, ref))
    for name, fp in sorted(labels.items()):
        store.set_label(name, fp)


def _check_result_of(store: FileStore, call: str, fp: str) -> None:
    try:
        record = content.decode(store.read_bytes(fp), content.RESULT)
    except StoreError:
        record = {}
    if record.get("call") != call:
        raise InvalidContent(f"refusing ref calls/{call[:12]}: {fp} is not a result of that call")


def piped(write: Callable[[IO[bytes]], object], read: Callable[[IO[bytes]], T]) -> T:
    """Run *write* (in a thread) into a pipe that *read* reads here; return what *read*
    returns. The writer's error wins (the reader then sees a truncated stream)."""
    rfd, wfd = os.pipe()
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            with open(wfd, "wb", buffering=1 << 20) as out:
                write(out)
        except BrokenPipeError:
            pass  # the reader stopped: its error says why
        except BaseException as exc:  # handed to the caller below
            failed.append(exc)

    thread = threading.Thread(target=produce, name="scalems-pack", daemon=True)
    thread.start()
    try:
        with open(rfd, "rb", buffering=1 << 20) as stream:
            try:
                return read(stream)
            except StoreError:
                if failed:
                    raise failed[0] from None
                raise
    finally:
        thread.join()
        if failed:
            raise failed[0]
