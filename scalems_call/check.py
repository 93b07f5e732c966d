"""Compare two results of the same call: the reproducibility check behind ``rerun --check``."""

from __future__ import annotations

import mmap
from typing import Any

from scalems_store import FileStore, hash_bytes, layout
from scalems_store.archive import FILE, SYMLINK

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
        open(store.object_path(fp), "rb") as stream,
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
    from .serialize import from_hex

    return None if hexed is None else from_hex(hexed)


def differences(store: FileStore, recorded: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """Return one line per difference between two result records of the same call."""
    found = []
    if recorded.get("status") != fresh.get("status"):
        found.append(
            f"status differs: recorded {recorded.get('status')}, rerun {fresh.get('status')}"
        )
    if recorded.get("return_value") != fresh.get("return_value"):
        before, after = _decoded(recorded.get("return_value")), _decoded(fresh.get("return_value"))
        try:
            same = bool(before == after)
        except Exception:
            same = False
        if not same:
            found.append(
                f"return value differs: recorded {_shorten(before)}, rerun {_shorten(after)}"
            )
    if recorded.get("exception") != fresh.get("exception"):
        before, after = _decoded(recorded.get("exception")), _decoded(fresh.get("exception"))
        found.append(f"exception differs: recorded {before}, rerun {after}")
    for stream in ("stdout", "stderr"):
        if recorded.get(stream) != fresh.get(stream):
            found.append(f"{stream} differs")
    old, new = (
        tree_summary(store, recorded.get("directory")),
        tree_summary(store, fresh.get("directory")),
    )
    for path in sorted(old.keys() | new.keys()):
        if path not in new:
            found.append(f"only in the recorded directory: {path}")
        elif path not in old:
            found.append(f"only in the rerun directory: {path}")
        elif old[path] != new[path]:
            what = "mode" if old[path][::2] == new[path][::2] else old[path][0]
            found.append(f"{what} differs: {path}" if what == "mode" else f"{what} {path} differs")
    return found
