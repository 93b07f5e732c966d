"""Group commit: a batch of adds is made durable together, with the guarantee of one add."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from scalems_store import FileStore, gc, hash_bytes, verify
from scalems_store.cli.app import cli
from scalems_store.core.errors import StoreNotWritable
from scalems_store.objects import group
from tests.recordutil import call_record, result_record


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[FileStore]:
    store = FileStore(tmp_path / "store", durable=True)
    yield store
    store.close()


def test_a_batch_appears_at_its_end(durable: FileStore) -> None:
    """Inside a batch, adds return their fingerprints; the objects (and their index rows
    and meta) appear, whole, when it ends."""
    store = durable
    with store.batch():
        blobs = [store.add_bytes(b"frame %d" % i) for i in range(100)]
        call = store.add_bytes(call_record(), kind="call")
        result = store.add_bytes(result_record(call, stdout=blobs[0]), kind="result")
        assert not any(fp in store for fp in [*blobs, call, result])
    assert all(fp in store for fp in [*blobs, call, result])
    assert store.kind(result) == "result" and store.kind(blobs[0]) == "blob"
    assert {i.fingerprint for i in store.list()} == set([*blobs, call, result])
    assert verify(store).ok
    assert os.listdir(store.tmp) == []


def test_two_flushes_per_group_and_no_fsync_per_object(
    durable: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group is flushed once before anything is linked and once after: no fsync per
    object. A full group commits on its own."""
    store = durable
    synced: list[int] = []  # how many objects were visible at each flush
    fsyncs: list[int] = []
    monkeypatch.setattr(
        group, "_speedups", _Recorder(lambda: synced.append(len(list(store.iter_fingerprints()))))
    )
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(group, "MAX_OBJECTS", 30)
    with store.batch():
        added = [store.add_bytes(b"x%d" % i) for i in range(45)]
        assert sum(fp in store for fp in added) == 30  # the first full group
    assert all(fp in store for fp in added)
    assert synced == [0, 30, 30, 45] and fsyncs == []  # bytes on disk before any name


def test_without_syncfs_every_file_is_fsynced(
    durable: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where syncfs is missing, the group's files and directories are fsynced instead;
    a write error is never passed over."""
    store = durable
    monkeypatch.setattr(group, "_speedups", _Failing(errno.ENOSYS))
    synced: list[str] = []
    monkeypatch.setattr(group, "fsync_path", synced.append)
    with store.batch():
        added = [store.add_bytes(b"y%d" % i) for i in range(5)]
    assert all(fp in store for fp in added)
    assert len(synced) == 5 + len({fp[:2] for fp in added})
    monkeypatch.setattr(group, "_speedups", _Failing(errno.EIO))
    with pytest.raises(StoreNotWritable, match="Input/output"), store.batch():
        lost = store.add_bytes(b"never")
    assert lost not in store


def test_what_was_added_before_an_error_is_kept(durable: FileStore) -> None:
    store = durable
    with pytest.raises(RuntimeError), store.batch():
        first = store.add_bytes(b"first")
        raise RuntimeError("the caller failed")
    assert first in store and os.listdir(store.tmp) == []


def test_a_label_inside_a_batch_publishes_first(durable: FileStore) -> None:
    store = durable
    with store.batch():
        fp = store.add_bytes(b"named")
        store.set_label("it", fp)
        assert fp in store
        labelled = store.add_bytes(b"at once", label="other")
        assert labelled in store
        key = store.add_bytes(call_record(), kind="call")
        store.set_ref("calls", key, [])
        assert key in store
    assert store.labels() == {"it": fp, "other": labelled}


BATCHER = """
import os, sys
from scalems_store import FileStore
with FileStore(sys.argv[1], durable=True) as store:
    while True:
        with store.batch():
            for i in range(200):
                store.add_bytes(os.urandom(3000))
        print("a batch published", flush=True)
"""


def test_sigkill_mid_batch_leaves_nothing_partial(tmp_path: Path) -> None:
    """Killed at any moment of a batch, nothing partial is visible, and gc sweeps the rest."""
    root = tmp_path / "store"
    FileStore(root).close()
    rng = random.Random(99)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", BATCHER, str(root)], stdout=subprocess.PIPE)
        # killed at a random moment of a later batch: counted from the first batch's end, not
        # from the start (on a busy machine the interpreter alone may take longer to start)
        assert proc.stdout is not None and proc.stdout.readline()
        time.sleep(rng.random() * 0.6)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    with FileStore(root) as store:
        assert list(store.iter_fingerprints()), "the batches should have published something"
        report = verify(store)
        assert report.ok, report.problems
        gc(store, grace=0)
        assert os.listdir(root / "tmp") == []


def test_cli_add_files_from(tmp_path: Path) -> None:
    """`add --files-from` (NUL- or line-separated) adds every path as one batch and prints
    what it stored, in order."""
    files = []
    for i in range(30):
        path = tmp_path / f"f {i}"
        path.write_bytes(b"content %d" % i)
        files.append(path)
    listing = tmp_path / "list"
    listing.write_bytes(b"\0".join(bytes(p) for p in files))
    runner = CliRunner()
    store = str(tmp_path / "s")
    out = runner.invoke(cli, ["--store", store, "add", "-0", "--files-from", str(listing)])
    assert out.exit_code == 0, out.output
    expected = [hash_bytes(b"content %d" % i) for i in range(30)]
    assert out.output.split() == expected
    listing.write_text("\n".join(str(p) for p in files[:3]) + "\n\n")
    out = runner.invoke(cli, ["--store", store, "add", "--files-from", str(listing)])
    assert out.output.split() == expected[:3]
    with FileStore(store) as opened:
        assert sorted(opened.iter_fingerprints()) == sorted(expected)
    out = runner.invoke(cli, ["--store", store, "add", "-", "--files-from", "-"], input=b"x")
    assert out.exit_code == 2 and "both" in out.output


@pytest.mark.parametrize("reader", ["c", "python"])
def test_cli_add_of_a_mixed_list_stores_each_path_as_add_of_it_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    """Small files (read many at a time), an empty one, an executable, a symlink to a file,
    a directory, a file over the small-file limit and a file that is the label's: the same
    fingerprints, in order, as adding each on its own; the label names the last."""
    from scalems_store.core import fingerprint
    from scalems_store.tar import archive

    if reader == "c" and archive._speedups is None:
        pytest.skip("the C speed-up was not built")
    if reader == "python":
        monkeypatch.setattr(archive, "_speedups", None)
    monkeypatch.setattr(archive, "READ_BATCH", 3)
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for i in range(10):
        (src / f"f{i}").write_bytes(b"small %d" % i)
        paths.append(src / f"f{i}")
    (src / "empty").write_bytes(b"")
    (src / "tool").write_bytes(b"#!/bin/sh\n")
    (src / "tool").chmod(0o755)
    (src / "link").symlink_to(src / "f1")
    (src / "dir").mkdir()
    (src / "dir" / "inner").write_bytes(b"inner")
    (src / "big").write_bytes(os.urandom(fingerprint.MMAP_THRESHOLD + 1))
    (src / "last").write_bytes(b"the labelled one")
    paths[5:5] = [src / "empty", src / "tool", src / "link", src / "dir", src / "big"]
    paths.append(src / "last")
    listing = tmp_path / "list"
    listing.write_text("".join(f"{p}\n" for p in paths))
    store_dir = str(tmp_path / "s")
    runner = CliRunner()
    out = runner.invoke(
        cli, ["--store", store_dir, "add", "--files-from", str(listing), "--label", "mine"]
    )
    assert out.exit_code == 0, out.output
    with FileStore(tmp_path / "alone") as alone:
        expected = [alone.add_tree(p) if p.is_dir() else alone.add_file(p) for p in paths]
    assert out.output.split() == expected
    with FileStore(store_dir) as store:
        assert store.labels() == {"mine": expected[-1]}
        assert sorted(store.iter_fingerprints()) == sorted(set(expected))
        assert store.read_bytes(expected[7]) == b"small 1"  # the symlink: its target's bytes


class _Recorder:
    def __init__(self, seen: Callable[[], None]) -> None:
        self.seen = seen

    def syncfs(self, fd: int) -> None:
        self.seen()
        os.sync()


class _Failing:
    def __init__(self, code: int) -> None:
        self.code = code

    def syncfs(self, fd: int) -> None:
        raise OSError(self.code, os.strerror(self.code))


@pytest.mark.parametrize("renames", [True, False])
def test_publishing_leaves_no_temporary_file(
    make_store: Callable[..., FileStore], monkeypatch: pytest.MonkeyPatch, renames: bool
) -> None:
    """Objects are moved into place by one rename that refuses to replace, or, on a
    filesystem without it (EINVAL), linked: either way each is whole, and nothing of
    its temporary file is left once the batch is published."""
    from scalems_store.objects import placing

    built = placing._speedups is not None
    if not renames and built:

        def unsupported(src: str, dst: str) -> None:
            raise OSError(errno.EINVAL, "not on this filesystem")

        monkeypatch.setattr(placing._speedups, "rename_noreplace", unsupported)
    store = make_store(durable=True)
    store.add_bytes(b"stored before")
    with store.batch():
        fps = [store.add_bytes(b"object %d" % i) for i in range(50)]
        fps.append(store.add_bytes(b"stored before"))  # exists: not replaced
    assert all(store.read_bytes(fp) for fp in fps)
    assert store.writer.placer.renames is (renames or not built)  # without C: links, untried
    leftovers = [p for p in Path(store.root, "tmp").rglob("*") if p.is_file()]
    assert leftovers == []


def _socket_at(directory: Path) -> None:
    import socket

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(directory / "sock"))
    server.close()  # the socket file stays


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (
            lambda d: (d / "dangling").symlink_to("nowhere"),
            ["new.txt", "dangling"],
            "'dangling' is a symlink to nothing ('nowhere')",
        ),
        (lambda d: None, ["new.txt", "/dev/zero"], "'/dev/zero' is a device, not a file"),
        (lambda d: None, ["-", "new.txt", "-"], "standard input ('-') can be added only once"),
        (_socket_at, ["new.txt", "sock"], "'sock' is a socket, not a file"),
        (lambda d: (d / "list").write_bytes(b"new.txt\0x\0"), ["--files-from", "list"], "-0"),
        (
            lambda d: (d / "list").write_bytes(b"new.txt\n-\n"),
            ["--files-from", "list"],
            "'-' in the list",
        ),
        (
            lambda d: (d / "dangling").symlink_to("nowhere"),
            ["dangling", "--label", "x"],
            "is a symlink to nothing",
        ),
    ],
    ids=[
        "dangling",
        "device",
        "stdin-twice",
        "socket",
        "nul-list",
        "dash-in-list",
        "dangling-labelled",
    ],
)
def test_cli_add_refuses_what_it_cannot_add_before_writing_anything(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make: Callable[[Path], object],
    args: list[str],
    message: str,
) -> None:
    """A path that cannot be added is named in one usage line (exit 2) before anything is
    stored: the store stays as it was, with the file listed before it not added."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "new.txt").write_bytes(b"listed first")
    make(tmp_path)
    with FileStore(tmp_path / "s"):
        pass
    out = CliRunner().invoke(cli, ["--store", "s", "add", *args], input=b"stdin")
    assert out.exit_code == 2, out.output
    assert message in out.output and "Traceback" not in out.output
    with FileStore(tmp_path / "s") as store:
        assert list(store.iter_fingerprints()) == []


def test_cli_add_of_an_empty_list_adds_nothing(tmp_path: Path) -> None:
    """``find ... | scalems-store add --files-from -`` when find found nothing: exit 0."""
    out = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "add", "--files-from", "-"])
    assert (out.exit_code, out.output) == (0, "")


def test_cli_add_stopped_while_publishing_prints_only_what_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C as a batch is being published: the fingerprints printed are those of objects
    that are stored, never one a script would then look for in vain."""
    for i in range(5):
        (tmp_path / f"f{i}").write_bytes(b"file %d" % i)
    (tmp_path / "known").write_bytes(b"stored before")
    with FileStore(tmp_path / "s") as store:
        known = store.add_file(tmp_path / "known")

    def interrupted(self: group.Group) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(group.Group, "commit", interrupted)
    monkeypatch.setenv("SCALEMS_STORE_FSYNC", "1")  # a batch is published at its end
    paths = [str(tmp_path / f"f{i}") for i in range(5)] + [str(tmp_path / "known")]
    out = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "add", *paths])
    assert out.exit_code != 0
    assert out.stdout.split() == [known]
