"""Where things live inside a store root: the only place that slices hex strings."""

from __future__ import annotations

import json
import os
from typing import Any

from scalems_store.core.errors import InvalidFingerprint

HEX_DIGITS = frozenset("0123456789abcdef")
FINGERPRINT_LENGTH = 64
MIN_PREFIX = 4
URI_SCHEME = "blake3:"

STORE_FILE = "store.json"
OBJECTS = "objects"
META = "meta"
REFS = "refs"
LABELS = os.path.join(REFS, "labels")
TMP = "tmp"
INDEX = "index.sqlite"
CONFIG = "config"
"""The settings file (:mod:`scalems_store.store.config`)."""
SIGS = "sigs"
"""Signatures beside results (:class:`scalems_store.store.refs.SigDir`)."""


def is_fingerprint(text: str) -> bool:
    """Tell whether *text* is a full fingerprint: 64 lowercase hex digits."""
    return len(text) == FINGERPRINT_LENGTH and HEX_DIGITS.issuperset(text)


def normalize(text: str) -> str:
    """Return the hex digits of a fingerprint, ``blake3:`` URI or prefix, lowercased.

    Raises:
        InvalidFingerprint: *text* is not hex, is longer than a fingerprint, or is
            a prefix shorter than 4 digits.
    """
    hexpart = text[len(URI_SCHEME) :] if text.startswith(URI_SCHEME) else text
    hexpart = hexpart.strip().lower()
    if (
        not hexpart
        or not HEX_DIGITS.issuperset(hexpart)
        or len(hexpart) > FINGERPRINT_LENGTH
        or len(hexpart) < MIN_PREFIX
    ):
        raise InvalidFingerprint(
            f"not a fingerprint: {text[:90]!r}{'...' if len(text) > 90 else ''} "
            "(expected 64 hex digits, 'blake3:<hex>', "
            f"or a prefix of at least {MIN_PREFIX} hex digits)"
        )
    return hexpart


def to_uri(fingerprint: str) -> str:
    """Return the location-independent URI of an object: ``blake3:<hex>``."""
    return URI_SCHEME + fingerprint


def oid_to_path(fingerprint: str) -> str:
    """Return the path of an object relative to its fan-out root: ``ab/cdef...``."""
    return os.path.join(fingerprint[:2], fingerprint[2:])


def path_to_oid(path: str) -> str:
    """Inverse of :func:`oid_to_path`: read a fingerprint back from ``.../ab/cdef...``.

    Raises:
        InvalidFingerprint: the path is not a fan-out object path.
    """
    head, name = os.path.split(os.fspath(path))
    fanout = os.path.basename(head)
    fingerprint = fanout + name
    if len(fanout) != 2 or not is_fingerprint(fingerprint):
        raise InvalidFingerprint(f"not an object path: {path!r}")
    return fingerprint


def canonical(value: Any) -> bytes:
    """Encode *value* as canonical JSON (sorted keys, compact, UTF-8): the same value
    always gives the same bytes, so records hash the same wherever they are written."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
