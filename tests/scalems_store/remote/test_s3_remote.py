"""S3 remotes against a real S3 endpoint (moto_server) started and stopped by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scalems_store import FileStore, RemoteError, verify
from scalems_store.remote import packs, sync
from scalems_store.remote.settings import Remote
from tests.conftest import MakeStore, RunCli
from tests.scalems_store.remote.conftest import ran_call
from tests.scalems_store.remote.servers import S3_ENVIRONMENT, S3Server, s3_server

pytest.importorskip("s3fs", reason="S3 remotes need the s3 extra (s3fs)")


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in S3_ENVIRONMENT.items():
            patch.setenv(key, value)
        with s3_server(tmp_path_factory.mktemp("moto")) as server:
            import s3fs

            s3fs.S3FileSystem(endpoint_url=server.endpoint, skip_instance_cache=True).mkdir("bkt")
            yield server


def bucket(server: S3Server, prefix: str) -> Remote:
    return Remote("s3", f"s3://bkt/{prefix}", server.endpoint)


def test_push_and_pull_a_call_through_s3(
    moto: S3Server, make_store: MakeStore, tmp_path: Path
) -> None:
    """A call's closure and ref go to the bucket (a store's layout there) and come back
    into an empty store, verified; a second push sends nothing."""
    local = make_store("local")
    call, result = ran_call(local, tmp_path)
    local.set_label("job", call)
    remote = bucket(moto, "one")
    with sync.open_peer(remote, create=True) as peer:
        plan = sync.plan_push(local, peer, None, True)
        sync.push(local, peer, plan)
    with sync.open_peer(remote) as peer:
        assert sync.plan_push(local, peer, None, True).missing == []
    back = make_store("back")
    with sync.open_peer(remote) as peer:
        plan = sync.plan_pull(back, peer, ["job"], True)
        assert {e.fingerprint for e in plan.missing} == {
            e.fingerprint for e in plan.closure.entries
        }
        sync.pull(back, peer, plan)
    assert back.get_ref("calls", call) == [result] and back.labels() == {"job": call}
    assert back.kind(call) == "call" and back.kind(result) == "result"
    assert verify(back).ok


def test_tampered_bucket_objects_are_refused(moto: S3Server, make_store: MakeStore) -> None:
    """An object changed in the bucket is refused at pull: nothing published, no label."""
    import s3fs

    local = make_store("local")
    fp = local.add_bytes(b"original" * 1000)
    local.set_label("x", fp)
    remote = bucket(moto, "tamper")
    with sync.open_peer(remote, create=True) as peer:
        sync.push(local, peer, sync.plan_push(local, peer, None, True))
    fs = s3fs.S3FileSystem(endpoint_url=moto.endpoint, skip_instance_cache=True)
    fs.pipe_file(f"bkt/tamper/objects/{fp[:2]}/{fp[2:]}", b"changed" * 1000)
    back = make_store("back")
    with sync.open_peer(remote) as peer, pytest.raises(Exception, match=r"corrupt|fingerprint"):
        sync.pull(back, peer, sync.plan_pull(back, peer, ["x"], True))
    assert fp not in back and back.labels() == {}


def test_s3_on_the_command_line(moto: S3Server, run_cli: RunCli, tmp_path: Path) -> None:
    """remote add s3://... --endpoint-url, push, and pull into another store."""
    env = {"SCALEMS_STORE": str(tmp_path / "a"), **S3_ENVIRONMENT}
    (tmp_path / "f.txt").write_text("to s3\n")
    run_cli("scalems-store", "add", "f.txt", "--label", "f", env=env)
    add = ["remote", "add", "b", "s3://bkt/cli", "--endpoint-url", moto.endpoint]
    assert run_cli("scalems-store", *add, env=env).returncode == 0
    done = run_cli("scalems-store", "push", "--labels", env=env)
    assert done.returncode == 0 and done.stderr.startswith(b"sent 1 object"), done.stderr
    env["SCALEMS_STORE"] = str(tmp_path / "b")
    run_cli("scalems-store", *add, env=env)
    assert run_cli("scalems-store", "pull", "f", "--labels", env=env).returncode == 0
    assert run_cli("scalems-store", "get", "f", env=env).stdout == b"to s3\n"
    nothing = run_cli("scalems-store", "pull", "-r", "b", "nolabel", env=env)
    assert nothing.returncode == 1 and nothing.stderr.count(b"\n") == 1, nothing.stderr


def _serve_bucket(local: FileStore, server: S3Server, call: str) -> Remote:
    import s3fs

    s3fs.S3FileSystem(endpoint_url=server.endpoint, skip_instance_cache=True).mkdir("bkt")
    remote = bucket(server, "p")
    with sync.open_peer(remote, create=True) as peer:
        sync.push(local, peer, sync.plan_push(local, peer, [call], False))
    return remote


def test_the_server_stopped_mid_pull(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The S3 server stopped once the first pack of a pull arrived: that pack is here
    whole, nothing else, no ref; against a server holding the same again, the next pull
    fetches only the rest and completes."""
    for key, value in S3_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # a stopped server: fail at once
    monkeypatch.setattr(packs, "PACK_OBJECTS", 1)
    local = make_store("local")
    call, result = ran_call(local, tmp_path)
    back = make_store("back")
    with s3_server(tmp_path / "moto1") as server:
        remote = _serve_bucket(local, server, call)
        with sync.open_peer(remote) as peer:
            plan = sync.plan_pull(back, peer, [call], False)
            with pytest.raises(RemoteError):
                sync.pull(back, peer, plan, lambda _: server.stop())
    first = plan.missing[0].fingerprint
    assert list(back.iter_fingerprints()) == [first] and list(back.iter_refs()) == []
    assert verify(back).ok
    with s3_server(tmp_path / "moto2") as server:
        remote = _serve_bucket(local, server, call)
        with sync.open_peer(remote) as peer:
            again = sync.plan_pull(back, peer, [call], False)
            assert first not in {e.fingerprint for e in again.missing}
            assert len(again.missing) == len(plan.missing) - 1
            sync.pull(back, peer, again)
    assert back.get_ref("calls", call) == [result] and verify(back).ok
