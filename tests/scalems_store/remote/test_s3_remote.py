"""S3 remotes against a real S3 endpoint (moto_server) started and stopped by the tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scalems_store import FileStore, RemoteError, verify
from scalems_store.remote import packs, s3, sync
from scalems_store.remote.settings import Remote
from tests.conftest import MakeStore, RunCli
from tests.scalems_store.remote.conftest import (
    check_trust_travelled,
    ran_call,
    signed_unsigned_stranger,
)
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
    [pack] = fs.glob("bkt/tamper/packs/*.pack")
    fs.pipe_file(pack, fs.cat_file(pack).replace(b"original", b"changed!"))
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


def _fs(server: S3Server) -> Any:
    import s3fs

    return s3fs.S3FileSystem(endpoint_url=server.endpoint, skip_instance_cache=True)


def _many(store: FileStore, count: int, large: int = 0) -> tuple[str, list[str]]:
    """*count* small blobs (and *large* blobs of 300 KiB) named by one ref, labelled 'all'."""
    with store.batch():
        fps = [store.add_bytes(b"small %d\n" % i * 20) for i in range(count)]
        fps += [store.add_bytes(bytes([i]) * (300 << 10)) for i in range(large)]
    key = store.add_bytes(b"the key\n")
    store.set_ref("bench", key, fps)
    store.set_label("all", key)
    return key, fps


class Calls:
    """Counts the S3 requests a peer makes, by operation."""

    def __init__(self, peer: Any) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        inner = peer.fs._call_s3

        async def counted(method: str, *args: Any, **kwargs: Any) -> Any:
            self.seen.append((method, kwargs))
            return await inner(method, *args, **kwargs)

        peer.fs._call_s3 = counted

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.seen if name == method)


def test_small_objects_travel_in_packs_and_a_look_is_one_listing(
    moto: S3Server, make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Layout 2: 600 small objects go in packs (each with its index), a large one alone,
    refs as one ref log, then info.json. A fresh look at the bucket (a no-op push) is one
    LIST and no GET but store.json's (the indexes and ref logs are cached by name), made
    without s3fs; a pull of one object reads a range of its pack, not the pack."""
    monkeypatch.setattr(s3, "LOOSE", 256 << 10)
    monkeypatch.setattr(packs, "PACK_OBJECTS", 250)
    local = make_store("local")
    key, fps = _many(local, 600, large=1)
    remote = bucket(moto, "layout")
    with sync.open_peer(remote, create=True) as peer:
        sync.push(local, peer, sync.plan_push(local, peer, None, True))
    fs = _fs(moto)
    keys = [k.removeprefix("bkt/layout/") for k in fs.find("bkt/layout")]
    assert len([k for k in keys if k.endswith(".pack")]) == 3
    assert len([k for k in keys if k.endswith(".idx")]) == 3
    assert [k for k in keys if k.startswith("objects/")] == [f"objects/{fps[-1][:2]}/{fps[-1][2:]}"]
    assert len([k for k in keys if k.startswith("reflog/")]) == 1 and "info.json" in keys
    assert json.loads(fs.cat_file("bkt/layout/store.json"))["layout"] == 2
    light: list[str] = []
    inner = s3.Light._get

    def counted(self: s3.Light, path: str, query: dict[str, str]) -> bytes | None:
        light.append("list" if query else "get")
        return inner(self, path, query)

    monkeypatch.setattr(s3.Light, "_get", counted)
    with sync.open_peer(remote) as peer:
        assert light == ["get"]  # store.json
        assert sync.plan_push(local, peer, None, True).missing == []
        assert light == ["get", "list"] and peer._fs is None  # type: ignore[attr-defined]  # s3fs: not even made
    back = make_store("back")
    with sync.open_peer(remote) as peer:
        calls = Calls(peer)
        sync.pull(back, peer, sync.plan_pull(back, peer, [fps[7]], False), refs=False)
        ranges = [kw.get("Range") for name, kw in calls.seen if name == "get_object"]
    assert list(back.iter_fingerprints()) == [fps[7]]
    assert len(ranges) == 1 and ranges[0] is not None
    start, end = (int(n) for n in ranges[0].removeprefix("bytes=").split("-"))
    assert end + 1 - start == len(local.read_bytes(fps[7]))
    whole = make_store("whole")
    with sync.open_peer(remote) as peer:
        sync.pull(whole, peer, sync.plan_pull(whole, peer, ["all"], True))
    assert whole.get_ref("bench", key) == fps and whole.labels() == {"all": key}
    assert verify(whole).ok


def _old_layout(store: FileStore, fs: Any, prefix: str, names: list[str]) -> None:
    """Write what a push of layout 1 wrote: every object loose, meta files, ref keys."""
    from scalems_store.maint.bundle import closure

    entries, refs = closure(store, names)
    fs.pipe(
        {
            f"{prefix}/store.json": json.dumps(
                {"format": "scalems-store", "version": 1, "hash": "blake3", "remote": "s3"}
            ).encode(),
            **{
                f"{prefix}/objects/{e.fingerprint[:2]}/{e.fingerprint[2:]}": store.read_bytes(
                    e.fingerprint
                )
                for e in entries
            },
            **{
                f"{prefix}/meta/{e.fingerprint[:2]}/{e.fingerprint[2:]}": json.dumps(
                    {"kind": e.kind, "refs": list(e.refs)}
                ).encode()
                for e in entries
                if e.kind != "blob"
            },
            **{
                f"{prefix}/refs/{r.namespace}/{r.key[:2]}/{r.key}/{v}": b""
                for r in refs
                for v in r.values
            },
            **{f"{prefix}/refs/labels/{n}": f"{fp}\n".encode() for n, fp in store.labels().items()},
        }
    )


def test_a_bucket_of_layout_1_is_still_read_and_pushed_to(
    moto: S3Server, make_store: MakeStore, tmp_path: Path
) -> None:
    """A bucket an earlier version wrote (one key per object, a key per ref): pulled from
    as before; a push to it adds packs and a ref log, and both are read together."""
    local = make_store("local")
    call, result = ran_call(local, tmp_path)
    local.set_label("job", call)
    _old_layout(local, _fs(moto), "bkt/old", ["job"])
    remote = bucket(moto, "old")
    back = make_store("back")
    with sync.open_peer(remote) as peer:
        sync.pull(back, peer, sync.plan_pull(back, peer, ["job"], True))
    assert back.get_ref("calls", call) == [result] and back.labels() == {"job": call}
    assert verify(back).ok
    more = local.add_bytes(b"pushed later\n")
    local.set_label("later", more)
    with sync.open_peer(remote, create=True) as peer:
        plan = sync.plan_push(local, peer, None, True)
        assert [e.fingerprint for e in plan.missing] == [more]
        sync.push(local, peer, plan)
    with sync.open_peer(remote) as peer:
        sync.pull(back, peer, sync.plan_pull(back, peer, ["later", "job"], True))
    assert back.labels() == {"job": call, "later": more} and verify(back).ok


def test_a_bucket_of_a_newer_layout_is_refused_in_one_line(moto: S3Server) -> None:
    _fs(moto).pipe_file("bkt/new/store.json", b'{"format": "scalems-store", "layout": 9}')
    with pytest.raises(RemoteError, match="layout 9, written by a newer scalems-store"):
        sync.open_peer(bucket(moto, "new"))


def test_an_interrupted_push_resumes_without_resending_what_arrived(
    moto: S3Server, make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push cut after 3 packs (and a 4th pack written without its index): no ref, the
    pack without an index is not there for readers; the next push sends only the packs
    that had not arrived, then the refs."""
    monkeypatch.setattr(packs, "PACK_OBJECTS", 10)
    monkeypatch.setattr(s3, "_AT_ONCE", 1)
    local = make_store("local")
    key, fps = _many(local, 100)
    remote = bucket(moto, "cut")
    sent: list[list[str]] = []
    inner = s3.S3Peer._put_pack

    async def cut(self: s3.S3Peer, name: str, data: bytes, index: bytes) -> None:
        if len(sent) == 3:
            await self.fs._pipe_file(self._key("packs", f"{name}.pack"), data)
            raise OSError("connection lost")
        await inner(self, name, data, index)
        sent.append([o for o in json.loads(index)["objects"]])

    monkeypatch.setattr(s3.S3Peer, "_put_pack", cut)
    with sync.open_peer(remote, create=True) as peer:
        plan = sync.plan_push(local, peer, None, True)
        with pytest.raises(RemoteError, match="connection lost"):
            sync.push(local, peer, plan)
    fs = _fs(moto)
    assert len(fs.glob("bkt/cut/packs/*.pack")) == 4 and len(fs.glob("bkt/cut/packs/*.idx")) == 3
    assert fs.glob("bkt/cut/reflog/*") == []
    arrived = {o[0] for pack in sent for o in pack}
    monkeypatch.setattr(s3.S3Peer, "_put_pack", inner)
    with sync.open_peer(remote, create=True) as peer:
        again = sync.plan_push(local, peer, None, True)
        assert {e.fingerprint for e in again.missing} == {
            e.fingerprint for e in plan.missing
        } - arrived
        assert len(again.missing) == len(plan.missing) - 30
        sync.push(local, peer, again)
    back = make_store("back")
    with sync.open_peer(remote) as peer:
        sync.pull(back, peer, sync.plan_pull(back, peer, ["all"], True))
    assert back.get_ref("bench", key) == fps and verify(back).ok


def test_two_pushers_at_once_lose_nothing(
    moto: S3Server, make_store: MakeStore, tmp_path: Path
) -> None:
    """Two stores push overlapping closures at the same time, each a result of the same
    call and the same label naming different objects: the bucket ends with both results
    in the call's ref, the label of one of them (the newest ref log's), every object."""
    import threading

    from scalems_call import run

    first, second = make_store("first"), make_store("second")
    call, one = ran_call(first, tmp_path)
    call2, two = ran_call(second, tmp_path)
    assert call == call2 and one != two
    first.set_label("job", one)
    second.set_label("job", two)
    for store in (first, second):
        _many(store, 50)
    remote = bucket(moto, "race")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def push(store: FileStore) -> None:
        try:
            with sync.open_peer(remote, create=True) as peer:
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
    back = make_store("back")
    with sync.open_peer(remote) as peer:
        sync.pull(back, peer, sync.plan_pull(back, peer, [call, "job"], True))
        assert len(_fs(moto).glob("bkt/race/reflog/*")) == 2
    assert set(back.get_ref("calls", call)) == {one, two}
    assert back.labels()["job"] in (one, two) and verify(back).ok
    assert run(call, store=back).fingerprint in (one, two)  # a hit: both signed by you


def test_signatures_travel_through_s3_and_a_served_copy_of_the_bucket(
    moto: S3Server, make_store: MakeStore, tmp_path: Path, served: tuple[Path, str]
) -> None:
    """Pulled from S3, and from a copy of the bucket served over HTTP: the result you signed
    is a cache hit here, the unsigned one and a stranger's are not (until trusted)."""
    origin, stranger = signed_unsigned_stranger(make_store, tmp_path)
    remote = bucket(moto, "signed")
    with sync.open_peer(remote, create=True) as peer:
        sync.push(origin, peer, sync.plan_push(origin, peer, None, True))
    back = make_store("back")
    with sync.open_peer(remote) as peer:
        sync.pull(back, peer, sync.plan_pull(back, peer, ["mine", "bare", "stranger"], True))
    check_trust_travelled(back, stranger["key"])
    www, url = served
    _fs(moto).get("bkt/signed/", str(www / "bucket"), recursive=True)
    web = make_store("web")
    with sync.open_peer(Remote("web", url + "bucket")) as peer:
        assert type(peer).__name__ == "HttpBucketPeer"
        sync.pull(web, peer, sync.plan_pull(web, peer, ["mine", "bare", "stranger"], True))
    assert verify(web).ok
    check_trust_travelled(web, stranger["key"])


def test_a_served_copy_of_a_bucket_is_read_and_checked(
    moto: S3Server, make_store: MakeStore, served: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTP, a bucket's copy is found from its info.json (no listing): one object
    pulled alone, then everything; a pack tampered with is refused, nothing published."""
    monkeypatch.setattr(s3, "LOOSE", 256 << 10)
    local = make_store("local")
    key, fps = _many(local, 300, large=1)
    remote = bucket(moto, "web")
    with sync.open_peer(remote, create=True) as peer:
        sync.push(local, peer, sync.plan_push(local, peer, None, True))
    www, url = served
    _fs(moto).get("bkt/web/", str(www / "b"), recursive=True)
    web = Remote("web", url + "b")
    one = make_store("one")
    with sync.open_peer(web) as peer:
        sync.pull(one, peer, sync.plan_pull(one, peer, [fps[3]], False), refs=False)
    assert list(one.iter_fingerprints()) == [fps[3]]
    every = make_store("every")
    with sync.open_peer(web) as peer:
        sync.pull(every, peer, sync.plan_pull(every, peer, ["all"], True))
    assert every.get_ref("bench", key) == fps and verify(every).ok
    [pack] = (www / "b" / "packs").glob("*.pack")
    pack.write_bytes(pack.read_bytes().replace(b"small 1", b"SMALL 1"))
    bad = make_store("bad")
    with sync.open_peer(web) as peer, pytest.raises(Exception, match=r"corrupt|fingerprint"):
        sync.pull(bad, peer, sync.plan_pull(bad, peer, ["all"], True))
    assert list(bad.iter_fingerprints()) == [] and bad.labels() == {}


def test_exec_remote_on_s3_serves_a_hit_with_the_result_record_only(
    moto: S3Server, make_store: MakeStore, run_cli: RunCli, tmp_path: Path
) -> None:
    """``scalems-call exec --remote`` against a bucket: the result recorded there is a hit
    in an empty store, which then holds the result record (read by range from its pack)
    and none of its outputs."""
    origin = make_store("origin")
    call, result = ran_call(origin, tmp_path)
    remote = bucket(moto, "exec")
    with sync.open_peer(remote, create=True) as peer:
        sync.push(origin, peer, sync.plan_push(origin, peer, None, True))
    env = {"SCALEMS_STORE": str(tmp_path / "empty"), **S3_ENVIRONMENT}
    add = ["remote", "add", "b", "s3://bkt/exec", "--endpoint-url", moto.endpoint]
    assert run_cli("scalems-store", *add, env=env).returncode == 0
    hit = run_cli("scalems-call", "exec", "--remote", "b", call, env=env)
    assert hit.returncode == 0 and hit.stdout.decode().split() == [result], hit.stderr
    assert b"cached on b" in hit.stderr
    empty = FileStore(tmp_path / "empty")
    assert set(empty.iter_fingerprints()) <= {call, result} and result in empty


def test_the_light_client_signs_as_botocore_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The signed GETs of a no-op push (without s3fs) carry the same Signature Version 4
    botocore computes for the same request, time and credentials."""
    import datetime
    import time

    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials

    when = datetime.datetime(2026, 12, 7, 1, 2, 3)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when)
    light = s3.Light("https://minio.example.org:9000/base", "eu-west-3", "AKID", "SECRET", "TOK")
    query = {"list-type": "2", "prefix": "a b/c~d+", "continuation-token": "x/y=="}
    ours = light.headers("GET", "/bkt", query, time.struct_time(when.timetuple()))
    request = AWSRequest(
        method="GET", url="https://minio.example.org:9000/base/bkt?" + s3._query(query)
    )
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    signer = botocore.auth.S3SigV4Auth(Credentials("AKID", "SECRET", "TOK"), "s3", "eu-west-3")
    signer.add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]


def test_a_push_with_nothing_new_needs_no_s3fs(
    moto: S3Server, make_store: MakeStore, tmp_path: Path
) -> None:
    """A no-op push from 2,000 objects: two signed GETs (store.json and one LIST page),
    no s3fs import, nothing walked."""
    import subprocess
    import sys

    local = make_store("local")
    _many(local, 2000)
    remote = bucket(moto, "noop")
    with sync.open_peer(remote, create=True) as peer:
        sync.push(local, peer, sync.plan_push(local, peer, None, True))
    script = f"""
import sys
from scalems_store import FileStore
from scalems_store.remote import s3, sync
from scalems_store.remote.settings import Remote
gets = []
inner = s3.Light._get
def counted(self, path, query):
    gets.append(path)
    return inner(self, path, query)
s3.Light._get = counted
local = FileStore({local.root!r})
with sync.open_peer(Remote("s3", "s3://bkt/noop", {moto.endpoint!r}), create=True) as peer:
    plan = sync.plan_push(local, peer, None, True)
    sync.push(local, peer, plan)
assert plan.closure.entries == [] and plan.missing == [] and plan.closure.refs == []
print(len(gets), "s3fs" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    assert done.stdout.split() == [b"2", b"False"], done.stderr


def test_the_light_client_pages_listings_and_gives_way_to_s3fs(
    moto: S3Server, make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A layout 1 bucket is listed a page at a time by the light client; where the light
    client fails, s3fs does the same work and the result is the same."""
    monkeypatch.setattr(s3, "_PAGE", 50)
    local = make_store("local")
    key, fps = _many(local, 59)
    _old_layout(local, _fs(moto), "bkt/paged", ["all"])
    pages: list[dict[str, str]] = []
    inner = s3.Light._get

    def counted(self: s3.Light, path: str, query: dict[str, str]) -> bytes | None:
        if query:
            pages.append(query)
        return inner(self, path, query)

    monkeypatch.setattr(s3.Light, "_get", counted)
    with sync.open_peer(bucket(moto, "paged")) as peer:
        assert set(peer.sizes()) == {key, *fps}  # type: ignore[attr-defined]
    # 60 objects and 59 keys of the ref (layout 1: a key per value), and the rest
    assert len(pages) == 3 and all("continuation-token" in page for page in pages[1:])

    def broken(self: s3.Light, path: str, query: dict[str, str]) -> bytes | None:
        raise OSError("no route")

    monkeypatch.setattr(s3.Light, "_get", broken)
    back = make_store("back")
    with sync.open_peer(bucket(moto, "paged")) as peer:
        sync.pull(back, peer, sync.plan_pull(back, peer, ["all"], True))
        assert peer.light is None  # type: ignore[attr-defined]
    assert set(back.get_ref("bench", key)) == set(fps) and verify(back).ok  # layout 1: unordered


def test_a_thin_tree_goes_through_s3_thin(
    moto: S3Server, make_store: MakeStore, tmp_path: Path
) -> None:
    """A tree stored thin is pushed as stored (its thin form and its pieces, the shared
    file once) and comes back into an empty store verified, byte for byte."""
    from scalems_store.tar import thintar
    from tests.scalems_store.objects.test_thin import golden_tree, stored, whole

    local = make_store("local")
    golden_tree(tmp_path / "t")
    fp = local.add_tree(tmp_path / "t", label="t")
    remote = bucket(moto, "thin")
    with sync.open_peer(remote, create=True) as peer:
        plan = sync.plan_push(local, peer, ["t"], True)
        assert len(plan.missing) == 3  # the thin tree and its two pieces
        sync.push(local, peer, plan)
    back = make_store("back")
    with sync.open_peer(remote) as peer:
        sync.pull(back, peer, sync.plan_pull(back, peer, ["t"], True))
    assert thintar.is_thin(stored(back, fp)) and back.read_bytes(fp) == whole(tmp_path / "t")
    assert back.labels() == {"t": fp} and verify(back).ok
