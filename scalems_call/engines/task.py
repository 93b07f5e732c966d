"""``@task``: for notebooks, calls that pack when called and run when asked.

Like ``joblib.Memory.cache``, but content-addressed and runnable elsewhere::

    @task(store=".scalems")
    def simulate(seed): ...

    @task(store=".scalems")
    def analyze(trajectories): ...

    sims = [simulate(seed) for seed in range(10)]        # packed, not run
    ana = analyze([s.output("traj.csv") for s in sims])   # a handle is an argument too
    ana.result()                                          # runs what is missing, returns the value
    ana.fingerprint                                       # the call, for exec, status, graph

A call record names the task by reference (its module and name); in the
call's process, where :data:`IN_CHILD` is set, calling the task calls the
function itself.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from scalems_call.identity.errors import CallFailed
from scalems_call.identity.upstream import Output, output
from scalems_store import FileStore

IN_CHILD = False
"""Set in a call's own process: there a task is its function, not a packer."""


def task(
    func: Callable[..., Any] | None = None,
    *,
    store: FileStore | str | os.PathLike[str] | None = None,
    **options: Any,
) -> Any:
    """Make *func* a task: calling it packs the call into *store* and returns a
    :class:`Handle`; nothing runs until :meth:`Handle.result`.

    Args:
        store: A store, or its path (default: the store found as ``scalems-call``
            finds it).
        options: ``skeleton``, ``environment``, ``requirements``, ``outputs``, as
            :func:`scalems_call.pack` takes them.
    """

    def decorate(function: Callable[..., Any]) -> Task:
        return Task(function, store, options)

    return decorate if func is None else decorate(func)


class Task:
    """A function made a task (see :func:`task`)."""

    def __init__(
        self,
        func: Callable[..., Any],
        store: FileStore | str | os.PathLike[str] | None,
        options: dict[str, Any],
    ) -> None:
        functools.update_wrapper(self, func)
        self.__wrapped__ = func
        self._store = store
        self._options = options

    @functools.cached_property
    def store(self) -> FileStore:
        """The store the task packs into."""
        if isinstance(self._store, FileStore):
            return self._store
        return FileStore(self._store)

    def __call__(self, *args: Any, **kwargs: Any) -> Handle:
        from scalems_call.engines.runner import pack

        return Handle(
            pack(self.__wrapped__, args, kwargs, store=self.store, **self._options), self.store
        )

    def __repr__(self) -> str:
        return f"<task {self.__wrapped__.__module__}:{self.__wrapped__.__name__}>"


def by_name(module: str, qualname: str) -> Any:
    """What *module* holds at *qualname* (a task, or the function itself)."""
    import importlib

    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


class Handle:
    """A packed call: an argument of another task (its return value), or run by
    :meth:`result`."""

    def __init__(self, fingerprint: str, store: FileStore) -> None:
        self.fingerprint = fingerprint
        """The call's fingerprint."""
        self.store = store

    def output(self, path: str | None = None) -> Output:
        """Stand for the call's return value, or a file of its output directory (a path)."""
        return output(self.fingerprint, path)

    def __scalems_output__(self) -> Output:
        return Output(self.fingerprint)

    def result(self, *, force: bool = False, timeout: float | None = None) -> Any:
        """Run what is missing of the graph below this call, here; return its value.

        Raises:
            CallFailed: the call (or one it takes from) did not succeed.
        """
        from scalems_call.engines.runner import run

        done = run(self.fingerprint, store=self.store, force=force, timeout=timeout)
        if done.status != "success":
            raise CallFailed(f"call {self.fingerprint[:12]} {done.status}: {done.exception}")
        return done.return_value

    def __repr__(self) -> str:
        return f"<call {self.fingerprint[:12]}>"
