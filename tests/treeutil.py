"""Helpers to build directory trees on disk in a chosen order, with chosen mtimes."""

from __future__ import annotations

import os
import random
from pathlib import Path


def flatten(tree: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    """Return (relative path, node) for every node of a nested-dict tree."""
    out: list[tuple[str, object]] = []
    for name, node in tree.items():
        path = prefix + name
        out.append((path, node))
        if isinstance(node, dict):
            out.extend(flatten(node, path + "/"))
    return out


def build(
    root: Path, tree: dict[str, object], *, seed: int | None = None, mtime: int | None = None
) -> Path:
    """Create *tree* under *root*, creating entries in a shuffled order when *seed* is given."""
    root.mkdir(parents=True, exist_ok=True)
    nodes = flatten(tree)
    if seed is not None:
        random.Random(seed).shuffle(nodes)
    for rel, node in nodes:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(node, dict):
            path.mkdir(exist_ok=True)
        else:
            data = node[1] if isinstance(node, tuple) else node
            path.write_bytes(data)  # type: ignore[arg-type]
            path.chmod(0o751 if isinstance(node, tuple) else 0o600 + (seed or 0) % 2 * 0o44)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
    return root


def snapshot(root: Path) -> dict[str, object]:
    """Describe a directory: relative path -> bytes, ('x', bytes), ('link', target) or 'dir'."""
    found: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = "dir"
            elif os.stat(path).st_mode & 0o100:
                found[rel] = ("x", path.read_bytes())
            else:
                found[rel] = path.read_bytes()
    return found
