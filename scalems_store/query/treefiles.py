"""Which trees hold a file of given content: the index of the files inside trees.

``scalems-call why FP``, where FP is the BLAKE3 of a file inside some stored
tree (an output file you have), needs to know which trees hold that content,
and where. The files of trees are not objects of their own, so the index keeps,
for each tree, the fingerprint and path of each of its files (tables
``tree_files`` and ``trees_listed`` of ``index.sqlite``: a cache, like the rest).

It is filled when asked, not when a tree is added: :func:`places` first lists
the trees not yet listed (each file hashed once, read in place), so an add of a
big tree costs nothing more, and the first question after it pays for reading
it once. ``reindex`` lists every tree again. Where the index is off or cannot be
written, the trees are read on every question (slower, complete).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from scalems_store.core import layout
from scalems_store.core.errors import AmbiguousPrefix, StoreError
from scalems_store.core.fingerprint import new_hasher
from scalems_store.objects import content
from scalems_store.tar.tarformat import FILE
from scalems_store.tar.treeread import iter_entries, mapped

if TYPE_CHECKING:
    from scalems_store.store.filestore import FileStore


def tree_files(store: FileStore, tree: str) -> Iterator[tuple[str, str]]:
    """``(content fingerprint, path)`` of each file of *tree*, hashed as read in place.

    The tree is not checked against its own fingerprint first (this is a cache:
    ``verify`` finds a damaged tree); one that cannot be parsed lists no files.
    """
    from scalems_store.objects import thin

    try:
        # a tree stored thin is read without its pieces: their fingerprints are known
        with (
            thin.headers_file(store.objects, tree, store.tmp) as (path, pieces),
            mapped(path) as data,
        ):
            for entry in list(iter_entries(data, checked=True)):
                if entry.type != FILE:
                    continue
                if entry.offset in pieces:
                    yield pieces[entry.offset], entry.path
                    continue
                hasher = new_hasher(entry.size)
                with memoryview(data) as whole:
                    hasher.update(whole[entry.offset : entry.offset + entry.size])
                yield hasher.hexdigest(), entry.path
    except (StoreError, OSError, ValueError):
        return


def catch_up(store: FileStore) -> int | None:
    """List the files of every tree the index has not listed; return how many trees
    were listed now, or None when the index cannot hold them."""
    listed = store.index.listed_trees()
    if listed is None:
        return None
    trees = [row[0] for row in store.index.tuples(content.TREE) if row[0] not in listed]
    for tree in trees:
        store.index.list_tree(tree, list(tree_files(store, tree)))
    return len(trees)


def relist(store: FileStore) -> int | None:
    """Forget the files of every tree and list them again (``reindex``)."""
    store.index.forget_tree_files()
    return catch_up(store)


def places(store: FileStore, name: str) -> tuple[str | None, list[tuple[str, str]]]:
    """The files inside stored trees whose content *name* names (a fingerprint, a
    ``blake3:`` URI or a unique prefix of one): the full fingerprint, or None when no
    file has it, and the ``(tree, path)`` of each, sorted.

    Raises:
        InvalidFingerprint: *name* is not hex.
        AmbiguousPrefix: a prefix of the contents of more than one file.
    """
    prefix = layout.normalize(name)
    found = store.index.places(prefix) if catch_up(store) is not None else None
    if found is None:  # no index: read every tree
        found = [
            (fp, row[0], path)
            for row in store.index.tuples(content.TREE)
            for fp, path in tree_files(store, row[0])
            if fp.startswith(prefix)
        ]
    found = [(fp, tree, path) for fp, tree, path in found if tree in store]  # gc'd since
    contents = sorted({fp for fp, _, _ in found})
    if not contents:
        return None, []
    if len(contents) > 1:
        raise AmbiguousPrefix(prefix, contents)
    return contents[0], sorted({(tree, path) for _, tree, path in found})
