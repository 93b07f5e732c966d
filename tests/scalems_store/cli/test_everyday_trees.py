"""``FP:path``, ``ls-tree`` and ``diff`` through the installed ``scalems-store`` (issue 12)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from scalems_store import FileStore
from tests.conftest import RunCli
from tests.scalems_store.cli.test_console import base as base  # the fixture run_both's tests use
from tests.scalems_store.cli.test_console import run_both
from tests.scalems_store.cli.test_everyday_store import add, corrupt
from tests.scalems_store.cli.test_store_cli import one_line_error


@pytest.fixture
def tree(run_cli: RunCli, tmp_path: Path) -> str:
    """A tree with a text file, an executable, a 1.5 KiB file and symlinks, in ./.scalems."""
    root = tmp_path / "md"
    (root / "traj").mkdir(parents=True)
    (root / "traj" / "frame0.xtc").write_bytes(b"frame zero\n")
    (root / "traj" / "big.dat").write_bytes(b"x" * 1536)
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "latest").symlink_to("traj")
    (root / "traj" / "up").symlink_to("../run.sh")
    (root / "inputs").mkdir()
    (root / "inputs" / "a.txt").write_text("a\n")
    (root / "inputs" / "b").symlink_to("a.txt")
    return add(run_cli, "add", "md")


def test_get_one_file_of_a_tree(run_cli: RunCli, tmp_path: Path, tree: str) -> None:
    """get TREE:path writes one file (through the tree's own symlinks) to stdout or -o,
    keeping its executable bit, or extracts one directory; a symlink that would point out
    of that directory is refused."""
    assert run_cli("scalems-store", "get", f"{tree[:8]}:traj/frame0.xtc").stdout == b"frame zero\n"
    assert run_cli("scalems-store", "get", f"blake3:{tree}:latest/frame0.xtc").stdout == (
        b"frame zero\n"
    )
    assert run_cli("scalems-store", "get", f"{tree}:run.sh", "-o", "run-copy").returncode == 0
    assert os.stat(tmp_path / "run-copy").st_mode & 0o777 == 0o755
    assert run_cli("scalems-store", "get", f"{tree}:inputs/", "-o", "in-copy").returncode == 0
    assert sorted(os.listdir(tmp_path / "in-copy")) == ["a.txt", "b"]
    assert os.readlink(tmp_path / "in-copy" / "b") == "a.txt"
    escaping = run_cli("scalems-store", "get", f"{tree}:latest", "-o", "traj-copy")
    assert escaping.returncode == 1 and "'../run.sh' points outside" in one_line_error(escaping)
    assert not (tmp_path / "traj-copy").exists()


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("TREE:traj/frame9.xtc", "InvalidPath: no 'traj/frame9.xtc' in tree "),
        ("TREE:traj/frame0.xtc/x", "InvalidPath: no 'traj/frame0.xtc/x' in tree "),
        ("TREE:traj", "InvalidPath: 'traj' is a directory of tree "),
        ("TREE:../etc", "InvalidPath: path '../etc' in a tree must not contain '..'"),
        ("BLOB:x", "InvalidPath: 'BLOB' is a blob, not a tree"),
    ],
)
def test_a_path_that_is_not_a_file_is_one_line(
    run_cli: RunCli, tmp_path: Path, tree: str, spec: str, error: str
) -> None:
    """A missing path, a directory without -o, '..' and a blob's path are one line, exit 1."""
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    blob = add(run_cli, "add", "a.txt", "--label", "BLOB")
    proc = run_cli("scalems-store", "get", spec.replace("TREE", tree[:10]))
    assert proc.returncode == 1 and proc.stdout == b""
    assert one_line_error(proc).startswith(error), proc.stderr
    assert blob


def test_a_corrupt_tree_is_refused_before_its_path_is_read(
    run_cli: RunCli, tmp_path: Path, tree: str
) -> None:
    """The tree is checked against its fingerprint before one of its files is written."""
    path = tmp_path / ".scalems" / "objects" / tree[:2] / tree[2:]
    data = path.read_bytes().replace(b"frame zero", b"frame 0ero")
    corrupt(tmp_path / ".scalems", tree, data)
    for args in (["get", f"{tree}:traj/frame0.xtc"], ["get", f"{tree}:traj", "-o", "out"]):
        proc = run_cli("scalems-store", *args)
        assert proc.returncode == 1 and proc.stdout == b""
        assert one_line_error(proc).startswith("CorruptObject:")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("get", "TREE:sub/f.txt"),
        ("get", "TREE:sub", "-o", "out"),
        ("get", "TREE:nope"),
        ("get", "TREE:sub/f.txt", "--store", "store"),
    ],
    ids=lambda args: " ".join(args),
)
def test_tree_paths_quick_and_click_agree(base: Path, args: tuple[str, ...]) -> None:
    """get TREE:path gives the same output, errors and status quick and through click."""
    with FileStore(base / "base" / "store", create=False) as store:
        tree = next(info.fingerprint for info in store.list("tree"))
    quick, slow = run_both(base, *(arg.replace("TREE", tree[:8]) for arg in args))
    assert quick == slow and quick[0] == (1 if "nope" in args[1] else 0), quick


def test_ls_tree(run_cli: RunCli, tree: str) -> None:
    """ls-tree lists mode, size (human units) and path; --json has exact bytes; TREE:dir
    lists one directory."""
    lines = run_cli("scalems-store", "ls-tree", tree[:6]).stdout.decode().splitlines()
    assert lines == [
        "drwxr-xr-x          -  inputs/",
        "-rw-r--r--        2 B  inputs/a.txt",
        "lrwxrwxrwx          -  inputs/b -> a.txt",
        "lrwxrwxrwx          -  latest -> traj",
        "-rwxr-xr-x       10 B  run.sh",
        "drwxr-xr-x          -  traj/",
        "-rw-r--r--    1.5 KiB  traj/big.dat",
        "-rw-r--r--       11 B  traj/frame0.xtc",
        "lrwxrwxrwx          -  traj/up -> ../run.sh",
    ]
    listed = json.loads(run_cli("scalems-store", "ls-tree", f"{tree}:latest", "--json").stdout)
    assert listed == [
        {"path": "big.dat", "type": "file", "mode": "0644", "size": 1536},
        {"path": "frame0.xtc", "type": "file", "mode": "0644", "size": 11},
        {"path": "up", "type": "symlink", "mode": "0777", "size": 0, "target": "../run.sh"},
    ]
    refused = run_cli("scalems-store", "ls-tree", f"{tree}:run.sh")
    assert refused.returncode == 1 and "is a file, not a directory" in one_line_error(refused)


def test_diff_of_two_trees(run_cli: RunCli, tmp_path: Path, tree: str) -> None:
    """diff names files added, removed and changed with sizes, a mode change, a patch with
    -p; exit 0 when the same, 1 when different, 2 when they cannot be compared."""
    root = tmp_path / "md"
    (root / "traj" / "frame0.xtc").write_bytes(b"frame zero\nand more\n")
    (root / "run.sh").unlink()
    (root / "traj" / "big.dat").chmod(0o755)
    (root / "notes.txt").write_text("new\n")
    other = add(run_cli, "add", "md")
    same = run_cli("scalems-store", "diff", tree, tree[:8])
    assert (same.returncode, same.stdout) == (0, b"")
    proc = run_cli("scalems-store", "diff", tree, other)
    assert proc.returncode == 1
    assert proc.stdout.decode().splitlines() == [
        "added    notes.txt  (4 B)",
        "removed  run.sh  (10 B)",
        "changed  traj/big.dat  (1.5 KiB -> 1.5 KiB, mode 0644 -> 0755)",
        "changed  traj/frame0.xtc  (11 B -> 20 B)",
    ]
    patched = run_cli("scalems-store", "diff", "-p", tree, other).stdout.decode().splitlines()
    assert patched[-5:] == [
        "    --- a/traj/frame0.xtc",
        "    +++ b/traj/frame0.xtc",
        "    @@ -1 +1,2 @@",
        "     frame zero",
        "    +and more",
    ]
    report = json.loads(run_cli("scalems-store", "diff", tree, other, "--json").stdout)
    assert report["kind"] == "tree" and report["same"] is False
    assert report["changes"][3]["old_size"] == 11 and report["changes"][3]["new_size"] == 20
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    blob = add(run_cli, "add", "a.txt")
    mixed = run_cli("scalems-store", "diff", tree, blob)
    assert mixed.returncode == 2 and one_line_error(mixed).startswith("InvalidContent: cannot")
    missing = run_cli("scalems-store", "diff", tree, "nolabel")
    assert missing.returncode == 2 and one_line_error(missing).startswith("ObjectNotFound:")
