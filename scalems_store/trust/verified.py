"""Signatures checked once, remembered: ``$XDG_CACHE_HOME/scalems/verified/``.

Checking an Ed25519 signature loads the ``cryptography`` package (about 25 ms,
as long as the rest of a cache hit). So a signature, once checked (or made by
your own runner), leaves an empty marker file in *your* cache directory,
named by the BLAKE3 of what was checked::

    ~/.cache/scalems/verified/ab/cdef...   = blake3("scalems-store verified v1\\n"
                                                     + key hex + "\\n" + signed message)

A marker says only "this key signed this message", which is true anywhere, so
the cache serves every store. It lies outside every store, where only you
write: no bundle and no other user of a shared store can make one. Deleting
the directory is harmless (signatures are checked again).
"""

from __future__ import annotations

import contextlib
import os

from scalems_store.core.fingerprint import hash_bytes
from scalems_store.trust import keys

VERIFIED = "verified"
_DOMAIN = b"scalems-store verified v1\n"


def _marker(key_hex: str, message: bytes) -> str:
    name = hash_bytes(_DOMAIN + key_hex.encode() + b"\n" + message)
    return os.path.join(keys.cache_dir(), VERIFIED, name[:2], name[2:])


def known(key_hex: str, message: bytes) -> bool:
    """Whether *key_hex*'s signature of *message* was checked here before."""
    return os.path.isfile(_marker(key_hex, message))


def remember(key_hex: str, message: bytes) -> None:
    """Mark *key_hex*'s signature of *message* as checked (quietly nothing if the cache
    directory cannot be written: the signature is checked again next time)."""
    path = _marker(key_hex, message)
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))


def check(key_hex: str, signature_hex: str, message: bytes) -> bool:
    """Whether the signature holds: from the cache, else checked (and then remembered)."""
    if known(key_hex, message):
        return True
    if not keys.verify(key_hex, signature_hex, message):
        return False
    remember(key_hex, message)
    return True
