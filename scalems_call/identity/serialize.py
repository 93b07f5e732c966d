"""Deterministic dill serialization of functions and values, and function code fingerprints.

Values are pickled with dill, functions by reference where they can be
imported (as SCALE-MS did), with protocol 4 pinned so that the bytes do not
change with the Python version's default. Two things make the bytes depend
only on the value:

* sets and frozensets are written in a canonical order (their iteration order
  depends on ``PYTHONHASHSEED``);
* strings and bytes are never memoized, so equal values pickle the same whether
  or not they are the same object;
* every value is pickled, loaded and pickled again; if the two pickles differ
  the value is refused with :class:`SerializationError` rather than given a
  fingerprint that would change from run to run.
"""

from __future__ import annotations

import functools
import inspect
import io
import textwrap
from collections.abc import Callable
from typing import Any

import dill

from scalems_call.identity import upstream
from scalems_call.identity.errors import CallError, SerializationError
from scalems_store.core.errors import StoreError

PROTOCOL = 4
ENCODER = "dill"


class _Pickler(dill.Pickler):
    """A dill pickler whose output depends on values only, not on object identity or hash seed.

    References to other calls' outputs become persistent ids (see
    :mod:`scalems_call.identity.upstream`), resolved by *resolve* when one is given.
    """

    def __init__(self, *args: Any, resolve: Callable[[Any], Any] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._pid = upstream.persistent_id(resolve)

    def persistent_id(self, obj: Any) -> Any:
        return self._pid(obj)

    def memoize(self, obj: Any) -> None:
        # pickle shares equal objects by identity; for immutable atoms that would make
        # ("x", "x") pickle differently depending on whether both are one object
        if type(obj) not in (str, bytes):
            super().memoize(obj)

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) in (set, frozenset):
            return type(obj), (sorted(obj, key=_sort_key),)
        return NotImplemented


class _Unpickler(dill.Unpickler):
    """A dill unpickler that gives references to other calls' outputs what *deliver* says."""

    def __init__(self, *args: Any, deliver: Callable[[str, str | None], Any] | None, **kw: Any):
        super().__init__(*args, **kw)
        self._load = upstream.persistent_load(deliver)

    def persistent_load(self, pid: Any) -> Any:
        return self._load(pid)


def _sort_key(item: Any) -> bytes:
    return _dumps(item)


def _dumps(value: Any, resolve: Callable[[Any], Any] | None = None) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, PROTOCOL, byref=True, recurse=False, resolve=resolve).dump(value)
    return buffer.getvalue()


def _loads(data: bytes, deliver: Callable[[str, str | None], Any] | None = None) -> Any:
    return _Unpickler(io.BytesIO(data), deliver=deliver).load()


def to_bytes(value: Any, what: str = "value") -> bytes:
    """Serialize *value* (by reference for importable functions and classes).

    Raises:
        SerializationError: the value cannot be pickled.
    """
    try:
        return _dumps(value)
    except RecursionError:
        raise SerializationError(f"cannot serialize {what}: it is nested too deeply") from None
    except Exception as exc:
        raise SerializationError(f"cannot serialize {what} {_describe(value)}: {exc}") from exc


def to_hex(value: Any, what: str = "value", resolve: Callable[[Any], Any] | None = None) -> str:
    """Serialize *value* deterministically, hex-encoded, or raise :class:`SerializationError`.

    Args:
        resolve: Called with each reference to another call's output in *value*; it
            returns the reference's persistent id (see :class:`upstream.Resolver`).
    """
    try:
        data = _dumps(value, resolve)
    except (CallError, StoreError):
        raise
    except RecursionError:
        raise SerializationError(f"cannot serialize {what}: it is nested too deeply") from None
    except Exception as exc:
        raise SerializationError(f"cannot serialize {what} {_describe(value)}: {exc}") from exc
    try:
        again = _dumps(_loads(data), upstream.persistent_id(None))
    except Exception as exc:
        raise SerializationError(f"{what} {_describe(value)} does not round-trip: {exc}") from exc
    if again != data:
        raise SerializationError(
            f"{what} {_describe(value)} cannot be serialized deterministically "
            "(its pickle changes when reloaded); pass plain data or a file in the skeleton instead"
        )
    return data.hex()


def portable(func: Any) -> Any:
    """*func* as it is pickled into a call record: a function of ``__main__`` (a script's,
    a notebook's) is pickled by value, so it is made independent of where it was defined:
    its code (and that of the functions it defines) gets a fixed file name and first line,
    so the file name, the line numbers and the blank lines above it do not change its
    fingerprint; and it carries the globals it uses (values by dill, modules by name,
    other ``__main__`` functions made portable too) instead of naming ``__main__``'s
    namespace, which a worker that never saw the notebook does not have. Anything else
    is returned as it is."""
    return _portable(func, {})


def _portable(func: Any, made: dict[int, Any]) -> Any:
    import types

    if not isinstance(func, types.FunctionType) or func.__module__ != "__main__":
        return func
    if id(func) in made:
        return made[id(func)]
    code = _placed(func.__code__)
    names = sorted(_global_names(code) & func.__globals__.keys())
    import builtins

    # as dill's loader leaves it (it adds __builtins__), so that reloading repickles the same
    scope: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins.__dict__}
    new = types.FunctionType(code, scope, func.__name__, func.__defaults__, func.__closure__)
    made[id(func)] = new
    for attribute in ("__qualname__", "__doc__", "__kwdefaults__", "__annotations__"):
        setattr(new, attribute, getattr(func, attribute))
    new.__dict__.update(func.__dict__)
    for name in names:
        scope[name] = _portable(func.__globals__[name], made)
    return new


def _placed(code: Any) -> Any:
    """*code* and the code objects inside it with a fixed file name and first line."""
    import types

    consts = tuple(_placed(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename="<scalems>", co_firstlineno=1, co_consts=consts)


def _global_names(code: Any) -> set[str]:
    """The global names *code* (and code inside it) may read."""
    import types

    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _global_names(const)
    return found


def from_hex(text: str, deliver: Callable[[str, str | None], Any] | None = None) -> Any:
    """Inverse of :func:`to_hex`; references to other calls' outputs become what *deliver*
    gives for ``(call, path)``, or :class:`upstream.Output` placeholders without it."""
    return _loads(bytes.fromhex(text), deliver)


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def func_code(func: Callable[..., Any]) -> str:
    """Return a fingerprint of a callable's code, so that editing its body changes it.

    What is hashed: the dedented source text of the function (of ``partial.func``
    for a partial, of the class for a callable instance). Where no source exists
    (builtins, C functions) the qualified name stands in. Deliberately not
    hashed: the functions it calls, and the module around it, so that an
    unrelated edit elsewhere in a module does not invalidate every call.
    """
    from blake3 import blake3

    target: Any = func
    while isinstance(target, functools.partial):
        target = target.func
    target = inspect.unwrap(target)
    plain = inspect.isfunction(target) or inspect.ismethod(target) or inspect.isclass(target)
    if not plain and not inspect.isbuiltin(target) and callable(target):
        target = type(target)  # a callable instance: its class holds the code
    try:
        text = "source:" + textwrap.dedent(inspect.getsource(target))
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        if code is not None:
            text = "code:" + code.co_code.hex() + repr(code.co_consts) + repr(code.co_names)
        else:
            module = getattr(target, "__module__", None) or ""
            text = "name:" + module + ":" + getattr(target, "__qualname__", repr(target))
    return blake3(text.encode()).hexdigest()
