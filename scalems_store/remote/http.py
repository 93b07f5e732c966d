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
it is published here: the server is not trusted. ``push`` to an HTTP remote is
refused: publish with a path, SSH or S3 remote, and serve that.
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
from scalems_store.remote import packs
from scalems_store.remote.peer import Closure, Peer, order, piped
from scalems_store.remote.settings import Remote
from scalems_store.store.filestore import FileStore
from scalems_store.store.refs import Ref, valid_label

_THREADS = 16
_MAX_SMALL_FILE = 1 << 20
"""Meta, ref and label files larger than this are not ours."""


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
        entries = order(found)
        return Closure(entries, refs, {e.fingerprint: 0 for e in entries}, travel)

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
        """Download *entries* into a staging directory (16 at once), then publish them
        here as a pack is: each hashed and checked first."""
        with tempfile.TemporaryDirectory(dir=store.tmp, prefix="http-") as staging:
            with ThreadPoolExecutor(_THREADS, thread_name_prefix="scalems-http") as pool:
                list(pool.map(lambda e: self._download(e.fingerprint, staging), entries))
            sizes = {
                e.fingerprint: os.path.getsize(os.path.join(staging, e.fingerprint))
                for e in entries
            }

            def chunks(fp: str) -> Iterator[bytes]:
                with open(os.path.join(staging, fp), "rb") as stream:
                    while chunk := stream.read(1 << 20):
                        yield chunk

            piped(
                lambda out: packs.write_from(entries, chunks, sizes, out),
                lambda stream: packs.receive(store, stream, progress),
            )

    def _download(self, fp: str, staging: str) -> None:
        response = self._open("objects", *layout.oid_to_path(fp).split(os.sep))
        if response is None:
            raise RemoteError(f"{self.where} does not have object {fp}")
        with response, open(os.path.join(staging, fp), "wb") as out:
            try:
                shutil.copyfileobj(response, out, 1 << 20)
            except OSError as exc:
                raise RemoteError(f"{self.where}: reading object {fp}: {exc}") from None

    def update(self, refs: list[Ref], labels: dict[str, str]) -> None:
        raise BadSetting(f"{self.where} is read-only (HTTP)")
