"""Trees stored thin: each large file once, as a piece of its own, whatever the tree; every
reader still gets the whole archive, byte for byte, checked against the tree's name."""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalems_store import CorruptObject, FileStore, gc, verify
from scalems_store.core.errors import ArchiveError, FingerprintMismatch, InvalidContent
from scalems_store.core.fingerprint import hash_bytes
from scalems_store.maint import bundle
from scalems_store.objects.placing import Placer
from scalems_store.tar import archive, thintar
from tests import strategies
from tests.conftest import MakeStore, RunCli
from tests.treeutil import build, snapshot

BIG = bytes(range(256)) * 300  # 76,800 bytes: a piece at the default threshold
GOLDEN_TREE = "029a6131c27334ce76b52baca1f8f1dff95c662041af5ebab762fe060d2abe2d"
GOLDEN_THIN = "9ee160c15b35668a87164d00e99baa2778db68c99758cd78e1c7880c8b0bec0c"
"""The BLAKE3 of the tree's stored (thin, version 1) bytes: 5,423 of them."""
GOLDEN_PIECES = (
    "07876663625233f0fdb11bcd1d90741d6e1809e1f03a7de70fff5046cfa8829b",  # sub/other.bin
    "541e436ef3da83be3c875163929ad965989bd0592e268bcc0c785bff05bc101f",  # big.bin, sub/copy.bin
)


def golden_tree(root: str | Path) -> None:
    """The tree of the golden vector: two large files (one of them twice), a small one, an
    empty one, a symlink, an executable."""
    root = Path(root)
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(BIG)
    (root / "sub" / "copy.bin").write_bytes(BIG)
    (root / "sub" / "other.bin").write_bytes(b"x" * 70_000)
    (root / "small.txt").write_bytes(b"hello\n")
    (root / "empty").write_bytes(b"")
    (root / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("small.txt")


def whole(directory: str | Path) -> bytes:
    return b"".join(archive.iter_tree(directory))


def stored(store: FileStore, fp: str) -> bytes:
    return Path(store.object_path(fp)).read_bytes()


def test_golden_vector_of_the_thin_form(store: FileStore, tmp_path: Path) -> None:
    """A tree with large files keeps its fingerprint (the BLAKE3 of its whole archive) and
    is stored in exactly the thin form of version 1, its large files each once as a blob."""
    golden_tree(tmp_path / "t")
    fp = store.add_tree(tmp_path / "t")
    assert fp == hash_bytes(whole(tmp_path / "t")) == GOLDEN_TREE
    raw = stored(store, fp)
    assert raw.startswith(b"\0scalems-thin-tree 1\n{")
    assert hash_bytes(raw) == GOLDEN_THIN
    assert store.references(fp) == GOLDEN_PIECES
    assert (hash_bytes(b"x" * 70_000), hash_bytes(BIG)) == GOLDEN_PIECES
    assert len(raw) == 5423  # headers and small files, not the 224 KiB of large ones
    header = raw.split(b"\n")[1]
    assert header == (
        b'{"pieces":[[512,76800,"%s"],[81408,76800,"%s"],[158720,70000,"%s"]],'
        b'"size":235520,"zeros":6800}'
        % (GOLDEN_PIECES[1].encode(), GOLDEN_PIECES[1].encode(), GOLDEN_PIECES[0].encode())
    )


@pytest.mark.parametrize("threshold", [1, 64])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=strategies.trees(), extra=st.binary(max_size=300))
def test_round_trip_byte_for_byte(
    tree: dict[str, object], extra: bytes, threshold: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any tree (files large and small, empty, executable; symlinks; long and non-ASCII
    names) reads back as its whole archive, byte for byte, however many of its files are
    pieces; it extracts, lists and checks as the whole archive does."""
    monkeypatch.setattr(thintar, "THRESHOLD", threshold)
    with tempfile.TemporaryDirectory(dir=_scratch()) as scratch:
        root = Path(scratch) / "t"
        build(root, tree)
        (root / "extra.bin").write_bytes(extra)
        if tree:
            (root / "link").symlink_to(sorted(tree)[0])
        expected = whole(root)
        store = FileStore(Path(scratch) / "s", durable=False)
        fp = store.add_tree(root)
        assert fp == hash_bytes(expected)
        large = any(e.size >= threshold for e in archive.list_entries(_file(scratch, expected)))
        assert thintar.is_thin(stored(store, fp)) == large
        assert store.read_bytes(fp) == expected
        out = io.BytesIO()
        assert store.write_to(fp, out) == len(expected) and out.getvalue() == expected
        with store.open(fp) as stream:
            assert stream.read() == expected
        assert store.check(fp) == fp and store.info(fp).size == len(expected)
        assert [e.path for e in store.tree_entries(fp)] == [
            e.path for e in archive.list_entries(_file(scratch, expected))
        ]
        store.materialize(fp, Path(scratch) / "out")
        assert snapshot(Path(scratch) / "out") == snapshot(root)
        _check_paths(store, fp, root, Path(scratch))
        assert store.add_tree(root) == fp  # again: kept as it is
        assert verify(store).ok


def _check_paths(store: FileStore, fp: str, root: Path, scratch: Path) -> None:
    """Each file of the tree reads back by ``FP:path`` (whole, as a stream, extracted on
    its own), and each directory extracts, as the files on disk are."""
    from scalems_store.store.treeview import materialize_spec

    for n, path in enumerate(sorted(root.rglob("*"))):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            continue
        if path.is_dir():
            materialize_spec(store, f"{fp}:{rel}", scratch / f"dir{n}")
            assert snapshot(scratch / f"dir{n}") == snapshot(path)
            continue
        assert store.read_bytes(f"{fp}:{rel}") == path.read_bytes()
        with store.open(f"{fp}:{rel}") as stream:
            assert stream.read() == path.read_bytes()
        materialize_spec(store, f"{fp}:{rel}", scratch / f"file{n}")
        assert (scratch / f"file{n}").read_bytes() == path.read_bytes()
        assert os.access(scratch / f"file{n}", os.X_OK) == os.access(path, os.X_OK)


def _scratch() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


def _file(scratch: str, data: bytes) -> str:
    path = os.path.join(scratch, "whole.tar")
    Path(path).write_bytes(data)
    return path


def test_large_file_shared_by_trees_is_stored_once(store: FileStore, tmp_path: Path) -> None:
    """A skeleton's large input and the output trees that repeat it cost its bytes once:
    each further tree costs its headers and its new files."""
    skeleton = tmp_path / "skel"
    skeleton.mkdir()
    (skeleton / "topol.tpr").write_bytes(os.urandom(1 << 20))
    first = store.add_tree(skeleton)
    sizes = []
    for n in range(3):
        out = tmp_path / f"out{n}"
        out.mkdir()
        (out / "topol.tpr").write_bytes((skeleton / "topol.tpr").read_bytes())
        (out / "traj.bin").write_bytes(os.urandom(100_000))
        fp = store.add_tree(out)
        sizes.append(os.path.getsize(store.object_path(fp)))
        assert store.read_bytes(fp) == whole(out)
        assert store.references(fp)[0] in store.references(first) or (
            store.references(fp)[1] in store.references(first)
        )
    assert max(sizes) < 4096
    blobs = [info for info in store.list(kind="blob")]
    assert sorted(info.size for info in blobs) == [100_000] * 3 + [1 << 20]


def test_a_store_of_whole_archives_still_reads(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trees written before thin trees (whole archives in objects/) read, extract, verify
    and are kept as they are when added again."""
    golden_tree(tmp_path / "t")
    with monkeypatch.context() as patched:
        patched.setattr(thintar, "THRESHOLD", 1 << 60)  # what every earlier version wrote
        fp = store.add_tree(tmp_path / "t")
    raw = stored(store, fp)
    assert hash_bytes(raw) == fp and not thintar.is_thin(raw)
    assert store.read_bytes(fp) == raw and store.references(fp) == ()
    store.materialize(fp, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "t")
    assert store.add_tree(tmp_path / "t") == fp and stored(store, fp) == raw
    assert verify(store).ok


def test_gc_keeps_pieces_a_tree_needs_and_removes_them_with_it(
    store: FileStore, tmp_path: Path
) -> None:
    """A piece stays while any kept tree names it (two trees share one), and goes with the
    last tree that needs it; the tree is never left without its pieces."""
    golden_tree(tmp_path / "a")
    golden_tree(tmp_path / "b")
    more = os.urandom(80_000)
    (tmp_path / "b" / "more.bin").write_bytes(more)
    a, b = store.add_tree(tmp_path / "a"), store.add_tree(tmp_path / "b")
    store.set_label("a", a)
    store.set_label("b", b)
    assert gc(store, grace=0).removed == []
    store.remove_label("b")
    assert sorted(gc(store, grace=0).removed) == sorted([b, hash_bytes(more)])
    assert store.read_bytes(a) == whole(tmp_path / "a") and verify(store).ok
    store.remove_label("a")
    assert sorted(gc(store, grace=0).removed) == sorted([a, *GOLDEN_PIECES])
    assert list(store.iter_fingerprints()) == []


def test_gc_reads_pieces_from_the_bytes_when_the_meta_file_is_lost(
    store: FileStore, tmp_path: Path
) -> None:
    """gc follows a thin tree's pieces as its stored bytes name them: a lost meta file
    never costs a piece; verify then mends the meta file."""
    golden_tree(tmp_path / "t")
    fp = store.add_tree(tmp_path / "t")
    store.set_label("t", fp)
    os.unlink(store.objects.meta_path(fp))
    assert gc(store, grace=0).removed == []
    verify(store)  # reports what it mends (the index said tree, the store a blob)
    report = verify(store)
    assert report.ok, report.problems
    assert store.objects.read_meta(fp) == (
        "tree",
        GOLDEN_PIECES,
    ) and store.read_bytes(fp) == whole(tmp_path / "t")


def test_verify_finds_a_corrupt_or_missing_piece(store: FileStore, tmp_path: Path) -> None:
    """A damaged piece is reported (itself, and the tree it no longer rebuilds); reading the
    tree refuses, and extracting it leaves nothing; a missing piece is reported too."""
    golden_tree(tmp_path / "t")
    fp = store.add_tree(tmp_path / "t")
    assert verify(store).ok
    piece = store.object_path(hash_bytes(BIG))
    os.chmod(piece, 0o644)
    with open(piece, "r+b") as stream:
        stream.seek(1000)
        stream.write(b"\xff")
    problems = dict(verify(store).problems)
    assert problems[hash_bytes(BIG)].startswith("corrupt")
    assert problems[fp].startswith("corrupt")
    with pytest.raises(CorruptObject):
        store.read_bytes(fp)
    with pytest.raises(CorruptObject):  # one file of it: the tree is checked whole first
        store.read_bytes(f"{fp}:small.txt")
    with pytest.raises(CorruptObject):
        store.materialize(fp, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    os.unlink(piece)
    problems = dict(verify(store).problems)
    assert "missing" in problems[hash_bytes(BIG)] or "missing" in problems[fp]
    with pytest.raises(CorruptObject, match="piece"):
        store.read_bytes(fp)


def test_bundle_carries_the_thin_form_and_its_pieces(make_store: MakeStore, tmp_path: Path) -> None:
    """A bundle carries a thin tree thin (version 2) with its pieces, each once; imported
    into a fresh store it is thin there too and reads back byte for byte."""
    source, dest = make_store("source"), make_store("dest")
    golden_tree(tmp_path / "t")
    fp = source.add_tree(tmp_path / "t", label="t")
    out = io.BytesIO()
    assert bundle.export(source, [fp], out, labels=True) == 3
    data = out.getvalue()
    assert len(data) < len(whole(tmp_path / "t"))  # the shared file once, not three times
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        manifest = tar.extractfile("bundle.json").read()  # type: ignore[union-attr]
        assert b'"version": 2' in manifest
        assert thintar.is_thin(tar.extractfile("objects/" + fp).read())  # type: ignore[union-attr]
    bundle.import_objects(dest, io.BytesIO(data))
    assert thintar.is_thin(stored(dest, fp)) and dest.references(fp) == GOLDEN_PIECES
    assert dest.read_bytes(fp) == whole(tmp_path / "t") and dest.labels() == {"t": fp}
    assert verify(dest).ok


def test_bundle_of_a_tampered_thin_tree_is_refused(make_store: MakeStore, tmp_path: Path) -> None:
    """A thin tree whose literal bytes or pieces do not rebuild its name, or whose manifest
    names other pieces, is refused and nothing is published."""
    source = make_store("source")
    golden_tree(tmp_path / "t")
    fp = source.add_tree(tmp_path / "t")
    out = io.BytesIO()
    bundle.export(source, [fp], out)
    good = out.getvalue()
    literal = good.index(b"small.txt")  # a member name in the literal bytes of the tree
    bad = good[:literal] + b"SMALL" + good[literal + 5 :]
    dest = make_store("dest")
    with pytest.raises(FingerprintMismatch):
        bundle.import_objects(dest, io.BytesIO(bad))
    assert list(dest.iter_fingerprints()) == []
    wrong = good.replace(GOLDEN_PIECES[0].encode(), b"0" * 64, 1)  # the manifest's claim
    with pytest.raises((InvalidContent, ArchiveError, FingerprintMismatch)):
        bundle.import_objects(dest, io.BytesIO(wrong))
    assert list(dest.iter_fingerprints()) == []


def test_old_bundle_of_a_whole_archive_is_stored_thin(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle written before thin trees (version 1, the whole archive) imports as before,
    and the tree is stored thin where it lands."""
    source, dest = make_store("source"), make_store("dest")
    golden_tree(tmp_path / "t")
    with monkeypatch.context() as patched:
        patched.setattr(thintar, "THRESHOLD", 1 << 60)
        fp = source.add_tree(tmp_path / "t")
        out = io.BytesIO()
        bundle.export(source, [fp], out)
    assert b'"version": 1' in out.getvalue()[:2048]
    bundle.import_objects(dest, io.BytesIO(out.getvalue()))
    assert thintar.is_thin(stored(dest, fp)) and dest.read_bytes(fp) == whole(tmp_path / "t")
    assert verify(dest).ok


def test_thin_bytes_are_never_taken_for_a_tree(store: FileStore, tmp_path: Path) -> None:
    """The thin form of a tree, offered as a tree's bytes, is refused (it is no archive);
    as a blob it is a blob like any other, read as its own bytes."""
    golden_tree(tmp_path / "t")
    fp = store.add_tree(tmp_path / "t")
    raw = stored(store, fp)
    with pytest.raises(InvalidContent):
        store.add_bytes(raw, kind="tree")
    blob = store.add_bytes(raw)
    assert store.read_bytes(blob) == raw and store.kind(blob) == "blob"


def test_killed_between_pieces_and_tree_leaves_nothing_partial(
    store: FileStore, tmp_path: Path
) -> None:
    """A writer killed (SIGKILL) after publishing a tree's pieces and before the tree leaves
    no tree (only pieces, which gc removes); one killed after leaves a sound tree."""
    golden_tree(tmp_path / "t")
    expected = hash_bytes(whole(tmp_path / "t"))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child dies
        try:
            from scalems_store.objects import writer as writer_module

            publish = writer_module.Writer._publish

            def killed(self: object, fp: str, kind: str, *args: object) -> str:
                if kind == "tree":
                    os.kill(os.getpid(), 9)
                return publish(self, fp, kind, *args)  # type: ignore[arg-type]

            writer_module.Writer._publish = killed  # type: ignore[assignment,method-assign]
            FileStore(store.root).add_tree(tmp_path / "t")
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
    assert expected not in store
    assert sorted(store.iter_fingerprints()) == sorted(GOLDEN_PIECES)
    assert verify(store).ok
    assert sorted(gc(store, grace=0).removed) == sorted(GOLDEN_PIECES)
    assert store.add_tree(tmp_path / "t") == expected and store.check(expected) == expected


def test_remote_push_and_pull_move_the_thin_form(make_store: MakeStore, tmp_path: Path) -> None:
    """Pushed to a remote store and pulled into a fresh one, a thin tree travels thin with
    its pieces, is verified on arrival and reads back byte for byte at both ends."""
    from scalems_store.remote import sync
    from scalems_store.remote.peer import LocalPeer

    local, remote, fresh = make_store("local"), make_store("remote"), make_store("fresh")
    golden_tree(tmp_path / "t")
    fp = local.add_tree(tmp_path / "t", label="t")
    with LocalPeer(FileStore(remote.root)) as peer:
        plan = sync.plan_push(local, peer, ["t"], True)
        sync.push(local, peer, plan)
    assert plan.bytes < len(whole(tmp_path / "t"))  # the shared file went once
    assert thintar.is_thin(stored(remote, fp)) and verify(remote).ok
    with LocalPeer(FileStore(remote.root)) as peer:
        plan = sync.plan_pull(fresh, peer, [fp], labels=False)
        sync.pull(fresh, peer, plan, refs=False)
    assert thintar.is_thin(stored(fresh, fp)) and fresh.references(fp) == GOLDEN_PIECES
    assert fresh.read_bytes(fp) == remote.read_bytes(fp) == whole(tmp_path / "t")
    assert verify(fresh).ok


def test_files_in_trees_are_listed_without_reading_the_pieces(
    store: FileStore, tmp_path: Path
) -> None:
    """The files-in-trees index (``why`` of a file's content) lists a thin tree's files,
    the large ones by their pieces' names, the small ones hashed: the same rows as the
    tree stored whole gives."""
    from scalems_store.query.treefiles import places, tree_files

    golden_tree(tmp_path / "t")
    fp = store.add_tree(tmp_path / "t")
    rows = sorted(tree_files(store, fp))
    expected = sorted(
        (hash_bytes(path.read_bytes()), path.relative_to(tmp_path / "t").as_posix())
        for path in (tmp_path / "t").rglob("*")
        if path.is_file() and not path.is_symlink()
    )
    assert rows == expected
    assert places(store, hash_bytes(BIG)) == (
        hash_bytes(BIG),
        [(fp, "big.bin"), (fp, "sub/copy.bin")],
    )
    assert places(store, hash_bytes(b"hello\n"))[1] == [(fp, "small.txt")]


def test_a_file_reference_to_a_thin_tree_reads_its_whole_archive(
    store: FileStore, tmp_path: Path
) -> None:
    """SCALE-MS's FileReference reads objects by path: for a tree stored thin, the path is
    a checked, read-only copy of its whole archive in tmp/ (made again if swept)."""
    import asyncio

    golden_tree(tmp_path / "t")
    fp = store.add_tree(tmp_path / "t")
    ref = store.file_reference(fp)
    with open(ref, "rb") as stream:
        assert stream.read() == whole(tmp_path / "t")
    assert asyncio.run(ref.aread()) == whole(tmp_path / "t")
    os.unlink(os.fspath(ref))  # as gc sweeps tmp/
    assert Path(os.fspath(ref)).read_bytes() == whole(tmp_path / "t")
    assert os.fspath(store.file_reference(GOLDEN_PIECES[0])) == store.object_path(GOLDEN_PIECES[0])


def _bundle(objects: list[tuple[str, str, list[str], bytes]]) -> bytes:
    """A version 2 bundle of *objects* (fingerprint, kind, references, bytes), in order."""
    manifest = {
        **bundle.FORMAT,
        "version": bundle.THIN_VERSION,
        "objects": [{"fingerprint": f, "kind": k, "refs": r} for f, k, r, _ in objects],
        "refs": [],
    }
    members = [("bundle.json", json.dumps(manifest).encode())]
    members += [("objects/" + fp, data) for fp, _, _, data in objects]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _thinned(archive_bytes: bytes, file_bytes: bytes, piece: str) -> bytes:
    """The thin form of *archive_bytes* whose one piece is *file_bytes*, named *piece*."""
    at = archive_bytes.index(file_bytes)
    zeros = thintar.trailing_zeros(archive_bytes, at + len(file_bytes))
    head = thintar.Header(
        len(archive_bytes), (thintar.Piece(at, len(file_bytes), piece),), zeros, 0
    )
    literal = b"".join(bytes(c) for c in thintar.literal_chunks(archive_bytes, head))
    return thintar.encode_header(head.size, head.pieces, zeros) + literal


def test_a_bundle_claiming_terabytes_of_zeros_is_refused_at_once(
    make_store: MakeStore, tmp_path: Path, run_cli: RunCli
) -> None:
    """A thin tree of a few KiB whose header says its archive ends in a TiB of zeros is
    refused in one line before anything is rebuilt (it wrote the zeros to tmp/ until the
    disk filled); nothing is published and the store verifies clean."""
    source, dest = make_store("source"), make_store("dest")
    golden_tree(tmp_path / "t")
    fp = source.add_tree(tmp_path / "t")
    raw = stored(source, fp)
    head = thintar.read_header(io.BytesIO(raw), "t")
    huge = thintar.encode_header(head.size + (1 << 40), head.pieces, head.zeros + (1 << 40))
    objects: list[tuple[str, str, list[str], bytes]] = [
        (p, "blob", [], source.read_bytes(p)) for p in GOLDEN_PIECES
    ]
    path = tmp_path / "evil.bundle"
    path.write_bytes(
        _bundle([*objects, (fp, "tree", list(GOLDEN_PIECES), huge + raw[head.start :])])
    )
    done = run_cli("scalems-store", "--store", str(dest.root), "import", str(path), timeout=60)
    assert done.returncode != 0
    assert done.stderr.decode().strip().count("\n") == 0 and b"zero bytes" in done.stderr
    assert list(dest.iter_fingerprints()) == [] and verify(dest).ok


def test_a_tree_stored_thin_is_never_a_piece(
    make_store: MakeStore, tmp_path: Path, run_cli: RunCli
) -> None:
    """A piece is read as its stored bytes, so a tree stored thin is no piece: a directory
    holding the archive of such a tree (``get TREE -o x.tar``) is added with that file
    inline and reads back (it was stored naming the tree as a piece, and read as corrupt),
    and a bundle whose thin tree names one as its piece is refused, nothing published."""
    store = make_store("store")
    golden_tree(tmp_path / "t")
    fp = store.add_tree(tmp_path / "t")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "t.tar").write_bytes(store.read_bytes(fp))
    outer = store.add_tree(tmp_path / "d")
    assert store.read_bytes(outer) == whole(tmp_path / "d") and fp not in store.references(outer)
    assert verify(store).ok

    fake = stored(store, fp)  # a file whose bytes are the thin form, passed off as tree fp
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "f.bin").write_bytes(fake)
    evil = whole(tmp_path / "e")
    named = hash_bytes(evil)
    path = tmp_path / "evil.bundle"
    path.write_bytes(_bundle([(named, "tree", [fp], _thinned(evil, fake, fp))]))
    before = sorted(store.iter_fingerprints())
    done = run_cli("scalems-store", "--store", str(store.root), "import", str(path))
    assert done.returncode != 0 and done.stderr.decode().strip().count("\n") == 0
    assert b"a tree stored thin here" in done.stderr
    assert sorted(store.iter_fingerprints()) == before and verify(store).ok


def test_a_piece_must_be_the_data_of_one_file(make_store: MakeStore, tmp_path: Path) -> None:
    """A thin tree naming a piece anywhere but at the data of one of its files is refused in
    one line, by its name rightly the BLAKE3 of what it rebuilds: one 75 KiB piece named
    50 times back to back (a peer can name a blob of the store many GiB long so, for a few
    bytes each: the whole was written to tmp/ before it was parsed; now only its literal
    bytes are), or a piece over its headers. Nothing is published."""
    source, dest = make_store("source"), make_store("dest")
    golden_tree(tmp_path / "t")
    fp = source.add_tree(tmp_path / "t")
    archive_bytes = source.read_bytes(fp)
    first = thintar.read_header(io.BytesIO(stored(source, fp)), "t").pieces[0]
    big = first.fp
    piece = source.read_bytes(big)
    end = first.offset + first.length
    repeated = archive_bytes[: first.offset] + piece * 50 + archive_bytes[end:]
    spans = [thintar.Piece(first.offset + i * len(piece), len(piece), big) for i in range(50)]
    over_headers = piece + archive_bytes[len(piece) :]
    for whole_bytes, pieces in (
        (repeated, spans),
        (over_headers, [thintar.Piece(0, len(piece), big)]),
    ):
        last = pieces[-1].offset + pieces[-1].length
        head = thintar.Header(
            len(whole_bytes), tuple(pieces), thintar.trailing_zeros(whole_bytes, last), 0
        )
        thin_bytes = thintar.encode_header(head.size, head.pieces, head.zeros) + b"".join(
            bytes(c) for c in thintar.literal_chunks(whole_bytes, head)
        )
        objects = [
            (big, "blob", [], piece),
            (hash_bytes(whole_bytes), "tree", [big], thin_bytes),
        ]
        with pytest.raises(InvalidContent, match="is not the data of one of its files") as caught:
            bundle.import_objects(dest, io.BytesIO(_bundle(objects)))
        assert "\n" not in str(caught.value)
        assert list(dest.iter_fingerprints()) == [] and verify(dest).ok


def test_an_import_publishes_pieces_before_their_tree_whatever_the_order_listed(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle listing a thin tree before its pieces is published pieces first (it was
    published in the order listed: an import cut short between the two left a tree whose
    piece was missing)."""
    source, dest = make_store("source"), make_store("dest")
    golden_tree(tmp_path / "t")
    fp = source.add_tree(tmp_path / "t")
    objects = [(fp, "tree", list(GOLDEN_PIECES), stored(source, fp))]
    objects += [(p, "blob", [], source.read_bytes(p)) for p in GOLDEN_PIECES]
    placed: list[str] = []
    place = Placer.place

    def recording(self: Placer, fingerprint: str, *args: Any, **kwargs: Any) -> Any:
        placed.append(fingerprint)
        return place(self, fingerprint, *args, **kwargs)

    monkeypatch.setattr(Placer, "place", recording)
    bundle.import_objects(dest, io.BytesIO(_bundle(objects)))
    assert sorted(placed) == sorted([fp, *GOLDEN_PIECES]) and placed[-1] == fp
    assert dest.read_bytes(fp) == whole(tmp_path / "t") and verify(dest).ok


def test_the_most_end_zeros_a_tree_can_have_are_within_the_cap(
    store: FileStore, tmp_path: Path
) -> None:
    """A tree ending in the largest file kept inline, all zeros, after a piece: its end
    zeros (that file, its padding, the end blocks, the record's padding) are within
    :data:`thintar.MAX_ZEROS`, so the cap refuses only what no tree has."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.bin").write_bytes(BIG)
    (tmp_path / "t" / "z.bin").write_bytes(bytes(thintar.THRESHOLD - 1))
    fp = store.add_tree(tmp_path / "t")
    head = thintar.read_header(io.BytesIO(stored(store, fp)), "t")
    assert thintar.THRESHOLD < head.zeros <= thintar.MAX_ZEROS
    assert store.read_bytes(fp) == whole(tmp_path / "t") and verify(store).ok
