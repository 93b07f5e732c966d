"""Resolve ``MODULE:FUNC`` references given on the command line."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from scalems_call.identity.errors import ImportFailed, InvalidCall


def import_target(target: str) -> Callable[..., Any]:
    """Import ``MODULE:QUALNAME`` (the current directory is searched first, as ``python -m`` does).

    Raises:
        InvalidCall: *target* is not of the form ``MODULE:FUNC`` or is not callable.
        ImportFailed: the module or the attribute cannot be found.
    """
    module_name, sep, qualname = target.partition(":")
    if not sep or not module_name or not qualname:
        raise InvalidCall(f"{target!r} is not MODULE:FUNC (e.g. 'mypackage.analysis:run')")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportFailed(f"cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise ImportFailed(f"importing module {module_name!r} failed: {exc!r}") from exc
    for part in qualname.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ImportFailed(f"module {module_name!r} has no attribute {qualname!r}") from None
    if not callable(value):
        raise InvalidCall(f"{target!r} is not callable")
    return value


def unreachable_module(func: Callable[..., Any], skeleton: str | None) -> str | None:
    """The top-level name of *func*'s module if the call's process could not import it:
    it was found in the current directory, is not in the *skeleton* directory (extracted
    into the work directory, where the call runs), and a fresh Python started elsewhere
    with this environment cannot find it. None otherwise.
    """
    name = getattr(func, "__module__", None) or ""
    where = getattr(sys.modules.get(name), "__file__", None)
    if not name or name == "__main__" or not where:
        return None  # a script's own functions travel by value
    found = os.path.realpath(where)
    cwd = os.path.realpath(os.getcwd())
    if os.path.commonpath([found, cwd]) != cwd:
        return None
    top = name.partition(".")[0]
    if skeleton is not None and os.path.isdir(skeleton):
        shipped = os.path.relpath(found, os.path.realpath(skeleton))
        if shipped.partition(os.sep)[0] in (top, f"{top}.py"):
            return None
    import subprocess
    import tempfile

    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({top!r}) is None)"
    with tempfile.TemporaryDirectory() as empty:
        found_elsewhere = subprocess.run(
            [sys.executable, "-c", probe], cwd=empty, capture_output=True, check=False
        )
    return None if found_elsewhere.returncode == 0 else top
