"""S3 remotes: ``s3://bucket/prefix`` on any S3-compatible server, through fsspec/s3fs.

S3 cannot run our code, so the client does the work and the bucket holds files
anyone with its keys can read (layout 2; the formats are :mod:`.bucket`'s)::

    <prefix>/store.json                  {"format": "scalems-store", "layout": 2, ...}
    <prefix>/packs/<P>.pack, <P>.idx     small objects, many to a pack, and the pack's index
    <prefix>/objects/ab/cdef...          a large object alone (and every object of layout 1)
    <prefix>/meta/ab/cdef...             {"kind": ..., "refs": [...]} of a loose object but a blob
    <prefix>/reflog/<T>-<H>.json         one push's refs, labels and signatures; merged on read
    <prefix>/info.json                   the indexes and ref logs, for readers with no listing
    <prefix>/refs/...                    refs of layout 1 (read, never written)

What the bucket holds is learnt from one paginated LIST of the prefix (1,000 keys
a request; a pushed store's thousands of small objects are a few packs) and the
pack indexes, each kept in a cache on this machine by its name (its hash), so a
second look costs one LIST. A push sends packs and large objects many at once
(large ones in parts); each pack is written before its index, and a reader
ignores a pack without one, so a push cut short leaves only whole packs and
objects visible, none of them named by a ref, and the next push sends only what
is not indexed. Refs go last, as a new ref log: nothing is ever overwritten, two
pushers at once each add their own log, and a reader merges them (a call's
results: all of them; a label: the newest log's). A pull reads only the objects
it needs (ranges of packs), hashes and checks every one before publishing it
here (:mod:`.packs`): the bucket is not trusted. Credentials are found the usual
AWS way (environment, ``~/.aws/credentials``, instance roles); ``--endpoint-url``
names another server (MinIO, Ceph, moto).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from scalems_store.core import layout
from scalems_store.core.errors import (
    AmbiguousPrefix,
    BadSetting,
    InvalidFingerprint,
    ObjectNotFound,
    RemoteError,
    StoreError,
)
from scalems_store.core.fingerprint import hash_bytes
from scalems_store.maint.bundle import Entry
from scalems_store.objects import content
from scalems_store.remote import bucket, packs
from scalems_store.remote.bucket import Located
from scalems_store.remote.peer import Closure, Peer, order, piped
from scalems_store.remote.settings import Remote
from scalems_store.store.filestore import FileStore
from scalems_store.store.refs import Ref, Signature, valid_label, valid_namespace

LOOSE = 4 << 20
"""Objects from this size travel alone (``objects/ab/cdef...``), in parts; smaller ones packed."""
PACK_BYTES = 16 << 20
"""At most this many bytes of small objects to a pack (and :data:`.packs.PACK_OBJECTS` objects)."""
PARTS = 16 << 20
"""The part size of a multipart upload of a large object."""
_AT_ONCE = 8
"""Packs and large objects sent or fetched at once."""
_GAP = 256 << 10
"""Ranges of a pack closer than this are read as one."""
_FOREIGN = frozenset({"botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "urllib3"})
"""Where the errors come from that :class:`_translated` turns into one line."""
_FORMAT = {"format": "scalems-store", "version": 1, "hash": "blake3", "remote": "s3"}
_MAX_META = 1 << 20
_PAGE = 1000
"""Keys a page of a listing (S3's most)."""


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


class Scan(NamedTuple):
    """What a bucket holds, as one listing (or ``info.json``) says."""

    loose: dict[str, int] | None
    """Loose objects and their sizes (None: not known, over HTTP)."""
    metas: set[str] | None
    indexes: list[str]
    reflogs: list[str]
    old_refs: dict[str, dict[str, list[str]]]
    """Refs of layout 1: key -> namespace -> values."""
    old_labels: list[str]
    """Keys of layout 1's label files."""


class RefState(NamedTuple):
    """The refs, labels and signatures a bucket says, merged."""

    refs: dict[tuple[str, str], list[str]]
    labels: dict[str, str]
    signatures: dict[str, list[Signature]]


class BucketPeer(Peer):
    """What reads a bucket of layout 1 or 2, whatever serves it: its listing, indexes,
    refs, closures and objects. Subclasses say how files are read (:meth:`_scan`,
    :meth:`_cat`, :meth:`_ranges`, :meth:`_download`)."""

    def __init__(self) -> None:
        self._state: Scan | None = None
        self._packed: dict[str, Located] | None = None
        self._index_sigs: dict[str, list[Signature]] = {}
        self._refstate: RefState | None = None
        self.cache = bucket.Cache()

    # -- how files are read (subclasses) ----------------------------------

    def _scan(self) -> Scan:
        raise NotImplementedError

    def _cat(self, keys: list[str]) -> dict[str, bytes]:
        """The bytes of each of *keys* there is (relative to the prefix), fetched at once."""
        raise NotImplementedError

    def _ranges(self, spans: list[tuple[str, int, int]]) -> list[bytes]:
        """The bytes ``[start, end)`` of each ``(key, start, end)``, fetched at once."""
        raise NotImplementedError

    def _download(self, keys: list[str], paths: list[str]) -> None:
        """Each of *keys* into the file at the same place of *paths*, at once."""
        raise NotImplementedError

    # -- what is there -----------------------------------------------------

    def scan(self) -> Scan:
        """The bucket's listing (once a session)."""
        if self._state is None:
            self._state = self._scan()
        return self._state

    def packed(self) -> dict[str, Located]:
        """Every object in a pack, where it lies: the indexes, from the cache or fetched."""
        if self._packed is None:
            names = self.scan().indexes
            found: dict[str, bytes] = {}
            for name in names:
                data = self.cache.get(name)
                if data is not None:
                    found[name] = data
            wanted = [n for n in names if n not in found]
            fetched = self._cat([f"{bucket.PACKS}/{n}.idx" for n in wanted])
            for name in wanted:
                data = fetched.get(f"{bucket.PACKS}/{name}.idx")
                if data is None:
                    raise RemoteError(f"{self.where}: pack index {name[:16]} vanished")
                found[name] = data
            packed: dict[str, Located] = {}
            for name in names:
                index = bucket.parse_index(name, found[name], self.where)
                if name in wanted:
                    self.cache.put(name, found[name])
                for fp, located in index.objects.items():
                    packed.setdefault(fp, located)
                for fp, sigs in index.signatures.items():
                    mine = self._index_sigs.setdefault(fp, [])
                    mine.extend(s for s in sigs if s not in mine)
            self._packed = packed
        return self._packed

    def sizes(self) -> dict[str, int]:
        """Every object the bucket is known to hold, and its size."""
        found = {fp: located.size for fp, located in self.packed().items()}
        found.update(self.scan().loose or {})
        return found

    def refstate(self) -> RefState:
        """Every ref, label and signature: layout 1's refs, then the ref logs, merged."""
        if self._refstate is None:
            scan = self.scan()
            logs = []
            found = {name: self.cache.get(name) for name in scan.reflogs}
            wanted = [name for name, data in found.items() if data is None]
            fetched = self._cat([f"{bucket.REFLOG}/{name}" for name in wanted])
            for name in scan.reflogs:
                data = found[name] or fetched.get(f"{bucket.REFLOG}/{name}")
                if data is None:
                    raise RemoteError(f"{self.where}: ref log {name[:24]} vanished")
                logs.append(bucket.parse_reflog(name, data, self.where))
                if name in wanted:
                    self.cache.put(name, data)
            refs, labels, signatures = bucket.merge_refs(logs)
            merged: dict[tuple[str, str], list[str]] = {}
            for key, by_namespace in scan.old_refs.items():
                for namespace, values in by_namespace.items():
                    merged[(namespace, key)] = list(values)
            for where, values in refs.items():
                known = merged.setdefault(where, [])
                seen = set(known)
                known.extend(v for v in values if v not in seen)
            old_labels = self._old_labels(scan.old_labels)
            self._refstate = RefState(merged, {**old_labels, **labels}, signatures)
        return self._refstate

    def _old_labels(self, keys: list[str]) -> dict[str, str]:
        labels = {}
        for key, data in (self._cat(keys) if keys else {}).items():
            name, fp = key.rsplit("/", 1)[-1], data.decode(errors="replace").strip()
            if valid_label(name) and layout.is_fingerprint(fp):
                labels[name] = fp
        return labels

    def have(self, fingerprints: list[str]) -> set[str]:
        return set(fingerprints).intersection(self.sizes())

    def settled(self, refs: list[Ref], labels: dict[str, str]) -> tuple[set[int], set[str]]:
        state = self.refstate()
        same: set[int] = set()
        for i, ref in enumerate(refs):
            there = state.refs.get((ref.namespace, ref.key))
            if there is not None and set(ref.values).issubset(there):
                same.add(i)
        return same, {name for name, fp in labels.items() if state.labels.get(name) == fp}

    # -- closures ----------------------------------------------------------

    def closure(self, names: list[str] | None, labels: bool) -> Closure:
        with _translated(self.where, "listing"):
            sizes = self.sizes()
            state = self.refstate()
            known = state.labels
            keyed: dict[str, dict[str, list[str]]] = {}
            for (namespace, key), values in state.refs.items():
                keyed.setdefault(key, {})[namespace] = values
            if names is None:
                targets = [*known.values(), *keyed]
                travel = dict(known) if labels else {}
            else:
                targets = [self._resolve(name, known, sizes) for name in names]
                travel = {n: f for n, f in zip(names, targets, strict=True) if known.get(n) == f}
                travel = travel if labels else {}
            found: dict[str, Entry] = {}
            refs: list[Ref] = []
            present = self._present(sizes)
            frontier = [fp for fp in targets if present(fp)]
            packed = self.packed()
            while frontier:
                want = [fp for fp in dict.fromkeys(frontier) if fp not in found]
                frontier = []
                records = self._metas([fp for fp in want if fp not in packed])
                for fp in want:
                    located = packed.get(fp)
                    if located is not None:
                        kind, refers = located.kind, located.refs
                    else:
                        kind, refers = records.get(fp, (content.BLOB, ()))
                    found[fp] = Entry(fp, kind, refers)
                    frontier.extend(r for r in refers if present(r) and r not in found)
                    for namespace, values in sorted(keyed.get(fp, {}).items()):
                        values = [v for v in values if present(v)]
                        refs.append(Ref(namespace, fp, values))
                        frontier.extend(v for v in values if v not in found)
        entries = order(found)
        signatures = {
            e.fingerprint: self.signatures_of(e.fingerprint)
            for e in entries
            if e.kind == content.RESULT and self.signatures_of(e.fingerprint)
        }
        return Closure(
            entries,
            refs,
            {e.fingerprint: sizes.get(e.fingerprint, 0) for e in entries},
            travel,
            signatures,
        )

    def _present(self, sizes: dict[str, int]) -> Callable[[str], bool]:
        return sizes.__contains__

    def signatures_of(self, fp: str) -> list[Signature]:
        """The signatures the bucket holds for result *fp* (its pack's and the ref logs')."""
        found = list(self._index_sigs.get(fp, ()))
        found.extend(s for s in self.refstate().signatures.get(fp, ()) if s not in found)
        return found

    def _metas(self, fps: list[str]) -> dict[str, tuple[str, tuple[str, ...]]]:
        metas = self.scan().metas
        wanted = fps if metas is None else [fp for fp in fps if fp in metas]
        found: dict[str, tuple[str, tuple[str, ...]]] = {}
        got = self._cat([_fan("meta", fp) for fp in wanted])
        for fp in wanted:
            data = got.get(_fan("meta", fp))
            if data is None:
                continue
            try:
                meta = json.loads(data[:_MAX_META])
                kind, refers = content.check_kind(meta["kind"]), tuple(meta["refs"])
            except (ValueError, KeyError, TypeError, StoreError):
                raise RemoteError(f"{self.where}: unreadable meta file of {fp}") from None
            if not all(isinstance(r, str) and layout.is_fingerprint(r) for r in refers):
                raise RemoteError(f"{self.where}: bad references in the meta file of {fp}")
            found[fp] = (kind, refers)
        return found

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

    # -- pull --------------------------------------------------------------

    def receive(
        self, store: FileStore, entries: list[Entry], progress: Callable[[int], None] | None
    ) -> None:
        """Bring *entries* (which the bucket holds) here, each checked first."""
        self.receive_all(store, entries, self.sizes(), progress)

    def receive_all(
        self,
        store: FileStore,
        entries: list[Entry],
        sizes: dict[str, int],
        progress: Callable[[int], None] | None,
    ) -> None:
        """Fetch *entries* (ranges of packs, large objects whole, many at once) and
        publish them here a batch at a time, each batch as a pack is: every object
        hashed and checked first. The next batch is fetched while one is published."""
        packed = self.packed()
        waves = list(packs.split(entries, sizes))
        with (
            tempfile.TemporaryDirectory(dir=store.tmp, prefix="s3-") as staging,
            ThreadPoolExecutor(1, thread_name_prefix="scalems-fetch") as ahead,
        ):
            pending = ahead.submit(self._fetch, waves[0], packed, staging) if waves else None
            for i, wave in enumerate(waves):
                assert pending is not None
                with _translated(self.where, "fetching from"):
                    got = pending.result()
                pending = (
                    ahead.submit(self._fetch, waves[i + 1], packed, staging)
                    if i + 1 < len(waves)
                    else None
                )
                self._publish(store, wave, got, progress)
                _check_arrived(store, wave, self.where)

    def _fetch(
        self, wave: list[Entry], packed: dict[str, Located], staging: str
    ) -> dict[str, bytes | str]:
        """The bytes of each small object of *wave*, the path of each large one."""
        spans: list[tuple[str, int, int]] = []
        members: list[list[tuple[str, int, int]]] = []
        by_pack: dict[str, list[tuple[int, int, str]]] = {}
        loose = []
        for entry in wave:
            located = packed.get(entry.fingerprint)
            if located is None:
                loose.append(entry.fingerprint)
            else:
                item = (located.offset, located.size, entry.fingerprint)
                by_pack.setdefault(located.pack, []).append(item)
        for pack, items in by_pack.items():
            start = end = -1
            group: list[tuple[str, int, int]] = []
            for offset, size, fp in sorted(items):
                if group and offset > end + _GAP:
                    spans.append((f"{bucket.PACKS}/{pack}.pack", start, end))
                    members.append(group)
                    group = []
                if not group:
                    start = end = offset
                group.append((fp, offset, size))
                end = max(end, offset + size)
            if group:
                spans.append((f"{bucket.PACKS}/{pack}.pack", start, end))
                members.append(group)
        got: dict[str, bytes | str] = {}
        for (_, start, _end), group, data in zip(spans, members, self._ranges(spans), strict=True):
            view = memoryview(data)
            for fp, offset, size in group:
                got[fp] = bytes(view[offset - start : offset - start + size])
        paths = [os.path.join(staging, fp) for fp in loose]
        if loose:
            self._download([_fan("objects", fp) for fp in loose], paths)
        got.update(zip(loose, paths, strict=True))
        return got

    def _publish(
        self,
        store: FileStore,
        wave: list[Entry],
        got: dict[str, bytes | str],
        progress: Callable[[int], None] | None,
    ) -> None:
        sizes = {}
        for fp, item in got.items():
            sizes[fp] = len(item) if isinstance(item, bytes) else os.path.getsize(item)
        missing = [e.fingerprint for e in wave if e.fingerprint not in got]
        if missing:
            raise RemoteError(f"{self.where} did not send object {missing[0]}")

        def chunks(fp: str) -> Iterator[bytes]:
            item = got.pop(fp)
            if isinstance(item, bytes):
                yield item
                return
            with open(item, "rb") as stream:
                while chunk := stream.read(8 << 20):
                    yield chunk
            os.unlink(item)

        signatures = {e.fingerprint: self.signatures_of(e.fingerprint) for e in wave}
        piped(
            lambda out: packs.write_from(wave, chunks, sizes, out, signatures),
            lambda stream: packs.receive(store, stream, progress),
        )

    def update(
        self,
        refs: list[Ref],
        labels: dict[str, str],
        signatures: dict[str, list[Signature]] | None = None,
    ) -> None:
        raise BadSetting(f"{self.where} is read-only")


class S3Peer(BucketPeer):
    """A bucket (and prefix) on S3: read as any bucket is, and written to."""

    def __init__(self, remote: Remote, *, create: bool) -> None:
        super().__init__()
        parts = urllib.parse.urlsplit(remote.url)
        self.root = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
        self.where = remote.url
        self.remote = remote
        self._fs: Any = None
        self.light = Light.for_remote(remote)
        self._sent: dict[str, int] = {}
        with _translated(self.where, "connecting to"):
            found = self._cat(["store.json"]).get("store.json")
            if found is None:
                if not create:
                    raise RemoteError(f"{self.where} holds no store (push to it first)")
                self._mark()
            else:
                self.layout = _layout(found, self.where)
                if create and self.layout < bucket.LAYOUT:
                    self._mark()  # layout 1 read as it is; packs and ref logs come next

    @property
    def fs(self) -> Any:
        """The s3fs file system (made, and s3fs imported, on first use)."""
        if self._fs is None:
            self._fs = filesystem(self.remote)
        return self._fs

    def _light(self, what: Callable[[Light], Any]) -> Any:
        """*what* done by the light client, or None where there is none or it failed
        (then s3fs does it, and everything after)."""
        if self.light is None:
            return None
        try:
            return what(self.light)
        except Exception as exc:  # any doubt: the full client, which says what is wrong
            if os.environ.get("SCALEMS_S3_LIGHT") == "debug":
                print(f"light S3 client: {type(exc).__name__}: {exc}", file=sys.stderr)
            self.light = None
            return None

    def _mark(self) -> None:
        data = json.dumps({**_FORMAT, "layout": bucket.LAYOUT}).encode()
        self.fs.pipe_file(self._key("store.json"), data)
        self.layout = bucket.LAYOUT

    def _key(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _scan(self) -> Scan:
        top = self.root + "/"
        found = self._light(lambda light: light.list(top))
        if found is None:
            with _translated(self.where, "listing"):
                found = {
                    path: int(info.get("size") or 0)
                    for path, info in self.fs.find(self.root, detail=True).items()
                }
        loose: dict[str, int] = {}
        metas: set[str] = set()
        idx: set[str] = set()
        pack: set[str] = set()
        reflogs: list[str] = []
        old_refs: dict[str, dict[str, list[str]]] = {}
        old_labels: list[str] = []
        for path, size in found.items():
            parts = path[len(top) :].split("/")
            head = parts[0]
            if head in ("objects", "meta") and len(parts) == 3:
                fp = parts[1] + parts[2]
                if len(parts[1]) == 2 and layout.is_fingerprint(fp):
                    if head == "objects":
                        loose[fp] = size
                    else:
                        metas.add(fp)
            elif head == bucket.PACKS and len(parts) == 2:
                name, _, ext = parts[1].partition(".")
                if bucket.is_index_name(name):
                    (idx if ext == "idx" else pack if ext == "pack" else set()).add(name)
            elif head == bucket.REFLOG and len(parts) == 2 and bucket.is_reflog_name(parts[1]):
                reflogs.append(parts[1])
            elif head == "refs" and len(parts) == 3 and parts[1] == "labels":
                old_labels.append("/".join(parts))
            elif head == "refs" and len(parts) == 5 and valid_namespace(parts[1]):
                _, namespace, _, key, value = parts
                if layout.is_fingerprint(key) and layout.is_fingerprint(value):
                    old_refs.setdefault(key, {}).setdefault(namespace, []).append(value)
        # a pack without its index is one whose push was cut short: not there
        return Scan(loose, metas, sorted(idx & pack), sorted(reflogs), old_refs, old_labels)

    def _cat(self, keys: list[str]) -> dict[str, bytes]:
        if not keys:
            return {}
        top = self.root + "/"
        if len(keys) <= 4:
            light = self._light(lambda light: light.get_many([top + k for k in keys]))
            if light is not None:
                return {path[len(top) :]: data for path, data in light.items()}
        with _translated(self.where, "reading"):
            got = self.fs.cat([top + k for k in keys], on_error="return")
        found = {}
        for path, data in got.items():
            if isinstance(data, bytes):
                found[path[len(top) :]] = data
            elif not isinstance(data, FileNotFoundError):
                raise RemoteError(f"reading {self.where}: {type(data).__name__}: {data}")
        return found

    def _ranges(self, spans: list[tuple[str, int, int]]) -> list[bytes]:
        if not spans:
            return []
        keys = [self._key(key) for key, _, _ in spans]
        got = self.fs.cat_ranges(
            keys, [s for _, s, _ in spans], [e for _, _, e in spans], on_error="raise"
        )
        return [bytes(g) for g in got]

    def _download(self, keys: list[str], paths: list[str]) -> None:
        self.fs.get([self._key(k) for k in keys], paths, batch_size=_AT_ONCE)

    def sizes(self) -> dict[str, int]:
        found = super().sizes()
        found.update(self._sent)
        return found

    # -- push --------------------------------------------------------------

    def send_all(
        self,
        store: FileStore,
        entries: list[Entry],
        sizes: dict[str, int],
        progress: Callable[[int], None] | None,
    ) -> None:
        """Upload *entries* from *store*, many at once: small ones in packs (each pack,
        then its index), large ones alone in parts (a meta file first, but for blobs)."""
        if not entries:
            return
        small = [e for e in entries if sizes.get(e.fingerprint, 0) < LOOSE]
        large = [e for e in entries if sizes.get(e.fingerprint, 0) >= LOOSE]
        groups = list(_groups(small, sizes))
        limit = asyncio.Semaphore(_AT_ONCE)
        stop: list[Exception] = []  # once one fails, no other starts

        async def guarded(job: Callable[[], Any]) -> None:
            async with limit:
                if stop:
                    return
                try:
                    await job()
                except Exception as exc:
                    stop.append(exc)

        async def one_pack(group: list[Entry]) -> None:
            name, data, index = await asyncio.to_thread(_build_pack, store, group)
            await self._put_pack(name, data, index)
            self._sent.update((e.fingerprint, sizes.get(e.fingerprint, 0)) for e in group)
            _report(progress, len(data))

        async def one_large(entry: Entry) -> None:
            fp = entry.fingerprint
            if entry.kind != content.BLOB:
                meta = json.dumps({"kind": entry.kind, "refs": list(entry.refs)}).encode()
                await self.fs._pipe_file(self._key(_fan("meta", fp)), meta)
            await self.fs._put_file(
                store.object_path(fp),
                self._key(_fan("objects", fp)),
                chunksize=PARTS,
                max_concurrency=4,
            )
            self._sent[fp] = sizes.get(fp, 0)
            _report(progress, sizes.get(fp, 0))

        async def everything() -> None:
            jobs = [functools.partial(one_pack, g) for g in groups]
            jobs += [functools.partial(one_large, e) for e in large]
            await asyncio.gather(*(guarded(job) for job in jobs))

        from fsspec.asyn import sync

        with _translated(self.where, "sending to"):
            sync(self.fs.loop, everything)
            if stop:
                raise stop[0]

    async def _put_pack(self, name: str, data: bytes, index: bytes) -> None:
        """Write a pack, then its index (a reader ignores a pack without one)."""
        await self.fs._pipe_file(self._key(bucket.PACKS, f"{name}.pack"), data)
        await self.fs._pipe_file(self._key(bucket.PACKS, f"{name}.idx"), index)
        self.cache.put(name, index)

    def update(
        self,
        refs: list[Ref],
        labels: dict[str, str],
        signatures: dict[str, list[Signature]] | None = None,
    ) -> None:
        """Check that every object *refs* and *labels* name is here, then add one ref log
        (never overwriting another's), then rewrite ``info.json``."""
        sizes = self.sizes()
        for ref in refs:
            for fp in (ref.key, *ref.values):
                if fp not in sizes:
                    raise RemoteError(
                        f"refusing ref {ref.namespace}/{ref.key[:12]}: {fp} is not on {self.where}"
                    )
        for name, fp in labels.items():
            if fp not in sizes:
                raise RemoteError(f"refusing label {name!r}: {fp} is not on {self.where}")
        name, data = bucket.encode_reflog(refs, labels, signatures or {}, time.time_ns())
        with _translated(self.where, "updating refs on"):
            self.fs.pipe_file(self._key(bucket.REFLOG, name), data)
            self.cache.put(name, data)
            self._publish_info()
        self._state = self._refstate = None

    def _publish_info(self) -> None:
        """Rewrite ``info.json`` from a fresh listing, then look again: while it misses
        what another pusher added meanwhile, write it again (the last writer checks)."""
        for _ in range(10):
            indexes, reflogs = self._names()
            self.fs.pipe_file(self._key(bucket.INFO), bucket.encode_info(indexes, reflogs))
            again = self._names()
            there = self._cat([bucket.INFO]).get(bucket.INFO)
            if there is not None:
                said = bucket.parse_info(there, self.where)
                if set(again[0]) <= set(said[0]) and set(again[1]) <= set(said[1]):
                    return

    def _names(self) -> tuple[list[str], list[str]]:
        idx: set[str] = set()
        pack: set[str] = set()
        reflogs: list[str] = []
        for path in self.fs.find(self._key(bucket.PACKS)):
            name, _, ext = path.rsplit("/", 1)[-1].partition(".")
            if bucket.is_index_name(name):
                (idx if ext == "idx" else pack if ext == "pack" else set()).add(name)
        for path in self.fs.find(self._key(bucket.REFLOG)):
            if bucket.is_reflog_name(path.rsplit("/", 1)[-1]):
                reflogs.append(path.rsplit("/", 1)[-1])
        return sorted(idx & pack), sorted(reflogs)

    def close(self) -> None:
        self._state = self._packed = self._refstate = None


class Light:
    """Signed GETs and LISTs without s3fs (whose import alone takes a few tenths of a
    second): what a push with nothing new needs, where the credentials are in the
    environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, perhaps
    ``AWS_SESSION_TOKEN``). AWS Signature Version 4 with path-style URLs; the region
    is ``$AWS_REGION`` or ``$AWS_DEFAULT_REGION`` (else ``us-east-1``). Any failure and
    anything else (a profile, an instance role) is left to s3fs."""

    def __init__(
        self, endpoint: str, region: str, key_id: str, secret: str, token: str | None
    ) -> None:
        self.endpoint, self.region = endpoint.rstrip("/"), region
        self.key_id, self.secret, self.token = key_id, secret, token

    @classmethod
    def for_remote(cls, remote: Remote) -> Light | None:
        """The light client for *remote*, or None where s3fs must find the credentials."""
        key_id = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key_id or not secret or os.environ.get("SCALEMS_S3_LIGHT") == "0":
            return None
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        region = region or "us-east-1"
        endpoint = remote.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
        endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL")
        endpoint = endpoint or f"https://s3.{region}.amazonaws.com"
        if urllib.parse.urlsplit(endpoint).scheme not in ("http", "https"):
            return None
        return cls(endpoint, region, key_id, secret, os.environ.get("AWS_SESSION_TOKEN"))

    def headers(
        self, method: str, path: str, query: dict[str, str], now: time.struct_time
    ) -> dict[str, str]:
        """The headers that sign the request (Signature Version 4, unsigned payload)."""
        import hashlib
        import hmac

        stamp = time.strftime("%Y%m%dT%H%M%SZ", now)
        day = stamp[:8]
        host = urllib.parse.urlsplit(self.endpoint).netloc
        headers = {
            "host": host,
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
            "x-amz-date": stamp,
        }
        if self.token:
            headers["x-amz-security-token"] = self.token
        base = urllib.parse.urlsplit(self.endpoint).path.rstrip("/")
        canonical_uri = urllib.parse.quote(base + path, safe="/-_.~")
        canonical_query = _query(query)
        names = sorted(headers)
        request = "\n".join(
            [
                method,
                canonical_uri,
                canonical_query,
                "".join(f"{n}:{headers[n].strip()}\n" for n in names),
                ";".join(names),
                "UNSIGNED-PAYLOAD",
            ]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        digest = hashlib.sha256(request.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{digest}"
        key = ("AWS4" + self.secret).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.key_id}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        del headers["host"]
        return headers

    def _get(self, path: str, query: dict[str, str]) -> bytes | None:
        """The body of a signed GET of *path* (``/bucket/key``), None for 404."""
        import urllib.error
        import urllib.request

        url = self.endpoint + urllib.parse.quote(path, safe="/-_.~")
        if query:
            url += "?" + _query(query)
        request = urllib.request.Request(
            url, headers=self.headers("GET", path, query, time.gmtime())
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                exc.close()
                return None
            raise

    def get_many(self, paths: list[str]) -> dict[str, bytes]:
        """The bytes of each of *paths* (``bucket/key``) that is there."""
        found = {}
        for path in paths:
            data = self._get("/" + path, {})
            if data is not None:
                found[path] = data
        return found

    def list(self, top: str) -> dict[str, int]:
        """Every key under *top* (``bucket/prefix/``) and its size: ListObjectsV2, paged."""
        import xml.etree.ElementTree as ET

        bucket_name, _, prefix = top.partition("/")
        found: dict[str, int] = {}
        token: str | None = None
        while True:
            query = {"list-type": "2", "max-keys": str(_PAGE), "prefix": prefix}
            if token:
                query["continuation-token"] = token
            data = self._get(f"/{bucket_name}", query)
            if data is None:
                raise RemoteError(f"no bucket {bucket_name}")
            root = ET.fromstring(data)
            space = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            for item in root.iter(f"{space}Contents"):
                key = item.findtext(f"{space}Key")
                size = item.findtext(f"{space}Size") or "0"
                if key is not None:
                    found[f"{bucket_name}/{key}"] = int(size)
            if (root.findtext(f"{space}IsTruncated") or "").lower() != "true":
                return found
            token = root.findtext(f"{space}NextContinuationToken")
            if not token:
                raise RemoteError("a truncated listing without a continuation token")


def _query(query: dict[str, str]) -> str:
    """*query* as Signature Version 4 wants it: sorted, every byte but ``-_.~`` escaped."""
    return "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(query.items())
    )


def _layout(data: bytes, where: str) -> int:
    try:
        found = json.loads(data)
        number = found.get("layout", 1)
    except (ValueError, AttributeError):
        raise RemoteError(f"{where}: store.json is not a scalems store's") from None
    if type(number) is not int or number < 1:
        raise RemoteError(f"{where}: store.json names no layout I know ({str(number)[:20]})")
    if number > bucket.LAYOUT:
        raise RemoteError(
            f"{where} has layout {number}, written by a newer scalems-store: upgrade to read it"
        )
    return number


def _groups(entries: list[Entry], sizes: dict[str, int]) -> Iterator[list[Entry]]:
    """*entries* cut into packs of at most :data:`PACK_BYTES` bytes and
    :data:`.packs.PACK_OBJECTS` objects."""
    group: list[Entry] = []
    weight = 0
    limit = min(PACK_BYTES, packs.PACK_BYTES)
    for entry in entries:
        size = sizes.get(entry.fingerprint, 0)
        if group and (len(group) >= packs.PACK_OBJECTS or weight + size > limit):
            yield group
            group, weight = [], 0
        group.append(entry)
        weight += size
    if group:
        yield group


def _build_pack(store: FileStore, group: list[Entry]) -> tuple[str, bytes, bytes]:
    """The name, bytes and index of the pack of *group*, each object checked as it is read.

    Raises:
        CorruptObject: an object no longer matches its name.
    """
    data = bytearray()
    rows = []
    signatures = {}
    for entry in group:
        body = store.read_stored(entry.fingerprint)  # a thin tree goes thin (its pieces too)
        rows.append((entry.fingerprint, entry.kind, len(data), len(body), entry.refs))
        data += body
        if entry.kind == content.RESULT:
            sigs = store.signatures(entry.fingerprint)
            if sigs:
                signatures[entry.fingerprint] = sigs
    blob = bytes(data)
    name, index = bucket.encode_index(rows, hash_bytes(blob), len(blob), signatures)
    return name, blob, index


def _fan(top: str, fp: str) -> str:
    return f"{top}/{fp[:2]}/{fp[2:]}"


def _check_arrived(store: FileStore, wave: list[Entry], where: str) -> None:
    missing = [entry.fingerprint for entry in wave if entry.fingerprint not in store]
    if missing:
        raise RemoteError(f"{where} did not send {len(missing)} objects, e.g. {missing[0]}")


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
