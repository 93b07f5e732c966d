"""A call's recorded code, in the store and on a worker.

At pack time the user's modules a call needs (see :mod:`scalems_call.identity.closure`)
are stored as blobs, one per module (identical modules across calls are one
object), and the call record names them: ``"code": {"pkg/sub.py": "blake3:<hex>"}``,
with ``"dists": {"numpy": "2.1.3"}`` and ``"version": 2``. A file's fingerprint is
cached by its path, size, mtime and inode, so that packing many calls of one
module reads it once.

At run time the code is written out once per code tree per worker, into a
cache directory (``$SCALEMS_CALL_CODE_CACHE``, else ``$XDG_CACHE_HOME/scalems/code``,
else ``~/.cache/scalems/code``), named by the fingerprint of the code map, and
the child puts it first on its import path.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Any

from scalems_call.identity.errors import InvalidCall
from scalems_store import FileStore, hash_bytes
from scalems_store.core import layout
from scalems_store.core.fsutil import remove_tree

VERSION = 2
"""The call record version that carries its code (records without ``version`` are 1)."""
ENV = "SCALEMS_CALL_CODE"
"""How the runner tells the child where the call's code is."""
STRICT_ENV = "SCALEMS_CALL_STRICT_VERSIONS"
"""Set (``exec --strict-versions``): refuse to run a call whose distributions differ here."""

_hashed: dict[str, tuple[tuple[int, int, int], str]] = {}


_present: set[tuple[str, str]] = set()
"""``(store root, blob)`` this process stored or found present (not asked again)."""


def store_code(
    store: FileStore, files: dict[str, str], stats: dict[str, tuple[int, int, int]] | None = None
) -> dict[str, str]:
    """Store the files of a code closure (tree path -> file); return the record's
    ``code`` map (tree path -> ``blake3:`` URI).

    Args:
        stats: The files' stat keys (size, mtime, inode), where the caller has them.
    """
    code: dict[str, str] = {}
    for rel, path in sorted(files.items()):
        code[rel] = layout.to_uri(_blob(store, path, (stats or {}).get(path)))
    return code


def _blob(store: FileStore, path: str, key: tuple[int, int, int] | None) -> str:
    if key is None:
        st = os.stat(path)
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
    known = _hashed.get(path)
    if (
        known is not None
        and known[0] == key
        and ((store.root, known[1]) in _present or known[1] in store)
    ):
        _present.add((store.root, known[1]))
        return known[1]
    fp = str(store.add_file(path))
    _hashed[path] = (key, fp)
    _present.add((store.root, fp))
    return fp


def file_digest(path: str) -> str | None:
    """The fingerprint of the file at *path* now (cached by its stat), or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (st.st_size, st.st_mtime_ns, st.st_ino)
    known = _hashed.get(path)
    if known is not None and known[0] == key:
        return known[1]
    try:
        with open(path, "rb") as stream:
            fp = hash_bytes(stream.read())
    except OSError:
        return None
    _hashed[path] = (key, fp)
    return fp


def recorded(record: dict[str, Any]) -> dict[str, str] | None:
    """The ``code`` map of a call record (tree path -> fingerprint), None if it has none.

    Raises:
        InvalidCall: the map is malformed (a path that climbs out, a bad fingerprint).
    """
    code = record.get("code")
    if code is None:
        return None
    if not isinstance(code, dict):
        raise InvalidCall("malformed call record: code must be an object")
    found = {}
    for rel, uri in code.items():
        parts = rel.split("/") if isinstance(rel, str) else []
        if not parts or any(p in ("", ".", "..") or "\0" in p for p in parts):
            raise InvalidCall(f"malformed call record: code path {rel!r}")
        if not isinstance(uri, str) or not layout.is_fingerprint(layout.normalize(uri)):
            raise InvalidCall(f"malformed call record: code {rel!r} is not a fingerprint")
        found[rel] = layout.normalize(uri)
    return found


def cache_root() -> str:
    """Where code trees are written out on this worker."""
    explicit = os.environ.get("SCALEMS_CALL_CODE_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "scalems", "code")


def code_dir(store: FileStore, code: dict[str, str]) -> str:
    """The directory holding the code tree *code* on this worker, written out from the
    store the first time (atomically: a rename publishes it whole).

    Raises:
        ObjectNotFound: a module of the code is not in the store.
    """
    key = hash_bytes(layout.canonical(sorted(code.items())))
    root = cache_root()
    where = os.path.join(root, key)
    if os.path.isdir(where):
        return where
    os.makedirs(root, exist_ok=True)
    temp = f"{where}.tmp{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        remove_tree(temp)
    try:
        for rel, fp in sorted(code.items()):
            dest = os.path.join(temp, *rel.split("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as stream:
                stream.write(store.read_bytes(fp))
        try:
            os.rename(temp, where)
        except OSError:
            if not os.path.isdir(where):
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            remove_tree(temp)
    return where


def changed(record: dict[str, Any], search: list[str] | None = None) -> list[str]:
    """The modules of a call's recorded code that differ from the file found on this
    machine's import path now (the current directory first): a module not found here
    is not counted."""
    try:
        code = recorded(record)
    except InvalidCall:
        return []
    if not code:
        return []
    entries = search if search is not None else [os.getcwd(), *sys.path]
    found = []
    for rel, fp in sorted(code.items()):
        for entry in entries:
            path = os.path.join(entry or os.getcwd(), *rel.split("/"))
            if os.path.isfile(path):
                if file_digest(path) != fp:
                    found.append(rel)
                break
    return found


def not_recorded(record: dict[str, Any]) -> bool:
    """True for a call record packed before calls carried their code, whose function is
    not the standard library's."""
    if "version" in record or "code" in record:
        return False
    from scalems_call.identity.describe import function_name

    module = function_name(record).partition(":")[0]
    top = module.partition(".")[0]
    return top not in sys.stdlib_module_names and top not in ("builtins", "?", "")


def versions_differ(record: dict[str, Any]) -> dict[str, dict[str, str | None]]:
    """The distributions a call record names whose installed version here differs:
    ``{"numpy": {"recorded": "2.1.3", "here": "2.0.0"}}`` (``here`` None: not installed)."""
    dists = record.get("dists")
    if not isinstance(dists, dict):
        return {}
    found: dict[str, dict[str, str | None]] = {}
    for name, version in sorted(dists.items()):
        here = installed_version(name)
        if here != version:
            found[name] = {"recorded": version, "here": here}
    return found


def describe_versions(differ: dict[str, Any]) -> list[str]:
    """``numpy 2.1.3 recorded, 2.0.0 here`` for each distribution that differs."""
    return [
        f"{name} {seen['recorded']} recorded, {seen['here'] or 'not installed'} here"
        for name, seen in sorted(differ.items())
    ]


@functools.lru_cache(maxsize=256)
def installed_version(name: str) -> str | None:
    """The version of distribution *name* installed here (asked once per process: a
    worker runs many calls), or None."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except (metadata.PackageNotFoundError, ValueError):
        return None
