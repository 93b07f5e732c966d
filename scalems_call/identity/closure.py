"""A call's code closure: the user's own modules a call needs, and the distributions it uses.

The roots are the modules the call's pickles name (the function's module, the
modules of classes and functions in its arguments, the modules a function
pickled by value refers to). From each root, the modules it imports are
followed (read from its source, not by importing anything new), and each
module is one of three:

* **standard library** (or built in): nothing is recorded;
* **an installed distribution** (its file lies in a site-packages directory;
  scalems itself always): recorded by name and version, ``{"numpy": "2.1.3"}``,
  not shipped, and not followed further;
* **the user's own code** (anything else: the current directory, a project on
  ``PYTHONPATH``, an editable install): its file is shipped, with the
  ``__init__`` files of its packages, and the modules it imports are followed.

What is read is cached per process: a module's imports by its file's path,
size, mtime and inode, so that packing 1,000 calls of one module parses it once.
This module does no store I/O and does not import dill.
"""

from __future__ import annotations

import ast
import importlib.machinery
import os
import pickletools
import site
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field

USER, DIST, STDLIB, RUNNER_KIND = "user", "dist", "stdlib", "runner"
RUNNER = ("scalems_call", "scalems_store", "dill")
"""Top-level packages of the runner itself: never the user's code, whatever their install,
and not recorded (an upgrade of the runner does not change what a call is)."""
_IMPORT_MODULE = ("dill._dill", "_import_module")
"""How dill pickles a module (by name): a call of this with the module's name."""

StatKey = tuple[int, int, int]


@dataclass(frozen=True)
class Module:
    """What one module is to a code closure."""

    name: str
    kind: str
    path: str | None = None
    """The file (user code)."""
    relpath: str | None = None
    """Where it goes in the code tree (user code): ``pkg/sub.py``."""
    dist: str | None = None
    version: str | None = None


@dataclass
class Closure:
    """The user's files a call needs and the distributions it uses."""

    files: dict[str, str] = field(default_factory=dict)
    """Code tree path (``pkg/sub.py``) -> file on this machine."""
    stats: dict[str, StatKey] = field(default_factory=dict)
    """File -> its size, mtime and inode when its imports were read."""
    dists: dict[str, str] = field(default_factory=dict)
    """Distribution name -> version."""


_modules: dict[str, Module | None] = {}
_imports: dict[str, tuple[StatKey, tuple[str, ...]]] = {}


_walked: dict[tuple[str, ...], Closure] = {}


def closure(roots: Iterable[str]) -> Closure:
    """The code closure of modules named *roots*: the user's files, transitively, and the
    distributions met on the way. The same roots again, with every file of the closure
    unchanged (its stat), give the closure found before without walking it again."""
    key = tuple(sorted(set(roots)))
    before = _walked.get(key)
    if before is not None and all(_stat_key(path) == k for path, k in before.stats.items()):
        return before
    found = _walk(key)
    _walked[key] = found
    return found


def _stat_key(path: str) -> StatKey | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _walk(roots: Iterable[str]) -> Closure:
    found = Closure()
    todo = list(roots)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or not name:
            continue
        seen.add(name)
        module = classify(name)
        if module is None:
            continue
        if module.kind == DIST and module.dist and module.version:
            found.dists[module.dist] = module.version
        elif module.kind == USER and module.path and module.relpath:
            found.files[module.relpath] = module.path
            todo.extend(imports_of(module, found.stats))
    return found


def classify(name: str) -> Module | None:
    """What module *name* is (None: not found here, or a namespace package)."""
    if name in _modules:
        return _modules[name]
    found = _classify(name)
    _modules[name] = found
    return found


def _classify(name: str) -> Module | None:
    top = name.partition(".")[0]
    if top in RUNNER:
        return Module(name, RUNNER_KIND)
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "__main__":
        return Module(name, STDLIB)
    path = _file_of(name)
    if path is None:
        return None
    real = os.path.realpath(path)
    if _under(real, _site_dirs()):
        dist = _dist_of(top)
        return Module(name, DIST, dist=dist, version=_version(dist) if dist else None)
    if _under(real, _stdlib_dirs()):
        return Module(name, STDLIB)
    relpath = _relpath(name, path)
    return None if relpath is None else Module(name, USER, path=path, relpath=relpath)


def _file_of(name: str) -> str | None:
    """The file module *name* is (or would be) loaded from, without importing it."""
    module = sys.modules.get(name)
    if module is not None:
        found = getattr(module, "__file__", None)
        return found if isinstance(found, str) else None
    parent, _, _ = name.rpartition(".")
    if parent:
        where = getattr(sys.modules.get(parent), "__path__", None)
        if where is None:
            return None
        search: list[str] | None = list(where)
    else:
        search = [os.getcwd() if entry == "" else entry for entry in sys.path]
    try:
        spec = importlib.machinery.PathFinder.find_spec(name, search)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.has_location or not isinstance(spec.origin, str):
        return None
    return spec.origin


def _relpath(name: str, path: str) -> str | None:
    """Where module *name* in file *path* goes in a code tree (None: an odd file)."""
    parts = name.split(".")
    base = os.path.basename(path)
    if not any(base.endswith(suffix) for suffix in importlib.machinery.all_suffixes()):
        return None
    if base.startswith("__init__."):
        rel = "/".join([*parts, base])
    else:
        rel = "/".join([*parts[:-1], base])
        stem = base.partition(".")[0]
        if stem != parts[-1]:
            return None
    if not os.path.abspath(path).replace(os.sep, "/").endswith("/" + rel):
        return None
    return rel


def imports_of(module: Module, stats: dict[str, StatKey] | None = None) -> tuple[str, ...]:
    """The modules *module* (user code) imports, and its parent packages; read from its
    source once per version of its file (*stats* gets the file's stat key)."""
    assert module.path is not None
    try:
        st = os.stat(module.path)
    except OSError:
        return ()
    key = (st.st_size, st.st_mtime_ns, st.st_ino)
    if stats is not None:
        stats[module.path] = key
    cached = _imports.get(module.path)
    if cached is not None and cached[0] == key:
        return cached[1]
    names = _parents(module.name) + _parse_imports(module)
    _imports[module.path] = (key, names)
    return names


def _parents(name: str) -> tuple[str, ...]:
    parts = name.split(".")
    return tuple(".".join(parts[:i]) for i in range(1, len(parts)))


def _parse_imports(module: Module) -> tuple[str, ...]:
    assert module.path is not None
    if not module.path.endswith(".py"):
        return ()
    try:
        with open(module.path, "rb") as stream:
            tree = ast.parse(stream.read(), module.path)
    except (OSError, SyntaxError, ValueError):
        return ()
    package = module.name if module.path.endswith("__init__.py") else module.name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            if base is None or base == "__future__":
                continue
            found.append(base)
            found.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return tuple(dict.fromkeys(name for name in found if _findable(name)))


def _absolute(name: str | None, level: int, package: str) -> str | None:
    if level == 0:
        return name
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, *([name] if name else [])]) or None


def _findable(name: str) -> bool:
    """Whether *name* names a module (``from pkg import func`` names a function too)."""
    if name in sys.modules or "." not in name:
        return True
    return classify(name) is not None


def _under(path: str, dirs: tuple[str, ...]) -> bool:
    return any(path == d or path.startswith(d + os.sep) for d in dirs)


_cached_dirs: dict[str, tuple[str, ...]] = {}


def _site_dirs() -> tuple[str, ...]:
    if "site" not in _cached_dirs:
        found = set(site.getsitepackages())
        found.add(site.getusersitepackages())
        paths = sysconfig.get_paths()
        found.update(paths[key] for key in ("purelib", "platlib") if key in paths)
        _cached_dirs["site"] = tuple(os.path.realpath(d) for d in sorted(found) if d)
    return _cached_dirs["site"]


def _stdlib_dirs() -> tuple[str, ...]:
    if "stdlib" not in _cached_dirs:
        paths = sysconfig.get_paths()
        found = {paths[key] for key in ("stdlib", "platstdlib") if key in paths}
        _cached_dirs["stdlib"] = tuple(os.path.realpath(d) for d in sorted(found) if d)
    return _cached_dirs["stdlib"]


_distributions: dict[str, list[str]] = {}


def _dist_of(top: str) -> str | None:
    """The installed distribution that provides top-level package *top*."""
    if not _distributions:
        from importlib import metadata

        _distributions.update(metadata.packages_distributions())
        _distributions.setdefault("", [])
    names = _distributions.get(top)
    return names[0] if names else None


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def pickled_modules(data: bytes) -> set[str]:
    """The modules a pickle names: of the globals it loads (functions and classes by
    reference), and the modules dill pickles by name."""
    found: set[str] = set()
    strings: list[str] = []
    after_import_module = False
    memo = 0
    import_module_at: int | None = None  # where the memo holds dill's _import_module
    try:
        for opcode, arg, _ in pickletools.genops(data):
            name = opcode.name
            if isinstance(arg, str) and name.endswith("UNICODE"):
                if after_import_module:
                    found.add(arg)
                    after_import_module = False
                strings = [*strings[-1:], arg]
            elif name == "STACK_GLOBAL" and len(strings) == 2:
                found.add(strings[0])
                after_import_module = (strings[0], strings[1]) == _IMPORT_MODULE
                if after_import_module:
                    import_module_at = memo
            elif name == "GLOBAL" and isinstance(arg, str):
                found.add(arg.partition(" ")[0])
            elif name == "MEMOIZE":
                memo += 1
            elif name.endswith("GET") and arg == import_module_at:
                after_import_module = True
    except ValueError:
        pass
    return found


def forget() -> None:
    """Drop what this process has learnt of modules (for tests that rewrite them)."""
    _modules.clear()
    _imports.clear()
    _walked.clear()
