"""verify: re-hash objects and check that everything the store says agrees with their bytes.

Found and reported (the exit status of ``scalems-store verify`` is 1 if any):
a corrupt or missing object; an object a record, label, ref or live lease names
that is missing; a ``meta/`` file that is damaged or disagrees with the bytes
(mended: it is only a cache); a result recorded for a call that is not that
call's result; files under ``refs/`` that cannot be read; symlinks and strays
where the store's own files should be; index rows of objects that are gone
(mended).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import content, reach, reading
from .errors import ArchiveError, InvalidContent, StoreError
from .fingerprint import MMAP_THRESHOLD, hash_bytes, hash_file
from .objects import DAMAGED, Meta
from .transfer import Progress

if TYPE_CHECKING:
    from .store import FileStore


class VerifyReport:
    """Outcome of :func:`verify`."""

    def __init__(self) -> None:
        self.checked = 0
        self.problems: list[tuple[str, str]] = []
        """``(fingerprint or path, what is wrong)`` for everything found."""
        self.mended: list[str] = []
        """Caches (meta files, index rows) rewritten to agree with the objects."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def summary(self) -> str:
        """One line: how many objects were checked and how many problems found."""
        mended = f", {len(self.mended)} cache entries mended" if self.mended else ""
        return f"checked {self.checked} objects, {len(self.problems)} problems{mended}"

    def add(self, what: str, problem: str) -> None:
        self.problems.append((what, problem))


def verify(
    store: FileStore,
    fingerprints: Iterable[str] | None = None,
    *,
    sample: float | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Re-hash objects and check what the store says of them; mend its caches.

    Args:
        fingerprints: Objects to check (fingerprints or prefixes); everything when None.
        sample: Check only this random fraction (0 < f <= 1) of the objects.
        progress: Called with the number of objects checked so far.
    """
    report = VerifyReport()
    if sample is not None and not 0 < sample <= 1:
        raise StoreError(f"sample must be a fraction in (0, 1], got {sample}")
    expected: dict[str, str] = {}
    if fingerprints is None:
        targets = _everything(store, report)
        expected = _check_roots(store, report)
    else:
        targets = []
        for text in fingerprints:
            try:
                targets.append(store.resolve(text))
            except StoreError as exc:
                report.add(text, f"missing: {exc}")
    if sample is not None and targets:
        import random  # imported here: random adds milliseconds to every start-up

        targets = random.sample(targets, max(1, round(len(targets) * sample)))
    for count, fp in enumerate(targets, 1):
        _check_object(store, fp, expected.get(fp), report)
        report.checked = count
        if progress is not None:
            progress(count)
    if fingerprints is None and sample is None:
        _mend_index(store, set(targets), report)
    return report


def _everything(store: FileStore, report: VerifyReport) -> list[str]:
    found: list[str] = []
    for fanout in store.objects.fanouts(report.add):
        found.extend(fanout + entry.name for entry in store.objects.scan(fanout, report.add))
    return sorted(found)


def _check_roots(store: FileStore, report: VerifyReport) -> dict[str, str]:
    """Report unreadable, dangling and wrong roots; return the kind each root implies."""
    roots = reach.roots(store)
    for path, what in roots.damage:
        report.add(path, what)
    expected: dict[str, str] = {}
    for name, fp in roots.labels.items():
        if fp not in store:
            report.add(fp, f"missing: label {name!r} points at it")
    for ref in roots.refs:
        if ref.namespace == content.CALLS:
            expected[ref.key] = content.CALL
        for fp in [ref.key, *ref.values]:
            if fp not in store:
                report.add(fp, f"missing: recorded in refs/{ref.namespace}/{ref.key[:12]}")
        if ref.namespace == content.CALLS:
            for fp in ref.values:
                expected[fp] = content.RESULT
                _check_result_of(store, ref.key, fp, report)
    for key in roots.leases:
        if len(key) == 64 and key not in store:
            report.add(key, "missing: a live lease runs it")
    return expected


def _check_result_of(store: FileStore, call: str, result: str, report: VerifyReport) -> None:
    """A result recorded for *call* must be a result record naming *call*."""
    try:
        record = content.decode(store.read_bytes(result), content.RESULT)
    except (StoreError, KeyError):
        return  # missing or corrupt: reported with the object itself
    if record.get("call") != call:
        report.add(
            result,
            f"recorded as a result of call {call[:12]} but it is a result of "
            f"{str(record.get('call'))[:12]}: not served as a cache hit",
        )


def _check_object(store: FileStore, fp: str, expected: str | None, report: VerifyReport) -> None:
    """Hash one object; check its meta file and its references against its bytes."""
    path = store.object_path(fp)
    try:
        size = os.lstat(path).st_size
        data = None if size >= MMAP_THRESHOLD else _read(path)
        actual = hash_file(path, size) if data is None else hash_bytes(data)
    except FileNotFoundError:
        report.add(fp, "missing")
        return
    except OSError as exc:
        report.add(fp, f"unreadable: {exc.strerror}")
        return
    if actual != fp:
        report.add(fp, f"corrupt: content hashes to {actual}")
        return
    meta = store.objects.meta_state(fp)
    kind = _judge_kind(store, fp, meta, expected, report)
    try:
        refs = content.references(kind, data if data is not None else _read(path))
        if kind == content.TREE:
            from . import archive

            archive.list_entries(path, checked=True)
    except (InvalidContent, ArchiveError) as exc:
        report.add(fp, f"recorded as a {kind} but its bytes are not one: {exc}")
        return
    for ref in refs:
        if ref not in store:
            report.add(ref, f"missing: referenced by {fp}")
    wanted = None if kind == content.BLOB else Meta(kind, refs)
    if meta != wanted:
        if meta is not None and meta is not DAMAGED:
            report.add(fp, "its meta file disagreed with its bytes (mended)")
        if wanted is None:
            store.objects.remove_meta(fp)
        else:
            store.objects.write_meta(fp, wanted, store.tmp, durable=store.durable)
        report.mended.append(fp)


def _judge_kind(
    store: FileStore, fp: str, meta: Meta | None, expected: str | None, report: VerifyReport
) -> str:
    """The kind to check *fp* as: its meta file's, what its bytes show where the meta
    file is damaged, or what a ref says it must be."""
    if meta is DAMAGED:
        report.add(fp, "its meta file is damaged (mended from the object's bytes)")
        return reading.sniff_kind(store.objects, fp)
    kind = content.BLOB if meta is None else meta.kind
    if expected is not None and kind != expected:
        report.add(fp, f"recorded as a {kind}, but a ref names it as a {expected}")
        return expected
    return kind


def _read(path: str) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()


def _mend_index(store: FileStore, present: set[str], report: VerifyReport) -> None:
    """Drop index rows of objects that are gone (deleted by hand), reporting each."""
    listed = set(store.index.fingerprints())
    gone = sorted(listed - present)
    for fp in gone:
        report.add(fp, "missing: listed in the index but not in objects/ (index mended)")
    if gone:
        store.index.remove(gone)
        report.mended.extend(gone)
    unlisted = present - listed
    if unlisted:
        store.index.rebuild()
        report.mended.extend(sorted(unlisted))
