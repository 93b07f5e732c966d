"""``lookup``: a remote cache hit's question (closure and result records) in one exchange
over SSH, checked as a pack is; an older far side is asked in two."""

from __future__ import annotations

import base64
import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalems_store import FileStore, FingerprintMismatch, RemoteError
from scalems_store.core.errors import StoreError
from scalems_store.remote import lookup, serve, sync, wire
from scalems_store.remote.peer import Closure, LocalPeer
from scalems_store.remote.ssh import SshPeer
from tests.conftest import MakeStore
from tests.scalems_store.remote.conftest import ran_call
from tests.scalems_store.remote.servers import Sshd
from tests.scalems_store.remote.test_ssh_remote import remote_at


def ask(store: FileStore, names: list[str]) -> dict[str, Any]:
    """The far side's reply to a lookup of *names* in *store*, as serve gives it."""
    with LocalPeer(FileStore(store.root)) as peer:
        request = {"op": "lookup", "names": names, "labels": False}
        return serve.answer(peer, request, None, None)  # type: ignore[arg-type]


def test_lookup_answers_the_closure_and_the_signed_records(
    make_store: MakeStore, tmp_path: Path
) -> None:
    """The reply holds the call's closure and its result record with its signature; published
    here, the record is the same object with the same signature, and nothing else came."""
    far, here = make_store("far"), make_store("here")
    call, result = ran_call(far, tmp_path)
    reply = ask(far, [call[:12]])
    assert list(reply["records"]) == [result]
    entries, refs = wire.read_manifest(reply["manifest"])
    lookup._publish(here, Closure(entries, refs, reply["sizes"], {}), reply["records"], "far")
    assert here.read_bytes(result) == far.read_bytes(result)
    assert here.signatures(result) == far.signatures(result) != []
    assert list(here.iter_fingerprints()) == [result]


def test_a_tampered_record_is_refused_whole(make_store: MakeStore, tmp_path: Path) -> None:
    """A record whose bytes are not its name is refused, and nothing is published."""
    far, here = make_store("far"), make_store("here")
    call, result = ran_call(far, tmp_path)
    reply = ask(far, [call])
    data = base64.b64decode(reply["records"][result]["data"]).replace(b"success", b"succesS")
    reply["records"][result]["data"] = base64.b64encode(data).decode()
    entries, refs = wire.read_manifest(reply["manifest"])
    with pytest.raises(FingerprintMismatch):
        lookup._publish(here, Closure(entries, refs, reply["sizes"], {}), reply["records"], "far")
    assert list(here.iter_fingerprints()) == []
    with pytest.raises(RemoteError, match="not a result"):
        records = {call: reply["records"][result]}
        lookup._publish(here, Closure(entries, refs, reply["sizes"], {}), records, "far")


def test_over_ssh_one_exchange_and_an_older_far_side_two(
    sshd_server: Sshd,
    make_store: MakeStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over SSH the closure and the record come in one request; a far side that does not
    know lookup gets the closure request instead, and the record comes by get."""
    monkeypatch.setenv("SCALEMS_SSH_COMMAND", sshd_server.ssh_command)
    local = make_store("local")
    call, result = ran_call(local, tmp_path)
    remote = remote_at(sshd_server, tmp_path / "far")
    with sync.open_peer(remote, create=True) as peer:
        sync.push(local, peer, sync.plan_push(local, peer, [call], False))
    asked: list[str] = []
    original = SshPeer._ask

    def counting(self: SshPeer, request: dict[str, Any], doing: str) -> dict[str, Any]:
        asked.append(request["op"])
        return original(self, request, doing)

    monkeypatch.setattr(SshPeer, "_ask", counting)
    here = make_store("here")
    with sync.open_peer(remote) as peer:
        closure = lookup.closure_with_records(here, peer, [call], False)
    assert asked == ["lookup"] and result in here and here.signatures(result)
    assert {e.fingerprint for e in closure.entries} >= {call, result}

    def older(self: SshPeer, request: dict[str, Any], doing: str) -> dict[str, Any]:
        if request["op"] == "lookup":  # what serve answers to a request it does not know
            asked.append("lookup")
            raise RemoteError("far: unknown request 'lookup'")
        return counting(self, request, doing)

    monkeypatch.setattr(SshPeer, "_ask", older)
    asked.clear()
    again = make_store("again")
    with sync.open_peer(remote) as peer:
        closure = lookup.closure_with_records(again, peer, [call], False)
    assert asked == ["lookup", "closure"] and result not in again
    assert {e.fingerprint for e in closure.entries} >= {call, result}


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70) | st.just("a" * 64),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (the value itself first)."""
    found = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*at, i))
    return found


@pytest.fixture(scope="module")
def good_reply(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A lookup reply of a far store with one signed result."""
    where = tmp_path_factory.mktemp("far")
    far = FileStore(where / "store", create=True)
    call, _ = ran_call(far, where)
    return ask(far, [call])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), value=_values)
def test_any_lookup_reply_is_read_or_refused_in_one_line(
    good_reply: dict[str, Any], data: st.DataObject, value: Any
) -> None:
    """A lookup reply with any one place of it replaced by any JSON value (a far side that
    lies): its closure, or a StoreError of one line with nothing published (a signature
    that was not a JSON object raised a TypeError, a traceback)."""
    reply = copy.deepcopy(good_reply)
    place = data.draw(st.sampled_from(_paths(reply)))
    if place:
        *parents, last = place
        holder = reply
        for key in parents:
            holder = holder[key]
        holder[last] = value
    else:
        reply = value if isinstance(value, dict) else {"reply": value}
    with tempfile.TemporaryDirectory(dir=_scratch()) as scratch:
        here = FileStore(Path(scratch) / "here", create=True, durable=False)
        try:
            found = lookup.read_reply(here, reply, "far")
        except StoreError as exc:
            assert "\n" not in str(exc)
            assert list(here.iter_fingerprints()) == []
            return
        assert set(here.iter_fingerprints()) <= {e.fingerprint for e in found.entries}


def _scratch() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") else None
