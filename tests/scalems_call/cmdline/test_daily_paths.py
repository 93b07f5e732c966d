"""Issue 24, item 3: one output file by name, ``CALL:path`` and ``RESULT:path`` wherever
``TREE:path`` works (get, ls-tree, diff, why, ``result CALL PATH``), and in Python."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalems_call import pack, run
from scalems_call.identity.upstream import output
from scalems_store import FileStore, hash_bytes
from scalems_store.core.errors import InvalidPath, ObjectNotFound
from tests.conftest import RunCli
from tests.scalems_call.cmdline import everyday_funcs
from tests.scalems_store.cli.test_store_cli import one_line_error

TRAJ7 = "".join(f"{step},{7 * step}\n" for step in range(5)).encode()


@pytest.fixture
def pipeline(tmp_path: Path) -> dict[str, str]:
    """simulate(seed=7) and simulate(seed=8) run, and analyse(traj.csv of the first)."""
    with FileStore(tmp_path / ".scalems") as store:
        sim7 = pack(everyday_funcs.simulate, (), {"seed": 7}, store=store)
        sim8 = pack(everyday_funcs.simulate, (), {"seed": 8}, store=store)
        ana = pack(everyday_funcs.analyse, (output(sim7, "traj.csv"),), store=store)
        found = {"sim7": sim7, "sim8": sim8, "ana": ana}
        for name in ("sim7", "sim8", "ana"):
            done = run(found[name], store=store)
            assert done.status == "success", done.exception
            assert done.fingerprint is not None
            found[f"{name}_result"] = done.fingerprint
            directory = json.loads(store.read_bytes(done.fingerprint))["directory"]
            found[f"{name}_directory"] = directory.removeprefix("blake3:")
    return found


def test_get_takes_call_and_result_paths(run_cli: RunCli, pipeline: dict[str, str]) -> None:
    """get CALL:traj.csv and get RESULT:traj.csv write the file (they were refused)."""
    for name in (pipeline["sim7"], pipeline["sim7_result"], pipeline["sim7"][:10]):
        got = run_cli("scalems-store", "get", f"{name}:traj.csv")
        assert got.returncode == 0, got.stderr
        assert got.stdout == TRAJ7
    whole = run_cli("scalems-store", "get", f"{pipeline['sim7']}:")
    assert whole.returncode == 0 and whole.stdout.startswith(b"result/")  # the tree's archive


def test_get_call_path_extracts_a_directory(
    run_cli: RunCli, tmp_path: Path, pipeline: dict[str, str]
) -> None:
    """get CALL:dir -o DEST extracts that directory of the call's newest output."""
    got = run_cli("scalems-store", "get", f"{pipeline['sim8']}:result", "-o", "energies")
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "energies" / "energy.txt").read_text() == "80\n"


def test_ls_tree_and_quick_get_take_a_call(run_cli: RunCli, pipeline: dict[str, str]) -> None:
    """ls-tree CALL lists its output directory; ls-tree CALL:result lists one directory."""
    listed = run_cli("scalems-store", "ls-tree", pipeline["sim7"], "--json")
    assert listed.returncode == 0, listed.stderr
    paths = {entry["path"] for entry in json.loads(listed.stdout)}
    assert {"traj.csv", "result", "result/energy.txt"} <= paths
    one = run_cli("scalems-store", "ls-tree", f"{pipeline['sim7_result']}:result", "--json")
    assert [entry["path"] for entry in json.loads(one.stdout)] == ["energy.txt"]


def test_result_command_prints_one_file(
    run_cli: RunCli, tmp_path: Path, pipeline: dict[str, str]
) -> None:
    """scalems-call result CALL traj.csv prints the file; -o writes it."""
    shown = run_cli("scalems-call", "result", pipeline["sim7"], "traj.csv")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == TRAJ7
    wrote = run_cli("scalems-call", "result", pipeline["sim7"], "traj.csv", "-o", "t.csv")
    assert wrote.returncode == 0, wrote.stderr
    assert (tmp_path / "t.csv").read_bytes() == TRAJ7
    missing = run_cli("scalems-call", "result", pipeline["sim7"], "nope.csv")
    assert missing.returncode == 1 and "nope.csv" in one_line_error(missing)


def test_diff_of_call_paths(run_cli: RunCli, pipeline: dict[str, str]) -> None:
    """diff CALL_A:traj.csv CALL_B:traj.csv compares the two files; directories compare too."""
    same = run_cli(
        "scalems-store",
        "diff",
        f"{pipeline['sim7']}:traj.csv",
        f"{pipeline['sim7_result']}:traj.csv",
    )
    assert same.returncode == 0 and same.stdout == b""
    differs = run_cli(
        "scalems-store",
        "diff",
        "-p",
        f"{pipeline['sim7']}:traj.csv",
        f"{pipeline['sim8']}:traj.csv",
    )
    assert differs.returncode == 1, differs.stderr
    text = differs.stdout.decode()
    assert "changed  traj.csv" in text and "-1,7" in text and "+1,8" in text
    dirs = run_cli(
        "scalems-store",
        "diff",
        "--json",
        f"{pipeline['sim7']}:result",
        f"{pipeline['sim8']}:result",
    )
    report = json.loads(dirs.stdout)
    assert report["kind"] == "directory"
    assert [c["path"] for c in report["changes"]] == ["energy.txt"]
    mixed = run_cli(
        "scalems-store", "diff", f"{pipeline['sim7']}:result", f"{pipeline['sim8']}:traj.csv"
    )
    assert mixed.returncode == 2 and "directory" in one_line_error(mixed)


def test_why_of_a_call_path(run_cli: RunCli, pipeline: dict[str, str]) -> None:
    """why CALL:traj.csv names the call that made it, as which file, and who consumed it."""
    shown = run_cli("scalems-call", "why", f"{pipeline['sim7']}:traj.csv")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert f"file        {hash_bytes(TRAJ7)}  (traj.csv, in 1 tree)" in text
    assert (
        f"made by     call {pipeline['sim7'][:12]}" in text
        and "simulate(seed=7) as traj.csv" in text
    )
    assert f"taken by    call {pipeline['ana'][:12]}" in text and "consumed" in text
    assert pipeline["sim8"][:12] not in text


def test_filestore_open_and_read_bytes_take_paths(tmp_path: Path, pipeline: dict[str, str]) -> None:
    """FileStore.open and read_bytes take TREE:path, RESULT:path and CALL:path."""
    with FileStore(tmp_path / ".scalems") as store:
        for name in (pipeline["sim7"], pipeline["sim7_result"], pipeline["sim7_directory"]):
            assert store.read_bytes(f"{name}:traj.csv") == TRAJ7
            with store.open(f"{name}:traj.csv") as stream:
                assert stream.read(3) == TRAJ7[:3]
                stream.seek(-4, 2)
                assert stream.read() == TRAJ7[-4:]
        with pytest.raises(InvalidPath, match="directory"):
            store.open(f"{pipeline['sim7']}:result")
        with pytest.raises(InvalidPath, match="no 'nope'"):
            store.read_bytes(f"{pipeline['sim7']}:nope")
        blob = store.add_bytes(b"plain")
        with pytest.raises(InvalidPath, match="no paths"):
            store.read_bytes(f"{blob}:x")
        unrun = pack(everyday_funcs.simulate, (), {"seed": 9}, store=store)
        with pytest.raises(ObjectNotFound, match="no recorded result"):
            store.read_bytes(f"{unrun}:traj.csv")
        assert store.read_bytes(f"blake3:{blob}") == b"plain"  # a URI alone is not FP:path


def test_call_result_gives_fingerprints(tmp_path: Path, pipeline: dict[str, str]) -> None:
    """CallResult has the fingerprints as attributes: the file:// URI's last segment is not."""
    with FileStore(tmp_path / ".scalems") as store:
        done = run(pipeline["sim7"], store=store)
        record = json.loads(store.read_bytes(pipeline["sim7_result"]))
    assert done.directory is not None and done.directory.startswith("file://")
    assert done.directory_fingerprint == record["directory"].removeprefix("blake3:")
    assert done.stdout_fingerprint == record["stdout"].removeprefix("blake3:")
    assert done.stderr_fingerprint == record["stderr"].removeprefix("blake3:")
    assert done.directory.rsplit("/", 1)[1] != done.directory_fingerprint


def test_get_file_reference_takes_a_call_path(tmp_path: Path, pipeline: dict[str, str]) -> None:
    """get_file_reference("CALL:traj.csv") is a reference to that file's bytes."""
    import asyncio

    from scalems_store import get_file_reference

    with FileStore(tmp_path / ".scalems") as store:
        ref = asyncio.run(get_file_reference(f"{pipeline['sim7']}:traj.csv", store))
        assert ref.key() == hash_bytes(TRAJ7)
        with open(ref, "rb") as stream:
            assert stream.read() == TRAJ7
        assert asyncio.run(ref.aread()) == TRAJ7
        same = store.file_reference(f"{pipeline['sim7_result']}:traj.csv")
        assert same.key() == ref.key()
        assert asyncio.run(store.get_file_reference(f"{pipeline['sim7']}:traj.csv")) == ref


def test_why_of_the_fingerprint_of_an_output_file(
    run_cli: RunCli, tmp_path: Path, pipeline: dict[str, str]
) -> None:
    """why <b3sum of an output file> names the call that made it, as which file, and the call
    that consumed it (it said 'no object': files inside trees are not objects)."""
    fp = hash_bytes(TRAJ7)
    for name in (fp, fp[:10], f"blake3:{fp}"):
        shown = run_cli("scalems-call", "why", name)
        assert shown.returncode == 0, shown.stderr
        text = shown.stdout.decode()
        assert f"file        {fp}  (traj.csv, in 1 tree)" in text
        made = [line for line in text.splitlines() if line.startswith("made by")]
        assert len(made) == 1 and pipeline["sim7"][:12] in made[0]
        assert "simulate(seed=7) as traj.csv" in made[0]
        taken = [line for line in text.splitlines() if line.startswith("taken by")]
        assert any(pipeline["ana"][:12] in line and "consumed" in line for line in taken)
    energy = run_cli("scalems-call", "why", "--json", hash_bytes(b"80\n"))
    report = json.loads(energy.stdout)
    assert report["places"] == [{"tree": pipeline["sim8_directory"], "path": "result/energy.txt"}]
    assert [link["call"] for link in report["made_by"]] == [pipeline["sim8"]]
    assert report["made_by"][0]["path"] == "result/energy.txt"
    assert report["taken_by"] == []
    nothing = run_cli("scalems-call", "why", hash_bytes(b"in no tree"))
    assert nothing.returncode == 1 and "nor is it the content of a file" in one_line_error(nothing)
    no_label = run_cli("scalems-call", "why", "no-such-label")
    assert no_label.returncode == 1 and "no-such-label" in one_line_error(no_label)


def test_files_index_is_a_rebuildable_cache(
    run_cli: RunCli, tmp_path: Path, pipeline: dict[str, str]
) -> None:
    """The files-in-trees index follows new trees, survives deleting index.sqlite, and
    reindex lists every tree again."""
    from scalems_store.query import treefiles

    fp = hash_bytes(TRAJ7)
    with FileStore(tmp_path / ".scalems") as store:
        content, where = treefiles.places(store, fp)
        assert content == fp
        assert where == [(pipeline["sim7_directory"], "traj.csv")]
        (tmp_path / "more").mkdir()
        (tmp_path / "more" / "copy.csv").write_bytes(TRAJ7)
        tree = store.add_tree(tmp_path / "more")
        assert (tree, "copy.csv") in treefiles.places(store, fp)[1]  # caught up when asked
    (tmp_path / ".scalems" / "index.sqlite").unlink()
    assert run_cli("scalems-store", "reindex").returncode == 0
    with FileStore(tmp_path / ".scalems") as store:
        assert store.index.listed_trees() == {row[0] for row in store.index.tuples("tree")}
        assert len(treefiles.places(store, fp)[1]) == 2


def test_diff_of_two_calls_names_each_argument(run_cli: RunCli, pipeline: dict[str, str]) -> None:
    """diff CALL_A CALL_B names each argument that differs (it said 'args differs');
    scalems-call diff gives both values."""
    store_diff = run_cli("scalems-store", "diff", pipeline["sim7"], pipeline["sim8"])
    assert store_diff.returncode == 1
    assert store_diff.stdout.decode().splitlines() == ["argument seed differs"]
    assert "scalems-call diff" in store_diff.stderr.decode()
    call_diff = run_cli("scalems-call", "diff", pipeline["sim7"], pipeline["sim8"])
    assert call_diff.returncode == 1, call_diff.stderr
    assert call_diff.stdout.decode().splitlines() == ["argument seed differs: 7 -> 8"]
    other = run_cli("scalems-call", "diff", "--json", pipeline["sim7"], pipeline["ana"])
    changes = {c["where"]: c for c in json.loads(other.stdout)["changes"]}
    assert changes["argument seed"]["detail"] == "7 -> -"
    assert changes["argument 0"]["detail"] == f"- -> output({pipeline['sim7'][:8]}…, 'traj.csv')"
    same = run_cli("scalems-call", "diff", pipeline["sim7"], pipeline["sim7"][:8])
    assert same.returncode == 0 and same.stdout == b""


def test_status_text_shows_short_arguments(run_cli: RunCli, pipeline: dict[str, str]) -> None:
    """Text status tells calls of one function apart by their arguments."""
    shown = run_cli("scalems-call", "status", pipeline["sim7"], pipeline["sim8"])
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.decode().splitlines()
    assert any("simulate(seed=7)" in line and "cached" in line for line in lines)
    assert any("simulate(seed=8)" in line for line in lines)
