"""What the store tells of its objects (``info``, ``ls``): one answer for both.

:func:`describe` and :func:`describe_all` give the same fields for the same
object: its kind and size, when it was first stored (the index's ``created``,
which adding the same content again does not move; the file's mtime, which it
does, only when the index cannot answer), the labels naming it (read once for
a whole listing) and the objects it refers to (read from its bytes, only for
call and result records: blobs and trees refer to nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .objects import ObjectInfo

if TYPE_CHECKING:
    from .store import FileStore

__all__ = ["ObjectInfo", "describe", "describe_all"]


def describe(store: FileStore, name: str) -> ObjectInfo:
    """Return what is known of the object *name* names (see :meth:`FileStore.resolve`).

    Raises:
        ObjectNotFound, AmbiguousPrefix, InvalidFingerprint: see :meth:`FileStore.resolve`.
    """
    return store.info(name)


def describe_all(store: FileStore, kind: str | None = None) -> list[ObjectInfo]:
    """Return every indexed object, of *kind* if given, sorted by fingerprint, each with
    what :func:`describe` gives for it.

    Labels are read once for the whole listing; references only from call and result
    records, which are the only objects that have any.
    """
    named: dict[str, list[str]] = {}
    for label, target in store.labels().items():
        named.setdefault(target, []).append(label)
    return [
        row._replace(labels=tuple(named.get(row.fingerprint, ())), refs=_references(store, row))
        for row in store.list(kind)
    ]


def _references(store: FileStore, row: ObjectInfo) -> tuple[str, ...]:
    from .content import RECORD_KINDS
    from .errors import InvalidContent, StoreError

    if row.kind not in RECORD_KINDS:
        return ()
    try:
        return store.references(row.fingerprint)
    except InvalidContent:
        return ()  # corrupt: as info says (verify names it)
    except StoreError:
        return ()  # removed since it was listed
