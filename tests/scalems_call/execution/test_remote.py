"""What a worker under ``exec --remote`` uses: its store's path, and what it fetches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scalems_call import output, pack, run
from scalems_call.execution.remote import Where, needed, worker_root
from scalems_store import FileStore
from scalems_store.objects import content
from scalems_store.remote.peer import closure
from scalems_store.remote.settings import Remote
from tests.scalems_call import funcs


def test_worker_store_is_scalems_store_unless_it_is_the_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$SCALEMS_STORE is the worker's store, unless unset or naming the client's (as a pool's
    workers inherit it): then <tmp>/scalems-<uid>/store."""
    where = Where(Remote("r", "/remote"), str(tmp_path / "client"), (), False)
    monkeypatch.setenv("SCALEMS_STORE", str(tmp_path / "scratch"))
    assert worker_root(where) == str(tmp_path / "scratch")
    monkeypatch.setenv("SCALEMS_STORE", str(tmp_path / "client" / "." / ""))
    default = worker_root(where)
    assert default.endswith(os.path.join(f"scalems-{os.getuid()}", "store"))
    monkeypatch.delenv("SCALEMS_STORE")
    assert worker_root(where) == default


def test_a_run_needs_its_code_skeleton_and_upstream_outputs_not_its_own_results(
    store: FileStore,
) -> None:
    """Of a call's closure, a run needs its record and what it references and the results
    (and outputs) of the calls it takes from, with their refs; not its own older results."""
    sim = pack(funcs.simulate, (3,), store=store)
    ana = pack(funcs.analyze, ([output(sim, "traj.csv")],), store=store)
    sim_result = run(sim, store=store).fingerprint
    ana_result = run(ana, store=store).fingerprint
    assert sim_result is not None and ana_result is not None
    entries, refs = needed(closure(store, [ana], False), ana)
    fps = {e.fingerprint for e in entries}
    outputs = set(content.references("result", store.read_bytes(sim_result)))
    assert {ana, sim, sim_result} | outputs <= fps
    assert ana_result not in fps
    assert [(r.key, r.values) for r in refs] == [(sim, [sim_result])]
    order = [e.fingerprint for e in entries]
    assert order.index(sim) < order.index(ana)  # each after what it references
