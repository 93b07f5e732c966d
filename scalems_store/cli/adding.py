"""Adding paths as ``scalems-store add`` does, with click or without: every path checked
before anything is written, many small files read at a time, one batch, and only what is
stored reported, even when the command is stopped midway."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from scalems_store.core.errors import InvalidPath

if TYPE_CHECKING:
    from scalems_store.store.filestore import FileStore

AddOne = Callable[[str, bool, "str | None"], str]
"""Adds one path: ``add_one(path, is_directory, label)`` returns its fingerprint."""


def check_paths(paths: Sequence[str]) -> set[str]:
    """Return the directories among *paths* (``-``, standard input, may come once).

    Raises:
        InvalidPath: a path cannot be added: it does not exist, is a symlink to nothing,
            is a device, or ``-`` comes twice. Nothing has been written then.
    """
    directories = set()
    if list(paths).count("-") > 1:
        raise InvalidPath("standard input ('-') can be added only once")
    for path in paths:
        if path == "-":
            continue
        try:
            mode = os.stat(path).st_mode  # a symlink is what it points at
        except OSError as exc:
            raise InvalidPath(_why_not(path, exc)) from None
        if stat.S_ISDIR(mode):
            directories.add(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise InvalidPath(f"{path!r} is a device, not a file (use '-' with a redirection)")
        elif stat.S_ISSOCK(mode):
            raise InvalidPath(f"{path!r} is a socket, not a file")
        elif not os.access(path, os.R_OK):
            raise InvalidPath(f"cannot add {path!r}: permission denied")
    return directories


def _why_not(path: str, exc: OSError) -> str:
    if os.path.islink(path):
        return f"{path!r} is a symlink to nothing ({os.readlink(path)!r})"
    if exc.strerror and not isinstance(exc, FileNotFoundError):
        return f"cannot add {path!r}: {exc.strerror}"
    return f"no such file or directory: {path!r}"


def add_paths(
    store: FileStore,
    paths: Sequence[str],
    directories: set[str],
    add_one: AddOne,
    report: Callable[[list[str]], None],
    *,
    label: str | None = None,
    advance: Callable[[int], None] | None = None,
) -> None:
    """Add *paths* (checked by :func:`check_paths`) in one batch, *label* on the last.

    Small files are read many at a time, a batch ahead, without the GIL (as a tree's are);
    a file that reader leaves aside is added by *add_one*, with its own checks, as are
    directories and ``-``. *report* is given the fingerprints, in order, once they are
    stored; if the adding stops midway (an error, Ctrl-C), only those that are stored.
    """
    many = len(paths) > 1  # a lone path shows its own progress, through add_one
    plain = [p for p in paths if p != "-" and p not in directories] if many else []
    reads: Iterator[tuple[bytes, int] | None] = iter(())
    if plain:  # (not imported for one path: the tar package is ~3 ms of a start-up)
        from scalems_store.tar.archive import small_files

        reads = small_files(plain)  # up to archive.SMALL_FILE bytes; larger ones one by one
    added: list[str] = []
    stored = False
    try:
        with store.batch():
            for number, path in enumerate(paths, 1):
                named = label if number == len(paths) else None
                read = next(reads) if plain and path != "-" and path not in directories else None
                if read is not None:
                    added.append(store.add_bytes(read[0], label=named))
                else:
                    added.append(add_one(path, path in directories, named))
                if advance is not None and many:
                    advance(number)
        stored = True
    finally:
        # what a batch held when it was stopped may not have been published
        report(added if stored else [fp for fp in added if fp in store])
