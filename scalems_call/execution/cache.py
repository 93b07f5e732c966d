"""Find calls and their recorded results in a store, cheaply (no dill, no subprocess).

Results are recorded under ``refs/calls/<call-fp>``, newest first in the order
this store recorded them. Only a result a trusted key signed is served
(:mod:`scalems_store.trust.policy`): the call's newest such result is its
current one; a call has a cache hit when that result succeeded and the result
record and every object it references are present. A result nobody trusted
signed (one that came by import) is data: shown, never served or decoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from scalems_call.identity.errors import InvalidCall, NoResult
from scalems_call.identity.records import SUCCESS, parse_call, parse_result
from scalems_store import FileStore, hash_bytes
from scalems_store.core import layout
from scalems_store.core.errors import StoreError
from scalems_store.objects import content
from scalems_store.objects.content import CALLS

if TYPE_CHECKING:
    from scalems_store.trust.policy import Verdict


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
    """Read and check the call record *fp*: what it is, its own bytes say.

    Raises:
        InvalidCall: the object is not a call record (the error says what it is).
    """
    data = store.read_bytes(fp)
    try:
        return parse_call(data)
    except InvalidCall:
        kind = store.kind(fp)
        if kind != "call":
            raise InvalidCall(f"object {fp} is a {kind}, not a call") from None
        raise


def load_result(store: FileStore, fp: str) -> dict[str, Any]:
    """Read and check the result record *fp*."""
    return parse_result(store.read_bytes(fp))


def results(store: FileStore, call_fp: str) -> list[str]:
    """Return the fingerprints of the call's recorded results, newest first."""
    return store.get_ref(CALLS, call_fp)


def referenced(record: dict[str, Any]) -> tuple[str, ...]:
    """Return the fingerprints a result record points at (as the store reads them)."""
    return content.record_references(record, content.RESULT)


def verdict(store: FileStore, result_fp: str, call_fp: str) -> Verdict:
    """Whether result *result_fp* of call *call_fp* may be served, and who signed it."""
    from scalems_store.trust import policy

    return policy.of(store).judge(result_fp, call_fp)


def served(store: FileStore, result_fp: str, record: dict[str, Any]) -> bool:
    """Whether the result may be served, decoded or fed to a call: a trusted key signed it
    (or the store serves unsigned results, by choice)."""
    call_fp = record.get("call")
    return isinstance(call_fp, str) and verdict(store, result_fp, call_fp).served


def trusted_newest(store: FileStore, call_fp: str) -> tuple[str, dict[str, Any]] | None:
    """``(result fp, record)`` of the call's newest result that may be served: present,
    readable, a result of this very call (not one a ref or a bundle merely says is),
    and signed by a trusted key; None if it has none."""
    for fp in results(store, call_fp):
        if fp not in store:
            continue
        try:
            record = load_result(store, fp)
        except (InvalidCall, StoreError, OSError):
            continue
        if record.get("call") == call_fp and served(store, fp, record):
            return fp, record
    return None


def current(store: FileStore, call_fp: str) -> tuple[str, dict[str, Any]] | None:
    """Return ``(result fp, record)`` of the call's newest trusted result if it can stand
    as the call's output, else None: it succeeded, and every object it names is present.
    Whether its inputs are still current is :func:`hit`'s question."""
    found = trusted_newest(store, call_fp)
    if found is None:
        return None
    record = found[1]
    if record.get("status") != SUCCESS or not all(fp in store for fp in referenced(record)):
        return None
    return found


def hit(
    store: FileStore,
    call_fp: str,
    known: dict[str, bool] | None = None,
    calls: Mapping[str, dict[str, Any]] | None = None,
) -> tuple[str, dict[str, Any]] | None:
    """Return ``(result fp, record)`` when the call's newest result can be served, else None.

    It can when it is :func:`current`, and, for a call in a graph, every upstream
    call is a hit too and would deliver today what the result consumed (the same
    upstream result, or one with the same content: early cutoff).

    Args:
        known: Calls already judged (True for a hit), shared across calls of one graph.
        calls: Call records read already (a graph's plan), by fingerprint.
    """
    known = {} if known is None else known
    found = current(store, call_fp)
    if found is not None and call_fp not in known:
        known[call_fp] = _inputs_current(store, call_fp, found[1], known, calls or {})
    return found if found is not None and known[call_fp] else None


def _inputs_current(
    store: FileStore,
    call_fp: str,
    result: dict[str, Any],
    known: dict[str, bool],
    calls: Mapping[str, dict[str, Any]],
) -> bool:
    consumed = result.get("consumed") or []
    call = calls.get(call_fp)
    if call is None:
        try:
            call = load_call(store, call_fp)
        except (InvalidCall, StoreError):
            return False
    wanted = {(layout.normalize(i["call"]), _key_path(i)) for i in call.get("inputs", [])}
    got = {(layout.normalize(c["call"]), c.get("path")) for c in consumed}
    if wanted != got:
        return False
    for upstream in {call for call, _ in wanted}:
        if upstream not in known and hit(store, upstream, known, calls) is None:
            known[upstream] = False
        if not known.get(upstream, False):
            return False
    return all(_delivers_the_same(store, item) for item in consumed)


def _key_path(item: dict[str, Any]) -> str | None:
    """The path under which an input is consumed: the return value (None) for an argument
    without a path; a skeleton entry without one takes the whole directory (``.``)."""
    if item.get("to") is not None:
        return item.get("path") or "."
    return item.get("path")


def _delivers_the_same(store: FileStore, item: dict[str, Any]) -> bool:
    found = current(store, layout.normalize(item["call"]))
    if found is None:
        return False
    if layout.to_uri(found[0]) == item.get("result"):
        return True
    try:
        return digest(store, found[1], item.get("path")) == item.get("content")
    except (InvalidCall, StoreError):
        return False


def digest(store: FileStore, result: dict[str, Any], path: str | None) -> str:
    """The fingerprint of what *result* delivers at *path*: its return value (None), its
    whole output directory (``.``: the tree's own fingerprint), or one file or
    directory of it (the BLAKE3 of a file's bytes; of a listing of a directory's
    members, modes and contents).

    Raises:
        InvalidCall: the output directory has no such path.
    """
    if path is None:
        return hash_bytes((result.get("return_value") or "").encode())
    directory = result.get("directory")
    if not directory:
        return hash_bytes(b"")
    if path == ".":
        return layout.normalize(directory)
    from scalems_call.execution.check import tree_summary
    from scalems_store.store.treeview import open_tree

    with open_tree(store, directory) as view:
        path = view.resolve(path)  # as delivered: the tree's own symlinks followed
    summary = tree_summary(store, directory)
    if path in summary and summary[path][0] != "directory":
        kind, _, content_digest = summary[path]
        return (
            content_digest if kind == "file" else hash_bytes(f"symlink:{content_digest}".encode())
        )
    prefix = path + "/"
    listing = {k[len(prefix) :]: v for k, v in summary.items() if k.startswith(prefix)}
    if not listing and path not in summary:
        raise InvalidCall(f"the output of call {str(result.get('call'))[:12]} has no {path!r}")
    return hash_bytes(layout.canonical(sorted(listing.items())))


def latest(store: FileStore, text: str) -> tuple[str, dict[str, Any]]:
    """Return the newest trusted result of a call (else its newest result, which is then
    data only: see :func:`served`), or the result named directly by *text*.

    Raises:
        NoResult: the call has not been run (or its result is gone).
    """
    fp = store.resolve(text)
    if store.kind(fp) == "result":
        return fp, load_result(store, fp)
    call_fp = resolve_call(store, fp)
    found = trusted_newest(store, call_fp)
    if found is not None:
        return found
    result_fp = newest(store, call_fp, trusted=False)
    if result_fp is None:
        raise NoResult(f"call {call_fp} has no recorded result (run it with 'scalems-call exec')")
    return result_fp, load_result(store, result_fp)


def newest(store: FileStore, call_fp: str, *, trusted: bool = True) -> str | None:
    """The call's newest recorded result still in the store that may be served (with
    *trusted* False: of any signer, or none), or None."""
    if trusted:
        found = trusted_newest(store, call_fp)
        return None if found is None else found[0]
    return next((fp for fp in results(store, call_fp) if fp in store), None)
