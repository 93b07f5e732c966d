"""The far side of an SSH remote: ``scalems-store serve --stdio PATH``.

Run by the client over ``ssh``, as git runs ``git-upload-pack``. It answers the
requests of :mod:`.wire` with a :class:`.peer.LocalPeer` on the store at PATH, so
what it receives is written exactly as a local write is: staged, verified,
published by rename, refs last. A request that fails is answered with an error
message and the exchange goes on; the end of stdin ends it.
"""

from __future__ import annotations

from typing import IO, Any

from scalems_store.core.errors import StoreError
from scalems_store.remote import lookup, packs, wire
from scalems_store.remote.bucket import read_signatures
from scalems_store.remote.peer import LocalPeer

WHERE = "client"


def serve(path: str, create: bool, inp: IO[bytes], out: IO[bytes]) -> None:
    """Answer requests on *inp* / *out* for the store at *path* until *inp* ends."""
    from scalems_store.store.filestore import FileStore

    try:
        peer = LocalPeer(FileStore(path, create=create))
    except StoreError as exc:
        wire.send_message(out, _error(exc))
        return
    with peer:
        wire.send_message(out, wire.HELLO)
        while (frame := wire.receive(inp, WHERE)) is not None:
            request = wire.parse(frame, WHERE)
            wire.send_message(out, answer(peer, request, inp, out))


def answer(
    peer: LocalPeer, request: dict[str, Any], inp: IO[bytes], out: IO[bytes]
) -> dict[str, Any]:
    """Carry out one request (reading or writing its stream); return the reply."""
    op = request.get("op")
    if op == "put":
        reader = wire.StreamReader(inp, WHERE)
        try:
            return {"count": len(packs.receive(peer.store, reader))}  # type: ignore[arg-type]
        except StoreError as exc:
            return _error(exc)
        finally:
            reader.drain()
    if op == "get":
        writer = wire.StreamWriter(out)
        try:
            entries, _ = wire.read_manifest(request.get("manifest"))
            packs.write(peer.store, entries, writer)  # type: ignore[arg-type]
        except StoreError as exc:
            return _error(exc)
        finally:
            writer.end()
        return {"done": True}
    try:
        return _simple(peer, op, request)
    except StoreError as exc:
        return _error(exc)
    except (KeyError, TypeError, ValueError) as exc:
        return {"error": f"bad request {str(op)[:40]!r}: {exc}", "type": "RemoteError"}


def _simple(peer: LocalPeer, op: Any, request: dict[str, Any]) -> dict[str, Any]:
    if op == "have":
        return {"have": sorted(peer.have([str(fp) for fp in request["fingerprints"]]))}
    if op == "closure":
        names = request["names"]
        closure = peer.closure(
            None if names is None else [str(n) for n in names], bool(request["labels"])
        )
        return {
            "manifest": wire.manifest(closure.entries, closure.refs),
            "sizes": closure.sizes,
            "labels": closure.labels,
        }
    if op == "settled":
        refs, digests = wire.read_ref_summaries(request["refs"])
        labels = wire.read_labels(request["labels"])
        listed = [i for i in range(len(refs)) if i not in digests]
        some, named = peer.settled([refs[i] for i in listed], labels)
        same = {listed[i] for i in some} | wire.settled_digests(peer.store, digests)
        return {"refs": sorted(same), "labels": sorted(named)}
    if op == lookup.OP:  # exec --remote's closure and result records, in one exchange
        return lookup.answer(peer.store, request)
    if op == "update":
        _, refs = wire.read_manifest(request["manifest"])
        try:
            signatures = read_signatures(request.get("signatures", []))
        except ValueError as exc:
            return {"error": f"bad signatures in a request: {exc}", "type": "RemoteError"}
        peer.update(refs, wire.read_labels(request["labels"]), signatures)
        return {"done": True}
    return {"error": f"unknown request {str(op)[:40]!r}", "type": "RemoteError"}


def _error(exc: StoreError) -> dict[str, Any]:
    return {"error": str(exc), "type": type(exc).__name__}
