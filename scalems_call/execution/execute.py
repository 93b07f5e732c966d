"""Run a call by fingerprint: the one execution path, wherever a call runs.

1. take the call's lease (a concurrent runner of the same call is waited for,
   and its result served);
2. make a fresh work directory, extract the skeleton, apply the environment;
3. run the call in a child Python process (cwd = work directory) with stdout
   and stderr redirected to files at the file-descriptor level, so output of
   subprocesses and C libraries is captured too; optional timeout;
4. archive the work directory as a tree, store stdout and stderr as blobs,
   store the result record, and publish ``refs/calls/<fp>`` last, so that a
   crash never leaves a ref to a missing result.

This module does not import dill: the child decodes the call.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import platform
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scalems_call.execution import cache, launch
from scalems_call.identity.errors import InvalidCall
from scalems_call.identity.records import OUTPUTS, parse_call
from scalems_call.identity.upstream import INPUTS_DIR
from scalems_store import FileStore
from scalems_store.core import layout
from scalems_store.core.errors import StoreError
from scalems_store.core.fsutil import remove_tree
from scalems_store.core.layout import canonical
from scalems_store.store.lease import Lease, lease_dir, scratch_for


@dataclass
class Execution:
    """What one run of a call produced."""

    call: str
    result: str
    record: dict[str, Any]
    cached: bool = False
    workdir: str | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the call returned normally."""
        return self.record.get("status") == "success"


def workdir_root(store: FileStore) -> str:
    """Where run directories are made: ``$SCALEMS_CALL_WORKDIR``, else the store's ``tmp/``."""
    return os.environ.get("SCALEMS_CALL_WORKDIR") or os.path.join(store.root, layout.TMP)


def lease_for(store: FileStore, call_fp: str, rundir: str | None = None) -> Lease:
    """The lease of a call (inside the store, so that every worker sees it), naming the
    run directory that is removed if the runner dies."""
    return Lease(os.path.join(lease_dir(store.root), call_fp), scratch=rundir)


def execute(
    store: FileStore,
    call_fp: str,
    *,
    force: bool = False,
    timeout: float | None = None,
    keep_workdir: bool = False,
    publish: bool = True,
    stop: str | None = None,
) -> Execution:
    """Serve the call from the cache or run it; return what was recorded.

    Args:
        store: The store holding the call.
        call_fp: Full fingerprint of the call record.
        force: Run even if a result is cached.
        timeout: Seconds after which the call is stopped and recorded as ``timeout``.
        keep_workdir: Leave the work directory in place (its path is returned).
        publish: Record the result under ``refs/calls`` (``rerun --check`` does not).
        stop: The stop file of the run this call belongs to (see
            :func:`scalems_call.execution.launch.stop_requested`): once it exists, the
            call is not started, or is stopped, and nothing is recorded.

    Raises:
        InvalidCall: the record is malformed.
        LaunchError: the call needs something this host does not have.
        Stopped: the run was stopped.
    """
    if not force and (served := _served(store, call_fp)):
        return served
    data = store.read_bytes(call_fp)
    record = parse_call(data)
    root = workdir_root(store)
    rundir = scratch_for(root, call_fp)
    lease = lease_for(store, call_fp, rundir)
    while not lease.try_acquire():
        lease.wait_free()  # another runner has it: its result is served once we hold the lease
    try:
        if not force and (served := _served(store, call_fp) or _reused(store, call_fp, record)):
            return served
        launch.refuse_if_stopped(stop)
        # a root for gc from now on (the live lease); published again if gc took it just now
        store.add_bytes(data, kind="call")
        return _run(store, call_fp, record, rundir, timeout, keep_workdir, publish, stop)
    finally:
        lease.release()


def _served(store: FileStore, call_fp: str) -> Execution | None:
    found = cache.hit(store, call_fp)
    return None if found is None else Execution(call_fp, found[0], found[1], cached=True)


def _reused(store: FileStore, call_fp: str, record: dict[str, Any]) -> Execution | None:
    """The call served from an earlier run with the same inputs' content (early cutoff)."""
    if not record.get("inputs"):
        return None
    from scalems_call.execution import cutoff

    found = cutoff.reuse(store, call_fp, record)
    return None if found is None else Execution(call_fp, found[0], found[1], cached=True)


def _run(
    store: FileStore,
    call_fp: str,
    record: dict[str, Any],
    rundir: str,
    timeout: float | None,
    keep_workdir: bool,
    publish: bool,
    stop: str | None = None,
) -> Execution:
    requirements = record.get("requirements") or {}
    command = launch.child_command(store.object_path(call_fp), "", requirements)
    placed, versions = _code(store, record)
    os.makedirs(os.path.dirname(rundir), exist_ok=True)
    os.mkdir(rundir, 0o700)  # its runner's alone (in a shared store, no other member's)
    work = os.path.join(rundir, "work")
    try:
        skeleton = record.get("skeleton")
        if skeleton:
            store.materialize(layout.normalize(skeleton), work)
        else:
            os.mkdir(work)
        environment = {**(record.get("environment") or {}), **placed}
        try:
            consumed = _deliver(store, record, rundir, work, environment)
        except InvalidCall as exc:  # an upstream output lacks what the call takes
            outcome, times = _unrunnable(exc, rundir), _no_time()
            consumed = []
        else:
            outcome, times = launch.spawn(
                command, rundir, work, environment, timeout, requirements, stop
            )
            outcome = launch.check_world_size(outcome, requirements)
        if versions:
            outcome.setdefault("provenance", {})["versions_differ"] = versions
        # what is stored for the result is pinned until the ref names it: a gc meanwhile
        # (at any grace) keeps it
        with store.writer.pinned():
            execution = _record(
                store, call_fp, record, rundir, work, outcome, times, publish, consumed
            )
    except BaseException:
        if not keep_workdir:
            _discard(rundir)
        raise
    if keep_workdir:
        execution.workdir = work
    else:
        _discard(rundir)
    return execution


def _code(store: FileStore, record: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Put the call's recorded code in place on this worker; return the child's environment
    for it and the distributions whose versions here differ from the record.

    Raises:
        LaunchError: versions differ and ``$SCALEMS_CALL_STRICT_VERSIONS`` is set
            (``exec --strict-versions``).
        ObjectNotFound: a module of the code is not in the store.
    """
    from scalems_call.execution import code

    found = code.recorded(record)
    placed = {} if found is None else {code.ENV: code.code_dir(store, found)}
    differ = code.versions_differ(record)
    if differ and os.environ.get(code.STRICT_ENV):
        from scalems_call.identity.errors import LaunchError

        raise LaunchError(
            "installed versions differ from the call's record: "
            + ", ".join(code.describe_versions(differ))
            + " (--strict-versions)"
        )
    return placed, differ


def _deliver(
    store: FileStore, record: dict[str, Any], rundir: str, work: str, environment: dict[str, str]
) -> list[dict[str, Any]]:
    """Put the call's inputs from upstream calls, and the files it takes by content, in
    place; return the ``consumed`` entries."""
    if not record.get("inputs") and not record.get("files"):
        return []
    from scalems_call.execution import inputs

    delivered, consumed = inputs.deliver(store, record, work)
    delivered["paths"].update(inputs.deliver_files(store, record, work))
    environment["SCALEMS_CALL_INPUTS"] = inputs.write_for_child(rundir, delivered)
    return consumed


def _unrunnable(exc: BaseException, rundir: str) -> dict[str, Any]:
    """The outcome of a call that could not be started; its stderr says why."""
    with open(os.path.join(rundir, "stdout"), "wb"):
        pass
    with open(os.path.join(rundir, "stderr"), "w", encoding="utf-8") as err:
        err.write(f"{type(exc).__name__}: {exc}\n")
    return {
        "status": "error",
        "exception": repr(exc),
        "traceback": f"{type(exc).__name__}: {exc}\n",
    }


def _no_time() -> dict[str, Any]:
    now = time.time()
    return {"start": now, "end": now, "exit_code": None}


def _discard(rundir: str) -> None:
    """Remove a run directory; what cannot be removed is left to gc."""
    with contextlib.suppress(OSError):
        remove_tree(rundir)


def _record(
    store: FileStore,
    call_fp: str,
    call: dict[str, Any],
    rundir: str,
    work: str,
    outcome: dict[str, Any],
    times: dict[str, Any],
    publish: bool,
    consumed: list[dict[str, Any]],
) -> Execution:
    """Store the outputs and the result record; publish the ref last."""
    outputs = set(call.get("outputs") or OUTPUTS)
    skipped: list[str] = []
    unnamed: list[str] = []

    def skip(path: str, why: str) -> None:
        shown = _printable(path)
        skipped.append(f"{shown}: {why}")
        if shown != path:
            unnamed.append(shown)

    def stored(name: str, add: Any) -> str | None:
        if name not in outputs:
            return None
        return layout.to_uri(str(add()))

    directory = stored(
        "directory",
        lambda: store.add_tree(
            work,
            skip=skip,
            exclude=[os.path.join(work, INPUTS_DIR)],
        ),
    )
    if unnamed and outcome["status"] == "success":
        outcome = {**outcome, **_unnamed(unnamed, rundir), "return_value": None}
    stdout = stored("stdout", lambda: store.add_file(os.path.join(rundir, "stdout")))
    stderr = stored("stderr", lambda: store.add_file(os.path.join(rundir, "stderr")))
    exception = outcome.get("exception")
    provenance = {
        **outcome.get("provenance", {}),
        **({"mpi_world_size": outcome["mpi_world_size"]} if "mpi_world_size" in outcome else {}),
        "runner_host": socket.gethostname(),
        "runner_python": platform.python_version(),
        "scalems": _version(),
        "start": _iso(times["start"]),
        "end": _iso(times["end"]),
        "duration": round(times["end"] - times["start"], 6),
        # what the call's process (and the processes it waited for) used; None where unknown
        "cpu_seconds": times.get("cpu_seconds"),
        "max_rss_bytes": times.get("max_rss_bytes"),
        "exit_code": times["exit_code"],
        "skipped": skipped,
    }
    record = {
        "call": call_fp,
        "status": outcome["status"],
        # the exception is the dill/pickle of its repr, as SCALE-MS's ResultPack has it
        "exception": None if exception is None else pickle.dumps(exception, protocol=4).hex(),
        "traceback": outcome.get("traceback"),
        "return_value": outcome.get("return_value") if "return_value" in outputs else None,
        "stdout": stdout,
        "stderr": stderr,
        "directory": directory,
        "encoder": "dill",
        "decoder": "dill",
        "provenance": provenance,
    }
    if consumed:
        record["consumed"] = consumed
    result_fp = store.add_bytes(canonical(record), kind="result")
    if publish:
        _sign(store, result_fp, call_fp)  # before the ref: a result is never served unsigned
        store.update_ref(
            cache.CALLS,
            call_fp,
            lambda known: _listed(store, call_fp, result_fp, record["status"], known),
        )
        if consumed and record["status"] == "success":
            from scalems_call.execution import cutoff

            cutoff.note(store, call, consumed, result_fp)
    return Execution(call_fp, result_fp, record, skipped=skipped)


def _printable(path: str) -> str:
    """*path* as text that encodes: the bytes of a name that is not UTF-8 (read as
    surrogates) written as ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _unnamed(names: list[str], rundir: str) -> dict[str, Any]:
    """The outcome of a call that left files whose names are not UTF-8: a tree stores
    only UTF-8 names, so its output directory is incomplete, and the call failed."""
    line = (
        f"OutputNameError: {len(names)} output file name(s) not UTF-8, left out of the "
        f"output directory: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}\n"
    )
    with open(os.path.join(rundir, "stderr"), "a", encoding="utf-8") as err:
        err.write(line)
    return {"status": "failed", "exception": line.strip(), "traceback": line}


def _listed(
    store: FileStore, call_fp: str, result_fp: str, status: str, known: list[str]
) -> list[str]:
    """The call's results, newest first, with *result_fp* added: first, unless the call
    could not even start (``error``: its code would not load, a launch failed) while a
    result that stands is recorded; that one stays the latest (an ``exec --force`` in a
    broken environment does not undo a good result)."""
    others = [fp for fp in known if fp != result_fp]
    if status == "error" and others and cache.current(store, call_fp) is not None:
        return [others[0], result_fp, *others[1:]]
    return [result_fp, *others]


def _sign(store: FileStore, result_fp: str, call_fp: str) -> None:
    """Sign the result with the user's key (made on first use). Without a key (a home that
    cannot be written) the result is recorded unsigned, which this store will not serve:
    say so, once a process."""
    from scalems_store.trust import policy

    try:
        policy.sign(store, result_fp, call_fp)
    except StoreError as exc:
        if not _UNSIGNED_WARNED:
            _UNSIGNED_WARNED.append(True)
            print(
                f"warning: result recorded unsigned (it will not be served): {exc}", file=sys.stderr
            )


_UNSIGNED_WARNED: list[bool] = []


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds")


def _version() -> str:
    from scalems_store import __version__

    return __version__
