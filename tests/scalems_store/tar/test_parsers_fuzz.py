"""Fuzzing the tar parsers: any input ends, quickly, in members or an ArchiveError.

Each parse runs under a deadline, so a parser that stops making progress fails
the test instead of hanging it; extraction must write nothing outside its
target and leave nothing behind when it refuses.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalems_store.core.errors import ArchiveError
from scalems_store.core.fsutil import remove_tree
from scalems_store.tar import archive, thintar
from scalems_store.tar.tarstream import read_members
from scalems_store.tar.treeread import clean_name
from tests.strategies import bundles, header_soup, mutated, tree_archives
from tests.tarcraft import deadline

SECONDS = 5
"""Longest a parse of one (small) input may take."""

_FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

any_tar = st.one_of(
    st.binary(max_size=3000),
    header_soup(),
    mutated(tree_archives()),
    mutated(bundles()),
)


def parse_tree(data: bytes) -> None:
    """Parse *data* as a tree archive, with and without checksums: entries or ArchiveError."""
    for checked in (False, True):
        with deadline(SECONDS):
            try:
                entries = list(archive.iter_entries(data, checked=checked))
            except ArchiveError:
                continue
        for entry in entries:
            assert entry.size >= 0 and entry.offset + entry.size <= len(data)


def stream_members(data: bytes, want: int) -> None:
    """Read *data* with the streaming reader, *want* bytes of each member: members whose
    data has their size, or ArchiveError."""
    with deadline(SECONDS):
        try:
            for member, content in read_members(io.BytesIO(data)):
                got = content.read(want)
                assert len(got) <= min(want, member.size)
                assert "\0" not in member.name
        except ArchiveError:
            pass


def inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def check_extraction(data: bytes, base: Path) -> None:
    """Extract *data* under a fresh directory of *base*: on success everything lies inside
    the target (symlinks too); on ArchiveError nothing is left but the archive."""
    work = tempfile.mkdtemp(dir=base)
    try:
        tar, out = os.path.join(work, "a.tar"), os.path.join(work, "out")
        with open(tar, "wb") as stream:
            stream.write(data)
        with deadline(SECONDS):
            try:
                archive.extract(tar, out)
            except ArchiveError:
                assert os.listdir(work) == ["a.tar"]
                return
        assert sorted(os.listdir(work)) == ["a.tar", "out"]
        real = os.path.realpath(out)
        pending = [out]
        while pending:
            for item in os.scandir(pending.pop()):
                assert inside(real, os.path.realpath(item.path)), item.path
                if item.is_dir(follow_symlinks=False):
                    pending.append(item.path)
    finally:
        remove_tree(work)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@_FUZZ
@given(data=st.binary(max_size=4096))
def test_any_bytes(data: bytes, base: Path) -> None:
    """Any bytes: both parsers end in members or an ArchiveError, extraction stays inside."""
    parse_tree(data)
    stream_members(data, 100)
    check_extraction(data, base)


@settings(_FUZZ, max_examples=600)
@given(data=header_soup(), want=st.integers(0, 1200))
def test_header_soup(data: bytes, want: int, base: Path) -> None:
    """Blocks of random headers with right checksums and hostile pax records: members or an
    ArchiveError, in bounded time, nothing written outside the target."""
    parse_tree(data)
    stream_members(data, want)
    check_extraction(data, base)


@settings(_FUZZ, max_examples=1000)
@given(data=mutated(tree_archives()))
def test_mutated_tree_archives(data: bytes, base: Path) -> None:
    """Tree archives with flipped bytes, hostile fields and pax records, or cut short:
    members or an ArchiveError, in bounded time, nothing written outside the target."""
    parse_tree(data)
    check_extraction(data, base)


@settings(_FUZZ, max_examples=800)
@given(data=mutated(bundles()), want=st.integers(0, 1200))
def test_mutated_bundles(data: bytes, want: int) -> None:
    """Bundles as tarfile writes them, mutated: the streaming reader yields members or
    raises ArchiveError, in bounded time."""
    stream_members(data, want)
    parse_tree(data)


@settings(_FUZZ, max_examples=300)
@given(data=any_tar)
def test_both_parsers_agree_on_plain_files(data: bytes) -> None:
    """Where both parsers accept an archive of regular files, they see the same names and
    sizes: one set of header rules."""
    with deadline(SECONDS):
        try:
            entries = list(archive.iter_entries(data))
            streamed = [(m.name, m.size) for m, _ in read_members(io.BytesIO(data))]
        except ArchiveError:
            return
    if all(entry.type == archive.FILE for entry in entries):
        assert [(e.path, e.size) for e in entries] == [(clean_name(n), s) for n, s in streamed]


_sizes = st.one_of(st.integers(-3, 1 << 20), st.integers(), st.booleans(), st.floats(), st.none())
_pieces = st.lists(
    st.one_of(
        st.tuples(_sizes, _sizes, st.sampled_from(["a" * 64, "A" * 64, "ab", ""])).map(list),
        st.lists(_sizes, max_size=4),
        st.text(max_size=5),
    ),
    max_size=6,
)
_thin_lines = st.one_of(
    st.binary(max_size=300),
    st.fixed_dictionaries(
        {"pieces": _pieces, "size": _sizes, "zeros": _sizes},
        optional={"extra": st.integers()},
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(_FUZZ, max_examples=600)
@given(
    line=_thin_lines,
    version=st.sampled_from([b"1", b"2", b"", b"1 ", b"\xff"]),
    newline=st.booleans(),
    rest=st.binary(max_size=200),
)
def test_thin_tree_headers(line: bytes, version: bytes, newline: bool, rest: bytes) -> None:
    """Any thin tree header, as a peer may send it: a header that adds up, or one
    ArchiveError line, in bounded time; one that adds up bounds what a rebuild writes
    (pieces in order, inside the archive, its end zeros few)."""
    data = thintar.MAGIC + version + b"\n" + line + (b"\n" if newline else b"") + rest
    stream = io.BytesIO(data)
    with deadline(SECONDS):
        try:
            head = thintar.read_header(stream, "fuzz")
        except ArchiveError as exc:
            assert "\n" not in str(exc)
            return
    assert head.start == stream.tell() and 0 <= head.zeros <= thintar.MAX_ZEROS
    assert type(head.size) is int and type(head.zeros) is int  # no bool passes for one
    at = 0
    for piece in head.pieces:
        assert type(piece.offset) is int and type(piece.length) is int
        assert piece.offset >= at and piece.length > 0
        at = piece.offset + piece.length
    assert at + head.zeros <= head.size and head.literal >= 0
