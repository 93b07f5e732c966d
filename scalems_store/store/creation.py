"""Opening and creating a store root: ``store.json`` checked, a new store made atomically."""

from __future__ import annotations

import json
import os

from scalems_store.core import layout
from scalems_store.core.errors import StoreNotFound, UnsupportedFormat
from scalems_store.core.fsutil import not_writable, read_regular, remove_tree, replace_atomic

DEFAULT_NAME = ".scalems"


def default_root() -> str:
    """The store to use when none is given, found as git finds ``.git``:
    ``$SCALEMS_STORE``, else the nearest ``.scalems`` holding a store in the current
    directory or a parent (not crossing into another filesystem), else ``./.scalems``."""
    chosen = os.environ.get("SCALEMS_STORE")
    if chosen:
        return chosen
    here = os.getcwd()
    device = _device(here)
    while True:
        candidate = os.path.join(here, DEFAULT_NAME)
        if os.path.isfile(os.path.join(candidate, layout.STORE_FILE)):
            return candidate
        parent = os.path.dirname(here)
        if parent == here or _device(parent) != device:
            return DEFAULT_NAME
        here = parent


def _device(path: str) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


FORMAT = {"format": "scalems-store", "version": 1, "hash": "blake3"}
_SUBDIRS = (layout.OBJECTS, layout.META, layout.LABELS, layout.TMP)


def open_or_create(root: str, create: bool, durable: bool) -> bool:
    """Check the store at *root*, creating it first if asked and it does not exist;
    return True if this call created it.

    Creation is atomic: the store is built in a hidden sibling and renamed onto
    *root* (which may be an empty directory), so processes creating the same store
    at once all end up opening the one that won, and nobody sees half a store.
    """
    if _read_format(root):
        return False
    if not create:
        raise StoreNotFound(f"no store at {root!r}{_hint(root, 'scalems-store init')}")
    made = not (os.path.isdir(root) and os.listdir(root)) and _create(root, durable)
    if not _read_format(root):
        raise StoreNotFound(
            f"{root!r} is not empty and is not a store (no store.json){_hint(root, '')}"
        )
    return made


def _hint(root: str, otherwise: str) -> str:
    """Where the user may have meant: a store inside *root*; or how to make one."""
    inside = os.path.join(root, DEFAULT_NAME)
    if os.path.isfile(os.path.join(inside, layout.STORE_FILE)):
        return f"; it holds one: did you mean --store {inside}?"
    return f" (create one with '{otherwise}')" if otherwise else ""


def _read_format(root: str) -> bool:
    """True if *root* holds a store of our format; False if it holds no ``store.json``."""
    config = os.path.join(root, layout.STORE_FILE)
    try:
        found = json.loads(read_regular(config, 1 << 16, follow=True))
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise UnsupportedFormat(f"cannot read {config!r}: {exc.strerror}") from exc
    except ValueError as exc:
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


def _create(root: str, durable: bool) -> bool:
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
        return False  # another process created it first, or root is in the way: the caller checks
    finally:
        remove_tree(staging)
    return True
