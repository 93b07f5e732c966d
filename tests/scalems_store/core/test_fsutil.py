"""The writer pipeline: chunks arrive in order, and an error on either side surfaces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalems_store.core.threads import Beside, pipelined


@given(st.lists(st.binary(max_size=64), max_size=50), st.integers(min_value=1, max_value=4))
def test_every_chunk_is_consumed_in_order(chunks: list[bytes], depth: int) -> None:
    seen: list[bytes] = []
    pipelined(iter(chunks), seen.append, depth=depth)
    assert seen == chunks


def test_a_consumer_error_stops_the_producer_and_is_raised() -> None:
    produced = []

    def chunks() -> Iterator[bytes]:
        for i in range(10_000):
            produced.append(i)
            yield b"x"

    def consume(chunk: bytes) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        pipelined(chunks(), consume, depth=2)
    assert len(produced) < 10_000  # it stopped early instead of archiving everything


def test_a_producer_error_is_raised_after_the_consumer_stops() -> None:
    seen: list[bytes] = []

    def chunks() -> Iterator[bytes]:
        yield b"a"
        raise ValueError("file changed while being archived")

    with pytest.raises(ValueError, match="changed"):
        pipelined(chunks(), seen.append)
    assert seen == [b"a"]


def test_beside_returns_or_raises_in_the_caller() -> None:
    """Work beside the caller runs on another thread; its value or its error comes back."""
    import threading

    work = Beside(threading.current_thread, "test")
    assert work.result() is not threading.current_thread()
    assert Beside(lambda: 42, "test").result() == 42

    def fail() -> int:
        raise ValueError("boom")

    failed = Beside(fail, "test")
    failed.wait()  # waiting alone does not raise: the caller's own error may win
    with pytest.raises(ValueError, match="boom"):
        failed.result()


def test_one_chunk_is_consumed_without_a_thread() -> None:
    """Most objects are one chunk: starting a thread for each cost a bundle import of
    50,000 small objects three quarters of its time. Longer content still overlaps."""
    import threading

    def where(chunk: bytes) -> None:
        seen.append((chunk, threading.current_thread()))

    seen: list[tuple[bytes, threading.Thread]] = []
    pipelined([b"only"], where)
    assert seen == [(b"only", threading.current_thread())]
    seen.clear()
    pipelined([b"a", b"b", b"c"], where)
    assert [chunk for chunk, _ in seen] == [b"a", b"b", b"c"]
    assert seen[0][1] is threading.current_thread()
    assert {thread for _, thread in seen[1:]} != {threading.current_thread()}
