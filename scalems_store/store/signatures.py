"""Signatures beside results: ``sigs/ab/<result-fp>``, outside every fingerprint.

A runner signs each result it records (:mod:`scalems_store.trust`); the
signature, and the public key that made it, are kept here, beside the result,
so that the result's own bytes, and so its fingerprint, never change. The file
is text, one line an entry, sorted, each entry once::

    ed25519 <public key, 64 hex> <signature, 128 hex>
    imported

``imported`` says the result came into this store by import (a bundle, later
a pull): ``scalems-store trust sign-existing`` never vouches for such a result.
What a signature signs is :func:`message`: a domain-separated text naming the
result and its call. This module only reads and writes the file (no
cryptography): a line that is not well formed is skipped, and a signature is
believed only once :mod:`scalems_store.trust` has checked it. Anyone who can
write the file can add a line; nobody can add a signature that checks without
the private key.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from typing import NamedTuple

from scalems_store.core import layout
from scalems_store.core.fsutil import replace_atomic
from scalems_store.store import refs

SIGS = "sigs"
ED25519 = "ed25519"
IMPORTED = "imported"
DOMAIN = b"scalems-store result signature v1\n"
"""The first line of every signed message: a signature over it means nothing else."""
_MAX_FILE = 1 << 20
_HEX = frozenset("0123456789abcdef")


class Signature(NamedTuple):
    """One signature of a result: the signer's Ed25519 public key and the signature (hex)."""

    key: str
    signature: str

    def line(self) -> str:
        """The signature as a line of a ``sigs/`` file (without the newline)."""
        return f"{ED25519} {self.key} {self.signature}"


def message(result_fp: str, call_fp: str) -> bytes:
    """What is signed for result *result_fp* of call *call_fp* (full fingerprints)::

    scalems-store result signature v1
    result blake3:<result-fp>
    call blake3:<call-fp>
    """
    return DOMAIN + f"result blake3:{result_fp}\ncall blake3:{call_fp}\n".encode()


def is_hex(text: str, length: int) -> bool:
    """Whether *text* is *length* lowercase hex digits."""
    return len(text) == length and _HEX.issuperset(text)


class Parsed(NamedTuple):
    """What a ``sigs/`` file holds."""

    signatures: list[Signature]
    imported: bool
    bad: int
    """Lines that are neither a signature nor ``imported`` (left out; verify reports them)."""


def parse(data: bytes) -> Parsed:
    """The signatures in a ``sigs/`` file's bytes, and whether it says ``imported``."""
    found: list[Signature] = []
    imported = False
    bad = 0
    for raw in data.decode("ascii", "replace").splitlines():
        fields = raw.split()
        if fields == [IMPORTED]:
            imported = True
        elif (
            len(fields) == 3
            and fields[0] == ED25519
            and is_hex(fields[1], 64)
            and is_hex(fields[2], 128)
        ):
            found.append(Signature(fields[1], fields[2]))
        elif fields:
            bad += 1
    return Parsed(found, imported, bad)


class SigDir:
    """The ``sigs/`` directory of a store."""

    def __init__(self, root: str, tmp: str, *, durable: bool) -> None:
        self.top = os.path.join(root, SIGS)
        self._tmp = tmp
        self._durable = durable

    def path(self, result_fp: str) -> str:
        """Where the signatures of *result_fp* live."""
        return os.path.join(self.top, layout.oid_to_path(result_fp))

    def read_bytes(self, result_fp: str) -> bytes | None:
        """The file's bytes, or None when there is none (or it is not a regular file: a
        FIFO put there never blocks a reader)."""
        try:
            fd = os.open(
                self.path(result_fp), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
            )
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return os.read(fd, _MAX_FILE)
        finally:
            os.close(fd)

    def read(self, result_fp: str) -> Parsed:
        """The signatures recorded for *result_fp*, and whether it came by import."""
        data = self.read_bytes(result_fp)
        return Parsed([], False, 0) if data is None else parse(data)

    def add(self, result_fp: str, signatures: Iterable[Signature], *, imported: bool) -> None:
        """Add *signatures* (and, with *imported*, the ``imported`` line) to the file of
        *result_fp*, under the lock of its ref updates, replacing it atomically."""
        new = [s.line() for s in signatures]
        with refs.locked(self._tmp, f"sigs-{result_fp[:2]}"):
            old, was_imported, _ = self.read(result_fp)
            lines = set(new) | {s.line() for s in old}
            if imported or was_imported:
                lines.add(IMPORTED)
            if not lines:
                return
            data = "".join(line + "\n" for line in sorted(lines)).encode()
            if data != self.read_bytes(result_fp):
                replace_atomic(self.path(result_fp), data, self._tmp, durable=self._durable)
