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

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from .errors import StoreNotWritable
from .fsutil import unlink_quietly

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
"""


class Row(NamedTuple):
    """One object as the index knows it."""

    fingerprint: str
    kind: str
    size: int
    created: float


Scan = Callable[[], tuple[Iterable[Row], Iterable[tuple[str, str]]]]


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
        self._failed = False
        """An update failed: this process leaves the index alone from then on."""
        # one connection, shared with worker threads of the async face, one statement at a time
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the connection, if open."""
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
                # corrupt or not a database: it is only a cache, so start afresh
                self._discard()
                self._db = self._open_retrying()
        return self._db

    def _open_retrying(self) -> sqlite3.Connection:
        """Open the index, waiting out locks held by other processes (e.g. one creating it)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return self._open()
            except sqlite3.OperationalError as exc:
                if _corrupt(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _open(self) -> sqlite3.Connection:
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
            db.executescript(_SCHEMA)
            if self._claim_stale_marker():
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

    def _claim_stale_marker(self) -> bool:
        """Take the marker an updater left when it could not update; True if there was one.

        It is renamed away before the rebuild scans, so an update missed during the
        scan leaves a new marker for the next process.
        """
        claimed = f"{self.stale_marker}.{os.getpid()}"
        try:
            os.rename(self.stale_marker, claimed)
        except OSError:
            return False
        with contextlib.suppress(OSError):
            os.unlink(claimed)
        return True

    def _usable(self) -> bool:
        return not self._failed and enabled()

    def _leave_marker(self) -> None:
        with contextlib.suppress(OSError):  # a read-only store: nobody can update it anyway
            os.close(os.open(self.stale_marker, os.O_WRONLY | os.O_CREAT, 0o644))

    def _discard(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            unlink_quietly(self.path + suffix)

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
            rows, labels = self._scan()
            # an object's mtime moves each time its content is added again (gc reads it as
            # "last used"): keep the time it was first stored where this index knew it
            known = dict(db.execute("SELECT fingerprint, created FROM objects").fetchall())
            db.execute("DELETE FROM objects")
            db.execute("DELETE FROM labels")
            db.executemany(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)",
                (
                    (
                        r.fingerprint,
                        r.kind,
                        r.size,
                        min(r.created, known.get(r.fingerprint, r.created)),
                    )
                    for r in rows
                ),
            )
            db.executemany("INSERT OR REPLACE INTO labels VALUES (?, ?)", labels)
            db.execute("INSERT OR REPLACE INTO state VALUES ('complete', '1')")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def add(self, row: Row) -> None:
        """Record one object (a newer non-blob kind replaces ``blob``)."""
        self._update(
            "INSERT INTO objects VALUES (?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE "
            "SET kind = excluded.kind WHERE excluded.kind != 'blob'",
            [(row.fingerprint, row.kind, row.size, row.created)],
        )

    def set_label(self, name: str, fingerprint: str | None) -> None:
        """Point label *name* at *fingerprint*, or remove it when None."""
        if fingerprint is None:
            self._update("DELETE FROM labels WHERE name = ?", [(name,)])
        else:
            self._update("INSERT OR REPLACE INTO labels VALUES (?, ?)", [(name, fingerprint)])

    def remove(self, fingerprints: Iterable[str]) -> None:
        """Forget objects that were deleted."""
        self._update("DELETE FROM objects WHERE fingerprint = ?", [(fp,) for fp in fingerprints])

    def _update(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        if self._usable():
            try:
                with self._lock:
                    self.db.executemany(sql, rows)
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
        try:
            with self._lock:
                return self.db.execute(sql, args).fetchall()
        except (sqlite3.Error, StoreNotWritable):
            return None

    def rows(self, kind: str | None = None, label: str | None = None) -> list[Row]:
        """Return the objects, sorted by fingerprint, optionally of one kind or label."""
        query = "SELECT o.fingerprint, o.kind, o.size, o.created FROM objects o"
        args: list[str] = []
        if label is not None:
            query += " JOIN labels l ON l.fingerprint = o.fingerprint AND l.name = ?"
            args.append(label)
        if kind is not None:
            query += " WHERE o.kind = ?"
            args.append(kind)
        query += " ORDER BY o.fingerprint"
        found = self._query(query, args)
        if found is None:
            return self._rows_from_files(kind, label)
        return [Row(*r) for r in found]  # type: ignore[arg-type]

    def created(self, fingerprint: str) -> float | None:
        """When object *fingerprint* was first stored, as indexed; None when the index
        cannot tell (it is off or unusable, or the object is not indexed)."""
        found = self._query("SELECT created FROM objects WHERE fingerprint = ?", [fingerprint])
        return float(found[0][0]) if found else None  # type: ignore[arg-type]

    def fingerprints(self) -> list[str]:
        """Return every fingerprint, sorted: the fast path of ``ls``."""
        found = self._query("SELECT fingerprint FROM objects ORDER BY fingerprint", [])
        if found is None:
            return [r.fingerprint for r in self._rows_from_files(None, None)]
        return [str(r[0]) for r in found]

    def _rows_from_files(self, kind: str | None, label: str | None) -> list[Row]:
        """The answer of :meth:`rows` without the index: scan the store's files."""
        rows, labels = self._scan()
        wanted = None if label is None else {fp for name, fp in labels if name == label}
        return sorted(
            (
                r
                for r in rows
                if (kind is None or r.kind == kind) and (wanted is None or r.fingerprint in wanted)
            ),
            key=lambda r: r.fingerprint,
        )


def enabled() -> bool:
    """False when ``$SCALEMS_STORE_INDEX`` is ``off``: workers on the nodes of a shared
    store leave the index to the login node (sqlite's WAL needs one host)."""
    return os.environ.get("SCALEMS_STORE_INDEX", "on").lower() not in ("off", "0", "no")


def _corrupt(exc: sqlite3.DatabaseError) -> bool:
    """True for a damaged or foreign file, as opposed to a busy or locked database."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
