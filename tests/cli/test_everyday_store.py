"""``scalems-store`` in everyday use (issue 12): names, listings, corrupt reads, the store."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scalems_store.fingerprint import MMAP_THRESHOLD
from tests.cli.test_console import base as base  # the fixture run_both's tests use
from tests.cli.test_store_cli import one_line_error
from tests.conftest import RunCli, entry_point


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

    from scalems_store.cli import cli

    got = CliRunner().invoke(cli, ["--store", str(tmp_path / ".scalems"), "get", corrupt_large])
    assert got.exit_code == 1 and got.stdout_bytes == b""


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
