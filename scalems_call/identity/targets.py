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
