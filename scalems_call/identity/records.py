"""Call and result records: the SCALE-MS ``CallPack`` / ``ResultPack`` fields as canonical JSON.

Their shape and references are :mod:`scalems_store.objects.content`'s, which gc and bundles
read too.

This module does not import dill, so that reading records (a cache hit) stays cheap.

A call's identity is the BLAKE3 of its canonical record. What is in it:
``func`` (the function, by reference), ``func_code`` (a fingerprint of its
source), ``args`` and ``kwargs`` (deterministic pickles), ``skeleton`` (the tree
of input files), ``environment`` (variable overrides), ``requirements`` (ranks
and the like), ``outputs``, ``encoder`` and ``decoder``. What is deliberately
not in it: the host, the time, the store's location, the Python hash seed and
the user: the same call anywhere is the same call.
"""

from __future__ import annotations

from typing import Any, TypedDict

from scalems_call.identity.errors import InvalidCall
from scalems_store.core.errors import InvalidContent
from scalems_store.objects import content
from scalems_store.objects.content import CALL_KEYS, RESULT_KEYS

OUTPUTS = ("return_value", "exception", "directory", "stdout", "stderr")
SUCCESS = "success"
STATUSES = ("success", "failed", "error", "timeout", "killed")


class CallPack(TypedDict, total=False):
    """Trivially serializable representation of a function call (SCALE-MS format).

    ``func``, ``args`` and ``kwargs`` values are hex-encoded *encoder* output;
    ``skeleton`` is a ``blake3:<hex>`` tree URI or None; ``func_code`` is added
    by scalems_call and makes editing the function change the call's identity.
    """

    func: str
    args: list[str]
    kwargs: dict[str, str]
    outputs: list[str]
    requirements: dict[str, Any]
    skeleton: str | None
    environment: dict[str, str] | None
    encoder: str
    decoder: str
    func_code: str


class ResultPack(TypedDict, total=False):
    """Trivially serializable representation of a call's result (SCALE-MS format).

    ``stdout``, ``stderr`` and ``directory`` are URIs: ``blake3:<hex>`` in a
    store (location independent), ``file://`` from the legacy entry point.
    scalems_call adds ``call``, ``status``, ``traceback`` and ``provenance``.
    """

    return_value: str | None
    exception: str | None
    stdout: str | None
    stderr: str | None
    directory: str | None
    encoder: str
    decoder: str
    call: str
    status: str
    traceback: str | None
    provenance: dict[str, Any]


def parse(data: bytes | str, kind: str) -> dict[str, Any]:
    """Decode a record of *kind* (``call`` or ``result``), checking its shape, its
    references and its encoder.

    Raises:
        InvalidCall: the data is not such a record.
    """
    try:
        record = content.decode(data, kind)
        content.record_references(record, kind)
    except InvalidContent as exc:
        raise InvalidCall(str(exc)) from None
    for field in ("encoder", "decoder"):
        if record[field] != "dill":
            raise InvalidCall(
                f"unsupported {field} {record[field]!r} in {kind} record (only 'dill')"
            )
    return record


def parse_call(data: bytes | str) -> dict[str, Any]:
    """Decode and check a call record."""
    record = parse(data, content.CALL)
    if not isinstance(record["args"], list) or not isinstance(record["kwargs"], dict):
        raise InvalidCall("malformed call record: args must be a list and kwargs an object")
    return record


def parse_result(data: bytes | str) -> dict[str, Any]:
    """Decode and check a result record."""
    return parse(data, content.RESULT)


__all__ = ["CALL_KEYS", "OUTPUTS", "RESULT_KEYS", "STATUSES", "SUCCESS", "CallPack", "ResultPack"]
