"""The framed exchange of SSH remotes: streams round-trip, and outside bytes never get
past the checks (fuzzed)."""

from __future__ import annotations

import contextlib
import io
import json
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalems_store import FileStore, StoreError, verify
from scalems_store.remote import wire
from scalems_store.remote.serve import serve
from tests.conftest import RunCli


@given(st.lists(st.binary(max_size=3000), max_size=20), st.integers(1, 5000))
def test_a_stream_round_trips_in_frames(parts: list[bytes], step: int) -> None:
    """Whatever is written to a StreamWriter in any pieces, a StreamReader reads back, in
    any read sizes, then b"" at its end; the next frame is left for the next reader."""
    out = io.BytesIO()
    writer = wire.StreamWriter(out)
    for part in parts:
        writer.write(part)
    writer.end()
    wire.send_message(out, {"after": True})
    out.seek(0)
    reader = wire.StreamReader(out, "test")
    got = b""
    while chunk := reader.read(step):
        got += chunk
    assert got == b"".join(parts)
    assert wire.receive_message(out, "test") == {"after": True}


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


requests = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda op, extra: _frame(json.dumps({"op": op, **extra}).encode()),
        st.sampled_from(["have", "closure", "put", "get", "update", "settled", "lookup", "nope"]),
        st.dictionaries(
            st.sampled_from(["fingerprints", "names", "labels", "manifest", "refs", "zzz"]),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=70),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3)
                ),
                max_leaves=8,
            ),
        ),
    ),
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(requests, max_size=4))
def test_the_server_refuses_bad_bytes_cleanly(tmp_path: Path, chunks: list[bytes]) -> None:
    """Any bytes sent to ``serve --stdio`` end in error replies or one StoreError (never
    another exception), and the store it serves stays intact."""
    store = FileStore(tmp_path / "s")
    known = store.add_bytes(b"kept")
    store.set_label("kept", known)
    out = io.BytesIO()
    with contextlib.suppress(StoreError):
        serve(store.root, False, io.BytesIO(b"".join(chunks)), out)
    out.seek(0)
    assert wire.receive_message(out, "test") == wire.HELLO
    assert verify(store).ok and store.labels() == {"kept": known}


def test_settled_says_only_what_the_far_side_holds(tmp_path: Path) -> None:
    """A 'settled' request: a small ref is settled where the far side holds at least its
    values; a large one (asked by digest) only where it holds exactly those; a label where
    it names the same object."""
    from scalems_store.remote.peer import LocalPeer
    from scalems_store.remote.serve import answer
    from scalems_store.store.refs import Ref

    store = FileStore(tmp_path / "s")
    key = store.add_bytes(b"key")
    many = [store.add_bytes(b"%d" % i) for i in range(100)]
    store.set_ref("bench", key, many[:99])
    store.set_ref("small", key, many[:2])
    store.set_label("x", key)
    refs = [
        Ref("bench", key, many[:99]),  # by digest: the same values
        Ref("bench", key, many),  # by digest: one more here than there
        Ref("small", key, many[:1]),  # fewer than there
        Ref("small", key, many[:3]),  # one more than there
    ]
    request = {"op": "settled", "refs": wire.ref_summaries(refs), "labels": {"x": key, "y": key}}
    reply = answer(LocalPeer(store), request, io.BytesIO(), io.BytesIO())
    assert reply == {"refs": [0, 2], "labels": ["x"]}


def test_serve_answers_malformed_lookups_in_one_line_and_goes_on(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """``serve --stdio`` given lookups with missing, unknown or absurd fields (a name of a
    MiB, names not a list) answers each with a short one-line error and answers the next
    request; bad JSON, or a frame saying 4 GiB, ends it with one line on stderr (no
    traceback, no hang). A name of a MiB was echoed whole in its error."""
    store = FileStore(tmp_path / "s", create=True)
    good = {"op": "lookup", "names": [], "labels": False}
    bad = [
        {"op": "lookup"},
        {"op": "lookup", "names": None, "labels": True},
        {"op": "lookup", "names": "abcd", "labels": True},
        {"op": "lookup", "names": [{"a": 1}], "labels": True},
        {"op": "lookup", "names": ["x" * (1 << 20)], "labels": True},
        {"op": "lookup", "names": ["0" * 64], "labels": True},
    ]
    frames = [_frame(json.dumps(r).encode()) for r in [*bad, {**good, "unknown": [1] * 9}]]
    for ending in (b"", _frame(b"{not json"), struct.pack(">I", 0xFFFFFFFF)):
        done = run_cli(
            "scalems-store", "serve", "--stdio", str(store.root),
            input=b"".join(frames) + ending, timeout=60,
        )  # fmt: skip
        out = io.BytesIO(done.stdout)
        assert wire.receive_message(out, "test") == wire.HELLO
        for _ in bad:
            reply = wire.receive_message(out, "test")
            assert set(reply) == {"error", "type"}, reply
            assert "\n" not in reply["error"] and len(reply["error"]) < 300
        assert wire.receive_message(out, "test")["records"] == {}  # an unknown field is ignored
        assert wire.receive(out, "test") is None
        lines = done.stderr.decode().splitlines()
        if ending:
            assert done.returncode != 0 and len(lines) == 1 and "RemoteError" in lines[0]
        else:
            assert (done.returncode, lines) == (0, [])
        assert b"Traceback" not in done.stderr
    assert verify(store).ok
