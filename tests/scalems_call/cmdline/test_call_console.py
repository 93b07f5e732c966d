"""The quick start of ``scalems-call``: a cache-hit exec runs without click, with click's output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalems_call import pack, run
from scalems_call.cmdline.console import run_quick
from scalems_store import FileStore
from tests.conftest import RunCli
from tests.scalems_call import funcs

# run a command line through one path only, and say whether click was imported
QUICK = (
    "import sys\n"
    "from scalems_call.cmdline.console import run_quick\n"
    "status = run_quick(sys.argv[1:])\n"
    "assert status is not None, 'not a quick line'\n"
    "print('click' in sys.modules, 'dill' in sys.modules, file=sys.stderr)\n"
    "print('cryptography' in sys.modules, file=sys.stderr)\n"
    "sys.exit(status)\n"
)
CLICK = (
    "import sys\n"
    "from scalems_call.cmdline.commands import main\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    print('click' in sys.modules, file=sys.stderr)\n"
)


def run_program(program: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", program, *args],
        cwd=cwd,
        capture_output=True,
        env={**os.environ, "SCALEMS_STORE": str(cwd / "store")},
        timeout=120,
    )


@pytest.fixture
def calls(tmp_path: Path) -> dict[str, str]:
    """A store with calls that were run (one succeeded, one failed) and one never run."""
    with FileStore(tmp_path / "store") as store:
        done = pack(funcs.add, (2, 3), store=store)
        other = pack(funcs.add, (4, 5), store=store)
        failed = pack(funcs.fail_and_count, (str(tmp_path / "ledger"),), store=store)
        fresh = pack(funcs.add, (6, 7), store=store)
        blob = store.add_bytes(b"not a call")
        results = {
            name: run(fp, store=store).fingerprint
            for name, fp in (("done", done), ("other", other))
        }
        run(failed, store=store)
    assert all(results.values())
    return {
        "done": done,
        "other": other,
        "failed": failed,
        "fresh": fresh,
        "blob": blob,
        **{f"{name} result": fp for name, fp in results.items() if fp},
    }


@pytest.mark.parametrize(
    "args",
    [
        ["exec", "done"],
        ["exec", "done", "other", "done"],  # one line per name, in order
        ["--store", "STORE", "exec", "other"],
        ["exec", "other", "--store", "STORE"],  # --store after the command is quick too
    ],
)
def test_cache_hits_match_click(tmp_path: Path, calls: dict[str, str], args: list[str]) -> None:
    """Served without click, dill or cryptography (the user's own signature was checked
    when it was made), and the output is the one click gives."""
    line = [calls[a][:10] if a in calls else a for a in args]
    line = [str(tmp_path / "store") if a == "STORE" else a for a in line]
    quick = run_program(QUICK, tmp_path, *line)
    slow = run_program(CLICK, tmp_path, *line)
    assert quick.stderr.decode().split() == ["False", "False", "False"], quick.stderr
    assert slow.stderr.decode().split() == ["True"], slow.stderr
    assert (quick.returncode, quick.stdout) == (slow.returncode, slow.stdout) == (0, quick.stdout)
    expected = [calls[f"{a} result"] for a in args if a in calls]
    assert quick.stdout.decode().split() == expected


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["exec"],
        ["exec", "--help"],
        ["exec", "done", "--force"],
        ["exec", "--json", "done"],
        ["exec", "fresh"],  # must run: click's path runs it
        ["exec", "done", "fresh"],  # one hit is not enough
        ["exec", "failed"],  # a failed result is run again
        ["exec", "blob"],  # not a call: click reports it
        ["exec", "ffff"],  # unknown
        ["exec", "xyz!"],  # not a fingerprint
        ["result", "done"],
        ["--store", "-x", "exec", "done"],
        ["--store", "nowhere", "exec", "done"],  # no store there
    ],
)
def test_other_lines_go_to_click(
    tmp_path: Path,
    calls: dict[str, str],
    args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Anything but an all-hit exec is left to click, before anything is printed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCALEMS_STORE", str(tmp_path / "store"))
    assert run_quick([calls[a][:10] if a in calls else a for a in args]) is None
    assert capsys.readouterr() == ("", "")
    assert not (tmp_path / "nowhere").exists()


def test_entry_point_serves_hits_and_runs_the_rest(run_cli: RunCli, tmp_path: Path) -> None:
    """The installed script: a miss runs the call (through click), the repeat is a hit."""
    with FileStore(tmp_path / ".scalems") as store:
        fp = pack(funcs.add, (20, 22), store=store)
    first = run_cli("scalems-call", "exec", fp[:8])
    assert first.returncode == 0, first.stderr
    again = run_cli("scalems-call", "exec", fp[:8])
    assert (again.returncode, again.stdout) == (0, first.stdout)
    with FileStore(tmp_path / ".scalems") as store:
        assert len(store.get_ref("calls", fp)) == 1  # served, not run again
    unknown = run_cli("scalems-call", "exec", "ffffffff")
    assert unknown.returncode == 1 and unknown.stderr.startswith(b"ObjectNotFound: ")
