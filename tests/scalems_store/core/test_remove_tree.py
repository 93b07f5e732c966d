"""remove_tree: any depth, never through a symlink, read-only directories, concurrent removal."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from scalems_store.core.errors import InvalidPath
from scalems_store.core.fsutil import remove_tree
from tests.tarcraft import deadline


def make_chain(root: Path, depth: int, name: str) -> None:
    """Create *depth* nested directories *name* under *root*, one open directory at a time
    (so the whole path may be longer than PATH_MAX), with a file at each level."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(depth):
            os.mkdir(name, dir_fd=fd)
            os.close(os.open(f"file{level}", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
            below = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = below
    finally:
        os.close(fd)


def test_removes_a_tree_2000_levels_deep(tmp_path: Path) -> None:
    """A tree 2,000 levels deep, its path far longer than PATH_MAX, is removed (no recursion)."""
    (tmp_path / "deep").mkdir()
    make_chain(tmp_path / "deep", 2000, "level-name")  # 22,000 bytes of path
    try:
        with deadline(60):
            remove_tree(tmp_path / "deep")
        assert os.listdir(tmp_path) == []
    finally:  # pytest's cleanup could not remove it
        subprocess.run(["rm", "-rf", str(tmp_path / "deep")], check=False)


def test_symlinks_are_unlinked_never_entered(tmp_path: Path) -> None:
    """A symlink inside the tree to a directory outside is removed; the outside survives,
    and so does the target of a symlink given as the path itself."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "keep").write_bytes(b"mine")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    os.symlink(outside, tree / "a" / "b" / "to-outside")
    os.symlink(outside / "sub", tree / "to-sub")
    os.symlink(outside, tmp_path / "link")
    remove_tree(tree)
    remove_tree(tmp_path / "link")
    assert sorted(os.listdir(tmp_path)) == ["outside"]
    assert (outside / "sub" / "keep").read_bytes() == b"mine"


def test_missing_path_and_single_file(tmp_path: Path) -> None:
    """A missing path (or one under a file) is no error; a file is unlinked."""
    remove_tree(tmp_path / "missing")
    remove_tree(tmp_path / "missing" / "below")
    (tmp_path / "file").write_bytes(b"x")
    remove_tree(tmp_path / "file" / "below")
    remove_tree(tmp_path / "file")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("path", ["/", ".", "..", "a/.."])
def test_refuses_root_and_dots(path: str) -> None:
    """The root directory, '.' and '..' are refused rather than removed."""
    with pytest.raises(InvalidPath):
        remove_tree(path)


def make_read_only(root: Path) -> None:
    """A tree with read-only, unreadable and search-only directories, and read-only files."""
    for mode, name in ((0o555, "ro"), (0o000, "none"), (0o111, "x-only"), (0o333, "wx")):
        sub = root / "d" / name
        (sub / "inner").mkdir(parents=True)
        (sub / "inner" / "f").write_bytes(b"x")
        (sub / "f").write_bytes(b"x")
        (sub / "f").chmod(0o444)
        (sub / "inner").chmod(mode)
        sub.chmod(mode)
    (root / "d").chmod(0o500)


REMOVE = "import sys\nfrom scalems_store.core.fsutil import remove_tree\nremove_tree(sys.argv[1])\n"
PROBE = (
    "import os, sys\ntry:\n    os.listdir(sys.argv[1])\nexcept PermissionError:\n    sys.exit(3)\n"
)


def test_read_only_directories_are_removed(tmp_path: Path) -> None:
    """Directories without write, read or search permission inside the tree are removed
    (as root, in a child without the capabilities that override permissions)."""
    make_read_only(tmp_path / "tree")
    try:
        if os.geteuid() != 0:
            remove_tree(tmp_path / "tree")
        else:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without setpriv: permissions would not apply")
            drop = [setpriv, "--bounding-set=-dac_override,-dac_read_search", sys.executable]
            probe = subprocess.run([*drop, "-c", PROBE, str(tmp_path / "tree" / "d" / "none")])
            if probe.returncode != 3:
                pytest.skip("cannot drop root's capabilities here: permissions would not apply")
            proc = subprocess.run(
                [*drop, "-c", REMOVE, str(tmp_path / "tree")], capture_output=True, text=True
            )
            assert proc.returncode == 0, proc.stderr
        assert os.listdir(tmp_path) == []
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", str(tmp_path)], check=False)


def test_concurrent_removals_of_one_tree_all_succeed(tmp_path: Path) -> None:
    """Four threads removing the same tree at once all finish without error: what another
    removed meanwhile is skipped, and a walk that loses its way starts again."""
    tree = tmp_path / "tree"
    for i in range(30):
        (tree / f"d{i}").mkdir(parents=True)
        make_chain(tree / f"d{i}", 20, "sub")
    errors: list[BaseException] = []

    def remove() -> None:
        try:
            remove_tree(tree)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=remove) for _ in range(4)]
    with deadline(60):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert not tree.exists()
