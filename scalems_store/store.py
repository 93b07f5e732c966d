"""The content-addressed file store: a directory of objects named by their BLAKE3.

Writes go to ``tmp/``, are hashed while written, fsynced, made read-only and
published with ``os.link`` (an existing object counts as success), so a crash at
any moment leaves no partial object under ``objects/``.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NamedTuple, TypeVar

from . import layout
from .errors import (
    AmbiguousPrefix,
    CorruptObject,
    FingerprintMismatch,
    InvalidLabel,
    InvalidPath,
    ObjectNotFound,
    StoreError,
    StoreNotFound,
    UnsupportedFormat,
)
from .fingerprint import CHUNK, MMAP_THRESHOLD, hash_bytes, hash_file, new_hasher
from .fsutil import (
    fsync_dir,
    new_temp,
    not_writable,
    pipelined,
    replace_atomic,
    unlink_quietly,
    write_all,
)
from .transfer import Progress, copy_and_hash, copy_hashing, read_chunks

if TYPE_CHECKING:
    from . import archive
    from .index import Index, Row
    from .maintenance import GcReport, VerifyReport

T = TypeVar("T")

FORMAT = {"format": "scalems-store", "version": 1, "hash": "blake3"}
KINDS = ("blob", "tree", "call", "result")
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_")


def _file_descriptor(stream: IO[bytes]) -> int | None:
    """The descriptor under *stream*, or None if it has none (an in-memory stream)."""
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def default_root() -> str:
    """Return the store chosen by ``$SCALEMS_STORE``, else ``./.scalems``."""
    return os.environ.get("SCALEMS_STORE") or ".scalems"


class ObjectInfo(NamedTuple):
    """What the store knows of one object."""

    fingerprint: str
    kind: str
    size: int
    created: float
    labels: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "fingerprint": self.fingerprint,
            "kind": self.kind,
            "size": self.size,
            "created": self.created,
            "labels": list(self.labels),
            "refs": list(self.refs),
        }


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
        self._objects = os.path.join(self.root, layout.OBJECTS)
        self._meta = os.path.join(self.root, layout.META)
        self._tmp = os.path.join(self.root, layout.TMP)
        self._labels = os.path.join(self.root, layout.LABELS)
        self._open(create)
        self._index: Index | None = None

    # -- opening -----------------------------------------------------------

    def _open(self, create: bool) -> None:
        config = os.path.join(self.root, layout.STORE_FILE)
        try:
            with open(config, "rb") as stream:
                self._check_format(json.loads(stream.read()), config)
            return
        except FileNotFoundError:
            pass
        except (ValueError, OSError) as exc:
            raise UnsupportedFormat(f"cannot read {config!r}: {exc}") from exc
        if not create:
            raise StoreNotFound(f"no store at {self.root!r} (create one with 'scalems-store init')")
        if os.path.isdir(self.root) and os.listdir(self.root):
            raise StoreNotFound(f"{self.root!r} is not empty and is not a store (no store.json)")
        try:
            for sub in (layout.OBJECTS, layout.META, layout.LABELS, layout.TMP):
                os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        except OSError as exc:
            raise not_writable(self.root, exc) from exc
        replace_atomic(config, layout.canonical(FORMAT) + b"\n", self._tmp, durable=self.durable)

    @staticmethod
    def _check_format(config: Any, where: str) -> None:
        if not isinstance(config, dict) or config.get("format") != FORMAT["format"]:
            raise UnsupportedFormat(f"{where!r} does not describe a scalems store")
        if config.get("version") != FORMAT["version"] or config.get("hash") != FORMAT["hash"]:
            raise UnsupportedFormat(
                f"store format version {config.get('version')!r} ({config.get('hash')!r}) "
                f"at {where!r} is not supported; this scalems-store reads version "
                f"{FORMAT['version']} (blake3)"
            )

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

    @property
    def index(self) -> Index:
        """The metadata index, opened (and rebuilt if need be) on first use."""
        if self._index is None:
            from .index import Index  # sqlite3 is imported only by commands that need the index

            self._index = Index(os.path.join(self.root, layout.INDEX), self._scan)
        return self._index

    # -- paths and lookups -------------------------------------------------

    def object_path(self, fingerprint: str) -> str:
        """Return where the object *fingerprint* (full hex) lives, present or not."""
        return os.path.join(self._objects, layout.oid_to_path(fingerprint))

    def __contains__(self, fingerprint: object) -> bool:
        return (
            isinstance(fingerprint, str)
            and layout.is_fingerprint(fingerprint)
            and os.path.exists(self.object_path(fingerprint))
        )

    def resolve(self, text: str) -> str:
        """Return the full fingerprint named by a fingerprint, ``blake3:`` URI or prefix.

        Raises:
            InvalidFingerprint: *text* is not a fingerprint or a prefix of 4+ hex digits.
            ObjectNotFound: no object matches.
            AmbiguousPrefix: several objects match; the error lists them.
        """
        hexpart = layout.normalize(text)
        if len(hexpart) == layout.FINGERPRINT_LENGTH:
            if hexpart not in self:
                raise ObjectNotFound(f"no object {hexpart} in store {self.root!r}")
            return hexpart
        try:
            names = os.listdir(os.path.join(self._objects, hexpart[:2]))
        except FileNotFoundError:
            names = []
        rest = hexpart[2:]
        found = sorted(hexpart[:2] + name for name in names if name.startswith(rest))
        if not found:
            raise ObjectNotFound(f"no object matches prefix {hexpart!r} in store {self.root!r}")
        if len(found) > 1:
            raise AmbiguousPrefix(hexpart, found)
        return found[0]

    def iter_fingerprints(self) -> Iterator[str]:
        """Yield the fingerprint of every object file, walking ``objects/``."""
        try:
            fanouts = sorted(os.listdir(self._objects))
        except FileNotFoundError:
            return
        for fanout in fanouts:
            if len(fanout) != 2:
                continue
            for name in sorted(os.listdir(os.path.join(self._objects, fanout))):
                if layout.is_fingerprint(fanout + name):
                    yield fanout + name

    def kind(self, fingerprint: str) -> str:
        """Return the recorded kind of an object (``blob`` unless recorded otherwise)."""
        meta = self._read_meta(fingerprint)
        return str(meta.get("kind", "blob")) if meta else "blob"

    def object_refs(self, fingerprint: str) -> tuple[str, ...]:
        """Return the fingerprints an object was recorded as referring to."""
        meta = self._read_meta(fingerprint)
        return tuple(meta.get("refs", ())) if meta else ()

    def _read_meta(self, fingerprint: str) -> dict[str, Any] | None:
        try:
            with open(os.path.join(self._meta, layout.oid_to_path(fingerprint)), "rb") as stream:
                meta = json.loads(stream.read())
        except (FileNotFoundError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def info(self, fingerprint: str) -> ObjectInfo:
        """Return what is known of an object (fingerprint or prefix).

        Raises:
            ObjectNotFound, AmbiguousPrefix, InvalidFingerprint: see :meth:`resolve`.
        """
        fp = self.resolve(fingerprint)
        st = os.stat(self.object_path(fp))
        meta = self._read_meta(fp) or {}
        labels = tuple(name for name, target in self.labels().items() if target == fp)
        return ObjectInfo(
            fp,
            str(meta.get("kind", "blob")),
            st.st_size,
            st.st_mtime,
            labels,
            tuple(meta.get("refs", ())),
        )

    def list(self, kind: str | None = None, label: str | None = None) -> list[ObjectInfo]:
        """Return the objects in the index, sorted by fingerprint, optionally filtered."""
        return [
            ObjectInfo(r.fingerprint, r.kind, r.size, r.created)
            for r in self.index.rows(kind, label)
        ]

    # -- reading -----------------------------------------------------------

    def open(self, fingerprint: str) -> BinaryIO:
        """Open an object for reading (fingerprint or prefix)."""
        return self._open_object(self.resolve(fingerprint))

    def _open_object(self, fp: str) -> BinaryIO:
        try:
            return open(self.object_path(fp), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {fp} in store {self.root!r}") from None

    def read_bytes(self, fingerprint: str, *, verify: bool = True) -> bytes:
        """Return an object's bytes, checked against its name unless *verify* is False.

        Raises:
            CorruptObject: the bytes do not hash to the fingerprint.
        """
        fp = self.resolve(fingerprint)
        with open(self.object_path(fp), "rb") as stream:
            data = stream.read()
        if verify:
            self._matches(fp, hash_bytes(data))
        return data

    def check(self, fingerprint: str) -> str:
        """Re-hash one object; return its fingerprint, or raise :class:`CorruptObject`."""
        fp = self.resolve(fingerprint)
        self._matches(fp, hash_file(self.object_path(fp)))
        return fp

    @staticmethod
    def _matches(fp: str, got: str) -> None:
        """Raise :class:`CorruptObject` unless the bytes read of object *fp* hashed to *got*."""
        if got != fp:
            raise CorruptObject(f"object {fp} is corrupt: its content no longer matches its name")

    @classmethod
    def _copied(cls, fp: str, copy: Callable[[], tuple[str, bool]]) -> None:
        """Run *copy* of object *fp* (a copy that hashes what it reads), then check the hash."""
        try:
            got, _ = copy()
        except InvalidPath as exc:  # raised by transfer for the side it reads
            raise StoreError(f"cannot read object {fp}: {exc}") from exc
        cls._matches(fp, got)

    def write_to(self, fingerprint: str, out: IO[bytes]) -> int:
        """Copy an object to a binary stream, verifying it as it goes; return its size.

        Raises:
            CorruptObject: the object does not match its name (reported after
                writing, since a stream cannot be taken back).
        """
        fp = self.resolve(fingerprint)
        with self._open_object(fp) as stream:
            size = os.fstat(stream.fileno()).st_size
            out_fd = _file_descriptor(out) if size >= MMAP_THRESHOLD else None
            if out_fd is None:
                hasher = new_hasher(size)
                while chunk := stream.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                self._matches(fp, hasher.hexdigest())
            else:
                # written from the object's pages as they are hashed, at the stream's
                # position (never a reflink: that would replace what the stream holds)
                out.flush()
                hasher = new_hasher(size, leave_cores=1)
                self._copied(fp, lambda: copy_hashing(stream.fileno(), out_fd, size, hasher))
        return size

    def materialize(self, fingerprint: str, dest: str | os.PathLike[str]) -> str:
        """Write an object out: a tree is extracted into *dest*, a blob copied to *dest*.

        The object is checked against its fingerprint first. A blob's *dest* must
        not exist; a tree's must be new or an empty directory.

        Returns:
            The full fingerprint.

        Raises:
            CorruptObject: the object does not match its name; nothing is written.
            InvalidPath: *dest* is in the way.
            ArchiveError, UnsafeArchive: the tree cannot be extracted safely.
        """
        fp = self.resolve(fingerprint)
        dest = os.fspath(dest)
        if self.kind(fp) == "tree":
            from . import archive

            archive.prepare_destination(dest)
            archive.extract(self.object_path(fp), dest, verify=lambda: self.check(fp))
            return fp
        if os.path.lexists(dest):
            raise InvalidPath(f"destination {dest!r} already exists")
        parent = os.path.dirname(os.path.abspath(dest))
        fd, temp = new_temp(parent, f".{os.path.basename(dest)}.")
        try:
            # copied and checked in one read; a corrupt copy is never linked into place
            with self._open_object(fp) as src:
                size = os.fstat(src.fileno()).st_size
                self._copied(fp, lambda: copy_and_hash(src.fileno(), fd, size))
            os.close(fd)
            fd = -1
            os.link(temp, dest)
        except FileExistsError:
            raise InvalidPath(f"destination {dest!r} already exists") from None
        except OSError as exc:
            raise not_writable(dest, exc) from exc
        finally:
            if fd >= 0:
                os.close(fd)
            unlink_quietly(temp)
        return fp

    def tree_entries(self, fingerprint: str) -> builtins.list[archive.Entry]:
        """Return the validated members of a tree object."""
        from . import archive

        fp = self.check(fingerprint)
        return archive.list_entries(self.object_path(fp), checked=True)

    # -- writing -----------------------------------------------------------

    def add_bytes(
        self,
        data: bytes,
        *,
        kind: str = "blob",
        refs: Iterable[str] = (),
        label: str | None = None,
        expect: str | None = None,
    ) -> str:
        """Store *data*; return its fingerprint. Storing the same bytes again is harmless.

        Args:
            data: The object's bytes.
            kind: What the object is: ``blob``, ``tree``, ``call``, ``result``.
            refs: Fingerprints of objects this one refers to; they are kept by
                ``gc`` as long as this one is, and travel with it in bundles.
            label: Also point this label at the object.
            expect: Refuse the content unless it has this fingerprint.

        Raises:
            FingerprintMismatch: the content does not match *expect*.
            StoreNotWritable: the store cannot be written.
        """
        fp = hash_bytes(data)
        self._check_expected(fp, expect)
        if fp not in self:
            fd, temp = new_temp(self._tmp, "put-")
            self._finish_temp(fd, temp, lambda: write_all(fd, data))
            return self._publish(temp, fp, kind, refs, label)
        return self._publish(None, fp, kind, refs, label)

    def add_stream(
        self,
        stream: IO[bytes],
        *,
        kind: str = "blob",
        refs: Iterable[str] = (),
        label: str | None = None,
        expect: str | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Store everything read from a binary stream (standard input, a pipe, a bundle)."""
        return self._add_chunks(
            read_chunks(stream, progress), kind=kind, refs=refs, label=label, expect=expect
        )

    def add_file(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str = "blob",
        refs: Iterable[str] = (),
        label: str | None = None,
        expect: str | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Store the bytes of the file at *path*; return the fingerprint.

        A large file is copied and hashed in one read (or reflinked where the
        filesystem can), and the copy stops early if the content turns out to
        be stored already.

        Raises:
            InvalidPath: *path* is missing, not a regular file, or changed while
                being added.
            FingerprintMismatch: the content does not match *expect*.
        """
        path = os.fspath(path)
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
                    return self.add_stream(stream, kind=kind, label=label, expect=expect)
            if before.st_size < MMAP_THRESHOLD:
                data = os.read(src, before.st_size + 1)
                self._check_unchanged(path, src, before)
                return self.add_bytes(data, kind=kind, refs=refs, label=label, expect=expect)
            fp, temp = self._copy_large(path, src, before.st_size, progress)
            self._check_unchanged(path, src, before)
        finally:
            os.close(src)
        try:
            self._check_expected(fp, expect)
        except FingerprintMismatch:
            if temp:
                unlink_quietly(temp)
            raise
        return self._publish(temp, fp, kind, refs, label)

    def add_tree(
        self,
        directory: str | os.PathLike[str],
        *,
        label: str | None = None,
        expect: str | None = None,
        skip: Callable[[str, str], None] | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Store the deterministic archive of *directory* as a ``tree``; return its fingerprint.

        This store, if it lies inside *directory* (the default ``./.scalems`` of
        a project directory), is left out of the tree, as git leaves out ``.git``.

        Args:
            skip: Called as ``skip(path, reason)`` for an entry that cannot be
                archived; when None such an entry raises :class:`UnsafeArchive`.

        Raises:
            InvalidPath: *directory* is not a directory, or is the store itself.
            ArchiveError, UnsafeArchive: see :func:`scalems_store.archive.iter_tree`.
        """
        from . import archive

        # archiving the store into itself would change the directory's fingerprint at
        # every add (and copy the whole store each time)
        here = os.stat(self.root)
        with contextlib.suppress(OSError):
            if os.path.samestat(os.stat(directory), here):
                raise InvalidPath(f"{os.fspath(directory)!r} is the store itself")
        chunks = archive.iter_tree(
            directory, skip=skip, progress=progress, exclude=frozenset({(here.st_dev, here.st_ino)})
        )
        return self._add_chunks(chunks, kind="tree", label=label, expect=expect)

    def add_path(self, path: str | os.PathLike[str], **kwargs: Any) -> str:
        """Store a file as a blob or a directory as a tree."""
        if os.path.isdir(path):
            return self.add_tree(path, **kwargs)
        return self.add_file(path, **kwargs)

    def _add_chunks(
        self,
        chunks: Iterable[bytes],
        *,
        kind: str,
        refs: Iterable[str] = (),
        label: str | None,
        expect: str | None,
    ) -> str:
        fd, temp = new_temp(self._tmp, "put-")
        # one core produces the chunks (Python-heavy), the other hashes and writes them
        hasher = new_hasher()

        def consume(chunk: bytes) -> None:
            hasher.update(chunk)
            write_all(fd, chunk)

        self._finish_temp(fd, temp, lambda: pipelined(chunks, consume))
        fp = hasher.hexdigest()
        try:
            self._check_expected(fp, expect)
        except FingerprintMismatch:
            unlink_quietly(temp)
            raise
        return self._publish(temp, fp, kind, refs, label)

    def _finish_temp(self, fd: int, temp: str, write: Callable[[], T]) -> T:
        """Run *write* into the temporary file *fd*, then fsync and close it; return
        what *write* returned."""
        try:
            written = write()
            if self.durable:
                os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            unlink_quietly(temp)
            raise not_writable(temp, exc) from exc
        except BaseException:
            os.close(fd)
            unlink_quietly(temp)
            raise
        os.close(fd)
        return written

    def _copy_large(
        self, path: str, src: int, size: int, progress: Progress | None
    ) -> tuple[str, str | None]:
        """Copy a large file into ``tmp/`` while hashing it; return ``(fp, temp)``, where
        temp is None if the content turned out to be stored already."""
        fd, temp = new_temp(self._tmp, "put-")
        try:
            fp, complete = self._finish_temp(
                fd, temp, lambda: copy_and_hash(src, fd, size, self.__contains__, progress)
            )
        except InvalidPath as exc:
            raise InvalidPath(f"cannot read {path!r}: {exc}") from exc
        if not complete:
            unlink_quietly(temp)
            return fp, None
        return fp, temp

    @staticmethod
    def _check_unchanged(path: str, fd: int, before: os.stat_result) -> None:
        try:
            now = os.stat(path)
        except OSError:
            now = None
        after = os.fstat(fd)
        same = (before.st_size, before.st_mtime_ns, before.st_ino) == (
            after.st_size,
            after.st_mtime_ns,
            after.st_ino,
        )
        if not same or now is None or now.st_ino != before.st_ino:
            raise InvalidPath(f"{path!r} changed while being added; try again")

    @staticmethod
    def _check_expected(fp: str, expect: str | None) -> None:
        if expect is not None:
            wanted = layout.normalize(expect)
            if not fp.startswith(wanted):
                raise FingerprintMismatch(f"content has fingerprint {fp}, expected {wanted}")

    def _publish(
        self, temp: str | None, fp: str, kind: str, refs: Iterable[str], label: str | None
    ) -> str:
        """Make a finished temporary file (or an existing object) visible as object *fp*."""
        if kind not in KINDS:
            raise StoreError(f"unknown object kind {kind!r} (expected one of {', '.join(KINDS)})")
        refs = tuple(refs)
        final = self.object_path(fp)
        try:
            if kind != "blob" or refs:
                self._write_meta(fp, kind, refs)
            if temp is None:
                _freshen(final)
            else:
                os.chmod(temp, 0o444)
                os.makedirs(os.path.dirname(final), exist_ok=True)
                try:
                    os.link(temp, final)
                except FileExistsError:
                    _freshen(final)
                except OSError:
                    os.rename(temp, final)  # a filesystem without hardlinks
                else:
                    if self.durable:
                        fsync_dir(os.path.dirname(final))
        except OSError as exc:
            raise not_writable(final, exc) from exc
        finally:
            if temp is not None:
                unlink_quietly(temp)
        from .index import Row

        self.index.add(Row(fp, kind, os.stat(final).st_size, time.time()))
        if label is not None:
            self.set_label(label, fp)
        return fp

    def _write_meta(self, fp: str, kind: str, refs: tuple[str, ...]) -> None:
        meta = self._read_meta(fp)
        wanted = {"kind": kind, "refs": sorted(set(refs))}
        if meta != wanted:
            path = os.path.join(self._meta, layout.oid_to_path(fp))
            replace_atomic(path, layout.canonical(wanted), self._tmp, durable=self.durable)

    # -- labels and refs ---------------------------------------------------

    def set_label(self, name: str, fingerprint: str) -> str:
        """Point label *name* at an object (fingerprint or prefix); return the fingerprint.

        Raises:
            InvalidLabel: *name* is empty, too long, or not made of ``A-Za-z0-9._-``.
        """
        _check_label(name)
        fp = self.resolve(fingerprint)
        replace_atomic(
            os.path.join(self._labels, name), fp.encode() + b"\n", self._tmp, durable=self.durable
        )
        self.index.set_label(name, fp)
        return fp

    def remove_label(self, name: str) -> None:
        """Remove label *name*."""
        _check_label(name)
        try:
            os.unlink(os.path.join(self._labels, name))
        except FileNotFoundError:
            raise ObjectNotFound(f"no label {name!r}") from None
        self.index.set_label(name, None)

    def labels(self) -> dict[str, str]:
        """Return every label and the fingerprint it points at."""
        found = {}
        try:
            names = os.listdir(self._labels)
        except FileNotFoundError:
            return {}
        for name in sorted(names):
            with open(os.path.join(self._labels, name), "rb") as stream:
                found[name] = stream.read().decode().strip()
        return found

    def _ref_path(self, namespace: str, key: str) -> str:
        if not namespace or not _NAMESPACE_CHARS.issuperset(namespace) or namespace == "labels":
            raise StoreError(f"invalid ref namespace {namespace!r}")
        return os.path.join(self.root, layout.REFS, namespace, layout.oid_to_path(key))

    def set_ref(self, namespace: str, key: str, values: Iterable[str]) -> None:
        """Atomically replace the fingerprints recorded under ``refs/<namespace>/<key>``.

        Refs are roots for ``gc``: the key and every value stay alive.
        """
        data = "".join(value + "\n" for value in values).encode()
        replace_atomic(self._ref_path(namespace, key), data, self._tmp, durable=self.durable)

    def get_ref(self, namespace: str, key: str) -> builtins.list[str]:
        """Return the fingerprints recorded under ``refs/<namespace>/<key>`` (empty if none)."""
        try:
            with open(self._ref_path(namespace, key), "rb") as stream:
                return stream.read().decode().split()
        except FileNotFoundError:
            return []

    def iter_refs(
        self, namespace: str | None = None
    ) -> Iterator[tuple[str, str, builtins.list[str]]]:
        """Yield ``(namespace, key, values)`` for every ref (but labels)."""
        refs = os.path.join(self.root, layout.REFS)
        spaces = [namespace] if namespace else sorted(os.listdir(refs))
        for space in spaces:
            if space == "labels":
                continue
            top = os.path.join(refs, space)
            for dirpath, _, names in os.walk(top):
                for name in names:
                    try:
                        key = layout.path_to_oid(os.path.join(dirpath, name))
                    except StoreError:
                        continue
                    with open(os.path.join(dirpath, name), "rb") as stream:
                        yield space, key, stream.read().decode().split()

    # -- maintenance -------------------------------------------------------

    def _scan(self) -> tuple[builtins.list[Row], builtins.list[tuple[str, str]]]:
        """Read every object's row and every label from the files (to rebuild the index)."""
        from .index import Row

        rows = []
        for fp in self.iter_fingerprints():
            try:
                st = os.stat(self.object_path(fp))
            except FileNotFoundError:
                continue
            rows.append(Row(fp, self.kind(fp), st.st_size, st.st_mtime))
        return rows, list(self.labels().items())

    def reindex(self) -> int:
        """Rebuild the index from the objects, meta files and labels; return the object count."""
        return self.index.rebuild()

    def verify(
        self,
        fingerprints: Iterable[str] | None = None,
        *,
        sample: float | None = None,
        progress: Progress | None = None,
    ) -> VerifyReport:
        """Re-hash objects and check that labels, refs and recorded references resolve.

        Args:
            fingerprints: Objects to check (fingerprints or prefixes); all when None.
            sample: Check only this random fraction (0 < f <= 1) of the objects.
            progress: Called with the number of objects checked so far.
        """
        from .maintenance import verify

        return verify(self, fingerprints, sample=sample, progress=progress)

    def gc(self, *, grace: float = 14 * 86400, dry_run: bool = False) -> GcReport:
        """Delete objects no label or ref reaches, and stale temporary files.

        Nothing younger than *grace* seconds is deleted, so writers in flight
        and objects just added are safe.
        """
        from .maintenance import gc

        return gc(self, grace=grace, dry_run=dry_run)

    # -- async face --------------------------------------------------------

    async def get_file_reference(self, obj: Any, mode: str = "rb") -> Any:
        """Return a :class:`~scalems_store.reference.FileReference` for *obj*.

        See :func:`scalems_store.get_file_reference`.
        """
        from .reference import get_file_reference

        return await get_file_reference(obj, filestore=self, mode=mode)

    async def aadd_file(self, path: str | os.PathLike[str], **kwargs: Any) -> str:
        """Async :meth:`add_file`: the copy and hash run in a worker thread."""
        import asyncio

        return await asyncio.to_thread(self.add_file, path, **kwargs)

    async def aread_bytes(self, fingerprint: str) -> bytes:
        """Async :meth:`read_bytes`, reading through aiofiles and checking the fingerprint."""
        import aiofiles

        fp = self.resolve(fingerprint)
        async with aiofiles.open(self.object_path(fp), "rb") as stream:
            data = await stream.read()
        self._matches(fp, hash_bytes(data))
        return data


def _check_label(name: str) -> None:
    if not name or len(name) > 200 or not _LABEL_CHARS.issuperset(name) or name.startswith("."):
        raise InvalidLabel(
            f"invalid label {name!r}: use 1-200 characters from A-Z a-z 0-9 . _ - "
            "(not starting with '.')"
        )


def _freshen(path: str) -> None:
    """Touch an existing object so that ``gc`` grace counts from its latest add."""
    # another user's object in a shared store may refuse: it exists, which is what matters
    with contextlib.suppress(PermissionError):
        os.utime(path)
