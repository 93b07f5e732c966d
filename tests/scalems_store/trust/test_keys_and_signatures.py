"""Keys, signature files and the trust list: formats pinned, files kept where they belong."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from scalems_store import FileStore
from scalems_store.store.refs import DOMAIN, Signature, message, parse
from scalems_store.trust import keys, policy, verified
from tests.conftest import RunCli

# Golden vector: the Ed25519 key whose 32-byte seed is 00 01 02 ... 1f, signing the message
# of result ab..ab of call cd..cd. Ed25519 signatures are deterministic (RFC 8032).
SEED = bytes(range(32))
GOLDEN_KEY = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
GOLDEN_MESSAGE = (
    b"scalems-store result signature v1\n"
    b"result blake3:" + b"ab" * 32 + b"\n"
    b"call blake3:" + b"cd" * 32 + b"\n"
)
GOLDEN_SIGNATURE = (
    "cda41655501d46a9a045dbe786b139b08d5ed936373858680451477dc4621472"
    "548bfeedfc3e92587b49504d5405a48f9b838ef3fb12ab10e5b9c4feef863902"
)

hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
hex128 = st.text("0123456789abcdef", min_size=128, max_size=128)
signatures = st.lists(st.builds(Signature, hex64, hex128), max_size=5)


def test_the_signed_message_and_a_signature_are_pinned() -> None:
    """The message signed for a result is fixed byte for byte, and so is a signature of it
    by a known key: a change to either fails here, loudly."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assert message("ab" * 32, "cd" * 32) == GOLDEN_MESSAGE
    assert GOLDEN_MESSAGE.startswith(DOMAIN)
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    assert key.sign(GOLDEN_MESSAGE).hex() == GOLDEN_SIGNATURE
    assert keys.verify(GOLDEN_KEY, GOLDEN_SIGNATURE, GOLDEN_MESSAGE)
    assert not keys.verify(GOLDEN_KEY, GOLDEN_SIGNATURE, message("ab" * 32, "ab" * 32))
    assert not keys.verify(GOLDEN_KEY, "00" * 64, GOLDEN_MESSAGE)


def test_a_signature_file_is_pinned(store: FileStore) -> None:
    """``sigs/ab/<result>`` holds sorted lines: each signature once, ``imported`` once."""
    result = "ab" * 32
    store.add_signatures(result, [Signature(GOLDEN_KEY, GOLDEN_SIGNATURE)], imported=True)
    store.add_signatures(result, [Signature(GOLDEN_KEY, GOLDEN_SIGNATURE)])
    path = Path(store.root, "sigs", "ab", "ab" * 31)
    assert path.read_bytes() == (f"ed25519 {GOLDEN_KEY} {GOLDEN_SIGNATURE}\nimported\n".encode())
    assert store.signatures(result) == [Signature(GOLDEN_KEY, GOLDEN_SIGNATURE)]


@given(first=signatures, second=signatures)
def test_adding_signatures_in_any_order_writes_the_same_file(
    tmp_path_factory: object, first: list[Signature], second: list[Signature]
) -> None:
    """The file is the set of its lines, sorted: the order signatures come in never shows."""
    import tempfile

    contents = []
    for order in ((first, second), (second, first)):
        with tempfile.TemporaryDirectory() as root, FileStore(root) as store:
            for batch in order:
                store.add_signatures("ef" * 32, batch)
            contents.append(store.sigs.read_bytes("ef" * 32))
            assert set(store.signatures("ef" * 32)) == set(first) | set(second)
    assert contents[0] == contents[1]


@given(st.binary(max_size=600))
def test_reading_any_bytes_as_a_signature_file_never_fails(data: bytes) -> None:
    """A signature file of any bytes parses; only well-formed lines count as signatures."""
    parsed = parse(data)
    for sig in parsed.signatures:
        assert sig.line().encode() in data


def test_a_fifo_in_place_of_a_signature_file_does_not_block(store: FileStore) -> None:
    """A FIFO where a signature file should be reads as no signatures, at once."""
    path = Path(store.sigs.path("ab" * 32))
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    assert store.signatures("ab" * 32) == []


def test_the_key_pair_is_made_once_outside_the_store(store: FileStore, tmp_path: Path) -> None:
    """The first signature makes the key pair in $XDG_CONFIG_HOME/scalems (private key 0600,
    directory 0700); later ones use it; nothing of it is in the store."""
    assert keys.own_public() is None
    first = keys.sign(b"x")[0]
    home = tmp_path / "xdg-config" / "scalems"
    assert keys.config_dir() == str(home)
    assert stat.S_IMODE(os.stat(home / "ed25519.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert (home / "ed25519.pub").read_text() == f"ed25519:{first}\n"
    assert keys.sign(b"y")[0] == first == keys.own_public()
    assert not any("ed25519" in name for _, _, names in os.walk(store.root) for name in names)


def test_processes_making_the_key_at_once_end_with_one(tmp_path: Path) -> None:
    """Four processes signing for the first time at once all sign with the same key."""
    program = "from scalems_store.trust import keys; print(keys.sign(b'x')[0])"
    procs = [
        subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE) for _ in range(4)
    ]
    found = {proc.communicate(timeout=60)[0] for proc in procs}
    assert len(found) == 1 and keys.own_public() == found.pop().decode().strip()


def test_a_checked_signature_is_remembered_outside_the_store(tmp_path: Path) -> None:
    """A signature that holds leaves a marker in $XDG_CACHE_HOME/scalems/verified; one that
    does not hold leaves none."""
    assert verified.check(GOLDEN_KEY, GOLDEN_SIGNATURE, GOLDEN_MESSAGE)
    assert verified.known(GOLDEN_KEY, GOLDEN_MESSAGE)
    assert str(tmp_path / "xdg-cache") in verified._marker(GOLDEN_KEY, GOLDEN_MESSAGE)
    wrong = message("ab" * 32, "ef" * 32)
    assert not verified.check(GOLDEN_KEY, GOLDEN_SIGNATURE, wrong)
    assert not verified.known(GOLDEN_KEY, wrong)


def test_key_and_trust_commands(store: FileStore, run_cli: RunCli) -> None:
    """'key' prints your key; 'trust add/list/remove' keep the store's list in its settings
    file; your own key is listed first and cannot be removed; bad keys are one line."""
    root = store.root
    mine = run_cli("scalems-store", "key").stdout.decode().strip()
    assert mine.startswith("ed25519:") and len(mine) == 8 + 64
    assert run_cli("scalems-store", "key").stdout.decode().strip() == mine
    other = "ed25519:" + GOLDEN_KEY
    assert run_cli("scalems-store", "--store", root, "trust", "add", other, "alice").returncode == 0
    assert f'[trust "{GOLDEN_KEY}"]' in Path(root, "config").read_text()
    listed = run_cli("scalems-store", "--store", root, "trust", "list").stdout.decode()
    assert listed.splitlines() == [f"{mine}  you", f"{other}  alice"]
    own = run_cli("scalems-store", "--store", root, "trust", "remove", mine)
    assert own.returncode == 1 and b"your own key" in own.stderr
    bad = run_cli("scalems-store", "--store", root, "trust", "add", "ed25519:123")
    assert (
        bad.returncode == 1 and bad.stderr.count(b"\n") == 1 and b"not a public key" in bad.stderr
    )
    gone = run_cli("scalems-store", "--store", root, "trust", "remove", "alice")
    assert gone.returncode == 0
    assert run_cli("scalems-store", "--store", root, "trust", "list").stdout.decode().split() == [
        mine,
        "you",
    ]


def test_trust_of_a_store_sees_its_settings(store: FileStore) -> None:
    """A key added to the settings is trusted; removed, it is not; unsigned results are
    served only when the setting or the environment says so."""
    trust = policy.of(store)
    assert not trust.trusts(GOLDEN_KEY)
    policy.add(store, GOLDEN_KEY, "g")
    assert trust.trusts(GOLDEN_KEY)
    policy.remove(store, GOLDEN_KEY)
    assert not trust.trusts(GOLDEN_KEY) and not trust.unsigned()
    policy.set_unsigned(store, True)
    assert trust.unsigned()
    policy.set_unsigned(store, False)
    assert not trust.unsigned()


def test_gc_removes_the_signatures_of_the_results_it_removes(
    store: FileStore, run_cli: RunCli
) -> None:
    """A result gc removes takes its signature file with it; a kept result keeps its own."""
    from scalems_call import pack, run
    from tests.scalems_call import funcs

    gone = pack(funcs.add, (1, 2), store=store)
    kept = pack(funcs.add, (3, 4), store=store)
    dropped, held = run(gone, store=store).fingerprint, run(kept, store=store).fingerprint
    assert dropped is not None and held is not None
    assert os.path.exists(store.sigs.path(dropped)) and os.path.exists(store.sigs.path(held))
    run_cli("scalems-call", "--store", store.root, "forget", gone)
    run_cli("scalems-store", "--store", store.root, "gc", "--grace", "0")
    assert dropped not in store and not os.path.exists(store.sigs.path(dropped))
    assert held in store and os.path.exists(store.sigs.path(held))
