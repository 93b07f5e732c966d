"""``rerun --check --deep``: run the whole graph below a call again, from scratch, and name
every call whose output differs from what is recorded.

The graph's call records and skeletons are copied into a scratch store (in
the store's ``tmp/``, under a lock gc respects), where every call runs again,
each taking its inputs from the others' fresh results. Each fresh result is
then compared with the call's current result (:mod:`scalems_call.execution.check`);
the fresh objects are added to the store (unreferenced: nothing recorded
changes, and gc removes them in time).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

from scalems_call.engines import graph
from scalems_call.engines.schedule import InlineExecutor, Outcome, here, run_graph
from scalems_call.execution import cache
from scalems_call.execution.check import differences
from scalems_store import FileStore
from scalems_store.core.fsutil import new_locked_dir, remove_tree
from scalems_store.maint import reach


def rerun_deep(
    store: FileStore, root: str, *, timeout: float | None = None, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Run the graph below call *root* again in a scratch store; compare each call.

    Returns:
        One record per call, upstream first: ``call``, ``recorded`` and ``rerun``
        result fingerprints, ``state`` of the rerun, and its ``differences``.
    """
    plan = graph.plan(store, [root])
    lock, scratch_dir = new_locked_dir(store.tmp, "rerun-")
    try:
        with FileStore(os.path.join(scratch_dir, "store"), durable=False) as scratch:
            for fp in plan.order:
                _copy(store, scratch, fp)
            outcomes = run_graph(
                scratch, [root], engine=InlineExecutor, submit=here(scratch, timeout), force=True
            )
            return [_compared(store, scratch, fp, outcomes[fp], log) for fp in plan.order]
    finally:
        with contextlib.suppress(OSError):
            remove_tree(scratch_dir)
        os.close(lock)


def _copy(store: FileStore, scratch: FileStore, fp: str) -> None:
    """Put a call record and its skeleton (nothing of its results) in the scratch store."""
    for needed in [*store.references(fp), fp]:
        _copy_object(store, scratch, needed)


def _copy_object(source: FileStore, dest: FileStore, fp: str) -> None:
    """Add object *fp* of *source* to *dest* by its whole bytes (a tree stored thin is
    rebuilt, and stored thin again where it lands)."""
    with source.open(fp) as stream:
        dest.add_stream(stream, kind=source.kind(fp), expect=fp)


def _compared(
    store: FileStore, scratch: FileStore, fp: str, outcome: Outcome, log: Callable[[str], None]
) -> dict[str, Any]:
    recorded = cache.newest(store, fp)
    row: dict[str, Any] = {
        "call": fp,
        "recorded": recorded,
        "rerun": outcome.result,
        "state": outcome.state,
        "differences": [],
    }
    if outcome.result is None or outcome.record is None:
        row["differences"] = [f"the rerun did not run: {outcome.problem}"]
        return row
    for needed in reach.closure(scratch, [outcome.result]):
        if needed not in store and needed in scratch:
            _copy_object(scratch, store, needed)
    if recorded is None:
        row["differences"] = ["nothing recorded to compare with"]
        return row
    row["differences"] = differences(store, cache.load_result(store, recorded), outcome.record)
    if row["differences"]:
        log(f"call {fp[:12]}: {len(row['differences'])} difference(s)")
    return row
