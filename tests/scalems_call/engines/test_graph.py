"""Call graphs: inputs from other calls' outputs, upstream first, early cutoff, lineage."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from scalems_call import InvalidCall, output, pack, run
from scalems_call.engines.executors import run_many
from scalems_call.engines.graph import plan, states
from scalems_call.execution import cache
from scalems_store import FileStore, InvalidContent
from scalems_store.maint.bundle import export, import_bundle
from tests.conftest import MakeStore, RunCli, entry_point, loopback_cluster
from tests.scalems_call import funcs


def ledger_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def fan(store: FileStore, ledger: Path, seeds: range) -> tuple[list[str], str, str]:
    """Simulations, an analysis of their trajectories, and a pick of their values."""
    sims = [pack(funcs.simulate, (seed, str(ledger)), store=store) for seed in seeds]
    ana = pack(funcs.analyze, ([output(s, "traj.csv") for s in sims], str(ledger)), store=store)
    best = pack(funcs.pick, ([output(s) for s in sims],), {"n": 2}, store=store)
    return sims, ana, best


def test_the_record_names_upstream_calls(store: FileStore, tmp_path: Path) -> None:
    """A call's record lists the calls it takes from, so its fingerprint is known before
    anything runs, and the store reads them as its references."""
    sims, ana, _ = fan(store, tmp_path / "ledger", range(3))
    assert {fp for fp in store.references(ana) if store.kind(fp) == "call"} == set(sims)
    again = pack(
        funcs.analyze,
        ([output(s, "traj.csv") for s in sims], str(tmp_path / "ledger")),
        store=store,
    )
    assert again == ana, "the same graph packs to the same fingerprint"
    assert not (tmp_path / "ledger").exists(), "packing runs nothing"


def test_run_runs_what_is_missing_first(store: FileStore, tmp_path: Path) -> None:
    """run() of the last call runs the calls it takes from first; a second run serves all."""
    ledger = tmp_path / "ledger"
    _, ana, best = fan(store, ledger, range(3))
    result = run(ana, store=store)
    assert result.status == "success" and result.return_value == 1 + 2 + 3
    assert sorted(ledger_lines(ledger)) == ["analyze", "simulate 0", "simulate 1", "simulate 2"]
    assert run(best, store=store).return_value == [10, 20]
    assert run(ana, store=store).cached and len(ledger_lines(ledger)) == 4
    record = json.loads(store.read_bytes(result.fingerprint or ""))
    assert [c["path"] for c in record["consumed"]] == ["traj.csv"] * 3


@pytest.mark.parametrize("engine", ["pool", "dask"])
def test_fan_out_fan_in_on_engines(store: FileStore, tmp_path: Path, engine: str) -> None:
    """A fan-out of simulations and a fan-in analysis run on a process pool and on a
    loopback Dask cluster, each call once, upstream first."""
    ledger = tmp_path / "ledger"
    sims, ana, best = fan(store, ledger, range(4))
    if engine == "pool":
        pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
        with pool:
            results = run_many([ana, best], store=store, executor=pool)
    else:
        distributed = pytest.importorskip("distributed")
        with loopback_cluster(2) as cluster, distributed.Client(cluster) as client:
            results = run_many([ana, best], store=store, executor=client.get_executor())
    assert results[ana].return_value == 1 + 2 + 3 + 4 and results[best].return_value == [20, 30]
    assert sorted(ledger_lines(ledger)) == ["analyze"] + [f"simulate {i}" for i in range(4)]
    assert all(cache.hit(store, fp) for fp in [*sims, ana, best])


def test_early_cutoff(store: FileStore, tmp_path: Path) -> None:
    """Rerunning an upstream call that gives the same content keeps its dependents cached;
    one that gives other content makes exactly its dependents run again."""
    ledger, source = tmp_path / "ledger", tmp_path / "source.txt"
    source.write_text("one")
    upstream = pack(funcs.read_external, (str(source), str(ledger)), store=store)
    by_value = pack(funcs.shout, (output(upstream), str(ledger)), store=store)
    by_file = pack(
        funcs.read_mounted,
        ("in.txt",),
        store=store,
        skeleton={"in.txt": output(upstream, "value.txt")},
    )
    other = pack(funcs.shout, ("independent", str(ledger)), store=store)
    assert (
        run_many([by_value, by_file, other], store=store, executor=None)[by_value].return_value
        == "ONE"
    )
    assert sorted(ledger_lines(ledger)) == ["read_external", "shout independent", "shout one"]
    run(upstream, store=store, force=True)  # same content: the dependents stay cached
    results = run_many([by_value, by_file, other], store=store)
    assert all(r.cached for r in results.values())
    assert ledger_lines(ledger)[3:] == ["read_external"]
    source.write_text("two")
    run(upstream, store=store, force=True)  # other content: exactly the dependents are stale
    graph = plan(store, [by_value, by_file, other])
    assert {fp: s.state for fp, s in states(store, graph).items()} == {
        upstream: "cached",
        by_value: "stale",
        by_file: "stale",
        other: "cached",
    }
    results = run_many([by_value, by_file, other], store=store)
    assert results[by_value].return_value == "TWO" and results[by_file].return_value == "two"
    assert ledger_lines(ledger)[4:] == ["read_external", "shout two"]
    assert results[other].cached


def test_a_failed_upstream(store: FileStore, tmp_path: Path) -> None:
    """A failing call makes its dependents upstream-failed, naming it; an independent
    branch goes on."""
    ledger = tmp_path / "ledger"
    bad = pack(funcs.fail_and_count, (str(ledger),), store=store)
    down = pack(funcs.shout, (output(bad), str(ledger)), store=store)
    below = pack(funcs.shout, (output(down), str(ledger)), store=store)
    fine = pack(funcs.shout, ("fine", str(ledger)), store=store)
    results = run_many([below, fine], store=store)
    assert results[below].status == "upstream-failed"
    assert bad[:12] in str(results[below].exception)
    assert "ValueError: deliberate failure" in str(results[below].exception)
    assert results[fine].return_value == "FINE"
    assert sorted(ledger_lines(ledger)) == ["ran", "shout fine"]
    states_now = states(store, plan(store, [below]))
    assert [states_now[fp].state for fp in (bad, down, below)] == [
        "failed",
        "upstream-failed",
        "upstream-failed",
    ]


def test_references_by_label_and_prefix(store: FileStore, tmp_path: Path) -> None:
    """output() takes a label or a unique prefix; the record names the full fingerprint;
    a reference to something not a call is refused."""
    first = pack(funcs.add, (1, 2), store=store)
    store.set_label("first", first)
    by_label = pack(funcs.add, (output("first"), 10), store=store)
    by_prefix = pack(funcs.add, (output(first[:10]), 10), store=store)
    assert by_label == by_prefix
    assert run(by_label, store=store).return_value == 13
    blob = store.add_bytes(b"not a call")
    with pytest.raises(InvalidCall, match="not a call"):
        pack(funcs.add, (output(blob), 1), store=store)
    with pytest.raises(InvalidCall, match="names no call"):
        pack(funcs.add, (output("no-such-label"), 1), store=store)
    with pytest.raises(InvalidCall, match=r"\.\."):
        output(first, "../escape")


def test_a_missing_file_of_an_upstream_output(store: FileStore, tmp_path: Path) -> None:
    """A reference to a path the upstream output lacks fails the call, naming call and path."""
    upstream = pack(funcs.add, (1, 2), store=store)
    down = pack(funcs.analyze, ([output(upstream, "nothing/here.csv")],), store=store)
    result = run(down, store=store)
    assert result.status == "error"
    assert upstream[:12] in str(result.exception) and "nothing/here.csv" in str(result.exception)


def test_killed_coordinator_then_exec_finishes(tmp_path: Path) -> None:
    """kill -9 of the coordinator mid-graph; a second exec finishes without rerunning
    what completed."""
    ledger, flag = tmp_path / "ledger", tmp_path / "flag"
    flag.touch()
    with FileStore(tmp_path / ".scalems") as store:
        first = pack(funcs.count_runs, (str(ledger), 1), store=store)
        slow = pack(funcs.wait_for_removal, (str(flag),), {}, store=store)
        last = pack(funcs.identity, ([output(first), output(slow)],), store=store)
    coordinator = subprocess.Popen([*entry_point("scalems-call"), "exec", last], cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not list((tmp_path / ".scalems" / "tmp" / "leases").glob(slow[:12] + "*")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    coordinator.send_signal(signal.SIGKILL)
    coordinator.wait()
    flag.unlink()
    again = subprocess.run(
        [*entry_point("scalems-call"), "exec", last, "--json"], cwd=tmp_path, capture_output=True
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "success"
    assert ledger_lines(ledger) == ["ran"], "the call that completed did not run again"


def test_a_graph_moves_in_a_bundle(make_store: MakeStore, tmp_path: Path) -> None:
    """export of the last call carries its whole upstream closure; in an empty store, exec
    of it is then all cache hits; gc keeps the closure."""
    source, target = make_store("a"), make_store("b")
    _, ana, _ = fan(source, tmp_path / "ledger", range(3))
    run(ana, store=source)
    buffer = io.BytesIO()
    export(source, [ana], buffer)
    import_bundle(target, io.BytesIO(buffer.getvalue()))
    results = run_many([ana], store=target)
    assert results[ana].cached and results[ana].return_value == 6
    assert len(ledger_lines(tmp_path / "ledger")) == 4, "nothing ran in the second store"


def test_json_references_on_the_command_line(run_cli: RunCli, tmp_path: Path) -> None:
    """--args-json takes {"$output": FP} and {"$output": FP, "path": P}; {"$literal": x}
    passes x as it is."""
    produce = "tests.scalems_call.funcs:produce"
    first = run_cli("scalems-call", "pack", produce, "--args-json", "[2]")
    fp = first.stdout.decode().strip()
    refs = [{"$output": fp[:8]}, {"$output": fp, "path": "out/data.txt"}]
    second = run_cli(
        "scalems-call", "pack", "tests.scalems_call.funcs:consume", "--args-json", json.dumps(refs)
    )
    assert second.returncode == 0, second.stderr
    down = second.stdout.decode().strip()
    done = run_cli("scalems-call", "exec", down, "--json")
    assert json.loads(done.stdout)["status"] == "success", done.stderr
    assert "return      '4:2'" in run_cli("scalems-call", "result", down).stdout.decode()
    literal = run_cli(
        "scalems-call",
        "pack",
        "tests.scalems_call.funcs:identity",
        "--args-json",
        json.dumps([{"$literal": {"$output": "x"}}]),
    )
    kept = literal.stdout.decode().strip()
    assert run_cli("scalems-call", "exec", kept).returncode == 0
    assert "return      {'$output': 'x'}" in run_cli("scalems-call", "result", kept).stdout.decode()


def test_cycles_cannot_be_made(store: FileStore) -> None:
    """A call can only name calls that exist, so no graph has a cycle; a record that names
    something not a call is not a call record the store accepts as one."""
    fp = pack(funcs.add, (1, 2), store=store)
    assert plan(store, [fp]).order == [fp]
    record = json.loads(store.read_bytes(fp))
    record["inputs"] = [{"call": "not-a-uri", "path": None, "to": None}]
    with pytest.raises(InvalidContent):
        store.add_bytes(json.dumps(record).encode(), kind="call")


def test_skeleton_entries_take_whole_outputs(store: FileStore, tmp_path: Path) -> None:
    """A skeleton entry without a path puts the upstream's whole output directory there."""
    upstream = pack(funcs.produce, (3,), store=store)
    down = pack(
        funcs.read_mounted, ("up/out/data.txt",), store=store, skeleton={"up": output(upstream)}
    )
    assert run(down, store=store).return_value == "0\n1\n2\n"
    assert os.path.basename(down)


def test_states_say_why(store: FileStore, tmp_path: Path) -> None:
    """A stale call says what below it changed or is not cached, a failed call gives its
    error line, an upstream-failed call names the call that failed, and a result that lost
    an object says so."""
    ledger, source = tmp_path / "ledger", tmp_path / "source.txt"
    source.write_text("one")
    first = pack(funcs.read_external, (str(source), str(ledger)), store=store)
    second = pack(funcs.shout, (output(first), str(ledger)), store=store)
    third = pack(funcs.shout, (output(second), str(ledger)), store=store)
    alone = pack(funcs.simulate, (99,), store=store)  # its output directory is its own
    bad = pack(funcs.fail_and_count, (str(ledger),), store=store)
    after_bad = pack(funcs.shout, (output(bad), str(ledger)), store=store)
    run_many([third, alone, after_bad], store=store)
    source.write_text("two")
    run(first, store=store, force=True)  # other content: second is stale, third below it
    directory = cache.load_result(store, cache.results(store, alone)[0])["directory"]
    gone = store.object_path(directory.removeprefix("blake3:"))
    os.chmod(os.path.dirname(gone), 0o755)
    os.unlink(gone)
    now = states(store, plan(store, [third, alone, after_bad]))
    assert (now[first].state, now[first].reason) == ("cached", None)
    assert (now[second].state, now[second].reason) == (
        "stale",
        f"call below {first[:12]} has a new result",
    )
    assert (now[third].state, now[third].reason) == (
        "stale",
        f"call below {second[:12]} is stale",
    )
    assert (now[alone].state, now[alone].reason) == (
        "stale",
        "an object its result names is missing",
    )
    assert (now[bad].state, now[bad].reason) == ("failed", "ValueError: deliberate failure")
    assert (now[after_bad].state, now[after_bad].reason) == (
        "upstream-failed",
        f"call below {bad[:12]} failed",
    )
