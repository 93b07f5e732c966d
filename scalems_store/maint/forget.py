"""Forgetting results: drop recorded results of calls from ``refs/calls/``.

``scalems-store gc --keep-results N`` keeps only the newest N results of each
call; ``scalems-call forget CALL...`` drops every result of those calls. Only
refs change here: the objects of a dropped result go at the next gc (the same
one, for ``gc --keep-results``), unless something still reaches them: a label
(a labelled result stays, though no longer its call's to serve), a result kept
(a downstream result names the upstream result it consumed), a pin or a lease
(:mod:`scalems_store.maint.reach`). Each ref is changed under its lock
(:meth:`FileStore.update_ref`), so a result recorded meanwhile is never lost:
the newest are kept, whatever arrived last.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from scalems_store.objects import content
from scalems_store.store.refs import Ref

if TYPE_CHECKING:
    from scalems_store.store.filestore import FileStore


class Dropped(NamedTuple):
    """A result dropped (or, in a dry run, that would be) from its call's ref."""

    call: str
    result: str


def keep_newest(
    store: FileStore, refs: Iterable[Ref], keep: int, *, dry_run: bool = False
) -> tuple[list[Ref], list[Dropped]]:
    """Keep the newest *keep* results of each call in *refs*; return the refs as they
    are now (or, in a dry run, would be) and what was dropped. Refs of other namespaces
    pass unchanged."""
    now: list[Ref] = []
    dropped: list[Dropped] = []
    for ref in refs:
        if ref.namespace != content.CALLS or len(ref.values) <= keep:
            now.append(ref)
            continue
        values = _trim(store, ref, keep, dry_run)
        dropped.extend(Dropped(ref.key, fp) for fp in ref.values if fp not in values)
        if values:
            now.append(Ref(ref.namespace, ref.key, values))
    return now, dropped


def forget(store: FileStore, calls: Iterable[str], *, dry_run: bool = False) -> list[Dropped]:
    """Drop every recorded result of *calls* (full fingerprints)."""
    refs = [Ref(content.CALLS, call, store.get_ref(content.CALLS, call)) for call in calls]
    return keep_newest(store, refs, 0, dry_run=dry_run)[1]


def _trim(store: FileStore, ref: Ref, keep: int, dry_run: bool) -> list[str]:
    def change(values: list[str]) -> list[str]:
        return values[:keep]  # newest first

    if dry_run:
        return change(ref.values)
    return store.update_ref(ref.namespace, ref.key, change)
