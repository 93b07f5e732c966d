"""Minimal valid call and result records, for store tests that need records but no runner."""

from __future__ import annotations

from typing import Any

from scalems_store import FileStore
from scalems_store.core import layout
from scalems_store.objects.files import Meta

_CALL: dict[str, Any] = {
    "args": [],
    "decoder": "dill",
    "encoder": "dill",
    "environment": None,
    "func": "00",
    "kwargs": {},
    "outputs": ["return_value"],
    "requirements": {},
    "skeleton": None,
}


def uri(fp: str | None) -> str | None:
    return None if fp is None else layout.to_uri(fp)


def call_record(
    skeleton: str | None = None, upstream: tuple[str, ...] = (), **fields: Any
) -> bytes:
    """The bytes of a call record naming *skeleton* and taking the return value of each
    *upstream* call as an input."""
    record: dict[str, Any] = {**_CALL, "skeleton": uri(skeleton), **fields}
    if upstream:
        record["inputs"] = [
            {"call": layout.to_uri(fp), "path": None, "to": None} for fp in sorted(upstream)
        ]
    return layout.canonical(record)


def result_record(
    call: str | None,
    *,
    stdout: str | None = None,
    stderr: str | None = None,
    directory: str | None = None,
    status: str = "success",
    **fields: Any,
) -> bytes:
    """The bytes of a result record of *call* naming the given objects."""
    record = {
        "call": call,
        "decoder": "dill",
        "encoder": "dill",
        "exception": None,
        "return_value": None,
        "status": status,
        "stdout": uri(stdout),
        "stderr": uri(stderr),
        "directory": uri(directory),
        **fields,
    }
    return layout.canonical(record)


def forge(store: FileStore, data: bytes, kind: str) -> str:
    """Store *data* and record it as a *kind* by hand, bypassing the store's checks, as a
    damaged meta file or an older, buggier writer could; return its fingerprint."""
    fp = store.add_bytes(data)
    store.objects.write_meta(fp, Meta(kind, ()), store.tmp, durable=False)
    return fp
