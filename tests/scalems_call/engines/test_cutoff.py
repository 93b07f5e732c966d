"""Early cutoff on content (issue 21, case 6): a new upstream call whose output is byte for
byte an earlier one's does not make the calls below it run again."""

from __future__ import annotations

import json
from pathlib import Path

from scalems_call import output, pack, run
from scalems_store import FileStore
from tests.conftest import RunCli
from tests.scalems_call import funcs


def test_a_changed_input_with_the_same_output_runs_only_the_simulation(
    store: FileStore, tmp_path: Path, run_cli: RunCli
) -> None:
    """Issue 21, case 6: the simulation's input changes (seed 1 -> 3) but its output does
    not; only the simulation runs, and the analysis is served from its earlier result;
    status and why say so."""
    ledger = str(tmp_path / "ledger")
    sim1 = pack(funcs.settle, (1, ledger), store=store)
    ana1 = pack(funcs.analyze, ([output(sim1, "state.txt")], ledger), store=store)
    assert run(ana1, store=store).return_value == 1
    assert Path(ledger).read_text().splitlines() == ["settle 1", "analyze"]
    sim3 = pack(funcs.settle, (3, ledger), store=store)
    ana3 = pack(funcs.analyze, ([output(sim3, "state.txt")], ledger), store=store)
    assert ana3 != ana1
    result = run(ana3, store=store)
    assert result.status == "success" and result.return_value == 1
    assert Path(ledger).read_text().splitlines() == ["settle 1", "analyze", "settle 3"]
    assert result.call == ana3
    again = run(ana3, store=store)
    assert again.cached and again.fingerprint == result.fingerprint
    root = ["scalems-call", "--store", str(store.root)]
    status = run_cli(*root, "status", ana3)
    assert status.returncode == 0, status.stdout
    assert f"reused: same inputs as {ana1[:12]}".encode() in status.stdout
    why = run_cli(*root, "why", ana3)
    assert f"reused: same inputs as {ana1[:12]}".encode() in why.stdout
    sim2 = pack(funcs.settle, (2, ledger), store=store)  # another output: the analysis runs
    ana2 = pack(funcs.analyze, ([output(sim2, "state.txt")], ledger), store=store)
    assert run(ana2, store=store).return_value == 1
    assert Path(ledger).read_text().splitlines()[-2:] == ["settle 2", "analyze"]
    described = json.loads(run_cli(*root, "status", ana2, "--json").stdout)
    assert all(c["note"] is None for c in described["calls"])
    verified = run_cli("scalems-store", "--store", str(store.root), "verify")
    assert verified.returncode == 0, verified.stdout  # cutoff keys are not objects


def test_a_result_no_trusted_key_signed_is_never_reused(store: FileStore, tmp_path: Path) -> None:
    """Early cutoff serves only an earlier result the store trusts, and signs what it
    serves: an earlier analysis whose signature is gone (as one imported unsigned would
    be) is not copied under the new call's name; the analysis runs again."""
    ledger = str(tmp_path / "ledger")
    sim1 = pack(funcs.settle, (1, ledger), store=store)
    ana1 = pack(funcs.analyze, ([output(sim1, "state.txt")], ledger), store=store)
    first = run(ana1, store=store).fingerprint
    assert first is not None
    Path(store.sigs.path(first)).unlink()  # no longer vouched for
    sim3 = pack(funcs.settle, (3, ledger), store=store)
    ana3 = pack(funcs.analyze, ([output(sim3, "state.txt")], ledger), store=store)
    result = run(ana3, store=store)
    assert Path(ledger).read_text().splitlines() == ["settle 1", "analyze", "settle 3", "analyze"]
    assert result.status == "success" and result.fingerprint is not None
    record = json.loads(store.read_bytes(result.fingerprint))
    assert "reused" not in record.get("provenance", {})
    assert store.signatures(result.fingerprint)
