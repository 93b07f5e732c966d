"""Packs: how objects travel between stores, many in one stream.

A pack is a bundle (:mod:`scalems_store.maint.bundle`: the same format and the
same checks) that carries no refs: the manifest, then each object after what it
references. A pack is received whole or not at all: every object in it is
hashed and checked against its name and kind before any is published. Refs
travel apart, last (:mod:`.sync`). A transfer sends packs of at most
:data:`PACK_OBJECTS` objects or :data:`PACK_BYTES` bytes (a larger object
travels alone), so that an interrupted transfer keeps every pack that arrived
and, run again, sends only the rest.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, cast

from scalems_store.maint import bundle
from scalems_store.maint.bundle import Entry
from scalems_store.objects import content
from scalems_store.store.filestore import FileStore
from scalems_store.store.refs import Signature

PACK_OBJECTS = 2000
PACK_BYTES = 64 << 20

Progress = Callable[[int], None]
"""Called with the number of bytes just moved (an increment)."""


def split(entries: list[Entry], sizes: dict[str, int]) -> Iterator[list[Entry]]:
    """*entries* cut into packs, in order (each pack after those it depends on)."""
    pack: list[Entry] = []
    weight = 0
    for entry in entries:
        size = sizes.get(entry.fingerprint, 0)
        if pack and (len(pack) >= PACK_OBJECTS or weight + size > PACK_BYTES):
            yield pack
            pack, weight = [], 0
        pack.append(entry)
        weight += size
    if pack:
        yield pack


def write(
    store: FileStore, entries: list[Entry], out: IO[bytes], progress: Progress | None = None
) -> None:
    """Write the pack of *entries* (in order) from *store* to *out*.

    Raises:
        CorruptObject: an object no longer matches its name (what was written is
            not a valid pack: the receiver refuses it).
    """
    bundle.write(store, entries, [], out, progress)


def write_from(
    entries: list[Entry],
    chunks: Callable[[str], Iterable[bytes]],
    sizes: dict[str, int],
    out: IO[bytes],
    signatures: dict[str, list[Signature]] | None = None,
) -> None:
    """Write the pack of *entries* to *out*, each object's bytes from ``chunks(fp)``
    (*sizes* long), with the *signatures* of its results: for a transport whose far
    side is not a store (S3, HTTP). Nothing is checked here: the receiver checks every
    byte (and the trust every signature, when a result is served)."""
    inside = {e.fingerprint for e in entries if e.kind == content.RESULT}
    signed = [
        {"result": fp, "key": sig.key, "signature": sig.signature}
        for fp, sigs in sorted((signatures or {}).items())
        if fp in inside
        for sig in sorted(set(sigs))
    ]
    manifest = json.dumps(
        {
            **bundle.FORMAT,
            "objects": [_entry(e) for e in entries],
            "refs": [],
            "signatures": signed,
        },
        sort_keys=True,
    ).encode()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _member(tar, bundle.MANIFEST, len(manifest), iter([manifest]))
        for entry in entries:
            fp = entry.fingerprint
            _member(tar, "objects/" + fp, sizes[fp], iter(chunks(fp)))


def _entry(entry: Entry) -> dict[str, object]:
    return {"fingerprint": entry.fingerprint, "kind": entry.kind, "refs": list(entry.refs)}


def _member(tar: tarfile.TarFile, name: str, size: int, chunks: Iterator[bytes]) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o444
    tar.addfile(info, _Chunks(chunks))


class _Chunks:
    """A reader over an iterator of byte strings, for tarfile."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.rest = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while len(self.rest) < size or size < 0:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.rest += chunk
        if size < 0:
            size = len(self.rest)
        data, self.rest = self.rest[:size], self.rest[size:]
        return data


def receive(store: FileStore, stream: IO[bytes], progress: Progress | None = None) -> list[str]:
    """Verify every object of the pack read from *stream*, then publish them all.

    Returns:
        The fingerprints the pack held.

    Raises:
        ArchiveError, FingerprintMismatch, InvalidContent: as
            :func:`scalems_store.maint.bundle.import_bundle`; nothing of the pack is published.
    """
    counted = stream if progress is None else cast(IO[bytes], _Counted(stream, progress))
    return bundle.import_bundle(store, counted)


class _Counted:
    """A binary stream that reports the bytes read through it."""

    def __init__(self, inner: IO[bytes], progress: Progress) -> None:
        self.inner, self.progress = inner, progress

    def read(self, size: int = -1) -> bytes:
        chunk = self.inner.read(size)
        if chunk:
            self.progress(len(chunk))
        return chunk
