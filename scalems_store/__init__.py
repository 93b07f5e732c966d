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
    "FingerprintMismatch",
    "GcReport",
    "InvalidContent",
    "InvalidFingerprint",
    "InvalidLabel",
    "InvalidPath",
    "ObjectInfo",
    "ObjectNotFound",
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
    "FileReference": "reference",
    "get_file_reference": "reference",
    "FileStore": "store",
    "GcReport": "collect",
    "ObjectInfo": "info",
    "VerifyReport": "audit",
    "gc": "collect",
    "verify": "audit",
    "default_root": "creation",
    "hash_bytes": "fingerprint",
    "hash_file": "fingerprint",
}

if TYPE_CHECKING:
    from .audit import VerifyReport, verify
    from .collect import GcReport, gc
    from .creation import default_root
    from .errors import (
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
        StoreError,
        StoreNotFound,
        StoreNotWritable,
        UnsafeArchive,
        UnsupportedFormat,
    )
    from .fingerprint import hash_bytes, hash_file
    from .info import ObjectInfo
    from .reference import FileReference, get_file_reference
    from .store import FileStore


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'scalems_store' has no attribute {name!r}")
    module = importlib.import_module(f".{_WHERE.get(name, 'errors')}", __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
