"""Compare two results of the same call: the reproducibility check behind ``rerun --check``."""

from __future__ import annotations

import mmap
from typing import TYPE_CHECKING, Any, NamedTuple

from scalems_store import FileStore, hash_bytes
from scalems_store.core import layout
from scalems_store.tar.archive import FILE, SYMLINK

if TYPE_CHECKING:
    from scalems_store.query.diff import Change

FileSummary = tuple[str, int, str]
"""``(type, mode, digest or link target)`` of one member of a directory tree."""


def tree_summary(store: FileStore, uri: str | None) -> dict[str, FileSummary]:
    """Describe every member of a result's directory tree, with content digests."""
    if not uri:
        return {}
    fp = layout.normalize(uri)
    entries = store.tree_entries(fp)
    summary: dict[str, FileSummary] = {}
    with (
        store.tree_file(fp) as path,
        open(path, "rb") as stream,
        mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data,
    ):
        for entry in entries:
            if entry.type == FILE:
                digest = hash_bytes(data[entry.offset : entry.offset + entry.size])
                summary[entry.path] = ("file", entry.mode, digest)
            elif entry.type == SYMLINK:
                summary[entry.path] = ("symlink", 0, entry.linkname)
            else:
                summary[entry.path] = ("directory", entry.mode, "")
    return summary


def _shorten(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _decoded(hexed: str | None) -> Any:
    from scalems_call.identity.serialize import from_hex

    return None if hexed is None else from_hex(hexed)


class Difference(NamedTuple):
    """One difference between a recorded result and a rerun."""

    summary: str
    """One line: ``stdout differs``, ``file out.csv differs``..."""
    excerpt: tuple[str, ...] = ()
    """For text (a file, stdout, stderr): the first lines of a unified diff."""

    def lines(self) -> list[str]:
        """The summary, then the excerpt indented: what ``rerun --check`` prints."""
        return [self.summary, *(f"    {line}" for line in self.excerpt)]


def differences(store: FileStore, recorded: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """Return one line per difference between two result records of the same call."""
    return [found.summary for found in compare(store, recorded, fresh)]


def compare(
    store: FileStore, recorded: dict[str, Any], fresh: dict[str, Any], *, lines: int | None = None
) -> list[Difference]:
    """Every difference between two result records of the same call, with the first
    *lines* (default: as ``scalems-store diff -p``) of a unified diff for each text
    file, stdout or stderr that differs.

    Return values and exceptions are compared as values (decoded), so equal values
    pickled differently do not differ; streams and files are compared by
    :func:`scalems_store.query.diff.compare_results`.
    """
    # imported here: cache.digest imports this module for tree_summary on the cache-hit path
    from scalems_store.query.diff import PATCH_LINES, compare_results

    found = []
    if recorded.get("status") != fresh.get("status"):
        found.append(
            Difference(
                f"status differs: recorded {recorded.get('status')}, rerun {fresh.get('status')}"
            )
        )
    if recorded.get("return_value") != fresh.get("return_value"):
        before, after = _decoded(recorded.get("return_value")), _decoded(fresh.get("return_value"))
        try:
            same = bool(before == after)
        except Exception:
            same = False
        if not same:
            found.append(
                Difference(
                    f"return value differs: recorded {_shorten(before)}, rerun {_shorten(after)}"
                )
            )
    if recorded.get("exception") != fresh.get("exception"):
        before, after = _decoded(recorded.get("exception")), _decoded(fresh.get("exception"))
        found.append(Difference(f"exception differs: recorded {before}, rerun {after}"))
    patch = PATCH_LINES if lines is None else lines
    changes = compare_results(store, recorded, fresh, patch=patch, names=("recorded", "rerun"))
    found += [_difference(change) for change in changes if change.where in _COMPARED_HERE]
    return found


_COMPARED_HERE = ("stdout", "stderr", "directory")


def _difference(change: Change) -> Difference:
    """The line ``rerun --check`` has always printed for a change of a stream or file."""
    if change.where != "directory":
        return Difference(f"{change.where} differs", change.patch)
    if change.what == "removed":
        return Difference(f"only in the recorded directory: {change.path}")
    if change.what == "added":
        return Difference(f"only in the rerun directory: {change.path}")
    if change.detail.startswith("mode") and not change.content:
        return Difference(f"mode differs: {change.path}")
    first = change.detail.split(" ", 1)[0]  # a change of type: "file -> symlink"
    was = first if first in ("file", "symlink", "directory") else "file"
    if change.detail.startswith("->"):  # a symlink's target
        was = "symlink"
    return Difference(f"{was} {change.path} differs", change.patch)
