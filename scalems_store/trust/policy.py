"""Which results a store serves: those a trusted key signed.

The keys a store trusts are your own (always) and those its settings list::

    [trust "<64 hex of an Ed25519 public key>"]
    name = alice@cluster
    added = 2026-12-06T21:40:00+00:00

    [trust]
    unsigned = false

``unsigned = true`` (or ``$SCALEMS_TRUST_UNSIGNED=1``, which
``scalems-call exec --trust-unsigned`` sets for itself and the runs it starts)
serves every result as before signing existed: unsigned ones, and those of keys
the store does not trust. A verdict never unpickles or runs anything: it reads the
``sigs/`` file beside the result and checks the signatures of trusted keys
(:mod:`.verified` remembers a checked one).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import NamedTuple

from scalems_store.core.errors import BadSetting
from scalems_store.store.config import Config, section_name
from scalems_store.store.filestore import FileStore
from scalems_store.store.refs import Signature, is_hex, message
from scalems_store.trust import keys, verified

TRUST = "trust"
UNSIGNED_SETTING = "unsigned"
UNSIGNED_ENV = "SCALEMS_TRUST_UNSIGNED"
TRUSTED, UNTRUSTED, UNSIGNED = "trusted", "untrusted", "unsigned"


class Verdict(NamedTuple):
    """Whether a result may be served, and why."""

    state: str
    """``trusted``, ``untrusted`` (signed, by no key the store trusts) or ``unsigned``."""
    keys: tuple[str, ...]
    """The keys (hex) that signed it: the trusted one that decided, or every signer."""
    served: bool
    """Served: trusted, or any result where unsigned results are trusted."""

    def describe(self) -> str:
        """One phrase for people: ``trusted (signed by you)``, ``untrusted (signed by KEY)``,
        ``unsigned``."""
        if not self.keys:
            return self.state
        mine = keys.own_public()
        names = ", ".join("you" if k == mine else keys.key_text(k) for k in self.keys)
        return f"{self.state} (signed by {names})"


class Listed(NamedTuple):
    """A key the store's settings trust."""

    key: str
    name: str
    added: str


class Trust:
    """The trust of one store: its listed keys, yours, and its ``unsigned`` setting.

    The settings are read once, on the first verdict that needs them: a cache hit of
    a result you signed reads neither them nor the ``cryptography`` package.
    """

    def __init__(self, store: FileStore) -> None:
        self.store = store
        self._listed: dict[str, Listed] | None = None
        self._unsigned: bool | None = None

    def listed(self) -> dict[str, Listed]:
        """The keys the store's settings trust, by hex."""
        if self._listed is None:
            config = Config(self.store.root)
            self._listed = {
                sub: Listed(sub, values.get("name", ""), values.get("added", ""))
                for sub, values in config.sections(TRUST)
                if _is_key(sub)
            }
            self._unsigned = _true(config.get(TRUST, UNSIGNED_SETTING))
        return self._listed

    def unsigned(self) -> bool:
        """Whether every result is served, signed or not (the way out, by choice)."""
        if os.environ.get(UNSIGNED_ENV, "") not in ("", "0"):
            return True
        self.listed()
        return bool(self._unsigned)

    def trusts(self, key_hex: str) -> bool:
        """Whether signatures by *key_hex* are believed here."""
        return key_hex == keys.own_public() or key_hex in self.listed()

    def judge(self, result_fp: str, call_fp: str) -> Verdict:
        """The verdict on result *result_fp* of call *call_fp* (as its record says)."""
        signatures = self.store.signatures(result_fp)
        signed = message(result_fp, call_fp)
        mine = keys.own_public()
        # your own first: a hit of what you ran needs no settings and no cryptography
        for sig in sorted(signatures, key=lambda s: s.key != mine):
            if self.trusts(sig.key) and verified.check(sig.key, sig.signature, signed):
                return Verdict(TRUSTED, (sig.key,), True)
        signers = tuple(dict.fromkeys(s.key for s in signatures if _holds(s, signed)))
        state = UNTRUSTED if signers else UNSIGNED
        return Verdict(state, signers, self.unsigned())

    def serves(self, result_fp: str, call_fp: str) -> bool:
        """Whether result *result_fp* of call *call_fp* may be served, decoded or used."""
        return self.judge(result_fp, call_fp).served


def _holds(sig: Signature, signed: bytes) -> bool:
    """Whether an untrusted signer's signature holds (else it is as good as none)."""
    return verified.check(sig.key, sig.signature, signed)


def _is_key(text: str) -> bool:
    return is_hex(text, 64)


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


_TRUSTS: weakref.WeakKeyDictionary[FileStore, Trust] = weakref.WeakKeyDictionary()


def of(store: FileStore) -> Trust:
    """The :class:`Trust` of *store* (one for each open store object)."""
    found = _TRUSTS.get(store)
    if found is None:
        found = _TRUSTS[store] = Trust(store)
    return found


def sign(store: FileStore, result_fp: str, call_fp: str) -> str:
    """Sign result *result_fp* of call *call_fp* with your key (made on first use), record
    the signature beside it, and remember it as checked; return your key (hex)."""
    signed = message(result_fp, call_fp)
    key, signature = keys.sign(signed)
    store.add_signatures(result_fp, [Signature(key, signature)])
    verified.remember(key, signed)
    return key


def add(store: FileStore, key_text: str, name: str = "") -> str:
    """Trust *key_text* in *store*; return its hex."""
    key = keys.parse_key(key_text)
    added = datetime.now(UTC).isoformat(timespec="seconds")
    Config(store.root).update(section_name(TRUST, key), {"name": name or "-", "added": added})
    of(store)._listed = None
    return key


def remove(store: FileStore, text: str) -> list[str]:
    """Stop trusting the key *text* (a key, or the name it was added with); return the
    keys removed.

    Raises:
        BadSetting: no such key is trusted here, or *text* names your own key.
    """
    trust = of(store)
    wanted = _wanted(trust, text)
    for key in wanted:
        Config(store.root).remove_section(section_name(TRUST, key))
    trust._listed = None
    return wanted


def _wanted(trust: Trust, text: str) -> list[str]:
    listed = trust.listed()
    try:
        key = keys.parse_key(text)
    except BadSetting:
        named = [k for k, item in listed.items() if item.name == text]
        if not named:
            raise BadSetting(
                f"no trusted key is named {text!r} (see 'scalems-store trust list')"
            ) from None
        return named
    if key == keys.own_public() and key not in listed:
        raise BadSetting(f"{keys.key_text(key)} is your own key: it is always trusted")
    if key not in listed:
        raise BadSetting(f"{keys.key_text(key)} is not trusted here")
    return [key]


def set_unsigned(store: FileStore, value: bool) -> None:
    """Serve unsigned and untrusted results (the old behaviour) or not."""
    Config(store.root).update(TRUST, {UNSIGNED_SETTING: "true" if value else None})
    of(store)._listed = None


def entries(store: FileStore) -> Iterator[Listed]:
    """Your own key first (if you have one yet), then the keys the settings list."""
    mine = keys.own_public()
    if mine is not None:
        yield Listed(mine, "you", "")
    for key, item in sorted(of(store).listed().items(), key=lambda kv: kv[1].name):
        if key != mine:
            yield item


def unvouched(store: FileStore) -> Iterator[tuple[str, str]]:
    """``(result, call)`` of each result recorded for a call with nothing beside it: no
    signature and no ``imported`` mark, so recorded here before signing existed."""
    from scalems_store.core.errors import StoreError
    from scalems_store.objects import content

    seen: set[str] = set()
    for ref in store.iter_refs(content.CALLS):
        for fp in ref.values:
            if fp in seen or fp not in store or store.sigs.read_bytes(fp) is not None:
                continue
            seen.add(fp)
            try:
                record = content.decode(store.read_bytes(fp), content.RESULT)
            except (StoreError, KeyError):
                continue  # not a result (verify says so): nothing to vouch for
            if record.get("call") == ref.key:
                yield fp, ref.key
