"""Garbage collection: delete what nothing needs, never what anything still does.

Kept, whatever their age: every root (labels, refs, live leases) and, younger
than the grace period, every object; with all they reach, as their bytes say
(:mod:`scalems_store.maint.reach`; a young object is read only if it has a meta file,
as every record does). In ``tmp/``, kept: live leases, the run
directories they name, files a live writer holds (a shared ``flock``), and
anything younger than the grace period. gc lists before it reads the roots,
so an object or run directory that appears while it works is never judged
on a stale view, and it removes an object by first moving it out of sight,
so a writer adding the same content at that moment publishes it again.

If any file under ``refs/`` cannot be read, gc deletes nothing: a root it
cannot read might keep something alive.

In a store a group shares (:mod:`scalems_store.store.sharing`), a member's gc
removes only what that member owns: the kernel refuses it the others' files
(they are counted in :attr:`GcReport.kept_others`). The gc of the store's owner
(who owns every directory) or of root removes every unreferenced file.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING

from scalems_store.core import layout
from scalems_store.core.errors import StoreError
from scalems_store.core.fingerprint import hash_file
from scalems_store.core.fsutil import remove_unless_held, unlink_quietly
from scalems_store.maint import reach
from scalems_store.maint.forget import Dropped, keep_newest
from scalems_store.objects import thin
from scalems_store.objects.files import ASIDE
from scalems_store.store import lease
from scalems_store.store.refs import LOCKS
from scalems_store.store.sharing import is_shared

if TYPE_CHECKING:
    from scalems_store.store.filestore import FileStore


class GcReport:
    """Outcome of :func:`gc`."""

    def __init__(self) -> None:
        self.removed: list[str] = []
        self.freed = 0
        self.kept_young = 0
        self.temp_removed = 0
        self.kept_others = 0
        """Unreferenced objects left alone: other members of a shared store own them."""
        self.skipped: list[tuple[str, str]] = []
        """``(path, why)`` of what does not belong under ``objects/`` and was left alone."""
        self.forgotten: list[Dropped] = []
        """Results dropped from their calls' refs (``keep_results``)."""


def gc(
    store: FileStore,
    *,
    grace: float = 14 * 86400,
    dry_run: bool = False,
    keep_results: int | None = None,
) -> GcReport:
    """Delete unreachable objects older than *grace* seconds and stale temporary files.

    Args:
        keep_results: First keep only the newest this many results of each call in
            ``refs/calls/`` (:mod:`scalems_store.maint.forget`);
            a dry run says what it would drop, and what that would free.

    Raises:
        StoreError: a label or ref cannot be read; nothing was deleted.
    """
    report = GcReport()
    cutoff = time.time() - grace
    listed = store.objects.listing(lambda path, why: report.skipped.append((path, why)))
    objects = {fp: (mtime, size) for fp, size, mtime in listed}
    temp = _list_temp(store.tmp)
    roots = reach.roots(store)
    if roots.damage:
        path, what = roots.damage[0]
        raise StoreError(
            f"gc deleted nothing: {len(roots.damage)} file(s) under refs/ cannot be read as "
            f"labels or refs (first: {path}: {what}); see 'scalems-store verify'"
        )
    if keep_results is not None:  # the refs as they now are (would be) are the roots
        refs, report.forgotten = keep_newest(store, roots.refs, keep_results, dry_run=dry_run)
        roots = roots._replace(refs=refs)
    with_meta = store.objects.with_meta()
    unreadable: list[str] = []
    reachable = reach.closure(store, roots.starts(), with_meta=with_meta, unreadable=unreadable)
    if unreadable:
        raise StoreError(
            f"gc deleted nothing: {len(unreadable)} record(s) that labels or refs reach cannot "
            f"be read (first: {unreadable[0]}), so what they name is not known; see "
            "'scalems-store verify'"
        )
    young = [fp for fp, (mtime, _) in objects.items() if mtime > cutoff and fp not in reachable]
    report.kept_young = len(young)
    # a young record (one with a meta file) keeps what it names: a call packed a moment
    # ago keeps its old skeleton; young blobs and trees name nothing and are not read
    keep = reach.closure(store, [fp for fp in young if fp in with_meta], reachable, with_meta)
    keep.update(young)
    shared = is_shared(store.root)
    for fp in sorted(set(objects) - keep):
        if shared and not _removable(store.object_path(fp)):
            report.kept_others += 1
            continue
        if dry_run:
            report.removed.append(fp)
            report.freed += objects[fp][1]
            continue
        gone = store.objects.evict(fp, store.tmp, lambda st: st.st_mtime > cutoff)
        if gone is not None:
            report.removed.append(fp)
            report.freed += gone.st_size
    if not dry_run:
        store.index.remove(report.removed)
        for fp in report.removed:  # a removed result's signatures go with it
            with contextlib.suppress(OSError):  # none (not a result), or another member's
                os.unlink(store.sigs.path(fp))
    report.temp_removed = _sweep_temp(store, temp, roots.leases, cutoff, dry_run)
    return report


def _removable(path: str) -> bool:
    """Whether this user may remove the file at *path* from its sticky directory: the
    file's owner, the directory's, or root."""
    me = os.geteuid()
    try:
        return me in (0, os.lstat(path).st_uid, os.stat(os.path.dirname(path)).st_uid)
    except OSError:
        return True  # gone: nothing to keep


def _list_temp(tmp: str) -> list[os.DirEntry[str]]:
    if os.path.islink(tmp):
        return []  # nothing is read or removed through a symlink (verify reports it)
    try:
        with os.scandir(tmp) as entries:
            # leases go by their holders; ref lock files stay (see refs.RefDir.update)
            kept = {os.path.basename(lease.LEASES), LOCKS}
            return [entry for entry in entries if entry.name not in kept]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _sweep_temp(
    store: FileStore,
    entries: list[os.DirEntry[str]],
    leases: dict[str, dict[str, object]],
    cutoff: float,
    dry_run: bool,
) -> int:
    """Remove what was listed in ``tmp/`` before the roots were read, but what is alive."""
    alive = {os.path.realpath(str(h["scratch"])) for h in leases.values() if h.get("scratch")}
    removed = 0
    for entry in entries:
        if entry.name.startswith(ASIDE) and (dry_run or _restore(store, entry)):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if st.st_mtime > cutoff or os.path.realpath(entry.path) in alive:
            continue
        with contextlib.suppress(OSError):  # what cannot be removed is left for the next gc
            removed += remove_unless_held(entry.path, dry_run=dry_run)
    if not dry_run:
        removed += _reap_leases(store.root, cutoff)
    return removed


def _restore(store: FileStore, entry: os.DirEntry[str]) -> bool:
    """Put back an object a gc moved aside and did not get to judge (it was killed): it
    is whole, and a writer may have been told it is stored; a later gc judges it again."""
    fp = entry.name[len(ASIDE) :].partition("-")[0]
    if not layout.is_fingerprint(fp) or not entry.is_file(follow_symlinks=False):
        return False
    try:  # a file named so by anyone else is not an object: it is swept as any other
        if hash_file(entry.path) != fp and not thin.file_expands_to(store.objects, fp, entry.path):
            return False
    except OSError:
        return False
    if not _link_back(entry.path, store.object_path(fp)):
        return False
    unlink_quietly(entry.path)
    return True


def _reap_leases(root: str, cutoff: float) -> int:
    """Remove the leases of holders that are gone (and their run directories), and
    leftovers of a taker that died while taking one over."""
    removed = 0
    directory = lease.lease_dir(root)
    if any(map(os.path.islink, (os.path.dirname(directory), directory))):
        return 0
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if e.is_file(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for name in names:
        path = os.path.join(directory, name)
        if ".stale-" in name:
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_mtime <= cutoff:
                    os.unlink(path)
                    removed += 1
        elif len(name) == layout.FINGERPRINT_LENGTH and lease.Lease(path).reap():
            removed += 1
    return removed


def _link_back(aside: str, final: str) -> bool:
    try:
        os.link(aside, final)
    except FileExistsError:
        return True
    except OSError:
        return False
    return True
