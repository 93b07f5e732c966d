"""The framed exchange between ``scalems-store`` and ``scalems-store serve --stdio``.

Each frame is a 4-byte big-endian length and that many bytes. A message is one
frame of UTF-8 JSON; a stream (a pack) is any number of data frames ended by an
empty frame. The server speaks first: :data:`HELLO`, or an ``error`` message.
Then the client sends a request and reads its reply, one at a time::

    {"op": "have", "fingerprints": [...]}      -> {"have": [...]}
    {"op": "closure", "names": [...] | null,
     "labels": bool}                          -> {"entries": [...], "refs": [...], ...}
    {"op": "put"} + pack stream               -> {"count": n}
    {"op": "get", "entries": [...]}           -> pack stream + {"done": true}
    {"op": "settled", "refs": [[ns, key,
     values | digest], ...], "labels": {...}}  -> {"refs": [i, ...], "labels": [...]}
    {"op": "update", "manifest": {...},
     "labels": {...}, "signatures": [...]}    -> {"done": true}

Any reply may be ``{"error": "...", "type": "ObjectNotFound"}`` instead; after a
stream, the sender always ends it, so the two sides stay in step.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any

from scalems_store.core.errors import RemoteError
from scalems_store.core.fingerprint import hash_bytes
from scalems_store.core.layout import is_fingerprint
from scalems_store.maint.bundle import FORMAT, Entry, parse_manifest
from scalems_store.store.refs import Ref, is_hex, valid_label, valid_namespace

HELLO = {"protocol": "scalems-remote", "version": 1}
MAX_FRAME = 16 << 20
_HEADER = struct.Struct(">I")
_DATA = 1 << 20
"""Bytes per data frame a stream writer sends."""


def send(out: IO[bytes], payload: bytes) -> None:
    """Write one frame."""
    out.write(_HEADER.pack(len(payload)))
    out.write(payload)


def send_message(out: IO[bytes], message: dict[str, Any]) -> None:
    """Write one JSON message and flush it."""
    send(out, json.dumps(message, separators=(",", ":")).encode())
    out.flush()


def receive(inp: IO[bytes], where: str) -> bytes | None:
    """Read one frame; None at a clean end of the stream (before a header).

    Raises:
        RemoteError: the stream ends inside a frame, or a frame is too long.
    """
    header = _exactly(inp, _HEADER.size, where, allow_end=True)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise RemoteError(f"{where}: bad frame of {length} bytes (not speaking our protocol?)")
    payload = _exactly(inp, length, where, allow_end=False)
    assert payload is not None
    return payload


def receive_message(inp: IO[bytes], where: str) -> dict[str, Any]:
    """Read one JSON message.

    Raises:
        RemoteError: the connection closed, or the frame is not a JSON object.
    """
    frame = receive(inp, where)
    if frame is None:
        raise RemoteError(f"{where}: the connection closed")
    return parse(frame, where)


def _exactly(inp: IO[bytes], size: int, where: str, *, allow_end: bool) -> bytes | None:
    parts = []
    left = size
    while left:
        chunk = inp.read(left)
        if not chunk:
            if allow_end and left == size:
                return None
            raise RemoteError(f"{where}: the connection closed in the middle of a frame")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


class StreamWriter:
    """A binary stream written as data frames; :meth:`end` sends the empty frame."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.buffer = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.buffer += data
        while len(self.buffer) >= _DATA:
            send(self.out, bytes(self.buffer[:_DATA]))
            del self.buffer[:_DATA]
        return len(data)

    def flush(self) -> None:
        """Data is sent in whole frames; :meth:`end` sends the rest."""

    def end(self) -> None:
        """Send what is buffered and the end of the stream."""
        if self.buffer:
            send(self.out, bytes(self.buffer))
            self.buffer.clear()
        send(self.out, b"")
        self.out.flush()


class StreamReader:
    """The binary stream that data frames carry, up to the empty frame (then b"")."""

    def __init__(self, inp: IO[bytes], where: str) -> None:
        self.inp, self.where = inp, where
        self.frame = b""
        self.pos = 0
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        while self.pos >= len(self.frame):
            if self.ended:
                return b""
            frame = receive(self.inp, self.where)
            if frame is None:
                raise RemoteError(f"{self.where}: the connection closed in the middle of a pack")
            self.frame, self.pos, self.ended = frame, 0, not frame
        end = len(self.frame) if size < 0 else self.pos + size
        chunk = self.frame[self.pos : end]
        self.pos += len(chunk)
        return chunk

    def drain(self) -> None:
        """Read and drop the rest of the stream (after the reader stopped early)."""
        while self.read(_DATA):
            pass


def parse(frame: bytes, where: str) -> dict[str, Any]:
    """The JSON object *frame* holds.

    Raises:
        RemoteError: it holds none.
    """
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError):
        message = None
    if not isinstance(message, dict):
        raise RemoteError(f"{where}: not a message of our protocol: {frame[:60]!r}")
    return message


def manifest(entries: list[Entry], refs: list[Ref]) -> dict[str, Any]:
    """Objects and refs as a bundle manifest (how they travel in messages)."""
    return {
        **FORMAT,
        "objects": [
            {"fingerprint": e.fingerprint, "kind": e.kind, "refs": list(e.refs)} for e in entries
        ],
        "refs": [{"namespace": r.namespace, "key": r.key, "values": r.values} for r in refs],
    }


def read_manifest(value: Any) -> tuple[list[Entry], list[Ref]]:
    """The objects and refs of a manifest in a message, each checked.

    Raises:
        ArchiveError: it is not a valid manifest.
    """
    return parse_manifest(json.dumps(value).encode())


_SUMMARY_ABOVE = 64
"""A ref with more values than this is asked about by the digest of its values."""


def values_digest(values: list[str]) -> str:
    """The digest of a ref's values, as :func:`ref_summaries` sends it."""
    return hash_bytes("\n".join(sorted(set(values))).encode())


def ref_summaries(refs: list[Ref]) -> list[list[Any]]:
    """*refs* as a ``settled`` request asks about them: the values of a small ref, the
    digest of a large one's (a store of many results sends a line each, not them all)."""
    return [
        [
            r.namespace,
            r.key,
            list(r.values) if len(r.values) <= _SUMMARY_ABOVE else values_digest(r.values),
        ]
        for r in refs
    ]


def read_ref_summaries(value: Any) -> tuple[list[Ref], dict[int, tuple[str, str, str]]]:
    """The refs of a ``settled`` request, in place (a summarised one with no values),
    and the summarised ones by position: ``(namespace, key, digest)``.

    Raises:
        RemoteError: not a list of ``[namespace, key, values | digest]``.
    """
    refs: list[Ref] = []
    digests: dict[int, tuple[str, str, str]] = {}
    if not isinstance(value, list):
        raise RemoteError("bad refs in a 'settled' request")
    for i, item in enumerate(value):
        ok = isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
        ok = ok and valid_namespace(item[0]) and isinstance(item[1], str)
        ok = ok and is_fingerprint(item[1])
        if ok and isinstance(item[2], str) and is_hex(item[2], 64):
            digests[i] = (item[0], item[1], item[2])
            refs.append(Ref(item[0], item[1], []))
        elif (
            ok
            and isinstance(item[2], list)
            and all(isinstance(v, str) and is_fingerprint(v) for v in item[2])
        ):
            refs.append(Ref(item[0], item[1], list(item[2])))
        else:
            raise RemoteError(f"bad ref in a 'settled' request: {str(item)[:80]!r}")
    return refs, digests


def settled_digests(store: Any, digests: dict[int, tuple[str, str, str]]) -> set[int]:
    """Which summarised refs *store* holds with exactly the values summarised."""
    same = set()
    for i, (namespace, key, digest) in digests.items():
        there = store.get_ref(namespace, key)
        if there and key in store and values_digest(there) == digest:
            same.add(i)
    return same


def read_labels(value: Any) -> dict[str, str]:
    """Labels in a message, each name and fingerprint checked.

    Raises:
        RemoteError: not a mapping of label names to full fingerprints.
    """
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and valid_label(k) and isinstance(v, str) and is_fingerprint(v)
        for k, v in value.items()
    ):
        raise RemoteError(f"bad labels in a message: {str(value)[:80]!r}")
    return dict(value)
