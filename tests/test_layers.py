"""The folders are the architecture: imports run only downward, and public names stay put."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import pytest

import scalems_call
import scalems_store
from tests.conftest import REPO

# Bottom to top. A module may import its own folder and any folder before it in this list;
# ``scalems_store`` as a whole sits below ``scalems_call``.
LAYERS = [
    "scalems_store._speedups",
    "scalems_store.core",
    "scalems_store.tar",
    "scalems_store.objects",
    "scalems_store.store",
    "scalems_store.trust",
    "scalems_store.query",
    "scalems_store.maint",
    "scalems_store.remote",
    "scalems_store.cli",
    "scalems_call.identity",
    "scalems_call.execution",
    "scalems_call.engines",
    "scalems_call.cmdline",
]
# Folders that stand side by side: neither may import the other.
BESIDE = {("scalems_store.query", "scalems_store.maint")}


def _folder(dotted: str) -> str | None:
    """The layer a dotted module name belongs to, or None for a package's public face."""
    parts = dotted.split(".")
    name = ".".join(parts[:2])
    return name if name in LAYERS else None


def _imports(path: Path) -> list[str]:
    """Every ``scalems_*`` module (or module attribute) that *path* imports, as dotted names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(f"<relative import at line {node.lineno}>")
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name.startswith(("scalems_", "<relative"))]


def _modules() -> list[tuple[Path, str]]:
    return [
        (path, ".".join(path.relative_to(REPO).with_suffix("").parts))
        for package in ("scalems_store", "scalems_call")
        for path in sorted((REPO / package).rglob("*.py"))
    ]


def test_imports_run_only_downward() -> None:
    """No module imports a folder above its own, a folder beside it, or its package's face."""
    wrong = []
    for path, dotted in _modules():
        mine = _folder(dotted)
        if mine is None:
            continue  # a package's public face and entry points may import anything below
        for name in _imports(path):
            theirs = _folder(name)
            if name.startswith("<relative"):
                wrong.append(f"{dotted}: {name} (imports are absolute)")
            elif theirs is None and name.split(".")[0] == dotted.split(".")[0]:
                wrong.append(f"{dotted} imports its package's face: {name}")
            elif theirs is not None and LAYERS.index(theirs) > LAYERS.index(mine):
                wrong.append(f"{dotted} imports {name}, above it")
            elif (mine, theirs) in BESIDE or (theirs, mine) in BESIDE:
                wrong.append(f"{dotted} imports {name}, beside it")
    assert wrong == []


def _module_of(name: str, modules: set[str]) -> str | None:
    """The module of ours that the imported dotted *name* is, or holds (``a.b.c`` may be
    module ``a.b.c`` or name ``c`` of module ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_no_module_imports_itself_round_a_circle() -> None:
    """No circle of imports between modules, counting imports inside functions and for type
    checking too (the house rule: no circles; a folder's modules may import each other, but
    only one way)."""
    found = _modules()
    modules = {dotted for _, dotted in found}
    graph: dict[str, set[str]] = {}
    for path, dotted in found:
        targets = {_module_of(name, modules) for name in _imports(path)}
        graph[dotted] = {t for t in targets if t and t != dotted and not t.endswith("__init__")}
    graph = {m: {t for t in ts if t in graph} for m, ts in graph.items()}
    circles, state = [], dict.fromkeys(graph, 0)  # 0 new, 1 on the path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state[target] == 1:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif state[target] == 0:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if state[module] == 0:
            visit(module, [module])
    assert circles == []


def test_every_folder_is_small_and_says_what_it_holds() -> None:
    """Each folder has at most 12 modules and an ``__init__`` docstring naming its imports."""
    for layer in LAYERS[1:]:
        folder = REPO.joinpath(*layer.split("."))
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert 0 < len(modules) <= 12, (layer, len(modules))
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc is not None and "Imports:" in doc and "Imported by" in doc, layer
        assert not [p for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"]


@pytest.mark.parametrize("package", [scalems_store, scalems_call], ids=lambda m: m.__name__)
def test_every_public_name_imports_from_the_package(package: types.ModuleType) -> None:
    """Everything in ``__all__`` imports from the package itself, as the docs show, and no
    folder shadows it (``scalems_call.cli`` is SCALE-MS's function, not a sub-package)."""
    for _, dotted in _modules():
        if not dotted.endswith("__main__"):
            importlib.import_module(dotted.removesuffix(".__init__"))
    for name in package.__all__:
        value = getattr(package, name)
        assert value is not None and not isinstance(value, types.ModuleType), name


def test_documented_module_paths_still_import() -> None:
    """The module paths the docs and SCALE-MS users name keep working."""
    from scalems_call.executors import run_many

    assert run_many is scalems_call.run_many
    for module in ("scalems_call.demo", "scalems_call.__main__", "scalems_store.__main__"):
        assert importlib.util.find_spec(module) is not None, module  # found, not run


def test_entry_points_run_from_their_documented_places(tmp_path: Path) -> None:
    """``python -m scalems_store``, ``python -m scalems_call`` and both scripts answer."""
    bindir = Path(sys.executable).parent
    for argv in (
        [sys.executable, "-m", "scalems_store", "--help"],
        [str(bindir / "scalems-store"), "--help"],
        [str(bindir / "scalems-call"), "--help"],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0 and "Usage:" in done.stdout, (argv, done.stderr)
    legacy = subprocess.run(
        [sys.executable, "-m", "scalems_call"], capture_output=True, text=True, cwd=tmp_path
    )
    assert legacy.returncode == 2 and "usage" in legacy.stderr.lower()
