"""Odd files in a store (a FIFO, a directory) never block a command: each is reported by
verify and taken as missing or damaged by everything else (issue 22, case 4).

Every command runs in a subprocess with a timeout, so a regression fails instead of
hanging the suite.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalems_call import pack, run
from scalems_store import FileStore
from scalems_store.core import fsutil
from tests.conftest import RunCli
from tests.scalems_call import funcs
from tests.scalems_store.cli.test_store_cli import one_line_error

HANG = 30
"""Seconds after which a command counts as hung (each takes well under one)."""


@pytest.fixture
def ran(tmp_path: Path) -> tuple[Path, str, str]:
    """A store under tmp_path/.scalems with one call run: ``(root, call, result)``."""
    root = tmp_path / ".scalems"
    with FileStore(root) as store:
        call = pack(funcs.add, (1, 2), store=store)
        run(call, store=store)
        result = store.get_ref("calls", call)[0]
    return root, call, result


def fifo(path: Path) -> None:
    """Put a FIFO at *path* in place of whatever is there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    os.mkfifo(path)


def cli(run_cli: RunCli, name: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run_cli(name, *args, timeout=HANG)


def test_read_regular_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    """The one helper every store file is read with: a FIFO or a directory is NotRegularFile,
    a symlink is refused unless followed, a regular file is read."""
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(fsutil.NotRegularFile, match="a FIFO"):
        fsutil.read_regular(str(tmp_path / "fifo"))
    with pytest.raises(fsutil.NotRegularFile, match="a directory"):
        fsutil.read_regular(str(tmp_path))
    (tmp_path / "file").write_bytes(b"data")
    (tmp_path / "link").symlink_to("file")
    with pytest.raises(OSError):
        fsutil.read_regular(str(tmp_path / "link"))
    assert fsutil.read_regular(str(tmp_path / "link"), follow=True) == b"data"
    assert fsutil.read_regular(str(tmp_path / "file"), 2) == b"da"
    assert fsutil.is_odd(str(tmp_path / "fifo")) and not fsutil.is_odd(str(tmp_path / "file"))
    assert not fsutil.is_odd(str(tmp_path / "missing"))


def test_fifo_at_a_call_ref(run_cli: RunCli, ran: tuple[Path, str, str]) -> None:
    """A FIFO at refs/calls/ab/...: result and status take the call as not run, verify
    reports it, and exec runs the call again and records its result in the FIFO's place."""
    root, call, _ = ran
    ref = root / "refs" / "calls" / call[:2] / call[2:]
    fifo(ref)
    assert "no recorded result" in one_line_error(cli(run_cli, "scalems-call", "result", call))
    status = cli(run_cli, "scalems-call", "status", call)
    assert "missing" in status.stdout.decode()
    verified = cli(run_cli, "scalems-store", "verify")
    assert verified.returncode == 1 and str(ref) in verified.stdout.decode()
    ran_again = cli(run_cli, "scalems-call", "exec", call)
    assert ran_again.returncode == 0, ran_again.stderr
    assert ref.is_file() and ref.read_text().split()[0] == ran_again.stdout.decode().strip()


def test_fifo_at_a_meta_file(run_cli: RunCli, ran: tuple[Path, str, str]) -> None:
    """A FIFO at meta/ab/...: gc, info, export and exec --force go on (the kind is read from
    the bytes); verify reports it and mends it."""
    root, call, result = ran
    meta = root / "meta" / result[:2] / result[2:]
    fifo(meta)
    collected = cli(run_cli, "scalems-store", "gc", "--grace", "0")
    assert collected.returncode == 0, collected.stderr
    info = cli(run_cli, "scalems-store", "info", result)
    assert "kind         result" in info.stdout.decode()
    exported = cli(run_cli, "scalems-store", "export", result, "-o", str(root.parent / "b.tar"))
    assert exported.returncode == 0, exported.stderr
    forced = cli(run_cli, "scalems-call", "exec", "--force", call)
    assert forced.returncode == 0, forced.stderr
    fifo(meta)
    verified = cli(run_cli, "scalems-store", "verify")
    assert verified.returncode == 1 and "meta file is damaged" in verified.stdout.decode()
    assert meta.is_file() and json.loads(meta.read_bytes())["kind"] == "result"


@pytest.mark.parametrize("command", [["ls"], ["add", "x"], ["reindex"]])
def test_fifo_at_the_index(run_cli: RunCli, ran: tuple[Path, str, str], command: list[str]) -> None:
    """A FIFO at index.sqlite: ls, add and reindex make the index afresh."""
    root, call, _ = ran
    (root.parent / "x").write_bytes(b"x\n")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root / 'index.sqlite'}{suffix}").unlink(missing_ok=True)
    fifo(root / "index.sqlite")
    done = cli(run_cli, "scalems-store", *command)
    assert done.returncode == 0, done.stderr
    assert (root / "index.sqlite").is_file()
    assert call in cli(run_cli, "scalems-store", "ls").stdout.decode()


def test_verify_reports_odd_store_files(run_cli: RunCli, ran: tuple[Path, str, str]) -> None:
    """verify names a FIFO at index.sqlite, at the settings file and at a lease."""
    root, call, _ = ran
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root / 'index.sqlite'}{suffix}").unlink(missing_ok=True)
    fifo(root / "index.sqlite")
    fifo(root / "config")
    fifo(root / "tmp" / "leases" / call)
    verified = cli(run_cli, "scalems-store", "verify")
    out = verified.stdout.decode()
    assert verified.returncode == 1
    for path in (root / "index.sqlite", root / "config", root / "tmp" / "leases" / call):
        assert f"{path}  not a regular file" in out


def test_fifo_at_store_json(run_cli: RunCli, ran: tuple[Path, str, str]) -> None:
    """A FIFO at store.json: ls says in one line that it is not a regular file."""
    root, _, _ = ran
    fifo(root / "store.json")
    line = one_line_error(cli(run_cli, "scalems-store", "ls"))
    assert line.startswith("UnsupportedFormat:") and "not a regular file (a FIFO)" in line


def test_fifo_at_a_lease(run_cli: RunCli, ran: tuple[Path, str, str]) -> None:
    """A FIFO at tmp/leases/<call>: no holder made it, so exec --force takes it over at once."""
    root, call, _ = ran
    fifo(root / "tmp" / "leases" / call)
    forced = cli(run_cli, "scalems-call", "exec", "--force", call)
    assert forced.returncode == 0, forced.stderr
    assert not os.path.lexists(root / "tmp" / "leases" / call)


def test_fifo_at_a_label(run_cli: RunCli, ran: tuple[Path, str, str]) -> None:
    """A FIFO at refs/labels/NAME: the label is damaged, said in one line; verify reports it."""
    root = ran[0]
    fifo(root / "refs" / "labels" / "lab")
    line = one_line_error(cli(run_cli, "scalems-store", "info", "lab"))
    assert "lab" in line
    verified = cli(run_cli, "scalems-store", "verify")
    assert "refs/labels/lab" in verified.stdout.decode()


def test_misshapen_index_is_rebuilt_at_once(run_cli: RunCli, ran: tuple[Path, str, str]) -> None:
    """An index whose objects table has other columns is made afresh by the next command
    (it stalled every command 60 s) and reindex repairs it (it failed: no such column)."""
    root, call, _ = ran
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root / 'index.sqlite'}{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(root / "index.sqlite")
    db.executescript(
        "CREATE TABLE objects (fingerprint TEXT PRIMARY KEY, other TEXT);"
        "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT);"
        "INSERT INTO state VALUES ('complete', '1'); PRAGMA user_version = 1;"
    )
    db.close()
    listed = cli(run_cli, "scalems-store", "ls", "--kind", "call")
    assert listed.returncode == 0 and call in listed.stdout.decode(), listed.stderr
    db = sqlite3.connect(root / "index.sqlite")
    columns = [row[1] for row in db.execute("PRAGMA table_info(objects)")]
    db.close()
    assert columns == ["fingerprint", "kind", "size", "created"]
    db = sqlite3.connect(root / "index.sqlite")
    db.executescript("CREATE VIEW odd AS SELECT 1;")
    db.close()
    reindexed = cli(run_cli, "scalems-store", "reindex")
    count = len(cli(run_cli, "scalems-store", "ls").stdout.split())
    assert reindexed.returncode == 0 and f"indexed {count} objects" in reindexed.stderr.decode()


def _no_room() -> None:
    """In the child: every file write fails at once, as on a full disk (EFBIG, not SIGXFSZ)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))


def test_full_disk_fails_fast(ran: tuple[Path, str, str], tmp_path: Path) -> None:
    """With no room to write the index, ls answers from the files and reindex fails in one
    line, without waiting (the index's retry loop took 60 s for each)."""
    from tests.conftest import entry_point

    root, call, _ = ran
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root / 'index.sqlite'}{suffix}").unlink(missing_ok=True)

    def full(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*entry_point("scalems-store"), "--store", str(root), *args],
            capture_output=True,
            preexec_fn=_no_room,
            timeout=HANG,
        )

    listed = full("ls")
    assert listed.returncode == 0 and call in listed.stdout.decode()
    line = one_line_error(full("reindex"))
    assert line.startswith("StoreNotWritable: cannot use index")


@settings(max_examples=300)
@given(
    st.lists(st.text(alphabet="0123456789abcdefABx \n", min_size=60, max_size=66), max_size=5).map(
        lambda lines: "\n".join(lines).encode()
    )
    | st.binary(max_size=200)
)
def test_the_quick_check_of_a_ref_file_says_yes_only_to_fingerprints(data: bytes) -> None:
    """A ref file is read without a test a line only where every line is a fingerprint and
    ends in a newline, as refs are written; anything else takes the careful way."""
    from scalems_store.core.layout import is_fingerprint
    from scalems_store.store.refs import _canonical

    if _canonical(data):
        assert data.endswith(b"\n") or not data
        assert all(is_fingerprint(line) for line in data.decode().split("\n")[:-1])
    fp = "0123456789abcdef" * 4
    assert _canonical(f"{fp}\n{fp}\n".encode())
