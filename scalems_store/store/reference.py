"""File references: the SCALE-MS ``FileReference`` face of stored objects.

One implementation, :func:`reference`, serves all three ways of asking:
``FileStore.file_reference(obj)`` (synchronous), ``await
FileStore.get_file_reference(obj)`` and ``await get_file_reference(obj,
filestore=store)`` (as in SCALE-MS; it lives in :mod:`.filestore`, since it opens
the default store when given none). It lives beside :class:`FileStore`, not in
the query folder, because a path is added to the store; it takes the store as a
:class:`ReferenceStore` and does not import :mod:`.filestore`.
"""

from __future__ import annotations

import functools
import os
import pathlib
from typing import IO, Any, BinaryIO, Protocol

from scalems_store.core import layout
from scalems_store.core.errors import InvalidFingerprint, InvalidPath, ObjectNotFound
from scalems_store.core.fingerprint import hash_bytes
from scalems_store.objects import reading
from scalems_store.store.treeview import TreeStore, has_path


class ReferenceStore(TreeStore, Protocol):
    """What a reference needs of its store (:class:`~.filestore.FileStore` has it)."""

    def add_file(self, path: str | os.PathLike[str]) -> str: ...
    def add_stream(self, stream: IO[bytes]) -> str: ...
    def open(self, fingerprint: str) -> BinaryIO: ...


class FileReference(os.PathLike[str]):
    """A reference to an object in a :class:`FileStore`.

    It is ``os.PathLike``: ``open(ref, "rb")`` reads the (read-only) object.
    """

    def __init__(self, filestore: ReferenceStore, fingerprint: str, mode: str = "rb") -> None:
        self._store = filestore
        self._fingerprint = fingerprint
        self._mode = mode

    def __fspath__(self) -> str:
        from scalems_store.objects import thin

        # a tree stored thin has no file of its whole bytes: one is made in tmp/
        tmp = os.path.join(self._store.root, layout.TMP)
        try:
            return thin.whole_path(self._store.objects, self._fingerprint, tmp)
        except ObjectNotFound:  # not here (is_local says so): where it would be
            return self._store.object_path(self._fingerprint)

    def __repr__(self) -> str:
        return f"<FileReference {self._fingerprint} in {self._store.root!r}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FileReference)
            and other._fingerprint == self._fingerprint
            and other._store.root == self._store.root
        )

    def __hash__(self) -> int:
        return hash((self._fingerprint, self._store.root))

    def key(self) -> str:
        """The object's fingerprint (64 hex digits)."""
        return self._fingerprint

    def as_uri(self) -> str:
        """A ``file://`` URI of the object in this store."""
        return pathlib.Path(self.__fspath__()).as_uri()

    def is_local(self) -> bool:
        """True when the object is present in the local store."""
        return self._fingerprint in self._store

    async def localize(self) -> FileReference:
        """Make the object available locally (it always is in a local store)."""
        if not self.is_local():
            raise InvalidPath(f"object {self._fingerprint} is not in {self._store.root!r}")
        return self

    def filestore(self) -> ReferenceStore:
        """The store holding the object."""
        return self._store

    async def aread(self) -> bytes:
        """Read the object's bytes (checked against its fingerprint) without blocking the loop."""
        import aiofiles

        async with aiofiles.open(self.__fspath__(), "rb") as stream:
            data = await stream.read()
        reading.matches(self._fingerprint, hash_bytes(data))
        return data


@functools.singledispatch
def reference(obj: Any, store: ReferenceStore, mode: str = "rb") -> FileReference:
    """Return a reference to what *obj* names in *store*, adding it first if it is a path.

    * ``pathlib.Path`` or any ``os.PathLike``: the file is added (one read, one hash;
      adding it again is harmless, since names are content);
    * ``str``: a fingerprint, ``blake3:`` URI, unique prefix or label; or ``FP:path``, one
      file of a tree, of a result's output directory or of a call's newest result (its
      bytes are stored as a blob of their own, which gc keeps for its grace period);
    * ``bytes``: a raw 32-byte digest.

    Raises:
        TypeError: *obj* is of another type.
        InvalidPath, InvalidFingerprint, ObjectNotFound, AmbiguousPrefix.
    """
    if isinstance(obj, os.PathLike):  # PathLike is a protocol: singledispatch cannot see it
        return FileReference(store, store.add_file(obj), mode)
    raise TypeError(f"cannot get a file reference for {type(obj).__name__!r} object {obj!r}")


@reference.register(str)
def _(obj: str, store: ReferenceStore, mode: str = "rb") -> FileReference:
    if has_path(obj):
        with store.open(obj) as stream:  # FP:path: that file, stored as a blob of its own
            return FileReference(store, store.add_stream(stream), mode)
    return FileReference(store, store.resolve(obj), mode)


@reference.register(bytes)
def _(obj: bytes, store: ReferenceStore, mode: str = "rb") -> FileReference:
    if len(obj) != 32:
        raise InvalidFingerprint(f"a raw digest is 32 bytes, got {len(obj)}")
    return FileReference(store, store.resolve(obj.hex()), mode)
