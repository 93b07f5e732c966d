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

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import TYPE_CHECKING

from scalems_store.core import layout
from scalems_store.core.errors import (
    ArchiveError,
    CorruptObject,
    InvalidContent,
    ObjectNotFound,
    StoreError,
)
from scalems_store.core.fingerprint import MMAP_THRESHOLD, hash_bytes, hash_file, usable_cores
from scalems_store.core.fsutil import is_odd, read_regular
from scalems_store.maint import reach
from scalems_store.objects import content, reading
from scalems_store.objects.files import DAMAGED, Meta, ObjectDir
from scalems_store.store import lease

try:
    import scalems_store._speedups as _speedups
except ImportError:  # built without a C compiler: Python reads each object itself
    _speedups = None  # type: ignore[assignment]
from scalems_store.objects.transfer import Progress

if TYPE_CHECKING:
    from scalems_store.store.filestore import FileStore


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
    present: set[str] | None = None  # every object, when all were listed
    if fingerprints is None:
        targets = list(map(itemgetter(0), store.objects.listing(report.add, sizes=False)))
        present = set(targets)
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
    with_meta = store.objects.with_meta()
    indexed: list[tuple[set[str], dict[str, str]]] = []  # read while the objects are hashed
    mending = fingerprints is None and sample is None

    def meanwhile() -> None:
        if mending:
            indexed.append((set(store.index.fingerprints()), store.index.not_blobs()))

    problems = _mismatches(store, targets, report, progress, meanwhile)
    for fp in sorted(problems):
        report.add(fp, problems[fp])
    # a blob without meta names nothing: it is done once hashed
    for fp in sorted((with_meta | expected.keys()) & set(targets) - problems.keys()):
        # one removed since it was listed (a gc running meanwhile) is no error: if
        # anything still names it, the check of the roots and of the records says so
        with contextlib.suppress(FileNotFoundError, ObjectNotFound):
            _check_object(store, fp, None, expected.get(fp), report, present)
    if mending:
        assert present is not None  # mending is for a whole store
        _mend_index(store, present, *indexed[0], with_meta, report)
    return report


READ_BATCH = 512
"""Small objects read per call of the C reader (without the GIL)."""
PARALLEL = 4096
"""Fewest objects worth hashing in several processes."""
_WORK: tuple[ObjectDir, list[str]] | None = None
"""What the hashing processes share (set before they are forked)."""
_FORKED = False
"""True in a hashing process: it hashes the large objects of its shards itself."""


def _mismatches(
    store: FileStore,
    targets: list[str],
    report: VerifyReport,
    progress: Progress | None,
    meanwhile: Callable[[], None],
) -> dict[str, str]:
    """Hash every target; return what is wrong with those that do not match their name.

    Many objects are hashed in one forked process per core, each reading its share in
    batches with the C reader, as ``find | xargs -P b3sum`` would, and hashing the large
    objects of its share through mmap as it meets them: every core hashes large and
    small objects alike, to the end, rather than the large ones waiting for the small.
    Few objects are hashed here, the large ones with BLAKE3's threads on every core.
    """
    global _WORK
    cores = usable_cores()
    step = max(READ_BATCH, -(-len(targets) // (8 * cores)))
    shards = [(at, min(at + step, len(targets))) for at in range(0, len(targets), step)]
    _WORK = (store.objects, targets)
    found: dict[str, str] = {}
    large: list[str] = []
    try:
        for done, problems, unread in _shards(
            shards, meanwhile, parallel=len(targets) >= PARALLEL and cores > 1
        ):
            found.update(problems)
            large.extend(unread)
            report.checked += done - len(unread)
            if progress is not None:
                progress(report.checked)
    finally:
        _WORK = None
    for fp in large:  # here, on every core (a forked process must not: see _shard_problems)
        actual = _hash_large(store.objects, fp)
        if actual != fp and actual != "missing":  # "missing": removed since it was listed
            found[fp] = _problem(actual)
        report.checked += 1
        if progress is not None:
            progress(report.checked)
    for fp in [fp for fp, what in found.items() if what.startswith("corrupt")]:
        _check_thin(store, fp, found)
    return found


def _check_thin(store: FileStore, fp: str, found: dict[str, str]) -> None:
    """Judge again object *fp*, whose file does not hash to its name: a tree stored thin
    (:mod:`scalems_store.objects.thin`) is sound when its pieces rebuild its archive."""
    from scalems_store.objects import thin

    try:
        got = thin.expanded_hash(store.objects, fp, careful=True)
    except ObjectNotFound:
        found.pop(fp)  # removed since it was listed
        return
    except StoreError as exc:  # a header that cannot be read, a piece missing or short
        found[fp] = f"corrupt: {exc}"
        return
    if got == fp:
        found.pop(fp)
        if store.objects.meta_state(fp) is None:  # lost: without it, it reads as a blob
            pieces = thin.pieces_of(store.objects, fp)
            meta = Meta(content.TREE, pieces)
            with contextlib.suppress(StoreError, OSError):
                store.objects.write_meta(fp, meta, store.tmp, durable=store.durable)
    elif got is not None:
        found[fp] = f"corrupt: a tree stored thin, whose pieces rebuild content hashing to {got}"


def _problem(actual: str) -> str:
    if actual.startswith(("missing", "unreadable")):
        return actual
    return f"corrupt: content hashes to {actual}"


def _shards(
    shards: list[tuple[int, int]], meanwhile: Callable[[], None], *, parallel: bool
) -> Iterator[tuple[int, dict[str, str], list[str]]]:
    """The problems of each shard; *meanwhile* runs here while the processes hash."""
    if not parallel or not hasattr(os, "fork"):
        meanwhile()
        yield from map(_shard_problems, shards)
        return
    yield from _forked_shards(shards, meanwhile, usable_cores())


def _forked_shards(
    shards: list[tuple[int, int]], meanwhile: Callable[[], None], workers: int
) -> Iterator[tuple[int, dict[str, str], list[str]]]:
    """The problems of each shard, hashed in *workers* forked processes; *meanwhile* runs
    here while they hash.

    Each process takes the next shard from a shared pipe as it is done with one (a shard
    with large objects in it holds no other process up) and sends each shard's result
    back on a pipe of its own, as it is done. A shard whose result never comes (its
    process died) is hashed here. Plain ``fork`` and pipes: multiprocessing's pool cost
    verify of 20,000 objects some 15-20 ms to import and start, before any hashing.
    """
    import marshal
    import select

    todo, todo_w = os.pipe()
    results: dict[int, int] = {}  # the read end of each process's result pipe: its pid
    try:
        for _ in range(workers):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover (a forked child: coverage does not see it)
                os.close(todo_w)
                os.close(r)
                _hash_shards(shards, todo, w)
            os.close(w)
            results[r] = pid
        # the shards' numbers, 4 bytes each, in writes of at most PIPE_BUF bytes: each
        # write is atomic, so a process's read of 4 bytes gets one whole number
        numbers = b"".join(i.to_bytes(4, "little") for i in range(len(shards)))
        step = select.PIPE_BUF // 4 * 4
        for at in range(0, len(numbers), step):
            os.write(todo_w, numbers[at : at + step])
    finally:
        os.close(todo_w)
        os.close(todo)
    meanwhile()
    waiting = set(range(len(shards)))
    pending = {fd: b"" for fd in results}
    try:
        while pending:
            ready, _, _ = select.select(list(pending), [], [])
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    os.close(fd)
                    del pending[fd]
                    continue
                held = pending[fd] + chunk
                while len(held) >= 4 and len(held) >= 4 + (n := int.from_bytes(held[:4], "little")):
                    number, done, problems, unread = marshal.loads(held[4 : 4 + n])
                    held = held[4 + n :]
                    waiting.discard(number)
                    yield done, problems, unread
                pending[fd] = held
    finally:
        for fd in pending:
            os.close(fd)
        for pid in results.values():
            if pending:  # left early (an error, Ctrl-C): they must not hash on
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            os.waitpid(pid, 0)
    yield from (_shard_problems(shards[number]) for number in sorted(waiting))


def _hash_shards(shards: list[tuple[int, int]], todo: int, out: int) -> None:
    """In a forked process: hash the shards whose numbers come from *todo*, sending each
    result to *out*; then exit (an error: silently, the parent hashes what is missing)."""
    import gc
    import marshal

    global _FORKED
    _FORKED = True
    gc.disable()  # short-lived: the collector would only copy the parent's pages
    status = 1
    try:
        while len(got := os.read(todo, 4)) == 4:
            number = int.from_bytes(got, "little")
            message = marshal.dumps((number, *_shard_problems(shards[number])))
            os.write(out, len(message).to_bytes(4, "little"))
            view = memoryview(message)
            while view:
                view = view[os.write(out, view) :]
        status = 0
    finally:
        os._exit(status)


def _shard_problems(shard: tuple[int, int]) -> tuple[int, dict[str, str], list[str]]:
    """Hash the targets ``[start, end)`` of the work; return how many targets, the
    problems, and the objects left for the caller. The small ones are read in batches
    by the C reader; in a forked process the others (large ones, or ones the C reader
    could not read) are hashed here on one thread (BLAKE3's thread pool is the
    parent's: a forked process must not use it), else left to the caller, who hashes
    them on every core."""
    from blake3 import blake3

    assert _WORK is not None
    objects, targets = _WORK
    problems: dict[str, str] = {}
    unread: list[str] = []
    for at in range(shard[0], shard[1], READ_BATCH):
        batch = targets[at : min(at + READ_BATCH, shard[1])]
        for fp, got in zip(batch, _read_batch(objects, batch), strict=True):
            if got is None:
                if not _FORKED:
                    unread.append(fp)
                    continue
                actual = _hash_large(objects, fp, threads=False)
                if actual != fp:
                    problems[fp] = _problem(actual)
                continue
            # the loop of a million objects: the hasher itself, not hash_bytes' checks
            actual = blake3(got).hexdigest()
            if actual != fp:
                problems[fp] = _problem(actual)
    return shard[1] - shard[0], problems, unread


def _read_batch(objects: ObjectDir, batch: list[str]) -> list[bytes | None]:
    """The bytes of the small objects of *batch* (None for large or unreadable ones)."""
    if _speedups is None:
        return [None] * len(batch)
    top = objects.top
    paths = [f"{top}/{fp[:2]}/{fp[2:]}" for fp in batch]  # objects.path, inlined: 1M calls
    return [
        None if item is None else item[0] for item in _speedups.read_files(paths, MMAP_THRESHOLD)
    ]


def _hash_large(objects: ObjectDir, fp: str, *, threads: bool = True) -> str:
    """What object *fp* hashes to, read by Python (a large one, or one the C reader could
    not read), on every core or, without *threads*, on this thread alone; ``missing``
    or ``unreadable: ...`` if it cannot be read."""
    path = objects.path(fp)
    try:
        size = os.lstat(path).st_size
        if size < MMAP_THRESHOLD:
            return hash_bytes(_read(path))
        if not threads:
            from blake3 import blake3

            return blake3().update_mmap(path).hexdigest()
        return hash_file(path, size)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


def _check_roots(store: FileStore, report: VerifyReport) -> dict[str, str]:
    """Report unreadable, dangling and wrong roots; return the kind each root implies."""
    roots = reach.roots(store)
    for path, what in roots.damage:
        report.add(path, what)
    for name in (layout.OBJECTS, layout.META, layout.REFS, layout.TMP, lease.LEASES):
        path = os.path.join(store.root, name)
        if os.path.islink(path):
            report.add(path, "a symlink where a directory of the store should be")
    _check_odd_files(store, report)
    expected: dict[str, str] = {}
    for name, fp in roots.labels.items():
        if fp not in store:
            report.add(fp, f"missing: label {name!r} points at it")
    for ref in roots.refs:
        if ref.namespace == content.CALLS:
            expected[ref.key] = content.CALL
        keys = [] if ref.namespace in content.CONTENT_KEYED else [ref.key]
        for fp in [*keys, *ref.values]:
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


def _check_odd_files(store: FileStore, report: VerifyReport) -> None:
    """Report the store's own files (and leases) that are not regular files: each is
    treated as missing or damaged where it is read (a FIFO would block its reader)."""
    from scalems_store.store.config import CONFIG

    names = [layout.STORE_FILE, CONFIG, *(layout.INDEX + s for s in ("", "-wal", "-shm"))]
    paths = [os.path.join(store.root, name) for name in names]
    leases = lease.lease_dir(store.root)
    with contextlib.suppress(OSError), os.scandir(leases) as entries:
        paths.extend(e.path for e in entries if not e.is_file(follow_symlinks=False))
    for path in paths:
        if is_odd(path):
            fate = "never read: taken as missing or damaged"
            if path.startswith(os.path.join(store.root, layout.INDEX)):
                fate = "the index is made afresh"
                if os.path.isdir(path) and not os.path.islink(path):
                    fate = "the index is not used: remove it"
            report.add(path, f"not a regular file ({fate})")


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


def _check_object(
    store: FileStore,
    fp: str,
    data: bytes | None,
    expected: str | None,
    report: VerifyReport,
    present: set[str] | None,
) -> None:
    """Check an object that matches its name against what its meta file (or a ref) says,
    and that what its bytes name is present; mend the meta file if need be."""
    path = store.object_path(fp)
    meta = store.objects.meta_state(fp)
    kind = _judge_kind(store, fp, meta, expected, report)
    try:
        if kind == content.TREE:  # its pieces, if it is stored thin; read as a whole archive
            from scalems_store.objects import thin
            from scalems_store.tar import archive

            refs = thin.pieces_of(store.objects, fp)
            # hashed already (a thin tree rebuilt from its pieces): only its headers now
            with thin.headers_file(store.objects, fp, store.tmp) as (whole, _):
                archive.list_entries(whole, checked=True)
        else:
            refs = content.references(kind, data if data is not None else _read(path))
    except (InvalidContent, ArchiveError, CorruptObject) as exc:
        report.add(fp, f"recorded as a {kind} but its bytes are not one: {exc}")
        return
    for ref in refs:
        if ref not in (present if present is not None else store):
            report.add(ref, f"missing: referenced by {fp}")
    wanted = None if kind == content.BLOB else Meta(kind, refs)
    if meta != wanted:
        if meta is not None and meta is not DAMAGED:
            report.add(fp, "its meta file disagreed with its bytes (mended)")
        try:
            if wanted is None:
                store.objects.remove_meta(fp)
            else:
                store.objects.write_meta(fp, wanted, store.tmp, durable=store.durable)
        except (StoreError, OSError) as exc:  # a directory in its place, no permission...
            report.add(fp, f"its meta file cannot be mended: {exc}")
            return
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
    return read_regular(path)


def _mend_index(
    store: FileStore,
    present: set[str],
    listed: set[str],
    not_blobs: dict[str, str],
    with_meta: set[str],
    report: VerifyReport,
) -> None:
    """Drop index rows of objects that are gone (deleted by hand), and rebuild the index
    if it lacks objects or says the wrong kind of one, reporting each; *listed* is what
    the index listed, *not_blobs* the kinds it gives those that are not blobs."""
    gone = sorted(listed - present)
    for fp in gone:
        report.add(fp, "missing: listed in the index but not in objects/ (index mended)")
    if gone:
        store.index.remove(gone)
        report.mended.extend(gone)
    wrong = []
    # only an object with meta, or one the index says is no blob, can be of another kind
    for fp in sorted((not_blobs.keys() | with_meta) & present & listed):
        kind = store.kind(fp) if fp in with_meta else content.BLOB  # a blob has no meta
        said = not_blobs.get(fp, content.BLOB)
        if said != kind:
            report.add(fp, f"the index says it is a {said}, it is a {kind} (index mended)")
            wrong.append(fp)
    unlisted = present - listed
    if unlisted or wrong:
        store.index.rebuild()
        report.mended.extend(sorted(unlisted) + wrong)
