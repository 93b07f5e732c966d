"""Copies that hash as they go: every route gives the same bytes and fingerprint."""

from __future__ import annotations

import errno
import io
import mmap
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from blake3 import blake3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalems_store import CorruptObject, FileStore, InvalidPath, StoreError
from scalems_store.core.fingerprint import MMAP_THRESHOLD, hash_bytes
from scalems_store.objects import transfer
from tests.scalems_store.store.test_store import flip_byte, objects_on_disk


def copy_file(src: Path, dst: Path, **kwargs: object) -> tuple[str, bool]:
    """Run copy_and_hash from the file *src* into the new file *dst*."""
    size = src.stat().st_size
    with open(src, "rb") as source, open(dst, "xb") as target:
        return transfer.copy_and_hash(source.fileno(), target.fileno(), size, **kwargs)  # type: ignore[arg-type]


def open_pair(src: Path, dst: Path) -> tuple[int, int]:
    return os.open(src, os.O_RDONLY), os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(min_size=1, max_size=20_000), chunk=st.sampled_from([4096, 5000, 1 << 20]))
def test_property_copy_hashing_round_trip(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, chunk: int
) -> None:
    """Mapped copy in chunks of any size: the copy is exact and the fingerprint is BLAKE3's."""
    where = tmp_path_factory.mktemp("copy")
    (where / "src").write_bytes(data)
    src, dst = open_pair(where / "src", where / "dst")
    saved = transfer.COPY_CHUNK
    transfer.COPY_CHUNK = chunk
    try:
        fp, complete = transfer.copy_hashing(src, dst, len(data), blake3())
    finally:
        transfer.COPY_CHUNK = saved
        os.close(src)
        os.close(dst)
    assert (fp, complete) == (hash_bytes(data), True)
    assert (where / "dst").read_bytes() == data


@pytest.fixture
def big(tmp_path: Path) -> tuple[Path, bytes]:
    """A file large enough for the mapped routes (two copy chunks and a bit)."""
    data = os.urandom(MMAP_THRESHOLD + 12345)
    path = tmp_path / "big"
    path.write_bytes(data)
    return path, data


def test_copy_stops_once_the_hash_says_enough(
    big: tuple[Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the content is known to be stored, the writer stops after its current chunk."""
    path, data = big
    monkeypatch.setattr(transfer, "COPY_STEP", 1 << 20)
    monkeypatch.setattr(transfer, "clone", lambda src, dst: False)  # on btrfs or XFS
    hashed = threading.Event()
    seen: list[str] = []

    def enough(fp: str) -> bool:
        seen.append(fp)
        hashed.set()
        return True

    fp, complete = copy_file(
        path, tmp_path / "dst", enough=enough, progress=lambda done: hashed.wait(10)
    )
    assert seen == [fp] == [hash_bytes(data)]
    assert complete is False
    # at most the chunk under way when the hash said enough (none, if the hash was first)
    written = (tmp_path / "dst").read_bytes()
    assert len(written) <= 1 << 20 and data.startswith(written)


def test_unmappable_source_is_read(
    big: tuple[Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that cannot be memory-mapped is read, hashed and written in chunks."""
    path, data = big

    def refuse(*args: object, **kwargs: object) -> mmap.mmap:
        raise OSError(errno.ENODEV, "no mmap here")

    monkeypatch.setattr(mmap, "mmap", refuse)
    done: list[int] = []
    assert copy_file(path, tmp_path / "dst", progress=done.append) == (hash_bytes(data), True)
    assert (tmp_path / "dst").read_bytes() == data
    assert done[-1] == len(data)


def test_large_files_on_a_local_filesystem_are_read_once(
    big: tuple[Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a local filesystem the mapped source's pages are written beside their hash (each
    page read once), not copied by the kernel beside a second read for the hash."""
    path, data = big
    monkeypatch.setattr(transfer, "clone", lambda src, dst: False)
    monkeypatch.setattr(transfer, "filesystem_type", lambda fd: "ext4")
    monkeypatch.setattr(transfer, "copy_span", lambda *a: pytest.fail("copied by the kernel"))
    done: list[int] = []
    assert copy_file(path, tmp_path / "dst", progress=done.append) == (hash_bytes(data), True)
    assert (tmp_path / "dst").read_bytes() == data
    assert done[-1] == len(data)


def test_large_files_are_copied_by_the_kernel_beside_the_hash(
    big: tuple[Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On NFS (SMB, Ceph) a large file is copied as cp copies it (copy_file_range: the
    server copies) while the source is hashed beside it: not read and written by us."""
    path, data = big
    monkeypatch.setattr(transfer, "clone", lambda src, dst: False)  # on btrfs or XFS
    monkeypatch.setattr(transfer, "filesystem_type", lambda fd: "nfs4")
    monkeypatch.setattr(transfer, "copy_hashing", lambda *a: pytest.fail("read by us"))
    monkeypatch.setattr(transfer, "write_span", lambda *a: pytest.fail("written by us"))
    threads: list[object] = []
    real = transfer.new_hasher

    def counted(size: int = 0, **kwargs: object) -> blake3:
        threads.append(kwargs.get("leave_cores", 0))
        return real(size)

    monkeypatch.setattr(transfer, "new_hasher", counted)
    done: list[int] = []
    assert copy_file(path, tmp_path / "dst", progress=done.append) == (hash_bytes(data), True)
    assert (tmp_path / "dst").read_bytes() == data
    assert done[-1] == len(data)
    assert threads == [1]  # one core kept for the copy: the hash on all made it wait


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(min_size=0, max_size=20_000),
    step=st.sampled_from([1, 4096, 5000, 1 << 20]),
    kernel=st.booleans(),
)
def test_property_copy_beside_hash_round_trip(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, step: int, kernel: bool
) -> None:
    """The kernel copy from the front and the hashing thread's from the back meet exactly:
    every byte is copied once, in its place, whatever the step."""
    where = tmp_path_factory.mktemp("beside")
    (where / "src").write_bytes(data)
    src, dst = open_pair(where / "src", where / "dst")
    saved = transfer.COPY_STEP
    transfer.COPY_STEP = step
    try:
        route = transfer._copy_beside_hash if kernel else transfer._write_beside_hash
        got = route(src, dst, len(data), blake3(), None, None)
    finally:
        transfer.COPY_STEP = saved
        os.close(src)
        os.close(dst)
    assert got == (hash_bytes(data), True)
    assert (where / "dst").read_bytes() == data


@pytest.mark.parametrize("fs", ["nfs4", "ext4"])
def test_the_hashing_thread_copies_the_last_steps(
    big: tuple[Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fs: str
) -> None:
    """Once the hash is done, its thread copies from the back while the caller copies
    from the front: each step once, the file exact, progress ending at its size."""
    path, data = big
    monkeypatch.setattr(transfer, "COPY_STEP", 1 << 20)
    monkeypatch.setattr(transfer, "clone", lambda src, dst: False)
    monkeypatch.setattr(transfer, "filesystem_type", lambda fd: fs)
    name = "copy_span" if fs == "nfs4" else "write_span"
    real = getattr(transfer, name)
    copied: list[tuple[str, int, int]] = []
    helped = threading.Event()

    def recorded(dst: object, src: object, start: int, end: int) -> None:
        real(dst, src, start, end)
        copied.append((threading.current_thread().name, start, end))
        if threading.current_thread().name == "scalems-hash":
            helped.set()

    monkeypatch.setattr(transfer, name, recorded)
    done: list[int] = []

    def slow_progress(count: int) -> None:
        done.append(count)
        helped.wait(10)  # the caller waits after its first step: the hashing thread helps

    assert copy_file(path, tmp_path / "dst", progress=slow_progress) == (hash_bytes(data), True)
    assert (tmp_path / "dst").read_bytes() == data
    assert sorted((start, end) for _, start, end in copied) == [
        (at, min(at + (1 << 20), len(data))) for at in range(0, len(data), 1 << 20)
    ]
    helper = [start for name, start, _ in copied if name == "scalems-hash"]
    assert helper and max(helper) == max(start for _, start, _ in copied)  # from the back
    assert done[-1] == len(data)


@pytest.mark.parametrize("fs", ["nfs4", "ext4"])
def test_a_copy_error_in_the_hashing_thread_is_raised(
    big: tuple[Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fs: str
) -> None:
    """A write error in the steps the hashing thread copies is raised to the caller, whose
    own copy stops; no thread is left behind."""
    path, _ = big
    monkeypatch.setattr(transfer, "COPY_STEP", 1 << 20)
    monkeypatch.setattr(transfer, "clone", lambda src, dst: False)
    monkeypatch.setattr(transfer, "filesystem_type", lambda fd: fs)
    name = "copy_span" if fs == "nfs4" else "write_span"
    real = getattr(transfer, name)
    started = threading.Event()

    def failing(dst: object, src: object, start: int, end: int) -> None:
        if threading.current_thread().name == "scalems-hash":
            started.set()
            raise OSError(errno.ENOSPC, "No space left on device")
        started.wait(10)  # the caller's first step waits for the hashing thread's failure
        real(dst, src, start, end)

    monkeypatch.setattr(transfer, name, failing)
    threads = threading.active_count()
    with pytest.raises(OSError, match="No space left"):
        copy_file(path, tmp_path / "dst")
    assert threading.active_count() == threads


def test_reflink_route_where_the_filesystem_has_one(
    big: tuple[Path, bytes], tmp_path: Path
) -> None:
    """clone() either shares the blocks (the clone is exact) or says it cannot (nothing written)."""
    path, data = big
    src, dst = open_pair(path, tmp_path / "dst")
    try:
        cloned = transfer.clone(src, dst)
    finally:
        os.close(src)
        os.close(dst)
    assert (tmp_path / "dst").read_bytes() == (data if cloned else b"")


def test_reflinked_copy_hashes_the_source(
    big: tuple[Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a reflink only the hash is left to do; no bytes are copied by us."""
    path, data = big

    def fake_clone(src: int, dst: int) -> bool:
        os.write(dst, os.pread(src, len(data), 0))  # what a reflink leaves behind
        return True

    monkeypatch.setattr(transfer, "clone", fake_clone)
    monkeypatch.setattr(transfer, "copy_hashing", lambda *a: pytest.fail("copied after clone"))
    done: list[int] = []
    assert copy_file(path, tmp_path / "dst", progress=done.append) == (hash_bytes(data), True)
    assert done == [len(data)]


@pytest.mark.parametrize("route", ["mapped", "kernel"])
def test_write_error_stops_the_hash(big: tuple[Path, bytes], tmp_path: Path, route: str) -> None:
    """A destination that cannot be written raises OSError and leaves no thread behind."""
    path, data = big
    (tmp_path / "dst").write_bytes(b"")
    threads = threading.active_count()
    src, dst = os.open(path, os.O_RDONLY), os.open(tmp_path / "dst", os.O_RDONLY)
    try:
        with pytest.raises(OSError):
            if route == "mapped":
                transfer.copy_hashing(src, dst, len(data), blake3())
            else:
                transfer.copy_and_hash(src, dst, len(data))
    finally:
        os.close(src)
        os.close(dst)
    assert threading.active_count() == threads


def test_add_file_read_error_is_one_clear_error(
    store: FileStore, big: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error reading the source names the file, and the store is left unchanged."""
    path, _ = big

    def refuse(*args: object, **kwargs: object) -> mmap.mmap:
        raise OSError(errno.ENODEV, "no mmap here")

    def broken(*args: object) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(mmap, "mmap", refuse)
    monkeypatch.setattr(os, "pread", broken)
    with pytest.raises(InvalidPath, match=r"cannot read '.*big': Input/output error"):
        store.add_file(path)
    assert objects_on_disk(store) == []
    assert os.listdir(Path(store.root, "tmp")) == []


def test_large_blob_materialized_in_one_read(store: FileStore, big: tuple[Path, bytes]) -> None:
    """get of a large blob copies it exactly; a corrupt one leaves nothing behind."""
    path, data = big
    fp = store.add_file(path)
    out = path.parent / "out"
    assert store.materialize(fp[:8], out) == fp
    assert out.read_bytes() == data
    flip_byte(store, fp, len(data) - 1)
    with pytest.raises(CorruptObject):
        store.materialize(fp, path.parent / "never")
    assert sorted(os.listdir(path.parent)) == ["big", "out", "store"]


def test_materialize_missing_object(store: FileStore, tmp_path: Path) -> None:
    """An object file gone behind the index's back is reported as missing, not as a write error."""
    fp = store.add_bytes(b"here today")
    os.chmod(store.object_path(fp), 0o644)
    os.unlink(store.object_path(fp))
    with pytest.raises(StoreError, match="no object"):
        store.materialize(fp, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_large_blob_written_to_a_stream(store: FileStore, big: tuple[Path, bytes]) -> None:
    """A large blob goes out at the stream's position, after what the stream already
    holds or buffers (never a reflink over it), and to streams with no descriptor too."""
    path, data = big
    fp = store.add_file(path)
    out_path = path.parent / "out"
    out_path.write_bytes(b"earlier\n")
    with open(out_path, "ab") as out:
        out.write(b"buffered\n")
        assert store.write_to(fp[:8], out) == len(data)
        out.write(b"after\n")
    assert out_path.read_bytes() == b"earlier\nbuffered\n" + data + b"after\n"
    memory = io.BytesIO()
    assert store.write_to(fp, memory) == len(data)
    assert memory.getvalue() == data


def test_corrupt_large_blob_written_to_a_stream(store: FileStore, big: tuple[Path, bytes]) -> None:
    """A corrupt object found while it is written out: a file is truncated back to where it
    stood; a pipe cannot be taken back, and the error says the bytes sent are not the
    object's."""
    path, data = big
    fp = store.add_file(path)
    flip_byte(store, fp, len(data) // 2)
    with open(path.parent / "out", "wb") as out, pytest.raises(CorruptObject) as caught:
        out.write(b"kept")
        store.write_to(fp, out)
    assert "discard" not in str(caught.value)
    assert (path.parent / "out").read_bytes() == b"kept"
    reader, writer = os.pipe()
    drained = threading.Thread(target=_drain, args=(reader,))
    drained.start()
    try:
        with open(writer, "wb") as out, pytest.raises(CorruptObject, match="discard them"):
            store.write_to(fp, out)
    finally:
        drained.join()
        os.close(reader)


def _drain(fd: int) -> None:
    while os.read(fd, 1 << 20):
        pass


def test_get_into_a_closed_pipe_is_quiet(store: FileStore, big: tuple[Path, bytes]) -> None:
    """get FP | head: the reader going away is no error and no traceback."""
    path, data = big
    fp = store.add_file(path)
    env = {**os.environ, "SCALEMS_STORE": store.root}
    for program in ("scalems_store", "scalems_store.cli.app"):  # the quick start, then click
        done = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {sys.executable} -m {program} get {fp} | head -c 10"],
            capture_output=True,
            env=env,
            timeout=60,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, data[:10], b""), program
