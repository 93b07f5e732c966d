"""Bundles: one file carrying the closure of some objects from one store to another.

A bundle is an uncompressed tar: first ``bundle.json`` (the manifest: each
object's fingerprint, kind, references and size, the refs to recreate and,
exported with ``labels=True``, the labels naming its objects, and the signatures of
its results, which live beside them outside every fingerprint), then
one member ``objects/<fingerprint>`` per object, each after everything it
references. The closure of an object is the object, everything its bytes
reference (recursively) and, for a call, the results recorded for it and
their closure.

Import is all or nothing. The manifest is checked whole first; every object is
then staged in ``tmp/`` while it is hashed; only when every object matches its
name, and its bytes are the kind and name the references the manifest says
(and, for an object the store has already, the kind the store knows), are
they published, their refs recreated and then their labels (unless the
importer declines them; a label the store already has for another object is
kept as it is, and reported). A bundle that disagrees with itself
or with the store is refused with one line naming the object, and the store is
left as it was. Importing twice is harmless.
"""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
from collections.abc import Callable, Iterable
from typing import IO, Any, NamedTuple

from scalems_store.core import layout
from scalems_store.core.errors import (
    ArchiveError,
    CorruptObject,
    FingerprintMismatch,
    InvalidContent,
    InvalidPath,
    StoreError,
)
from scalems_store.core.fingerprint import CHUNK, new_hasher
from scalems_store.core.fsutil import new_locked_dir, new_temp, remove_tree
from scalems_store.maint import reach
from scalems_store.objects import content, reading
from scalems_store.objects import thin as thin_objects
from scalems_store.objects.claims import check_tree
from scalems_store.objects.writer import Staged
from scalems_store.store.filestore import FileStore
from scalems_store.store.refs import Ref, Signature, is_hex, valid_label, valid_namespace
from scalems_store.tar import thintar
from scalems_store.tar.tarstream import MemberData, read_members
from scalems_store.tar.thintar import Header

FORMAT = {"format": "scalems-bundle", "version": 1}
THIN_VERSION = 2
"""The version of a bundle carrying a tree stored thin (its pieces as objects of their
own, its member the thin form): written only then, so that other bundles stay readable
by versions that predate thin trees."""
MANIFEST = "bundle.json"
_MAX_MANIFEST = 256 << 20
_PREFIX = "objects/"


class Entry(NamedTuple):
    """One object as a manifest lists it."""

    fingerprint: str
    kind: str
    refs: tuple[str, ...]


class Imported(NamedTuple):
    """What an import did."""

    objects: list[str]
    """Every object of the bundle, dependencies first."""
    new: int
    """How many of them the store did not have."""
    labels: dict[str, str]
    """The labels set (or already set so), name to fingerprint."""
    kept: dict[str, str]
    """Labels of the bundle not set, because the store's label of that name names
    another object (kept as it is): name to what the bundle said."""


# -- export --------------------------------------------------------------------


def closure(store: FileStore, fingerprints: Iterable[str]) -> tuple[list[Entry], list[Ref]]:
    """The objects reachable from *fingerprints*, each after what it references, and the
    refs keyed by any of them (a call's recorded results, those that are really its own).

    Raises:
        InvalidContent: an object recorded as a call or result is not one (corrupt).
    """
    keyed: dict[str, list[Ref]] = {}
    for ref in store.iter_refs():
        keyed.setdefault(ref.key, []).append(ref)
    found: dict[str, Entry] = {}
    refs: list[Ref] = []
    pending = [store.resolve(fp) for fp in fingerprints]
    while pending:
        fp = pending.pop()
        if fp in found or fp not in store:
            continue
        found[fp] = Entry(fp, store.kind(fp), store.references(fp))
        pending.extend(found[fp].refs)
        for ref in keyed.get(fp, ()):
            values = [v for v in ref.values if _belongs(store, ref, v)]
            refs.append(Ref(ref.namespace, fp, values))
            pending.extend(values)
    return _dependencies_first(found), refs


def _belongs(store: FileStore, ref: Ref, value: str) -> bool:
    """Whether *value* may travel under *ref*: present, and for ``calls`` a result of the key."""
    if value not in store:
        return False
    if ref.namespace != content.CALLS:
        return True
    try:
        record = content.decode(store.read_bytes(value, verify=False), content.RESULT)
    except (InvalidContent, StoreError):
        return False
    return record.get("call") == ref.key


def _dependencies_first(entries: dict[str, Entry]) -> list[Entry]:
    """Order entries so that each comes after everything it references."""
    ordered = reach.dependencies_first(
        sorted(entries), lambda fp: [r for r in entries[fp].refs if r in entries]
    )
    return [entries[fp] for fp in ordered]


def export(
    store: FileStore, fingerprints: Iterable[str], out: IO[bytes], *, labels: bool = False
) -> int:
    """Write the bundle of the closure of *fingerprints* to the binary stream *out*.

    Every object is hashed as it is written.

    Args:
        labels: Also carry every label of the store that names an object of the bundle.

    Returns:
        The number of objects written.

    Raises:
        CorruptObject: an object no longer matches its name (the bundle written so
            far is not valid: the caller removes it).
    """
    entries, refs = closure(store, fingerprints)
    write(store, entries, refs, out, labels=labels)
    return len(entries)


def write(
    store: FileStore,
    entries: list[Entry],
    refs: list[Ref],
    out: IO[bytes],
    progress: Callable[[int], None] | None = None,
    *,
    labels: bool = False,
) -> None:
    """Write the bundle of exactly *entries* (in order) and *refs* to *out*, hashing every
    object as it goes and reporting each chunk's bytes to *progress*; with *labels*, the
    labels naming its objects too.

    Raises:
        CorruptObject: as :func:`export`.
    """
    thin = {e.fingerprint for e in entries if e.kind == content.TREE and e.refs}
    manifest = {
        **FORMAT,
        "version": THIN_VERSION if thin else FORMAT["version"],
        "objects": [
            {"fingerprint": e.fingerprint, "kind": e.kind, "refs": list(e.refs)} for e in entries
        ],
        "refs": [{"namespace": r.namespace, "key": r.key, "values": r.values} for r in refs],
        "signatures": _signatures_of(store, entries),
    }
    if labels:
        inside = {e.fingerprint for e in entries}
        manifest["labels"] = {n: fp for n, fp in sorted(store.labels().items()) if fp in inside}
    data = json.dumps(manifest, sort_keys=True, indent=1).encode()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MANIFEST, len(data), _Checked(data, None))
        for entry in entries:
            fp = entry.fingerprint
            if fp in thin:  # checked whole (rebuilt from its pieces), then sent thin
                _checked_thin(store, fp)
            with reading.open_stored(store.objects, fp) as stream:
                size = os.fstat(stream.fileno()).st_size
                checked = _Checked(stream, None if fp in thin else fp, progress)
                _add(tar, _PREFIX + fp, size, checked)
                checked.finish()


def _checked_thin(store: FileStore, fp: str) -> None:
    try:
        store.check(fp)
    except CorruptObject as exc:
        raise CorruptObject(f"cannot export object {fp}: {exc}") from None


def _signatures_of(store: FileStore, entries: list[Entry]) -> list[dict[str, str]]:
    """The signatures recorded beside the results in *entries*, as the manifest lists them
    (each is checked by whoever trusts its key; a bundle vouches for nothing itself)."""
    return [
        {"result": entry.fingerprint, "key": sig.key, "signature": sig.signature}
        for entry in entries
        if entry.kind == content.RESULT
        for sig in sorted(store.signatures(entry.fingerprint))
    ]


class _Checked:
    """A reader for tarfile that hashes what it hands out and checks it at the end."""

    def __init__(
        self,
        source: bytes | IO[bytes],
        fingerprint: str | None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.source, self.pos, self.fp = source, 0, fingerprint
        self.hasher = new_hasher()
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        if isinstance(self.source, bytes):
            end = len(self.source) if size < 0 else self.pos + size
            chunk, self.pos = self.source[self.pos : end], min(end, len(self.source))
        else:
            chunk = self.source.read(size if size >= 0 else CHUNK)
        self.hasher.update(chunk)
        if self.progress is not None:
            self.progress(len(chunk))
        return chunk

    def finish(self) -> None:
        if self.fp is not None and self.hasher.hexdigest() != self.fp:
            raise CorruptObject(
                f"cannot export object {self.fp}: it is corrupt (its content no longer "
                "matches its name); see 'scalems-store verify'"
            )


def _add(tar: tarfile.TarFile, name: str, size: int, stream: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o444
    tar.addfile(info, stream)


def open_output(path: str) -> IO[bytes]:
    """Open *path* for writing a bundle (refusing to overwrite)."""
    try:
        return open(path, "xb")
    except FileExistsError:
        raise InvalidPath(f"{path!r} already exists") from None


# -- import --------------------------------------------------------------------


def import_bundle(store: FileStore, stream: IO[bytes]) -> list[str]:
    """Verify every object of a bundle read from *stream*, then add them, its refs and its
    labels; return the fingerprints of its objects (see :func:`import_objects`)."""
    return import_objects(store, stream).objects


def import_objects(store: FileStore, stream: IO[bytes], *, labels: bool = True) -> Imported:
    """Verify every object of a bundle read from *stream*, then add them and its refs and,
    with *labels*, its labels (a label the store has for another object is kept).

    Returns:
        What was imported.

    Raises:
        ArchiveError: the bundle is not a bundle, is truncated, or lists objects
            it does not hold. Nothing is published.
        FingerprintMismatch: an object's bytes do not match its name.
        InvalidContent: an object is not the kind, or does not name the references,
            that the manifest says, or that the store knows of it.
    """
    lock, staging = new_locked_dir(store.tmp, "import-")
    # what is published is pinned until the refs name it: a gc meanwhile keeps it
    with store.writer.pinned():
        try:
            try:
                with store.batch():  # made durable together, published after the checks
                    entries, refs, named, signatures, staged, thin = _read(store, stream, staging)
                    present = _check(store, entries, refs, staged, thin, staging)
                    # dependencies first, whatever order the bundle lists them in: a
                    # cut-short import leaves closures (never a thin tree without a piece)
                    ordered = _dependencies_first({e.fingerprint: e for e in entries})
                    for entry in ordered:
                        known = entry.fingerprint in present
                        head = thin.get(entry.fingerprint)
                        _publish(store, entry, staged[entry.fingerprint], known, head)
            finally:
                with contextlib.suppress(OSError):
                    remove_tree(staging)
        finally:
            os.close(lock)
        _record_signatures(store, entries, signatures, present)
        for ref in refs:
            store.update_ref(ref.namespace, ref.key, merger(store, ref))
        set_labels, kept = _label(store, named) if labels else ({}, {})
    objects = [entry.fingerprint for entry in entries]
    return Imported(objects, len(objects) - len(present), set_labels, kept)


def _label(store: FileStore, named: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Set the bundle's labels (last: what they name is published and pinned); one the
    store has for another object is kept and returned in the second dict."""
    ours = store.labels()
    kept = {name: fp for name, fp in named.items() if ours.get(name, fp) != fp}
    for name, fp in named.items():
        if name not in kept and ours.get(name) != fp:
            store.set_label(name, fp)
    return {n: fp for n, fp in named.items() if n not in kept}, kept


def _record_signatures(
    store: FileStore,
    entries: list[Entry],
    signatures: dict[str, list[Signature]],
    present: set[str],
) -> None:
    """Keep the bundle's signatures beside its results (before any ref names them), and
    mark each result the store did not have as imported: data, until a trusted key's
    signature holds (``trust sign-existing`` never vouches for it)."""
    for entry in entries:
        if entry.kind == content.RESULT:
            new = entry.fingerprint not in present
            found = signatures.get(entry.fingerprint, [])
            if new or found:
                store.add_signatures(entry.fingerprint, found, imported=new)


def merger(store: FileStore, ref: Ref) -> Callable[[list[str]], list[str]]:
    """What a bundle's ref makes of the store's: both sets of values; for the results of a
    call, the store's own first, in its own order, then the bundle's new ones. Which
    result is the latest is the store's order (when it recorded each), never a time a
    record claims: a bundle cannot make its result the latest by saying it ran in 2099.
    Elsewhere, the bundle's values first."""

    def merge(known: list[str]) -> list[str]:
        if ref.namespace != content.CALLS:
            return [*ref.values, *(v for v in known if v not in ref.values)]
        return [*known, *(v for v in ref.values if v not in known)]

    return merge


def _read(
    store: FileStore, stream: IO[bytes], staging: str
) -> tuple[
    list[Entry],
    list[Ref],
    dict[str, str],
    dict[str, list[Signature]],
    dict[str, Staged],
    dict[str, Header],
]:
    """Stage every object of the bundle, checked against its name; a tree sent thin (its
    header returned for each) is checked later, once its pieces are staged."""
    members = read_members(stream)
    first = next(members, None)
    if first is None or first[0].name != MANIFEST or first[0].size > _MAX_MANIFEST:
        raise ArchiveError("not a scalems bundle: it does not start with bundle.json")
    head = first[1].read()
    entries, refs, named = parse_bundle_manifest(head)
    signatures = parse_signatures(head)
    wanted = {entry.fingerprint for entry in entries}
    staged: dict[str, Staged] = {}
    thin: dict[str, Header] = {}
    for member, data in members:
        fp = member.name.removeprefix(_PREFIX)
        if not member.name.startswith(_PREFIX) or fp not in wanted or fp in staged:
            raise ArchiveError(f"unexpected bundle member {member.name!r}")
        staged[fp] = store.writer.stage(_chunks(data), staging)
        if staged[fp].fp != fp and _thin_head(staged[fp].path):
            thin[fp] = _thin_header(fp, staged[fp].path)
        elif staged[fp].fp != fp:
            raise FingerprintMismatch(
                f"bundle object {fp} is corrupt: its content has fingerprint {staged[fp].fp}"
            )
    missing = sorted(wanted - set(staged))
    if missing:
        raise ArchiveError(
            f"bundle lists {len(missing)} objects it does not contain, e.g. {missing[0]}"
        )
    results = {e.fingerprint for e in entries if e.kind == content.RESULT}
    stray = sorted(set(signatures) - results)
    if stray:
        raise ArchiveError(f"bundle signs {stray[0]}, which is not one of its results")
    return entries, refs, named, signatures, staged, thin


def _thin_head(path: str) -> bool:
    with open(path, "rb") as stream:
        return thintar.is_thin(stream.read(len(thintar.MAGIC)))


def _thin_header(fp: str, path: str) -> Header:
    with open(path, "rb") as stream:
        try:
            return thintar.read_header(stream, f"bundle object {fp}")
        except ArchiveError as exc:
            raise FingerprintMismatch(f"bundle object {fp} is corrupt: {exc}") from None


def _chunks(data: MemberData) -> Iterable[bytes]:
    while chunk := data.read(CHUNK):
        yield chunk


def parse_manifest(data: bytes) -> tuple[list[Entry], list[Ref]]:
    """Decode and check a bundle manifest, all of it: its objects and refs (see
    :func:`parse_bundle_manifest`)."""
    entries, refs, _ = parse_bundle_manifest(data)
    return entries, refs


def parse_bundle_manifest(data: bytes) -> tuple[list[Entry], list[Ref], dict[str, str]]:
    """Decode and check a bundle manifest, all of it: its objects, refs and labels (an
    optional ``labels`` object, name to the fingerprint of one of its objects).

    Raises:
        ArchiveError: not a manifest of a supported format, in one line.
    """
    try:
        manifest = json.loads(data)
        if (
            not isinstance(manifest, dict)
            or manifest.get("format") != FORMAT["format"]
            or manifest.get("version") not in (FORMAT["version"], THIN_VERSION)
        ):
            found = manifest if not isinstance(manifest, dict) else manifest.get("format")
            raise ValueError(f"unsupported bundle format {str(found)[:60]!r}")
        entries = [_entry(item) for item in _list(manifest, "objects")]
        refs = [_ref(item) for item in _list(manifest, "refs")]
        named = _labels(manifest.get("labels", {}), {e.fingerprint for e in entries})
    except (ValueError, RecursionError) as exc:
        raise ArchiveError(f"not a scalems bundle: bad manifest ({exc})") from None
    if len({e.fingerprint for e in entries}) != len(entries):
        raise ArchiveError("not a scalems bundle: bad manifest (an object is listed twice)")
    return entries, refs, named


def _labels(value: Any, inside: set[str]) -> dict[str, str]:
    """The ``labels`` of a manifest: valid names, each naming an object of the bundle."""
    if not isinstance(value, dict):
        raise ValueError("'labels' must be an object")
    for name, fp in value.items():
        if not valid_label(name):
            raise ValueError(f"bad label name {name[:40]!r}")
        if _fingerprint(fp) not in inside:
            raise ValueError(f"label {name!r} names {fp}, which the bundle does not hold")
    return dict(value)


def parse_signatures(data: bytes) -> dict[str, list[Signature]]:
    """The signatures a bundle manifest lists, by result (none in a manifest written before
    signatures existed).

    Raises:
        ArchiveError: an entry is not ``{"result", "key", "signature"}`` of hex.
    """
    signatures: dict[str, list[Signature]] = {}
    try:
        manifest = json.loads(data)
        listed = manifest.get("signatures", []) if isinstance(manifest, dict) else []
        if not isinstance(listed, list):
            raise ValueError("'signatures' must be a list")
        for item in listed:
            result, sig = _signature(item)
            signatures.setdefault(result, []).append(sig)
    except (ValueError, RecursionError, TypeError) as exc:
        raise ArchiveError(f"not a scalems bundle: bad manifest ({exc})") from None
    return signatures


def _signature(item: Any) -> tuple[str, Signature]:
    if not isinstance(item, dict):
        raise ValueError("a signature entry is not a JSON object")
    key, signature = item.get("key"), item.get("signature")
    if not isinstance(key, str) or not is_hex(key, 64):
        raise ValueError(f"bad signature key {str(key)[:70]!r} (64 lowercase hex)")
    if not isinstance(signature, str) or not is_hex(signature, 128):
        raise ValueError(f"bad signature {str(signature)[:70]!r} (128 lowercase hex)")
    return _fingerprint(item.get("result")), Signature(key, signature)


def _list(manifest: dict[str, Any], key: str) -> list[Any]:
    value = manifest.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{key!r} must be a list")
    return value


def _entry(item: Any) -> Entry:
    if not isinstance(item, dict):
        raise ValueError("an object entry is not a JSON object")
    fp, kind, refs = item.get("fingerprint"), item.get("kind"), item.get("refs")
    if kind not in content.KINDS:
        raise ValueError(f"object {str(fp)[:64]} has an unknown kind {str(kind)[:20]!r}")
    return Entry(_fingerprint(fp), kind, tuple(_fingerprints(refs, "refs")))


def _ref(item: Any) -> Ref:
    if not isinstance(item, dict):
        raise ValueError("a ref entry is not a JSON object")
    namespace = item.get("namespace")
    if not isinstance(namespace, str) or not valid_namespace(namespace):
        raise ValueError(f"bad ref namespace {str(namespace)[:40]!r}")
    return Ref(
        namespace, _fingerprint(item.get("key")), _fingerprints(item.get("values"), "values")
    )


def _fingerprints(values: Any, what: str) -> list[str]:
    if not isinstance(values, list):
        raise ValueError(f"{what} must be a list of fingerprints")
    return [_fingerprint(value) for value in values]


def _fingerprint(value: Any) -> str:
    if not isinstance(value, str) or not layout.is_fingerprint(value):
        raise ValueError(f"{str(value)[:70]!r} is not a full fingerprint (64 lowercase hex)")
    return value


def _check(
    store: FileStore,
    entries: list[Entry],
    refs: list[Ref],
    staged: dict[str, Staged],
    thin: dict[str, Header],
    staging: str,
) -> set[str]:
    """Refuse the whole bundle if an object is not what the manifest (or the store) says,
    or a ref names what it may not; return the objects the store has already. A tree
    sent thin must rebuild, from its pieces (in the bundle or the store), to its name."""
    kinds = {}
    present = set()
    for entry in entries:
        fp = entry.fingerprint
        if fp in store:
            present.add(fp)
        if fp in present and store.kind(fp) != entry.kind:
            raise InvalidContent(
                f"bundle says object {fp} is a {entry.kind}, but this store has it as a "
                f"{store.kind(fp)}; nothing was imported"
            )
        if fp in thin:
            _check_thin(store, entry, staged, thin, present, staging)
            kinds[fp] = (entry.kind, b"")
            continue
        data = b""
        if entry.kind in content.RECORD_KINDS:  # only a record's bytes say something here
            with open(staged[fp].path, "rb") as stream:
                data = stream.read()
        try:
            content.check_claim(fp, entry.kind, data, entry.refs)
            if entry.kind == content.TREE and fp not in present:
                check_tree(fp, staged[fp].path)
        except InvalidContent as exc:
            raise InvalidContent(f"bundle refused: {exc}; nothing was imported") from None
        kinds[fp] = (entry.kind, data)
    for ref in refs:
        for fp in [ref.key, *ref.values]:
            if fp not in kinds and fp not in store:
                raise ArchiveError(
                    f"bundle ref {ref.namespace}/{ref.key[:12]} names {fp}, "
                    "which neither the bundle nor this store holds"
                )
        if ref.namespace == content.CALLS:
            for fp in ref.values:
                _check_result_of(store, ref.key, fp, kinds)
    return present


def _check_thin(
    store: FileStore,
    entry: Entry,
    staged: dict[str, Staged],
    thin: dict[str, Header],
    present: set[str],
    staging: str,
) -> None:
    """Refuse a tree sent thin unless its pieces are the references the manifest says and
    rebuild (with its literal bytes) a tree archive whose fingerprint is its name."""
    fp, head = entry.fingerprint, thin[entry.fingerprint]
    pieces = tuple(sorted({piece.fp for piece in head.pieces}))
    if entry.kind != content.TREE:
        raise FingerprintMismatch(
            f"bundle object {fp} is corrupt: its content has fingerprint {staged[fp].fp}"
        )
    if tuple(sorted(set(entry.refs))) != pieces:
        raise InvalidContent(
            f"bundle refused: object {fp}: claimed references {sorted(set(entry.refs))} are "
            f"not the {len(pieces)} its content names; nothing was imported"
        )
    if fp in present:
        return  # the store's own copy stays: the bundle's bytes are not used

    def open_piece(piece: str) -> IO[bytes]:
        if piece in staged and piece not in thin:  # checked against its name already
            return open(staged[piece].path, "rb")
        try:
            stream = reading.open_stored(store.objects, piece)
        except StoreError:
            raise ArchiveError(
                f"bundle object {fp} needs piece {piece}, which neither the bundle nor "
                "this store holds"
            ) from None
        if thin_objects.is_thin(store.objects, piece, stream.fileno()):
            stream.close()  # its stored bytes are not its name's: no tree's piece
            raise ArchiveError(
                f"bundle object {fp} names as a piece {piece}, a tree stored thin here"
            )
        return stream

    # The archive is hashed whole, but written without its pieces (holes, never written):
    # the headers are checked on that, each piece must be the data of one file, which
    # the parse skips, so it reads the archive as it would the whole. A thin tree naming
    # a large blob many times thus costs the receiver its hashing, never its disk.
    fd, sparse = new_temp(staging, "whole-", lock=False)
    try:
        hasher = new_hasher(head.size)
        spans = iter(head.pieces)
        span, at = next(spans, None), 0
        with open(staged[fp].path, "rb") as stream:
            stream.seek(head.start)
            for chunk in thintar.expand(stream, head, open_piece, f"bundle object {fp}"):
                hasher.update(chunk)
                while span is not None and at >= span.offset + span.length:
                    span = next(spans, None)
                if span is None or at < span.offset:  # a chunk never straddles a piece
                    os.pwrite(fd, chunk, at)
                at += len(chunk)
        os.ftruncate(fd, head.size)
        if hasher.hexdigest() != fp:
            raise FingerprintMismatch(
                f"bundle object {fp} is corrupt: with its pieces its content has fingerprint "
                f"{hasher.hexdigest()}"
            )
        _check_pieces_are_files(fp, sparse, head)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(sparse)


def _check_pieces_are_files(fp: str, path: str, head: Header) -> None:
    """Refuse tree *fp*, whose archive without its pieces' bytes is at *path*, unless it
    is a valid tree archive each of whose pieces is the data of one of its files."""
    from scalems_store.tar.tarformat import FILE
    from scalems_store.tar.treeread import list_entries

    try:
        files = {(e.offset, e.size) for e in list_entries(path) if e.type == FILE}
    except ArchiveError as exc:
        raise InvalidContent(
            f"bundle refused: object {fp} is not a tree: {exc}; nothing was imported"
        ) from None
    for piece in head.pieces:
        if (piece.offset, piece.length) not in files:
            raise InvalidContent(
                f"bundle refused: object {fp}: its piece at offset {piece.offset} is not the "
                "data of one of its files; nothing was imported"
            )


def _check_result_of(
    store: FileStore, call: str, fp: str, kinds: dict[str, tuple[str, bytes]]
) -> None:
    kind, data = kinds.get(fp) or (store.kind(fp), store.read_bytes(fp))
    record = content.decode(data, content.RESULT) if kind == content.RESULT else {}
    if record.get("call") != call:
        raise InvalidContent(
            f"bundle records {fp} as a result of call {call[:12]}, but it is not; "
            "nothing was imported"
        )


def _publish(
    store: FileStore, entry: Entry, staged: Staged, known: bool, thin: Header | None
) -> None:
    """Publish a checked object; one the store had when checked (*known*) is kept as it
    is (pinned and touched, so that a gc running now spares it), unless a gc removed it
    since or it is damaged: then the bundle's bytes take its place."""
    if known and store.writer.keep(entry.fingerprint):
        staged.temp.discard()  # what the store knows of it stays as it is
        return
    if thin is not None:  # checked with its pieces, published before it
        store.writer.publish_thin(entry.fingerprint, thin.size, staged.temp, entry.refs)
        return
    store.writer.publish_staged(staged, entry.kind, entry.refs, trusted=True)
