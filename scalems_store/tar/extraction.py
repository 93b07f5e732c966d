"""Extracting a tree archive, or one member of it, safely: everything is validated
before anything is written, the tree is built beside its destination and renamed
into place, so a refusal or an error leaves the destination as it was.
(:mod:`scalems_store.tar.archive` is the face of archiving and extraction.)
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Callable, Mapping

from scalems_store.core.errors import ArchiveError, InvalidPath, UnsafeArchive
from scalems_store.core.fsutil import check_parent, remove_tree
from scalems_store.core.threads import Beside
from scalems_store.tar.tarformat import DIR, SYMLINK
from scalems_store.tar.treeread import Entry, check_link, iter_entries, mapped
from scalems_store.tar.unpack import copy_from, write_entries


def prepare_destination(dest: str | os.PathLike[str]) -> str:
    """Check that *dest* is new or an empty directory; return it as a string.

    Raises:
        InvalidPath: *dest* exists and is not an empty directory.
    """
    dest = os.fspath(dest)
    if os.path.lexists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise InvalidPath(f"destination {dest!r} exists and is not an empty directory")
    check_parent(dest)
    return dest


def extract(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    checked: bool = False,
    verify: Callable[[], object] | None = None,
    member: str | None = None,
    sources: Mapping[int, str] | None = None,
) -> int:
    """Extract the tree archive at *archive* (or one *member* of it) to *dest*.

    Every member is validated before anything is written, the tree is built in a
    hidden sibling directory and renamed into place, so a refusal or an error
    leaves *dest* as it was.

    Args:
        checked: The archive's fingerprint was verified (see :func:`iter_entries`).
        verify: A check of the archive's fingerprint, run on a second thread while
            the headers are parsed (implies *checked*). Nothing is written unless
            it passes, and its error is the one raised, even if parsing failed too.
        member: A path in the tree: a file is written to the new file *dest*, a
            directory extracted into *dest* with everything under it (a symlink
            that would then point outside *dest* is refused). None for the whole.
        sources: The file holding the data of each file member whose data offset is a
            key (see :func:`.unpack.write_entries`).

    Returns:
        The number of members extracted.

    Raises:
        InvalidPath: *dest* is in the way, or the tree has no *member*.
        ArchiveError, UnsafeArchive: see :func:`iter_entries`.
    """
    dest = os.fspath(dest)
    whole = member in (None, "", ".")
    if whole or not os.path.lexists(dest):
        prepare_destination(dest)
    with mapped(archive) as data:
        if verify is None:
            entries = list(iter_entries(data, checked=checked))
        else:
            entries = _parse_verifying(data, verify)
        if not whole:
            entries = _under(entries, str(member))
            if len(entries) == 1 and entries[0].path == "":
                _write_file(data, entries[0], dest, (sources or {}).get(entries[0].offset))
                return 1
            prepare_destination(dest)
        parent = os.path.dirname(os.path.abspath(dest))
        staging = os.path.join(parent, f".{os.path.basename(dest)}.{os.urandom(6).hex()}.tmp")
        try:
            os.makedirs(parent, exist_ok=True)
            os.mkdir(staging)
            write_entries(data, entries, staging, sources)
            os.rename(staging, dest)
        except OSError as exc:
            _discard(staging)
            raise ArchiveError(f"cannot extract into {dest!r}: {exc.strerror or exc}") from exc
        except BaseException:
            _discard(staging)
            raise
    return len(entries)


def _under(entries: list[Entry], member: str) -> list[Entry]:
    """The entries at and under *member*, their paths made relative to it (the member
    itself, if a file or symlink, gets the empty path).

    Raises:
        InvalidPath: there is no such member.
        UnsafeArchive: a symlink under it would point outside it.
    """
    member = member.strip("/")
    prefix = member + "/"
    found = []
    for entry in entries:
        if entry.path == member:
            if entry.type == DIR:
                continue
            return [entry._replace(path="")]
        if entry.path.startswith(prefix):
            rel = entry.path[len(prefix) :]
            if entry.type == SYMLINK:
                check_link(rel, entry.linkname)
            found.append(entry._replace(path=rel))
    if not found and not any(e.path == member for e in entries):
        raise InvalidPath(f"the tree has no {member!r}")
    return found


def _write_file(
    data: bytes | mmap.mmap, entry: Entry, dest: str, source: str | None = None
) -> None:
    """Write one member (a file, or a symlink's target name) to the new path *dest*, its
    bytes from *data* or, if given, from the file at *source*."""
    if entry.type == SYMLINK:
        raise InvalidPath(f"the member is a symlink (-> {entry.linkname!r}), not a file")
    if os.path.lexists(dest):
        raise InvalidPath(f"destination {dest!r} already exists")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, entry.mode)
    try:
        if source is not None:
            copy_from(source, fd, entry.size)
        else:
            with memoryview(data)[entry.offset : entry.offset + entry.size] as chunk:
                written = 0
                while written < entry.size:
                    written += os.write(fd, chunk[written:])
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(dest)
        raise
    os.close(fd)


def _discard(staging: str) -> None:
    """Remove what an extraction that failed wrote, as far as possible (the error
    being raised says what went wrong)."""
    with contextlib.suppress(OSError):
        remove_tree(staging)


def _parse_verifying(data: bytes | mmap.mmap, verify: Callable[[], object]) -> list[Entry]:
    """Parse the archive's headers while *verify* runs on another thread (it hashes
    without the GIL); *verify*'s error comes first."""
    verifying = Beside(verify, "scalems-verify")
    try:
        entries = list(iter_entries(data, checked=True))
    except (ArchiveError, UnsafeArchive):
        verifying.result()  # corrupt bytes explain a bad header: report the corruption
        raise
    finally:
        verifying.wait()
    verifying.result()
    return entries
