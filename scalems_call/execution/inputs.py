"""Inputs of a call in a graph: delivering upstream outputs, and judging them current.

A call record's ``inputs`` list every reference to another call's output (see
:mod:`scalems_call.identity.upstream`). Before the call runs, each is delivered from
the upstream call's *current* result (its newest, if it succeeded and is
whole): a return value is handed to the child, which puts it in place of the
reference; a file or directory of the upstream's output directory is
extracted into the work directory, under ``.scalems-inputs/`` for an argument
(which the call gets as a relative path, a ``str``; left out of the call's own
output directory) or at the skeleton entry's destination.

The result records, for each ``(call, path)`` delivered, the upstream result
used and a fingerprint of the content delivered (``consumed``): see
:func:`scalems_call.execution.cache.hit` for how that decides whether it is still current.
"""

from __future__ import annotations

import json
import os
from typing import Any

from scalems_call.execution import cache
from scalems_call.identity.errors import InvalidCall, NoResult
from scalems_call.identity.upstream import INPUTS_DIR, WHOLE
from scalems_store import FileStore
from scalems_store.core import layout
from scalems_store.core.errors import InvalidPath
from scalems_store.store.treeview import open_tree

Key = tuple[str, str | None]
"""``(upstream call, path)``: path None for the return value, ``.`` for the whole directory."""


def listed(record: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """``(call, path, to)`` of each input of a call record."""
    return [
        (layout.normalize(item["call"]), item.get("path"), item.get("to"))
        for item in record.get("inputs", [])
    ]


def upstream_calls(record: dict[str, Any]) -> list[str]:
    """The calls a call record takes inputs from, each once, in record order."""
    return list(dict.fromkeys(call for call, _, _ in listed(record)))


def deliver(
    store: FileStore, record: dict[str, Any], work: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Put the inputs of a call in its work directory.

    Returns:
        What the child needs to replace the references in the arguments
        (``{"values": {call: hex}, "paths": {"call path": relative path}}``), and
        the ``consumed`` entries of the result record.

    Raises:
        NoResult: an upstream call has no successful result.
        InvalidCall: an upstream's output has no such path (naming call and path).
    """
    values: dict[str, str | None] = {}
    paths: dict[str, str] = {}
    consumed: dict[Key, dict[str, Any]] = {}
    for call, path, to in listed(record):
        result_fp, result = _current(store, call)
        if to is not None:
            _extract(store, call, result, path or WHOLE, os.path.join(work, to))
        elif path is None:
            values[call] = result.get("return_value")
        else:
            rel = (
                f"{INPUTS_DIR}/{call[:16]}/{path}" if path != WHOLE else f"{INPUTS_DIR}/{call[:16]}"
            )
            if not os.path.lexists(os.path.join(work, rel)):
                _extract(store, call, result, path, os.path.join(work, rel))
            paths[f"{call} {path}"] = rel
        key: Key = (call, path if to is None else path or WHOLE)
        if key not in consumed:
            consumed[key] = {
                "call": layout.to_uri(call),
                "path": key[1],
                "result": layout.to_uri(result_fp),
                "content": cache.digest(store, result, key[1]),
            }
    return {"values": values, "paths": paths}, [consumed[k] for k in sorted(consumed, key=_order)]


def _order(key: Key) -> tuple[str, str]:
    return key[0], key[1] or ""


def _current(store: FileStore, call: str) -> tuple[str, dict[str, Any]]:
    found = cache.current(store, call)
    if found is None:
        raise NoResult(
            f"upstream call {call[:12]} has no successful result (run the graph with "
            "'scalems-call exec', which runs it first)"
        )
    return found


def _extract(store: FileStore, call: str, result: dict[str, Any], path: str, dest: str) -> None:
    directory = result.get("directory")
    if not directory:
        raise InvalidCall(f"upstream call {call[:12]} recorded no output directory ({path!r})")
    tree = layout.normalize(directory)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    try:
        with open_tree(store, tree) as view:  # checked; the tree's own symlinks followed
            view.extract(path, dest)
    except InvalidPath as exc:
        raise InvalidCall(
            f"upstream call {call[:12]}: its output has no {path!r} ({exc})"
        ) from None


def deliver_files(store: FileStore, record: dict[str, Any], work: str) -> dict[str, str]:
    """Copy the files a call takes by content (its record's ``files``) into its work
    directory, under ``.scalems-inputs/files/``; return the child's paths for them
    (``{"file:<blob> <name>": relative path}``).

    Raises:
        InvalidCall: an entry is malformed.
        ObjectNotFound: a file's blob is not in the store.
    """
    paths: dict[str, str] = {}
    for item in record.get("files", []):
        blob, name = layout.normalize(item.get("file", "")), item.get("name")
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
            raise InvalidCall(f"malformed call record: file name {name!r}")
        rel = f"{INPUTS_DIR}/files/{blob[:16]}/{name}"
        dest = os.path.join(work, *rel.split("/"))
        if not os.path.lexists(dest):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            store.materialize(blob, dest)
        paths[f"file:{blob} {name}"] = rel
    return paths


def write_for_child(rundir: str, delivered: dict[str, Any]) -> str:
    """Write what the child needs to replace references (see :func:`deliver`); return the
    file's path."""
    path = os.path.join(rundir, "inputs.json")
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(delivered, stream)
    return path
