"""The files of a bucket (layout 2): golden vectors, round trips, and fuzzing of every
parser of bytes a bucket (or an HTTP server, or the far side of SSH) hands us."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scalems_store import RemoteError
from scalems_store.core.fingerprint import hash_bytes
from scalems_store.remote import bucket, wire
from scalems_store.store.refs import Ref, Signature

A, B, C = "a" * 64, "b" * 64, "c" * 64
SIG = Signature("e" * 64, "f" * 128)

GOLDEN_INDEX = "81ce494eb22013a111c38a99d79381b628eac484d90a3b5f5d3fc61687e389f3"
GOLDEN_REFLOG = (
    "01765000000000000000-064d12962aee3a63a3c119282495c6cdace5d1242e0515921e8b53f631f6430c.json"
)


def test_a_pack_index_is_pinned() -> None:
    """The index of layout 2 is byte for byte what this vector says (a change is a new
    format version, never a silent one), and reads back as written."""
    name, data = bucket.encode_index(
        [(A, "blob", 0, 5, ()), (B, "result", 5, 7, (A, C))], "d" * 64, 12, {B: [SIG]}
    )
    assert name == GOLDEN_INDEX == hash_bytes(data)
    assert data.startswith(b'{"format":"scalems-pack-index","objects":[["' + A.encode())
    assert data.endswith(b'"]],"version":1}')
    index = bucket.parse_index(name, data, "here")
    assert index.pack_hash == "d" * 64 and index.pack_size == 12
    assert index.objects[B] == bucket.Located(name, 5, 7, "result", (A, C))
    assert index.signatures == {B: [SIG]}


def test_a_ref_log_is_pinned_and_merged_newest_label_last() -> None:
    """A ref log is pinned likewise; logs merge as a union of a ref's values (first pushed
    first) and the newest log's label, whatever order they are listed in."""
    name, data = bucket.encode_reflog(
        [Ref("calls", C, [B])], {"job": C}, {B: [SIG]}, 1_765_000_000_000_000_000
    )
    assert name == GOLDEN_REFLOG
    first = bucket.parse_reflog(name, data, "here")
    assert first.refs == [Ref("calls", C, [B])] and first.labels == {"job": C}
    later_name, later_data = bucket.encode_reflog(
        [Ref("calls", C, [A, B])], {"job": A}, {}, 1_765_000_000_000_000_001
    )
    later = bucket.parse_reflog(later_name, later_data, "here")
    refs, labels, sigs = bucket.merge_refs([later, first])
    assert refs == {("calls", C): [B, A]} and labels == {"job": A} and sigs == {B: [SIG]}


def test_info_round_trips() -> None:
    data = bucket.encode_info(["1" * 64], [GOLDEN_REFLOG])
    assert bucket.parse_info(data, "here") == (["1" * 64], [GOLDEN_REFLOG])


def test_a_file_that_does_not_match_its_name_is_refused() -> None:
    name, data = bucket.encode_index([(A, "blob", 0, 5, ())], "d" * 64, 5, {})
    for parse in (bucket.parse_index, bucket.parse_reflog):
        try:
            parse(name, data.replace(b"blob", b"tree"), "here")
        except RemoteError as exc:
            assert "does not match its name" in str(exc)
        else:
            raise AssertionError("accepted")


def _refused(call: Any) -> None:
    try:
        call()
    except RemoteError as exc:
        assert "\n" not in str(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70) | st.sampled_from([A, B]),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=30,
)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_as_bucket_files_are_refused_in_one_line(data: bytes) -> None:
    """Bytes from a bucket are never trusted: each parser says no in one RemoteError line
    (or reads them), never anything else."""
    name = hash_bytes(data)
    _refused(lambda: bucket.parse_index(name, data, "here"))
    _refused(lambda: bucket.parse_reflog(f"{1:020d}-{name}.json", data, "here"))
    _refused(lambda: bucket.parse_info(data, "here"))


@settings(max_examples=300)
@given(
    st.fixed_dictionaries(
        {"format": st.just("scalems-pack-index"), "version": st.just(1)},
        optional={
            "pack": json_values | st.fixed_dictionaries({"blake3": st.just("d" * 64)}),
            "objects": st.lists(
                st.lists(json_values, max_size=6)
                | st.tuples(
                    st.sampled_from([A, B, "x"]),
                    st.sampled_from(["blob", "tree", "result", "zz"]),
                    st.integers(-2, 20),
                    st.integers(-2, 20),
                    st.lists(st.sampled_from([A, C, "nope"]), max_size=3),
                ).map(list),
                max_size=4,
            ),
            "signatures": json_values,
        },
    ),
    json_values,
)
def test_structured_indexes_and_ref_logs_are_refused_in_one_line(
    value: dict[str, Any], other: Any
) -> None:
    """Well-formed JSON of the right format with wrong parts inside: refused in one line."""
    data = json.dumps(value).encode()
    name = hash_bytes(data)
    _refused(lambda: bucket.parse_index(name, data, "here"))
    log = json.dumps({**bucket.REFLOG_FORMAT, "refs": other, "labels": other}).encode()
    _refused(lambda: bucket.parse_reflog(f"{1:020d}-{hash_bytes(log)}.json", log, "here"))
    info = json.dumps({**bucket.INFO_FORMAT, "indexes": other, "reflog": other}).encode()
    _refused(lambda: bucket.parse_info(info, "here"))


@settings(max_examples=200)
@given(json_values)
def test_any_settled_request_is_refused_in_one_line_or_read(value: Any) -> None:
    """The far side of SSH reads a 'settled' request from anyone who can run it."""
    _refused(lambda: wire.read_ref_summaries(value))


def test_a_large_ref_is_asked_about_by_its_digest() -> None:
    many = Ref("calls", A, [f"{i:064x}" for i in range(100)])
    few = Ref("calls", B, [C])
    refs, digests = wire.read_ref_summaries(wire.ref_summaries([many, few]))
    assert refs[1] == few and refs[0].values == []
    assert digests == {0: ("calls", A, wire.values_digest(many.values))}
