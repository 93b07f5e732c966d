"""Lineage: which call (and which result) made an object, and which calls took it.

Read from the records' own bytes (:mod:`scalems_store.objects.content`): a result names
its call and its stdout, stderr and output directory; a call names its
skeleton and the calls whose outputs it takes; a result names, for each input,
the upstream result it consumed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from scalems_store.core import layout
from scalems_store.core.errors import InvalidContent, StoreError
from scalems_store.objects import content

if TYPE_CHECKING:
    from scalems_store.store.filestore import FileStore


class Link(NamedTuple):
    """One step of lineage."""

    call: str
    """The call that made (or takes) the object."""
    result: str | None
    """The result involved: the one that made the object, or that consumed it."""
    how: str
    """``stdout``, ``stderr``, ``directory``, ``result``, ``skeleton``, ``input``..."""
    path: str = ""
    """For a file inside a tree: its path there (``traj.csv``); else ``""``."""


class Lineage(NamedTuple):
    """Where an object comes from and where it goes."""

    made_by: list[Link]
    taken_by: list[Link]


def lineage(store: FileStore, fp: str, places: Iterable[tuple[str, str]] = ()) -> Lineage:
    """The lineage of object *fp* (a full fingerprint), read from every call and result
    record of the store.

    Args:
        places: Where *fp* is the content of a file inside a tree: ``(tree, path)``
            pairs. A result whose output directory is such a tree made the file; a
            call whose skeleton is one takes it, and so does a result that consumed
            exactly this content.
    """
    calls, results = _records(store)
    at: dict[str, list[str]] = {}
    for tree, path in places:
        at.setdefault(tree, []).append(path)
    made_by: list[Link] = []
    taken_by: list[Link] = []
    makers: set[str] = set()  # results that made fp (or are fp, or hold it in their directory)
    made_as: dict[str, list[str]] = {}  # maker's call -> the paths it made fp as
    for result_fp, record in results.items():
        call = record.get("call")
        if not isinstance(call, str):
            continue
        if result_fp == fp:
            made_by.append(Link(call, result_fp, "result"))
            makers.add(result_fp)
        for field in content.URI_FIELDS:
            if _named(record.get(field)) == fp:
                made_by.append(Link(call, result_fp, field))
                makers.add(result_fp)
        for path in at.get(_named(record.get("directory")) or "", ()):
            made_by.append(Link(call, result_fp, "directory", path))
            made_as.setdefault(call, []).append(path)
    makers_calls = {results[r]["call"] for r in makers} | ({fp} if fp in calls else set())
    for call_fp, record in calls.items():
        skeleton = _named(record.get("skeleton"))
        if skeleton == fp:
            taken_by.append(Link(call_fp, None, "skeleton"))
        for path in at.get(skeleton or "", ()):
            taken_by.append(Link(call_fp, None, "skeleton", path))
        for item in record.get("inputs", []):
            upstream = _named(item.get("call"))
            if upstream in makers_calls or _takes(item.get("path"), made_as.get(upstream or "")):
                taken_by.append(Link(call_fp, None, f"input {item.get('path') or 'value'}"))
    for result_fp, record in results.items():
        for item in record.get("consumed", []):
            if _named(item.get("result")) in makers or (at and _named(item.get("content")) == fp):
                path = str(item.get("path") or "") if at else ""
                taken_by.append(Link(str(record.get("call")), result_fp, "consumed", path))
    order = lambda link: (link.call, link.result or "", link.how, link.path)  # noqa: E731
    return Lineage(sorted(set(made_by), key=order), sorted(set(taken_by), key=order))


def _takes(wanted: Any, made: list[str] | None) -> bool:
    """Whether an input declared at path *wanted* of an upstream call's output directory
    takes a file the call made at one of the paths *made*: the file itself, or a
    directory holding it."""
    if not made or not isinstance(wanted, str):
        return False
    wanted = wanted.strip("/")
    return any(wanted in ("", ".", path) or path.startswith(wanted + "/") for path in made)


def _named(uri: Any) -> str | None:
    if isinstance(uri, str) and uri.startswith(layout.URI_SCHEME):
        return uri[len(layout.URI_SCHEME) :]
    return uri if isinstance(uri, str) and layout.is_fingerprint(uri) else None


def _records(store: FileStore) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every call record and every result record of the store, decoded."""
    found: dict[str, dict[str, dict[str, Any]]] = {content.CALL: {}, content.RESULT: {}}
    for info in store.list():
        if info.kind not in found:
            continue
        try:
            found[info.kind][info.fingerprint] = content.decode(
                store.read_bytes(info.fingerprint), info.kind
            )
        except (InvalidContent, StoreError):
            continue  # damaged: verify reports it
    return found[content.CALL], found[content.RESULT]
