"""What a store must keep: its roots and everything they reach, read from the objects' bytes.

Roots are labels, refs (a call and the results recorded for it) and live
leases (a call being run). From each root, references are followed as the
objects' own bytes name them (:func:`scalems_store.content.sniff`), whatever
their ``meta/`` files say; a well-formed meta file can only add to what is
kept, never take away. gc keeps this closure, bundles carry it, verify checks
that it is present.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from . import content, lease
from .errors import StoreError
from .refs import Damage, Ref

if TYPE_CHECKING:
    from .store import FileStore


class Roots(NamedTuple):
    """The roots of a store, and the files under ``refs/`` that could not be read."""

    labels: dict[str, str]
    refs: list[Ref]
    leases: dict[str, dict[str, object]]
    damage: list[Damage]

    def fingerprints(self) -> list[str]:
        """Every fingerprint a root names."""
        found = list(self.labels.values())
        for ref in self.refs:
            found.append(ref.key)
            found.extend(ref.values)
        found.extend(key for key in self.leases if len(key) == 64)
        return found


def roots(store: FileStore) -> Roots:
    """Read every label, ref and live lease of *store*."""
    labels, damage = store.refs.scan_labels()
    refs = list(store.refs.scan(damage))
    return Roots(labels, refs, lease.live(store.root), damage)


def references(store: FileStore, fp: str) -> tuple[str, ...]:
    """What object *fp* refers to, as its bytes say, plus what a well-formed meta file
    adds; empty for an object that is missing or is not a record."""
    found: set[str] = set()
    meta = store.objects.read_meta(fp)
    if meta is not None:
        found.update(meta.refs)
    try:
        if content.might_be_record(store.read_head(fp, 64)):
            found.update(content.sniff(store.read_bytes(fp, verify=False))[1])
    except StoreError:  # missing or unreadable: nothing to follow but its meta file
        pass
    return tuple(sorted(found))


def closure(store: FileStore, start: Iterable[str], known: Iterable[str] = ()) -> set[str]:
    """Every fingerprint reachable from *start* (included), following references, added
    to *known* (a closure found before, not walked again)."""
    seen = set(known)
    pending = [fp for fp in start if fp not in seen]
    while pending:
        fp = pending.pop()
        if fp in seen:
            continue
        seen.add(fp)
        pending.extend(ref for ref in references(store, fp) if ref not in seen)
    return seen
