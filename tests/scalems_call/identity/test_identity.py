"""Call identity: what is in the fingerprint, and that it is the same in any process."""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalems_call import SerializationError, pack
from scalems_call.identity.serialize import from_hex, to_hex
from scalems_store import FileStore
from tests.scalems_call import funcs

# Pinned: the call record format and the argument encoding must not change silently.
GOLDEN_ADD_CALL = "0a362403db9224eaddfa7ee91c3ad60b36dea73bc59095b2a81a5c462ad2b821"

PACK_SCRIPT = """
import sys
from scalems_store import FileStore
from scalems_call import pack
from tests.scalems_call import funcs
store = FileStore(sys.argv[1])
args = ({"b", "a", "c", "zeta", "eta"}, frozenset({3, 1, 2}), {"k2": 2, "k1": 1})
print(pack(funcs.count_runs, ("ledger",), {"value": args}, store=store, environment={"A": "1"},
           requirements={"ranks": 1}))
"""


def test_golden_call_fingerprint(store: FileStore) -> None:
    """A fixed call packs to a pinned fingerprint."""
    assert pack(operator.add, (1, 2), store=store) == GOLDEN_ADD_CALL


def test_same_call_same_fingerprint_across_processes(tmp_path: Path) -> None:
    """Packing in separate processes with different hash seeds gives one fingerprint."""
    prints = set()
    for seed in ("0", "1", "12345", "random"):
        proc = subprocess.run(
            [sys.executable, "-c", PACK_SCRIPT, str(tmp_path / f"s{seed}")],
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        )
        prints.add(proc.stdout.strip())
    assert len(prints) == 1


def test_identity_covers_each_part(store: FileStore, tmp_path: Path) -> None:
    """Arguments, environment, requirements and skeleton each change the fingerprint."""
    (tmp_path / "skel").mkdir()
    (tmp_path / "skel" / "f").write_text("x")
    base = pack(funcs.add, (1, 2), store=store)
    variants = [
        pack(funcs.add, (1, 3), store=store),
        pack(funcs.add, (1,), {"b": 2}, store=store),
        pack(funcs.add, (1, 2), store=store, environment={"X": "1"}),
        pack(funcs.add, (1, 2), store=store, requirements={"ranks": 2}),
        pack(funcs.add, (1, 2), store=store, skeleton=tmp_path / "skel"),
        pack(operator.add, (1, 2), store=store),
    ]
    assert len({base, *variants}) == len(variants) + 1
    assert pack(funcs.add, (1, 2), store=store) == base


def test_kwargs_order_does_not_matter(store: FileStore) -> None:
    """Keyword argument order is not part of identity."""
    assert pack(funcs.count_runs, (), {"ledger": "l", "value": 1}, store=store) == pack(
        funcs.count_runs, (), {"value": 1, "ledger": "l"}, store=store
    )


def test_editing_the_function_changes_the_fingerprint(tmp_path: Path) -> None:
    """func_code fingerprints the source: editing the body gives a new call fingerprint."""
    module = tmp_path / "userfunc.py"
    script = (
        "import sys; sys.path.insert(0, sys.argv[2]);"
        "from scalems_store import FileStore; from scalems_call import pack; import userfunc;"
        "print(pack(userfunc.f, (1,), store=FileStore(sys.argv[1])))"
    )

    def packed() -> str:
        return subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "s"), str(tmp_path)],
            capture_output=True,
            check=True,
            text=True,
        ).stdout.strip()

    module.write_text("def f(x):\n    return x + 1\n")
    first = packed()
    assert packed() == first
    module.write_text("def f(x):\n    return x + 2\n")
    assert packed() != first


class Unstable:
    """An object whose pickle changes every time it is made."""

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return Unstable._make, (int.from_bytes(os.urandom(4), "big"),)

    @staticmethod
    def _make(_: int) -> Unstable:
        return Unstable()


def test_nondeterministic_argument_refused(store: FileStore) -> None:
    """An argument whose serialization is not stable is refused with a clear error."""
    with pytest.raises(SerializationError, match="deterministically"):
        pack(funcs.add, (Unstable(), 1), store=store)
    assert list(store.iter_fingerprints()) == []


def test_unpicklable_argument_refused(store: FileStore) -> None:
    """An argument that cannot be pickled is a SerializationError naming it."""
    with pytest.raises(SerializationError, match="argument 0"):
        pack(funcs.add, ((x for x in range(0)), 1), store=store)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=json_values, items=st.sets(st.text(max_size=8), max_size=8))
def test_property_serialization_round_trip(value: object, items: set[str]) -> None:
    """Plain values and sets round-trip and serialize to the same bytes when rebuilt."""
    hexed = to_hex((value, items))
    assert from_hex(hexed) == (value, items)
    assert to_hex((json.loads(json.dumps(value)), set(sorted(items, reverse=True)))) == hexed


def test_record_is_canonical_json(store: FileStore) -> None:
    """The call record is canonical JSON with the CallPack fields and func_code."""
    fp = pack(funcs.add, (1, 2), store=store)
    data = store.read_bytes(fp)
    record = json.loads(data)
    assert data == json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    assert (
        record["skeleton"] is None
        and record["encoder"] == "dill"
        and len(record["func_code"]) == 64
    )
    assert store.kind(fp) == "call"
