"""What an object's own bytes say it is and refers to: the one source of references.

A store has four kinds of objects. Blobs and trees refer to nothing. Call and
result records are canonical JSON, and name the objects they need:

* a **call** record: its ``skeleton`` tree (``blake3:<hex>`` or null), the blob
  of each module of its recorded ``code`` (``{"pkg/mod.py": "blake3:<hex>"}``,
  present from record version 2, when the call needs code of the user's), the
  blob of each file passed by content (``files``: ``[{"file": "blake3:<hex>",
  "name": "ext.cfg"}]``, present only when not empty) and, in a
  call graph, the upstream call of each of its ``inputs`` (a list of
  ``{"call": "blake3:<hex>", "path": ..., "to": ...}``, present only when not
  empty, so that calls without inputs keep their fingerprints);
* a **result** record: its ``call`` (64 hex digits), its ``stdout``,
  ``stderr`` and ``directory`` (``blake3:<hex>``, or another URI scheme such as
  ``file://`` from the SCALE-MS entry point, which names no stored object, or
  null), and for each input it ``consumed`` the upstream ``call`` and the
  upstream ``result`` it used.

gc, bundles, verify and cache hits all read references here, from the bytes;
``meta/`` files and the index only cache what this module says. Nothing here
does I/O.
"""

from __future__ import annotations

import json
from typing import Any

from scalems_store.core import layout
from scalems_store.core.errors import InvalidContent

BLOB, TREE, CALL, RESULT = "blob", "tree", "call", "result"
KINDS = (BLOB, TREE, CALL, RESULT)
RECORD_KINDS = (CALL, RESULT)

CALL_KEYS = frozenset(
    (
        "func",
        "args",
        "kwargs",
        "outputs",
        "requirements",
        "skeleton",
        "environment",
        "encoder",
        "decoder",
    )
)
RESULT_KEYS = frozenset(
    ("return_value", "exception", "stdout", "stderr", "directory", "encoder", "decoder")
)
_REQUIRED = {CALL: CALL_KEYS, RESULT: RESULT_KEYS}
URI_FIELDS = ("stdout", "stderr", "directory")
CONTENT_KEYED = ("cutoff",)
"""Ref namespaces whose keys are content keys, not objects (``refs/cutoff/<key>``: early
cutoff on content, see :mod:`scalems_call.execution.cutoff`); their values are objects."""
CALLS = "calls"
"""The ref namespace of the results recorded for each call (``refs/calls/<call>``, newest
first): each must be a result record whose ``call`` is that call."""


def check_kind(kind: str) -> str:
    """Return *kind* if it is one of :data:`KINDS`.

    Raises:
        InvalidContent: another kind.
    """
    if kind not in KINDS:
        raise InvalidContent(f"unknown object kind {kind!r} (expected one of {', '.join(KINDS)})")
    return kind


def decode(data: bytes | str, kind: str) -> dict[str, Any]:
    """Decode a record of *kind* (``call`` or ``result``) and check its shape.

    Raises:
        InvalidContent: the bytes are not a JSON object with the record's fields.
    """
    return _shaped(_load(data, kind), kind)


def _load(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidContent(f"malformed {what} record: not JSON ({exc})") from None


def _shaped(record: Any, kind: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise InvalidContent(f"malformed {kind} record: not a JSON object")
    missing = sorted(_REQUIRED[kind] - record.keys())
    if missing:
        raise InvalidContent(f"malformed {kind} record: missing {', '.join(missing)}")
    return record


def record_references(record: dict[str, Any], kind: str) -> tuple[str, ...]:
    """The fingerprints a decoded record of *kind* refers to, sorted, each once.

    Raises:
        InvalidContent: a reference field holds something that is not a reference.
    """
    return tuple(sorted({fp for fp, _ in typed_references(record, kind)}))


def typed_references(record: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    """``(fingerprint, kind it must be)`` of each reference of a decoded record of *kind*:
    a result's stdout and stderr are blobs, its directory a tree, its call and inputs'
    calls calls, its inputs' results results; a call's skeleton is a tree.

    Raises:
        InvalidContent: a reference field holds something that is not a reference.
    """
    found: list[tuple[str, str]] = []

    def add(value: Any, field: str, role: str) -> bool:
        named: set[str] = set()
        if _uri(value, field, named):
            found.append((named.pop(), role))
            return True
        return False

    if kind == CALL:
        add(record.get("skeleton"), "skeleton", TREE)
        code = record.get("code", {})
        if not isinstance(code, dict):
            raise InvalidContent("malformed call record: code must be an object")
        for path in sorted(code):
            if not add(code[path], "code", BLOB):
                raise InvalidContent(f"malformed call record: code {path!r} names no blob")
        for item in _listed(record, "files", "call"):
            if not add(item.get("file"), "file", BLOB):
                raise InvalidContent("malformed call record: a file names no blob")
        for item in _listed(record, "inputs", "call"):
            if not add(item.get("call"), "input call", CALL):
                raise InvalidContent("malformed call record: an input names no call")
        return found
    call = record.get("call")
    if call is not None:
        if not isinstance(call, str) or not layout.is_fingerprint(call):
            raise InvalidContent(f"malformed result record: bad call {call!r}")
        found.append((call, CALL))
    for field in URI_FIELDS:
        add(record.get(field), field, TREE if field == "directory" else BLOB)
    for item in _listed(record, "consumed", "result"):
        if not add(item.get("call"), "consumed call", CALL):
            raise InvalidContent("malformed result record: a consumed entry names no call")
        add(item.get("result"), "consumed result", RESULT)
    return found


def _listed(record: dict[str, Any], field: str, kind: str) -> list[dict[str, Any]]:
    items = record.get(field, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise InvalidContent(f"malformed {kind} record: {field} must be a list of objects")
    return items


def _uri(value: Any, field: str, found: set[str]) -> bool:
    """Add the fingerprint of a ``blake3:`` URI to *found*; True if *value* named one.

    Null and URIs of other schemes (``file://``) name no stored object.
    """
    if value is None:
        return False
    if not isinstance(value, str):
        raise InvalidContent(f"malformed record: {field} is not a URI: {value!r}")
    if not value.startswith(layout.URI_SCHEME):
        if "://" in value:
            return False
        raise InvalidContent(f"malformed record: {field} is not a URI: {value!r}")
    hexpart = value[len(layout.URI_SCHEME) :]
    if not layout.is_fingerprint(hexpart):
        raise InvalidContent(f"malformed record: {field} is not a full fingerprint: {value!r}")
    found.add(hexpart)
    return True


def references(kind: str, data: bytes) -> tuple[str, ...]:
    """The fingerprints an object of *kind* with content *data* refers to, sorted.

    Raises:
        InvalidContent: *data* is not a record of *kind* (blobs and trees refer to
            nothing; whether bytes are a valid tree is checked by the archive parser).
    """
    check_kind(kind)
    if kind not in RECORD_KINDS:
        return ()
    return record_references(decode(data, kind), kind)


def might_be_record(head: bytes) -> bool:
    """Whether bytes starting with *head* could be a record (a JSON object)."""
    return head.lstrip(b" \t\r\n")[:1] == b"{"


def sniff(data: bytes) -> tuple[str | None, tuple[str, ...]]:
    """The record kind and references of *data* when it is a valid record, judged
    from the bytes alone; ``(None, ())`` for anything else.

    For damaged or missing side files: gc follows these references whatever a
    side file says, so that it never deletes what a record names.
    """
    kind, typed = sniff_typed(data)
    return kind, tuple(sorted({fp for fp, _ in typed}))


def sniff_typed(data: bytes) -> tuple[str | None, list[tuple[str, str]]]:
    """Like :func:`sniff`, with the kind each reference must be (see
    :func:`typed_references`)."""
    if not might_be_record(data[:64]):
        return None, []
    try:
        loaded = _load(data, "record")
    except InvalidContent:
        return None, []
    found: str | None = None
    refs: list[tuple[str, str]] = []
    for kind in RECORD_KINDS:
        try:
            refs.extend(typed_references(_shaped(loaded, kind), kind))
        except InvalidContent:
            continue
        found = found or kind
    return found, refs


def check_claim(
    fingerprint: str, kind: str, data: bytes, refs: tuple[str, ...] | list[str] | None
) -> tuple[str, ...]:
    """Check that *data* is an object of *kind* referring to exactly *refs* (when given,
    as a bundle manifest or a caller claims); return the references the bytes name.

    Raises:
        InvalidContent: the bytes are not of that kind, or name other references.
    """
    try:
        found = references(kind, data)
    except InvalidContent as exc:
        raise InvalidContent(f"object {fingerprint} is not a {kind}: {exc}") from None
    if refs is not None and tuple(sorted(set(refs))) != found:
        raise InvalidContent(
            f"object {fingerprint}: claimed references {sorted(set(refs))} are not the "
            f"{len(found)} its content names"
        )
    return found
