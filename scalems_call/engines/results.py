"""Results as :class:`CallResult` objects, with ``file://`` URIs into the local store."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalems_call.identity.compat import CallResult, result_from_record
from scalems_store import FileStore
from scalems_store.core import layout

if TYPE_CHECKING:
    from scalems_call.engines.schedule import Outcome


def to_result(store: FileStore, outcome: Outcome) -> CallResult:
    """The :class:`CallResult` of how one call of a graph ended."""
    if outcome.result is None or outcome.record is None:
        return CallResult(exception=outcome.problem, status=outcome.state, call=outcome.call)
    cached = outcome.state == "cached"
    return to_call_result(store, outcome.result, outcome.record, cached=cached)


def to_call_result(
    store: FileStore, result_fp: str, record: dict[str, Any], *, cached: bool = False
) -> CallResult:
    """Turn a stored result record into a :class:`CallResult` with local ``file://`` URIs."""
    return result_from_record(
        record,
        stdout=_local_uri(store, record.get("stdout")),
        stderr=_local_uri(store, record.get("stderr")),
        directory=_local_uri(store, record.get("directory")),
        fingerprint=result_fp,
        cached=cached,
    )


def _local_uri(store: FileStore, uri: str | None) -> str | None:
    """The ``file://`` URI of a stored object (as ``Path.as_uri`` writes it; hex names
    need no quoting, so only the store's directory is quoted, once per store)."""
    if uri is None:
        return None
    fp = layout.normalize(uri)
    return f"{_objects_uri(store.objects.top)}/{fp[:2]}/{fp[2:]}"


@functools.lru_cache(maxsize=16)
def _objects_uri(top: str) -> str:
    return Path(top).as_uri()
