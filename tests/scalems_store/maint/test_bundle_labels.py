"""Issue 24, item 7: labels travel in bundles; import says what it did in one line."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from scalems_store import ArchiveError, FileStore
from scalems_store.maint.bundle import export, import_objects
from tests.conftest import MakeStore, RunCli
from tests.scalems_store.maint.test_bundle import run_call_with_skeleton


def test_labels_travel_with_export_labels(run_cli: RunCli, tmp_path: Path) -> None:
    """export --labels carries the labels naming bundled objects; import recreates them and
    prints one summary line (no fingerprints unless -v)."""
    with FileStore(tmp_path / ".scalems") as store:
        call = run_call_with_skeleton(store, tmp_path)
        store.set_label("my-step", call)
        store.set_label("unrelated", store.add_bytes(b"not in the bundle"))
    assert (
        run_cli("scalems-store", "export", "my-step", "--labels", "-o", "b.bundle").returncode == 0
    )
    done = run_cli("scalems-store", "--store", "other", "import", "b.bundle")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imported ") and "new), 1 labels" in lines[0]
    with FileStore(tmp_path / "other") as other:
        assert other.labels() == {"my-step": call}
    again = run_cli("scalems-store", "--store", "other", "import", "-v", "b.bundle")
    assert call in again.stdout.decode().split()
    assert "(0 new)" in again.stderr.decode()


def test_no_labels_and_labels_not_exported_by_default(
    make_store: MakeStore, tmp_path: Path
) -> None:
    """Without --labels a bundle has none; import --no-labels (labels=False) sets none."""
    source = make_store("a")
    call = run_call_with_skeleton(source, tmp_path)
    source.set_label("my-step", call)
    plain, labelled = io.BytesIO(), io.BytesIO()
    export(source, [call], plain)
    export(source, [call], labelled, labels=True)
    target = make_store("b")
    assert import_objects(target, io.BytesIO(plain.getvalue())).labels == {}
    assert target.labels() == {}
    assert import_objects(target, io.BytesIO(labelled.getvalue()), labels=False).labels == {}
    assert target.labels() == {}
    assert import_objects(target, io.BytesIO(labelled.getvalue())).labels == {"my-step": call}
    assert target.labels() == {"my-step": call}


def test_a_label_here_for_another_object_is_kept(run_cli: RunCli, tmp_path: Path) -> None:
    """A label the store has for another object is kept, and the import says so."""
    with FileStore(tmp_path / ".scalems") as store:
        call = run_call_with_skeleton(store, tmp_path)
        store.set_label("my-step", call)
    assert run_cli("scalems-store", "export", call, "--labels", "-o", "b.bundle").returncode == 0
    with FileStore(tmp_path / "other") as other:
        mine = other.add_bytes(b"mine", label="my-step")
    done = run_cli("scalems-store", "--store", "other", "import", "b.bundle")
    assert done.returncode == 0 and "label 'my-step' kept" in done.stderr.decode()
    with FileStore(tmp_path / "other") as other:
        assert other.labels() == {"my-step": mine}


def _rewritten(bundle: bytes, change: dict[str, object]) -> bytes:
    """The bundle with its manifest's keys replaced by *change*."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(bundle)) as source,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "bundle.json":
                data = json.dumps({**json.loads(data), **change}).encode()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize(
    "labels", [["x"], {"../x": "0" * 64}, {"x": "0" * 64}, {"x": "not hex"}], ids=str
)
def test_bad_labels_refuse_the_bundle(
    make_store: MakeStore, tmp_path: Path, labels: object
) -> None:
    """A manifest whose labels are malformed, or name what the bundle lacks, is refused whole."""
    source = make_store("a")
    call = run_call_with_skeleton(source, tmp_path)
    buffer = io.BytesIO()
    export(source, [call], buffer)
    target = make_store("b")
    with pytest.raises(ArchiveError, match="bad manifest"):
        import_objects(target, io.BytesIO(_rewritten(buffer.getvalue(), {"labels": labels})))
    assert list(target.iter_fingerprints()) == [] and target.labels() == {}
