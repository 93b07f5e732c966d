"""``exec --remote``'s question in one exchange: the closure of some names, with the
records of the results recorded for the calls they name.

A remote cache hit needs the closure (which results a call has, what they reference)
and the newest result records (status, signatures): two exchanges with a
transport's ``closure`` then ``get``. Over SSH, the ``lookup`` request asks both
at once: the far side answers with the closure and, inline, the records (at most
:data:`RECORDS` a call, newest first) with their signatures. They are checked and
published here as a pack is (:func:`scalems_store.remote.packs.receive`: hashed,
kind and references checked, signatures kept beside them). A far side that does
not know ``lookup`` (an older ``scalems-store``) answers that it does not, and the
two exchanges are made instead. Other transports make the two exchanges (a path
needs no network; S3 and HTTP run none of our code).
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from typing import TYPE_CHECKING, Any

from scalems_store.core.errors import RemoteError
from scalems_store.maint import bundle
from scalems_store.maint.bundle import Entry
from scalems_store.objects import content
from scalems_store.remote import packs, wire

if TYPE_CHECKING:
    from scalems_store.remote.peer import Closure, Peer
    from scalems_store.store.filestore import FileStore

RECORDS = 16
"""Result records sent a call, newest first (a call run many times sends its newest)."""
OP = "lookup"


def closure_with_records(store: FileStore, peer: Peer, names: list[str], labels: bool) -> Closure:
    """The closure of *names* on *peer* (as :meth:`Peer.closure`); over SSH, with the result
    records of the calls named already published in *store*, in the same exchange."""
    from scalems_store.remote.ssh import SshPeer

    if not isinstance(peer, SshPeer):
        return peer.closure(names, labels)
    try:
        reply = peer._ask({"op": OP, "names": names, "labels": labels}, "while looking up")
    except RemoteError as exc:
        if f"unknown request {OP!r}" not in str(exc):
            raise
        return peer.closure(names, labels)  # an older far side
    return read_reply(store, reply, peer.where)


def read_reply(store: FileStore, reply: dict[str, Any], where: str) -> Closure:
    """The closure a ``lookup`` reply from *where* says, its records checked and published
    in *store* (all or none).

    Raises:
        StoreError: a reply that is not what :func:`answer` sends, or records that do not
            check (:class:`RemoteError`, or what a pack refused says).
    """
    entries, refs = wire.read_manifest(reply.get("manifest"))
    sizes = reply.get("sizes")
    if not isinstance(sizes, dict) or not all(type(v) is int for v in sizes.values()):
        raise RemoteError(f"{where}: bad sizes in its reply")
    from scalems_store.remote.peer import Closure

    found = Closure(entries, refs, sizes, wire.read_labels(reply.get("labels")))
    _publish(store, found, reply.get("records"), where)
    return found


def answer(store: FileStore, request: dict[str, Any]) -> dict[str, Any]:
    """The far side's reply to a ``lookup`` request on *store*."""
    from scalems_store.remote.peer import closure

    names = [str(n) for n in request["names"]]
    found = closure(store, names, bool(request["labels"]))
    named = {store.resolve(name) for name in names}
    records = {}
    for ref in found.refs:
        if ref.namespace == content.CALLS and ref.key in named:
            for fp in ref.values[:RECORDS]:
                records[fp] = {
                    "data": base64.b64encode(store.read_bytes(fp)).decode(),
                    "signatures": [
                        {"key": s.key, "signature": s.signature} for s in store.signatures(fp)
                    ],
                }
    return {
        "manifest": wire.manifest(found.entries, found.refs),
        "sizes": found.sizes,
        "labels": found.labels,
        "records": records,
    }


def _publish(store: FileStore, found: Closure, records: Any, where: str) -> None:
    """Check and publish the records of a reply, as the pack they would have come in."""
    if not isinstance(records, dict):
        raise RemoteError(f"{where}: bad records in its reply")
    kinds = {e.fingerprint: e for e in found.entries}
    entries: list[Entry] = []
    datas: dict[str, bytes] = {}
    signatures: list[dict[str, str]] = []
    for fp, item in records.items():
        entry = kinds.get(fp)
        if entry is None or entry.kind != content.RESULT or not isinstance(item, dict):
            raise RemoteError(f"{where}: sent {str(fp)[:70]!r}, not a result of its closure")
        try:
            datas[fp] = base64.b64decode(item["data"], validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteError(f"{where}: bad record {fp}: {exc}") from None
        listed = item.get("signatures") or []
        if not isinstance(listed, list) or not all(isinstance(s, dict) for s in listed):
            raise RemoteError(f"{where}: bad signatures of record {fp}")
        entries.append(entry)
        signatures += [{**s, "result": fp} for s in listed]
    if not entries:
        return
    manifest = json.dumps(
        {
            **bundle.FORMAT,
            "objects": [
                {"fingerprint": e.fingerprint, "kind": e.kind, "refs": list(e.refs)}
                for e in entries
            ],
            "refs": [],
            "signatures": signatures,
        },
        sort_keys=True,
    ).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, bundle.MANIFEST, manifest)
        for entry in entries:
            _add(tar, "objects/" + entry.fingerprint, datas[entry.fingerprint])
    buffer.seek(0)
    packs.receive(store, buffer)  # hashed and checked whole, then published, as any pack


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o444
    tar.addfile(info, io.BytesIO(data))
