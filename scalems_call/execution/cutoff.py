"""Early cutoff on content: a call whose inputs resolve to the same content as an earlier
run of the same function, code, arguments and skeleton is served from that run's result.

A downstream call names its upstream *calls*, so a changed upstream call (a new input
to a simulation) makes a new downstream call, even when the upstream's output is
byte for byte what it was. Before such a call runs, its *content key* is computed:
the call record's bytes with each upstream call's fingerprint replaced by the
fingerprint of what that call delivers now (its ``(path, content)`` pairs), in
``inputs`` and in the arguments' pickles alike. Each successful run of a call with
inputs is noted under ``refs/cutoff/<key>``; a call whose key is noted is served
from that result: a new result record of its own, with the earlier outputs, what it
consumed now, and ``provenance.reused`` naming the earlier call and result (``status``
and ``why`` say "reused: same inputs as CALL"). Like Bazel's action keys (digests of
the inputs) and Nix's content-addressed derivations.
"""

from __future__ import annotations

import functools
from typing import Any

from scalems_call.execution import cache
from scalems_call.execution.inputs import listed
from scalems_call.identity.errors import InvalidCall
from scalems_call.identity.records import SUCCESS
from scalems_store import FileStore, hash_bytes
from scalems_store.core import layout
from scalems_store.core.errors import StoreError
from scalems_store.objects import content
from scalems_store.trust import policy

NAMESPACE = content.CONTENT_KEYED[0]


def would_consume(store: FileStore, record: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The ``consumed`` entries a run of the call would record now, or None when an
    upstream call has no current result (or lacks a path the call takes)."""
    found: dict[tuple[str, str | None], dict[str, Any]] = {}
    for call, path, to in listed(record):
        key = (call, path if to is None else path or ".")
        if key in found:
            continue
        current = cache.current(store, call)
        if current is None:
            return None
        try:
            content = cache.digest(store, current[1], key[1])
        except (InvalidCall, StoreError):
            return None
        found[key] = {
            "call": layout.to_uri(call),
            "path": key[1],
            "result": layout.to_uri(current[0]),
            "content": content,
        }
    return [found[k] for k in sorted(found, key=lambda k: (k[0], k[1] or ""))]


def content_key(call: dict[str, Any], consumed: list[dict[str, Any]]) -> str:
    """The call's content key (see the module's docstring)."""
    delivered: dict[str, list[tuple[str, str]]] = {}
    for item in consumed:
        upstream = layout.normalize(item["call"])
        delivered.setdefault(upstream, []).append((item.get("path") or "", item["content"]))
    text = layout.canonical(call)
    for upstream, items in sorted(delivered.items()):
        stands = hash_bytes(layout.canonical(sorted(items)))
        text = text.replace(upstream.encode(), stands.encode())
        text = text.replace(upstream.encode().hex().encode(), stands.encode().hex().encode())
    return hash_bytes(text)


def note(
    store: FileStore, call: dict[str, Any], consumed: list[dict[str, Any]], result: str
) -> None:
    """Note a successful run's result under its call's content key."""
    key = content_key(call, consumed)
    store.update_ref(NAMESPACE, key, lambda known: _first(result, known)[:4])


def reuse(
    store: FileStore, call_fp: str, call: dict[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """Serve the call from an earlier run of another call with the same content key:
    record and publish a result of its own; return it, or None when there is none."""
    consumed = would_consume(store, call)
    if not consumed:
        return None
    for earlier_fp in store.get_ref(NAMESPACE, content_key(call, consumed)):
        earlier = _standing(store, earlier_fp, call_fp)
        if earlier is None:
            continue
        provenance = dict(earlier.get("provenance") or {})
        provenance["reused"] = {"call": earlier["call"], "result": earlier_fp}
        record = {**earlier, "call": call_fp, "consumed": consumed, "provenance": provenance}
        result_fp = store.add_bytes(layout.canonical(record), kind="result")
        # signed as the runner signs what it records, before any ref names it: what is
        # reused was served (trusted) here, so this store vouches for the copy
        policy.sign(store, result_fp, call_fp)
        store.update_ref(cache.CALLS, call_fp, functools.partial(_first, result_fp))
        return result_fp, record
    return None


def _first(new: str, known: list[str]) -> list[str]:
    return [new, *(fp for fp in known if fp != new)]


def _standing(store: FileStore, fp: str, call_fp: str) -> dict[str, Any] | None:
    if fp not in store:
        return None
    try:
        record = cache.load_result(store, fp)
    except (InvalidCall, StoreError, OSError):
        return None
    if (
        record.get("status") != SUCCESS
        or record.get("call") == call_fp
        or not all(ref in store for ref in cache.referenced(record))
        or not cache.served(store, fp, record)  # never launder a result no trusted key signed
    ):
        return None
    return record


def reused_from(result: dict[str, Any] | None) -> str | None:
    """The call an earlier result was reused from, if it was."""
    reused = ((result or {}).get("provenance") or {}).get("reused")
    return reused.get("call") if isinstance(reused, dict) else None
