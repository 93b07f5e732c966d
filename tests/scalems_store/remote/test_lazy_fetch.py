"""``scalems-store get`` fetches what it lacks from the default remote, lazily: only what
reading the name needs, one line on stderr saying so; one line of error without a remote."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from scalems_store import FileStore
from scalems_store.cli.app import cli
from scalems_store.objects import content
from tests.conftest import MakeStore, RunCli
from tests.scalems_store.remote.conftest import ran_call


def client_of(make_store: MakeStore, run_cli: RunCli, remote: FileStore) -> FileStore:
    """An empty store whose default remote is *remote*."""
    client = make_store("client")
    added = run_cli("scalems-store", "--store", client.root, "remote", "add", "r", remote.root)
    assert added.returncode == 0, added.stderr
    return client


def test_get_call_path_fetches_the_newest_result_and_its_outputs_only(
    make_store: MakeStore, run_cli: RunCli, tmp_path: Path
) -> None:
    """get CALL:PATH in a store that has nothing brings the call's newest result on the remote
    with its stdout, stderr and output tree (not the call, its code or skeleton), writes the
    file, and says so in one line; asked again, it reads here without a word."""
    remote = make_store("remote")
    call, result = ran_call(remote, tmp_path)
    client = client_of(make_store, run_cli, remote)
    got = run_cli("scalems-store", "--store", client.root, "get", f"{call}:input.txt")
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"input\n"
    outputs = set(content.references("result", remote.read_bytes(result))) - {call}
    lines = got.stderr.decode().splitlines()
    assert len(lines) == 1 and "remote r" in lines[0]
    assert lines[0].startswith(f"fetched {len(outputs) + 1} objects (")
    assert result in client and all(fp in client for fp in outputs)
    assert call not in client and client.get_ref("calls", call) == []
    assert client.signatures(result) == remote.signatures(result)
    again = run_cli("scalems-store", "--store", client.root, "get", f"{result}:input.txt")
    assert again.returncode == 0 and again.stdout == b"input\n" and again.stderr == b""


def test_get_blob_and_tree_through_click(
    make_store: MakeStore, run_cli: RunCli, tmp_path: Path
) -> None:
    """The click command (get -o on a terminal's path) fetches a tree as the quick path does."""
    remote = make_store("remote")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_text("f\n")
    tree = remote.add_tree(tmp_path / "d")
    client = client_of(make_store, run_cli, remote)
    done = CliRunner().invoke(
        cli, ["--store", client.root, "get", tree[:12], "-o", str(tmp_path / "out")]
    )
    assert done.exit_code == 0, done.output
    assert (tmp_path / "out" / "f.txt").read_text() == "f\n"
    assert "fetched 1 object (" in done.output and tree in client


def test_get_without_a_remote_or_on_a_remote_without_it_is_one_line(
    make_store: MakeStore, run_cli: RunCli, tmp_path: Path
) -> None:
    """No default remote, or a remote that lacks the object: exit 1, one line naming why,
    and nothing written."""
    alone = make_store("alone")
    fp = "ab" * 32
    got = run_cli("scalems-store", "--store", alone.root, "get", fp, "-o", str(tmp_path / "x"))
    assert got.returncode == 1 and not (tmp_path / "x").exists()
    (line,) = got.stderr.decode().splitlines()
    assert line.startswith("ObjectNotFound: ") and "no default remote" in line
    client = client_of(make_store, run_cli, make_store("remote"))
    got = run_cli("scalems-store", "--store", client.root, "get", fp)
    assert got.returncode == 1
    (line,) = got.stderr.decode().splitlines()
    assert line.startswith("ObjectNotFound: ") and "nor does remote 'r'" in line
