"""What differs between two objects: ``scalems-store diff A B`` and ``rerun --check``.

Two trees: the files added, removed and changed, with their sizes (and a
change of type, mode or link target). Two blobs: whether and how they differ.
Two result records (of one call, usually): status, return value, exception,
stdout, stderr, and the files of their output directories, compared as trees.
Two call records: which fields differ. With *patch*, each text file (or
stdout, stderr) that differs comes with the first lines of a unified diff.

Everything is read checked against its fingerprint (:mod:`scalems_store.store.treeview`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, NamedTuple

from scalems_store.core import humane, layout
from scalems_store.core.errors import InvalidContent
from scalems_store.core.fingerprint import hash_bytes
from scalems_store.objects import content
from scalems_store.store.treeview import TreeView, has_path, locate, open_tree, open_tree_at
from scalems_store.tar.tarformat import FILE, SYMLINK
from scalems_store.tar.treeread import Entry

if TYPE_CHECKING:
    from scalems_store.store.filestore import FileStore

PATCH_LINES = 12
"""Lines of a unified diff shown per file that differs."""
PATCH_LIMIT = 1 << 20
"""Largest file, in bytes, shown as a unified diff (difflib's time grows fast with size)."""
_FIELDS = (("status", "status"), ("return_value", "return value"), ("exception", "exception"))


class Change(NamedTuple):
    """One difference between two objects."""

    what: str
    """``added``, ``removed`` or ``changed``."""
    path: str
    """A file of the tree (or output directory); ``""`` for a record's field or a blob."""
    where: str = ""
    """The record field it is in (``stdout``, ``directory``, ``status``...); ``""`` for
    two trees or two blobs."""
    old_size: int | None = None
    new_size: int | None = None
    detail: str = ""
    """What changed besides the bytes: ``mode 0644 -> 0755``, ``success -> failed``."""
    content: bool = False
    """The bytes differ (of a file, blob, stdout or stderr that is in both)."""
    patch: tuple[str, ...] = ()
    """The first lines of a unified diff, for text."""

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (sizes in bytes)."""
        return {**self._asdict(), "patch": list(self.patch)}

    def line(self) -> str:
        """One line for people: what, where, sizes in human units."""
        sizes = [humane.size(s) for s in (self.old_size, self.new_size) if s is not None]
        extra = ", ".join(filter(None, (" -> ".join(sizes), self.detail)))
        name = self.path or self.where
        if self.where and self.where != "directory":
            return f"{self.where} differs" + (f": {extra}" if extra else "")
        return f"{self.what:<8} {name}" + (f"  ({extra})" if extra else "")


def compare(
    store: FileStore,
    a: str,
    b: str,
    *,
    patch: int = 0,
    names: tuple[str, str] = ("a", "b"),
    describe: Callable[[Any], str] | None = None,
) -> tuple[str, list[Change]]:
    """Compare the objects *a* and *b* name (fingerprints, prefixes or labels).

    Args:
        patch: Show up to this many lines of a unified diff per text file (0: none).
        names: What the two sides are called in a patch (``--- a/path``).
        describe: Shows a call record's argument (as recorded) for people; with it, each
            argument of two calls that differs comes with both values.

    Returns:
        ``(kind, changes)``; no changes when they are the same.

    Raises:
        InvalidContent: they are of different kinds.
    """
    if has_path(a) or has_path(b):
        return compare_paths(store, a, b, patch=patch, names=names)
    first, second = store.resolve(a), store.resolve(b)
    kind, other = store.kind(first), store.kind(second)
    if kind != other:
        raise InvalidContent(f"cannot compare a {kind} ({a}) with a {other} ({b})")
    if first == second:
        return kind, []
    if kind == content.TREE:
        with open_tree(store, first) as old, open_tree(store, second) as new:
            return kind, compare_trees(old, new, patch=patch, names=names)
    if kind == content.BLOB:
        return kind, [_blob_change(store, first, second, "content", patch, names)]
    records = [content.decode(store.read_bytes(fp), kind) for fp in (first, second)]
    if kind == content.RESULT:
        return kind, compare_results(store, *records, patch=patch, names=names)
    return kind, compare_calls(*records, describe=describe)


def compare_calls(
    old: dict[str, Any], new: dict[str, Any], *, describe: Callable[[Any], str] | None = None
) -> list[Change]:
    """The fields of two call records that differ; the arguments one by one (``argument
    0``, ``argument seed``), with both values when *describe* shows them."""
    found = []
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) == new.get(key):
            continue
        if key in ("args", "kwargs"):
            found.extend(_arguments(old.get(key), new.get(key), describe))
        else:
            found.append(Change("changed", "", key))
    return found


def _arguments(old: Any, new: Any, describe: Callable[[Any], str] | None) -> list[Change]:
    """Each argument that differs between two ``args`` lists (or ``kwargs`` dicts)."""
    before = dict(enumerate(old)) if isinstance(old, list) else old
    after = dict(enumerate(new)) if isinstance(new, list) else new
    if not isinstance(before, dict) or not isinstance(after, dict):
        return [Change("changed", "", "arguments")]
    found = []
    for key in sorted(before.keys() | after.keys(), key=lambda k: (isinstance(k, str), k)):
        was, now = before.get(key), after.get(key)
        if was == now:
            continue
        what = (
            "changed"
            if was is not None and now is not None
            else "added"
            if was is None
            else "removed"
        )
        shown = [("-" if v is None else describe(v)) if describe else "" for v in (was, now)]
        detail = f"{shown[0]} -> {shown[1]}" if describe else "" if what == "changed" else what
        found.append(Change(what, "", f"argument {key}", detail=detail))
    return found


def compare_trees(
    old: TreeView,
    new: TreeView,
    *,
    patch: int = 0,
    names: tuple[str, str] = ("a", "b"),
    at: tuple[str, str] = ("", ""),
) -> list[Change]:
    """The members added, removed and changed from tree *old* to tree *new*, by path;
    *at* compares one directory of each instead (paths are then relative to them)."""
    tops = [view.resolve(top) for view, top in zip((old, new), at, strict=True)]
    before = {e.path: e for e in old.members(tops[0])}
    after = {e.path: e for e in new.members(tops[1])}
    found = []
    for path in sorted(before.keys() | after.keys()):
        was, now = before.get(path), after.get(path)
        if now is None:
            found.append(Change("removed", path, "", _size(was), None))
        elif was is None:
            found.append(Change("added", path, "", None, _size(now)))
        else:
            was = was._replace(path=_joined(tops[0], path))
            now = now._replace(path=_joined(tops[1], path))
            detail = _detail(was, now)
            differ = was.type == now.type == FILE and _bytes_differ(was, now, old, new)
            if detail is None and not differ:
                continue
            text: tuple[str, ...] = ()
            if patch and differ:
                text = unified(old.read(was.path), new.read(now.path), names, patch, path)
            sizes = _size(was), _size(now)
            found.append(Change("changed", path, "", *sizes, detail or "", differ, text))
    return found


def compare_paths(
    store: FileStore, a: str, b: str, *, patch: int = 0, names: tuple[str, str] = ("a", "b")
) -> tuple[str, list[Change]]:
    """Compare ``FP:path`` with ``FP:path`` (a tree, result or call before the colon; a
    plain name is the whole tree): two files, or two directories.

    Returns:
        ``("file", changes)`` or ``("directory", changes)``.

    Raises:
        InvalidContent: one is a file and the other a directory.
    """
    with ExitStack() as stack:
        spots = [locate(store, spec) for spec in (a, b)]
        views = [stack.enter_context(open_tree_at(store, spot)) for spot in spots]
        paths = [view.resolve(spot.path or "") for view, spot in zip(views, spots, strict=True)]
        dirs = [view.is_dir(path) for view, path in zip(views, paths, strict=True)]
        if dirs[0] != dirs[1]:
            what = ["a directory" if d else "a file" for d in dirs]
            raise InvalidContent(f"cannot compare {what[0]} ({a}) with {what[1]} ({b})")
        if dirs[0]:
            return "directory", compare_trees(
                *views, patch=patch, names=names, at=(paths[0], paths[1])
            )
        entries = [view.entry(path) for view, path in zip(views, paths, strict=True)]
        was, now = entries
        detail = _detail(was, now)
        differ = _bytes_differ(was, now, *views)
        if detail is None and not differ:
            return "file", []
        text: tuple[str, ...] = ()
        if patch and differ:
            text = unified(views[0].read(was.path), views[1].read(now.path), names, patch)
        shown = was.path if was.path == now.path else f"{was.path} -> {now.path}"
        change = Change("changed", shown, "", was.size, now.size, detail or "", differ, text)
        return "file", [change]


def _joined(top: str, path: str) -> str:
    return f"{top}/{path}" if top else path


def _size(entry: Entry | None) -> int | None:
    return entry.size if entry is not None and entry.type == FILE else None


def _detail(was: Entry, now: Entry) -> str | None:
    """How member *was* became *now* besides its bytes (type, mode, link), or None."""
    if was.type != now.type:
        return f"{_type(was)} -> {_type(now)}"
    if was.type == SYMLINK and was.linkname != now.linkname:
        return f"-> {was.linkname} now -> {now.linkname}"
    if was.type == FILE and was.mode != now.mode:
        return f"mode {was.mode:04o} -> {now.mode:04o}"
    return None


def _bytes_differ(was: Entry, now: Entry, old: TreeView, new: TreeView) -> bool:
    if was.size != now.size:
        return True
    # hashed rather than compared: BLAKE3 reads faster than memoryview's == (about 4x)
    pairs = zip(old.chunks(was.path), new.chunks(now.path), strict=True)
    return any(hash_bytes(x) != hash_bytes(y) for x, y in pairs)


def _type(entry: Entry) -> str:
    return {FILE: "file", SYMLINK: "symlink"}.get(entry.type, "directory")


def compare_results(
    store: FileStore,
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    patch: int = 0,
    names: tuple[str, str] = ("a", "b"),
) -> list[Change]:
    """What differs between two result records: their call, status, return value and
    exception (as recorded: equal values pickled differently differ here), stdout,
    stderr, and the files of their output directories."""
    found = []
    if old.get("call") != new.get("call"):
        found.append(
            Change("changed", "", "call", detail=f"{old.get('call')} -> {new.get('call')}")
        )
    for field, where in _FIELDS:
        if old.get(field) != new.get(field):
            detail = f"{old.get(field)} -> {new.get(field)}" if field == "status" else ""
            found.append(Change("changed", "", where, detail=detail))
    for stream in ("stdout", "stderr"):
        found.extend(_compare_blobs(store, old.get(stream), new.get(stream), stream, patch, names))
    directories = [_stored(old.get("directory")), _stored(new.get("directory"))]
    if directories[0] != directories[1]:
        found.extend(_compare_directories(store, directories, patch, names))
    return found


def _stored(uri: Any) -> str | None:
    """The fingerprint a record's URI names in the store, or None (none, or a file:// URI)."""
    if isinstance(uri, str) and uri.startswith(layout.URI_SCHEME):
        return layout.normalize(uri)
    return None


def _compare_blobs(
    store: FileStore, old: Any, new: Any, where: str, patch: int, names: tuple[str, str]
) -> list[Change]:
    if old == new:
        return []
    before, after = _stored(old), _stored(new)
    if before is None or after is None:
        return [Change("changed", "", where, detail="recorded in one only")]
    return [_blob_change(store, before, after, where, patch, names)]


def _blob_change(
    store: FileStore, old: str, new: str, where: str, patch: int, names: tuple[str, str]
) -> Change:
    """How blob *old* differs from blob *new* (two fingerprints: their bytes differ). They
    are read only for a patch, and only when small enough for one."""
    before, after = (os.stat(store.object_path(fp)).st_size for fp in (old, new))
    text: tuple[str, ...] = ()
    if patch and max(before, after) <= PATCH_LIMIT:
        path = where if where != "content" else ""
        text = unified(store.read_bytes(old), store.read_bytes(new), names, patch, path)
    return Change("changed", "", where, before, after, content=True, patch=text)


def _compare_directories(
    store: FileStore, trees: list[str | None], patch: int, names: tuple[str, str]
) -> list[Change]:
    with ExitStack() as stack:
        views = [None if fp is None else stack.enter_context(open_tree(store, fp)) for fp in trees]
        old, new = views
        if old is None or new is None:
            return [Change("changed", "", "directory", detail="recorded in one only")]
        return [
            c._replace(where="directory") for c in compare_trees(old, new, patch=patch, names=names)
        ]


def unified(
    old: bytes, new: bytes, names: tuple[str, str], limit: int, path: str = ""
) -> tuple[str, ...]:
    """The first *limit* lines of a unified diff of two texts (then how many more there
    are); nothing for binary data (a NUL byte, or not UTF-8) or files over
    :data:`PATCH_LIMIT`."""
    if not limit or max(len(old), len(new)) > PATCH_LIMIT or b"\0" in old or b"\0" in new:
        return ()
    import difflib  # only for a patch

    try:
        before, after = old.decode().splitlines(), new.decode().splitlines()
    except UnicodeDecodeError:
        return ()
    where = f"/{path}" if path else ""
    lines = list(
        difflib.unified_diff(
            before, after, f"{names[0]}{where}", f"{names[1]}{where}", n=2, lineterm=""
        )
    )
    if len(lines) > limit:
        lines[limit:] = [f"... ({len(lines) - limit} more lines)"]
    return tuple(lines)
