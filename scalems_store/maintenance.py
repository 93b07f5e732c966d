"""Store maintenance: verify objects and collect garbage."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from .errors import StoreError
from .fingerprint import hash_file
from .fsutil import unlink_quietly
from .store import FileStore
from .transfer import Progress


class VerifyReport:
    """Outcome of :meth:`FileStore.verify`."""

    def __init__(self) -> None:
        self.checked = 0
        self.problems: list[tuple[str, str]] = []
        """``(fingerprint, what is wrong)`` for every corrupt or missing object."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def summary(self) -> str:
        """One line: how many objects were checked and how many problems found."""
        return f"checked {self.checked} objects, {len(self.problems)} problems"


class GcReport:
    """Outcome of :meth:`FileStore.gc`."""

    def __init__(self) -> None:
        self.removed: list[str] = []
        self.freed = 0
        self.kept_young = 0
        self.temp_removed = 0


def verify(
    store: FileStore,
    fingerprints: Iterable[str] | None,
    *,
    sample: float | None,
    progress: Progress | None,
) -> VerifyReport:
    """Re-hash objects; report every corrupt or missing one (see :meth:`FileStore.verify`)."""
    report = VerifyReport()
    if fingerprints is None:
        targets = list(store.iter_fingerprints())
        _check_roots(store, report)
    else:
        targets = []
        for text in fingerprints:
            try:
                targets.append(store.resolve(text))
            except StoreError as exc:
                report.problems.append((text, f"missing: {exc}"))
    if sample is not None:
        if not 0 < sample <= 1:
            raise StoreError(f"sample must be a fraction in (0, 1], got {sample}")
        import random  # imported here: random adds milliseconds to every start-up

        targets = random.sample(targets, max(1, round(len(targets) * sample))) if targets else []
    for count, fp in enumerate(targets, 1):
        try:
            actual = hash_file(store.object_path(fp))
        except FileNotFoundError:
            report.problems.append((fp, "missing"))
            continue
        except OSError as exc:
            report.problems.append((fp, f"unreadable: {exc.strerror}"))
            continue
        if actual != fp:
            report.problems.append((fp, f"corrupt: content hashes to {actual}"))
        for ref in store.object_refs(fp):
            if ref not in store:
                report.problems.append((ref, f"missing: referenced by {fp}"))
        report.checked = count
        if progress is not None:
            progress(count)
    return report


def _check_roots(store: FileStore, report: VerifyReport) -> None:
    for name, fp in store.labels().items():
        if fp not in store:
            report.problems.append((fp, f"missing: label {name!r} points at it"))
    for space, key, values in store.iter_refs():
        for fp in [key, *values]:
            if fp not in store:
                report.problems.append((fp, f"missing: recorded in refs/{space}"))


def reachable(store: FileStore) -> set[str]:
    """Return every fingerprint a label or ref reaches, following recorded references."""
    pending = list(store.labels().values())
    for _, key, values in store.iter_refs():
        pending.append(key)
        pending.extend(values)
    seen: set[str] = set()
    while pending:
        fp = pending.pop()
        if fp not in seen:
            seen.add(fp)
            pending.extend(store.object_refs(fp))
    return seen


def gc(store: FileStore, *, grace: float, dry_run: bool) -> GcReport:
    """Delete unreachable objects older than *grace* seconds and stale temporary files."""
    report = GcReport()
    cutoff = time.time() - grace
    keep = reachable(store)
    for fp in store.iter_fingerprints():
        if fp in keep:
            continue
        path = store.object_path(fp)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if st.st_mtime > cutoff:
            report.kept_young += 1
            continue
        report.removed.append(fp)
        report.freed += st.st_size
        if not dry_run:
            _remove_object(store, fp)
    if not dry_run:
        store.index.remove(report.removed)
    report.temp_removed = _sweep_temp(os.path.join(store.root, "tmp"), cutoff, dry_run)
    return report


def _remove_object(store: FileStore, fp: str) -> None:
    from .layout import oid_to_path

    for path in (store.object_path(fp), os.path.join(store.root, "meta", oid_to_path(fp))):
        unlink_quietly(path)


def _sweep_temp(tmp: str, cutoff: float, dry_run: bool) -> int:
    removed = 0
    try:
        entries = list(os.scandir(tmp))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.stat(follow_symlinks=False).st_mtime > cutoff:
                continue
        except FileNotFoundError:
            continue
        removed += 1
        if dry_run:
            continue
        if entry.is_dir(follow_symlinks=False):
            import shutil  # imported here: shutil pulls in compression modules

            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            unlink_quietly(entry.path)
    return removed
