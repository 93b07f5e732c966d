"""Functions of a notebook or ``__main__`` (issue 21, case 3): their identity does not
depend on the file name, line numbers or blank lines above them, they carry the globals
they use, and they run where the notebook never was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RunCli

SETUP = """
import random
from scalems_store import FileStore
from scalems_call import pack
store = FileStore({store!r})
"""
DEFINE = """
SCALE = 3


def helper(x):
    return x * SCALE


def simulate(seed):
    random.seed(seed)
    return helper(random.randint(0, 100))
"""
PACK = "print(pack(simulate, (7,), store=store))"


def expected() -> int:
    import random

    random.seed(7)
    return random.randint(0, 100) * 3


def notebook(store: Path, padding: int) -> object:
    """A notebook defining simulate after *padding* blank lines and as many extra cells."""
    nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat")
    cells = [nbformat.v4.new_code_cell(SETUP.format(store=str(store)))]
    cells += [nbformat.v4.new_code_cell("x = 1") for _ in range(padding)]
    cells += [nbformat.v4.new_code_cell("\n" * padding + DEFINE), nbformat.v4.new_code_cell(PACK)]
    return nbformat.v4.new_notebook(cells=cells)


def executed(nb: object, where: Path) -> str:
    nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient")
    pytest.importorskip("ipykernel", reason="the notebook tests need ipykernel")
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(where)}}
    )
    client.execute()
    last = nb.cells[-1]  # type: ignore[attr-defined]
    return "".join(out.get("text", "") for out in last.outputs).strip()


def test_one_notebook_in_two_kernels_packs_one_call_that_runs_elsewhere(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """Issue 21, case 3: the same notebook executed in two kernels (and once with blank
    lines and cells above the function) gives one fingerprint; the call runs in a fresh
    process that never saw the notebook, with the module it imports and the global it reads."""
    store = tmp_path / "store"
    fps = {executed(notebook(store, 0), tmp_path) for _ in range(2)}
    fps.add(executed(notebook(store, 3), tmp_path))
    assert len(fps) == 1, fps
    fp = fps.pop()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_cli("scalems-call", "--store", str(store), "exec", fp, "--json", cwd=elsewhere)
    assert json.loads(done.stdout)["status"] == "success", done.stderr
    shown = run_cli("scalems-call", "--store", str(store), "result", fp, "--json")
    from scalems_call.identity.serialize import from_hex

    assert from_hex(json.loads(shown.stdout)["return_value"]) == expected()


SCRIPT = """
import sys
from scalems_store import FileStore
from scalems_call import pack
import random


def simulate(seed):
    random.seed(seed)
    return random.randint(0, 100)


print(pack(simulate, (7,), store=FileStore(sys.argv[1])))
"""


def test_a_script_function_is_the_same_call_whatever_the_file(tmp_path: Path) -> None:
    """The same function in scripts of other names, with blank lines above it, packs to
    one fingerprint."""
    fps = set()
    for name, padding in (("a.py", 0), ("b.py", 5)):
        script = tmp_path / name
        script.write_text("\n" * padding + SCRIPT)
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "store")],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ},
        )
        fps.add(done.stdout.strip())
    assert len(fps) == 1
