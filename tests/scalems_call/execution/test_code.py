"""A call's code travels with it: recorded at pack time, run by exec, shown stale when the
code on disk differs (issue 21)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalems_call import pack, run
from scalems_call.execution import code
from scalems_call.identity import closure
from scalems_call.identity.serialize import from_hex
from scalems_store import FileStore
from scalems_store.core.layout import canonical
from tests.conftest import RunCli
from tests.scalems_call.legacy import legacy_pack

# Pinned: a version 2 record (a call carrying its code) of golden_v2:f(1).
GOLDEN_V2_CALL = "8004768e3eb4b3b6be8a6360815cceb46b8b971e6dc242314521ac7b2ca4ae4e"
GOLDEN_V2_SOURCE = "def f(x):\n    return x + 1\n"


def cli(run_cli: RunCli, where: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``scalems-call --store where/.scalems ARGS`` run in *where*, no PYTHONPATH but ours."""
    return run_cli("scalems-call", "--store", str(where / ".scalems"), *args, cwd=where)


def packed(run_cli: RunCli, where: Path, target: str, args: str = "[]") -> str:
    done = cli(run_cli, where, "pack", target, "--args-json", args)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().strip()


def value(run_cli: RunCli, where: Path, fp: str) -> object:
    done = cli(run_cli, where, "exec", fp, "--json")
    assert json.loads(done.stdout)["status"] == "success", done.stderr
    shown = cli(run_cli, where, "result", fp, "--json")
    return from_hex(json.loads(shown.stdout)["return_value"])


def test_edited_code_does_not_change_what_a_packed_call_runs(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """Issue 21, case 1: f edited after pack; exec runs the code packed, and packing again
    gives a new call that runs the new code."""
    (tmp_path / "edit_me.py").write_text("def f(x):\n    return x + 1\n")
    old = packed(run_cli, tmp_path, "edit_me:f", "[1]")
    (tmp_path / "edit_me.py").write_text("def f(x):\n    return x + 1000\n")
    assert value(run_cli, tmp_path, old) == 2
    checked = cli(run_cli, tmp_path, "rerun", old, "--check")
    assert checked.returncode == 0, checked.stdout
    new = packed(run_cli, tmp_path, "edit_me:f", "[1]")
    assert new != old
    assert value(run_cli, tmp_path, new) == 1001


def test_editing_a_helper_changes_the_fingerprint(run_cli: RunCli, tmp_path: Path) -> None:
    """Issue 21, case 2: a constant doubled in a helper the function calls (same module,
    and another module it imports) makes a new call, not a cache hit."""
    (tmp_path / "consts.py").write_text("STEPS = 10\n")
    (tmp_path / "mdsim.py").write_text(
        "import consts\n\ndef _cfg():\n    return 2\n\n"
        "def simulate(x):\n    return x * _cfg() * consts.STEPS\n"
    )
    first = packed(run_cli, tmp_path, "mdsim:simulate", "[1]")
    assert value(run_cli, tmp_path, first) == 20
    (tmp_path / "mdsim.py").write_text(
        (tmp_path / "mdsim.py").read_text().replace("return 2", "return 4")
    )
    second = packed(run_cli, tmp_path, "mdsim:simulate", "[1]")
    assert second != first
    assert value(run_cli, tmp_path, second) == 40
    (tmp_path / "consts.py").write_text("STEPS = 100\n")
    third = packed(run_cli, tmp_path, "mdsim:simulate", "[1]")
    assert third not in (first, second)
    assert value(run_cli, tmp_path, third) == 400


def test_status_and_why_say_the_code_changed(run_cli: RunCli, tmp_path: Path) -> None:
    """Issue 21, stale code: the module edited after pack and run; status marks the
    result stale with the module's name, why says it; an old record says 'code not recorded'."""
    (tmp_path / "mdsim.py").write_text("def simulate(x):\n    return x\n")
    fp = packed(run_cli, tmp_path, "mdsim:simulate", "[3]")
    assert value(run_cli, tmp_path, fp) == 3
    status = cli(run_cli, tmp_path, "status", fp)
    assert status.returncode == 0 and b"cached" in status.stdout, status.stdout
    (tmp_path / "mdsim.py").write_text("def simulate(x):\n    return 2 * x\n")
    status = cli(run_cli, tmp_path, "status", fp)
    assert status.returncode == 1
    assert b"stale" in status.stdout
    assert b"code changed since pack: mdsim.py" in status.stdout
    described = json.loads(cli(run_cli, tmp_path, "status", fp, "--json").stdout)
    assert described["calls"][0]["note"] == "code changed since pack: mdsim.py"
    why = cli(run_cli, tmp_path, "why", fp)
    assert b"code changed since pack: mdsim.py" in why.stdout
    assert value(run_cli, tmp_path, fp) == 3  # exec still serves what the recorded code gave
    (tmp_path / "old.py").write_text("def f():\n    return 1\n")
    legacy = legacy_pack(tmp_path / ".scalems", "old:f", [], tmp_path)
    assert b"code not recorded" in cli(run_cli, tmp_path, "status", legacy).stdout


def test_forced_exec_that_cannot_start_keeps_the_good_result(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """Issue 21, case 7: exec --force of a call whose module cannot be imported any more
    (an old record, a broken environment) fails, and the recorded result stays the latest."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "fragile.py").write_text("def f():\n    return 7\n")
    fp = legacy_pack(tmp_path / ".scalems", "fragile:f", [], tmp_path / "lib")
    store = ["scalems-call", "--store", str(tmp_path / ".scalems")]
    on_path = {"PYTHONPATH": f"{tmp_path / 'lib'}{os.pathsep}{os.environ['PYTHONPATH']}"}
    first = run_cli(*store, "exec", fp, env=on_path)
    assert first.returncode == 0, first.stderr
    good = first.stdout.decode().strip()
    forced = run_cli(*store, "exec", fp, "--force")
    assert forced.returncode == 1
    assert b"ImportFailed" in forced.stderr
    again = run_cli(*store, "exec", fp)
    assert again.returncode == 0 and again.stdout.decode().strip() == good
    assert run_cli(*store, "status", fp).returncode == 0


def test_golden_version_2_call_fingerprint(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call carrying its code packs to a pinned fingerprint (the record format, v2)."""
    (tmp_path / "golden_v2.py").write_text(GOLDEN_V2_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import golden_v2  # type: ignore[import-not-found]

    try:
        fp = pack(golden_v2.f, (1,), store=store)
    finally:
        sys.modules.pop("golden_v2", None)
    record = json.loads(store.read_bytes(fp))
    assert record["version"] == 2 and record["dists"] == {}
    assert list(record["code"]) == ["golden_v2.py"]
    assert store.read_bytes(record["code"]["golden_v2.py"][7:]) == GOLDEN_V2_SOURCE.encode()
    assert fp == GOLDEN_V2_CALL


def test_identical_modules_are_one_object_and_hashed_once(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls of two functions of one module share its blob; packing many calls reads the
    module once (its stat is the cache key)."""
    (tmp_path / "twofuncs.py").write_text("def a(x):\n    return x\n\ndef b(x):\n    return -x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import twofuncs  # type: ignore[import-not-found]

    added: list[str] = []
    add_file = store.add_file

    def counted(path: str, **options: object) -> str:
        added.append(path)
        return str(add_file(path))

    monkeypatch.setattr(store, "add_file", counted)
    try:
        fps = [pack(twofuncs.a, (i,), store=store) for i in range(20)]
        fps.append(pack(twofuncs.b, (1,), store=store))
    finally:
        sys.modules.pop("twofuncs", None)
    codes = {json.dumps(json.loads(store.read_bytes(fp))["code"]) for fp in fps}
    assert len(codes) == 1
    assert added == [str(tmp_path / "twofuncs.py")]
    assert store.kind(json.loads(store.read_bytes(fps[0]))["code"]["twofuncs.py"][7:]) == "blob"


def test_nothing_on_the_path_shadows_the_recorded_code(run_cli: RunCli, tmp_path: Path) -> None:
    """A module of the same name in the skeleton (the work directory) and on PYTHONPATH:
    the call imports the recorded one."""
    (tmp_path / "shadowed.py").write_text("def who():\n    return 'recorded'\n")
    skeleton, elsewhere = tmp_path / "skel", tmp_path / "elsewhere"
    for where in (skeleton, elsewhere):
        where.mkdir()
        (where / "shadowed.py").write_text(f"def who():\n    return {where.name!r}\n")
    done = cli(run_cli, tmp_path, "pack", "shadowed:who", "--skeleton", str(skeleton))
    fp = done.stdout.decode().strip()
    path = f"{elsewhere}{os.pathsep}{os.environ['PYTHONPATH']}"
    for fresh in ("0", "1"):
        ran = run_cli(
            "scalems-call", "--store", str(tmp_path / ".scalems"), "exec", fp, "--force",
            cwd=skeleton, env={"PYTHONPATH": path, "SCALEMS_CALL_FORKSERVER": "off" * int(fresh)},
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert value(run_cli, tmp_path, fp) == "recorded"


def test_a_module_loaded_before_does_not_shadow_the_recorded_code(tmp_path: Path) -> None:
    """In a process that imported a module of the same name already (as a fork server
    might), the child's set-up forgets it and imports the recorded one."""
    recorded = tmp_path / "code"
    recorded.mkdir()
    (recorded / "preloaded.py").write_text("WHO = 'recorded'\n")
    (tmp_path / "preloaded.py").write_text("WHO = 'loaded before'\n")
    script = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); import preloaded;"
        "from scalems_call.execution import child; os.environ['SCALEMS_CALL_CODE'] = sys.argv[2];"
        "child._use_recorded_code(); import preloaded; print(preloaded.WHO)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(recorded)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "recorded"


def test_the_code_tree_is_written_once_per_worker(store: FileStore, tmp_path: Path) -> None:
    """code_dir writes a code tree out the first time and reuses it after."""
    fp = store.add_bytes(b"X = 1\n")
    first = code.code_dir(store, {"pkg/__init__.py": fp, "pkg/mod.py": fp})
    made = os.stat(first).st_ino
    assert code.code_dir(store, {"pkg/mod.py": fp, "pkg/__init__.py": fp}) == first
    assert os.stat(first).st_ino == made
    assert (Path(first) / "pkg" / "mod.py").read_text() == "X = 1\n"


def test_a_malformed_code_path_is_refused(store: FileStore) -> None:
    """A code map naming a path that climbs out is an InvalidCall, before anything is written."""
    from scalems_call import InvalidCall

    fp = store.add_bytes(b"X = 1\n")
    for bad in ("../x.py", "/abs.py", "a//b.py", ""):
        with pytest.raises(InvalidCall):
            code.recorded({"code": {bad: f"blake3:{fp}"}})


def test_version_differences_are_recorded_or_refused(
    run_cli: RunCli, tmp_path: Path, store: FileStore
) -> None:
    """A distribution whose version here differs from the record: the result's provenance
    says so, and exec --strict-versions refuses to run the call."""
    (tmp_path / "uses_click.py").write_text("import click\n\ndef f():\n    return 1\n")
    fp = packed(run_cli, tmp_path, "uses_click:f")
    where = FileStore(tmp_path / ".scalems")
    record = json.loads(where.read_bytes(fp))
    assert set(record["dists"]) == {"click"}
    record["dists"]["click"] = "0.0.1"
    other = where.add_bytes(canonical(record), kind="call")
    refused = cli(run_cli, tmp_path, "exec", other, "--strict-versions")
    assert refused.returncode == 1
    assert b"click 0.0.1 recorded" in refused.stderr
    assert value(run_cli, tmp_path, other) == 1
    shown = json.loads(cli(run_cli, tmp_path, "result", other, "--json").stdout)
    assert shown["provenance"]["versions_differ"]["click"]["recorded"] == "0.0.1"
    assert b"click 0.0.1 recorded" in cli(run_cli, tmp_path, "result", other).stdout


def test_a_standard_library_call_carries_no_code(store: FileStore) -> None:
    """operator.add needs no code of the user's: its record is as before (version 1)."""
    import operator

    record = json.loads(store.read_bytes(pack(operator.add, (1, 2), store=store)))
    assert "code" not in record and "version" not in record
    assert run(pack(operator.add, (1, 2), store=store), store=store).return_value == 3
    assert closure.closure(["operator"]).files == {}


def test_a_bundle_carries_the_code_to_a_store_that_never_saw_it(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """Issue 21, case 4: packed in store 1, exported, imported into store 2 in a directory
    where the module does not exist (and no PYTHONPATH to it): it runs there."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "mdtools.py").write_text("def run_md(steps):\n    return steps * 2\n")
    fp = packed(run_cli, project, "mdtools:run_md", "[21]")
    bundle = tmp_path / "call.bundle"
    store1 = ["scalems-store", "--store", str(project / ".scalems")]
    assert run_cli(*store1, "export", fp, "-o", str(bundle)).returncode == 0
    store2 = ["--store", str(elsewhere / ".scalems")]
    imported = run_cli("scalems-store", *store2, "import", str(bundle), cwd=elsewhere)
    assert imported.returncode == 0, imported.stderr
    assert value(run_cli, elsewhere, fp) == 42
    gc = run_cli("scalems-store", *store2, "gc", "--grace", "0", cwd=elsewhere)
    assert gc.returncode == 0, gc.stderr
    code_blobs = json.loads(FileStore(elsewhere / ".scalems").read_bytes(fp))["code"]
    assert all(uri[7:] in FileStore(elsewhere / ".scalems") for uri in code_blobs.values())
