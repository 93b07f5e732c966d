"""``scalems-call exec --remote``: the remote as the cache of calls (as Bazel's remote cache)."""

from __future__ import annotations

from pathlib import Path

from scalems_call import pack, run
from scalems_store import FileStore
from scalems_store.objects import content
from tests.conftest import MakeStore, RunCli
from tests.scalems_call import funcs


def test_a_miss_runs_here_and_pushes_back_a_hit_brings_no_outputs(
    make_store: MakeStore, run_cli: RunCli, tmp_path: Path
) -> None:
    """A worker with an empty store runs a call it finds on the remote and pushes the
    result back; a second empty store gets it as a hit with only the result record (no
    stdout, no output tree); the client then pulls the result."""
    client = make_store("client")
    (tmp_path / "skel").mkdir()
    (tmp_path / "skel" / "input.txt").write_text("input\n")
    call = pack(funcs.use_skeleton, store=client, skeleton=tmp_path / "skel")
    remote = tmp_path / "remote"
    env = {"SCALEMS_STORE": client.root}
    run_cli("scalems-store", "remote", "add", "r", str(remote), env=env)
    assert run_cli("scalems-store", "push", call, env=env).returncode == 0
    for worker in ("worker", "again"):
        run_cli(
            "scalems-store",
            "remote",
            "add",
            "r",
            str(remote),
            env={"SCALEMS_STORE": str(tmp_path / worker)},
        )
    ran = run_cli(
        "scalems-call",
        "exec",
        "--remote",
        "r",
        call[:12],
        env={"SCALEMS_STORE": str(tmp_path / "worker")},
    )
    assert ran.returncode == 0, ran.stderr
    result = ran.stdout.decode().strip()
    assert FileStore(remote).get_ref("calls", call) == [result]
    hit = run_cli(
        "scalems-call",
        "exec",
        "--remote",
        "r",
        call,
        env={"SCALEMS_STORE": str(tmp_path / "again")},
    )
    assert hit.returncode == 0 and hit.stdout.decode().strip() == result, hit.stderr
    assert b"cached on r" in hit.stderr
    again = FileStore(tmp_path / "again")
    outputs = content.references("result", again.read_bytes(result))
    assert result in again and not any(fp in again for fp in outputs if fp != call)
    pulled = run_cli("scalems-store", "pull", call, env=env)
    assert pulled.returncode == 0 and client.get_ref("calls", call) == [result]


def test_result_fetches_a_result_that_ran_elsewhere(
    make_store: MakeStore, run_cli: RunCli, tmp_path: Path
) -> None:
    """scalems-call result CALL -o DIR and result CALL FILE in a store that holds the call but
    no result fetch the remote's newest result with its outputs (one line on stderr), and
    show it; with no remote, one line says so."""
    client, remote = make_store("client"), make_store("remote")
    (tmp_path / "skel").mkdir()
    (tmp_path / "skel" / "input.txt").write_text("input\n")
    call = pack(funcs.use_skeleton, store=client, skeleton=tmp_path / "skel")
    env = {"SCALEMS_STORE": client.root}
    run_cli("scalems-store", "remote", "add", "r", remote.root, env=env)
    assert run_cli("scalems-store", "push", call, env=env).returncode == 0
    assert run(call, store=FileStore(remote.root)).status == "success"
    alone = run_cli("scalems-call", "--store", str(tmp_path / "alone"), "result", call)
    assert alone.returncode == 1 and len(alone.stderr.splitlines()) == 1, alone.stderr

    got = run_cli("scalems-call", "result", call, "-o", str(tmp_path / "out"), env=env)
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "out" / "results" / "upper.txt").read_text() == "INPUT\n"
    (line,) = got.stderr.decode().splitlines()
    assert line.startswith("fetched ") and line.endswith("from remote r")
    shown = run_cli("scalems-call", "result", call, "results/upper.txt", env=env)
    assert shown.returncode == 0 and shown.stdout == b"INPUT\n", shown.stderr
    assert client.get_ref("calls", call) == []  # fetched, not pulled: no ref here
