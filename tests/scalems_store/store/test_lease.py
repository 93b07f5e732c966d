"""Per-call leases: taken over when the holder is gone, never while it lives."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scalems_store.store import lease as lease_module
from scalems_store.store.lease import Lease


def write_holder(path: Path, **holder: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(holder))


def here(pid: int) -> dict[str, object]:
    return {"host": socket.gethostname(), "pidns": os.readlink("/proc/self/ns/pid"), "pid": pid}


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_lease_is_exclusive_and_released(tmp_path: Path) -> None:
    first, second = Lease(str(tmp_path / "l")), Lease(str(tmp_path / "l"))
    assert first.try_acquire()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()
    assert not (tmp_path / "l").exists()


def test_a_dead_local_holder_is_taken_over_at_once(tmp_path: Path) -> None:
    """A runner killed on this host (SIGKILL, SIGTERM) does not make the next one wait a TTL."""
    path = tmp_path / "l"
    write_holder(path, **here(dead_pid()))
    lease = Lease(str(path), ttl=3600)
    assert lease.try_acquire()
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lease.release()


def test_a_live_holder_keeps_its_lease(tmp_path: Path) -> None:
    path = tmp_path / "l"
    write_holder(path, **here(os.getppid()))
    assert not Lease(str(path), ttl=3600).try_acquire()


def test_another_hosts_holder_is_trusted_until_its_heartbeat_stops(tmp_path: Path) -> None:
    """A pid from another machine or PID namespace says nothing here: only the mtime counts."""
    path = tmp_path / "l"
    for elsewhere in ({"host": "node-17"}, {"pidns": "pid:[1]"}):
        write_holder(path, **{**here(dead_pid()), **elsewhere})
        assert not Lease(str(path), ttl=3600).try_acquire()
        os.utime(path, (0, 0))  # the heartbeat stopped long ago
        lease = Lease(str(path), ttl=3600)
        assert lease.try_acquire()
        lease.release()


def test_a_half_written_lease_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "l"
    path.write_text("")
    assert not Lease(str(path), ttl=3600).try_acquire()


def test_a_taker_that_loses_the_race_leaves_the_winner_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runners judge the same dead lease stale; the first takes it over between the
    second's look and its rename. The second must not move the winner's fresh lease away."""
    path = tmp_path / "l"
    write_holder(path, **here(dead_pid()))
    winner, loser = Lease(str(path), ttl=3600), Lease(str(path), ttl=3600)
    look = lease_module.stale
    won: list[os.stat_result] = []

    def look_then_lose_the_race(where: str, ttl: float) -> os.stat_result | None:
        judged = look(where, ttl)
        if not won:  # the loser looks first; the winner acts right after
            won.append(path.stat())
            assert winner.try_acquire()
            won[0] = path.stat()
        return judged

    monkeypatch.setattr(lease_module, "stale", look_then_lose_the_race)
    assert not loser.try_acquire()
    now = path.stat()
    assert (now.st_ino, now.st_mtime_ns) == (won[0].st_ino, won[0].st_mtime_ns), (
        "the winner's lease file was replaced"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["l"]
    winner.release()


@pytest.mark.parametrize(
    "named",
    ["victim", "run-{key12}-0123456789ab/../../victim", "objects", "link"],
    ids=["any directory", "a path that climbs out", "the store's objects", "a symlink"],
)
def test_a_dead_holders_scratch_is_removed_only_if_it_is_its_run_directory(
    tmp_path: Path, named: str
) -> None:
    """A lease file is writable by every user of a shared store: the scratch it names is
    removed at takeover only if it is a directory named after the lease's key, never
    another directory it points at."""
    key = "ab" * 32
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    (tmp_path / "objects").mkdir()
    (tmp_path / "objects" / "object").write_text("keep me too")
    (tmp_path / f"run-{key[:12]}-0123456789ab").symlink_to(victim)
    (tmp_path / "link").symlink_to(victim)
    target = f"run-{key[:12]}-0123456789ab" if named == "link" else named.format(key12=key[:12])
    lease_path = tmp_path / "leases" / key
    write_holder(lease_path, **here(dead_pid()), scratch=str(tmp_path / target))
    assert Lease(str(lease_path)).try_acquire()
    assert (victim / "precious").read_text() == "keep me"
    assert (tmp_path / "objects" / "object").read_text() == "keep me too"
    # its own run directory goes
    lease_path.unlink()
    own = Path(lease_module.scratch_for(str(tmp_path), key))
    own.mkdir()
    write_holder(lease_path, **here(dead_pid()), scratch=str(own))
    assert Lease(str(lease_path)).try_acquire()
    assert not own.exists()


def touched(path: Path, timeout: float = 10.0) -> bool:
    """Whether a heartbeat touches *path* (its mtime set to 0 here) within *timeout*."""
    os.utime(path, (0, 0))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.stat().st_mtime > 0:
            return True
        time.sleep(0.02)
    return False


def lease_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "scalems-lease"]


def test_one_thread_keeps_every_lease_of_a_process_fresh(tmp_path: Path) -> None:
    """Leases held at once are all kept fresh, by one heartbeat thread (not one each)."""
    leases = [Lease(str(tmp_path / name), ttl=0.2) for name in "abc"]
    assert all(lease.try_acquire() for lease in leases)
    try:
        assert all(touched(tmp_path / name) for name in "abc")
        assert len(lease_threads()) == 1
    finally:
        for lease in leases:
            lease.release()
    again = Lease(str(tmp_path / "a"), ttl=0.2)
    assert again.try_acquire()  # a lease taken after all were released is kept fresh too
    try:
        assert touched(tmp_path / "a")
        assert len(lease_threads()) == 1
    finally:
        again.release()


def test_a_released_lease_is_never_touched_again(tmp_path: Path) -> None:
    """Once release returns, the heartbeat leaves the path alone: a file another holder
    puts there is not kept fresh by us, while our other leases still are."""
    ours, other = Lease(str(tmp_path / "ours"), ttl=0.2), Lease(str(tmp_path / "other"), ttl=0.2)
    assert ours.try_acquire() and other.try_acquire()
    try:
        ours.release()
        write_holder(tmp_path / "ours", **here(os.getppid()))
        assert touched(tmp_path / "other")
        os.utime(tmp_path / "ours", (0, 0))
        assert touched(tmp_path / "other")  # several heartbeats later
        assert (tmp_path / "ours").stat().st_mtime == 0
    finally:
        other.release()


def test_a_forked_child_does_not_keep_its_parents_leases_alive(tmp_path: Path) -> None:
    """A child forked while a lease is held has no heartbeat for it (if the parent dies,
    its lease goes stale), and keeps a lease of its own fresh."""
    script = f"""
import os, sys, time
from scalems_store.store.lease import HEARTBEATS, Lease
parent = Lease({str(tmp_path / "parent")!r}, ttl=0.2)
assert parent.try_acquire()
pid = os.fork()
if pid == 0:
    held = HEARTBEATS.held()
    own = Lease({str(tmp_path / "child")!r}, ttl=0.2)
    own.try_acquire()
    os.utime(own.path, (0, 0))
    deadline = time.monotonic() + 10
    while os.stat(own.path).st_mtime == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    fresh = os.stat(own.path).st_mtime > 0
    own.release()
    os._exit(0 if (held, fresh) == (0, True) else 1)
_, status = os.waitpid(pid, 0)
parent.release()
sys.exit(os.waitstatus_to_exitcode(status))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_lease_with_a_shorter_period_is_kept_fresh_at_once(tmp_path: Path) -> None:
    """The heartbeat thread sleeping until a long-lived lease's next beat is woken for a
    lease taken later that needs its beats sooner."""
    slow, quick = Lease(str(tmp_path / "slow"), ttl=3600), Lease(str(tmp_path / "quick"), ttl=0.2)
    assert slow.try_acquire()
    try:
        time.sleep(0.1)  # the thread is asleep until the slow lease's beat, 15 minutes on
        assert quick.try_acquire()
        try:
            assert touched(tmp_path / "quick")
        finally:
            quick.release()
    finally:
        slow.release()
