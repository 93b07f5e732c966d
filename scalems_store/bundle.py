"""Bundles: one file carrying the closure of some objects from one store to another.

A bundle is an uncompressed tar: first ``bundle.json`` (the manifest: each
object's fingerprint, kind and references, and the refs to recreate), then one
member ``objects/<fingerprint>`` per object. The closure of an object is the
object, everything it references (recursively), and for an object that is a
ref key (a call), the recorded ref values (its results) and their closure.

Import streams each object into ``tmp/`` while hashing it and publishes it
only if the bytes match its name; refs are recreated only when every object
they name is present. Importing twice is harmless.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterable
from typing import IO, Any

from . import layout
from .errors import ArchiveError, FingerprintMismatch, InvalidPath, StoreError
from .store import FileStore

FORMAT = {"format": "scalems-bundle", "version": 1}
MANIFEST = "bundle.json"
_MAX_MANIFEST = 256 << 20


def closure(
    store: FileStore, fingerprints: Iterable[str]
) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """Return the objects reachable from *fingerprints* and the refs keyed by any of them."""
    keyed: dict[str, list[tuple[str, list[str]]]] = {}
    for space, key, values in store.iter_refs():
        keyed.setdefault(key, []).append((space, values))
    pending = [store.resolve(fp) for fp in fingerprints]
    seen: dict[str, None] = {}
    refs: list[tuple[str, str, list[str]]] = []
    while pending:
        fp = pending.pop()
        if fp in seen or fp not in store:
            continue
        seen[fp] = None
        pending.extend(store.object_refs(fp))
        for space, values in keyed.get(fp, ()):
            present = [value for value in values if value in store]
            refs.append((space, fp, present))
            pending.extend(present)
    return _dependencies_first(store, sorted(seen)), refs


def _dependencies_first(store: FileStore, objects: list[str]) -> list[str]:
    """Order objects so that each comes after everything it references.

    An import cut short then holds only objects whose references arrived too.
    """
    wanted = set(objects)
    ordered: dict[str, None] = {}
    for root in objects:
        stack = [(root, False)]
        while stack:
            fp, expanded = stack.pop()
            if fp in ordered:
                continue
            if expanded:
                ordered[fp] = None
                continue
            stack.append((fp, True))
            stack.extend(
                (ref, False)
                for ref in store.object_refs(fp)
                if ref in wanted and ref not in ordered
            )
    return list(ordered)


def export(store: FileStore, fingerprints: Iterable[str], out: IO[bytes]) -> int:
    """Write the bundle of the closure of *fingerprints* to the binary stream *out*.

    Returns:
        The number of objects written.
    """
    objects, refs = closure(store, fingerprints)
    manifest = {
        **FORMAT,
        "objects": [
            {"fingerprint": fp, "kind": store.kind(fp), "refs": list(store.object_refs(fp))}
            for fp in objects
        ],
        "refs": [{"namespace": space, "key": key, "values": values} for space, key, values in refs],
    }
    data = json.dumps(manifest, sort_keys=True, indent=1).encode()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MANIFEST, len(data), _Bytes(data))
        for fp in objects:
            path = store.object_path(fp)
            with open(path, "rb") as stream:
                _add(tar, f"objects/{fp}", os.fstat(stream.fileno()).st_size, stream)
    return len(objects)


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.pos + size
        chunk, self.pos = self.data[self.pos : end], min(end, len(self.data))
        return chunk


def _add(tar: tarfile.TarFile, name: str, size: int, stream: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o444
    tar.addfile(info, stream)


def import_bundle(store: FileStore, stream: IO[bytes]) -> list[str]:
    """Verify and add every object of a bundle read from *stream*; recreate its refs.

    Returns:
        The fingerprints of the objects in the bundle.

    Raises:
        ArchiveError: the bundle is not a bundle, is truncated, or lists an
            object it does not hold (nothing unverified is published).
        FingerprintMismatch: an object's bytes do not match its name; the
            objects verified before it stay (they are valid), nothing else does.
    """
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            manifest = _read_manifest(tar)
            kinds = {o["fingerprint"]: (o["kind"], o["refs"]) for o in manifest["objects"]}
            imported: list[str] = []
            for member in tar:
                if member.name == MANIFEST and not imported:
                    continue  # iteration replays the manifest, already read
                fp = _member_fingerprint(member, kinds)
                source = tar.extractfile(member)
                assert source is not None  # regular members always have data
                _import_object(store, fp, source, *kinds[fp])
                imported.append(fp)
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveError(f"bundle is truncated or corrupt: {exc}") from exc
    missing = sorted(set(kinds) - set(imported))
    if missing:
        raise ArchiveError(
            f"bundle lists {len(missing)} objects it does not contain, e.g. {missing[0]}"
        )
    for ref in manifest["refs"]:
        values = [v for v in ref["values"] if v in store]
        if ref["key"] in store and values:
            merged = values + [
                v for v in store.get_ref(ref["namespace"], ref["key"]) if v not in values
            ]
            store.set_ref(ref["namespace"], ref["key"], merged)
    return imported


def _read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile() or first.size > _MAX_MANIFEST:
        raise ArchiveError("not a scalems bundle: it does not start with bundle.json")
    source = tar.extractfile(first)
    try:
        manifest = json.loads(source.read() if source else b"")
        if {k: manifest.get(k) for k in FORMAT} != FORMAT:
            raise ValueError(
                f"unsupported bundle format {manifest.get('format')!r} {manifest.get('version')!r}"
            )
        for item in manifest["objects"]:
            layout.normalize(item["fingerprint"])
        return dict(manifest)
    except (ValueError, KeyError, TypeError, StoreError) as exc:
        raise ArchiveError(f"not a scalems bundle: bad manifest ({exc})") from exc


def _member_fingerprint(member: tarfile.TarInfo, kinds: dict[str, Any]) -> str:
    fp = member.name.removeprefix("objects/")
    if not member.isfile() or not member.name.startswith("objects/") or fp not in kinds:
        raise ArchiveError(f"unexpected bundle member {member.name!r}")
    return fp


def _import_object(
    store: FileStore, fp: str, source: IO[bytes], kind: str, refs: list[str]
) -> None:
    """Stream one object into the store, publishing it only if it hashes to *fp*.

    An object the store already has is still hashed, so a corrupt bundle is
    reported whatever the store holds.
    """
    try:
        store.add_stream(source, kind=kind, refs=refs, expect=fp)
    except FingerprintMismatch as exc:
        raise FingerprintMismatch(f"bundle object {fp} is corrupt: {exc}") from None


def open_output(path: str) -> IO[bytes]:
    """Open *path* for writing a bundle (refusing to overwrite)."""
    try:
        return open(path, "xb")
    except FileExistsError:
        raise InvalidPath(f"{path!r} already exists") from None
