"""The quick start of ``scalems-store``: lines run without click give click's output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalems_store import FileStore, hash_bytes
from scalems_store.cli.console import run_quick
from tests.conftest import RunCli

# run a command line through one path only, and say whether click was imported
QUICK = (
    "import sys\n"
    "from scalems_store.cli.console import run_quick\n"
    "status = run_quick(sys.argv[1:])\n"
    "assert status is not None, 'not a quick line'\n"
    "print('click' in sys.modules, file=sys.stderr)\n"
    "sys.exit(status)\n"
)
CLICK = (
    "import sys\n"
    "from scalems_store.cli.app import cli\nfrom scalems_store.cli.shared import run_main\n"
    "try:\n"
    "    run_main(cli, 'scalems-store')\n"
    "finally:\n"
    "    print('click' in sys.modules, file=sys.stderr)\n"
)


def run_both(cwd: Path, *args: str) -> tuple[tuple[int, bytes, bytes], tuple[int, bytes, bytes]]:
    """Run *args* quick and through click (on copies of the same store); return both outcomes."""
    outcomes = []
    for name, program in (("quick", QUICK), ("click", CLICK)):
        work = cwd / name
        subprocess.run(["cp", "-a", str(cwd / "base"), str(work)], check=True)
        done = subprocess.run(
            [sys.executable, "-c", program, *args],
            cwd=work,
            capture_output=True,
            env={**os.environ, "SCALEMS_STORE": str(work / "store")},
            timeout=60,
        )
        *lines, used_click = done.stderr.decode().rstrip("\n").split("\n")
        assert used_click == str(name == "click"), done.stderr
        stderr = "\n".join(lines).replace(str(work), "WORK").encode()
        outcomes.append((done.returncode, done.stdout.replace(str(work).encode(), b"WORK"), stderr))
        subprocess.run(["rm", "-rf", str(work)], check=True)
    return outcomes[0], outcomes[1]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """tmp_path/base: a store with a blob and a tree, and the files they came from."""
    root = tmp_path / "base"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "sub" / "f.txt").write_bytes(b"in a tree\n")
    (root / "a.txt").write_bytes(b"alpha\n")
    (root / "new.txt").write_bytes(b"not yet stored\n")
    with FileStore(root / "store") as store:
        store.add_file(root / "a.txt")
        store.add_tree(root / "dir")
    return tmp_path


ALPHA = hash_bytes(b"alpha\n")


@pytest.mark.parametrize(
    "args",
    [
        ("add", "new.txt", "dir", "a.txt"),
        ("get", ALPHA[:6]),
        ("get", ALPHA, "-o", "out.txt"),
        ("get", "blake3:" + ALPHA, "--output", "out.txt"),
        ("get", ALPHA, "-o", "a.txt"),  # destination in the way
        ("get", "ffff"),  # no such object
        ("get", "xyz!"),  # not a fingerprint
        ("verify",),
        ("verify", ALPHA, "0000"),
    ],
    ids=lambda args: " ".join(args)[:30],
)
def test_quick_lines_match_click(base: Path, args: tuple[str, ...]) -> None:
    """Output, errors and exit status are the ones click gives for the same line."""
    quick, slow = run_both(base, *args)
    assert quick == slow
    assert b"Traceback" not in quick[2]


def test_quick_get_tree_and_corrupt_object(base: Path) -> None:
    """A tree extracts the same way; a corrupt object is refused the same way by both."""
    with FileStore(base / "base" / "store", create=False) as store:
        tree = next(info.fingerprint for info in store.list("tree"))
    quick, slow = run_both(base, "get", tree, "-o", "out")
    assert quick == slow == (0, b"", b"")
    victim = base / "base" / "store" / "objects" / ALPHA[:2] / ALPHA[2:]
    victim.chmod(0o644)
    victim.write_bytes(b"alphA\n")
    for args in (("verify",), ("get", ALPHA, "-o", "x")):
        quick, slow = run_both(base, *args)
        assert quick == slow and quick[0] == 1 and ALPHA.encode() in quick[2] + quick[1]


def test_quick_missing_store_is_one_line(base: Path) -> None:
    """get on a store that does not exist: the same one-line error, and no store is created."""
    (base / "base" / "store").rename(base / "base" / "elsewhere")
    quick, slow = run_both(base, "get", ALPHA)
    assert quick == slow and quick[0] == 1
    assert quick[2].startswith(b"StoreNotFound: ")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["add"],
        ["add", "-"],
        ["add", "missing.txt"],  # click's usage error names it
        ["add", "a.txt", "dangling"],  # a symlink to nothing: the same
        ["add", "a.txt", "a.txt", "/dev/null"],  # a device
        ["add", "a.txt", "--label", "x"],
        ["get", "-o", "dest", ALPHA],
        ["get", ALPHA, "-o"],
        ["get", ALPHA, "extra"],
        ["verify", "--sample", "0.5"],
        ["ls"],
        ["--store", "-x", "get", ALPHA],
        ["--version"],
    ],
)
def test_other_lines_go_to_click(
    base: Path, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anything but the plain shapes is left to click (help, options, '-', usage errors)."""
    monkeypatch.chdir(base / "base")
    (base / "base" / "dangling").symlink_to("nowhere")
    assert run_quick(args) is None


def test_entry_point_dispatch(run_cli: RunCli, tmp_path: Path) -> None:
    """The installed script runs quick lines and click lines alike."""
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    run = run_cli
    added = run("scalems-store", "add", "a.txt")
    assert (added.returncode, added.stdout.decode().strip()) == (0, ALPHA)
    assert run("scalems-store", "get", ALPHA[:8]).stdout == b"alpha\n"
    helped = run("scalems-store", "get", "--help")
    assert helped.returncode == 0 and b"Usage: scalems-store get" in helped.stdout
    missing = run("scalems-store", "add", "nope.txt")
    assert missing.returncode == 2 and b"Usage error" in missing.stderr
