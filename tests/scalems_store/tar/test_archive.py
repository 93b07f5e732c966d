"""Deterministic tree archives: format, determinism, and safe extraction."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings

from scalems_store.core.errors import ArchiveError, InvalidPath, UnsafeArchive
from scalems_store.core.fingerprint import hash_bytes
from scalems_store.core.fsutil import remove_tree
from scalems_store.tar import archive, unpack
from tests import tarcraft
from tests.strategies import trees
from tests.tarcraft import deadline
from tests.treeutil import build, snapshot

_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

GOLDEN_TREE: dict[str, object] = {
    "README": b"hello\n",
    "bin": {"run.sh": ("x", b"#!/bin/sh\necho hi\n")},
    "data": {"empty": b"", "caf\u00e9.txt": b"utf-8 name\n", "n" * 120: b"long name\n"},
    "empty-dir": {},
}
# Pinned: any change to the archive format must change this on purpose.
GOLDEN_FINGERPRINT = "15ca019c008e8e4dbc93cd3aa6cc8acdf081785df7a6be7cdfeb582d12d099d6"


def tar_bytes(root: Path) -> bytes:
    return b"".join(archive.iter_tree(root))


def reference_archive(root: Path) -> bytes:
    """The same tree written by tarfile from normalized TarInfo records."""
    buffer = io.BytesIO()
    rels = sorted(
        os.path.relpath(os.path.join(d, n), root) for d, ds, fs in os.walk(root) for n in ds + fs
    )
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in rels:
            info = tar.gettarinfo(root / rel, rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if info.isdir() or (info.isreg() and info.mode & 0o100) else 0o644
            if info.isreg():
                with open(root / rel, "rb") as stream:
                    tar.addfile(info, stream)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def make_golden(root: Path) -> Path:
    build(root, GOLDEN_TREE)
    os.symlink("../README", root / "bin" / "readme-link")
    return root


def test_golden_fingerprint(tmp_path: Path) -> None:
    """A fixed tree archives to a pinned fingerprint."""
    assert hash_bytes(tar_bytes(make_golden(tmp_path / "t"))) == GOLDEN_FINGERPRINT


def test_matches_tarfile_pax_output(tmp_path: Path) -> None:
    """Our headers are byte-identical to tarfile's PAX_FORMAT for normalized entries."""
    root = make_golden(tmp_path / "t")
    assert tar_bytes(root) == reference_archive(root)


def test_gnu_tar_lists_it(tmp_path: Path) -> None:
    """GNU tar reads the archive with the normalized metadata."""
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed")
    path = tmp_path / "t.tar"
    path.write_bytes(tar_bytes(make_golden(tmp_path / "t")))
    listing = subprocess.run(
        ["tar", "-tvf", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "bin/run.sh" in listing and "rwxr-xr-x 0/0" in listing and "1970-01-01" in listing


@_SETTINGS
@given(tree=trees())
def test_property_matches_tarfile(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[str, object]
) -> None:
    """For any tree, the archive equals tarfile's normalized PAX archive."""
    root = build(tmp_path_factory.mktemp("t"), tree)
    assert tar_bytes(root) == reference_archive(root)


@_SETTINGS
@given(tree=trees())
def test_property_deterministic(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[str, object]
) -> None:
    """Creation order, mtimes and non-exec permission bits do not change the archive."""
    first = build(tmp_path_factory.mktemp("a"), tree, seed=1, mtime=1_000_000)
    second = build(tmp_path_factory.mktemp("b"), tree, seed=2, mtime=2_000_000_000)
    assert tar_bytes(first) == tar_bytes(second)


@_SETTINGS
@given(tree=trees())
def test_property_round_trip(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[str, object]
) -> None:
    """Extracting an archive recreates the files, directories and executable bits."""
    base = tmp_path_factory.mktemp("rt")
    root = build(base / "src", tree)
    path = base / "t.tar"
    path.write_bytes(tar_bytes(root))
    archive.extract(path, base / "out")
    assert snapshot(base / "out") == snapshot(root)


def test_special_file_refused_or_skipped(tmp_path: Path) -> None:
    """A fifo is refused with a clear error, or skipped and reported when asked."""
    root = tmp_path / "t"
    root.mkdir()
    (root / "ok").write_bytes(b"x")
    os.mkfifo(root / "pipe")
    with pytest.raises(UnsafeArchive, match="pipe"):
        tar_bytes(root)
    skipped: list[tuple[str, str]] = []
    data = b"".join(archive.iter_tree(root, skip=lambda p, why: skipped.append((p, why))))
    assert [p for p, _ in skipped] == ["pipe"]
    assert [e.path for e in archive.iter_entries(data)] == ["ok"]


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside", "sub/../../x", "a/../b"])
def test_unsafe_symlink_refused_when_archiving(tmp_path: Path, target: str) -> None:
    """Absolute, escaping, and '..'-after-name symlinks are not archived."""
    root = tmp_path / "t"
    (root / "sub").mkdir(parents=True)
    os.symlink(target, root / "link")
    with pytest.raises(UnsafeArchive, match="link"):
        tar_bytes(root)


def test_hardlinks_stored_as_files(tmp_path: Path) -> None:
    """Two hardlinked names become two regular files with the same content."""
    root = tmp_path / "t"
    root.mkdir()
    (root / "a").write_bytes(b"shared")
    os.link(root / "a", root / "b")
    entries = list(archive.iter_entries(tar_bytes(root)))
    assert [(e.path, e.type, e.size) for e in entries] == [("a", b"0", 6), ("b", b"0", 6)]


# -- hostile archives -------------------------------------------------------


def hostile(*members: tuple[str, bytes, str]) -> bytes:
    """A tar written by tarfile: (name, type, linkname or data)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(extra)
                tar.addfile(info, io.BytesIO(extra.encode()))
            else:
                info.linkname = extra
                tar.addfile(info)
    return buffer.getvalue()


HOSTILE = {
    "absolute": hostile(("/tmp/evil", tarfile.REGTYPE, "x")),
    "dotdot": hostile(("a/../../evil", tarfile.REGTYPE, "x")),
    "escaping symlink": hostile(("link", tarfile.SYMTYPE, "../../etc")),
    "absolute symlink": hostile(("link", tarfile.SYMTYPE, "/etc")),
    "write through symlink": hostile(("d", tarfile.SYMTYPE, "."), ("d/x", tarfile.REGTYPE, "x")),
    "hardlink": hostile(("a", tarfile.REGTYPE, "x"), ("b", tarfile.LNKTYPE, "a")),
    "device": hostile(("dev", tarfile.CHRTYPE, "")),
    "fifo": hostile(("fifo", tarfile.FIFOTYPE, "")),
    "duplicate": hostile(("a", tarfile.REGTYPE, "x"), ("a", tarfile.REGTYPE, "y")),
    "dotdot after link": hostile(("p", tarfile.SYMTYPE, "."), ("q", tarfile.SYMTYPE, "p/../x")),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_archive_refused_and_nothing_written(tmp_path: Path, name: str) -> None:
    """Each hostile archive is refused before anything is written."""
    path = tmp_path / "evil.tar"
    path.write_bytes(HOSTILE[name])
    with pytest.raises(UnsafeArchive):
        archive.extract(path, tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["evil.tar"]


def test_truncated_archive_refused(tmp_path: Path) -> None:
    """A truncated archive is an ArchiveError, and the destination is untouched."""
    root = make_golden(tmp_path / "t")
    path = tmp_path / "cut.tar"
    path.write_bytes(tar_bytes(root)[:1500])
    with pytest.raises(ArchiveError, match="truncated"):
        archive.extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corrupt_header_refused(tmp_path: Path) -> None:
    """A flipped byte in a header fails the header checksum."""
    data = bytearray(tar_bytes(make_golden(tmp_path / "t")))
    data[10] ^= 0x01
    with pytest.raises(ArchiveError, match="checksum"):
        list(archive.iter_entries(bytes(data)))


def test_extract_needs_empty_destination(tmp_path: Path) -> None:
    """Extraction refuses a non-empty directory and accepts an empty one."""
    path = tmp_path / "t.tar"
    path.write_bytes(tar_bytes(make_golden(tmp_path / "t")))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_bytes(b"mine")
    with pytest.raises(InvalidPath, match="not an empty directory"):
        archive.extract(path, tmp_path / "full")
    assert os.listdir(tmp_path / "full") == ["keep"]
    (tmp_path / "empty").mkdir()
    archive.extract(path, tmp_path / "empty")
    assert (tmp_path / "empty" / "README").read_bytes() == b"hello\n"
    assert os.readlink(tmp_path / "empty" / "bin" / "readme-link") == "../README"


@pytest.fixture(params=["c", "python"])
def c_or_python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the C speed-up (when built) and with the pure-Python code."""
    if request.param == "c" and archive._speedups is None:
        pytest.skip("the C speed-up was not built")
    if request.param == "python":
        monkeypatch.setattr(archive, "_speedups", None)
        monkeypatch.setattr(unpack, "_speedups", None)
    return str(request.param)


# a child process extracting with one loop: ``python -c EXTRACT ARCHIVE DEST LOOP``
EXTRACT = (
    "import sys\n"
    "from scalems_store.tar import archive, unpack\n"
    "if sys.argv[3] == 'python':\n"
    "    unpack._speedups = None\n"
    "unpack.PARALLEL_FILES, unpack.BATCH = 2, 7\n"
    "unpack.usable_cores = lambda: 2\n"
    "try:\n"
    "    archive.extract(sys.argv[1], sys.argv[2])\n"
    "except archive.ArchiveError as exc:\n"
    "    sys.exit(f'{type(exc).__name__}: {exc}')\n"
)


@_SETTINGS
@given(tree=trees())
def test_property_both_codes_archive_and_extract_alike(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    c_or_python: str,
    tree: dict[str, object],
) -> None:
    """With the C speed-up (tiny batches, read ahead and written on two threads) and
    without it, the archive is tarfile's (large files streamed) and extracts exactly."""
    for name, value in (("READ_BATCH", 1), ("READ_CHUNK", 64)):
        monkeypatch.setattr(archive, name, value)
    monkeypatch.setattr(unpack, "PARALLEL_FILES", 2)
    monkeypatch.setattr(unpack, "BATCH", 3)
    for module in (archive, unpack):
        monkeypatch.setattr(module, "usable_cores", lambda: 2)
    base = tmp_path_factory.mktemp("rt")
    root = build(base / "src", tree)
    data = tar_bytes(root)
    assert data == reference_archive(root)
    (base / "t.tar").write_bytes(data)
    archive.extract(base / "t.tar", base / "out")
    assert snapshot(base / "out") == snapshot(root)


def test_file_that_changed_type_is_reported_by_both_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_or_python: str
) -> None:
    """A file that became a directory after the directory was listed: the same ArchiveError."""
    root = tmp_path / "t"
    root.mkdir()
    for i in range(5):
        (root / f"f{i}").write_bytes(b"%d" % i)
    listing = archive._scan(str(root), None, frozenset())
    os.unlink(root / "f3")
    os.mkdir(root / "f3")
    monkeypatch.setattr(archive, "_scan", lambda *args: listing)
    monkeypatch.setattr(archive, "READ_BATCH", 2)
    with pytest.raises(ArchiveError, match="f3' changed type while being archived"):
        tar_bytes(root)


def test_read_ahead_error_and_early_stop_end_the_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in the read-ahead thread is raised to the caller; a caller that stops
    early leaves no reading thread behind."""
    if archive._speedups is None:
        pytest.skip("the C speed-up was not built")
    import threading

    root = tmp_path / "t"
    root.mkdir()
    for i in range(40):
        (root / f"f{i:02d}").write_bytes(b"x" * 600)
    monkeypatch.setattr(archive, "READ_BATCH", 4)
    monkeypatch.setattr(archive, "usable_cores", lambda: 2)
    real = archive._speedups.read_files
    calls: list[int] = []

    def failing(paths: list[str], limit: int) -> list[tuple[bytes, int] | None]:
        calls.append(len(paths))
        if len(calls) == 3:
            raise MemoryError("third batch")
        return real(paths, limit)

    monkeypatch.setattr(archive._speedups, "read_files", failing)
    with pytest.raises(MemoryError, match="third batch"):
        tar_bytes(root)
    monkeypatch.setattr(archive._speedups, "read_files", real)
    monkeypatch.setattr(archive, "FLUSH", 1)  # a chunk per entry: stop after the first
    chunks = cast("Generator[bytes, None, None]", archive.iter_tree(root))
    next(chunks)
    chunks.close()
    assert not [t for t in threading.enumerate() if t.name == "scalems-ahead"]


def test_split_point_prefers_a_directory_boundary() -> None:
    """The two writing threads get whole directories when a boundary is near the middle."""

    def entries(*paths: str) -> list[archive.Entry]:
        return [archive.Entry(p, archive.FILE, 0o644, 0, 0) for p in paths]

    files = entries(*(f"a/{i}" for i in range(9)), *(f"b/{i}" for i in range(11)))
    assert unpack.split_point(files) == 9
    assert unpack.split_point(entries(*(f"a/{i}" for i in range(20)))) == 10
    files = entries(*(f"a/{i}" for i in range(11)), *(f"b/{i}" for i in range(9)))
    assert unpack.split_point(files) == 11


@pytest.mark.parametrize("loop", ["c", "python"])
def test_disk_full_while_extracting_leaves_nothing(tmp_path: Path, loop: str) -> None:
    """A write error midway is one ArchiveError; no destination and no staging directory remain.

    RLIMIT_FSIZE makes the write of the one large file fail (EFBIG), as a full disk would.
    """
    if loop == "c" and archive._speedups is None:
        pytest.skip("the C speed-up was not built")
    root = tmp_path / "t"
    for i in range(40):
        (root / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 4}" / f"f{i:02d}").write_bytes(b"small %d\n" % i)
    (root / "d2" / "f50-large").write_bytes(os.urandom(64 << 10))
    path = tmp_path / "t.tar"
    path.write_bytes(tar_bytes(root))
    (tmp_path / "out").mkdir()
    script = "import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, (32 << 10, -1))\n"
    proc = subprocess.run(
        [sys.executable, "-c", script + EXTRACT, str(path), str(tmp_path / "out"), loop],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert (
        proc.stderr.startswith("ArchiveError: cannot extract into") and "too large" in proc.stderr
    )
    assert sorted(os.listdir(tmp_path)) == ["out", "t", "t.tar"]
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("loop", ["c", "python"])
def test_extract_more_directories_than_open_files_allowed(tmp_path: Path, loop: str) -> None:
    """Extraction keeps few files open: 300 directories under a limit of 64 open files."""
    if loop == "c" and archive._speedups is None:
        pytest.skip("the C speed-up was not built")
    root = tmp_path / "t"
    for i in range(300):
        (root / f"d{i:03d}").mkdir(parents=True)
        (root / f"d{i:03d}" / "f").write_bytes(b"%d" % i)
    path = tmp_path / "t.tar"
    path.write_bytes(tar_bytes(root))
    script = "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n" + EXTRACT
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "out"), loop],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert snapshot(tmp_path / "out") == snapshot(root)


def test_speedup_built_where_a_compiler_is() -> None:
    """The C speed-up is there to be tested wherever it can be built (so CI tests it)."""
    import sysconfig

    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if not (shutil.which("cc") or shutil.which("gcc")) or not headers.exists():
        pytest.skip("no C compiler or no Python headers here: the pure-Python code is used")
    assert archive._speedups is not None, (
        "scalems_store._speedups is not importable next to the sources under test: "
        "install with 'pip install -e .' (or run 'python setup.py build_ext --inplace')"
    )


# -- hostile headers: every parse makes progress or fails -----------------------------


def refused(data: bytes, tmp_path: Path, error: type[ArchiveError] = ArchiveError) -> str:
    """Check that *data* is refused by the parser (both modes) and by extract, within a
    deadline and before anything is written; return the parser's message."""
    path = tmp_path / "evil.tar"
    path.write_bytes(data)
    with deadline(5):
        for checked in (False, True):
            with pytest.raises(error) as caught:
                list(archive.iter_entries(data, checked=checked))
        with pytest.raises(error):
            archive.extract(path, tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["evil.tar"]
    return str(caught.value)


def test_negative_pax_size_before_a_pax_header_is_refused(tmp_path: Path) -> None:
    """The pax size=-1536 followed by an x header, which sent the parser back to an
    earlier header forever, is an ArchiveError."""
    data = tarcraft.pax(tarcraft.record(b"size", b"-1536")) + tarcraft.pax(b"") + tarcraft.END
    assert "size" in refused(data, tmp_path)


@pytest.mark.parametrize(
    "value",
    [b"-1536", b"-1", b"abc", b"99999999999999999999", b"1e3", b" 12", b"+12", b"1_0", b"",
     "\u0661\u0662".encode(), b"9" * 5000, b"0x10"],
)  # fmt: skip
def test_bad_pax_size_is_refused(tmp_path: Path, value: bytes) -> None:
    """A pax size that is negative, not decimal digits, or past the archive's end is an
    ArchiveError."""
    data = (
        tarcraft.pax(tarcraft.record(b"size", value))
        + tarcraft.member(b"f", b"x" * 600)
        + tarcraft.END
    )
    refused(data, tmp_path)


@pytest.mark.parametrize(
    "field",
    [b"-0003000\0", b"\xff" + b"\xff" * 10 + b"\xfa", b"\x80" + b"\xff" * 11, b"0000000001x\0",
     b"00000000009\0", b"77777777777\0", b"+0000001000\0", b"0o1000\0", b"1_000\0"],
)  # fmt: skip
def test_bad_ustar_size_is_refused(tmp_path: Path, field: bytes) -> None:
    """A ustar size that is negative (octal or base-256), not octal, or past the end is an
    ArchiveError."""
    data = tarcraft.header(b"f", size=field) + bytes(1024) + tarcraft.END
    refused(data, tmp_path)


def test_base256_size_is_decoded(tmp_path: Path) -> None:
    """A GNU base-256 size within the archive is read as the number it encodes."""
    field = b"\x80" + (600).to_bytes(11, "big")
    data = tarcraft.header(b"f", size=field) + tarcraft.padded(b"y" * 600) + tarcraft.END
    [entry] = archive.iter_entries(data)
    assert (entry.path, entry.size) == ("f", 600)


@pytest.mark.parametrize(
    "payload",
    [b"0 path=x\n", b"-9 path=x\n", b"x path=a\n", b"99 path=a\n", b"5 path=a\n",
     b"11 path=abc!", b"10 pathabc\n", b"9 =abcde\n", b"9path=ab\n", b" 10 path=a\n",
     b"10 path=a\n\0\0", b"9 path=a\n9 path=b\n"],
)  # fmt: skip
def test_bad_pax_record_is_refused(tmp_path: Path, payload: bytes) -> None:
    """A pax record whose length is zero, negative, not a number or runs past the payload,
    or that is not key=value, or is repeated, is an ArchiveError."""
    data = tarcraft.pax(payload) + tarcraft.member(b"f", b"x") + tarcraft.END
    refused(data, tmp_path)


@pytest.mark.parametrize("key", [b"path", b"linkpath"])
def test_nul_in_pax_name_is_refused_while_parsing(tmp_path: Path, key: bytes) -> None:
    """A NUL byte in a pax path or linkpath is an ArchiveError from the parser, not a
    ValueError from an os call."""
    link = tarcraft.header(b"link", typeflag=b"2", link=b"target")
    data = tarcraft.pax(tarcraft.record(key, b"a\0b")) + link + tarcraft.END
    assert "NUL" in refused(data, tmp_path)


@pytest.mark.parametrize(
    "data",
    [
        tarcraft.pax(tarcraft.record(b"path", b"a")) + tarcraft.pax(b"") + tarcraft.END,
        tarcraft.pax(tarcraft.record(b"path", b"a")) + tarcraft.END,
        tarcraft.pax(tarcraft.record(b"path", b"a")),
        tarcraft.pax(b"", size=2 << 20) + bytes(2 << 20) + tarcraft.END,
        tarcraft.header(b"d/", typeflag=b"5", size=512) + bytes(512) + tarcraft.END,
        tarcraft.header(b"l", typeflag=b"2", link=b"x", size=512) + bytes(512) + tarcraft.END,
        tarcraft.header(b"f", magic=b"ustar  \0") + tarcraft.END,
        tarcraft.header(b"f", mode=b"0000948\0") + tarcraft.END,
        tarcraft.header(b"\xff\xfe") + tarcraft.END,
        tarcraft.header(b"f", prefix=b"\xff") + tarcraft.END,
        tarcraft.header(b"l", typeflag=b"2", link=b"\xff") + tarcraft.END,
        b"\0" * 100,
    ],
    ids=[
        "pax after pax", "pax at the end", "pax then eof", "huge pax header",
        "directory with data", "symlink with data", "old gnu magic", "bad mode",
        "name not utf-8", "prefix not utf-8", "link not utf-8", "short",
    ],
)  # fmt: skip
def test_malformed_headers_are_refused(tmp_path: Path, data: bytes) -> None:
    """Headers that break a rule of the format (pax header placement and size, data in a
    directory or symlink, magic, numbers, UTF-8 names) are ArchiveErrors."""
    refused(data, tmp_path)


@pytest.mark.parametrize(
    "data",
    [
        tarcraft.pax(tarcraft.record(b"GNU.sparse.major", b"1")) + tarcraft.member(b"f", b"x"),
        tarcraft.pax(tarcraft.record(b"SCHILY.xattr.x", b"1")) + tarcraft.member(b"f", b"x"),
        tarcraft.member(b"f", b"x", typeflag=b"S"),
        tarcraft.member(b"f", b"", typeflag=b"g"),
    ],
    ids=["sparse record", "unknown record", "sparse type", "global header"],
)
def test_unsupported_members_are_refused(tmp_path: Path, data: bytes) -> None:
    """Sparse members, unknown pax records and global headers are refused, naming the member."""
    assert "'f'" in refused(data + tarcraft.END, tmp_path, UnsafeArchive)


def test_harmless_pax_records_are_ignored() -> None:
    """Metadata records tarfile and GNU tar write (mtime, uid, uname, ...) are accepted."""
    records = b"".join(
        tarcraft.record(key, b"1.5") for key in (b"mtime", b"atime", b"ctime", b"uid", b"uname")
    )
    data = tarcraft.pax(records) + tarcraft.member(b"f", b"x") + tarcraft.END
    assert [e.path for e in archive.iter_entries(data)] == ["f"]


def test_path_too_long_to_create_is_refused(tmp_path: Path) -> None:
    """A member path longer than any directory could hold is refused while parsing."""
    name = "a/" * 2100 + "f"
    data = archive.entry_header(name, 0o644, 0, archive.FILE) + tarcraft.END
    assert "over 4095 bytes" in refused(data, tmp_path, UnsafeArchive)


# -- trees 2,000 levels deep ----------------------------------------------------------


DEPTH = 2000


@pytest.fixture
def deep_tmp(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, emptied after the test by remove_tree: pytest's own cleanup (shutil.rmtree)
    cannot remove a tree 2,000 levels deep."""
    yield tmp_path
    for name in os.listdir(tmp_path):
        remove_tree(tmp_path / name)


def make_deep(root: str) -> str:
    """Create *root* with DEPTH nested directories ``d`` and a file at the bottom; return the
    bottom's path relative to *root*."""
    os.mkdir(root)
    fd = os.open(root, os.O_RDONLY)
    try:
        rel = "/".join(["d"] * DEPTH)
        for depth in range(1, DEPTH + 1):
            os.mkdir("/".join(["d"] * depth), dir_fd=fd)
        with open(os.open(rel + "/bottom", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
            f.write(b"deep\n")
    finally:
        os.close(fd)
    return rel


def deep_archive(extra: tuple[tuple[str, bytes], ...] = ()) -> bytes:
    """The archive of the deep tree, plus files (name, data) at the root."""
    blocks = [archive.entry_header("d/" * n, 0o755, 0, archive.DIR) for n in range(1, DEPTH + 1)]
    blocks.append(archive.entry_header("d/" * DEPTH + "bottom", 0o644, 5, archive.FILE))
    blocks.append(tarcraft.padded(b"deep\n"))
    for name, data in extra:
        blocks.append(archive.entry_header(name, 0o644, len(data), archive.FILE))
        blocks.append(tarcraft.padded(data))
    return tarcraft.finish(b"".join(blocks))


def test_deep_tree_round_trip(deep_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree 2,000 levels deep archives (as the hand-made archive) and extracts."""
    monkeypatch.chdir(deep_tmp)  # relative paths: 2,000 levels fill most of PATH_MAX
    rel = make_deep("src")
    data = tar_bytes(Path("src"))
    assert data == deep_archive()
    Path("t.tar").write_bytes(data)
    assert archive.extract("t.tar", "out") == DEPTH + 1
    out = os.open("out", os.O_RDONLY)
    try:
        with open(os.open(rel + "/bottom", os.O_RDONLY, dir_fd=out), "rb") as bottom:
            assert bottom.read() == b"deep\n"
    finally:
        os.close(out)


def test_failed_deep_extraction_leaves_nothing(deep_tmp: Path) -> None:
    """An extraction of a deep tree that fails while writing (a name over NAME_MAX) is an
    ArchiveError and leaves no staging directory behind."""
    path = deep_tmp / "t.tar"
    path.write_bytes(deep_archive((("z" * 300, b"too long a name"),)))
    with pytest.raises(ArchiveError, match="cannot extract"):
        archive.extract(path, deep_tmp / "deep")
    assert os.listdir(deep_tmp) == ["t.tar"]
