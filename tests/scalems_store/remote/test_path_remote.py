"""push, pull and fetch with a remote that is another store on disk: closures, refs last,
every object verified, resumable, safe when two push at once."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from scalems_store import FileStore, FingerprintMismatch, RemoteError, gc, verify
from scalems_store.maint.bundle import Entry
from scalems_store.objects import content
from scalems_store.remote import packs, settings, sync
from scalems_store.remote.peer import LocalPeer, Peer
from scalems_store.store.refs import Ref, Signature
from tests.conftest import MakeStore, entry_point
from tests.scalems_store.remote.conftest import ran_call


def push(
    store: FileStore, remote: FileStore, names: list[str] | None, labels: bool = False
) -> sync.Plan:
    with LocalPeer(FileStore(remote.root)) as peer:
        plan = sync.plan_push(store, peer, names, labels)
        sync.push(store, peer, plan)
    return plan


def pull(store: FileStore, remote: FileStore, names: list[str], *, refs: bool = True) -> sync.Plan:
    with LocalPeer(FileStore(remote.root)) as peer:
        plan = sync.plan_pull(store, peer, names, labels=refs)
        sync.pull(store, peer, plan, refs=refs)
    return plan


def test_push_sends_a_call_closure_and_its_refs_then_nothing(
    make_store: MakeStore, tmp_path: Path
) -> None:
    """Pushing a call sends its record, skeleton, result, stdout, stderr and output tree and
    the ref recording the result; pushed again, nothing is sent; the remote verifies clean."""
    local, remote = make_store("local"), make_store("remote")
    call, result = ran_call(local, tmp_path)
    plan = push(local, remote, [call[:12]])
    wanted = {call, result, *content.references("result", local.read_bytes(result))}
    wanted |= set(content.references("call", local.read_bytes(call)))
    assert {e.fingerprint for e in plan.missing} == wanted
    assert all(fp in remote for fp in wanted)
    assert remote.get_ref("calls", call) == [result]
    assert remote.kind(call) == "call" and remote.kind(result) == "result"
    assert verify(remote).ok
    again = push(local, remote, [call])
    assert again.missing == [] and len(again.closure.entries) == len(wanted)


def test_push_with_no_names_sends_what_labels_and_refs_reach_with_labels(
    make_store: MakeStore, tmp_path: Path
) -> None:
    """No names: every label's object and every recorded call travel; --labels sets the
    labels there; an unreferenced object stays home."""
    local, remote = make_store("local"), make_store("remote")
    call, result = ran_call(local, tmp_path)
    labelled = local.add_bytes(b"labelled")
    local.set_label("data", labelled)
    loose = local.add_bytes(b"loose")
    push(local, remote, None, labels=True)
    assert labelled in remote and call in remote and result in remote
    assert loose not in remote
    assert remote.labels() == {"data": labelled}


def test_pull_brings_closures_and_refs_fetch_only_objects(
    make_store: MakeStore, tmp_path: Path
) -> None:
    """pull LABEL brings the call's closure, its result ref and the label (asked for);
    fetch brings the objects but sets no ref."""
    origin = make_store("origin")
    call, result = ran_call(origin, tmp_path)
    origin.set_label("job", call)
    puller, fetcher = make_store("puller"), make_store("fetcher")
    pull(puller, origin, ["job"])
    assert puller.get_ref("calls", call) == [result] and puller.labels() == {"job": call}
    assert verify(puller).ok
    pull(fetcher, origin, ["job"], refs=False)
    assert result in fetcher and call in fetcher
    assert fetcher.get_ref("calls", call) == [] and fetcher.labels() == {}


def test_a_remote_never_decides_local_gc(make_store: MakeStore, tmp_path: Path) -> None:
    """Fetched objects no local root names are collected by a local gc, whatever the
    remote holds; the remote's copies are untouched."""
    origin, here = make_store("origin"), make_store("here")
    call, result = ran_call(origin, tmp_path)
    pull(here, origin, [call], refs=False)
    report = gc(here, grace=0)
    assert call in report.removed and result in report.removed
    assert call in origin and result in origin and verify(origin).ok


class Flaky(Peer):
    """A peer that fails after *packs* packs arrived (the connection cut)."""

    def __init__(self, inner: LocalPeer, packs: int) -> None:
        self.inner, self.left, self.where = inner, packs, inner.where
        self.sent: list[int] = []

    def have(self, fingerprints: list[str]) -> set[str]:
        return self.inner.have(fingerprints)

    def put(self, write: Callable[[IO[bytes]], object]) -> int:
        if self.left == 0:
            raise RemoteError("connection cut")
        self.left -= 1
        count = self.inner.put(write)
        self.sent.append(count)
        return count

    def update(
        self,
        refs: list[Ref],
        labels: dict[str, str],
        signatures: dict[str, list[Signature]] | None = None,
    ) -> None:
        self.inner.update(refs, labels, signatures)


def test_an_interrupted_push_leaves_no_ref_and_resumes_without_resending(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut after two packs of one object: those two are published there (dependencies
    first), no ref names anything; run again, only the rest is sent, then the ref."""
    monkeypatch.setattr(packs, "PACK_OBJECTS", 1)
    local, remote = make_store("local"), make_store("remote")
    call, result = ran_call(local, tmp_path)
    flaky = Flaky(LocalPeer(FileStore(remote.root)), packs=2)
    plan = sync.plan_push(local, flaky, [call], False)
    with pytest.raises(RemoteError, match="connection cut"):
        sync.push(local, flaky, plan, None)
    arrived = [e.fingerprint for e in plan.missing[:2]]
    assert all(fp in remote for fp in arrived)
    assert list(remote.iter_refs()) == [] and verify(remote).ok
    # published dependencies first: whatever is there has all it references
    for fp in remote.iter_fingerprints():
        assert all(ref in remote for ref in remote.references(fp))
    again = Flaky(LocalPeer(FileStore(remote.root)), packs=100)
    plan2 = sync.plan_push(local, again, [call], False)
    assert {e.fingerprint for e in plan2.missing}.isdisjoint(arrived)
    sync.push(local, again, plan2, None)
    assert sum(again.sent) == len(plan.missing) - 2
    assert remote.get_ref("calls", call) == [result]


def test_a_corrupt_pack_is_refused_whole(make_store: MakeStore) -> None:
    """A pack whose object does not match its name publishes nothing of the pack."""
    local, remote = make_store("local"), make_store("remote")
    good, bad = local.add_bytes(b"good" * 100), local.add_bytes(b"bad!" * 100)
    entries = [Entry(good, "blob", ()), Entry(bad, "blob", ())]
    buffer = io.BytesIO()
    packs.write(local, entries, buffer)
    data = buffer.getvalue().replace(b"bad!" * 100, b"BAD!" * 100)
    peer = LocalPeer(FileStore(remote.root))
    with pytest.raises(FingerprintMismatch):
        peer.put(lambda out: out.write(data))
    assert list(remote.iter_fingerprints()) == []


def test_a_ref_naming_a_missing_object_is_refused(make_store: MakeStore, tmp_path: Path) -> None:
    """The receiver sets no ref (or label) unless every object it names is there."""
    local, remote = make_store("local"), make_store("remote")
    call, result = ran_call(local, tmp_path)
    peer = LocalPeer(FileStore(remote.root))
    with pytest.raises(RemoteError, match="does not hold"):
        peer.update([Ref("calls", call, [result])], {})
    with pytest.raises(RemoteError, match="refusing label"):
        peer.update([], {"x": result})
    assert list(remote.iter_refs()) == [] and remote.labels() == {}


def test_a_corrupt_object_at_the_source_stops_the_pull(
    make_store: MakeStore, tmp_path: Path
) -> None:
    """An object the remote holds damaged is not sent as good: the pull fails naming it,
    and nothing of its pack, nor any ref, appears here."""
    origin, here = make_store("origin"), make_store("here")
    call, result = ran_call(origin, tmp_path)
    stdout = content.decode(origin.read_bytes(result), "result")["stdout"].removeprefix("blake3:")
    path = origin.object_path(stdout)
    os.chmod(path, 0o644)
    Path(path).write_bytes(b"tampered")
    with pytest.raises(Exception, match="corrupt"):
        pull(here, origin, [call])
    assert here.get_ref("calls", call) == [] and stdout not in here


def _push_in_process(local: str, remote: str, call: str) -> None:
    store = FileStore(local)
    with LocalPeer(FileStore(remote, create=True)) as peer:
        sync.push(store, peer, sync.plan_push(store, peer, [call], False))


def test_concurrent_pushes_of_overlapping_closures(make_store: MakeStore, tmp_path: Path) -> None:
    """Two stores that ran the same call push at once: both results end up in the one ref
    (none lost), every object is whole, and the remote verifies clean."""
    first, second = make_store("first"), make_store("second")
    call, result1 = ran_call(first, tmp_path)
    call2, result2 = ran_call(second, tmp_path)
    assert call == call2 and result1 != result2
    remote = tmp_path / "remote"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_push_in_process, args=(store.root, str(remote), call))
        for store in (first, second)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    there = FileStore(remote)
    assert set(there.get_ref("calls", call)) == {result1, result2}
    assert verify(there).ok


def test_push_pull_on_the_command_line(make_store: MakeStore, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """push --labels, pull --labels and fetch through the installed command: one line each
    on stderr saying what moved; a name the remote lacks is one line, exit 1."""
    local = make_store("local")
    fp = local.add_bytes(b"payload\n")
    local.set_label("p", fp)
    env = {"SCALEMS_STORE": local.root}
    assert (
        run_cli("scalems-store", "remote", "add", "disk", str(tmp_path / "r"), env=env).returncode
        == 0
    )
    done = run_cli("scalems-store", "push", "--labels", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode() == "sent 1 object (8 B) to disk; labels p\n"
    other = {"SCALEMS_STORE": str(tmp_path / "other")}
    run_cli("scalems-store", "remote", "add", "disk", str(tmp_path / "r"), env=other)
    done = run_cli("scalems-store", "pull", "p", "--labels", env=other)
    assert (
        done.returncode == 0
        and done.stderr.decode() == "received 1 object (8 B) from disk; labels p\n"
    )
    assert FileStore(tmp_path / "other").labels() == {"p": fp}
    missing = run_cli("scalems-store", "fetch", "nolabel", env=other)
    assert missing.returncode == 1 and missing.stderr.count(b"\n") == 1
    assert b"no label 'nolabel'" in missing.stderr
    assert settings.find(str(tmp_path / "other"), None).name == "disk"


def _push_then_hang(local: str, remote: str, marker: str) -> None:
    """Push everything; once 8 MiB are on their way, say so in *marker* and hang."""
    store = FileStore(local)
    sent = [0]

    def progress(count: int) -> None:
        sent[0] += count
        if sent[0] > 8 << 20 and not os.path.exists(marker):
            Path(marker).write_text("mid-push")
            time.sleep(600)  # killed here

    with LocalPeer(FileStore(remote)) as peer:
        sync.push(store, peer, sync.plan_push(store, peer, None, True), progress)


def test_a_client_killed_mid_push_leaves_nothing_partial(
    make_store: MakeStore, tmp_path: Path
) -> None:
    """kill -9 of a pushing client while its pack is half sent: no object of that pack,
    no ref, a clean verify at the remote; the next push (the command) completes."""
    local = make_store("local")
    big = local.add_bytes(os.urandom(1 << 20) * 16)
    local.set_label("big", big)
    remote = tmp_path / "remote"
    FileStore(remote)
    marker = tmp_path / "marker"
    context = multiprocessing.get_context("spawn")
    client = context.Process(target=_push_then_hang, args=(local.root, str(remote), str(marker)))
    client.start()
    deadline = time.monotonic() + 60
    while not marker.exists() and client.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists(), "the push did not get going"
    os.kill(client.pid, signal.SIGKILL)  # type: ignore[arg-type]
    client.join()
    there = FileStore(remote)
    assert list(there.iter_fingerprints()) == [] and there.labels() == {}
    assert verify(there).ok
    env = {**os.environ, "SCALEMS_STORE": local.root}
    subprocess.run(
        [*entry_point("scalems-store"), "remote", "add", "r", str(remote)],
        env=env,
        check=True,
        capture_output=True,
    )
    again = subprocess.run(
        [*entry_point("scalems-store"), "push", "--labels"], env=env, capture_output=True
    )
    assert again.returncode == 0, again.stderr
    assert there.check(big) == big and there.labels() == {"big": big}
