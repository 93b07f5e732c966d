"""scalems_store: a content-addressed artifact store named by BLAKE3.

Objects are files named by the BLAKE3-256 of their bytes; directories are
stored as deterministic tar archives ("trees"); a sqlite index caches metadata.
Names are imported lazily so that command-line tools start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AmbiguousPrefix",
    "ArchiveError",
    "BadSetting",
    "CorruptObject",
    "FileReference",
    "FileStore",
    "FileStoreManager",
    "FingerprintMismatch",
    "GcReport",
    "InvalidContent",
    "InvalidFingerprint",
    "InvalidLabel",
    "InvalidPath",
    "ObjectInfo",
    "ObjectNotFound",
    "RemoteError",
    "StoreError",
    "StoreNotFound",
    "StoreNotWritable",
    "UnsafeArchive",
    "UnsupportedFormat",
    "VerifyReport",
    "__version__",
    "default_root",
    "gc",
    "get_file_reference",
    "hash_bytes",
    "hash_file",
    "verify",
]

_WHERE = {
    "FileReference": "store.reference",
    "get_file_reference": "store.filestore",
    "FileStore": "store.filestore",
    "FileStoreManager": "store.manager",
    "GcReport": "maint.collect",
    "ObjectInfo": "query.info",
    "VerifyReport": "maint.audit",
    "gc": "maint.collect",
    "verify": "maint.audit",
    "default_root": "store.creation",
    "hash_bytes": "core.fingerprint",
    "hash_file": "core.fingerprint",
}

if TYPE_CHECKING:
    from scalems_store.core.errors import (
        AmbiguousPrefix,
        ArchiveError,
        BadSetting,
        CorruptObject,
        FingerprintMismatch,
        InvalidContent,
        InvalidFingerprint,
        InvalidLabel,
        InvalidPath,
        ObjectNotFound,
        RemoteError,
        StoreError,
        StoreNotFound,
        StoreNotWritable,
        UnsafeArchive,
        UnsupportedFormat,
    )
    from scalems_store.core.fingerprint import hash_bytes, hash_file
    from scalems_store.maint.audit import VerifyReport, verify
    from scalems_store.maint.collect import GcReport, gc
    from scalems_store.query.info import ObjectInfo
    from scalems_store.store.creation import default_root
    from scalems_store.store.filestore import FileStore, get_file_reference
    from scalems_store.store.manager import FileStoreManager
    from scalems_store.store.reference import FileReference


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'scalems_store' has no attribute {name!r}")
    module = importlib.import_module(f".{_WHERE.get(name, 'core.errors')}", __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
