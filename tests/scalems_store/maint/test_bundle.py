"""Bundles: moving a call's closure between stores."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from scalems_call import pack, run
from scalems_call.execution import cache as call_cache
from scalems_store import ArchiveError, FileStore, FingerprintMismatch, verify
from scalems_store.maint.bundle import export, import_bundle
from tests.conftest import MakeStore, RunCli
from tests.scalems_call import funcs


def run_call_with_skeleton(store: FileStore, tmp_path: Path) -> str:
    skeleton = tmp_path / "skel"
    skeleton.mkdir()
    (skeleton / "input.txt").write_text("bundle me\n")
    fp = pack(funcs.use_skeleton, store=store, skeleton=skeleton)
    assert run(fp, store=store).status == "success"
    return fp


def test_round_trip_between_stores(make_store: MakeStore, tmp_path: Path) -> None:
    """A call's closure (record, skeleton, result, its objects) moves; the result is then a hit."""
    source, target = make_store("a"), make_store("b")
    fp = run_call_with_skeleton(source, tmp_path)
    buffer = io.BytesIO()
    count = export(source, [fp], buffer)
    result_fp = call_cache.results(source, fp)[0]
    expected = {fp, result_fp, *source.references(result_fp), *source.references(fp)}
    assert count == len(expected)
    imported = import_bundle(target, io.BytesIO(buffer.getvalue()))
    assert set(imported) == expected
    assert call_cache.hit(target, fp) is not None
    assert run(fp, store=target).cached
    assert verify(target).ok
    assert (
        set(import_bundle(target, io.BytesIO(buffer.getvalue()))) == expected
    )  # twice is harmless
    assert call_cache.results(target, fp) == [result_fp]


def test_corrupt_bundle_names_the_object_and_publishes_nothing_bad(
    make_store: MakeStore, tmp_path: Path
) -> None:
    """A flipped byte in an object is refused, naming it; nothing unverified is published."""
    source, target = make_store("a"), make_store("b")
    blob = source.add_bytes(b"precious payload " * 100)
    buffer = io.BytesIO()
    export(source, [blob], buffer)
    data = bytearray(buffer.getvalue())
    at = data.find(b"precious payload")
    data[at] ^= 0x01
    with pytest.raises(FingerprintMismatch, match=blob):
        import_bundle(target, io.BytesIO(bytes(data)))
    assert blob not in target and list(target.iter_fingerprints()) == []


def test_truncated_bundle_refused(make_store: MakeStore, tmp_path: Path) -> None:
    """A truncated bundle is refused and nothing of it is published."""
    source, target = make_store("a"), make_store("b")
    fp = run_call_with_skeleton(source, tmp_path)
    buffer = io.BytesIO()
    export(source, [fp], buffer)
    data = buffer.getvalue()
    # cut into content (the last cut lands in the last object), not into the zero padding
    for cut in (len(data) // 3, len(data) // 2, len(data.rstrip(b"\0")) - 1):
        with pytest.raises(ArchiveError):
            import_bundle(target, io.BytesIO(data[:cut]))
        report = verify(target)
        assert report.ok, report.problems
        assert call_cache.results(target, fp) == []
        assert list(target.iter_fingerprints()) == []
        assert os.listdir(target.tmp) == []


@pytest.mark.parametrize("extra", [b"\0" * 20000 + b"garbage", b"\0" * 511 + b"x"])
def test_garbage_after_the_end_is_refused(
    make_store: MakeStore, tmp_path: Path, extra: bytes
) -> None:
    """Anything but zeros after the end-of-archive blocks (and the record's padding) is
    refused, however far it comes (issue 22, case 6: it was accepted); zeros are fine."""
    source, target = make_store("a"), make_store("b")
    fp = run_call_with_skeleton(source, tmp_path)
    buffer = io.BytesIO()
    export(source, [fp], buffer)
    data = buffer.getvalue()
    with pytest.raises(ArchiveError, match="data after the end-of-archive marker"):
        import_bundle(target, io.BytesIO(data + extra))
    assert list(target.iter_fingerprints()) == []
    assert import_bundle(target, io.BytesIO(data + b"\0" * 30000))


def test_not_a_bundle(store: FileStore) -> None:
    """A tar without a manifest, or with unexpected members, is refused."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("evil/../../x")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ArchiveError, match="not a scalems bundle"):
        import_bundle(store, io.BytesIO(buffer.getvalue()))
    with pytest.raises(ArchiveError):
        import_bundle(store, io.BytesIO(b"garbage" * 100))


def test_cli_export_import(run_cli: RunCli, tmp_path: Path) -> None:
    """scalems-store export/import move a call; importing into a fresh store makes exec a hit."""
    with FileStore(tmp_path / ".scalems") as store:
        fp = run_call_with_skeleton(store, tmp_path)
    assert run_cli("scalems-store", "export", fp[:8], "-o", "call.bundle").returncode == 0
    exported = (tmp_path / "call.bundle").read_bytes()
    again = run_cli("scalems-store", "export", fp, "-o", "call.bundle")
    assert again.returncode == 1 and b"already exists" in again.stderr
    assert (tmp_path / "call.bundle").read_bytes() == exported, "an existing file is never touched"
    other = str(tmp_path / "other")
    done = run_cli("scalems-store", "--store", other, "import", "-v", "call.bundle")
    assert done.returncode == 0 and fp in done.stdout.decode().split()
    hit = run_cli("scalems-call", "--store", other, "exec", fp, "--json")
    assert b'"cached": true' in hit.stdout
