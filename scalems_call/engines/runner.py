"""Pack calls into a store, run them by fingerprint, and read back their results."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from typing import Any

from scalems_call.engines.results import to_call_result, to_result
from scalems_call.execution import cache
from scalems_call.execution.execute import Execution
from scalems_call.identity.compat import CallResult, build_call
from scalems_call.identity.errors import InvalidCall
from scalems_call.identity.upstream import WHOLE, Output, Resolver, clean_path
from scalems_store import FileStore
from scalems_store.core import layout
from scalems_store.core.errors import StoreError
from scalems_store.core.layout import canonical

KNOWN_REQUIREMENTS = ("interpreter", "nodes", "ranks")
INTERPRETERS = ("forked", "fresh")
"""``interpreter``: forked from a warm fork server (the default where possible), or a
fresh Python for the call (see :mod:`scalems_call.execution.forkserver`)."""
Skeleton = str | os.PathLike[str] | Mapping[str, Any] | None


def pack(
    func: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    store: FileStore,
    skeleton: Skeleton = None,
    environment: Mapping[str, str] | None = None,
    requirements: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
) -> str:
    """Store the call ``func(*args, **kwargs)`` as a call record; return its fingerprint.

    Args:
        func: An importable callable (serialized by reference with dill).
        args, kwargs: Arguments; they must serialize deterministically and fit the
            function's signature. ``output(call)`` / ``output(call, "path")`` anywhere
            in them stands for another call's return value / output file;
            ``input_file(path)`` for a file passed by content (the function gets
            the path of a copy in its work directory).
        store: The store to write to.
        skeleton: The initial contents of the call's work directory: a directory
            (added as a tree), a tree fingerprint or label, or a mapping of
            destinations in the work directory to ``output(...)`` references, with
            ``"."`` for a base tree: ``{".": "md-input/", "start.gro": output(eq, "out.gro")}``.
        environment: Environment variable overrides for the call.
        requirements: Run-time requirements: ``ranks`` (MPI ranks), ``nodes``,
            ``interpreter`` (``"fresh"`` for a new Python instead of a forked one).
        outputs: Result fields to record (default: all).

    Raises:
        SerializationError: the function or an argument cannot be serialized deterministically.
        InvalidCall: arguments that do not fit the signature; a malformed skeleton,
            environment, requirement or output; a reference to something not a call.
    """
    check_call(func, args, kwargs, requirements)
    shape = Shape(skeleton, environment, requirements, outputs)
    return store.add_bytes(call_record(func, args, kwargs, store, shape), kind="call")


@dataclasses.dataclass(frozen=True)
class Shape:
    """What a call record holds beside its function and arguments, as :func:`pack` takes
    it: the skeleton, environment overrides, requirements and outputs to record."""

    skeleton: Skeleton = None
    environment: Mapping[str, str] | None = None
    requirements: Mapping[str, Any] | None = None
    outputs: Sequence[str] | None = None


def call_record(
    func: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    store: FileStore,
    shape: Shape | None = None,
) -> bytes:
    """The bytes of the call record :func:`pack` stores (its references resolved against
    *store*; a skeleton directory is added as a tree), without storing it. The
    signature is not checked here (see :func:`check_call`).

    Raises:
        SerializationError, InvalidCall: as :func:`pack`.
    """
    shape = shape or Shape()
    resolver = Resolver(store)
    tree = _skeleton(store, shape.skeleton, resolver)
    record: dict[str, Any] = dict(
        build_call(
            func,
            args=args,
            kwargs=kwargs,
            requirements=shape.requirements,
            outputs=shape.outputs,
            skeleton=None if tree is None else layout.to_uri(tree),
            environment=shape.environment,
            resolve=resolver.argument,
        )
    )
    if resolver.inputs:
        record["inputs"] = resolver.record()
    if resolver.files:
        record["files"] = resolver.record_files()
    record.update(code_fields(store, record))
    return canonical(record)


def code_fields(store: FileStore, record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that make a call record carry its code (see
    :mod:`scalems_call.execution.code`): none when the call needs no code of the user's
    and no installed distribution (a standard library function keeps the fingerprint it
    had before records carried code)."""
    from scalems_call.execution.code import VERSION, store_code
    from scalems_call.identity.closure import closure, pickled_modules

    roots: set[str] = set()
    for hexed in [record["func"], *record["args"], *record["kwargs"].values()]:
        roots |= pickled_modules(bytes.fromhex(hexed))
    found = closure(sorted(roots))
    if not found.files and not found.dists:
        return {}
    before = _stored_code.get((store.root, id(found)))
    if before is not None and before[0] is found:  # the same closure, unchanged: stored
        code = before[1]
    else:
        code = store_code(store, found.files, found.stats)
        _stored_code[(store.root, id(found))] = (found, code)
    return {"code": dict(code), "dists": dict(found.dists), "version": VERSION}


_stored_code: dict[tuple[str, int], tuple[Any, dict[str, str]]] = {}
"""The code map of a closure stored in a store by this process (by the closure object,
which :func:`scalems_call.identity.closure.closure` gives again while no file changed)."""


def check_call(
    func: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    requirements: Mapping[str, Any] | None,
) -> None:
    """Refuse now what would fail later: arguments that do not fit the function's
    signature, requirements nobody knows.

    Raises:
        InvalidCall: they do not fit.
    """
    _check_signature(func, args, kwargs or {})
    _check_requirements(requirements or {})


def _check_signature(
    func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    """Refuse arguments that do not fit *func*'s signature now, not after a queue wait."""
    import inspect

    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # a builtin without a signature: the call itself will tell
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        name = getattr(func, "__qualname__", repr(func))
        plain = signature.replace(
            parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
            return_annotation=signature.empty,
        )
        raise InvalidCall(f"arguments do not fit {name}{plain}: {exc}") from None


def _check_requirements(requirements: Mapping[str, Any]) -> None:
    unknown = sorted(set(requirements) - set(KNOWN_REQUIREMENTS))
    if unknown:
        raise InvalidCall(
            f"unknown requirement {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(KNOWN_REQUIREMENTS)}"
        )
    from scalems_call.execution.launch import mpi_shape
    from scalems_call.identity.errors import LaunchError

    try:
        mpi_shape(requirements)
    except LaunchError as exc:
        raise InvalidCall(str(exc)) from None
    interpreter = requirements.get("interpreter", INTERPRETERS[0])
    if interpreter not in INTERPRETERS:
        raise InvalidCall(
            f"requirement interpreter={interpreter!r}: "
            f"expected {' or '.join(map(repr, INTERPRETERS))}"
        )


def _skeleton(store: FileStore, skeleton: Skeleton, resolver: Resolver) -> str | None:
    """The skeleton's base tree (added if a directory); its other entries become inputs."""
    if isinstance(skeleton, Mapping):
        base = None
        for dest, value in skeleton.items():
            if isinstance(value, Output) or hasattr(value, "__scalems_output__"):
                ref = value if isinstance(value, Output) else value.__scalems_output__()
                resolver.mount(str(dest), ref)
            elif clean_path(str(dest)) == WHOLE:
                base = value
            else:
                raise InvalidCall(
                    f"skeleton entry {dest!r} must be output(...) (a directory or tree goes "
                    "under '.')"
                )
        return _tree(store, base)
    return _tree(store, skeleton)


def _tree(store: FileStore, skeleton: str | os.PathLike[str] | None) -> str | None:
    if skeleton is None:
        return None
    path = os.fspath(skeleton)
    if os.path.isdir(path):
        return store.add_tree(path)
    if isinstance(skeleton, os.PathLike) or os.path.exists(path) or os.sep in path:
        what = "is not a directory" if os.path.exists(path) else "does not exist"
        raise InvalidCall(f"skeleton {path!r} {what}")
    try:
        fp = store.resolve(path)
    except StoreError as exc:
        raise InvalidCall(
            f"skeleton {path!r}: no such directory, and no tree by that name ({exc})"
        ) from None
    if store.kind(fp) != "tree":
        raise InvalidCall(f"skeleton {fp} is a {store.kind(fp)}, not a tree")
    return fp


def run(
    fingerprint: str,
    *,
    store: FileStore,
    force: bool = False,
    timeout: float | None = None,
    jobs: int | None = None,
) -> CallResult:
    """Run a packed call by fingerprint, prefix or label, and first whatever it takes from
    that is missing (up to *jobs* independent calls at once); or serve its cached result.

    A result is served from the store when the call's latest run succeeded, what
    it took from other calls is what they deliver now, and every object it
    references is present; otherwise the call runs in a child process (see
    :mod:`scalems_call.execution.execute`). *force* runs this call even so (not what it
    takes from, unless missing). *jobs* (default: :func:`.schedule.default_jobs`) above 1 runs the
    calls on a local process pool of that many workers; 1 runs them here, one after
    the other.

    Raises:
        InvalidCall: the object is not a well-formed call record.
        LaunchError: the call cannot be started here.
        BadSetting: the default number of jobs is set to something else than a number.
    """
    from scalems_call.engines.schedule import (
        InlineExecutor,
        default_jobs,
        here,
        run_graph,
        stop_file,
    )

    call_fp = store.resolve(fingerprint)  # not a call: planning says so
    if not force and (found := cache.hit(store, call_fp)) is not None:
        return to_call_result(store, *found, cached=True)  # the graph below is current too
    jobs = default_jobs(store) if jobs is None else jobs
    if jobs > 1:
        from scalems_call.engines.executors import default_executor, pool_submit

        stop = stop_file(store)
        outcomes = run_graph(
            store,
            [call_fp],
            engine=lambda: default_executor(jobs),
            submit=pool_submit(store, timeout, stop),
            force=force,
            stop=stop,
        )
    else:
        outcomes = run_graph(
            store, [call_fp], engine=InlineExecutor, submit=here(store, timeout), force=force
        )
    outcome = outcomes[call_fp]
    if outcome.error is not None:
        raise outcome.error  # it could not be run here (no MPI launcher, ...)
    return to_result(store, outcome)


def submit(
    func: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    store: FileStore,
    force: bool = False,
    timeout: float | None = None,
    executor: Executor | None = None,
    **options: Any,
) -> Any:
    """Pack then run: ``run(pack(func, args, kwargs, store=store, **options), store=store)``.

    Args:
        executor: Run it there (with whatever it takes from that is missing), and
            return at once a ``concurrent.futures.Future`` of its :class:`CallResult`.
            Without one, run it here and return the :class:`CallResult` (as
            SCALE-MS's ``submit`` did).
    """
    fingerprint = pack(func, args, kwargs, store=store, **options)
    if executor is None:
        return run(fingerprint, store=store, force=force, timeout=timeout)
    from scalems_call.engines.executors import run_many

    def run_there() -> CallResult:
        done = run_many([fingerprint], store=store, executor=executor, force=force, timeout=timeout)
        return done[fingerprint]

    future: Future[CallResult] = Future()
    thread = threading.Thread(target=_settle, args=(future, run_there), daemon=True)
    thread.start()
    return future


def _settle(future: Future[Any], work: Callable[[], Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(work())
    except BaseException as exc:
        future.set_exception(exc)


__all__ = ["Execution", "pack", "run", "submit", "to_call_result", "to_result"]
