"""``scalems-store`` through the installed entry point and click's runner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from scalems_store import FileStore, hash_bytes
from scalems_store.cli.app import cli
from scalems_store.cli.shared import parse_duration
from tests.conftest import RunCli


def store_listing(root: Path) -> list[str]:
    """Every file in a store but the index (which is a cache), for before/after comparisons."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("index.sqlite")
    )


def one_line_error(proc: object) -> str:
    err = proc.stderr.decode()  # type: ignore[attr-defined]
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_add_get_ls_round_trip(run_cli: RunCli, tmp_path: Path) -> None:
    """add prints fingerprints; ls lists them; get writes blobs and extracts trees."""
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f").write_bytes(b"in tree")
    added = run_cli("scalems-store", "add", "a.txt", "dir")
    assert added.returncode == 0, added.stderr
    blob, tree = added.stdout.decode().split()
    assert blob == hash_bytes(b"alpha\n")
    listed = run_cli("scalems-store", "ls").stdout.decode().split()
    assert listed == sorted([blob, tree])
    assert run_cli("scalems-store", "ls", "--kind", "tree").stdout.decode().split() == [tree]
    assert run_cli("scalems-store", "get", blob[:6]).stdout == b"alpha\n"
    assert run_cli("scalems-store", "get", "blake3:" + blob, "-o", "copy.txt").returncode == 0
    assert (tmp_path / "copy.txt").read_bytes() == b"alpha\n"
    assert run_cli("scalems-store", "get", tree, "-o", "out").returncode == 0
    assert (tmp_path / "out" / "f").read_bytes() == b"in tree"
    info = json.loads(run_cli("scalems-store", "info", tree, "--json").stdout)
    assert info["kind"] == "tree" and info["fingerprint"] == tree
    again = run_cli("scalems-store", "add", "a.txt")
    assert again.returncode == 0 and again.stdout.decode().strip() == blob


def test_stdin_label_expect(run_cli: RunCli) -> None:
    """'-' reads stdin; --label names it; --expect refuses other content and stores nothing."""
    fp = hash_bytes(b"from stdin")
    done = run_cli("scalems-store", "add", "-", "--label", "piped", input=b"from stdin")
    assert done.stdout.decode().strip() == fp
    assert run_cli("scalems-store", "ls", "--label", "piped").stdout.decode().strip() == fp
    assert run_cli("scalems-store", "label", "piped").stdout.decode().strip() == fp
    refused = run_cli("scalems-store", "add", "-", "--expect", fp, input=b"something else")
    assert refused.returncode == 1
    assert one_line_error(refused).startswith("FingerprintMismatch:")
    assert run_cli("scalems-store", "ls").stdout.decode().split() == [fp]


def test_store_selection(run_cli: RunCli, tmp_path: Path) -> None:
    """--store beats $SCALEMS_STORE, which beats ./.scalems."""
    (tmp_path / "f").write_bytes(b"x")
    run_cli("scalems-store", "add", "f")
    run_cli("scalems-store", "add", "f", env={"SCALEMS_STORE": str(tmp_path / "env-store")})
    run_cli(
        "scalems-store",
        "--store",
        str(tmp_path / "flag-store"),
        "add",
        "f",
        env={"SCALEMS_STORE": str(tmp_path / "env-store")},
    )
    for name in (".scalems", "env-store", "flag-store"):
        assert (tmp_path / name / "store.json").is_file()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["get", "0000"], "ObjectNotFound"),
        (["get", "zz"], "ObjectNotFound"),
        (["info", "abc"], "InvalidFingerprint"),
        (["label", "bad/name", "PREFIX"], "InvalidLabel"),
        (["get", "PREFIX", "-o", "existing"], "InvalidPath"),
        (["label", "--remove", "nolabel"], "ObjectNotFound"),
    ],
)
def test_user_mistakes_are_one_line(
    run_cli: RunCli, tmp_path: Path, args: list[str], error: str
) -> None:
    """Each user mistake is one line on stderr, exit 1, and the store is unchanged."""
    (tmp_path / "existing").write_bytes(b"mine")
    fp = run_cli("scalems-store", "add", "existing").stdout.decode().strip()
    before = store_listing(tmp_path / ".scalems")
    proc = run_cli("scalems-store", *[fp[:8] if a == "PREFIX" else a for a in args])
    assert proc.returncode == 1
    assert one_line_error(proc).startswith(error + ":")
    assert store_listing(tmp_path / ".scalems") == before
    assert (tmp_path / "existing").read_bytes() == b"mine"


def test_ambiguous_prefix_lists_candidates(run_cli: RunCli, tmp_path: Path) -> None:
    """An ambiguous prefix is refused, naming the candidates."""
    from tests.scalems_store.store.test_store import colliding_inputs

    a, b = colliding_inputs()
    for data in (a, b):
        run_cli("scalems-store", "add", "-", input=data)
    proc = run_cli("scalems-store", "get", hash_bytes(a)[:4])
    line = one_line_error(proc)
    assert proc.returncode == 1 and line.startswith("AmbiguousPrefix:")
    assert hash_bytes(a) in line and hash_bytes(b) in line


def test_usage_errors_exit_2(run_cli: RunCli) -> None:
    """Missing paths and bad options are usage errors (exit 2), without tracebacks."""
    for args in (
        ["add", "missing-file"],
        ["ls", "--kind", "nope"],
        ["gc", "--grace", "soon"],
        ["frobnicate"],
    ):
        proc = run_cli("scalems-store", *args)
        assert proc.returncode == 2, args
        assert b"Traceback" not in proc.stderr


def test_read_commands_do_not_create_a_store(run_cli: RunCli, tmp_path: Path) -> None:
    """ls on a directory with no store says so and creates nothing."""
    proc = run_cli("scalems-store", "ls")
    assert proc.returncode == 1 and one_line_error(proc).startswith("StoreNotFound:")
    assert not (tmp_path / ".scalems").exists()


def test_verify_reports_corruption(run_cli: RunCli, tmp_path: Path) -> None:
    """verify exits 0 on a clean store and 1 naming a corrupted object."""
    (tmp_path / "f").write_bytes(b"precious data")
    fp = run_cli("scalems-store", "add", "f").stdout.decode().strip()
    assert run_cli("scalems-store", "verify").returncode == 0
    path = tmp_path / ".scalems" / "objects" / fp[:2] / fp[2:]
    os.chmod(path, 0o644)
    path.write_bytes(b"precious dat4")
    proc = run_cli("scalems-store", "verify")
    assert proc.returncode == 1 and fp in proc.stdout.decode() and "corrupt" in proc.stdout.decode()
    report = json.loads(run_cli("scalems-store", "verify", "--json").stdout)
    assert report["problems"][0]["fingerprint"] == fp
    get = run_cli("scalems-store", "get", fp, "-o", "restored")
    assert get.returncode == 1 and one_line_error(get).startswith("CorruptObject:")
    assert not (tmp_path / "restored").exists()


def test_gc_and_reindex(run_cli: RunCli, tmp_path: Path) -> None:
    """gc --grace 0 removes unlabelled objects only; reindex restores a deleted index."""
    (tmp_path / "keep").write_bytes(b"keep")
    (tmp_path / "drop").write_bytes(b"drop")
    keep = run_cli("scalems-store", "add", "keep", "--label", "k").stdout.decode().strip()
    drop = run_cli("scalems-store", "add", "drop").stdout.decode().strip()
    dry = run_cli("scalems-store", "gc", "--dry-run", "--grace", "0")
    assert dry.stdout.decode().split() == [drop]
    assert run_cli("scalems-store", "ls").stdout.decode().split() == sorted([keep, drop])
    run_cli("scalems-store", "gc", "--grace", "0")
    assert run_cli("scalems-store", "ls").stdout.decode().split() == [keep]
    (tmp_path / ".scalems" / "index.sqlite").unlink()
    assert run_cli("scalems-store", "ls").stdout.decode().split() == [keep]
    assert run_cli("scalems-store", "reindex").returncode == 0


def test_help_explains() -> None:
    """Every command has help text."""
    runner = CliRunner()
    for name, command in cli.commands.items():
        result = runner.invoke(cli, [name, "--help"])
        summary = (command.help or "").splitlines()[0]
        assert result.exit_code == 0 and summary
        assert summary in " ".join(result.output.split())


def test_parse_duration() -> None:
    """Durations accept plain seconds and s/m/h/d/w suffixes."""
    assert [parse_duration(t) for t in ("90", "30s", "10m", "2h", "7d", "1w")] == [
        90,
        30,
        600,
        7200,
        604800,
        604800,
    ]


def test_library_and_cli_agree(tmp_path: Path) -> None:
    """A store written by the CLI reads the same through the library."""
    runner = CliRunner()
    (tmp_path / "f").write_bytes(b"same")
    result = runner.invoke(cli, ["--store", str(tmp_path / "s"), "add", str(tmp_path / "f")])
    assert result.exit_code == 0
    with FileStore(tmp_path / "s") as store:
        assert store.read_bytes(result.output.strip()) == b"same"
