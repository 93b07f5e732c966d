"""``scalems-store`` in everyday use (issue 12): names, listings, corrupt reads, the store."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from scalems_store import FileStore
from scalems_store.core.fingerprint import MMAP_THRESHOLD
from tests.conftest import REPO, RunCli, entry_point
from tests.scalems_store.cli.test_console import ALPHA, run_both
from tests.scalems_store.cli.test_console import base as base  # the fixture run_both's tests use
from tests.scalems_store.cli.test_store_cli import one_line_error


def add(run_cli: RunCli, *args: str) -> str:
    proc = run_cli("scalems-store", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().split()[-1]


def json_of(run_cli: RunCli, *args: str) -> Any:
    proc = run_cli("scalems-store", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def corrupt(root: Path, fp: str, data: bytes) -> None:
    """Overwrite object *fp* of the store at *root* with *data*."""
    path = root / "objects" / fp[:2] / fp[2:]
    path.chmod(0o644)
    path.write_bytes(data)


def test_ls_json_has_the_labels_and_refs_info_has(run_cli: RunCli, tmp_path: Path) -> None:
    """ls --json (and ls --label --json) give each object the labels, references and
    created time info --json gives, before and after reindex."""
    from scalems_call import pack, run
    from tests.scalems_call.cmdline import everyday_funcs

    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    blob = add(run_cli, "add", "a.txt", "--label", "first")
    run_cli("scalems-store", "label", "second", blob)
    with FileStore(tmp_path / ".scalems") as store:
        call = pack(everyday_funcs.scale, ([1.0],), store=store)
        result = run(call, store=store).fingerprint
        code = json.loads(store.read_bytes(call))["code"].values()
    code_blobs = sorted({uri[len("blake3:") :] for uri in code})
    for when in ("before", "after"):
        listed = {o["fingerprint"]: o for o in json_of(run_cli, "ls", "--json")}
        assert set(listed) >= {blob, call, result}
        for fp in listed:
            assert listed[fp] == json_of(run_cli, "info", fp, "--json"), (when, fp)
        assert listed[blob]["labels"] == ["first", "second"]
        assert call in listed[result]["refs"]
        assert listed[call]["refs"] == code_blobs  # the call's code: its modules' blobs
        by_label = json_of(run_cli, "ls", "--label", "second", "--json")
        assert by_label == [listed[blob]]
        run_cli("scalems-store", "reindex")


def test_info_created_is_when_first_stored(run_cli: RunCli, tmp_path: Path) -> None:
    """Adding the same content again moves the object's mtime but not info's created time,
    which ls --json shows too (also after reindex); without an index, the mtime is shown."""
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    fp = add(run_cli, "add", "a.txt")
    first = json_of(run_cli, "info", fp, "--json")["created"]
    time.sleep(0.05)
    add(run_cli, "--store", ".scalems", "add", "a.txt")  # touches the object for gc
    mtime = os.stat(tmp_path / ".scalems" / "objects" / fp[:2] / fp[2:]).st_mtime
    assert mtime > first
    for _ in range(2):
        assert json_of(run_cli, "info", fp, "--json")["created"] == first
        assert json_of(run_cli, "ls", "--json")[0]["created"] == first
        run_cli("scalems-store", "reindex")
    off = run_cli("scalems-store", "info", fp, "--json", env={"SCALEMS_STORE_INDEX": "off"})
    assert json.loads(off.stdout)["created"] == mtime


def test_get_of_a_corrupt_small_blob_writes_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    """A corrupt blob below the mmap threshold is checked before a byte reaches stdout."""
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    fp = add(run_cli, "add", "a.txt")
    corrupt(tmp_path / ".scalems", fp, b"alphA\n")
    with open(tmp_path / "out", "wb") as out:
        proc = subprocess.run(
            [*entry_point("scalems-store"), "get", fp],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.PIPE,
        )
    assert proc.returncode == 1 and proc.stderr.decode().startswith("CorruptObject:")
    assert (tmp_path / "out").read_bytes() == b""
    piped = run_cli("scalems-store", "get", fp)
    assert piped.returncode == 1 and piped.stdout == b""


@pytest.fixture
def corrupt_large(run_cli: RunCli, tmp_path: Path) -> str:
    """A blob above the mmap threshold whose last byte was changed in the store."""
    data = os.urandom(MMAP_THRESHOLD + 12345)
    (tmp_path / "big").write_bytes(data)
    fp = add(run_cli, "add", "big")
    corrupt(tmp_path / ".scalems", fp, data[:-1] + bytes([data[-1] ^ 1]))
    return fp


@pytest.mark.parametrize("mode", ["wb", "ab"])
def test_get_of_a_corrupt_large_blob_truncates_a_file_back(
    tmp_path: Path, corrupt_large: str, mode: str
) -> None:
    """A large corrupt blob streamed into a regular file (> or >>) leaves the file as it was."""
    (tmp_path / "out").write_bytes(b"kept before\n")
    with open(tmp_path / "out", mode) as out:
        proc = subprocess.run(
            [*entry_point("scalems-store"), "get", corrupt_large],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.PIPE,
        )
    assert proc.returncode == 1 and one_line_error(proc).startswith("CorruptObject:")
    assert "already written" not in proc.stderr.decode()
    assert (tmp_path / "out").read_bytes() == (b"" if mode == "wb" else b"kept before\n")


def test_get_of_a_corrupt_large_blob_to_a_pipe_says_the_bytes_are_bad(
    run_cli: RunCli, corrupt_large: str
) -> None:
    """On a pipe, which cannot be taken back, the one-line error says what was written is bad."""
    proc = run_cli("scalems-store", "get", corrupt_large)
    line = one_line_error(proc)
    assert proc.returncode == 1 and line.startswith("CorruptObject:")
    assert f"the {MMAP_THRESHOLD + 12345} bytes already written to the output" in line


def test_get_of_a_corrupt_large_blob_in_memory_is_taken_back(
    tmp_path: Path, corrupt_large: str
) -> None:
    """Through click's runner (an in-memory stdout), nothing of a corrupt blob remains."""
    from click.testing import CliRunner

    from scalems_store.cli.app import cli

    got = CliRunner().invoke(cli, ["--store", str(tmp_path / ".scalems"), "get", corrupt_large])
    assert got.exit_code == 1 and got.stdout_bytes == b""


def test_labels_are_accepted_wherever_a_fingerprint_is(run_cli: RunCli, tmp_path: Path) -> None:
    """get, info, ls --label, ls-tree, diff, export, label and Python resolve take a label;
    a label wins over a hex prefix it also spells."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f.txt").write_bytes(b"in a tree\n")
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    tree = add(run_cli, "add", "dir", "--label", "input")
    blob = add(run_cli, "add", "a.txt")
    assert run_cli("scalems-store", "get", "input:f.txt").stdout == b"in a tree\n"
    assert json_of(run_cli, "info", "input", "--json")["fingerprint"] == tree
    assert run_cli("scalems-store", "ls", "--label", "input").stdout.decode().split() == [tree]
    assert run_cli("scalems-store", "ls-tree", "input").returncode == 0
    assert run_cli("scalems-store", "diff", "input", tree).returncode == 0
    assert run_cli("scalems-store", "export", "input", "-o", "b.bundle").returncode == 0
    assert run_cli("scalems-store", "label", "again", "input").stdout.decode().strip() == tree
    # a label spelling the prefix of another object names the labelled one
    run_cli("scalems-store", "label", blob[:4], tree)
    assert json_of(run_cli, "info", blob[:4], "--json")["fingerprint"] == tree
    assert json_of(run_cli, "info", blob[:5], "--json")["fingerprint"] == blob
    with FileStore(tmp_path / ".scalems", create=False) as store:
        assert store.resolve("input") == tree and store.resolve(blob[:4]) == tree


def on_terminal(cwd: Path, *argv: str, stream: str = "stdout") -> tuple[int, str, bytes]:
    """Run an installed command with *stream* (stdout or stderr) on a pseudo-terminal;
    return its exit status, what it printed there, and the other stream."""
    import pty

    tool, *args = argv
    master, slave = pty.openpty()
    other = "stderr" if stream == "stdout" else "stdout"
    try:
        proc = subprocess.run(
            [*entry_point(tool), *args],
            cwd=cwd,
            timeout=60,
            **{stream: slave, other: subprocess.PIPE},  # type: ignore[call-overload]
        )
    finally:
        os.close(slave)
    out = b""
    try:
        while chunk := os.read(master, 1 << 16):
            out += chunk
    except OSError:  # EIO: the terminal's other side is closed and everything was read
        pass
    finally:
        os.close(master)
    return proc.returncode, out.decode().replace("\r\n", "\n"), getattr(proc, other)


def test_a_command_that_creates_the_store_says_so(run_cli: RunCli, tmp_path: Path) -> None:
    """add, init, label and scalems-call pack say 'created store PATH' on a terminal, once;
    a script's stderr (a pipe) gets no such line."""
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    status, said, out = on_terminal(tmp_path, "scalems-store", "add", "a.txt", stream="stderr")
    assert status == 0 and out.strip() == ALPHA.encode()
    assert said.startswith("created store .scalems\n")  # then the progress bar
    again = on_terminal(tmp_path, "scalems-store", "add", "a.txt", stream="stderr")
    assert again[0] == 0 and "created" not in again[1]
    labelled = on_terminal(tmp_path, "scalems-store", "--store", "other", "label", "x", ALPHA[:8],
                           stream="stderr")  # fmt: skip
    assert labelled[0] == 1 and labelled[1].startswith("created store other\nObjectNotFound:")
    init = on_terminal(tmp_path, "scalems-store", "init", "--store", str(tmp_path / "third"),
                       stream="stderr")  # fmt: skip
    assert init[1:] == ("created store third\n", str(tmp_path / "third").encode() + b"\n")
    scale = "tests.scalems_call.cmdline.everyday_funcs:scale"
    packed = on_terminal(tmp_path, "scalems-call", "pack", scale,
                         "--args-json", "[[1]]", "--store", "fourth", stream="stderr")  # fmt: skip
    assert packed[:2] == (0, "created store fourth\n")
    piped = run_cli("scalems-store", "--store", "fifth", "add", "a.txt")
    assert piped.returncode == 0 and piped.stderr == b"" and (tmp_path / "fifth").is_dir()


@pytest.mark.parametrize(
    "args",
    [
        ("get", ALPHA[:6], "--store", "store"),
        ("get", ALPHA, "--store=store", "-o", "out.txt"),
        ("add", "new.txt", "--store", "store"),
        ("verify", "--store", "store"),
        ("get", "nope", "--store", "store"),
    ],
    ids=lambda args: " ".join(args)[:30],
)
def test_store_after_the_command_quick_and_click_agree(base: Path, args: tuple[str, ...]) -> None:
    """--store after the command works, and the quick path gives click's output for it."""
    quick, slow = run_both(base, *args)
    assert quick == slow
    assert quick[0] == (1 if "nope" in args else 0), quick


def test_store_after_the_command(run_cli: RunCli, tmp_path: Path) -> None:
    """--store after the command picks that store; given twice, differently, it is exit 2."""
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    fp = add(run_cli, "add", "a.txt", "--store", "elsewhere")
    assert not (tmp_path / ".scalems").exists()
    assert run_cli("scalems-store", "get", fp, "--store", "elsewhere").stdout == b"alpha\n"
    listed = run_cli("scalems-store", "ls", "--json", "--store", "elsewhere")
    assert json.loads(listed.stdout)[0]["fingerprint"] == fp
    twice = run_cli("scalems-store", "--store", "elsewhere", "get", fp, "--store", "other")
    assert twice.returncode == 2 and "given twice" in one_line_error(twice)
    same = run_cli("scalems-store", "--store", "elsewhere", "info", fp, "--store", "elsewhere")
    assert same.returncode == 0


def test_sizes_are_human_in_text_and_exact_in_json(run_cli: RunCli, tmp_path: Path) -> None:
    """info and gc show binary units; info --json and gc --json keep bytes."""
    (tmp_path / "big").write_bytes(b"x" * 1_300_000)
    fp = add(run_cli, "add", "big")
    shown = run_cli("scalems-store", "info", fp).stdout.decode()
    assert "size         1.2 MiB (1300000 bytes)" in shown
    assert json_of(run_cli, "info", fp, "--json")["size"] == 1_300_000
    gc = run_cli("scalems-store", "gc", "--dry-run", "--grace", "0")
    assert "(1.2 MiB)" in gc.stderr.decode()
    assert json_of(run_cli, "gc", "--dry-run", "--grace", "0", "--json")["freed"] == 1_300_000


def complete(run_cli: RunCli, tool: str, words: str, shell: str = "bash") -> list[str]:
    """What the installed *tool* completes for the last word of *words* (click's protocol)."""
    split = words.split(" ")
    env = {
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(split) - 1) if shell != "fish" else split[-1],
        f"_{tool.upper().replace('-', '_')}_COMPLETE": f"{shell}_complete",
    }
    proc = run_cli(tool, env=env)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    return [line for line in proc.stdout.decode().splitlines() if line]


def test_shell_completion_offers_labels_and_fingerprints(run_cli: RunCli, tmp_path: Path) -> None:
    """FP arguments complete labels, and fingerprints from two hex digits on, in bash,
    zsh and fish; the scripts to source are printed for each shell."""
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    fp = add(run_cli, "add", "a.txt", "--label", "alpha-input")
    assert complete(run_cli, "scalems-store", "scalems-store get al") == ["plain,alpha-input"]
    assert complete(run_cli, "scalems-store", f"scalems-store info {fp[:3]}") == [f"plain,{fp}"]
    assert complete(run_cli, "scalems-store", "scalems-store diff alpha-input a") == [
        "plain,alpha-input"
    ]
    zsh = complete(run_cli, "scalems-store", f"scalems-store ls-tree {fp[:2]}", "zsh")
    assert zsh == ["plain", fp, "blob"]
    fish = complete(run_cli, "scalems-store", "scalems-store --store .scalems get alp", "fish")
    assert fish == ["plain,alpha-input\tlabel -> " + fp[:12]]
    for shell in ("bash", "zsh", "fish"):
        source = run_cli("scalems-store", env={"_SCALEMS_STORE_COMPLETE": f"{shell}_source"})
        assert source.returncode == 0 and b"_SCALEMS_STORE_COMPLETE" in source.stdout


def test_shell_completion_without_a_store_offers_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    """Completing where there is no store prints nothing, fails nothing, creates nothing."""
    assert complete(run_cli, "scalems-store", "scalems-store get ab") == []
    assert complete(run_cli, "scalems-call", "scalems-call exec ab") == []
    assert not (tmp_path / ".scalems").exists()


def test_speedup_check_of_the_user_guide_works_from_the_source_tree(tmp_path: Path) -> None:
    """The guide's one-liner reports the installed package from the repository root, and
    from a directory whose own scalems_store (without the C module) would shadow it."""
    import shlex
    import shutil
    import sys

    guide = (REPO / "docs" / "user-guide.md").read_text()
    line = next(line for line in guide.splitlines() if "archive._speedups" in line)
    argv = shlex.split(line)
    assert argv[0] == ".venv/bin/python"
    argv[0] = sys.executable
    shadow = tmp_path / "scalems_store"
    shutil.copytree(REPO / "scalems_store", shadow, ignore=shutil.ignore_patterns("*.so"))
    from scalems_store.tar import archive

    expected = "C speed-up" if archive._speedups is not None else "pure Python"
    for where in (REPO, tmp_path):
        proc = subprocess.run(argv, cwd=where, capture_output=True, text=True, check=True)
        assert proc.stdout.strip() == expected, where


def test_the_command_reference_lists_every_command() -> None:
    """docs/cli.md has a row for every command of scalems-store."""
    from scalems_store.cli.app import cli

    reference = (REPO / "docs" / "cli.md").read_text()
    for name in cli.commands:
        assert f"| `{name}" in reference, name
