"""S3 remotes: ``s3://bucket/prefix`` on any S3-compatible server, through fsspec/s3fs.

S3 cannot run our code, so the client does the work and the bucket holds a
store's layout, readable by anyone with the bucket's keys::

    <prefix>/store.json                        {"format": "scalems-store", ..., "remote": "s3"}
    <prefix>/objects/ab/cdef...                each object's bytes, named by its BLAKE3
    <prefix>/meta/ab/cdef...                   {"kind": ..., "refs": [...]}: every object but a blob
    <prefix>/refs/calls/ab/<call>/<result>     a result recorded for a call (empty; one key each;
                                               another ref namespace alike)
    <prefix>/refs/labels/<name>                the fingerprint a label names

Existence is asked with listings (one paginated LIST of ``objects/``, 1,000 keys
a request), never a request per object; objects are sent and fetched many at
once (s3fs's concurrent requests), large ones in parts (multipart upload, ranged
reads). A PUT is atomic (an object is all there or not at all), objects are sent
before their meta files and refs, and a ref is one key per result, so two
pushers at once only ever add to each other's. Everything fetched is hashed and
checked as a pack is (:mod:`.packs`) before it is published here: the bucket is
not trusted. Credentials are found the usual AWS way (environment,
``~/.aws/credentials``, instance roles); ``--endpoint-url`` names another server
(MinIO, Ceph, moto).
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from scalems_store.core import layout
from scalems_store.core.errors import (
    AmbiguousPrefix,
    BadSetting,
    InvalidFingerprint,
    ObjectNotFound,
    RemoteError,
    StoreError,
)
from scalems_store.maint.bundle import Entry
from scalems_store.objects import content
from scalems_store.remote import packs
from scalems_store.remote.peer import Closure, Peer, piped
from scalems_store.remote.settings import Remote
from scalems_store.store.filestore import FileStore
from scalems_store.store.refs import Ref, valid_label, valid_namespace

LARGE = 32 << 20
"""Objects from this size are streamed (multipart up, ranged reads down), not held in memory."""
_BATCH = 256
"""Small objects per concurrent batch of requests."""
_FOREIGN = frozenset({"botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "urllib3"})
"""Where the errors come from that :class:`_translated` turns into one line."""
_FORMAT = {"format": "scalems-store", "version": 1, "hash": "blake3", "remote": "s3"}


def filesystem(remote: Remote) -> Any:
    """An ``s3fs.S3FileSystem`` for *remote*.

    Raises:
        BadSetting: s3fs is not installed (the ``scalems-store[s3]`` extra).
    """
    try:
        import s3fs
    except ImportError:
        raise BadSetting(
            f"remote {remote.name!r} is on S3, which needs s3fs: pip install 'scalems-store[s3]'"
        ) from None
    return s3fs.S3FileSystem(endpoint_url=remote.endpoint_url, skip_instance_cache=True)


class S3Peer(Peer):
    """A bucket (and prefix) holding a store's objects, meta files and refs."""

    def __init__(self, remote: Remote, *, create: bool) -> None:
        parts = urllib.parse.urlsplit(remote.url)
        self.root = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
        self.where = remote.url
        self.fs = filesystem(remote)
        self._listing: dict[str, int] | None = None
        with _translated(self.where, "connecting to"):
            marker = f"{self.root}/store.json"
            if not self.fs.exists(marker):
                if not create:
                    raise RemoteError(f"{self.where} holds no store (push to it first)")
                self.fs.pipe_file(marker, json.dumps(_FORMAT).encode())

    def _key(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _object(self, fp: str) -> str:
        return self._key("objects", fp[:2], fp[2:])  # as a store lays it out

    def _meta(self, fp: str) -> str:
        return self._key("meta", fp[:2], fp[2:])

    def listing(self) -> dict[str, int]:
        """Every object the bucket holds and its size: one paginated LIST."""
        if self._listing is None:
            with _translated(self.where, "listing"):
                found = self.fs.find(self._key("objects"), detail=True)
            self._listing = {}
            for path, info in found.items():
                fp = _oid(path)
                if fp is not None:
                    self._listing[fp] = int(info.get("size") or 0)
        return self._listing

    def have(self, fingerprints: list[str]) -> set[str]:
        return set(fingerprints).intersection(self.listing())

    def send(
        self, store: FileStore, entries: list[Entry], progress: Callable[[int], None] | None
    ) -> None:
        """Upload *entries* from *store*: small ones many at once, large ones in parts;
        then the meta files of those that are not blobs."""
        small: dict[str, bytes] = {}
        with _translated(self.where, "sending to"):
            for entry in entries:
                path = store.object_path(entry.fingerprint)
                size = _size(store, entry.fingerprint)
                if size >= LARGE:
                    self.fs.put_file(path, self._object(entry.fingerprint))
                    _report(progress, size)
                    continue
                small[self._object(entry.fingerprint)] = store.read_bytes(entry.fingerprint)
                if len(small) >= _BATCH:
                    self._pipe(small, progress)
            self._pipe(small, progress)
            metas = {
                self._meta(e.fingerprint): json.dumps(
                    {"kind": e.kind, "refs": list(e.refs)}
                ).encode()
                for e in entries
                if e.kind != content.BLOB
            }
            if metas:
                self.fs.pipe(metas)
        if self._listing is not None:
            self._listing.update((e.fingerprint, _size(store, e.fingerprint)) for e in entries)

    def _pipe(self, batch: dict[str, bytes], progress: Callable[[int], None] | None) -> None:
        if batch:
            self.fs.pipe(batch)
            _report(progress, sum(len(v) for v in batch.values()))
            batch.clear()

    def receive(
        self, store: FileStore, entries: list[Entry], progress: Callable[[int], None] | None
    ) -> None:
        """Fetch *entries* and publish them here, each checked as a pack's objects are."""
        sizes = self.listing()

        def write(out: IO[bytes]) -> None:
            packs.write_from(entries, self._opener(entries, sizes), sizes, out)

        with _translated(self.where, "fetching from"):
            piped(write, lambda stream: packs.receive(store, stream, progress))

    def _opener(
        self, entries: list[Entry], sizes: dict[str, int]
    ) -> Callable[[str], Iterable[bytes]]:
        small = [e.fingerprint for e in entries if sizes.get(e.fingerprint, 0) < LARGE]
        fetched: dict[str, bytes] = {}
        for start in range(0, len(small), _BATCH):
            batch = small[start : start + _BATCH]
            got = self.fs.cat([self._object(fp) for fp in batch])
            fetched.update((_oid(path) or "", data) for path, data in got.items())

        def chunks(fp: str) -> Iterable[bytes]:
            if fp in fetched:
                yield fetched.pop(fp)
                return
            with self.fs.open(self._object(fp), "rb", block_size=8 << 20) as stream:
                while chunk := stream.read(8 << 20):
                    yield chunk

        return chunks

    def closure(self, names: list[str] | None, labels: bool) -> Closure:
        with _translated(self.where, "listing"):
            sizes = self.listing()
            keyed, known = self._refs()
            if names is None:
                targets = [*known.values(), *keyed]
                travel = dict(known) if labels else {}
            else:
                targets = [self._resolve(name, known, sizes) for name in names]
                travel = {n: f for n, f in zip(names, targets, strict=True) if known.get(n) == f}
                travel = travel if labels else {}
            metas = {_oid(path) for path in self.fs.find(self._key("meta"))}
            found: dict[str, Entry] = {}
            refs: list[Ref] = []
            frontier = [fp for fp in targets if fp in sizes]
            while frontier:
                want = [fp for fp in dict.fromkeys(frontier) if fp not in found]
                frontier = []
                records = self._metas([fp for fp in want if fp in metas])
                for fp in want:
                    kind, refers = records.get(fp, (content.BLOB, ()))
                    found[fp] = Entry(fp, kind, refers)
                    frontier.extend(r for r in refers if r in sizes and r not in found)
                    for namespace, values in sorted(keyed.get(fp, {}).items()):
                        values = [v for v in values if v in sizes]
                        refs.append(Ref(namespace, fp, values))
                        frontier.extend(v for v in values if v not in found)
        from scalems_store.remote.peer import order

        entries = order(found)
        return Closure(
            entries, refs, {e.fingerprint: sizes[e.fingerprint] for e in entries}, travel
        )

    def _metas(self, fps: list[str]) -> dict[str, tuple[str, tuple[str, ...]]]:
        found: dict[str, tuple[str, tuple[str, ...]]] = {}
        for start in range(0, len(fps), _BATCH):
            got = self.fs.cat([self._meta(fp) for fp in fps[start : start + _BATCH]])
            for path, data in got.items():
                fp = _oid(path) or path
                try:
                    meta = json.loads(data)
                    kind, refers = content.check_kind(meta["kind"]), tuple(meta["refs"])
                except (ValueError, KeyError, TypeError):
                    raise RemoteError(f"{self.where}: unreadable meta file of {fp}") from None
                if not all(isinstance(r, str) and layout.is_fingerprint(r) for r in refers):
                    raise RemoteError(f"{self.where}: bad references in the meta file of {fp}")
                found[fp] = (kind, refers)
        return found

    def _refs(self) -> tuple[dict[str, dict[str, list[str]]], dict[str, str]]:
        """Every ref (key -> namespace -> values) and label: one listing of ``refs/``,
        then the label files, read at once."""
        keyed: dict[str, dict[str, list[str]]] = {}
        label_paths = []
        top = self._key("refs") + "/"
        for path in self.fs.find(top):
            parts = path[len(top) :].split("/")
            if parts[0] == "labels" and len(parts) == 2:
                label_paths.append(path)
            elif len(parts) == 4 and valid_namespace(parts[0]):
                namespace, _, key, value = parts
                if layout.is_fingerprint(key) and layout.is_fingerprint(value):
                    keyed.setdefault(key, {}).setdefault(namespace, []).append(value)
        labels = {}
        for path, data in (self.fs.cat(label_paths) if label_paths else {}).items():
            name, fp = path.rsplit("/", 1)[-1], data.decode(errors="replace").strip()
            if valid_label(name) and layout.is_fingerprint(fp):
                labels[name] = fp
        return keyed, labels

    def _resolve(self, name: str, labels: dict[str, str], sizes: dict[str, int]) -> str:
        text = name.removeprefix(layout.URI_SCHEME)
        if name in labels and not layout.is_fingerprint(text):
            return labels[name]
        if not (4 <= len(text) <= 64 and layout.HEX_DIGITS.issuperset(text)):
            if valid_label(name):
                raise ObjectNotFound(
                    f"no label {name!r} on {self.where}, and it is not a fingerprint"
                )
            raise InvalidFingerprint(f"not a fingerprint or label: {name!r}")
        matches = sorted(fp for fp in sizes if fp.startswith(text.lower()))
        if not matches:
            raise ObjectNotFound(f"no object {name} on {self.where}")
        if len(matches) > 1:
            raise AmbiguousPrefix(text, matches)
        return matches[0]

    def update(self, refs: list[Ref], labels: dict[str, str]) -> None:
        sizes = self.listing()
        for ref in refs:
            for fp in (ref.key, *ref.values):
                if fp not in sizes:
                    raise RemoteError(
                        f"refusing ref {ref.namespace}/{ref.key[:12]}: {fp} is not on {self.where}"
                    )
        with _translated(self.where, "updating refs on"):
            marks = {
                self._key("refs", ref.namespace, ref.key[:2], ref.key, value): b""
                for ref in refs
                for value in ref.values
            }
            marks.update(
                {
                    self._key("refs", "labels", name): f"{fp}\n".encode()
                    for name, fp in labels.items()
                }
            )
            if marks:
                self.fs.pipe(marks)

    def close(self) -> None:
        self._listing = None


def _oid(path: str) -> str | None:
    """The fingerprint of an ``objects/ab/cdef...`` (or ``meta/``) key, None if not one."""
    fanout, _, name = path.rpartition("/")
    fp = fanout[-2:] + name
    return fp if fanout[-3:-2] == "/" and layout.is_fingerprint(fp) else None


def _size(store: FileStore, fp: str) -> int:
    import os

    return os.stat(store.object_path(fp)).st_size


def _report(progress: Callable[[int], None] | None, count: int) -> None:
    if progress is not None:
        progress(count)


@contextlib.contextmanager
def _translated(where: str, doing: str) -> Iterator[None]:
    """Turn the errors of botocore, aiohttp and the OS into one RemoteError line."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        if not (isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in _FOREIGN):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise RemoteError(f"{doing} {where}: {type(exc).__name__}: {first}") from exc
