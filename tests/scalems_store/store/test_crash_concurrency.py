"""Crash safety (SIGKILL mid-write) and many concurrent writers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalems_store import FileStore, gc, hash_bytes, verify
from tests.recordutil import call_record

WRITER = """
import os, sys
from scalems_store import FileStore
store = FileStore(sys.argv[1])
src = sys.argv[2]
i = 0
while True:
    i += 1
    data = os.urandom(6 << 20)           # large: the copy that hashes as it goes
    with open(src, "wb") as f:
        f.write(data)
    store.add_file(src)
    store.add_bytes(os.urandom(3000) * 10)  # small path
    d = os.path.join(os.path.dirname(src), "tree%d" % i)
    os.makedirs(d)
    for j in range(50):
        with open(os.path.join(d, str(j)), "wb") as f:
            f.write(os.urandom(2000))
    store.add_tree(d)
    print(i, flush=True)
"""

ADDER = """
import sys
from scalems_store import FileStore
from tests.recordutil import call_record
root, who = sys.argv[1], sys.argv[2]
with FileStore(root) as store:
    for i in range(60):
        store.add_bytes(b"shared-%d" % i)
        store.add_bytes(call_record(func="own-%s-%d" % (who, i)), kind="call")
"""


def test_sigkill_mid_add_leaves_no_partial_object(tmp_path: Path) -> None:
    """Killing writers at random moments, repeatedly, never leaves a bad object; gc sweeps tmp."""
    root = tmp_path / "store"
    FileStore(root).close()
    rng = random.Random(1234)
    for round_ in range(8):
        work = tmp_path / f"w{round_}"
        work.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(work / "src")], stdout=subprocess.DEVNULL
        )
        time.sleep(0.3 + rng.random() * 0.7)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with FileStore(root) as store:
        fingerprints = list(store.iter_fingerprints())
        assert fingerprints, "the writers should have published something"
        report = verify(store)
        assert report.ok, report.problems
        assert report.checked == len(fingerprints)
        for fp in fingerprints:
            assert os.stat(store.object_path(fp)).st_mode & 0o777 == 0o444
        gc(store, grace=0)
        assert os.listdir(root / "tmp") == []


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """Four processes adding shared and own content at once: everything is stored and indexed."""
    root = tmp_path / "store"
    FileStore(root).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", ADDER, str(root), str(n)], stderr=subprocess.PIPE)
        for n in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    expected = {hash_bytes(b"shared-%d" % i) for i in range(60)}
    expected |= {hash_bytes(call_record(func=f"own-{n}-{i}")) for n in range(4) for i in range(60)}
    with FileStore(root) as store:
        assert set(store.iter_fingerprints()) == expected
        assert {info.fingerprint for info in store.list()} == expected
        assert len(store.list(kind="call")) == 240
        assert verify(store).ok


RACER = """
import sys
from scalems_store import FileStore, gc
root, role = sys.argv[1], sys.argv[2]
with FileStore(root) as store:
    if role == "gc":
        print("collecting", flush=True)
        while True:
            gc(store, grace=0)
    for i in range(1500):
        store.add_bytes(b"contended-%d" % (i % 3))
        store.add_bytes(b"label me-%d" % (i % 2), label="kept")
print("done", flush=True)
"""


def test_add_racing_gc_never_fails(tmp_path: Path) -> None:
    """Adds of content that gc --grace 0 keeps removing all succeed: an add publishes again."""
    root = tmp_path / "store"
    FileStore(root).close()
    collector = subprocess.Popen(
        [sys.executable, "-c", RACER, str(root), "gc"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert collector.stdout is not None and collector.stdout.readline() == b"collecting\n"
    try:
        adder = subprocess.run(
            [sys.executable, "-c", RACER, str(root), "add"], capture_output=True, timeout=120
        )
    finally:
        collector.kill()
        _, gc_err = collector.communicate()
        collector.stdout.close()
    assert adder.returncode == 0 and adder.stdout == b"done\n", adder.stderr.decode()
    assert b"Traceback" not in gc_err, gc_err.decode()


def test_a_fan_out_made_by_another_writer_meanwhile(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first object of a fan-out directory: if another writer creates the directory
    between our failed link and our look, ours is still published (it was once taken
    for a vanished temporary file, and the add failed)."""
    data = b"first of its fan-out"
    fp = hash_bytes(data)
    fan_out = os.path.dirname(store.object_path(fp))
    if os.path.isdir(fan_out):
        os.rmdir(fan_out)
    real_link = os.link

    def link_racing(src: str, dst: str) -> None:
        if not os.path.isdir(os.path.dirname(dst)):
            os.mkdir(os.path.dirname(dst))  # the other writer, just after our link failed
            raise FileNotFoundError(2, "No such file or directory", dst)
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_racing)
    assert store.add_bytes(data) == fp
    assert store.read_bytes(fp) == data
