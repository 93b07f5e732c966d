"""The metadata index: a rebuildable sqlite cache of what the objects and refs say.

Nothing here is the record. Objects, ``meta/`` files and ``refs/`` are; if the
index is missing, corrupt or of an older schema, it is rebuilt from them.

The index never makes a store operation fail. An update that cannot be made
(a read-only store, a network filesystem whose locks do not work, a full disk)
leaves a ``index.sqlite.stale`` marker, and the next process that opens the
index rebuilds it; a query that cannot be answered from it is answered from the
files themselves, slower but complete.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any, NamedTuple

from scalems_store.core.errors import StoreNotWritable
from scalems_store.core.fsutil import is_odd, unlink_quietly
from scalems_store.core.threads import Beside
from scalems_store.store import indexmarks
from scalems_store.store.sharing import is_shared

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    fingerprint TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_kind ON objects (kind);
CREATE TABLE IF NOT EXISTS labels (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tree_files (
    content TEXT NOT NULL,
    tree TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (content, tree, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trees_listed (tree TEXT PRIMARY KEY) WITHOUT ROWID;
"""


class Row(NamedTuple):
    """One object as the index knows it."""

    fingerprint: str
    kind: str
    size: int
    created: float


Values = tuple[str, str, int, float]
"""The values of a :class:`Row` (a plain tuple is cheaper to make, by the 100,000)."""
Scan = Callable[[], tuple[Iterable[Values], Iterable[tuple[str, str]]]]


class Index:
    """The sqlite index of one store.

    Args:
        path: Location of ``index.sqlite``.
        scan: Called to rebuild: returns the rows of every object and every
            ``(label, fingerprint)`` pair, read from the store's files.
    """

    def __init__(self, path: str, scan: Scan) -> None:
        self.path = path
        self.stale_marker = path + ".stale"
        self._scan = scan
        self._db: sqlite3.Connection | None = None
        self._failed = not enabled()
        """An update failed (or the index is off): this process leaves it alone."""
        # one connection, shared with worker threads of the async face, one statement at a time
        self._lock = threading.RLock()
        self._pending: list[tuple[object, ...]] = []
        """Rows added but not yet written: written together (see :meth:`add`)."""
        self._timer: threading.Timer | None = None
        me = weakref.ref(self)
        atexit.register(_flush_at_exit, me)
        os.register_at_fork(after_in_child=lambda: _forget_in_child(me))

    def close(self) -> None:
        """Write what is pending and close the connection, if open."""
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection; the index is created or rebuilt on first use."""
        with self._lock:
            return self._connection()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = self._open_retrying()
            except sqlite3.DatabaseError as exc:
                if not _corrupt(exc):
                    raise StoreNotWritable(f"cannot use index {self.path!r}: {exc}") from exc
                # corrupt, not a database or of another shape: it is only a cache, so
                # start afresh (at once: no wait would mend it)
                self._discard()
                self._db = self._open_retrying()
        return self._db

    def _open_retrying(self) -> sqlite3.Connection:
        """Open the index, waiting out locks held by other processes (e.g. one creating
        it); any other error (a full disk, a read-only store) is raised at once."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return self._open()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _open(self) -> sqlite3.Connection:
        for path in filter(is_odd, self._files()):
            if os.path.isdir(path) and not os.path.islink(path):
                raise StoreNotWritable(f"cannot open index {path!r}: it is a directory")
            # a FIFO (sqlite would wait for a writer for ever), a symlink...: never ours
            unlink_quietly(path)
        try:
            db = sqlite3.connect(
                self.path, timeout=60, isolation_level=None, check_same_thread=False
            )
        except sqlite3.OperationalError as exc:
            if "unable to open" in str(exc):
                raise StoreNotWritable(f"cannot open index {self.path!r}: {exc}") from exc
            raise
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if _master(db) not in ([], _expected_master()):
                raise _Misshapen("the index has tables of another shape")
            db.executescript(_SCHEMA)
            self._share()
            if self._claim_stale_marker() or self._claim_dead_pending():
                try:
                    self._rebuild(db)  # an update was missed: scan the files again
                except BaseException:
                    self._leave_marker()
                    raise
            elif not self._current(db):
                self._rebuild(db, only_if_stale=True)
        except BaseException:
            db.close()
            raise
        return db

    def _share(self) -> None:
        """In a shared store, let the group write the index this user made (sqlite makes
        its ``-wal`` and ``-shm`` files with the mode of the database)."""
        if not is_shared(os.path.dirname(self.path)):
            return
        for path in self._files():
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o060 != 0o060:
                    os.chmod(path, stat.S_IMODE(info.st_mode) | 0o060)

    def _claim_stale_marker(self) -> bool:
        return indexmarks.claim_stale(self.stale_marker)

    def _claim_dead_pending(self) -> bool:
        return indexmarks.claim_dead_pending(self.path)

    def _usable(self) -> bool:
        return not self._failed

    def _leave_marker(self) -> None:
        indexmarks.leave_stale(self.stale_marker)

    def _files(self) -> list[str]:
        return [self.path + suffix for suffix in ("", "-wal", "-shm")]

    def _discard(self) -> None:
        for path in self._files():
            unlink_quietly(path)

    @staticmethod
    def _current(db: sqlite3.Connection) -> bool:
        if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            return False
        return db.execute("SELECT value FROM state WHERE key = 'complete'").fetchone() is not None

    def rebuild(self) -> int:
        """Rebuild the index from the store's files; return the number of objects."""
        with self._lock:
            self._rebuild(self.db)
            return int(self.db.execute("SELECT count(*) FROM objects").fetchone()[0])

    def _rebuild(self, db: sqlite3.Connection, *, only_if_stale: bool = False) -> None:
        # Scan inside the write lock: a writer that publishes an object after the scan
        # then waits for the lock and indexes it after this commit, so nothing is lost.
        db.execute("BEGIN IMMEDIATE")
        try:
            if only_if_stale and self._current(db):
                db.execute("COMMIT")
                return  # another process rebuilt it while we waited
            # the files are listed (in C, without the GIL) while sqlite reads the table
            scanning = Beside(self._scan, "scalems-index-scan")
            try:
                known_rows = db.execute("SELECT * FROM objects").fetchall()
            finally:
                scanning.wait()
            rows, labels = scanning.result()
            # Bring the table to what the files say, writing only the rows that differ
            # (a rebuild of a sound index writes little). An object's mtime moves each
            # time its content is added again (gc reads it as "last used"): keep the
            # time it was first stored where this index knew it.
            known = {r[0]: r[1:] for r in known_rows}
            changed = []
            for row in rows:
                was = known.pop(row[0], None)
                if was is None or was[0] != row[1] or was[1] != row[2] or row[3] < was[2]:
                    changed.append(row if was is None else (*row[:3], min(row[3], was[2])))
            db.executemany(
                "DELETE FROM objects WHERE fingerprint = ?", [(fp,) for fp in sorted(known)]
            )
            db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", sorted(changed))
            db.execute("DELETE FROM labels")
            db.executemany("INSERT OR REPLACE INTO labels VALUES (?, ?)", labels)
            gone = [(fp,) for fp in sorted(known)]  # trees no longer stored: files forgotten
            db.executemany("DELETE FROM tree_files WHERE tree = ?", gone)
            db.executemany("DELETE FROM trees_listed WHERE tree = ?", gone)
            db.execute("INSERT OR REPLACE INTO state VALUES ('complete', '1')")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def add(self, fingerprint: str, kind: str, size: int) -> None:
        """Record one object, stored now (a newer non-blob kind replaces ``blob``).

        Rows are written together, :data:`BATCH_ROWS` at a time or after
        :data:`BATCH_SECONDS`, before any query, and when the store is closed (or the
        process exits): one transaction instead of one per object. Meanwhile a
        ``index.sqlite.pending-<host>-<pid>`` file says rows may be missing, and a
        process that finds it left by a process that died rebuilds the index.
        """
        if not self._usable():
            self._leave_marker()
            return
        with self._lock:
            if not self._pending:
                indexmarks.touch(self._marker())
                # written within BATCH_SECONDS even if this process adds nothing more
                self._timer = threading.Timer(BATCH_SECONDS, self.flush)
                self._timer.daemon = True
                self._timer.start()
            self._pending.append((fingerprint, kind, size, time.time()))
            if len(self._pending) >= BATCH_ROWS:
                self.flush()

    def flush(self) -> None:
        """Write the rows added so far."""
        with self._lock:
            if not self._pending:
                return
            rows, self._pending = self._pending, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            rows.sort(key=itemgetter(0))  # the key's order (stable): less B-tree work
            self._update(_ADD, rows)
            unlink_quietly(self._marker())

    def _marker(self) -> str:
        return indexmarks.pending(self.path)

    def set_label(self, name: str, fingerprint: str | None) -> None:
        """Point label *name* at *fingerprint*, or remove it when None."""
        self.flush()  # in order: the label's object is indexed first
        if fingerprint is None:
            self._update("DELETE FROM labels WHERE name = ?", [(name,)])
        else:
            self._update("INSERT OR REPLACE INTO labels VALUES (?, ?)", [(name, fingerprint)])

    def remove(self, fingerprints: Iterable[str]) -> None:
        """Forget objects that were deleted (and the files of deleted trees)."""
        self.flush()  # in order: a pending row of a deleted object must not come back
        rows: list[tuple[object, ...]] = [(fp,) for fp in fingerprints]
        self._update("DELETE FROM objects WHERE fingerprint = ?", rows)
        self._update("DELETE FROM tree_files WHERE tree = ?", rows)
        self._update("DELETE FROM trees_listed WHERE tree = ?", rows)

    # -- the files inside trees (filled by scalems_store.query.treefiles) -----

    def listed_trees(self) -> set[str] | None:
        """The trees whose files are indexed; None when the index cannot answer."""
        found = self._query("SELECT tree FROM trees_listed", [])
        return None if found is None else {str(r[0]) for r in found}

    def list_tree(self, tree: str, files: Iterable[tuple[str, str]]) -> None:
        """Record the files of *tree*: ``(content fingerprint, path)`` pairs, all of them."""
        rows: list[tuple[object, ...]] = [(fp, tree, path) for fp, path in files]
        self._update("INSERT OR IGNORE INTO tree_files VALUES (?, ?, ?)", rows)
        self._update("INSERT OR IGNORE INTO trees_listed VALUES (?)", [(tree,)])

    def forget_tree_files(self) -> None:
        """Forget every tree's files (``reindex`` lists them again)."""
        self._update("DELETE FROM tree_files", [()])
        self._update("DELETE FROM trees_listed", [()])

    def places(self, content: str) -> list[tuple[str, str, str]] | None:
        """``(content, tree, path)`` of each file whose content fingerprint is *content*,
        or starts with it (a prefix); None when the index cannot answer."""
        # a prefix is a range of the key: hex sorts as text, and "g" after every digit
        sql = "SELECT content, tree, path FROM tree_files WHERE content >= ? AND content < ?"
        found = self._query(sql, [content, content + "g"])
        return None if found is None else [(str(a), str(b), str(c)) for a, b, c in found]

    def _update(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        if self._usable():
            try:
                with self._lock:
                    db = self.db
                    db.execute("BEGIN IMMEDIATE")  # one transaction for all the rows
                    try:
                        db.executemany(sql, rows)
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
                return
            except (sqlite3.Error, StoreNotWritable):
                # not again in this process (each try could wait out a lock); the
                # next process that opens the index rebuilds it
                self._failed = True
                with contextlib.suppress(sqlite3.Error):
                    self.close()
        self._leave_marker()

    def _query(self, sql: str, args: list[str]) -> list[tuple[object, ...]] | None:
        """The rows of a query, or None when the index cannot answer."""
        if not self._usable():
            return None
        self.flush()
        try:
            with self._lock:
                if self._db is not None and self._claim_dead_pending():
                    self._rebuild(self._db)  # e.g. a forked child that exited unflushed
                return self.db.execute(sql, args).fetchall()
        except (sqlite3.Error, StoreNotWritable):
            return None

    def rows(self, kind: str | None = None, label: str | None = None) -> list[Row]:
        """Return the objects, sorted by fingerprint, optionally of one kind or label."""
        return [Row(*r) for r in self.tuples(kind, label)]

    def tuples(self, kind: str | None = None, label: str | None = None) -> list[Values]:
        """:meth:`rows` as plain ``(fingerprint, kind, size, created)`` tuples (a million
        of them cost 0.4 s less)."""
        found = self._select(_COLUMNS, kind, label)
        return self._rows_from_files(kind, label) if found is None else found

    def json_ordered(self, kind: str | None = None) -> list[tuple[float, str, str, int]]:
        """:meth:`tuples` as ``(created, fingerprint, kind, size)``: JSON's sorted keys."""
        found = self._select("o.created, o.fingerprint, o.kind, o.size", kind, None)
        if found is None:
            return list(map(itemgetter(3, 0, 1, 2), self._rows_from_files(kind, None)))
        return found

    def _select(self, columns: str, kind: str | None, label: str | None) -> Any:
        """The objects' *columns*, sorted by fingerprint; None when the index cannot answer."""
        query = f"SELECT {columns} FROM objects o"
        args: list[str] = []
        if label is not None:
            query += " JOIN labels l ON l.fingerprint = o.fingerprint AND l.name = ?"
            args.append(label)
        if kind is not None:
            query += " WHERE o.kind = ?"
            args.append(kind)
        return self._query(query + " ORDER BY o.fingerprint", args)

    def created(self, fingerprint: str) -> float | None:
        """When object *fingerprint* was first stored, as indexed; None when the index
        cannot tell (it is off or unusable, or the object is not indexed)."""
        found = self._query("SELECT created FROM objects WHERE fingerprint = ?", [fingerprint])
        return float(found[0][0]) if found else None  # type: ignore[arg-type]

    def fingerprints(self) -> list[str]:
        """Return every fingerprint, sorted: the fast path of ``ls``."""
        found = self._query("SELECT fingerprint FROM objects ORDER BY fingerprint", [])
        if found is None:
            return [r[0] for r in self._rows_from_files(None, None)]
        return [str(r[0]) for r in found]

    def not_blobs(self) -> dict[str, str]:
        """The objects indexed as something else than a blob, and their kinds (few, in a
        store of mostly files: what verify checks the index's kinds on)."""
        found = self._query("SELECT fingerprint, kind FROM objects WHERE kind != 'blob'", [])
        if found is None:
            return {r[0]: r[1] for r in self._rows_from_files(None, None) if r[1] != "blob"}
        return {str(r[0]): str(r[1]) for r in found}

    def _rows_from_files(self, kind: str | None, label: str | None) -> list[Values]:
        """The answer of :meth:`tuples` without the index: scan the store's files."""
        rows, labels = self._scan()
        wanted = None if label is None else {fp for name, fp in labels if name == label}
        return sorted(
            r for r in rows if (kind is None or r[1] == kind) and (wanted is None or r[0] in wanted)
        )


_COLUMNS = "o.fingerprint, o.kind, o.size, o.created"

BATCH_ROWS = 8192
"""Rows added are written together, this many at a time..."""
BATCH_SECONDS = 1.0
"""...or once the oldest has waited this long."""
_ADD = (
    "INSERT INTO objects VALUES (?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE "
    "SET kind = excluded.kind WHERE excluded.kind != 'blob'"
)


def _flush_at_exit(ref: weakref.ReferenceType[Index]) -> None:
    index = ref()
    if index is not None:
        with contextlib.suppress(Exception):  # the index is a cache: never fail an exit
            index.flush()


def _forget_in_child(ref: weakref.ReferenceType[Index]) -> None:
    """In a forked child: the parent writes its own pending rows, and neither the lock
    (perhaps held by a parent thread) nor the sqlite connection may be shared."""
    index = ref()
    if index is not None:
        index._lock = threading.RLock()
        index._pending = []
        index._timer = None
        if index._db is not None:
            _forked_away.append(index._db)  # never closed here: it is the parent's
            index._db = None


_forked_away: list[sqlite3.Connection] = []


def enabled() -> bool:
    """False when ``$SCALEMS_STORE_INDEX`` is ``off``: workers on the nodes of a shared
    store leave the index to the login node (sqlite's WAL needs one host)."""
    return os.environ.get("SCALEMS_STORE_INDEX", "on").lower() not in ("off", "0", "no")


class _Misshapen(sqlite3.DatabaseError):
    """The index holds tables (or views, triggers, indexes) other than its schema's."""


def _corrupt(exc: sqlite3.DatabaseError) -> bool:
    """True for a damaged or foreign file, as opposed to a busy or locked database."""
    if isinstance(exc, _Misshapen):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _busy(exc: sqlite3.DatabaseError) -> bool:
    """True for a database another process holds locked: worth waiting for."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


_SHAPE: list[list[tuple[str, str, str]]] = []


def _expected_master() -> list[tuple[str, str, str]]:
    """What ``sqlite_master`` holds in an index of this schema: an index holding anything
    else (an ``objects`` table with other columns would fail every query) is made afresh."""
    if not _SHAPE:
        fresh = sqlite3.connect(":memory:")
        try:
            fresh.executescript(_SCHEMA)
            _SHAPE.append(_master(fresh))
        finally:
            fresh.close()
    return _SHAPE[0]


def _master(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
    rows = db.execute("SELECT type, name, coalesce(sql, '') FROM sqlite_master").fetchall()
    return sorted((str(t), str(n), " ".join(str(s).split())) for t, n, s in rows)
