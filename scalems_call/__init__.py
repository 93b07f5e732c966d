"""scalems_call: pack Python function calls into a store and run them by fingerprint.

Successor of SCALE-MS's ``scalems.call``: its public names (``CallResult``,
``CallPack``, ``ResultPack``, ``serialize_call``, ``deserialize_call``, ``main``,
``cli``, ``serialize_result``, ``deserialize_result``,
``function_call_to_subprocess``) keep their behaviour.
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
    "Stopped",
    "cli",
    "deserialize_call",
    "deserialize_result",
    "function_call_to_subprocess",
    "input_file",
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
    "CallPack": "identity.records",
    "ResultPack": "identity.records",
    "CallResult": "identity.compat",
    "cli": "identity.compat",
    "deserialize_call": "identity.compat",
    "deserialize_result": "identity.compat",
    "main": "identity.compat",
    "serialize_call": "identity.compat",
    "serialize_result": "identity.compat",
    "function_call_to_subprocess": "identity.batchtask",
    "_Subprocess": "identity.batchtask",
    "output": "identity.upstream",
    "input_file": "identity.upstream",
    "pack": "engines.runner",
    "run_many": "engines.executors",
    "task": "engines.task",
    "run": "engines.runner",
    "submit": "engines.runner",
}

if TYPE_CHECKING:
    from scalems_call.engines.executors import run_many
    from scalems_call.engines.runner import pack, run, submit
    from scalems_call.engines.task import task
    from scalems_call.identity.batchtask import _Subprocess as _Subprocess  # SCALE-MS type
    from scalems_call.identity.batchtask import function_call_to_subprocess
    from scalems_call.identity.compat import (
        CallResult,
        cli,
        deserialize_call,
        deserialize_result,
        main,
        serialize_call,
        serialize_result,
    )
    from scalems_call.identity.errors import (
        CallError,
        CallFailed,
        ImportFailed,
        InvalidCall,
        LaunchError,
        NoResult,
        SerializationError,
        Stopped,
    )
    from scalems_call.identity.records import CallPack, ResultPack
    from scalems_call.identity.upstream import input_file, output


def __getattr__(name: str) -> Any:
    if name not in __all__ and name != "_Subprocess":  # SCALE-MS users name its type
        raise AttributeError(f"module 'scalems_call' has no attribute {name!r}")
    module = importlib.import_module(f".{_WHERE.get(name, 'identity.errors')}", __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
