"""Group commit: many objects made durable together, with the guarantee of one.

Added one at a time, a durable object costs two round trips to the disk: an
``fsync`` of its bytes before it is linked into ``objects/`` (so that a visible
object is never partial) and one of its directory after. Inside
:meth:`FileStore.batch <scalems_store.FileStore.batch>` the writer defers
publication instead: the bytes (and the ``meta/`` files of records) are written
to a locked staging directory, and :meth:`Group.commit` makes the whole group
durable with one ``syncfs`` before linking any of it, then one more for the
names. A crash still leaves nothing partial visible: an object is linked only
after its bytes are on disk.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from scalems_store.core.fsutil import Temp, fsync_path, new_locked_dir, not_writable, remove_tree

try:
    import scalems_store._speedups as _speedups
except ImportError:  # pragma: no cover - the C extension is optional
    _speedups = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from scalems_store.objects.files import Meta, ObjectDir

MAX_OBJECTS = 20_000
"""A group is committed when it holds this many objects..."""
MAX_BYTES = 1 << 30
"""...or this many bytes, so that a long batch keeps little unpublished."""


class Deferred(NamedTuple):
    """An object written and checked, waiting for its group's commit."""

    fp: str
    kind: str
    meta: Meta | None
    size: int
    temp: Temp


class Publisher(Protocol):
    """What a group needs of the writer it commits for."""

    objects: ObjectDir
    tmp: str

    def place(self, fp: str, temp: Temp) -> None:
        """Link a durable temp file into ``objects/`` as *fp*."""

    def flush_pins(self) -> None:
        """Make the pins of what is about to be placed visible (see :mod:`.pins`)."""

    def indexed(self, fp: str, kind: str, size: int) -> None:
        """Tell the index of a published object."""


class Group:
    """The objects one writer defers until they are made durable together."""

    def __init__(self, writer: Publisher) -> None:
        self.writer = writer
        # gc leaves a locked directory and its files alone: no open descriptor per object
        self.lock, self.directory = new_locked_dir(writer.tmp, "batch-")
        self.waiting: dict[str, Deferred] = {}
        self.bytes = 0

    def defer(self, item: Deferred) -> None:
        """Hold *item* for the next commit (committing first if the group is full)."""
        known = self.waiting.get(item.fp)
        if known is not None and (known.meta is not None or item.meta is None):
            item.temp.discard()  # the same bytes again: the first (or the record) stays
            return
        if known is not None:
            known.temp.discard()
            self.bytes -= known.size
        self.waiting[item.fp] = item
        self.bytes += item.size
        if len(self.waiting) >= MAX_OBJECTS or self.bytes >= MAX_BYTES:
            self.commit()

    def commit(self) -> None:
        """Make every waiting object durable, then visible, then indexed."""
        items, self.waiting, self.bytes = list(self.waiting.values()), {}, 0
        if not items:
            return
        objects, writer = self.writer.objects, self.writer
        try:
            for item in items:
                if item.meta is not None and objects.read_meta(item.fp) != item.meta:
                    objects.write_meta(item.fp, item.meta, writer.tmp, durable=False)
            # the bytes (and meta files) reach the disk before any name points at them
            self._sync([item.temp.path for item in items])
            writer.flush_pins()
            for item in items:
                item.temp.synced = True
                writer.place(item.fp, item.temp)
            self._sync({os.path.dirname(objects.path(item.fp)) for item in items})
        except OSError as exc:
            raise not_writable(self.directory, exc) from exc
        finally:
            for item in items:
                item.temp.discard()
        for item in items:
            writer.indexed(item.fp, item.kind, item.size)

    def close(self) -> None:
        """Forget what is still waiting (after an error) and remove the staging directory."""
        for item in self.waiting.values():
            item.temp.discard()
        self.waiting = {}
        remove_tree(self.directory)
        os.close(self.lock)

    def _sync(self, paths: Iterable[str]) -> None:
        """Flush the store's filesystem: one ``syncfs`` where the system has it, else an
        ``fsync`` of each of *paths* (issued together, so the filesystem can merge them)."""
        if _speedups is not None and hasattr(_speedups, "syncfs"):
            try:
                _speedups.syncfs(self.lock)
                return
            except OSError as exc:
                # a write error is reported once: only "not here" may try another way
                if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
        from concurrent.futures import ThreadPoolExecutor  # here: ~5 ms to import, seldom used

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(fsync_path, paths))
