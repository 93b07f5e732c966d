"""The docs' Python examples: each parses, and each marked runnable runs as written.

Mark a fenced Python block runnable with an HTML comment on the line before it
(invisible when the Markdown is rendered)::

    <!-- runnable -->
    <!-- runnable: results.csv md-input/ -->

The block runs as a script in a fresh directory holding the files named after
the colon (a trailing ``/`` makes a directory with one file in it).
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

MARKER = re.compile(r"<!--\s*runnable(?::(?P<files>[^>]*))?\s*-->")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@dataclasses.dataclass
class Block:
    path: Path
    line: int  # of the opening fence, counted from 1
    source: str
    runnable: bool
    files: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    """Every fenced Python block of a Markdown file, and whether it is marked runnable."""
    lines = path.read_text().splitlines()
    blocks, number = [], 0
    while number < len(lines):
        if lines[number].strip().startswith("```python"):
            end = next(i for i in range(number + 1, len(lines)) if lines[i].strip() == "```")
            marker = MARKER.fullmatch(lines[number - 1].strip()) if number else None
            files = tuple((marker.group("files") or "").split()) if marker else ()
            source = "\n".join(lines[number + 1 : end]) + "\n"
            blocks.append(Block(path, number + 1, source, marker is not None, files))
            number = end
        number += 1
    return blocks


BLOCKS = [block for path in DOCS for block in python_blocks(path)]


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_every_example_compiles(block: Block) -> None:
    """Each Python example of the docs compiles (a top-level ``await`` does not)."""
    compile(block.source, str(block), "exec", dont_inherit=True)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.runnable], ids=str)
def test_runnable_example_runs_as_written(block: Block, tmp_path: Path) -> None:
    """A block marked runnable runs as a script, in a fresh directory, and exits 0."""
    for name in block.files:
        if name.endswith("/"):
            (tmp_path / name).mkdir(parents=True)
            (tmp_path / name / "conf.mdp").write_text("nsteps = 5000\n")
        else:
            (tmp_path / name).write_text("step,energy\n0,-1.5\n")
    script = tmp_path / "example.py"
    script.write_text(block.source)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{block} failed:\n{done.stderr}"


def test_markers_mark_python_blocks() -> None:
    """Every runnable marker stands right before a Python block, and the user guide's
    Python example and the SCALE-MS example are marked."""
    marked = {str(block) for block in BLOCKS if block.runnable}
    for path in DOCS:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if MARKER.fullmatch(line.strip()):
                where = f"{path.relative_to(REPO)}:{number + 2}"
                assert where in marked, f"{where}: a runnable marker not before a ```python block"
    assert any(name.startswith("docs/user-guide.md") for name in marked)
    assert any(name.startswith("docs/calls.md") for name in marked)
