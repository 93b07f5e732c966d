"""Mistakes a new user made (a walk-through of README and docs/): each is one line on
stderr and a non-zero exit, never a traceback, and the store stays as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalems_store import FileStore
from tests.conftest import RunCli


@pytest.fixture
def packed(run_cli: RunCli, tmp_path: Path) -> str:
    """A store in tmp_path/.scalems holding one call (not run)."""
    (tmp_path / "mod_mistakes.py").write_text("def twice(x):\n    return 2 * x\n")
    done = run_cli(
        "scalems-call", "pack", "mod_mistakes:twice", "--args-json", "[21]", "--skeleton", "."
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().split()[-1]


def one_line(done: object, start: str) -> str:
    stderr = done.stderr.decode()  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), stderr
    return lines[0]


def test_export_into_a_missing_directory(run_cli: RunCli, packed: str, tmp_path: Path) -> None:
    done = run_cli("scalems-store", "export", packed, "-o", "no/such/dir/x.bundle")
    assert done.returncode == 1
    line = one_line(done, "FileNotFoundError: 'no/such/dir/x.bundle': ")
    assert line.endswith("No such file or directory")


@pytest.mark.parametrize("target", [".", "missing/graph.txt"], ids=["a directory", "no parent"])
def test_graph_to_a_path_it_cannot_write(run_cli: RunCli, packed: str, target: str) -> None:
    done = run_cli("scalems-call", "graph", packed, "-o", target)
    assert done.returncode == 1
    one_line(done, "IsADirectoryError: '.'" if target == "." else "FileNotFoundError: ")


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan"])
def test_a_lease_ttl_that_is_not_seconds(
    run_cli: RunCli, packed: str, tmp_path: Path, value: str
) -> None:
    """The call is not run, and the error names the variable."""
    done = run_cli("scalems-call", "exec", packed, env={"SCALEMS_CALL_LEASE_TTL": value})
    assert done.returncode == 1
    one_line(
        done, f"call {packed[:12]} error: BadSetting: SCALEMS_CALL_LEASE_TTL={value!r}: give the"
    )
    with FileStore(tmp_path / ".scalems") as store:
        assert store.list("result") == []


@pytest.mark.parametrize("address", ["localhost", "not an address"])
def test_dask_address_that_is_not_one(run_cli: RunCli, packed: str, address: str) -> None:
    pytest.importorskip("distributed")
    done = run_cli("scalems-call", "exec", packed, "--dask", address, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr.decode()
    assert f"cannot reach the Dask scheduler at {address!r}" in done.stderr.decode()


@pytest.mark.parametrize("replacement", ["directory", "fifo"])
def test_an_object_replaced_by_a_directory_or_fifo(
    run_cli: RunCli, packed: str, tmp_path: Path, replacement: str
) -> None:
    """A call record replaced by a directory or a FIFO: verify reports it, gc deletes
    nothing, ls --json and why answer; no traceback, no wait for a writer that never comes."""
    import os

    path = tmp_path / ".scalems" / "objects" / packed[:2] / packed[2:]
    path.chmod(0o644)
    path.unlink()
    if replacement == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    label = tmp_path / ".scalems" / "refs" / "labels" / "mine"
    label.parent.mkdir(parents=True, exist_ok=True)
    label.write_text(packed + "\n")
    for command in (
        ("scalems-store", "verify"),
        ("scalems-store", "gc", "--grace", "0"),
        ("scalems-store", "ls", "--json"),
        ("scalems-call", "why", packed),
        ("scalems-call", "exec", "mine"),
    ):
        done = run_cli(*command, timeout=30)
        assert "Traceback" not in done.stderr.decode(), (command, done.stderr)
        if command[1] == "verify":
            assert done.returncode == 1 and packed.encode() in done.stdout
    assert path.exists()  # gc left it for the user to look at


@pytest.mark.parametrize("kind", ["blob", "tree"])
def test_get_into_a_missing_directory(run_cli: RunCli, tmp_path: Path, kind: str) -> None:
    """get -o into a directory that does not exist: one line naming it, nothing made
    (a tree used to make every missing directory; a blob said the store was not writable)."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    added = run_cli("scalems-store", "add", "d" if kind == "tree" else "d/f")
    fp = added.stdout.decode().strip()
    done = run_cli("scalems-store", "get", fp, "-o", "missing/deeper/out")
    assert done.returncode == 1
    one_line(done, "InvalidPath: cannot write 'missing/deeper/out': no directory ")
    assert not (tmp_path / "missing").exists()


def test_a_label_cannot_be_a_full_fingerprint(run_cli: RunCli, tmp_path: Path) -> None:
    """A label named as a full fingerprint could never be told from one: refused."""
    (tmp_path / "f").write_text("x")
    fp = run_cli("scalems-store", "add", "f").stdout.decode().strip()
    done = run_cli("scalems-store", "label", "a" * 64, fp)
    assert done.returncode == 1
    one_line(done, "InvalidLabel: invalid label ")


@pytest.mark.parametrize(("bundle", "said"), [("/dev/null", "not a file"), (".", "not a file")])
def test_import_of_what_is_not_a_file(run_cli: RunCli, bundle: str, said: str) -> None:
    done = run_cli("scalems-store", "import", bundle)
    assert done.returncode == 2
    assert f"Invalid value for BUNDLE: {said}: {bundle!r}" in done.stderr.decode()
