"""What the shell completes where a command takes an object: labels and fingerprints.

Called by click's completion protocol (``_SCALEMS_STORE_COMPLETE=bash_complete``)
on every TAB, so it reads little: the labels, and the one fan-out directory of
``objects/`` a hex prefix of two digits or more points into. It never creates a
store and never fails: without a store (or with a damaged one) it offers nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalems_store.core import layout
from scalems_store.core.errors import StoreError

if TYPE_CHECKING:
    from scalems_store.store.filestore import FileStore

MAX_FINGERPRINTS = 50
"""Fingerprints offered at most; a longer prefix narrows them down."""


def names(store_path: str | None, incomplete: str) -> list[tuple[str, str]]:
    """``(name, description)`` of every label and fingerprint that starts with *incomplete*
    in the store at *store_path* (``None``: the default store)."""
    from scalems_store.store.filestore import FileStore

    try:
        with FileStore(store_path, create=False) as store:
            labels = [
                (name, f"label -> {fp[:12]}")
                for name, fp in store.labels().items()
                if name.startswith(incomplete)
            ]
            return labels + _fingerprints(store, incomplete.lower())
    except (StoreError, OSError):
        return []


def _fingerprints(store: FileStore, prefix: str) -> list[tuple[str, str]]:
    if len(prefix) < 2 or not layout.HEX_DIGITS.issuperset(prefix):
        return []  # all of objects/ on every TAB would be slow; two digits pick one fan-out
    found = sorted(
        prefix[:2] + entry.name
        for entry in store.objects.scan(prefix[:2])
        if entry.name.startswith(prefix[2:])
    )
    return [(fp, store.kind(fp)) for fp in found[:MAX_FINGERPRINTS]]
