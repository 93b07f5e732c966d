"""What a store must keep: its roots and everything they reach, read from the objects' bytes.

Roots are labels, refs (a call and the results recorded for it), live leases
(a call being run) and pins (what a live writer is about to name). From each
root, references are followed as the objects' own bytes name them
(:func:`scalems_store.objects.content.sniff`), whatever their ``meta/`` files say; a
well-formed meta file can only add to what is kept, never take away. An
object its referrer says is a blob (a result's stdout) is read only if it has
a meta file: a record always has one. A tree stored thin names its pieces (the
blobs holding its large files) in its stored bytes, read here even if its meta
file is lost (:mod:`scalems_store.objects.thin`). gc
keeps this closure, bundles carry it, verify checks that it is present.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from scalems_store.core.errors import ObjectNotFound, StoreError
from scalems_store.objects import content, pins, thin
from scalems_store.store import lease
from scalems_store.store.refs import Damage, Ref
from scalems_store.tar import thintar

if TYPE_CHECKING:
    from scalems_store.store.filestore import FileStore


Start = tuple[str, str | None]
"""An object to walk from, and the kind its referrer says it is (None: unknown)."""


class Roots(NamedTuple):
    """The roots of a store, and the files under ``refs/`` that could not be read."""

    labels: dict[str, str]
    refs: list[Ref]
    leases: dict[str, dict[str, object]]
    damage: list[Damage]
    pins: frozenset[str] = frozenset()
    """What live writers are about to name (:mod:`scalems_store.objects.pins`)."""

    def fingerprints(self) -> list[str]:
        """Every fingerprint a root names."""
        return [fp for fp, _ in self.starts()]

    def starts(self) -> list[Start]:
        """Every fingerprint a root names, with the kind the root says it is: the key of
        ``refs/calls/<key>`` is a call, its values results; a live lease runs a call."""
        found: list[Start] = [(fp, None) for fp in self.labels.values()]
        for ref in self.refs:
            calls = ref.namespace == content.CALLS
            found.append((ref.key, content.CALL if calls else None))
            found.extend((fp, content.RESULT if calls else None) for fp in ref.values)
        found.extend((key, content.CALL) for key in self.leases if len(key) == 64)
        found.extend((fp, None) for fp in sorted(self.pins))
        return found


def roots(store: FileStore) -> Roots:
    """Read every live pin and lease, then every label and ref, of *store*.

    Pins and leases first: a writer names what it pinned (or a runner records what it
    ran) before it lets go, so what is no longer pinned or leased when read here is
    already named by a ref read after."""
    pinned = frozenset(pins.live(store.tmp))
    leases = lease.live(store.root)
    labels, damage = store.refs.scan_labels()
    refs = list(store.refs.scan(damage))
    return Roots(labels, refs, leases, damage, pinned)


def references(
    store: FileStore,
    fp: str,
    expected: str | None = None,
    has_meta: bool | None = None,
    unreadable: list[str] | None = None,
) -> list[Start]:
    """What object *fp* refers to, as its bytes say, plus what a well-formed meta file
    adds, each with the kind it must be.

    The bytes are read unless the object can hold no reference: its referrer says it
    is a blob or a tree, and it has no meta file (a record always has one, written
    before it is published; *has_meta* says whether it does, when the caller knows).
    An object its referrer says is a record, present but not readable as one (damaged),
    is appended to *unreadable*: what it named cannot be known.
    """
    found: dict[str, str | None] = {}
    meta = store.objects.read_meta(fp)
    if meta is not None:
        found.update((ref, None) for ref in meta.refs)
    if has_meta is None:
        has_meta = meta is not None or os.path.lexists(store.objects.meta_path(fp))
    # a tree is read even without a meta file: stored thin, it needs its pieces
    if has_meta or expected != content.BLOB:
        kind = None
        try:
            head = store.read_head(fp, 64)
            if thintar.is_thin(head):
                found.update((piece, content.BLOB) for piece in thin.pieces_of(store.objects, fp))
            elif content.might_be_record(head):
                kind, typed = content.sniff_typed(store.read_bytes(fp, verify=False))
                found.update(typed)
        except ObjectNotFound:
            return sorted(found.items(), key=lambda item: item[0])  # missing: verify says so
        except StoreError:  # unreadable: nothing to follow but its meta file
            pass
        if unreadable is not None and expected in content.RECORD_KINDS and kind != expected:
            unreadable.append(fp)
    return sorted(found.items(), key=lambda item: item[0])


def closure(
    store: FileStore,
    start: Iterable[str | Start],
    known: Iterable[str] = (),
    with_meta: set[str] | None = None,
    unreadable: list[str] | None = None,
) -> set[str]:
    """Every fingerprint reachable from *start* (included), following references, added
    to *known* (a closure found before, not walked again).

    Args:
        start: Fingerprints, or ``(fingerprint, kind it must be)``.
        with_meta: The objects that have a meta file, when the caller listed them.
        unreadable: Collects the records reached that cannot be read (see
            :func:`references`).
    """
    seen = set(known)
    pending = [_start(item) for item in start]
    while pending:
        fp, expected = pending.pop()
        if fp in seen:
            continue
        seen.add(fp)
        has_meta = None if with_meta is None else fp in with_meta
        pending.extend(
            ref
            for ref in references(store, fp, expected, has_meta, unreadable)
            if ref[0] not in seen
        )
    return seen


def dependencies_first(roots: Iterable[str], refers: Callable[[str], Iterable[str]]) -> list[str]:
    """Every node reachable from *roots* through *refers*, each after all it refers to
    (depth-first, without recursion: a chain may be any length)."""
    ordered: dict[str, None] = {}
    for root in roots:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node in ordered:
                continue
            if expanded:
                ordered[node] = None
                continue
            stack.append((node, True))
            stack.extend((ref, False) for ref in refers(node) if ref not in ordered)
    return list(ordered)


def _start(item: str | Start) -> Start:
    return (item, None) if isinstance(item, str) else item
