"""Find calls and their recorded results in a store, cheaply (no dill, no subprocess).

Results are recorded under ``refs/calls/<call-fp>``, newest first. A call has
a cache hit when its newest result succeeded and the result record and every
object it references are present.
"""

from __future__ import annotations

from typing import Any

from scalems_store import FileStore, content
from scalems_store.content import CALLS
from scalems_store.errors import StoreError

from .errors import InvalidCall, NoResult
from .records import SUCCESS, parse_call, parse_result


def resolve_call(store: FileStore, text: str) -> str:
    """Return the full fingerprint of a call record given a fingerprint or prefix.

    Raises:
        InvalidCall: the object is not a call record.
    """
    fp = store.resolve(text)
    kind = store.kind(fp)
    if kind != "call":
        raise InvalidCall(f"object {fp} is a {kind}, not a call")
    return fp


def load_call(store: FileStore, fp: str) -> dict[str, Any]:
    """Read and check the call record *fp*."""
    return parse_call(store.read_bytes(fp))


def load_result(store: FileStore, fp: str) -> dict[str, Any]:
    """Read and check the result record *fp*."""
    return parse_result(store.read_bytes(fp))


def results(store: FileStore, call_fp: str) -> list[str]:
    """Return the fingerprints of the call's recorded results, newest first."""
    return store.get_ref(CALLS, call_fp)


def referenced(record: dict[str, Any]) -> tuple[str, ...]:
    """Return the fingerprints a result record points at (as the store reads them)."""
    return content.record_references(record, content.RESULT)


def hit(store: FileStore, call_fp: str) -> tuple[str, dict[str, Any]] | None:
    """Return ``(result fp, record)`` when the call's newest result can be served, else None.

    It can when it is a result record of this very call (not one a ref or a bundle
    merely says is), it succeeded, and every object it names is present.
    """
    recorded = results(store, call_fp)
    if not recorded or recorded[0] not in store:
        return None
    try:
        record = load_result(store, recorded[0])
    except (InvalidCall, StoreError, OSError):
        return None
    if (
        record.get("call") != call_fp
        or record.get("status") != SUCCESS
        or not all(fp in store for fp in referenced(record))
    ):
        return None
    return recorded[0], record


def latest(store: FileStore, text: str) -> tuple[str, dict[str, Any]]:
    """Return the newest result of a call, or the result named directly by *text*.

    Raises:
        NoResult: the call has not been run (or its result is gone).
    """
    fp = store.resolve(text)
    if store.kind(fp) == "result":
        return fp, load_result(store, fp)
    call_fp = resolve_call(store, fp)
    result_fp = newest(store, call_fp)
    if result_fp is None:
        raise NoResult(f"call {call_fp} has no recorded result (run it with 'scalems-call exec')")
    return result_fp, load_result(store, result_fp)


def newest(store: FileStore, call_fp: str) -> str | None:
    """The call's newest recorded result still in the store, or None."""
    return next((fp for fp in results(store, call_fp) if fp in store), None)
