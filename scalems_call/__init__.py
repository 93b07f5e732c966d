"""scalems_call: pack Python function calls into a store and run them by fingerprint.

Successor of SCALE-MS's ``scalems.call``: its public names (``CallResult``,
``CallPack``, ``ResultPack``, ``serialize_call``, ``deserialize_call``, ``main``,
``cli``, ``serialize_result``, ``deserialize_result``) keep their behaviour.
Names are imported lazily so that a cache hit from the command line does not
import dill.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "CallError",
    "CallFailed",
    "CallPack",
    "CallResult",
    "ImportFailed",
    "InvalidCall",
    "LaunchError",
    "NoResult",
    "ResultPack",
    "SerializationError",
    "cli",
    "deserialize_call",
    "deserialize_result",
    "main",
    "output",
    "pack",
    "run",
    "run_many",
    "serialize_call",
    "serialize_result",
    "submit",
    "task",
]

_WHERE = {
    "CallPack": "records",
    "ResultPack": "records",
    "CallResult": "compat",
    "cli": "compat",
    "deserialize_call": "compat",
    "deserialize_result": "compat",
    "main": "compat",
    "serialize_call": "compat",
    "serialize_result": "compat",
    "output": "upstream",
    "pack": "runner",
    "run_many": "executors",
    "task": "task",
    "run": "runner",
    "submit": "runner",
}

if TYPE_CHECKING:
    from .compat import (
        CallResult,
        cli,
        deserialize_call,
        deserialize_result,
        main,
        serialize_call,
        serialize_result,
    )
    from .errors import (
        CallError,
        CallFailed,
        ImportFailed,
        InvalidCall,
        LaunchError,
        NoResult,
        SerializationError,
    )
    from .executors import run_many
    from .records import CallPack, ResultPack
    from .runner import pack, run, submit
    from .task import task
    from .upstream import output


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'scalems_call' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE.get(name, 'errors')}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
