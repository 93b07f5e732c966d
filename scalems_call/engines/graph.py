"""The graph below some calls, planned from the store: who needs whom, and where each stands.

Each call record names the calls whose outputs it takes (its ``inputs``); the
graph below a call is that call and, recursively, every call it takes from.
Since a call can only name calls that existed when it was packed, the graph
has no cycle. States, judged bottom-up:

``running``
    a live lease holds it (a runner is at it now);
``failed``
    its newest result did not succeed;
``upstream-failed``
    a call it takes from failed (or is upstream-failed): it cannot run;
``missing``
    it has never been run (or its result is gone);
``untrusted``, ``unsigned``
    its only results are data this store does not serve: signed by no key it
    trusts, or not signed at all (they came by import); ``exec`` runs it again;
``stale``
    it has a result, but a call below is not cached, or would now deliver other
    content than the result consumed: the next ``exec`` may run it again (not if
    the call below, rerun, delivers the same content); or the user's code on disk
    now differs from the code the call recorded (its note says which module: exec
    still serves the result of the recorded code; pack again to run the new code);
``cached``
    its newest trusted result stands: ``exec`` serves it.

Every state but ``untrusted`` and ``unsigned`` is judged from the call's newest
result that a trusted key signed (see :mod:`scalems_call.execution.cache`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scalems_call.execution import cache
from scalems_store import FileStore
from scalems_store.core import layout
from scalems_store.maint import reach
from scalems_store.store import lease

CACHED, STALE, MISSING, RUNNING, FAILED, UPSTREAM_FAILED = (
    "cached",
    "stale",
    "missing",
    "running",
    "failed",
    "upstream-failed",
)
UNTRUSTED, UNSIGNED = "untrusted", "unsigned"


@dataclass
class Node:
    """One call of a graph."""

    call: str
    record: dict[str, Any]
    upstream: list[str] = field(default_factory=list)
    downstream: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """The graph below some calls: nodes, upstream first."""

    roots: list[str]
    nodes: dict[str, Node]
    order: list[str]
    """Every call, each after all it takes from."""


def plan(store: FileStore, roots: Iterable[str]) -> Plan:
    """Read the graph below *roots* (full call fingerprints) from the store.

    Raises:
        InvalidCall: a call record is malformed, or an input is not a call.
        ObjectNotFound: a call record the graph needs is not in the store.
    """
    roots = list(dict.fromkeys(roots))
    nodes: dict[str, Node] = {}
    pending = list(roots)
    while pending:
        fp = pending.pop()
        if fp in nodes:
            continue
        record = cache.load_call(store, fp)
        upstream = list(
            dict.fromkeys(layout.normalize(i["call"]) for i in record.get("inputs", []))
        )
        nodes[fp] = Node(fp, record, upstream)
        pending.extend(up for up in upstream if up not in nodes)
    for node in nodes.values():
        for up in node.upstream:
            nodes[up].downstream.append(node.call)
    return Plan(roots, nodes, _upstream_first(nodes, roots))


def _upstream_first(nodes: dict[str, Node], roots: list[str]) -> list[str]:
    """Every call in *nodes*, each after all it takes from, in the order it takes them."""
    return reach.dependencies_first(roots, lambda fp: reversed(nodes[fp].upstream))


@dataclass
class Standing:
    """Where one call of a graph stands."""

    state: str
    result: str | None = None
    """Its newest result, if any."""
    record: dict[str, Any] | None = None
    """That result's record."""
    because: str | None = None
    """For upstream-failed: the call below that failed; for untrusted and unsigned: who
    signed the newest result (``untrusted (signed by ed25519:...)``)."""
    reason: str | None = None
    """Why, in words: a failed call's error line, what makes a stale call stale."""
    note: str | None = None
    """What else to know: ``code changed since pack: mdsim.py`` (then stale, though exec
    serves the result the recorded code gave), ``code not recorded`` (an old record)."""


def states(store: FileStore, graph: Plan) -> dict[str, Standing]:
    """Judge every call of *graph*, bottom-up (see the module's docstring)."""
    running = lease.live(store.root)
    known: dict[str, bool] = {}
    calls = {fp: node.record for fp, node in graph.nodes.items()}  # read by the plan
    found: dict[str, Standing] = {}
    for fp in graph.order:
        judged = _judge(store, graph.nodes[fp], found, known, calls, fp in running)
        if judged.state != CACHED and judged.note is None:
            judged.note = code_note(graph.nodes[fp].record)
        found[fp] = judged
    return found


def _judge(
    store: FileStore,
    node: Node,
    below: dict[str, Standing],
    known: dict[str, bool],
    calls: dict[str, dict[str, Any]],
    running: bool,
) -> Standing:
    newest = cache.newest(store, node.call)
    record = None
    if newest is not None:
        try:
            record = cache.load_result(store, newest)
        except Exception:  # a damaged result record: as good as none (verify reports it)
            newest = None
    if running:
        return Standing(RUNNING, newest, record)
    broken = [up for up in node.upstream if below[up].state in (FAILED, UPSTREAM_FAILED)]
    if broken:
        first = below[broken[0]]
        failed = first.because or broken[0]
        return Standing(
            UPSTREAM_FAILED, newest, record, failed, reason=f"call below {failed[:12]} failed"
        )
    if record is None:
        return _untrusted(store, node.call)
    if record.get("status") != "success":
        return Standing(FAILED, newest, record, reason=error_line(record))
    # an upstream call with a note (its code changed since pack) still serves its result
    waiting = [up for up in node.upstream if below[up].state != CACHED and not below[up].note]
    if not waiting and cache.hit(store, node.call, known, calls):
        note = code_note(node.record)
        if note is not None and note.startswith(CODE_CHANGED):
            return Standing(STALE, newest, record, reason=note, note=note)
        return Standing(CACHED, newest, record, note=note or reuse_note(record))
    return Standing(STALE, newest, record, reason=_stale(store, node, record, below, waiting))


def error_line(record: dict[str, Any]) -> str:
    """The last line of a failed result's traceback (``ValueError: bad seed``), read as
    text: nothing is unpickled to show it."""
    lines = [line for line in str(record.get("traceback") or "").splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else f"status {record.get('status')}"


def _stale(
    store: FileStore,
    node: Node,
    record: dict[str, Any],
    below: dict[str, Standing],
    waiting: list[str],
) -> str:
    """Why a call with a successful result is not served as it is."""
    if waiting:
        more = f" (and {len(waiting) - 1} more)" if len(waiting) > 1 else ""
        return f"call below {waiting[0][:12]} is {below[waiting[0]].state}{more}"
    if cache.current(store, node.call) is None:
        return "an object its result names is missing"
    for item in record.get("consumed") or []:
        up = layout.normalize(item["call"])
        newer = below[up].result
        if newer is not None and layout.to_uri(newer) != item.get("result"):
            return f"call below {up[:12]} has a new result"
    return "its result no longer stands for the call"


CODE_CHANGED = "code changed since pack: "


def reuse_note(result: dict[str, Any] | None) -> str | None:
    """``reused: same inputs as CALL`` for a result served by early cutoff on content."""
    from scalems_call.execution.cutoff import reused_from

    earlier = reused_from(result)
    return None if earlier is None else f"reused: same inputs as {earlier[:12]}"


def code_note(record: dict[str, Any]) -> str | None:
    """``code changed since pack: mdsim.py`` when modules of a call's recorded code differ
    from those on this machine's import path now; ``code not recorded`` for a call packed
    before records carried code; else None."""
    from scalems_call.execution import code

    if code.not_recorded(record):
        return "code not recorded"
    changed = code.changed(record)
    return CODE_CHANGED + ", ".join(changed) if changed else None


def _untrusted(store: FileStore, call_fp: str) -> Standing:
    """A call with no result this store serves: missing, or only results it does not trust."""
    newest = cache.newest(store, call_fp, trusted=False)
    if newest is None:
        return Standing(MISSING)
    try:
        record = cache.load_result(store, newest)
    except Exception:  # a damaged result record: as good as none (verify reports it)
        return Standing(MISSING)
    verdict = cache.verdict(store, newest, call_fp)
    described = verdict.describe()
    return Standing(verdict.state, newest, record, described, reason=described)
