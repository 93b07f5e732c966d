"""A call described for people without running any of it: ``module:function`` and its arguments.

A call record holds its function and arguments as dill pickles. Loading them
would import the user's modules (slow, perhaps absent here, and code we should
not run just to print a log). This module reads the pickles' opcodes instead
(:mod:`pickletools`, which executes nothing): a function by reference is a
``module qualname`` global; one pickled by value (defined in ``__main__``)
names its module's globals and its name; plain values (numbers, strings,
bytes, lists, tuples, dicts, sets, None, booleans) are rebuilt; a reference to
another call's output, a persistent id ``("scalems-output", fp, path)``
(:mod:`scalems_call.identity.upstream`), shows as ``output(ab12cd34…)``; anything else
shows as ``<module.name>``.

API: :func:`function_name`, :func:`short_arguments` and :func:`argument_value`.
"""

from __future__ import annotations

import functools
import pickletools
import reprlib
from datetime import datetime
from typing import Any

from scalems_call.identity.upstream import PERSISTENT_TAG

UNKNOWN = "<unknown>"
"""What a function or value that cannot be read shows as."""


def function_name(record: dict[str, Any]) -> str:
    """The function of a call record as ``module:qualname``, read without importing it.

    Args:
        record: A call record (its ``func`` is a hex-encoded pickle).

    Returns:
        ``"mdtools:run_md"``; ``"__main__:simulate"`` for a function pickled by value
        from a script; ``"functools:partial(mdtools:run_md)"`` for a partial;
        :data:`UNKNOWN` if the pickle cannot be read.
    """
    hexed = record.get("func")
    return _function_of(hexed) if isinstance(hexed, str) else UNKNOWN


@functools.lru_cache(maxsize=1024)
def _function_of(hexed: str) -> str:
    """The ``module:qualname`` of a hex pickle (a graph's calls mostly share a few)."""
    return _function(_load(hexed)) or UNKNOWN


def epoch(iso: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 time of a result's provenance (``start``,
    ``end``); None when it is missing or not a time."""
    if not isinstance(iso, str):
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def short_arguments(record: dict[str, Any], width: int = 60) -> str:
    """The arguments of a call record on one line of at most *width* characters.

    Args:
        record: A call record (``args``: a list of hex pickles; ``kwargs``: a dict of them).
        width: The longest line returned; a longer one ends in ``…``.

    Returns:
        ``"5000, 'md.mdp', seed=3"``; a reference to another call's output is
        ``output(ab12cd34…)`` or ``output(ab12cd34…, 'out.gro')``.
    """
    args = record.get("args") or []
    kwargs = record.get("kwargs") or {}
    parts = [_repr(_load(hexed)) for hexed in args if isinstance(args, list)]
    if isinstance(kwargs, dict):
        parts += [f"{name}={_repr(_load(hexed))}" for name, hexed in sorted(kwargs.items())]
    text = ", ".join(parts)
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def argument_value(hexed: Any) -> str:
    """One argument of a call record (a hex pickle) shown for people, as in
    :func:`short_arguments`: ``7``, ``'md.mdp'``, ``output(ab12cd34…, 'traj.csv')``."""
    return _repr(_load(hexed))


class _Opaque:
    """A value rebuilt only as far as its name: a global, or the result of calling one."""

    def __init__(self, module: str, qualname: str, args: Any = None) -> None:
        self.module = module
        self.qualname = qualname
        self.args = args

    @property
    def name(self) -> str:
        """The dotted name of the global (of the callable, for a call's result)."""
        return f"{self.module}.{self.qualname}"

    def __repr__(self) -> str:
        return f"<{self.name}>"


class _Output:
    """A reference to another call's output, as its persistent id holds it."""

    def __init__(self, call: Any, path: Any) -> None:
        self.call = call
        self.path = path

    def __repr__(self) -> str:
        short = f"{self.call[:8]}…" if isinstance(self.call, str) else "?"
        return f"output({short})" if self.path is None else f"output({short}, {self.path!r})"


_MARK = object()
_repr_limits = reprlib.Repr()
_repr_limits.maxlevel = 3
_repr_limits.maxstring = 40
_repr_limits.maxother = 40


def _repr(value: Any) -> str:
    return UNKNOWN if value is _FAILED else _repr_limits.repr(value)


_FAILED = _Opaque("", "unreadable")


def _load(hexed: Any) -> Any:
    """Rebuild what a hex pickle holds as far as plain data goes; :data:`_FAILED` if not."""
    try:
        return _run(pickletools.genops(bytes.fromhex(hexed)))
    except Exception:  # any malformed pickle: the log shows it as unknown
        return _FAILED


def _run(ops: Any) -> Any:
    """Interpret the opcodes of a pickle for plain data (nothing is imported or called)."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    for op, arg, _ in ops:
        name = op.name
        if name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name in _ARGUMENT_OPS:
            stack.append(arg)
        elif name == "MARK":
            stack.append(_MARK)
        elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
            stack.append({"EMPTY_LIST": [], "EMPTY_DICT": {}, "EMPTY_SET": set()}[name])
        elif name in _TUPLES:
            count = _TUPLES[name]
            items = stack[len(stack) - count :] if count else []
            del stack[len(stack) - count :]
            stack.append(tuple(items))
        elif name in ("TUPLE", "LIST", "APPENDS", "SETITEMS", "ADDITEMS", "FROZENSET", "DICT"):
            _collect(name, stack)
        elif name == "APPEND":
            item = stack.pop()
            stack[-1].append(item)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            stack[-1][key] = value
        elif name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name == "GLOBAL":
            stack.append(_Opaque(*arg.split(" ", 1)))
        elif name == "STACK_GLOBAL":
            qualname, module = stack.pop(), stack.pop()
            stack.append(_Opaque(str(module), str(qualname)))
        elif name in ("REDUCE", "NEWOBJ"):
            args, func = stack.pop(), stack.pop()
            stack.append(_call(func, args))
        elif name == "BUILD":
            stack.pop()  # an object's state: its name says enough
        elif name == "BINPERSID":
            pid = stack.pop()
            if not (isinstance(pid, tuple) and len(pid) == 3 and pid[0] == PERSISTENT_TAG):
                raise ValueError("unknown persistent id")
            stack.append(_Output(pid[1], pid[2]))
        elif name == "STOP":
            return stack.pop()
        elif name not in ("PROTO", "FRAME"):
            raise ValueError(f"opcode {name} is not read here")
    raise ValueError("no STOP")


_DILL_TYPES = {"PartialType": ("functools", "partial")}
"""Types dill names by ``_load_type(name)`` that are not builtins of that name."""
_CONTAINERS = {"set": set, "frozenset": frozenset, "list": list, "tuple": tuple, "dict": dict}


def _call(func: Any, args: Any) -> Any:
    """What calling the global *func* with *args* gives, as far as it is plain data."""
    if not isinstance(func, _Opaque) or func is _FAILED:
        raise ValueError("a call of something that is not a global")
    if func.name == "dill._dill._load_type" and isinstance(args, tuple) and len(args) == 1:
        return _Opaque(*_DILL_TYPES.get(str(args[0]), ("builtins", str(args[0]))))
    if func.module == "builtins" and func.qualname in _CONTAINERS and isinstance(args, tuple):
        return _CONTAINERS[func.qualname](*args)  # a set, pickled as set(sorted items)
    return _Opaque(func.module, func.qualname, args)


def _collect(name: str, stack: list[Any]) -> None:
    """Apply an opcode that takes the items down to the last MARK."""
    at = len(stack) - 1 - stack[::-1].index(_MARK)
    items = stack[at + 1 :]
    del stack[at:]
    if name == "TUPLE":
        stack.append(tuple(items))
    elif name == "LIST":
        stack.append(items)
    elif name == "APPENDS":
        stack[-1].extend(items)
    elif name == "ADDITEMS":
        stack[-1].update(items)
    elif name == "FROZENSET":
        stack.append(frozenset(items))
    else:  # SETITEMS, DICT
        target = stack[-1] if name == "SETITEMS" else {}
        target.update(zip(items[::2], items[1::2], strict=True))
        if name == "DICT":
            stack.append(target)


_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_ARGUMENT_OPS = frozenset(
    (
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "BYTEARRAY8",
    )
)
_TUPLES = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


def _function(value: Any) -> str | None:
    """``module:qualname`` of a rebuilt function pickle, or None."""
    if not isinstance(value, _Opaque) or value is _FAILED:
        return None
    if value.args is None:  # a global: the function by reference
        return f"{value.module}:{value.qualname}"
    args = value.args if isinstance(value.args, tuple) else ()
    if value.name == "dill._dill._create_function" and len(args) >= 3:
        # by value (a function of a script): (code, globals, name, ...), where the
        # globals are its module's __dict__
        module = args[1].module if isinstance(args[1], _Opaque) else "?"
        return f"{module}:{args[2]}"
    if value.name == "functools.partial" and args:
        return f"functools:partial({_function(args[0]) or '?'})"
    return None
