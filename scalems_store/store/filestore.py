"""The content-addressed file store: a directory of objects named by their BLAKE3.

:class:`FileStore` is the face of one store root. It puts together the
object directory (:mod:`.objects`), the write path (:mod:`.writer`), labels
and refs (:mod:`.refs`) and the index (:mod:`.index`). What an object refers
to is read from its own bytes (:mod:`.content`). Maintenance (verify, gc)
works on a store from :mod:`.audit` and :mod:`.collect`.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from scalems_store.core import layout
from scalems_store.core.errors import CorruptObject, ObjectNotFound, StoreError
from scalems_store.core.fingerprint import hash_bytes, hash_file
from scalems_store.objects import content, reading
from scalems_store.objects.files import ObjectDir, ObjectInfo
from scalems_store.store.creation import default_root, open_or_create

if TYPE_CHECKING:
    from scalems_store.objects.transfer import Progress
    from scalems_store.objects.writer import Refs, Writer
    from scalems_store.store.index import Index, Values
    from scalems_store.store.reference import FileReference
    from scalems_store.store.refs import Damage, Ref, RefDir, SigDir, Signature
    from scalems_store.tar import archive

KINDS = content.KINDS


class FileStore:
    """A content-addressed store rooted at a directory.

    Args:
        root: The store directory; ``$SCALEMS_STORE`` or ``./.scalems`` when None.
        create: Create the store when *root* does not exist (or is empty).
        durable: fsync objects and refs before publishing them. Defaults to
            True unless ``$SCALEMS_STORE_FSYNC`` is ``0``.

    Raises:
        StoreNotFound: there is no store at *root* and *create* is False, or
            *root* is a non-empty directory that is not a store.
        UnsupportedFormat: ``store.json`` names an unknown format or version.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        durable: bool | None = None,
    ) -> None:
        self.root = os.path.abspath(os.fspath(root if root is not None else default_root()))
        if durable is None:
            durable = os.environ.get("SCALEMS_STORE_FSYNC", "1") != "0"
        self.durable = durable
        self.tmp = os.path.join(self.root, layout.TMP)
        self.objects = ObjectDir(self.root)
        self.created = open_or_create(self.root, create, durable)
        """True when opening the store created it."""
        self._index: Index | None = None

    def __enter__(self) -> FileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the index connection."""
        if self._index is not None:
            self._index.close()
            self._index = None

    def __repr__(self) -> str:
        return f"FileStore({self.root!r})"

    @functools.cached_property
    def refs(self) -> RefDir:
        """Labels and refs (made on first use: a cache hit by fingerprint needs none)."""
        from scalems_store.store.refs import RefDir

        return RefDir(self.root, self.tmp, durable=self.durable)

    @functools.cached_property
    def sigs(self) -> SigDir:
        """The signatures beside results (``sigs/``), made on first use."""
        from scalems_store.store.refs import SigDir

        return SigDir(self.root, self.tmp, durable=self.durable)

    @functools.cached_property
    def writer(self) -> Writer:
        """The write path (made on first use: reading needs none of it)."""
        from scalems_store.objects.writer import Writer

        return Writer(self.objects, self.tmp, durable=self.durable, indexed=self._indexed)

    @property
    def index(self) -> Index:
        """The metadata index, opened (and rebuilt if need be) on first use."""
        if self._index is None:
            from scalems_store.store.index import Index

            self._index = Index(os.path.join(self.root, layout.INDEX), self._scan)
        return self._index

    def _indexed(self, fp: str, kind: str, size: int) -> None:
        self.index.add(fp, kind, size)

    # -- paths and lookups -------------------------------------------------

    def object_path(self, fingerprint: str) -> str:
        """Return where the object *fingerprint* (full hex) lives, present or not."""
        return self.objects.path(fingerprint)

    def __contains__(self, fingerprint: object) -> bool:
        return (
            isinstance(fingerprint, str)
            and layout.is_fingerprint(fingerprint)
            and self.objects.present(fingerprint)
        )

    def resolve(self, text: str) -> str:
        """Return the full fingerprint *text* names: a fingerprint, a label, or a unique
        prefix (the rules: :mod:`scalems_store.store.naming`).

        Raises:
            InvalidFingerprint, ObjectNotFound, AmbiguousPrefix: see :func:`.naming.resolve`.
        """
        from scalems_store.store.naming import resolve

        return resolve(self.objects, lambda name: self.refs.label(name), text)

    def iter_fingerprints(self) -> Iterator[str]:
        """Yield the fingerprint of every object file, sorted, walking ``objects/``."""
        return iter(self.objects)

    def kind(self, fingerprint: str) -> str:
        """Return the kind of an object: what its meta file records (``blob`` when it has
        none); where that file is damaged, what the bytes show."""
        return reading.kind(self.objects, fingerprint)

    def references(self, fingerprint: str) -> tuple[str, ...]:
        """Return the fingerprints object *fingerprint* refers to, read from its bytes.

        Raises:
            InvalidContent: the object is recorded as a call or result but its bytes
                are not one (it is corrupt).
        """
        kind = self.kind(fingerprint)
        if kind == content.TREE:  # a tree stored thin needs its pieces
            from scalems_store.objects import thin

            return thin.pieces_of(self.objects, fingerprint)
        if kind not in content.RECORD_KINDS:
            return ()
        return content.references(kind, self.read_bytes(fingerprint, verify=False))

    def info(self, fingerprint: str) -> ObjectInfo:
        """Return what is known of an object (fingerprint or prefix).

        Raises:
            ObjectNotFound, AmbiguousPrefix, InvalidFingerprint: see :meth:`resolve`.
        """
        fp = self.resolve(fingerprint)
        st = os.stat(self.object_path(fp))
        labels = tuple(name for name, target in self.labels().items() if target == fp)
        kind = self.kind(fp)
        created = self.index.created(fp)  # the first time it was stored (adds touch mtime)
        return ObjectInfo(
            fp,
            kind,
            reading.object_size(self.objects, fp, st.st_size)
            if kind == content.TREE
            else st.st_size,
            st.st_mtime if created is None else created,
            labels,
            self.known_references(fp, kind),
        )

    def list(self, kind: str | None = None, label: str | None = None) -> builtins.list[ObjectInfo]:
        """Return the objects in the index, sorted by fingerprint, optionally filtered,
        each with what :meth:`info` gives for it (labels read once for the listing)."""
        named = self.labelled()
        return [
            ObjectInfo(
                fp,
                kind_,
                size,
                created,
                tuple(named.get(fp, ())),
                self.known_references(fp, kind_),
            )
            for fp, kind_, size, created in self.index.tuples(kind, label)
        ]

    def labelled(self) -> dict[str, builtins.list[str]]:
        """Every labelled object, and the labels naming it."""
        named: dict[str, builtins.list[str]] = {}
        for name, target in self.labels().items():
            named.setdefault(target, []).append(name)
        return named

    def known_references(self, fingerprint: str, kind: str) -> tuple[str, ...]:
        """What record *fingerprint* of *kind* refers to, as :meth:`references` reads it
        (what ``ls`` and ``info`` show); nothing if it is not a record (a tree's pieces are
        how it is stored, not what it names), or cannot be read (damaged, or removed since
        it was listed: verify says so)."""
        if kind not in content.RECORD_KINDS:
            return ()
        try:
            return self.references(fingerprint)
        except StoreError:
            return ()

    # -- SCALE-MS file references ---------------------------------------------

    async def get_file_reference(self, obj: Any, *, mode: str = "rb") -> FileReference:
        """Get a :class:`~scalems_store.store.reference.FileReference` to what *obj* names
        here, adding it first if it is a path (as SCALE-MS's ``get_file_reference``).

        Args:
            obj: A ``pathlib.Path`` or other ``os.PathLike`` (the file is added: one read,
                one hash); a ``str`` fingerprint, ``blake3:`` URI, unique prefix or label;
                or a raw 32-byte digest.
            mode: Kept for SCALE-MS compatibility; only ``"rb"`` is meaningful.

        Raises:
            TypeError: *obj* is of another type.
            InvalidPath, InvalidFingerprint, ObjectNotFound, AmbiguousPrefix.
        """
        return await get_file_reference(obj, self, mode)

    def file_reference(self, obj: Any, *, mode: str = "rb") -> FileReference:
        """The synchronous twin of :meth:`get_file_reference`, for scripts."""
        from scalems_store.store.reference import reference

        return reference(obj, self, mode)

    # -- reading -----------------------------------------------------------

    def open(self, fingerprint: str) -> BinaryIO:
        """Open an object for reading (fingerprint, prefix or label), or one file of a
        tree: ``FP:path``, where FP is a tree, a result (its output directory) or a call
        (that of its newest result); see :mod:`scalems_store.store.treeview`.

        Raises:
            InvalidPath: ``FP:path`` names no file.
            CorruptObject: the tree of ``FP:path`` does not match its fingerprint.
        """
        if not layout.is_fingerprint(fingerprint) and _has_path(fingerprint):
            from scalems_store.store import treeview

            return treeview.open_file(self, fingerprint)
        return reading.open_object(self.objects, self.resolve(fingerprint))

    def read_head(self, fingerprint: str, size: int) -> bytes:
        """Return the first *size* bytes of an object's file (full fingerprint) as stored
        (a thin tree's begin with its magic), unchecked."""
        with reading.open_stored(self.objects, fingerprint) as stream:
            return stream.read(size)

    def read_bytes(self, fingerprint: str, *, verify: bool = True) -> bytes:
        """Return an object's bytes, checked against its name unless *verify* is False;
        ``FP:path`` is one file of a tree (see :meth:`open`), always checked.

        Raises:
            CorruptObject: the bytes do not hash to the fingerprint.
        """
        # a full fingerprint needs no lookup: opening it says whether it is there
        if layout.is_fingerprint(fingerprint):
            fp = fingerprint
        elif _has_path(fingerprint):  # FP:path: one file of a tree (checked with the tree)
            from scalems_store.store import treeview

            return treeview.file_bytes(self, fingerprint)
        else:
            fp = self.resolve(fingerprint)
        with reading.open_object(self.objects, fp) as stream:
            try:
                data = stream.read()
            except IsADirectoryError:
                raise ObjectNotFound(f"no object {fp} in store {self.root!r}") from None
        if verify:
            reading.matches(fp, hash_bytes(data))
        return data

    def read_stored(self, fingerprint: str) -> bytes:
        """Return the bytes of an object's file as stored (full fingerprint), checked: a
        tree stored thin is its thin form (see :mod:`scalems_store.objects.thin`), checked
        by rebuilding it from its pieces; what moves stored files between stores uses it.

        Raises:
            CorruptObject: the object does not match its name.
        """
        from scalems_store.objects import thin
        from scalems_store.tar import thintar

        with reading.open_stored(self.objects, fingerprint) as stream:
            data = stream.read()
        if not thintar.is_thin(data[: len(thintar.MAGIC)]):
            reading.matches(fingerprint, hash_bytes(data))
        elif thin.expanded_hash(self.objects, fingerprint, careful=True) != fingerprint:
            raise CorruptObject(f"object {fingerprint} is corrupt: its pieces do not rebuild it")
        return data

    def check(self, fingerprint: str) -> str:
        """Re-hash one object; return its fingerprint, or raise :class:`CorruptObject`."""
        from scalems_store.objects import thin

        fp = self.resolve(fingerprint)
        got = thin.expanded_hash(self.objects, fp)
        reading.matches(fp, got if got is not None else hash_file(self.object_path(fp)))
        return fp

    def write_to(self, fingerprint: str, out: IO[bytes]) -> int:
        """Copy an object to a binary stream, checking it as it goes; return its size
        (see :func:`scalems_store.objects.reading.write_to`)."""
        return reading.write_to(self.objects, self.resolve(fingerprint), out)

    def materialize(self, fingerprint: str, dest: str | os.PathLike[str]) -> str:
        """Write an object out, checked against its name first: a tree is extracted into
        the new or empty directory *dest*, a blob copied to the new file *dest*; return
        its fingerprint.

        Raises:
            CorruptObject: the object does not match its name; nothing is written.
            InvalidPath: *dest* is in the way.
            ArchiveError, UnsafeArchive: the tree cannot be extracted safely.
        """
        fp = self.resolve(fingerprint)
        if self.kind(fp) == content.TREE:
            reading.extract_tree(self.objects, fp, os.fspath(dest), self.tmp)
        else:
            reading.copy_blob(self.objects, fp, os.fspath(dest))
        return fp

    def tree_entries(self, fingerprint: str) -> builtins.list[archive.Entry]:
        """Return the validated members of a tree object."""
        from scalems_store.objects import thin
        from scalems_store.tar import archive

        fp = self.check(fingerprint)
        with thin.expanded_file(self.objects, fp, self.tmp) as path:
            return archive.list_entries(path, checked=True)

    def tree_file(self, fingerprint: str) -> contextlib.AbstractContextManager[str]:
        """The path of a file holding tree *fingerprint*'s whole archive while the context
        lasts: its object file, or (a tree stored thin, see
        :mod:`scalems_store.objects.thin`) a temporary file rebuilt from its pieces, checked
        against the fingerprint as it was written. Every reader of a tree's archive by
        path goes through here.

        Raises:
            CorruptObject: a thin tree that does not rebuild to its fingerprint.
        """
        from scalems_store.objects import thin

        return thin.expanded_file(self.objects, self.resolve(fingerprint), self.tmp)

    # -- writing -----------------------------------------------------------

    def add_bytes(
        self,
        data: bytes,
        *,
        kind: str = "blob",
        refs: Refs = None,
        label: str | None = None,
        expect: str | None = None,
    ) -> str:
        """Store *data*; return its fingerprint. Storing the same bytes again is harmless.

        Args:
            data: The object's bytes.
            kind: What the object is: ``blob``, ``tree``, ``call``, ``result``. A
                call or result must be such a record (:mod:`scalems_store.objects.content`).
            refs: The fingerprints the caller expects the record to refer to; checked
                against what its bytes name (the references always come from the bytes).
            label: Also point this label at the object.
            expect: Refuse the content unless it has this fingerprint.

        Raises:
            FingerprintMismatch: the content does not match *expect*.
            InvalidContent: the bytes are not of *kind*, or name other references.
            StoreNotWritable: the store cannot be written.
        """
        return self.writer.add_bytes(data, kind, refs, expect, self._labeller(label))

    def add_stream(
        self,
        stream: IO[bytes],
        *,
        kind: str = "blob",
        refs: Refs = None,
        label: str | None = None,
        expect: str | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Store everything read from a binary stream (standard input, a pipe, a bundle)."""
        return self.writer.add_stream(stream, kind, refs, expect, progress, self._labeller(label))

    def add_file(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str = "blob",
        refs: Refs = None,
        label: str | None = None,
        expect: str | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Store the bytes of the file at *path*; return the fingerprint.

        Raises:
            InvalidPath: *path* is missing, not a regular file, or changed while
                being added.
            FingerprintMismatch: the content does not match *expect*.
        """
        named = self._labeller(label)
        return self.writer.add_file(os.fspath(path), kind, refs, expect, progress, named)

    def add_tree(
        self,
        directory: str | os.PathLike[str],
        *,
        label: str | None = None,
        expect: str | None = None,
        skip: Callable[[str, str], None] | None = None,
        progress: Progress | None = None,
        exclude: Iterable[str] = (),
    ) -> str:
        """Store the deterministic archive of *directory* as a ``tree``; return its fingerprint.

        This store, if it lies inside *directory* (the default ``./.scalems`` of
        a project directory), is left out of the tree, as git leaves out ``.git``.

        Args:
            skip: Called as ``skip(path, reason)`` for an entry that cannot be
                archived; when None such an entry raises :class:`UnsafeArchive`.
            exclude: Directories inside *directory* to leave out with all they hold.

        Raises:
            InvalidPath: *directory* is not a directory, or is the store itself.
            ArchiveError, UnsafeArchive: see :func:`scalems_store.tar.archive.iter_tree`.
        """
        named = self._labeller(label)
        # archiving the store into itself would change the directory's fingerprint at
        # every add (and copy the whole store each time)
        exclude = [self.root, *exclude]
        return self.writer.add_tree(os.fspath(directory), exclude, expect, skip, progress, named)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Add many objects as one group: inside, each add returns its fingerprint as
        usual, but the objects appear (durable, whole, indexed) only at the end, or in
        groups of many thousands, with one flush of the disk per group instead of two
        ``fsync`` per object. Setting a label or ref publishes the group first. What
        was added before an error inside is still published.

        Example::

            with store.batch():
                fps = [store.add_bytes(frame) for frame in frames]
        """
        with self.writer.batch():
            yield

    def add_path(self, path: str | os.PathLike[str], **kwargs: Any) -> str:
        """Store a file as a blob or a directory as a tree."""
        if os.path.isdir(path):
            return self.add_tree(path, **kwargs)
        return self.add_file(path, **kwargs)

    def _labeller(self, label: str | None) -> Callable[[str], object] | None:
        """What labels an object as it is added (checked before anything is written)."""
        if label is None:
            return None
        from scalems_store.store.refs import check_label

        check_label(label)
        return functools.partial(self._point, label)  # the writer publishes again if need be

    def _point(self, name: str, fp: str) -> None:
        self.refs.set_label(name, fp)
        self.index.set_label(name, fp)

    # -- labels and refs ---------------------------------------------------

    def set_label(self, name: str, fingerprint: str) -> str:
        """Point label *name* at an object (fingerprint or prefix); return the fingerprint.

        Raises:
            InvalidLabel: *name* is empty, too long, or not made of ``A-Za-z0-9._-``.
            ObjectNotFound: there is no such object (or a gc removed it meanwhile).
        """
        from scalems_store.store.refs import check_label

        check_label(name)
        self.writer.commit()
        fp = self.resolve(fingerprint)
        self._point(name, fp)
        if fp not in self:  # a gc removed it before the label held it
            self.remove_label(name)
            self.resolve(fp)
        return fp

    def remove_label(self, name: str) -> None:
        """Remove label *name*."""
        self.refs.remove_label(name)
        self.index.set_label(name, None)

    def labels(self) -> dict[str, str]:
        """Return every readable label and the fingerprint it points at."""
        return self.refs.labels()

    def set_ref(self, namespace: str, key: str, values: Iterable[str]) -> None:
        """Atomically replace the fingerprints recorded under ``refs/<namespace>/<key>``.

        Refs are roots for ``gc``: the key and every value stay alive.
        """
        self.writer.commit()
        self.refs.set(namespace, key, values)

    def update_ref(
        self, namespace: str, key: str, change: Callable[[builtins.list[str]], builtins.list[str]]
    ) -> builtins.list[str]:
        """Replace the fingerprints under ``refs/<namespace>/<key>`` with what *change*
        makes of them, with no concurrent update lost; return them."""
        self.writer.commit()
        return self.refs.update(namespace, key, change)

    def get_ref(self, namespace: str, key: str) -> builtins.list[str]:
        """Return the fingerprints recorded under ``refs/<namespace>/<key>`` (empty if none)."""
        return self.refs.get(namespace, key)

    def iter_refs(self, namespace: str | None = None) -> Iterator[Ref]:
        """Yield ``(namespace, key, values)`` for every readable ref (but labels)."""
        damage: builtins.list[Damage] = []
        return self.refs.scan(damage, namespace)

    # -- signatures --------------------------------------------------------

    def signatures(self, result_fp: str) -> builtins.list[Signature]:
        """The signatures recorded beside result *result_fp* (full fingerprint), unchecked:
        :mod:`scalems_store.trust` decides which of them to believe."""
        return self.sigs.read(result_fp).signatures

    def add_signatures(
        self, result_fp: str, signatures: Iterable[Signature], *, imported: bool = False
    ) -> None:
        """Record *signatures* beside result *result_fp* (kept with those already there);
        *imported*: the result came by import (or pull), so no ``trust sign-existing``
        vouches for it."""
        self.sigs.add(result_fp, signatures, imported=imported)

    # -- the index ---------------------------------------------------------

    def _scan(self) -> tuple[builtins.list[Values], builtins.list[tuple[str, str]]]:
        """Read every object's row and every label from the files (to rebuild the index)."""
        return reading.rows(self.objects), list(self.labels().items())

    def reindex(self) -> int:
        """Rebuild the index from the objects, meta files and labels; return the object count.
        (``scalems-store reindex`` also lists the files inside every tree again:
        :func:`scalems_store.query.treefiles.relist`.)"""
        return self.index.rebuild()


__all__ = ["KINDS", "FileStore", "default_root"]


def _has_path(text: str) -> bool:
    """Whether *text* is ``FP:path`` (a ``blake3:`` URI alone is not)."""
    return ":" in text.removeprefix(layout.URI_SCHEME)


@functools.singledispatch
async def get_file_reference(
    obj: Any, filestore: FileStore | None = None, mode: str = "rb"
) -> FileReference:
    """Get a reference to a stored file, adding it to the store if it is a path.

    As in SCALE-MS, a dispatcher (``@get_file_reference.register`` adds a type, for
    :meth:`FileStore.get_file_reference` too): a path is added; a ``str`` (fingerprint,
    prefix or label) or 32 ``bytes`` is looked up; a ``str`` ``FP:path`` is one file of
    a tree, result or call's output. See :func:`.reference.reference`.

    Args:
        obj: What to reference.
        filestore: The store; the default store (``$SCALEMS_STORE`` or ``./.scalems``) if None.
        mode: Kept for SCALE-MS compatibility; only ``"rb"`` is meaningful.

    Raises:
        TypeError: *obj* is of another type.
        InvalidPath, InvalidFingerprint, ObjectNotFound, AmbiguousPrefix.
    """
    import asyncio

    from scalems_store.store.reference import reference

    store = FileStore() if filestore is None else filestore
    # a path is copied and hashed, a name looked up on disk: off the event loop either way
    return await asyncio.to_thread(reference, obj, store, mode)
