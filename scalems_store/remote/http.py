"""HTTP(S) remotes: a copy of a store served read-only by any static web server.

Like a Nix binary cache: copy a store's directory (or ``rsync`` it) under a web
server's root, and others ``pull`` and ``fetch`` from its URL. Nothing runs on
the server and no directory listing is needed: everything is found from the
names asked for, as a store lays its files out:

- a label is ``refs/labels/<name>``; a fingerprint must be given in full (a
  prefix would need a listing);
- what an object is, and what it references, is its ``meta/ab/cdef...`` file
  (none: a blob); the results of a call are ``refs/calls/ab/cdef...``;
- each object is ``objects/ab/cdef...``.

The closure is walked breadth first, each round's files asked for at once (16
requests in flight), and every object is hashed and checked as a pack's before
it is published here: the server is not trusted; a result's signatures come
from its ``sigs/`` file. ``push`` to an HTTP remote is refused: publish with a
path, SSH or S3 remote, and serve that.

A copy of a bucket (layout 2, :mod:`.s3`) is read by :class:`HttpBucketPeer`:
its ``info.json`` names the pack indexes and ref logs (a static server lists
nothing), and packs are read by ranges where the server serves them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO

from scalems_store.core import layout
from scalems_store.core.errors import (
    BadSetting,
    InvalidFingerprint,
    ObjectNotFound,
    RemoteError,
)
from scalems_store.maint.bundle import Entry
from scalems_store.objects import content
from scalems_store.remote import bucket, packs
from scalems_store.remote.peer import Closure, Peer, order, piped
from scalems_store.remote.s3 import BucketPeer, Scan
from scalems_store.remote.settings import Remote
from scalems_store.store.filestore import FileStore
from scalems_store.store.refs import SIGS, Ref, Signature, valid_label
from scalems_store.store.refs import parse as parse_signatures

_THREADS = 16
_MAX_SMALL_FILE = 1 << 20
"""Meta, ref and label files larger than this are not ours."""


def open_http(remote: Remote) -> Peer:
    """The peer for an HTTP(S) remote: a copy of a store, or of a bucket (layout 2).

    Raises:
        RemoteError: the URL serves neither.
    """
    peer = HttpPeer(remote)
    if peer.marker.get("remote") == "s3":
        return HttpBucketPeer(remote, peer.marker)
    return peer


class HttpPeer(Peer):
    """A store's files under an HTTP(S) URL, read-only."""

    def __init__(self, remote: Remote) -> None:
        self.base = remote.url.rstrip("/") + "/"
        self.where = remote.url
        marker = self._small("store.json")
        try:
            found = json.loads(marker or b"null")
        except ValueError:
            found = None
        if not isinstance(found, dict) or found.get("format") != "scalems-store":
            raise RemoteError(f"{self.where} serves no scalems store (no store.json there)")
        self.marker: dict[str, object] = found
        self._signatures: dict[str, list[Signature]] = {}

    def _url(self, *parts: str) -> str:
        return self.base + "/".join(urllib.parse.quote(part) for part in parts)

    def _open(self, *parts: str) -> IO[bytes] | None:
        """The response for a file, or None where the server has none (404)."""
        try:
            return urllib.request.urlopen(self._url(*parts), timeout=60)
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404, 410):
                exc.close()
                return None
            raise RemoteError(
                f"{self.where}: {exc.code} {exc.reason} for {'/'.join(parts)}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteError(f"cannot reach {self.where}: {reason}") from None

    def _small(self, *parts: str) -> bytes | None:
        response = self._open(*parts)
        if response is None:
            return None
        with response:
            try:
                data = response.read(_MAX_SMALL_FILE + 1)
            except OSError as exc:
                raise RemoteError(f"{self.where}: reading {'/'.join(parts)}: {exc}") from None
        if len(data) > _MAX_SMALL_FILE:
            raise RemoteError(f"{self.where}: {'/'.join(parts)} is too large to be ours")
        return data

    def have(self, fingerprints: list[str]) -> set[str]:
        raise BadSetting(f"{self.where} is read-only (HTTP): push to a path, SSH or S3 remote")

    def closure(self, names: list[str] | None, labels: bool) -> Closure:
        if names is None:
            raise BadSetting(f"{self.where}: over HTTP, name what to pull (labels or fingerprints)")
        targets, travel = [], {}
        for name in names:
            fp, is_label = self._resolve(name)
            targets.append(fp)
            if is_label and labels:
                travel[name] = fp
        found: dict[str, Entry] = {}
        refs: list[Ref] = []
        frontier = list(dict.fromkeys(targets))
        with ThreadPoolExecutor(_THREADS, thread_name_prefix="scalems-http") as pool:
            while frontier:
                want = [fp for fp in dict.fromkeys(frontier) if fp not in found]
                frontier = []
                for fp, (entry, results) in zip(want, pool.map(self._describe, want), strict=True):
                    found[fp] = entry
                    frontier.extend(r for r in entry.refs if r not in found)
                    if results:
                        refs.append(Ref(content.CALLS, fp, results))
                        frontier.extend(r for r in results if r not in found)
            results = [fp for fp, e in found.items() if e.kind == content.RESULT]
            signatures = {
                fp: sigs
                for fp, sigs in zip(results, pool.map(self._signed, results), strict=True)
                if sigs
            }
        entries = order(found)
        self._signatures.update(signatures)
        return Closure(entries, refs, {e.fingerprint: 0 for e in entries}, travel, signatures)

    def _signed(self, fp: str) -> list[Signature]:
        """The signatures of result *fp* in the store's ``sigs/`` file (none: unsigned)."""
        data = self._small(SIGS, *layout.oid_to_path(fp).split(os.sep))
        return [] if data is None else parse_signatures(data).signatures

    def _resolve(self, name: str) -> tuple[str, bool]:
        text = name.removeprefix(layout.URI_SCHEME)
        if layout.is_fingerprint(text):
            return text, False
        data = self._small("refs", "labels", name) if valid_label(name) else None
        if data is not None:
            fp = data.decode(errors="replace").strip()
            if layout.is_fingerprint(fp):
                return fp, True
        if valid_label(name):
            raise ObjectNotFound(
                f"no label {name!r} at {self.where} (over HTTP, give a fingerprint in full)"
            )
        raise InvalidFingerprint(f"not a full fingerprint or a label: {name!r}")

    def _describe(self, fp: str) -> tuple[Entry, list[str]]:
        """What *fp* is and references (its meta file), and, for a call, its results."""
        fan = layout.oid_to_path(fp).split(os.sep)
        data = self._small("meta", *fan)
        kind: str = content.BLOB
        refs: tuple[str, ...] = ()
        if data is not None:
            try:
                meta = json.loads(data)
                kind, refs = content.check_kind(meta["kind"]), tuple(meta.get("refs", ()))
            except (ValueError, KeyError, TypeError):
                raise RemoteError(f"{self.where}: unreadable meta file of {fp}") from None
            if not all(isinstance(r, str) and layout.is_fingerprint(r) for r in refs):
                raise RemoteError(f"{self.where}: bad references in the meta file of {fp}")
        results: list[str] = []
        if kind == content.CALL:
            listed = self._small("refs", "calls", *fan)
            values = (listed or b"").decode(errors="replace").split()
            results = [v for v in values if layout.is_fingerprint(v)]
        return Entry(fp, kind, tuple(refs)), results

    def receive(
        self, store: FileStore, entries: list[Entry], progress: Callable[[int], None] | None
    ) -> None:
        self.receive_signed(store, entries, progress, {})

    def receive_all(
        self,
        store: FileStore,
        entries: list[Entry],
        sizes: dict[str, int],
        progress: Callable[[int], None] | None,
    ) -> None:
        for pack in packs.split(entries, sizes):
            self.receive_signed(store, pack, progress, self._signatures)

    def receive_signed(
        self,
        store: FileStore,
        entries: list[Entry],
        progress: Callable[[int], None] | None,
        signatures: dict[str, list[Signature]],
    ) -> None:
        """Download *entries* into a staging directory (16 at once), then publish them
        here as a pack is: each hashed and checked first."""
        with tempfile.TemporaryDirectory(dir=store.tmp, prefix="http-") as staging:
            with ThreadPoolExecutor(_THREADS, thread_name_prefix="scalems-http") as pool:
                list(pool.map(lambda e: self._download_object(e.fingerprint, staging), entries))
            sizes = {
                e.fingerprint: os.path.getsize(os.path.join(staging, e.fingerprint))
                for e in entries
            }

            def chunks(fp: str) -> Iterator[bytes]:
                with open(os.path.join(staging, fp), "rb") as stream:
                    while chunk := stream.read(1 << 20):
                        yield chunk

            piped(
                lambda out: packs.write_from(entries, chunks, sizes, out, signatures),
                lambda stream: packs.receive(store, stream, progress),
            )

    def _download_object(self, fp: str, staging: str) -> None:
        key = "objects/" + layout.oid_to_path(fp).replace(os.sep, "/")
        self._download(key, os.path.join(staging, fp))

    def _download(self, key: str, path: str) -> None:
        response = self._open(*key.split("/"))
        if response is None:
            raise RemoteError(f"{self.where} does not have {key}")
        with response, open(path, "wb") as out:
            try:
                shutil.copyfileobj(response, out, 1 << 20)
            except OSError as exc:
                raise RemoteError(f"{self.where}: reading {key}: {exc}") from None

    def update(
        self,
        refs: list[Ref],
        labels: dict[str, str],
        signatures: dict[str, list[Signature]] | None = None,
    ) -> None:
        raise BadSetting(f"{self.where} is read-only (HTTP)")


class HttpBucketPeer(BucketPeer):
    """A copy of a bucket (layout 2) served read-only over HTTP(S): found through its
    ``info.json`` (a static server lists nothing), packs read by ranges where the server
    serves them (whole where it does not), every object checked before it is published."""

    def __init__(self, remote: Remote, marker: dict[str, object]) -> None:
        super().__init__()
        self.http = HttpPeer.__new__(HttpPeer)
        self.http.base, self.http.where = remote.url.rstrip("/") + "/", remote.url
        self.where = remote.url
        number = marker.get("layout", 1)
        if number != bucket.LAYOUT:
            raise RemoteError(
                f"{self.where} serves a bucket of layout {number}: only layout "
                f"{bucket.LAYOUT} is read over HTTP (serve a store's copy, or push anew)"
            )

    def _scan(self) -> Scan:
        data = self.http._small(bucket.INFO)
        if data is None:
            return Scan(None, None, [], [], {}, [])
        indexes, reflogs = bucket.parse_info(data, self.where)
        return Scan(None, None, indexes, reflogs, {}, [])

    def _get(self, key: str, limit: int) -> bytes | None:
        response = self.http._open(*key.split("/"))
        if response is None:
            return None
        with response:
            try:
                return response.read(limit)
            except OSError as exc:
                raise RemoteError(f"{self.where}: reading {key}: {exc}") from None

    def _cat(self, keys: list[str]) -> dict[str, bytes]:
        with ThreadPoolExecutor(_THREADS, thread_name_prefix="scalems-http") as pool:
            got = list(pool.map(lambda key: self._get(key, 1 << 30), keys))
        return {key: data for key, data in zip(keys, got, strict=True) if data is not None}

    def _range(self, span: tuple[str, int, int]) -> bytes:
        key, start, end = span
        request = urllib.request.Request(
            self.http._url(*key.split("/")), headers={"Range": f"bytes={start}-{end - 1}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                if response.status == 206:
                    return bytes(response.read(end - start))
                data = response.read(end)  # the server ignores ranges: the start of it all
                return bytes(data[start:end])
        except urllib.error.HTTPError as exc:
            raise RemoteError(f"{self.where}: {exc.code} {exc.reason} for {key}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise RemoteError(f"cannot read {key} from {self.where}: {exc}") from None

    def _ranges(self, spans: list[tuple[str, int, int]]) -> list[bytes]:
        with ThreadPoolExecutor(_THREADS, thread_name_prefix="scalems-http") as pool:
            return list(pool.map(self._range, spans))

    def _download(self, keys: list[str], paths: list[str]) -> None:
        def one(pair: tuple[str, str]) -> None:
            self.http._download(pair[0], pair[1])

        with ThreadPoolExecutor(_THREADS, thread_name_prefix="scalems-http") as pool:
            list(pool.map(one, zip(keys, paths, strict=True)))

    def _present(self, sizes: dict[str, int]) -> Callable[[str], bool]:
        return lambda fp: True  # no listing: a loose object is known by being fetched

    def _resolve(self, name: str, labels: dict[str, str], sizes: dict[str, int]) -> str:
        text = name.removeprefix(layout.URI_SCHEME)
        if name in labels and not layout.is_fingerprint(text):
            return labels[name]
        if layout.is_fingerprint(text):
            return text
        if valid_label(name):
            raise ObjectNotFound(
                f"no label {name!r} at {self.where} (over HTTP, give a fingerprint in full)"
            )
        raise InvalidFingerprint(f"not a full fingerprint or a label: {name!r}")

    def have(self, fingerprints: list[str]) -> set[str]:
        raise BadSetting(f"{self.where} is read-only (HTTP): push to a path, SSH or S3 remote")
