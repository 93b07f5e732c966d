"""Errors raised by :mod:`scalems_store`.

Every error the store raises on purpose derives from :class:`StoreError`, and
each refines the builtin exception it most resembles::

    StoreError
    ├── StoreNotFound            (FileNotFoundError)  no store at the given root
    ├── UnsupportedFormat        (ValueError)         store.json of an unknown format/version
    ├── StoreNotWritable         (PermissionError)    the store (or a target) cannot be written
    ├── InvalidFingerprint       (ValueError)         not a fingerprint, `blake3:` URI or prefix
    ├── ObjectNotFound           (KeyError)           no object matches a fingerprint or prefix
    ├── AmbiguousPrefix          (ValueError)         a prefix matches several objects
    ├── FingerprintMismatch      (ValueError)         content does not match an expected fingerprint
    ├── CorruptObject            (ValueError)         a stored object no longer matches its name
    ├── InvalidContent           (ValueError)         bytes are not the kind of object claimed
    ├── InvalidPath              (ValueError)         a user path is missing, of the wrong type, ...
    ├── InvalidLabel             (ValueError)         a label name that is not allowed
    ├── BadSetting               (ValueError)         an environment variable's value is unusable
    ├── RemoteError              (ConnectionError)    a remote cannot be reached, or refused
    └── ArchiveError             (ValueError)         a tree cannot be archived or extracted
        └── UnsafeArchive                             an archive entry would escape or is special

Foreign exceptions (``OSError``, ``sqlite3.Error``) are translated at the store
boundary with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousPrefix",
    "ArchiveError",
    "BadSetting",
    "CorruptObject",
    "FingerprintMismatch",
    "InvalidContent",
    "InvalidFingerprint",
    "InvalidLabel",
    "InvalidPath",
    "ObjectNotFound",
    "RemoteError",
    "StoreError",
    "StoreNotFound",
    "StoreNotWritable",
    "UnsafeArchive",
    "UnsupportedFormat",
]


class StoreError(Exception):
    """Root of every error raised on purpose by scalems_store."""

    def __str__(self) -> str:
        # KeyError quotes its argument; a message should read as a message.
        return str(self.args[0]) if self.args else ""


class BadSetting(StoreError, ValueError):
    """An environment variable that sets how the store works has a value it cannot use."""


class RemoteError(StoreError, ConnectionError):
    """A remote store cannot be reached, or it refused what was asked of it."""


class StoreNotFound(StoreError, FileNotFoundError):
    """There is no store at the given root."""


class UnsupportedFormat(StoreError, ValueError):
    """The store's ``store.json`` names a format or version this code does not know."""


class StoreNotWritable(StoreError, PermissionError):
    """The store, or a destination, cannot be written."""


class InvalidFingerprint(StoreError, ValueError):
    """A string is not a fingerprint, a ``blake3:`` URI or a prefix of at least 4 hex digits."""


class ObjectNotFound(StoreError, KeyError):
    """No object matches the fingerprint or prefix."""


class AmbiguousPrefix(StoreError, ValueError):
    """A prefix matches more than one object."""

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        shown = ", ".join(candidates[:10]) + (" ..." if len(candidates) > 10 else "")
        super().__init__(f"prefix {prefix!r} is ambiguous: {len(candidates)} matches: {shown}")
        self.prefix = prefix
        self.candidates = candidates


class FingerprintMismatch(StoreError, ValueError):
    """Content does not match the fingerprint it was expected to have."""


class CorruptObject(StoreError, ValueError):
    """A stored object's bytes no longer hash to its name."""


class InvalidContent(StoreError, ValueError):
    """Bytes are not the kind of object they are said to be (a "call" that is not a call
    record), or name other references than claimed."""


class InvalidPath(StoreError, ValueError):
    """A path given by the user is missing or of a type the operation cannot take."""


class InvalidLabel(StoreError, ValueError):
    """A label name that is not allowed."""


class ArchiveError(StoreError, ValueError):
    """A directory cannot be archived, or an archive cannot be extracted."""


class UnsafeArchive(ArchiveError):
    """An archive entry would write outside its target or is a special file."""
