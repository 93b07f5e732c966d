"""Pack calls into a store, run them by fingerprint, and read back their results."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scalems_store import FileStore, layout
from scalems_store.layout import canonical

from . import cache
from .compat import CallResult, build_call, result_from_record
from .errors import InvalidCall
from .execute import Execution, execute


def pack(
    func: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    store: FileStore,
    skeleton: str | os.PathLike[str] | None = None,
    environment: Mapping[str, str] | None = None,
    requirements: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
) -> str:
    """Store the call ``func(*args, **kwargs)`` as a call record; return its fingerprint.

    Args:
        func: An importable callable (serialized by reference with dill).
        args, kwargs: Arguments; they must serialize deterministically.
        store: The store to write to.
        skeleton: A directory (added as a tree) or a tree fingerprint: the
            initial contents of the call's working directory.
        environment: Environment variable overrides for the call.
        requirements: Run-time requirements, e.g. ``{"ranks": 2}``.
        outputs: Result fields to record (default: all).

    Raises:
        SerializationError: the function or an argument cannot be serialized deterministically.
        InvalidCall: a malformed skeleton, environment, requirement or output.
    """
    tree = _skeleton(store, skeleton)
    record = build_call(
        func,
        args=args,
        kwargs=kwargs,
        requirements=requirements,
        outputs=outputs,
        skeleton=None if tree is None else layout.to_uri(tree),
        environment=environment,
    )
    return store.add_bytes(canonical(record), kind="call", refs=[tree] if tree else [])


def _skeleton(store: FileStore, skeleton: str | os.PathLike[str] | None) -> str | None:
    if skeleton is None:
        return None
    if isinstance(skeleton, os.PathLike) or os.path.isdir(skeleton):
        if not os.path.isdir(skeleton):
            raise InvalidCall(f"skeleton {os.fspath(skeleton)!r} is not a directory")
        return store.add_tree(skeleton)
    fp = store.resolve(skeleton)
    if store.kind(fp) != "tree":
        raise InvalidCall(f"skeleton {fp} is a {store.kind(fp)}, not a tree")
    return fp


def run(
    fingerprint: str,
    *,
    store: FileStore,
    force: bool = False,
    timeout: float | None = None,
) -> CallResult:
    """Run a packed call by fingerprint (or prefix), or serve its cached result.

    A result is served from the store when the call's latest run succeeded and
    every object it references is present; otherwise the call runs in a child
    process (see :mod:`scalems_call.execute`).

    Raises:
        InvalidCall: the object is not a well-formed call record.
        LaunchError: the call cannot be started here.
    """
    call_fp = cache.resolve_call(store, fingerprint)
    done = execute(store, call_fp, force=force, timeout=timeout)
    return to_call_result(store, done.result, done.record, cached=done.cached)


def submit(
    func: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    store: FileStore,
    force: bool = False,
    timeout: float | None = None,
    **options: Any,
) -> CallResult:
    """Pack then run: ``run(pack(func, args, kwargs, store=store, **options), store=store)``."""
    fingerprint = pack(func, args, kwargs, store=store, **options)
    return run(fingerprint, store=store, force=force, timeout=timeout)


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
    if uri is None:
        return None
    return Path(store.object_path(layout.normalize(uri))).as_uri()


__all__ = ["Execution", "pack", "run", "submit", "to_call_result"]
