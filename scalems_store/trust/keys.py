"""Your key pair: Ed25519, made on first use, kept in ``$XDG_CONFIG_HOME/scalems/``.

Two files, outside every store (a store is shared and copied; a private key
must not be)::

    ~/.config/scalems/ed25519.key   the private key, PEM (PKCS #8), mode 0600
    ~/.config/scalems/ed25519.pub   the public key as text: ed25519:<64 hex>

``$XDG_CONFIG_HOME`` replaces ``~/.config`` when set. The public key is read
from its own file, so that checking who signed a result needs no cryptography;
signing loads the ``cryptography`` package. Two processes making the key at
once end with one key: it is published with ``os.link``, which only one wins.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import TYPE_CHECKING

from scalems_store.core.errors import BadSetting, StoreError
from scalems_store.core.fsutil import fsync_dir, new_temp, replace_atomic, write_all
from scalems_store.store.refs import ED25519, is_hex

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PRIVATE = "ed25519.key"
PUBLIC = "ed25519.pub"
PREFIX = ED25519 + ":"


def _xdg(variable: str, default: str) -> str:
    base = os.environ.get(variable, "")
    if not os.path.isabs(base):  # unset, empty or relative: the spec says to ignore it
        base = os.path.join(os.path.expanduser("~"), default)
    return os.path.join(base, "scalems")


def config_dir() -> str:
    """``$XDG_CONFIG_HOME/scalems`` (``~/.config/scalems`` by default): where your key lives."""
    return _xdg("XDG_CONFIG_HOME", ".config")


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/scalems`` (``~/.cache/scalems`` by default)."""
    return _xdg("XDG_CACHE_HOME", ".cache")


def key_text(key_hex: str) -> str:
    """How a public key is written for people: ``ed25519:<64 hex>``."""
    return PREFIX + key_hex


def parse_key(text: str) -> str:
    """The 64 hex digits of a public key written as ``ed25519:<hex>`` (or bare hex).

    Raises:
        BadSetting: *text* is not such a key.
    """
    hexed = text.strip().lower().removeprefix(PREFIX)
    if not is_hex(hexed, 64):
        raise BadSetting(f"not a public key: {text[:80]!r} (expected ed25519:<64 hex digits>)")
    return hexed


_KNOWN: dict[str, str] = {}
"""The public key of each key directory read so far (a key, once made, stays)."""


def own_public() -> str | None:
    """Your public key (64 hex), read from ``ed25519.pub``; None while you have none."""
    directory = config_dir()
    if directory not in _KNOWN:
        found = _read_public(directory)
        if found is None:
            return None
        _KNOWN[directory] = found
    return _KNOWN[directory]


def _read_public(directory: str) -> str | None:
    try:
        with open(os.path.join(directory, PUBLIC), encoding="ascii") as stream:
            return parse_key(stream.read(200))
    except (OSError, UnicodeDecodeError, BadSetting):
        if os.path.exists(os.path.join(directory, PRIVATE)):  # the .pub was lost: make it again
            return _write_public(directory, _load(directory))
        return None


def private_key() -> Ed25519PrivateKey:
    """Your private key, made (with its public half) on first use.

    Raises:
        BadSetting: the key file cannot be read or written.
    """
    return _private_key(config_dir())


@functools.lru_cache(maxsize=4)
def _private_key(directory: str) -> Ed25519PrivateKey:
    path = os.path.join(directory, PRIVATE)
    if not os.path.exists(path):
        _make(directory)
    key = _load(directory)
    if _read_public(directory) is None:
        _write_public(directory, key)
    return key


def _make(directory: str) -> None:
    """Make a new key pair in *directory*; if another process made one first, keep theirs."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, temp = new_temp(directory, ".key-", 0o600, lock=False)
        try:
            os.fchmod(fd, 0o600)
            write_all(fd, pem)
            os.fsync(fd)
            with contextlib.suppress(FileExistsError):  # made meanwhile: theirs stands
                os.link(temp, os.path.join(directory, PRIVATE))
            fsync_dir(directory)
        finally:
            os.close(fd)
            os.unlink(temp)
    except (OSError, StoreError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadSetting(f"cannot make your key pair in {directory}: {reason}") from exc


def _load(directory: str) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = os.path.join(directory, PRIVATE)
    try:
        with open(path, "rb") as stream:
            key = serialization.load_pem_private_key(stream.read(1 << 16), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BadSetting(f"cannot read your private key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BadSetting(f"{path} is not an Ed25519 private key")
    return key


def _write_public(directory: str, key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    hexed = (
        key.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )
    with contextlib.suppress(StoreError):  # the key still signs; the .pub is made next time
        replace_atomic(
            os.path.join(directory, PUBLIC),
            (key_text(hexed) + "\n").encode(),
            directory,
            durable=True,
        )
    return hexed


def sign(data: bytes) -> tuple[str, str]:
    """Sign *data* with your key: ``(public key hex, signature hex)``."""
    key = private_key()
    public = own_public() or _write_public(config_dir(), key)
    return public, key.sign(data).hex()


def verify(key_hex: str, signature_hex: str, data: bytes) -> bool:
    """Whether *signature_hex* is a signature of *data* by *key_hex* (loads cryptography)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex)).verify(
            bytes.fromhex(signature_hex), data
        )
    except (InvalidSignature, ValueError):
        return False
    return True
