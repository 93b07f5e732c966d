"""What each call cost: CPU time and peak memory in its result's provenance, and in ``ls``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scalems_call import pack, run
from scalems_call.execution import cache
from scalems_store import FileStore
from tests.conftest import RunCli
from tests.scalems_call.execution import costly

MIB = 1 << 20


def provenance(store: FileStore, result_fp: str | None) -> dict[str, Any]:
    assert result_fp is not None
    found: dict[str, Any] = cache.load_result(store, result_fp)["provenance"]
    return found


@pytest.mark.parametrize("interpreter", ["forked", "fresh"])
def test_cpu_time_and_peak_memory_are_recorded(store: FileStore, interpreter: str) -> None:
    """A call that holds 200 MiB and burns 0.3 s of CPU records at least that, beside its
    wall time, whether forked from the fork server or a fresh interpreter."""
    fp = pack(
        costly.hold_memory, (200, 0.3), store=store, requirements={"interpreter": interpreter}
    )
    result = run(fp, store=store)
    assert result.status == "success"
    prov = provenance(store, result.fingerprint)
    assert prov["max_rss_bytes"] >= 200 * MIB
    assert 0.3 <= prov["cpu_seconds"] <= prov["duration"] + 0.5
    assert isinstance(prov["duration"], float)


def test_cpu_time_of_a_subprocess_counts(store: FileStore) -> None:
    """CPU burnt by a process the call waited for (an MD engine run by subprocess) counts
    towards the call's CPU time, though the call itself slept."""
    fp = pack(costly.burn_in_subprocess, (0.4,), store=store)
    result = run(fp, store=store)
    assert result.status == "success"
    assert provenance(store, result.fingerprint)["cpu_seconds"] >= 0.4


def test_cost_of_a_call_stopped_by_its_timeout(store: FileStore) -> None:
    """A call stopped by its timeout still records what it used until then."""
    fp = pack(costly.hold_memory, (100, 30), store=store)
    result = run(fp, store=store, timeout=1.5)
    assert result.status == "timeout"
    prov = provenance(store, result.fingerprint)
    assert prov["max_rss_bytes"] >= 100 * MIB and prov["cpu_seconds"] > 0


def test_ls_shows_cpu_and_memory(run_cli: RunCli, tmp_path: Path) -> None:
    """ls shows each call's CPU time and peak memory (``-`` for one never run); --json
    gives them in seconds and bytes."""
    with FileStore(tmp_path / ".scalems") as store:
        ran = pack(costly.hold_memory, (64, 0.1), store=store)
        pending = pack(costly.hold_memory, (1, 0), store=store)
        run(ran, store=store)
    listing = run_cli("scalems-call", "ls").stdout.decode().splitlines()
    assert listing[0].split()[4:6] == ["CPU", "MEMORY"]
    line = next(line for line in listing if line.startswith(ran))
    assert "MiB" in line and " s " in line
    never = next(line for line in listing if line.startswith(pending))
    assert never.split()[1:5] == ["pending", "-", "-", "-"]
    rows = {row["call"]: row for row in json.loads(run_cli("scalems-call", "ls", "--json").stdout)}
    assert rows[ran]["max_rss_bytes"] >= 64 * MIB and rows[ran]["cpu_seconds"] >= 0.1
    assert rows[pending]["cpu_seconds"] is None
    shown = run_cli("scalems-call", "result", ran).stdout.decode()
    assert "cpu " in shown and "(peak resident set)" in shown
