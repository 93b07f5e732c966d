"""SCALE-MS's ``function_call_to_subprocess``: a call as a command line for a batch system.

The call record goes into the store; the task names it as an input file, to be
placed in the task's directory as ``<label>-input.json``, and runs
``python3 [-X...] [-m mpi4py] -m scalems_call <label>-input.json <label>-output.json``
there. ``deserialize_result`` reads what it writes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Callable, Mapping
from typing import Any

from scalems_call.identity.compat import serialize_call
from scalems_call.identity.errors import InvalidCall
from scalems_store.store.filestore import FileStore
from scalems_store.store.reference import FileReference


@dataclasses.dataclass(frozen=True)
class _Subprocess:
    """A call as an executable task (SCALE-MS's simplified Subprocess)."""

    uid: str
    input_filenames: Mapping[str, FileReference]
    """Files to place in the task's directory: their names there, and what they hold."""
    output_filenames: tuple[str, ...]
    """Files the task writes in its directory."""
    executable: str
    arguments: tuple[str, ...]
    requirements: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Run time requirements, for the execution back end (``ranks``: MPI ranks)."""


async def function_call_to_subprocess(
    func: Callable[..., Any],
    *,
    label: str,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    manager: Any,
    requirements: dict[str, Any] | None = None,
) -> _Subprocess:
    """Wrap ``func(*args, **kwargs)`` in a command line based on ``python -m scalems_call``.

    The call is serialized with :func:`serialize_call` and added to the manager's
    store (as a ``call`` record, so ``scalems-call show`` and ``exec`` know it too).

    Args:
        func: An importable callable.
        label: Name (prefix) of the task and its files.
        args, kwargs: Arguments of *func*.
        manager: Anything whose ``datastore()`` gives a :class:`FileStore` (a
            ``scalems_store.FileStoreManager``, a SCALE-MS workflow manager), or a
            :class:`FileStore`.
        requirements: Run time requirements, passed through; with ``ranks`` the
            command runs under ``-m mpi4py`` (the batch system launches the ranks).

    Returns:
        The task: ``input_filenames`` maps ``<label>-input.json`` to the record's
        :class:`FileReference`; ``output_filenames`` is ``(<label>-output.json,)``.

    Raises:
        SerializationError: the function or an argument cannot be serialized.
        InvalidCall: *manager* has no store.
    """
    requirements = dict(requirements or {})
    store = _store_of(manager)
    record = serialize_call(func, args=args, kwargs=kwargs, requirements=requirements)
    fingerprint = await asyncio.to_thread(store.add_bytes, record.encode(), kind="call")
    uid = str(label)
    input_filename, output_filename = f"{uid}-input.json", f"{uid}-output.json"
    arguments = list(interpreter_options())
    if "ranks" in requirements:
        arguments += ["-m", "mpi4py"]
    arguments += ["-m", "scalems_call", input_filename, output_filename]
    return _Subprocess(
        uid=uid,
        input_filenames={input_filename: store.file_reference(fingerprint)},
        output_filenames=(output_filename,),
        executable="python3",
        arguments=tuple(arguments),
        requirements=requirements,
    )


def interpreter_options() -> list[str]:
    """This interpreter's ``-X`` options, to give the task's interpreter the same."""
    return [
        f"-X{key}" if value is True else f"-X{key}={value}"
        for key, value in getattr(sys, "_xoptions", {}).items()
    ]


def _store_of(manager: Any) -> FileStore:
    store = manager if isinstance(manager, FileStore) else getattr(manager, "datastore", None)
    if callable(store):
        store = store()
    if not isinstance(store, FileStore):
        raise InvalidCall(
            f"manager {manager!r} has no open store: give a FileStore, or an object whose "
            "datastore() returns one (a scalems_store.FileStoreManager)"
        )
    return store
