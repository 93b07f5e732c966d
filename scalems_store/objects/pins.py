"""Pins: the objects a writer is about to name, kept by gc until the name is written.

A runner stores a call's outputs, then its result record, then the ref that names
them; an import publishes objects, then the refs that name them. In between, the
objects are unreferenced, and a gc that read the roots just before the ref was
written (with ``--grace 0``: at any age) would delete them. A writer that will
name what it adds pins it first: each fingerprint is appended to its pin file
``tmp/pin-*`` before the object is published (or, stored already, touched), and
the file goes once the names are written.

gc reads the pins of live writers (a pin file held under a shared ``flock``, as
every live writer's file in ``tmp/`` is) with its other roots, after it lists the
objects: an object published before the listing was pinned before the roots were
read, and one published after the listing is not judged. A pin file whose writer
is gone is ignored, and swept with the rest of ``tmp/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

from scalems_store.core import layout
from scalems_store.core.fsutil import new_temp

PREFIX = "pin-"


class Pins:
    """The pin file of one writer (see the module)."""

    def __init__(self, tmp: str, *, durable: bool) -> None:
        os.makedirs(tmp, exist_ok=True)
        self.fd, self.path = new_temp(tmp, PREFIX)
        self.durable = durable
        self._unsynced = False

    def add(self, fp: str) -> None:
        """Pin *fp* (before it is published or touched; see :meth:`flush`)."""
        os.write(self.fd, f"{fp}\n".encode())
        self._unsynced = True

    def flush(self) -> None:
        """Make the pins written so far visible to a gc on another host of a network
        filesystem (its client may hold them until then): called before publishing, once
        per object published on its own or per batch. Without durability (a store on a
        local filesystem, or tests) the kernel shows them at once."""
        if self._unsynced and self.durable:
            os.fdatasync(self.fd)
        self._unsynced = False

    def close(self) -> None:
        """Unpin everything (once the names are written)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)


class Pinning:
    """The pins of each thread of one writer (runners share a store in threads: one
    that is done must not unpin what another is about to name)."""

    def __init__(self, tmp: str, *, durable: bool) -> None:
        self.tmp, self.durable = tmp, durable
        self._local = threading.local()

    @property
    def current(self) -> Pins | None:
        """This thread's pins, while it is inside :meth:`pinned`."""
        found: Pins | None = getattr(self._local, "pins", None)
        return found

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Pin what this thread adds inside until the end (a nested one joins it)."""
        if self.current is not None:
            yield
            return
        self._local.pins = pins = Pins(self.tmp, durable=self.durable)
        try:
            yield
        finally:
            self._local.pins = None
            pins.close()

    def add(self, fp: str) -> None:
        """Pin *fp* if this thread pins."""
        if (pins := self.current) is not None:
            pins.add(fp)

    def flush(self) -> None:
        """See :meth:`Pins.flush` (nothing if this thread does not pin)."""
        if (pins := self.current) is not None:
            pins.flush()


def live(tmp: str) -> set[str]:
    """The fingerprints pinned by live writers in *tmp* (nothing read through a symlink)."""
    if os.path.islink(tmp):
        return set()
    try:
        with os.scandir(tmp) as entries:
            paths = [e.path for e in entries if e.name.startswith(PREFIX) and e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return set()
    pinned: set[str] = set()
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue  # gone meanwhile: its writer is done
        try:
            if _released(fd):
                continue  # its writer is gone without removing it
            data = _read_all(fd)
        finally:
            os.close(fd)
        # a last line being written names an object not yet published
        lines = data.decode("ascii", "replace").split()
        pinned.update(line for line in lines if layout.is_fingerprint(line))
    return pinned


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 24):
        chunks.append(chunk)
    return b"".join(chunks)


def _released(fd: int) -> bool:
    """Whether no live writer holds the pin file open on *fd* (its shared lock)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return False  # no locks on this filesystem: count it as live (it keeps, never loses)
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True
