"""What a writer says of an object (its kind, its references) checked against its bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from scalems_store.core.errors import InvalidContent
from scalems_store.core.fsutil import read_regular
from scalems_store.objects import content
from scalems_store.objects.files import Meta


def claimed(
    fp: str, kind: str, refs: Iterable[str] | None, read: Callable[[], bytes]
) -> Meta | None:
    """Check what a caller says of object *fp* against its bytes; return the meta to
    record (None for a blob, which has none).

    Raises:
        InvalidContent: an unknown kind, a record that is not one, or other references.
    """
    content.check_kind(kind)
    claimed = None if refs is None else tuple(refs)
    if kind in content.RECORD_KINDS:
        return Meta(kind, content.check_claim(fp, kind, read(), claimed))
    if claimed:
        raise InvalidContent(f"object {fp}: a {kind} refers to nothing, not {list(claimed)}")
    return None if kind == content.BLOB else Meta(kind, ())


def check_tree(fp: str, path: str) -> None:
    """Refuse a "tree" whose bytes are not a valid tree archive."""
    from scalems_store.core.errors import ArchiveError
    from scalems_store.tar import archive

    try:
        archive.list_entries(path)
    except ArchiveError as exc:
        raise InvalidContent(f"object {fp} is not a tree: {exc}") from None


def read_file(path: str) -> bytes:
    return read_regular(path)
