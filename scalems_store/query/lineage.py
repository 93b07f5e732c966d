"""Lineage: which call (and which result) made an object, and which calls took it.

Read from the records' own bytes (:mod:`scalems_store.objects.content`): a result names
its call and its stdout, stderr and output directory; a call names its
skeleton and the calls whose outputs it takes; a result names, for each input,
the upstream result it consumed.
"""

from __future__ import annotations

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


class Lineage(NamedTuple):
    """Where an object comes from and where it goes."""

    made_by: list[Link]
    taken_by: list[Link]


def lineage(store: FileStore, fp: str) -> Lineage:
    """The lineage of object *fp* (a full fingerprint), read from every call and result
    record of the store."""
    calls, results = _records(store)
    made_by: list[Link] = []
    taken_by: list[Link] = []
    makers: set[str] = set()  # results that made fp (or are fp)
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
    makers_calls = {results[r]["call"] for r in makers} | ({fp} if fp in calls else set())
    for call_fp, record in calls.items():
        if _named(record.get("skeleton")) == fp:
            taken_by.append(Link(call_fp, None, "skeleton"))
        for item in record.get("inputs", []):
            if _named(item.get("call")) in makers_calls:
                taken_by.append(Link(call_fp, None, f"input {item.get('path') or 'value'}"))
    for result_fp, record in results.items():
        for item in record.get("consumed", []):
            if _named(item.get("result")) in makers:
                taken_by.append(Link(str(record.get("call")), result_fp, "consumed"))
    order = lambda link: (link.call, link.result or "", link.how)  # noqa: E731
    return Lineage(sorted(set(made_by), key=order), sorted(set(taken_by), key=order))


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
