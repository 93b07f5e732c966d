"""The files of a bucket (layout 2): pack indexes, ref logs and the info file.

A bucket (S3, or a copy of one served over HTTP) holds, beside the loose objects
of layout 1 (``objects/ab/cdef...`` and their ``meta/`` files)::

    packs/<P>.pack            small objects' bytes, one after another
    packs/<P>.idx             the index of that pack; P = blake3 of the index's bytes
    reflog/<T>-<H>.json       one push's ref and label updates (T: 20 digits of ns since
                              the epoch; H = blake3 of the file's bytes); merged on read
    info.json                 the indexes and ref logs there, for readers without a
                              listing (HTTP); rewritten after every push

Every file here is immutable and named by its hash (but ``info.json``), so that a
reader checks what it fetched against its name and may keep it in a cache that
never needs asking again (:class:`Cache`). A pack is written before its index, and
a reader ignores a pack without one: an index that is there names bytes that are
there. An index (UTF-8 JSON, keys sorted, no spaces)::

    {"format": "scalems-pack-index", "version": 1,
     "pack": {"blake3": <hash of the .pack>, "size": <bytes>},
     "objects": [[<fp>, <kind>, <offset>, <size>, [<ref fp>, ...]], ...],
     "signatures": [[<result fp>, <key hex>, <signature hex>], ...]}

A ref log::

    {"format": "scalems-remote-refs", "version": 1,
     "refs": [[<namespace>, <key fp>, [<value fp>, ...]], ...],
     "labels": {<name>: <fp>, ...},
     "signatures": [[<result fp>, <key hex>, <signature hex>], ...]}

Every parser here reads bytes from outside: each checks everything and raises
:class:`RemoteError` with one line, never anything else.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, NamedTuple

from scalems_store.core import layout
from scalems_store.core.errors import RemoteError
from scalems_store.core.fingerprint import hash_bytes
from scalems_store.objects import content
from scalems_store.store.refs import Ref, Signature, is_hex, valid_label, valid_namespace

LAYOUT = 2
"""The layout a bucket written by this version has (``store.json``'s ``layout``; none: 1)."""
INDEX_FORMAT = {"format": "scalems-pack-index", "version": 1}
REFLOG_FORMAT = {"format": "scalems-remote-refs", "version": 1}
INFO_FORMAT = {"format": "scalems-remote-info", "version": 1}
PACKS, REFLOG, INFO = "packs", "reflog", "info.json"
_REFLOG_NAME = re.compile(r"^[0-9]{20}-[0-9a-f]{64}\.json$")
_MAX_FILE = 256 << 20


class Located(NamedTuple):
    """Where one object of a pack lies, and what it is."""

    pack: str
    offset: int
    size: int
    kind: str
    refs: tuple[str, ...]


class Index(NamedTuple):
    """A pack's index, read and checked."""

    name: str
    pack_hash: str
    pack_size: int
    objects: dict[str, Located]
    signatures: dict[str, list[Signature]]


class RefLog(NamedTuple):
    """One ref log, read and checked."""

    name: str
    refs: list[Ref]
    labels: dict[str, str]
    signatures: dict[str, list[Signature]]


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def write_signatures(signatures: dict[str, list[Signature]]) -> list[list[str]]:
    """*signatures* as :func:`read_signatures` reads them."""
    return [[fp, s.key, s.signature] for fp in sorted(signatures) for s in sorted(signatures[fp])]


def encode_index(
    objects: list[tuple[str, str, int, int, tuple[str, ...]]],
    pack_hash: str,
    pack_size: int,
    signatures: dict[str, list[Signature]],
) -> tuple[str, bytes]:
    """The name and bytes of the index of a pack whose objects are *objects*
    (``(fp, kind, offset, size, refs)``), *pack_hash* and *pack_size* its bytes'."""
    data = _dump(
        {
            **INDEX_FORMAT,
            "pack": {"blake3": pack_hash, "size": pack_size},
            "objects": [[fp, kind, off, size, list(refs)] for fp, kind, off, size, refs in objects],
            "signatures": write_signatures(signatures),
        }
    )
    return hash_bytes(data), data


def encode_reflog(
    refs: list[Ref], labels: dict[str, str], signatures: dict[str, list[Signature]], now_ns: int
) -> tuple[str, bytes]:
    """The name and bytes of the ref log of one push."""
    data = _dump(
        {
            **REFLOG_FORMAT,
            "refs": [[r.namespace, r.key, list(r.values)] for r in refs],
            "labels": dict(sorted(labels.items())),
            "signatures": write_signatures(signatures),
        }
    )
    return f"{now_ns:020d}-{hash_bytes(data)}.json", data


def encode_info(indexes: list[str], reflogs: list[str]) -> bytes:
    """The bytes of ``info.json``."""
    return _dump({**INFO_FORMAT, "indexes": sorted(indexes), "reflog": sorted(reflogs)})


def is_index_name(name: str) -> bool:
    """Whether *name* may name an index (``<P>`` of ``packs/<P>.idx``)."""
    return is_hex(name, 64)


def is_reflog_name(name: str) -> bool:
    """Whether *name* may name a ref log (``<T>-<H>.json``)."""
    return bool(_REFLOG_NAME.match(name))


def name_matches(name: str, data: bytes) -> bool:
    """Whether *data* is what the index or ref log *name* names (its hash)."""
    digest = name if is_index_name(name) else name[21:-5] if is_reflog_name(name) else ""
    return bool(digest) and hash_bytes(data) == digest


def _load(data: bytes, expected: dict[str, Any], what: str) -> dict[str, Any]:
    if len(data) > _MAX_FILE:
        raise ValueError(f"{what} is too large")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError(f"{what} is not JSON") from None
    if not isinstance(value, dict) or {k: value.get(k) for k in expected} != expected:
        found = value.get("format") if isinstance(value, dict) else None
        version = value.get("version") if isinstance(value, dict) else None
        raise ValueError(
            f"{what} is of an unknown format ({str(found)[:40]!r} version {str(version)[:10]};"
            " a newer scalems-store may read it)"
        )
    return value


def _fp(value: Any) -> str:
    if not isinstance(value, str) or not layout.is_fingerprint(value):
        raise ValueError(f"not a fingerprint: {str(value)[:70]!r}")
    return value


_HEX = b"0123456789abcdef"


def _fps(values: list[Any]) -> list[str]:
    """*values*, each a fingerprint: checked together in a few passes of C."""
    try:
        joined = "".join(values).encode("ascii")
    except (TypeError, UnicodeEncodeError):
        joined = b"?"
    if set(map(len, values)) <= {64} and not joined.translate(None, _HEX):
        return values
    return [_fp(v) for v in values]


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"not a size: {str(value)[:30]!r}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list")
    return value


def read_signatures(value: Any) -> dict[str, list[Signature]]:
    """Signatures written as ``[[result, key, signature], ...]``, by result.

    Raises:
        ValueError: they are not.
    """
    found: dict[str, list[Signature]] = {}
    for item in _list(value, "signatures"):
        if not (
            isinstance(item, list) and len(item) == 3 and all(isinstance(v, str) for v in item)
        ):
            raise ValueError("a signature must be [result, key, signature]")
        fp, key, sig = item
        if not (is_hex(key, 64) and is_hex(sig, 128)):
            raise ValueError("a signature's key and signature must be hex")
        found.setdefault(_fp(fp), []).append(Signature(key, sig))
    return found


def parse_index(name: str, data: bytes, where: str) -> Index:
    """The index *name* read from *data* (its bytes must hash to *name*).

    Raises:
        RemoteError: it does not, or it is not a valid index, in one line.
    """
    if not name_matches(name, data):
        raise RemoteError(f"{where}: pack index {name[:16]} does not match its name (corrupt)")
    try:
        value = _load(data, INDEX_FORMAT, "the index")
        pack = value.get("pack")
        if not isinstance(pack, dict) or not is_hex(str(pack.get("blake3")), 64):
            raise ValueError("'pack' must name the pack's hash and size")
        size = _count(pack.get("size"))
        objects: dict[str, Located] = {}
        for item in _list(value.get("objects"), "objects"):
            if not (isinstance(item, list) and len(item) == 5):
                raise ValueError("an object must be [fp, kind, offset, size, refs]")
            fp, kind, offset, length, refs = item
            fp, offset, length = _fp(fp), _count(offset), _count(length)
            if not isinstance(kind, str):
                raise ValueError("a kind must be a string")
            kind = content.check_kind(kind)
            if offset + length > size:
                raise ValueError(f"object {fp[:12]} lies beyond the end of the pack")
            if fp in objects:
                raise ValueError(f"object {fp[:12]} is listed twice")
            refers = tuple(_fp(r) for r in _list(refs, "refs"))
            objects[fp] = Located(name, offset, length, kind, refers)
        signatures = read_signatures(value.get("signatures", []))
        stray = [fp for fp in signatures if fp not in objects or objects[fp].kind != content.RESULT]
        if stray:
            raise ValueError(f"it signs {stray[0][:12]}, which is not one of its results")
    except (ValueError, TypeError, AttributeError) as exc:
        raise RemoteError(f"{where}: bad pack index {name[:16]}: {exc}") from None
    except Exception as exc:  # content.check_kind: InvalidContent
        raise RemoteError(f"{where}: bad pack index {name[:16]}: {exc}") from None
    return Index(name, str(pack["blake3"]), size, objects, signatures)


def parse_reflog(name: str, data: bytes, where: str) -> RefLog:
    """The ref log *name* read from *data* (its bytes must hash to *name*'s H).

    Raises:
        RemoteError: it does not, or it is not a valid ref log, in one line.
    """
    if not name_matches(name, data):
        raise RemoteError(f"{where}: ref log {name[:24]} does not match its name (corrupt)")
    try:
        value = _load(data, REFLOG_FORMAT, "the ref log")
        refs = []
        for item in _list(value.get("refs"), "refs"):
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
                raise ValueError("a ref must be [namespace, key, values]")
            if not valid_namespace(item[0]):
                raise ValueError(f"bad ref namespace {item[0][:30]!r}")
            values = _fps(_list(item[2], "values"))
            refs.append(Ref(item[0], _fp(item[1]), values))
        labels = value.get("labels")
        if not isinstance(labels, dict):
            raise ValueError("labels must be an object")
        for label, fp in labels.items():
            if not valid_label(label):
                raise ValueError(f"bad label name {label[:40]!r}")
            _fp(fp)
        signatures = read_signatures(value.get("signatures", []))
    except (ValueError, TypeError) as exc:
        raise RemoteError(f"{where}: bad ref log {name[:24]}: {exc}") from None
    return RefLog(name, refs, dict(labels), signatures)


def parse_info(data: bytes, where: str) -> tuple[list[str], list[str]]:
    """The indexes and ref logs ``info.json`` names.

    Raises:
        RemoteError: it is not a valid info file.
    """
    try:
        value = _load(data, INFO_FORMAT, "info.json")
        indexes = [str(v) for v in _list(value.get("indexes"), "indexes")]
        reflogs = [str(v) for v in _list(value.get("reflog"), "reflog")]
        bad = [v for v in indexes if not is_index_name(v)]
        bad += [v for v in reflogs if not is_reflog_name(v)]
        if bad:
            raise ValueError(f"bad name {bad[0][:40]!r}")
    except (ValueError, TypeError) as exc:
        raise RemoteError(f"{where}: bad {INFO}: {exc}") from None
    return indexes, reflogs


class Cache:
    """Index and ref log files kept on this machine, by name (each checked against its
    name when read, so that a stale or damaged one is never believed)."""

    def __init__(self) -> None:
        from scalems_store.trust.keys import cache_dir

        self.top = os.path.join(cache_dir(), "remote-files")

    def get(self, name: str) -> bytes | None:
        """The cached bytes of *name*, if they are there and match it."""
        try:
            with open(os.path.join(self.top, name[:2], name), "rb") as stream:
                data = stream.read(_MAX_FILE + 1)
        except OSError:
            return None
        return data if name_matches(name, data) else None

    def put(self, name: str, data: bytes) -> None:
        """Keep *data* as *name* (quietly nothing where the cache cannot be written)."""
        folder = os.path.join(self.top, name[:2])
        temp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
        try:
            os.makedirs(folder, exist_ok=True)
            with open(temp, "wb") as out:
                out.write(data)
            os.replace(temp, os.path.join(folder, name))
        except OSError:
            pass


def merge_refs(
    logs: list[RefLog],
) -> tuple[dict[tuple[str, str], list[str]], dict[str, str], dict[str, list[Signature]]]:
    """The refs, labels and signatures that *logs* (oldest first) say together: the values
    of a ref are the union, in the order they were first pushed; a label is what the
    newest log that sets it says (logs are ordered by name: time, then hash)."""
    refs: dict[tuple[str, str], dict[str, None]] = {}
    labels: dict[str, str] = {}
    signatures: dict[str, list[Signature]] = {}
    for log in sorted(logs, key=lambda log: log.name):
        for ref in log.refs:
            refs.setdefault((ref.namespace, ref.key), {}).update(dict.fromkeys(ref.values))
        labels.update(log.labels)
        for fp, sigs in log.signatures.items():
            mine = signatures.setdefault(fp, [])
            mine.extend(s for s in sigs if s not in mine)
    return {key: list(values) for key, values in refs.items()}, labels, signatures
