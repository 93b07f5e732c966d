"""SSH remotes through a real OpenSSH sshd that the tests start and stop: push, pull,
what a missing scalems-store on the far side says, and sshd killed mid-push."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from scalems_store import FileStore, ObjectNotFound, RemoteError, StoreNotFound, verify
from scalems_store.remote import packs, settings, sync
from scalems_store.remote.settings import Remote
from tests.conftest import MakeStore, RunCli, entry_point
from tests.scalems_store.remote.conftest import (
    check_trust_travelled,
    ran_call,
    signed_unsigned_stranger,
)
from tests.scalems_store.remote.servers import Sshd, sshd

COMMAND = entry_point("scalems-store")[0]


@pytest.fixture
def ssh_env(sshd_server: Sshd, monkeypatch: pytest.MonkeyPatch) -> Sshd:
    monkeypatch.setenv("SCALEMS_SSH_COMMAND", sshd_server.ssh_command)
    return sshd_server


def remote_at(server: Sshd, path: Path, command: str | None = COMMAND) -> Remote:
    return Remote("far", settings.normalize_url(server.url(path)), None, command)


def test_push_and_pull_a_call_over_ssh(
    ssh_env: Sshd, make_store: MakeStore, tmp_path: Path
) -> None:
    """A call's closure and its ref go over ssh to a store made there on first push, and
    come back into an empty store; a second push sends nothing."""
    local = make_store("local")
    call, result = ran_call(local, tmp_path)
    remote = remote_at(ssh_env, tmp_path / "far")
    with sync.open_peer(remote, create=True) as peer:
        plan = sync.plan_push(local, peer, [call], False)
        sync.push(local, peer, plan)
        assert sync.plan_push(local, peer, [call], False).missing == []
    far = FileStore(tmp_path / "far", create=False)
    assert far.get_ref("calls", call) == [result] and verify(far).ok
    back = make_store("back")
    moved: list[int] = []
    with sync.open_peer(remote) as peer:
        plan = sync.plan_pull(back, peer, [call[:10]], False)
        sync.pull(back, peer, plan, moved.append)
    assert back.get_ref("calls", call) == [result] and verify(back).ok
    assert sum(moved) >= plan.bytes > 0  # the progress saw every byte (and the tar framing)


def test_errors_from_the_far_side_are_one_line(ssh_env: Sshd, tmp_path: Path) -> None:
    """No store there (pull), a name it cannot resolve, and no scalems-store there: each
    one clear error, the last naming how to install it."""
    with pytest.raises(StoreNotFound, match="far"):
        sync.open_peer(remote_at(ssh_env, tmp_path / "none"))
    FileStore(tmp_path / "empty")
    with (
        sync.open_peer(remote_at(ssh_env, tmp_path / "empty")) as peer,
        pytest.raises(ObjectNotFound, match="no label 'nothing'"),
    ):
        peer.closure(["nothing"], False)
    with pytest.raises(RemoteError, match=r"does not run on far .*pip install scalems-store"):
        sync.open_peer(remote_at(ssh_env, tmp_path / "empty", "no-such-scalems-store"))


def test_push_on_the_command_line_over_ssh(ssh_env: Sshd, run_cli: RunCli, tmp_path: Path) -> None:
    """remote add ssh://... --command, push --labels, pull into another store."""
    env = {"SCALEMS_STORE": str(tmp_path / "a"), "SCALEMS_SSH_COMMAND": ssh_env.ssh_command}
    (tmp_path / "f.txt").write_text("over ssh\n")
    assert run_cli("scalems-store", "add", "f.txt", "--label", "f", env=env).returncode == 0
    url = ssh_env.url(tmp_path / "far")
    assert (
        run_cli(
            "scalems-store", "remote", "add", "far", url, "--command", COMMAND, env=env
        ).returncode
        == 0
    )
    done = run_cli("scalems-store", "push", "--labels", env=env)
    assert done.returncode == 0 and done.stderr.startswith(b"sent 1 object"), done.stderr
    env["SCALEMS_STORE"] = str(tmp_path / "b")
    run_cli("scalems-store", "remote", "add", "far", url, "--command", COMMAND, env=env)
    done = run_cli("scalems-store", "pull", "f", "--labels", env=env)
    assert done.returncode == 0, done.stderr
    got = run_cli("scalems-store", "get", "f", env=env)
    assert got.stdout == b"over ssh\n"


def _kill_tree(pid: int) -> None:
    """SIGKILL *pid* (an sshd we started) and every process below it."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    below = children.read_text().split() if children.exists() else []
    os.kill(pid, signal.SIGKILL)
    for child in below:
        _kill_tree(int(child))


def test_sshd_killed_mid_push_leaves_nothing_partial_and_the_next_push_resumes(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sshd and its sessions killed (-9) while the third of five packs streams: the two
    packs that arrived are published whole, nothing else, no ref; through a new sshd the
    next push sends only the other three."""
    monkeypatch.setattr(packs, "PACK_OBJECTS", 1)
    local = make_store("local")
    blobs = [local.add_bytes(bytes([i]) * (3 << 20)) for i in range(5)]
    local.set_label("five", local.add_bytes(b"\n".join(f"blake3:{b}".encode() for b in blobs)))
    with sshd(tmp_path / "sshd1") as server:
        monkeypatch.setenv("SCALEMS_SSH_COMMAND", server.ssh_command)
        sent = [0]

        def progress(count: int) -> None:
            sent[0] += count
            if sent[0] > 2.5 * (3 << 20) and server.process.poll() is None:
                _kill_tree(server.process.pid)

        with (
            pytest.raises(RemoteError, match="connection"),
            sync.open_peer(remote_at(server, tmp_path / "far"), create=True) as peer,
        ):
            plan = sync.plan_push(local, peer, blobs, False)
            sync.push(local, peer, plan, progress)
    far = FileStore(tmp_path / "far", create=False)
    present = [fp for fp in blobs if fp in far]
    assert present == [e.fingerprint for e in plan.missing[:2]]
    assert verify(far).ok and list(far.iter_refs()) == []
    with sshd(tmp_path / "sshd2") as server:
        monkeypatch.setenv("SCALEMS_SSH_COMMAND", server.ssh_command)
        with sync.open_peer(remote_at(server, tmp_path / "far"), create=True) as peer:
            plan = sync.plan_push(local, peer, blobs, False)
            assert {e.fingerprint for e in plan.missing} == set(blobs) - set(present)
            sync.push(local, peer, plan)
    assert all(fp in far for fp in blobs) and verify(far).ok


def test_signatures_travel_over_ssh(ssh_env: Sshd, make_store: MakeStore, tmp_path: Path) -> None:
    """Pushed over ssh and pulled back into an empty store: the result you signed is a
    cache hit, the unsigned one and a stranger's are not (until trusted)."""
    origin, stranger = signed_unsigned_stranger(make_store, tmp_path)
    remote = remote_at(ssh_env, tmp_path / "far")
    with sync.open_peer(remote, create=True) as peer:
        sync.push(origin, peer, sync.plan_push(origin, peer, None, True))
    back = make_store("back")
    with sync.open_peer(remote) as peer:
        sync.pull(back, peer, sync.plan_pull(back, peer, ["mine", "bare", "stranger"], True))
    check_trust_travelled(back, stranger["key"])


def test_two_pushers_at_once_over_ssh_lose_nothing(
    ssh_env: Sshd, make_store: MakeStore, tmp_path: Path
) -> None:
    """Two stores push overlapping closures to one far store at once, each a result of the
    same call and the same label for different objects: both results end in the call's
    ref (under the far side's lock), the label names one of them, nothing is partial; a
    no-op push afterwards (of the store whose label won) walks nothing."""
    import threading

    first, second = make_store("first"), make_store("second")
    call, one = ran_call(first, tmp_path)
    _, two = ran_call(second, tmp_path)
    first.set_label("job", one)
    second.set_label("job", two)
    remote = remote_at(ssh_env, tmp_path / "race")
    FileStore(tmp_path / "race")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def push(store: FileStore) -> None:
        try:
            with sync.open_peer(remote) as peer:
                plan = sync.plan_push(store, peer, None, True)
                barrier.wait()
                sync.push(store, peer, plan)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    far = FileStore(tmp_path / "race", create=False)
    assert set(far.get_ref("calls", call)) == {one, two}
    assert far.labels()["job"] in (one, two) and verify(far).ok
    winner = first if far.labels()["job"] == one else second
    with sync.open_peer(remote) as peer:
        again = sync.plan_push(winner, peer, None, True)
    assert again.closure.entries == [] and again.missing == [] and again.closure.refs == []
