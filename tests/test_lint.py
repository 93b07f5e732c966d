"""The code base is ruff- and mypy-clean (checked here so that CI enforces it)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def tool(name: str) -> list[str]:
    found = shutil.which(name, path=str(__import__("pathlib").Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed (it comes with the test extra)")
    return [found]


def test_ruff_clean() -> None:
    """ruff finds no lint or formatting problems."""
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([*tool("ruff"), *args], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_clean() -> None:
    """mypy finds no type errors in the packages, tests and benchmarks."""
    proc = subprocess.run([*tool("mypy")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
