"""``exec --remote`` with workers: each worker runs its calls from a store of its own and the
remote, and never touches the client's store (a guard logs every process that does)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from scalems_call import output, pack, run
from scalems_call.cmdline import remote_exec
from scalems_store import FileStore
from scalems_store.objects import content
from tests.conftest import REPO, MakeStore, RunCli, entry_point, loopback_cluster
from tests.scalems_call import funcs

GUARD = Path(__file__).resolve().parent.parent / "guard"


def graph(client: FileStore, seeds: int = 3) -> tuple[list[str], str]:
    """Pack *seeds* simulations and an analysis of their trajectories into *client*."""
    sims = [pack(funcs.simulate, (seed,), store=client) for seed in range(seeds)]
    ana = pack(funcs.analyze, ([output(s, "traj.csv") for s in sims],), store=client)
    return sims, ana


def guarded(
    client: FileStore, log: Path, *args: str, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], set[int]]:
    """Run ``scalems-call *args`` with the client's store guarded; return what it did and the
    PIDs of the processes other than it that touched the client's store."""
    full = {
        **os.environ,
        **env,
        "PYTHONPATH": os.pathsep.join([str(GUARD), str(REPO)]),
        "SCALEMS_GUARD_DIR": client.root,
        "SCALEMS_GUARD_LOG": str(log),
    }
    before = len(log.read_text().splitlines()) if log.exists() else 0
    proc = subprocess.Popen(
        [*entry_point("scalems-call"), *args],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    lines = log.read_text().splitlines()[before:] if log.exists() else []
    others = {int(line.split()[0]) for line in lines}
    return done, others - {proc.pid}


@pytest.fixture
def setup(make_store: MakeStore, run_cli: RunCli, tmp_path: Path) -> dict[str, object]:
    """A client store with a graph pushed to a path remote, and a node's temporary directory."""
    client = make_store("client")
    sims, ana = graph(client)
    remote = tmp_path / "remote"
    env = {"SCALEMS_STORE": client.root}
    run_cli("scalems-store", "remote", "add", "r", str(remote), env=env)
    pushed = run_cli("scalems-store", "push", ana, env=env)
    assert pushed.returncode == 0, pushed.stderr
    node = tmp_path / "node"
    node.mkdir()
    return {"client": client, "sims": sims, "ana": ana, "remote": remote, "node": node}


def test_pool_workers_use_their_own_store_and_the_remote(
    setup: dict[str, object], run_cli: RunCli, tmp_path: Path
) -> None:
    """With --jobs 2 and --remote, the graph runs on workers whose store is under the node's
    temporary directory (the client's $SCALEMS_STORE, which they inherit, is not theirs):
    no worker opens the client's store, the remote records every result (signed), the
    client holds no output until it pulls, and a second exec is served by the remote."""
    client, remote, node = setup["client"], setup["remote"], setup["node"]
    assert isinstance(client, FileStore) and isinstance(remote, Path) and isinstance(node, Path)
    sims, ana = setup["sims"], str(setup["ana"])
    assert isinstance(sims, list)
    env = {"SCALEMS_STORE": client.root, "TMPDIR": str(node)}
    log = tmp_path / "guard.log"
    done, others = guarded(client, log, "exec", "--remote", "r", "--jobs", "2", ana, env=env)
    assert done.returncode == 0, done.stderr
    assert others == set(), log.read_text()
    result = done.stdout.strip()
    there = FileStore(remote)
    for call in [*sims, ana]:
        (recorded,) = there.get_ref("calls", call)
        assert there.signatures(recorded), "pushed with its signature"
    assert there.get_ref("calls", ana) == [result]
    worker = FileStore(node / f"scalems-{os.getuid()}" / "store")
    assert worker.get_ref("calls", ana) == [result]
    # the client has the result record (the outcome), not its output tree, and no ref
    record = content.references("result", client.read_bytes(result))
    trees = [fp for fp in record if there.kind(fp) == "tree"]
    assert trees and not any(fp in client for fp in trees)
    assert client.get_ref("calls", ana) == []

    again, others = guarded(client, log, "exec", "--remote", "r", "--jobs", "2", ana, env=env)
    assert again.returncode == 0 and again.stdout.strip() == result, again.stderr
    assert "cached on r" in again.stderr and others == set()

    pulled = run_cli("scalems-store", "pull", ana, env={"SCALEMS_STORE": client.root})
    assert pulled.returncode == 0, pulled.stderr
    shown = run_cli("scalems-call", "result", ana, "--json", env={"SCALEMS_STORE": client.root})
    assert b'"return_value_repr": "6"' in shown.stdout, shown.stdout


def test_the_guard_sees_workers_on_the_clients_store(
    setup: dict[str, object], tmp_path: Path
) -> None:
    """Without --remote, the same exec's workers open the client's store, and the guard
    names them: the check above can fail."""
    client, node = setup["client"], setup["node"]
    assert isinstance(client, FileStore) and isinstance(node, Path)
    env = {"SCALEMS_STORE": client.root, "TMPDIR": str(node)}
    done, others = guarded(
        client, tmp_path / "guard.log", "exec", "--jobs", "2", str(setup["ana"]), env=env
    )
    assert done.returncode == 0, done.stderr
    assert others, "the pool's workers opened the client's store"


def test_upstream_hits_on_the_remote_are_not_submitted(
    setup: dict[str, object], run_cli: RunCli, tmp_path: Path
) -> None:
    """When the simulations ran already (their results are on the remote), a new analysis of
    them runs alone: the simulations are served by the remote, not sent to a worker."""
    client, node, sims = setup["client"], setup["node"], setup["sims"]
    assert isinstance(client, FileStore) and isinstance(node, Path) and isinstance(sims, list)
    env = {"SCALEMS_STORE": client.root, "TMPDIR": str(node)}
    log = tmp_path / "guard.log"
    first, _ = guarded(client, log, "exec", "--remote", "r", "--jobs", "2", *sims, env=env)
    assert first.returncode == 0, first.stderr
    ledger = tmp_path / "ledger"
    later = pack(funcs.analyze, ([output(s, "traj.csv") for s in sims], str(ledger)), store=client)
    assert run_cli("scalems-store", "push", later, env=env).returncode == 0
    session = remote_exec.serve_hits(client, "r", (later,), False, True)
    session.peer.close()
    assert session.misses == (later,) and set(session.served) == set(sims)
    done, others = guarded(
        client, log, "exec", "--remote", "r", "--jobs", "2", "--json", later, env=env
    )
    assert done.returncode == 0 and others == set(), done.stderr
    assert ledger.read_text() == "analyze\n"
    assert '"status": "success"' in done.stdout


def test_dask_workers_use_their_own_store_and_the_remote(
    setup: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Dask, the workers (started with the guard, and the client's SCALEMS_STORE in their
    environment) run the graph from their node's store: none of them opens the client's."""
    client, node, remote = setup["client"], setup["node"], setup["remote"]
    assert isinstance(client, FileStore) and isinstance(node, Path) and isinstance(remote, Path)
    log = tmp_path / "guard.log"
    for name, value in {
        "PYTHONPATH": os.pathsep.join([str(GUARD), str(REPO)]),
        "SCALEMS_GUARD_DIR": client.root,
        "SCALEMS_GUARD_LOG": str(log),
        "SCALEMS_STORE": client.root,
        "TMPDIR": str(node),
    }.items():
        monkeypatch.setenv(name, value)
    with loopback_cluster(2) as cluster:
        env = {"SCALEMS_STORE": client.root, "TMPDIR": str(node)}
        argv = ["exec", "--remote", "r", "--dask", cluster.scheduler_address, str(setup["ana"])]
        done, others = guarded(client, log, *argv, env=env)
    assert done.returncode == 0, done.stderr
    assert others == set(), log.read_text()
    assert FileStore(remote).get_ref("calls", str(setup["ana"])) == [done.stdout.strip()]


def test_ctrl_c_stops_the_calls_on_workers(
    make_store: MakeStore, run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C with --remote and --jobs 2 stops the two calls running on the workers (the stop
    file is in the path remote's tmp/, which they see), starts no other (the queued ones
    count as not started), and nothing is recorded on the remote; the stop file is
    removed. Meanwhile the progress line told running from queued calls."""
    from tests.scalems_call.engines import test_ctrl_c as ctrl_c

    client = make_store("client")
    pids = tmp_path / "pids"
    fps = ctrl_c.pack_batch(client, pids)
    remote = tmp_path / "remote"
    env = {"SCALEMS_STORE": client.root}
    run_cli("scalems-store", "remote", "add", "r", str(remote), env=env)
    assert run_cli("scalems-store", "push", *fps, env=env).returncode == 0
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    argv = ctrl_c.exec_argv(client, fps, "--remote", "r", "--jobs", str(ctrl_c.RUNNING))
    status, said = ctrl_c.on_terminal_interrupted(argv, tmp_path, ctrl_c.RUNNING, pids)
    assert status == 130, said
    assert f"{ctrl_c.RUNNING} stopped, {ctrl_c.CALLS - ctrl_c.RUNNING} not started" in said, said
    assert "Traceback" not in said, said
    assert "2 running, 10 queued" in said, said  # the pool says which have started
    assert len(ctrl_c.started(pids)) == ctrl_c.RUNNING
    there = FileStore(remote)
    assert all(there.get_ref("calls", fp) == [] for fp in fps)
    assert not [p for p in (remote / "tmp").iterdir() if p.name.startswith("scalems-stop-")]


def test_calls_the_remote_lacks_are_sent_first(
    make_store: MakeStore, run_cli: RunCli, tmp_path: Path
) -> None:
    """exec --remote of a call packed here and never pushed sends its closure (one line on
    stderr), then runs it on a worker; a name neither here nor there is one line of error."""
    client = make_store("client")
    call = pack(funcs.add, (2, 3), store=client)
    env = {"SCALEMS_STORE": client.root, "TMPDIR": str(tmp_path)}
    run_cli("scalems-store", "remote", "add", "r", str(tmp_path / "remote"), env=env)
    done = run_cli("scalems-call", "exec", "--remote", "r", "--jobs", "2", call[:12], env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().startswith("sent "), done.stderr
    (result,) = FileStore(tmp_path / "remote").get_ref("calls", call)
    assert done.stdout.decode().strip() == result
    absent = run_cli("scalems-call", "exec", "--remote", "r", "--jobs", "2", "ab" * 32, env=env)
    assert absent.returncode == 1 and len(absent.stderr.splitlines()) == 1, absent.stderr


@pytest.mark.parametrize("kind", ["ssh", "s3"])
def test_workers_over_ssh_and_s3(
    kind: str,
    make_store: MakeStore,
    run_cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same graph on pool workers against an SSH remote (sshd) and an S3 bucket (moto):
    each worker connects by itself, the remote records every result, no worker opens the
    client's store, and the second exec is a hit."""
    from tests.scalems_store.remote.servers import S3_ENVIRONMENT, s3_server, sshd

    client = make_store("client")
    sims, ana = graph(client)
    env = {"SCALEMS_STORE": client.root, "TMPDIR": str(tmp_path)}
    with contextlib.ExitStack() as stack:
        if kind == "ssh":
            server = stack.enter_context(sshd(tmp_path / "sshd"))
            env["SCALEMS_SSH_COMMAND"] = server.ssh_command
            url, extra = (
                server.url(tmp_path / "far"),
                ["--command", entry_point("scalems-store")[0]],
            )
        else:
            pytest.importorskip("s3fs", reason="S3 remotes need the s3 extra (s3fs)")
            env |= S3_ENVIRONMENT
            for key, value in S3_ENVIRONMENT.items():
                monkeypatch.setenv(key, value)
            moto = stack.enter_context(s3_server(tmp_path / "moto"))
            import s3fs

            s3fs.S3FileSystem(endpoint_url=moto.endpoint, skip_instance_cache=True).mkdir("bkt")
            url, extra = "s3://bkt/store", ["--endpoint-url", moto.endpoint]
        added = run_cli("scalems-store", "remote", "add", "r", url, *extra, env=env)
        assert added.returncode == 0, added.stderr
        log = tmp_path / "guard.log"
        done, others = guarded(client, log, "exec", "--remote", "r", "--jobs", "2", ana, env=env)
        assert done.returncode == 0, done.stderr
        assert others == set(), log.read_text()
        again, others = guarded(client, log, "exec", "--remote", "r", "--jobs", "2", ana, env=env)
        assert again.returncode == 0 and again.stdout == done.stdout, again.stderr
        assert "cached on r" in again.stderr and others == set()
        pulled = run_cli("scalems-store", "pull", ana, env=env)
        assert pulled.returncode == 0, pulled.stderr
    assert client.get_ref("calls", ana) == [done.stdout.strip()]
    assert all(client.get_ref("calls", sim) for sim in sims)


def test_results_found_here_go_to_the_remote_for_the_workers(
    make_store: MakeStore, run_cli: RunCli, tmp_path: Path
) -> None:
    """Simulations already run in the client's store (and never pushed) are served here and
    their results sent to the remote first: the analysis, run on a worker, finds their
    outputs there."""
    client = make_store("client")
    sims, ana = graph(client, seeds=2)
    env = {"SCALEMS_STORE": client.root, "TMPDIR": str(tmp_path)}
    run_cli("scalems-store", "remote", "add", "r", str(tmp_path / "remote"), env=env)
    assert run_cli("scalems-store", "push", ana, env=env).returncode == 0  # calls, no result
    for sim in sims:
        assert run(sim, store=client).status == "success"
    done = run_cli("scalems-call", "exec", "--remote", "r", "--jobs", "2", "--json", ana, env=env)
    assert done.returncode == 0, done.stderr
    assert b"(results found here)" in done.stderr
    there = FileStore(tmp_path / "remote")
    assert all(there.get_ref("calls", sim) == client.get_ref("calls", sim) for sim in sims)
    assert b'"status": "success"' in done.stdout and there.get_ref("calls", ana)
