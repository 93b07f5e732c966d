"""The one write path of a store: bytes hashed as they are written to ``tmp/``, checked
against the kind they are said to have, fsynced, and published with ``os.link``.

A crash at any moment leaves at most a file in ``tmp/``, never a partial object.
An object that is already stored counts as success, and is touched so that
gc's grace period counts from its latest add; if gc removed it a moment ago,
it is published again.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, NamedTuple, TypeVar

from scalems_store.core import layout
from scalems_store.core.errors import FingerprintMismatch, InvalidContent, InvalidPath
from scalems_store.core.fingerprint import MMAP_THRESHOLD, hash_bytes, new_hasher
from scalems_store.core.fsutil import Temp, not_writable, write_all
from scalems_store.core.threads import pipelined
from scalems_store.objects import content, thin
from scalems_store.objects.claims import check_tree, claimed, read_file
from scalems_store.objects.files import Meta, ObjectDir
from scalems_store.objects.pins import Pinning
from scalems_store.objects.placing import Placer, touch
from scalems_store.objects.transfer import Progress, copy_and_hash, read_chunks
from scalems_store.tar import thintar
from scalems_store.tar.thintar import Header, Piece

if TYPE_CHECKING:
    from scalems_store.objects.group import Group

T = TypeVar("T")
Refs = Iterable[str] | None
"""References a caller claims an object has: checked against its content; None claims nothing."""
Named = Callable[[str], object] | None
"""Called with an object's fingerprint once it is published (to label it)."""


class Staged(NamedTuple):
    """A file written and hashed in ``tmp/``, not yet published."""

    fp: str
    temp: Temp
    size: int

    @property
    def path(self) -> str:
        return self.temp.path


class Writer:
    """Adds objects to the ``objects/`` directory of one store.

    Args:
        objects: The object directory.
        tmp: The store's ``tmp/`` (same filesystem as ``objects/``).
        durable: fsync objects (and their directory entries) before reporting them stored.
        indexed: Called as ``indexed(fingerprint, kind, size)`` for each object published.
    """

    def __init__(
        self,
        objects: ObjectDir,
        tmp: str,
        *,
        durable: bool,
        indexed: Callable[[str, str, int], None],
    ) -> None:
        self.objects = objects
        self.tmp = tmp
        self.durable = durable
        self.indexed = indexed
        self._group: Group | None = None
        self.placer = Placer(durable)
        self.pins = Pinning(tmp, durable=durable)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Defer the publication of what is added inside, and make it durable together
        (see :mod:`scalems_store.objects.group`); a nested batch joins the outer one. What was
        added before an error is still committed."""
        if self._group is not None or not self.durable:
            yield  # without fsync there is nothing to share: objects appear at once
            return
        from scalems_store.objects.group import Group

        self._group = group = Group(self)
        try:
            yield
        finally:
            try:
                group.commit()
            finally:
                self._group = None
                group.close()

    def pinned(self) -> contextlib.AbstractContextManager[None]:
        """Pin what this thread adds (or keeps) inside, for gc, until the end: for a
        caller that names it in a ref once it is stored (see :mod:`scalems_store.objects.pins`)."""
        return self.pins.pinned()

    def keep(self, fp: str) -> bool:
        """Pin *fp* (when pinning) and touch it, so that a gc running now spares it;
        return True if it is stored (else it is to be published again). Its bytes are
        not read again: re-adding them (``add``) is what repairs a damaged object."""
        self.pins.add(fp)
        self.pins.flush()
        return touch(self.objects.path(fp)) and self.objects.present(fp)

    def commit(self) -> None:
        """Publish what the current batch holds so far (labels and refs may then name it)."""
        if self._group is not None:
            self._group.commit()

    def _staging(self) -> str:
        """Where new objects are written: ``tmp/``, or the current batch's directory."""
        return self.tmp if self._group is None else self._group.directory

    def _temp(self, directory: str | None = None) -> Temp:
        """A new temporary file in *directory* (else :meth:`_staging`); one outside
        ``tmp/`` is in a locked directory and takes no lock of its own."""
        directory = directory or self._staging()
        return Temp(directory, lock=directory == self.tmp)

    # -- entry points ----------------------------------------------------------

    def add_bytes(
        self, data: bytes, kind: str, refs: Refs, expect: str | None, named: Named = None
    ) -> str:
        """Store *data* as an object of *kind*; return its fingerprint."""
        if kind == content.TREE and len(data) >= thintar.THRESHOLD:
            # it may hold a file large enough to be stored as a piece: see _thinned
            return self.add_chunks([data], kind, refs, expect, named=named)
        fp = hash_bytes(data)
        _check_expected(fp, expect)
        if kind == content.TREE and thintar.is_thin(data):
            raise InvalidContent(f"object {fp} is not a tree: it is the thin form of one")
        meta = claimed(fp, kind, refs, lambda: data)

        def write() -> Temp:
            temp = self._temp()
            self._finish_temp(temp, lambda: write_all(temp.fd, data))
            return temp

        # new content (the common case) is written at once; stored content only touched
        first = None if self.objects.present(fp) else write()
        return self._publish(fp, kind, meta, len(data), first, write, named)

    def add_chunks(
        self,
        chunks: Iterable[bytes],
        kind: str,
        refs: Refs,
        expect: str | None,
        *,
        trusted: bool = False,
        named: Named = None,
    ) -> str:
        """Store the concatenation of *chunks*; return its fingerprint.

        Args:
            trusted: The chunks are a tree archive this package wrote (not parsed again).
        """
        # a tree is flushed only in the form it is published in (its thin form, if it
        # holds large files: the whole archive staged here is then never flushed)
        staged = self.stage(chunks, self._staging(), sync=kind != content.TREE)
        try:
            _check_expected(staged.fp, expect)
        except BaseException:
            staged.temp.discard()
            raise
        return self.publish_staged(staged, kind, refs, trusted=trusted, named=named)

    def stage(self, chunks: Iterable[bytes], directory: str, *, sync: bool = True) -> Staged:
        """Write the concatenation of *chunks* to a new file in *directory* (in the store's
        filesystem), hashing it on the way; return what was written. Without *sync* it is
        not flushed here (but before it is published, if it is)."""
        temp = self._temp(directory)
        # one core produces the chunks (Python-heavy), the other hashes and writes them
        hasher = new_hasher()
        size = [0]

        def consume(chunk: bytes) -> None:
            hasher.update(chunk)
            write_all(temp.fd, chunk)
            size[0] += len(chunk)

        self._finish_temp(temp, lambda: pipelined(chunks, consume), sync=sync)
        return Staged(hasher.hexdigest(), temp, size[0])

    def publish_staged(
        self,
        staged: Staged,
        kind: str,
        refs: Refs,
        *,
        trusted: bool = False,
        named: Named = None,
    ) -> str:
        """Check a staged file against the kind (and references) claimed for it, then
        publish it; the file is removed whatever happens.

        Args:
            trusted: A tree this package wrote (not parsed again).
        """
        fp, temp = staged.fp, staged.temp
        try:
            if kind == content.TREE and not trusted:
                check_tree(fp, temp.path)
            meta = claimed(fp, kind, refs, lambda: read_file(temp.path))
            if kind == content.TREE and self.objects.present(fp):
                # kept as it is stored (thin or whole): its meta says so
                meta = Meta(content.TREE, thin.pieces_of(self.objects, fp))
            elif kind == content.TREE:
                # its pieces are pinned until the tree that names them is published
                with self.pinned():
                    made = self._thinned(staged)
                    if made is not None:
                        temp.discard()
                        temp, meta = made
                        return self._publish(fp, kind, meta, staged.size, temp, None, named)
        except BaseException:
            temp.discard()
            raise
        return self._publish(fp, kind, meta, staged.size, temp, None, named)

    def publish_thin(self, fp: str, size: int, temp: Temp, pieces: tuple[str, ...]) -> str:
        """Publish *temp*, the thin form of tree *fp* (*size* bytes whole), already checked
        against *fp* by its caller with *pieces* (all published before); the file is
        removed whatever happens."""
        meta = Meta(content.TREE, tuple(sorted(set(pieces))))
        if self.objects.present(fp):
            meta = Meta(content.TREE, thin.pieces_of(self.objects, fp))
        return self._publish(fp, content.TREE, meta, size, temp, None, None)

    def _thinned(self, staged: Staged) -> tuple[Temp, Meta] | None:
        """The thin form of the staged tree archive (see :mod:`scalems_store.objects.thin`),
        written to a new temporary file, and its meta, once each of its pieces is
        published (before the tree, so that nothing names a piece not yet stored); None
        if it holds no file large enough to be a piece."""
        from scalems_store.tar.treeread import iter_entries, mapped

        if staged.size < thintar.THRESHOLD:
            return None  # too small to hold a piece
        with mapped(staged.path) as data:
            large = thintar.large_files(iter_entries(data))
            if not large:
                return None
            view = memoryview(data)
            pieces = []
            for entry in large:
                part = view[entry.offset : entry.offset + entry.size]
                piece = self._publish_piece(part)
                part.release()
                if piece is not None:
                    pieces.append(Piece(entry.offset, entry.size, piece))
            if not pieces:
                view.release()
                return None
            last = pieces[-1].offset + pieces[-1].length
            head = Header(len(view), tuple(pieces), thintar.trailing_zeros(view, last), 0)
            temp = self._temp()

            def write() -> None:
                write_all(temp.fd, thintar.encode_header(head.size, head.pieces, head.zeros))
                for chunk in thintar.literal_chunks(view, head):
                    write_all(temp.fd, chunk)

            try:
                self._finish_temp(temp, write)
            finally:
                view.release()
        return temp, Meta(content.TREE, tuple(sorted({piece.fp for piece in pieces})))

    def _publish_piece(self, data: memoryview) -> str | None:
        """Store the bytes of one large file of a tree as a blob; return its fingerprint,
        or None if the file is a tree stored thin here (a tree's archive, as a file of
        another tree): a piece is read as its stored bytes, so that file stays inline.

        A piece stored already (the skeleton's input, in each output tree) is kept as it
        is: pinned and touched, its size checked, its bytes not read again (a tree whose
        piece is damaged fails its check when read, and verify names the piece)."""
        fp = hash_bytes(data)
        if self._stored_thin(fp):
            return None
        found = self.objects.lstat(fp)
        same = found is not None and stat.S_ISREG(found.st_mode) and found.st_size == len(data)
        if same and self.keep(fp):
            return fp

        def write() -> Temp:
            temp = self._temp()
            self._finish_temp(temp, lambda: write_all(temp.fd, data))
            return temp

        first = None if self.objects.present(fp) else write()
        return self._publish(fp, content.BLOB, None, len(data), first, write, None)

    def _stored_thin(self, fp: str) -> bool:
        """Whether object *fp* is stored here in the thin form of a tree."""
        try:
            fd = os.open(self.objects.path(fp), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            return thin.is_thin(self.objects, fp, fd)
        finally:
            os.close(fd)

    def add_tree(
        self,
        directory: str,
        exclude: Iterable[str],
        expect: str | None,
        skip: Callable[[str, str], None] | None,
        progress: Progress | None,
        named: Named,
    ) -> str:
        """Store the deterministic archive of *directory* as a tree, leaving out the
        directories *exclude* (the store itself, when it lies inside); return its fingerprint.

        Raises:
            InvalidPath: *directory* is not a directory, or is one of *exclude*.
        """
        from scalems_store.tar import archive

        left_out = {found for found in map(_identity, exclude) if found is not None}
        here = _identity(directory)
        if here is not None and here in left_out:
            raise InvalidPath(f"{directory!r} is the store itself")
        chunks = archive.iter_tree(
            directory, skip=skip, progress=progress, exclude=frozenset(left_out)
        )
        return self.add_chunks(chunks, content.TREE, None, expect, trusted=True, named=named)

    def add_stream(
        self,
        stream: IO[bytes],
        kind: str,
        refs: Refs,
        expect: str | None,
        progress: Progress | None,
        named: Named = None,
    ) -> str:
        """Store everything read from a binary stream; return its fingerprint."""
        return self.add_chunks(read_chunks(stream, progress), kind, refs, expect, named=named)

    def add_file(
        self,
        path: str,
        kind: str,
        refs: Refs,
        expect: str | None,
        progress: Progress | None,
        named: Named = None,
    ) -> str:
        """Store the bytes of the file at *path*; return its fingerprint.

        A large file is copied and hashed in one read (or reflinked where the
        filesystem can), and the copy stops early if the content turns out to
        be stored already.

        Raises:
            InvalidPath: *path* is missing, not a regular file, or changed while
                being added.
        """
        try:
            src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise InvalidPath(f"cannot read {path!r}: {exc.strerror}") from exc
        try:
            before = os.fstat(src)
            if stat.S_ISDIR(before.st_mode):
                raise InvalidPath(f"{path!r} is a directory (use add_tree)")
            if not stat.S_ISREG(before.st_mode):
                with os.fdopen(os.dup(src), "rb") as stream:
                    return self.add_stream(stream, kind, refs, expect, progress, named)
            if before.st_size < MMAP_THRESHOLD:
                data = os.read(src, before.st_size + 1)
                _check_unchanged(path, src, before)
                return self.add_bytes(data, kind, refs, expect, named)
            # a blob may stop copying once its content turns out to be stored already
            early = kind == content.BLOB
            fp, temp = self._copy_large(path, src, before.st_size, progress, early)
            _check_unchanged(path, src, before)
        finally:
            os.close(src)
        try:
            _check_expected(fp, expect)
        except BaseException:
            if temp is not None:
                temp.discard()
            raise
        if temp is None:  # stored already: nothing was kept of the copy

            def again() -> Temp:
                with open(path, "rb") as stream:
                    staged = self.stage(read_chunks(stream, None), self.tmp)
                if staged.fp != fp:
                    staged.temp.discard()
                    raise InvalidPath(f"{path!r} changed while being added; try again")
                return staged.temp

            return self._publish(fp, kind, None, before.st_size, None, again, named)
        return self.publish_staged(Staged(fp, temp, before.st_size), kind, refs, named=named)

    # -- steps ------------------------------------------------------------------

    def _publish(
        self,
        fp: str,
        kind: str,
        meta: Meta | None,
        size: int,
        temp: Temp | None,
        write: Callable[[], Temp] | None,
        named: Named,
    ) -> str:
        """Make object *fp* visible from *temp* (or, without one, from what *write* writes
        when it is needed): see :meth:`_place`. The temporary file goes in any case.

        *named* (a label) is called once the object is published; if a gc running
        meanwhile removed it before the label held it, it is published again."""
        self.pins.add(fp)  # before the object can be listed by a gc
        if self._group is not None and temp is not None and named is None:
            from scalems_store.objects.group import Deferred

            self._group.defer(Deferred(fp, kind, meta, size, temp))
            return fp
        self.pins.flush()
        final = self.objects.path(fp)
        try:
            if meta is not None and self.objects.read_meta(fp) != meta:
                self.objects.write_meta(fp, meta, self.tmp, durable=self.durable)
            # a label's add may have to publish again (gc): it keeps its temporary name
            temp = self.placer.place(fp, final, temp, write, move=named is None)
            if named is not None:
                named(fp)
                while not self.objects.present(fp):
                    temp = self.placer.place(fp, final, temp, write)
        except OSError as exc:
            raise not_writable(final, exc) from exc
        finally:
            if temp is not None:
                temp.discard()
        self.indexed(fp, kind, size)
        return fp

    def flush_pins(self) -> None:
        """Make this thread's pins visible before what they pin is published."""
        self.pins.flush()

    def place(self, fp: str, temp: Temp) -> None:
        """Link *temp*, whose bytes are durable already, as object *fp*: the last step of
        a group commit, which makes the names durable together afterwards."""
        self.placer.place(fp, self.objects.path(fp), temp, None, sync_dir=False, move=True)

    def _finish_temp(self, temp: Temp, write: Callable[[], T], *, sync: bool = True) -> T:
        """Run *write* into *temp*, then fsync it (unless not *sync*: the placer does, if it
        is published); return what *write* returned. On an error the file is removed."""
        try:
            written = write()
            if sync and self.durable and self._group is None:
                os.fsync(temp.fd)
                temp.synced = True
            if not temp.locked:
                temp.unlock()  # its locked directory protects it: no open file per object
        except OSError as exc:
            temp.discard()
            raise not_writable(temp.path, exc) from exc
        except BaseException:
            temp.discard()
            raise
        return written

    def _copy_large(
        self, path: str, src: int, size: int, progress: Progress | None, early: bool
    ) -> tuple[str, Temp | None]:
        """Copy a large file into ``tmp/`` while hashing it; return ``(fp, temp)``, where
        temp is None if, *early* allowing, the content turned out to be stored already
        and the copy stopped."""
        temp = self._temp()
        enough = self.objects.present if early else None
        try:
            fp, complete = self._finish_temp(
                temp, lambda: copy_and_hash(src, temp.fd, size, enough, progress)
            )
        except InvalidPath as exc:
            raise InvalidPath(f"cannot read {path!r}: {exc}") from exc
        if not complete:
            temp.discard()
            return fp, None
        return fp, temp


def _check_expected(fp: str, expect: str | None) -> None:
    if expect is not None:
        wanted = layout.normalize(expect)
        if not fp.startswith(wanted):
            raise FingerprintMismatch(f"content has fingerprint {fp}, expected {wanted}")


def _check_unchanged(path: str, fd: int, before: os.stat_result) -> None:
    """Refuse what was read if the file was written meanwhile. (A file replaced by
    another, as editors save, was read whole as it was: that is a true snapshot.)"""
    after = os.fstat(fd)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise InvalidPath(f"{path!r} changed while being added; try again")


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
