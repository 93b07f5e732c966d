"""``FP:path``: one path of a tree, as typed on a command line (like git's ``T:path``).

``scalems-store get TREE:traj/frame0.xtc`` writes that file's bytes without
extracting the tree; ``get TREE:traj -o DIR`` extracts that directory alone.
:func:`write_spec` and :func:`materialize_spec` are the one implementation of
``get``, quick or through click: a plain ``FP`` goes straight to the store,
and only a path loads :mod:`scalems_store.query.treeview`, which does the reading.
"""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING

from scalems_store.core import layout
from scalems_store.core.errors import InvalidPath

if TYPE_CHECKING:
    from scalems_store.query.treeview import TreeView
    from scalems_store.store.filestore import FileStore


def split_spec(text: str) -> tuple[str, str | None]:
    """Split ``FP:path`` into the object's name and the path; ``(text, None)`` without one.

    The name is anything :meth:`FileStore.resolve` takes (a ``blake3:`` URI keeps its
    colon); the path is everything after the next colon, so it may hold colons itself.
    """
    scheme = layout.URI_SCHEME if text.startswith(layout.URI_SCHEME) else ""
    name, colon, path = text[len(scheme) :].partition(":")
    return (scheme + name, path) if colon else (text, None)


def write_spec(store: FileStore, spec: str, out: IO[bytes]) -> int:
    """Write ``FP`` (a blob, or a tree's archive) or ``FP:path`` (one file of a tree) to
    a binary stream; return the number of bytes.

    Raises:
        InvalidPath: the path is missing or is a directory (it needs a destination).
        CorruptObject: the object does not match its fingerprint.
    """
    name, path = split_spec(spec)
    if not path:
        return store.write_to(name, out)
    with _open_tree(store, name) as tree:
        if tree.is_dir(path):
            raise InvalidPath(
                f"{path!r} is a directory of tree {tree.fingerprint}: give -o DIR to extract it"
            )
        return tree.write_to(path, out)


def materialize_spec(store: FileStore, spec: str, dest: str | os.PathLike[str]) -> str:
    """Write ``FP`` or ``FP:path`` out to *dest*, checked first (see
    :meth:`FileStore.materialize` and :meth:`TreeView.extract`); return the fingerprint."""
    name, path = split_spec(spec)
    if not path:
        return store.materialize(name, dest)
    with _open_tree(store, name) as tree:
        tree.extract(path, dest)
        return tree.fingerprint


def _open_tree(store: FileStore, name: str) -> TreeView:
    from scalems_store.query.treeview import open_tree

    return open_tree(store, name)
