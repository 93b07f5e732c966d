"""Issue 24, item 2: a call's output directory costs the store only what the call made.

Reported: a 20 MiB ``topol.tpr`` and 5 calls grew the store from 21 MB to 121 MB, as
every output tree repeated the skeleton. Each large file of a tree is now stored once,
as a piece of its own (:mod:`scalems_store.objects.thin`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from scalems_call import pack, run
from scalems_store import FileStore
from tests.scalems_call import outfuncs

CALLS = 20
SKELETON = 2 << 20
OUTPUT = 512 << 10


def stored_bytes(store: FileStore) -> int:
    """The bytes of every object file and meta file of *store*."""
    total = 0
    for top in ("objects", "meta"):
        for directory, _, files in os.walk(os.path.join(store.root, top)):
            total += sum(os.lstat(os.path.join(directory, name)).st_size for name in files)
    return total


def test_outputs_do_not_repeat_the_skeleton(store: FileStore, tmp_path: Path) -> None:
    """20 calls over a 2 MiB skeleton, each writing 512 KiB, grow the store by their
    outputs, within 1 % (records, signatures and tree headers included), and each output
    directory still reads back whole, skeleton and all."""
    skeleton = tmp_path / "skel"
    skeleton.mkdir()
    (skeleton / "topol.tpr").write_bytes(os.urandom(SKELETON))
    (skeleton / "md.mdp").write_text("nsteps = 1000\n")
    calls = [
        pack(outfuncs.write_output, (seed, OUTPUT), store=store, skeleton=skeleton)
        for seed in range(CALLS)
    ]
    before = stored_bytes(store)
    results = [run(call, store=store) for call in calls]
    growth = stored_bytes(store) - before
    assert growth <= CALLS * OUTPUT * 1.01, f"grew {growth} bytes for {CALLS * OUTPUT} of outputs"
    assert all(result.status == "success" for result in results)
    assert results[-1].fingerprint is not None
    record = json.loads(store.read_bytes(results[-1].fingerprint))
    out = tmp_path / "out"
    store.materialize(record["directory"], out)
    assert (out / "topol.tpr").read_bytes() == (skeleton / "topol.tpr").read_bytes()
    assert (out / "out" / "traj.bin").stat().st_size == OUTPUT


def test_rerun_checks_of_a_call_over_a_thin_skeleton(store: FileStore, tmp_path: Path) -> None:
    """rerun --check and --check --deep rebuild a thin skeleton and a thin output directory
    and find them the same (the deep rerun copies them into its scratch store whole)."""
    from scalems_call.engines.deep import rerun_deep
    from scalems_call.execution import cache
    from scalems_call.execution.check import differences

    skeleton = tmp_path / "skel"
    skeleton.mkdir()
    (skeleton / "topol.tpr").write_bytes(os.urandom(200_000))
    call = pack(outfuncs.write_output, (7, 100_000), store=store, skeleton=skeleton)
    first = run(call, store=store)
    again = run(call, store=store, force=True)
    assert first.fingerprint is not None and again.fingerprint is not None
    recorded = cache.load_result(store, first.fingerprint)
    assert differences(store, recorded, cache.load_result(store, again.fingerprint)) == []
    rows = rerun_deep(store, call, log=lambda line: None)
    assert [row["differences"] for row in rows] == [[]]
