"""Opening and creating a store root: ``store.json`` checked, a new store made atomically."""

from __future__ import annotations

import json
import os

from . import layout
from .errors import StoreNotFound, UnsupportedFormat
from .fsutil import not_writable, remove_tree, replace_atomic


def default_root() -> str:
    """Return the store chosen by ``$SCALEMS_STORE``, else ``./.scalems``."""
    return os.environ.get("SCALEMS_STORE") or ".scalems"


FORMAT = {"format": "scalems-store", "version": 1, "hash": "blake3"}
_SUBDIRS = (layout.OBJECTS, layout.META, layout.LABELS, layout.TMP)


def open_or_create(root: str, create: bool, durable: bool) -> None:
    """Check the store at *root*, creating it first if asked and it does not exist.

    Creation is atomic: the store is built in a hidden sibling and renamed onto
    *root* (which may be an empty directory), so processes creating the same store
    at once all end up opening the one that won, and nobody sees half a store.
    """
    if _read_format(root):
        return
    if not create:
        raise StoreNotFound(f"no store at {root!r} (create one with 'scalems-store init')")
    if not (os.path.isdir(root) and os.listdir(root)):
        _create(root, durable)
    if not _read_format(root):
        raise StoreNotFound(f"{root!r} is not empty and is not a store (no store.json)")


def _read_format(root: str) -> bool:
    """True if *root* holds a store of our format; False if it holds no ``store.json``."""
    config = os.path.join(root, layout.STORE_FILE)
    try:
        with open(config, "rb") as stream:
            found = json.loads(stream.read(1 << 16))
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (ValueError, OSError) as exc:
        raise UnsupportedFormat(f"cannot read {config!r}: {exc}") from exc
    if not isinstance(found, dict) or found.get("format") != FORMAT["format"]:
        raise UnsupportedFormat(f"{config!r} does not describe a scalems store")
    if found.get("version") != FORMAT["version"] or found.get("hash") != FORMAT["hash"]:
        raise UnsupportedFormat(
            f"store format version {found.get('version')!r} ({found.get('hash')!r}) "
            f"at {config!r} is not supported; this scalems-store reads version "
            f"{FORMAT['version']} (blake3)"
        )
    return True


def _create(root: str, durable: bool) -> None:
    parent = os.path.dirname(root)
    staging = os.path.join(parent, f".{os.path.basename(root)}.new-{os.urandom(6).hex()}")
    try:
        os.makedirs(parent, exist_ok=True)
        for sub in _SUBDIRS:
            os.makedirs(os.path.join(staging, sub))
        replace_atomic(
            os.path.join(staging, layout.STORE_FILE),
            layout.canonical(FORMAT) + b"\n",
            os.path.join(staging, layout.TMP),
            durable=durable,
        )
    except OSError as exc:
        remove_tree(staging)
        raise not_writable(root, exc) from exc
    try:
        os.rename(staging, root)  # replaces *root* only if it is missing or an empty directory
    except OSError:
        pass  # another process created it first, or root is in the way: checked by the caller
    finally:
        remove_tree(staging)
