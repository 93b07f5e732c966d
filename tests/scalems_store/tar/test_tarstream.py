"""The strict streaming tar reader of bundles: reads what tarfile writes, refuses the rest."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalems_store.core.errors import ArchiveError, UnsafeArchive
from scalems_store.tar.tarstream import Member, MemberData, Readable, read_members
from tests import tarcraft
from tests.strategies import names
from tests.tarcraft import deadline, header, member, pax, record

GiB = 1 << 30


class Chain(io.RawIOBase):
    """A non-seekable stream of *parts*: bytes, or an int for that many zero bytes (made up
    as they are read). Each read returns at most *most* bytes, as a pipe may; *served*
    counts the bytes read."""

    def __init__(self, parts: Iterable[bytes | int], most: int = 1 << 20) -> None:
        super().__init__()
        self.parts = list(parts)
        self.most = most
        self.served = 0
        self._zeros = bytes(most)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        while self.parts and self.parts[0] in (b"", 0):
            self.parts.pop(0)
        if not self.parts:
            return b""
        size = self.most if size is None or size < 0 else min(size, self.most)
        part = self.parts[0]
        if isinstance(part, int):
            take = min(size, part)
            self.parts[0] = part - take
            chunk = self._zeros if take == self.most else bytes(take)
        else:
            chunk, self.parts[0] = part[:size], part[size:]
        self.served += len(chunk)
        return chunk


def tarfile_bundle(members: list[tuple[str, bytes]]) -> bytes:
    """A bundle as bundle.export writes it: tarfile's pax stream, mode 0o444."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o444
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def read_all(stream: Readable, chunk: int = 1000) -> list[tuple[Member, bytes]]:
    """Every member and its data, read in chunks of at most *chunk* bytes."""
    found = []
    with deadline(10):
        for found_member, data in read_members(stream):
            parts = []
            while piece := data.read(chunk):
                assert len(piece) <= chunk
                parts.append(piece)
            found.append((found_member, b"".join(parts)))
    return found


FP = "ab" * 32
BUNDLE = [
    ("bundle.json", b'{"format": "scalems-bundle"}'),
    (f"objects/{FP}", b""),
    (f"objects/{'cd' * 32}", b"x" * 511),
    (f"objects/{'ef' * 32}", bytes(range(256)) * 2),
    (f"objects/{'01' * 32}", b"y" * 513),
    (f"objects/{'23' * 32}", b"z" * 100_001),
]


@pytest.mark.parametrize("most", [1 << 20, 7, 1])
def test_reads_what_tarfile_writes_for_bundles(most: int) -> None:
    """A bundle written by tarfile reads back member by member, whatever the stream's reads
    return at a time."""
    stream = Chain([tarfile_bundle(BUNDLE)], most=most)
    assert read_all(stream) == [(Member(n, len(d)), d) for n, d in BUNDLE]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(names, st.text("abcdé", min_size=95, max_size=300)), st.binary(max_size=2000)
        ),
        max_size=6,
    ),
    st.lists(st.integers(min_value=0, max_value=3000), min_size=6, max_size=6),
)
def test_property_reads_tarfile_output_and_skips_what_is_unread(
    members: list[tuple[str, bytes]], reads: list[int]
) -> None:
    """For any members (long and non-ASCII names take a pax path), reading a prefix of each
    gives that prefix, and the rest is skipped before the next member."""
    stream = io.BytesIO(tarfile_bundle(members))
    with deadline(10):
        got = [(m, data.read(reads[i])) for i, (m, data) in enumerate(read_members(stream))]
    wanted = reads[: len(members)]
    assert got == [(Member(n, len(d)), d[:w]) for (n, d), w in zip(members, wanted, strict=True)]


def test_pax_size_record_is_used() -> None:
    """A member over 8 GiB, as tarfile writes its header (pax size, ustar size 0), is read
    with its pax size; skipped unread, the member after it is read right."""
    info = tarfile.TarInfo("objects/" + FP)
    info.size, info.mode = 9 * GiB + 3, 0o444
    head = info.tobuf(tarfile.PAX_FORMAT)
    assert b" size=9663676419\n" in head
    stream = Chain([head, 9 * GiB + 3, bytes(509), tarfile_bundle([("next", b"after")])])
    with deadline(30):
        members = read_members(stream)
        first, _ = next(members)
        assert first == Member("objects/" + FP, 9 * GiB + 3)
        second, data = next(members)
        assert (second, data.read()) == (Member("next", 5), b"after")
        assert list(members) == []


def test_pax_size_overrides_ustar_size() -> None:
    """A pax size record wins over the ustar size field, as POSIX says."""
    data = pax(record(b"size", b"5")) + header(b"f", size=0) + tarcraft.padded(b"hello")
    assert read_all(io.BytesIO(tarcraft.finish(data))) == [(Member("f", 5), b"hello")]


def test_ten_gib_declared_on_a_short_stream_fails_after_the_real_bytes() -> None:
    """A member declaring 10 GiB on a stream holding 3,000 bytes yields those bytes, then a
    'truncated' ArchiveError; skipping it unread fails the same way."""
    stream = pax(record(b"size", b"%d" % (10 * GiB))) + header(b"big") + b"q" * 3000
    got = []
    with deadline(10), pytest.raises(ArchiveError, match="truncated"):
        for _, data in read_members(io.BytesIO(stream)):
            while chunk := data.read(1 << 20):
                got.append(chunk)
    assert b"".join(got) == b"q" * 3000
    with deadline(10), pytest.raises(ArchiveError, match="truncated"):
        list(read_members(io.BytesIO(stream)))


SPARSE_MAP = b"1\n314572800\n0\n"
HAND_SPARSE = (
    pax(
        record(b"GNU.sparse.major", b"1")
        + record(b"GNU.sparse.minor", b"0")
        + record(b"GNU.sparse.name", b"objects/" + FP.encode())
        + record(b"GNU.sparse.realsize", b"314572800")
    )
    + member(b"./GNUSparseFile.0/" + FP.encode(), SPARSE_MAP)
    + tarcraft.END
)


def gnu_tar_sparse(tmp_path: Path) -> bytes:
    """The 10 KiB archive GNU tar makes of a 300 MiB sparse file (the attacker's bundle)."""
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed")
    with open(tmp_path / FP, "wb") as sparse:
        sparse.truncate(300 << 20)
    out = tmp_path / "b.tar"
    subprocess.run(
        ["tar", "--sparse", "--format=pax", "-cf", str(out), "-C", str(tmp_path), FP], check=True
    )
    return out.read_bytes()


@pytest.mark.parametrize("made_by", ["hand", "gnu tar"])
def test_sparse_bundle_is_refused(tmp_path: Path, made_by: str) -> None:
    """A sparse member (GNU.sparse pax records), which tarfile expands to 300 MiB, is refused,
    naming it, before any of its data is read."""
    data = HAND_SPARSE if made_by == "hand" else gnu_tar_sparse(tmp_path)
    assert len(data) <= 10240
    stream = Chain([data])
    with deadline(10), pytest.raises(UnsafeArchive, match="sparse") as caught:
        list(read_members(stream))
    assert "GNUSparseFile" in str(caught.value)
    assert stream.served <= 3 * 512


def refusal(data: bytes) -> str:
    """The message of the ArchiveError reading *data* raises."""
    with deadline(10), pytest.raises(ArchiveError) as caught:
        read_all(io.BytesIO(data))
    return str(caught.value)


@pytest.mark.parametrize(
    ("typeflag", "what"),
    [(b"S", "sparse"), (b"g", "global"), (b"L", "long name"), (b"K", "long link"),
     (b"1", "hardlink"), (b"2", "symlink"), (b"3", "device"), (b"4", "device"),
     (b"5", "directory"), (b"6", "fifo"), (b"7", "contiguous"), (b"V", "unsupported")],
)  # fmt: skip
def test_members_other_than_files_are_refused(typeflag: bytes, what: str) -> None:
    """Links, devices, directories, sparse files, global headers and GNU long names are
    refused, naming the member."""
    message = refusal(tarcraft.finish(member(b"objects/x", b"data", typeflag=typeflag)))
    assert what in message and "'objects/x'" in message


@pytest.mark.parametrize(
    "records",
    [record(b"GNU.sparse.map", b"0,10"), record(b"GNU.sparse.size", b"99"),
     record(b"hdrcharset", b"BINARY"), record(b"SCHILY.xattr.a", b"b"),
     record(b"linkpath", b"elsewhere")],
)  # fmt: skip
def test_pax_records_other_than_names_sizes_and_metadata_are_refused(records: bytes) -> None:
    """Sparse, charset, xattr and link records are refused, naming the member."""
    assert "'f'" in refusal(tarcraft.finish(pax(records) + member(b"f", b"x")))


def test_metadata_records_are_accepted() -> None:
    """Metadata records GNU tar or tarfile may write (times, owner, comment) are ignored."""
    records = b"".join(
        record(key, b"1795621152.798668782")
        for key in (b"mtime", b"atime", b"ctime", b"uid", b"gid", b"uname", b"gname", b"comment")
    )
    data = tarcraft.finish(pax(records + record(b"path", b"long/" * 30)) + member(b"f", b"x"))
    assert read_all(io.BytesIO(data)) == [(Member("long/" * 30, 1), b"x")]


@pytest.mark.parametrize(
    "data",
    [
        header(b"f", checksum=1234) + tarcraft.END,
        header(b"f", magic=b"ustar  \0") + tarcraft.END,
        header(b"f", size=b"-0001000\0") + bytes(1024) + tarcraft.END,
        header(b"f", size=b"\xff" * 12) + tarcraft.END,
        header(b"f", size=b"1x\0") + tarcraft.END,
        pax(record(b"size", b"-1536")) + pax(b"") + tarcraft.END,
        pax(record(b"size", b"99999999999999999999")) + member(b"f") + tarcraft.END,
        pax(record(b"size", b"12abc")) + member(b"f") + tarcraft.END,
        pax(record(b"path", b"a\0b")) + member(b"f") + tarcraft.END,
        pax(b"0 path=x\n") + member(b"f") + tarcraft.END,
        pax(b"99 path=x\n") + member(b"f") + tarcraft.END,
        pax(record(b"path", b"\xff\xfe")) + member(b"f") + tarcraft.END,
        header(b"\xff\xfe") + tarcraft.END,
        header(b"") + tarcraft.END,
        header(b"f", link=b"target") + tarcraft.END,
        pax(record(b"path", b"a")) + tarcraft.END,
        pax(record(b"path", b"a")) + pax(record(b"path", b"b")) + member(b"f") + tarcraft.END,
    ],
    ids=[
        "checksum", "magic", "negative octal size", "negative base-256 size", "size not octal",
        "negative pax size", "huge pax size", "pax size not digits", "nul in path",
        "zero record length", "record past the payload", "path not utf-8", "name not utf-8",
        "empty name", "file with a link target", "pax at the end", "pax after pax",
    ],
)  # fmt: skip
def test_corrupt_headers_are_refused(data: bytes) -> None:
    """Headers that break a rule shared with the tree parser are ArchiveErrors."""
    refusal(data)


def test_pax_header_too_large_is_refused_before_it_is_read() -> None:
    """A pax header declaring more than 1 MiB is refused without reading it."""
    stream = Chain([header(b"././@PaxHeader", typeflag=b"x", size=8 * GiB - 1), 8 * GiB])
    with deadline(10), pytest.raises(ArchiveError, match="pax header of"):
        list(read_members(stream))
    assert stream.served == 512


@pytest.mark.parametrize(
    ("tail", "ok"),
    [
        (bytes(10240 - 1024), True),
        (b"", True),
        (bytes(100), True),
        (None, False),
        (b"garbage", False),
        (bytes(511) + b"x", False),
    ],
    ids=["tarfile's two blocks, padded", "one zero block", "a zero block and a bit", "none",
         "garbage after", "a non-zero byte after"],
)  # fmt: skip
def test_end_of_archive(tail: bytes | None, ok: bool) -> None:
    """The archive ends at a zero block followed by zeros or nothing; without one it is
    truncated; with data after it, it is refused."""
    body = member(b"f", b"x")
    data = body if tail is None else body + bytes(512) + tail
    if ok:
        assert read_all(io.BytesIO(data)) == [(Member("f", 1), b"x")]
    else:
        assert ("truncated" in refusal(data)) == (tail is None)


@pytest.mark.parametrize("cut", [0, 100, 512, 600, 1024])
def test_stream_ending_early_is_truncated(cut: int) -> None:
    """A stream that ends inside a header, member data or its padding is 'truncated'."""
    data = member(b"f", b"x" * 600)[:cut] if cut else b""
    assert "truncated" in refusal(data)


def test_member_data_is_closed_once_the_reader_moves_on() -> None:
    """A member's data cannot be read after the reader has gone to the next member."""
    members = read_members(io.BytesIO(tarfile_bundle([("a", b"1"), ("b", b"2")])))
    _, first = next(members)
    next(members)
    with pytest.raises(ValueError):
        first.read(1)
    assert isinstance(first, MemberData) and first.closed
