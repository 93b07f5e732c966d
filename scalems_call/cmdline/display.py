"""Human and JSON views of calls and results for the command line.

Text is for reading (sizes in binary units, local times, short fingerprints);
JSON keeps exact bytes, seconds, ISO times and full fingerprints.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from scalems_call.execution import cache
from scalems_call.identity.describe import UNKNOWN, epoch, function_name, short_arguments
from scalems_call.identity.errors import CallError
from scalems_store import FileStore
from scalems_store.core import layout
from scalems_store.core.errors import StoreError
from scalems_store.core.humane import duration, size

RUNNING = "running"
PENDING = "pending"


def _decoded_repr(hexed: str | None, *, text_as_is: bool = False) -> str:
    """The value of a hex pickle, as repr shows it (*text_as_is*: a string as itself,
    for an exception, which the record keeps as the text of its repr)."""
    if hexed is None:
        return "None"
    from scalems_call.identity.serialize import from_hex

    try:
        value = from_hex(hexed)
    except Exception as exc:
        return f"<cannot load here: {exc!r}>"
    text = value if text_as_is and isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _exception(record: dict[str, Any]) -> str:
    hexed = record.get("exception")
    return _decoded_repr(hexed, text_as_is=True) if hexed else "-"


def _size(store: FileStore, uri: str | None) -> str:
    if uri is None:
        return "not recorded"
    fp = layout.normalize(uri)
    try:
        return f"{size(store.info(fp).size)}  {uri}"
    except StoreError:
        return f"missing  {uri}"


def _directory(store: FileStore, uri: str) -> list[str]:
    """The output directory's line and one line per member, with sizes."""
    from scalems_store.store.treeview import open_tree
    from scalems_store.tar.tarformat import DIR, FILE, SYMLINK

    fp = layout.normalize(uri)
    try:
        with open_tree(store, fp) as tree:
            members = tree.members()
    except StoreError as exc:
        return [f"directory   {fp}  ({exc})"]
    total = sum(m.size for m in members if m.type == FILE)
    out = [f"directory   {fp}  ({len(members)} entries, {size(total)})"]
    for m in members:
        if m.type == DIR:
            out.append(f"              {m.path}/")
        elif m.type == SYMLINK:
            out.append(f"              {m.path} -> {m.linkname}")
        else:
            out.append(f"              {m.path}  {size(m.size)}")
    return out


def _values(store: FileStore, result_fp: str, record: dict[str, Any]) -> tuple[str, str, str]:
    """Who signed the result, and its return value and exception as repr shows them:
    decoded only when a trusted key signed it (unpickling runs code)."""
    verdict = cache.verdict(store, result_fp, str(record.get("call")))
    if verdict.served:
        return verdict.describe(), _decoded_repr(record.get("return_value")), _exception(record)
    hidden = f"(return value not decoded: {verdict.state})"
    exception = f"(not decoded: {verdict.state})" if record.get("exception") else "-"
    return verdict.describe(), hidden, exception


def lines(store: FileStore, result_fp: str, record: dict[str, Any]) -> list[str]:
    """Return a human-readable description of a result (its return value and exception
    decoded only if a trusted key signed it)."""
    prov = record.get("provenance", {})
    trust, value, exception = _values(store, result_fp, record)
    out = [
        f"call        {record.get('call')}",
        f"result      {result_fp}",
        f"status      {record.get('status')}",
        f"trust       {trust}",
        f"return      {value}",
        f"exception   {exception}",
        f"stdout      {_size(store, record.get('stdout'))}",
        f"stderr      {_size(store, record.get('stderr'))}",
    ]
    if record.get("directory"):
        out += _directory(store, record["directory"])
    seconds = prov.get("duration")
    out += [
        f"host        {prov.get('host', '?')}",
        f"python      {prov.get('python', '?')}  dill {prov.get('dill', '?')}"
        f"  scalems {prov.get('scalems', '?')}",
        *(
            [f"packages    {', '.join(f'{n} {v}' for n, v in prov['packages'].items())}"]
            if prov.get("packages")
            else []
        ),
        *(
            [f"versions    differ: {'; '.join(_versions(prov['versions_differ']))}"]
            if isinstance(prov.get("versions_differ"), dict)
            else []
        ),
        f"started     {prov.get('start', '?')}",
        f"ended       {prov.get('end', '?')}",
        f"duration    {duration(seconds) if isinstance(seconds, int | float) else '?'}",
        f"cpu         {_cpu(prov.get('cpu_seconds'))}",
        f"memory      {_memory(prov.get('max_rss_bytes'))} (peak resident set)",
    ]
    skipped = prov.get("skipped") or []
    if skipped:
        out.append(f"not archived ({len(skipped)}, left out of the output directory):")
        out += [f"              {entry}" for entry in skipped]
    if record.get("traceback"):
        out += ["traceback:", *("  " + line for line in record["traceback"].rstrip().splitlines())]
    return out


def as_json(store: FileStore, result_fp: str, record: dict[str, Any]) -> dict[str, Any]:
    """Return the result record with its fingerprint, who signed it (``trust``,
    ``signed_by``) and, when a trusted key signed it, a readable return value and
    exception (else ``not_decoded`` says why they are not)."""
    view = dict(record)
    view["fingerprint"] = result_fp
    verdict = cache.verdict(store, result_fp, str(record.get("call")))
    view["trust"] = verdict.state
    view["signed_by"] = [f"ed25519:{key}" for key in verdict.keys]
    if not verdict.served:
        view["return_value_repr"] = None
        view["not_decoded"] = verdict.state
        return view
    view["return_value_repr"] = _decoded_repr(record.get("return_value"))
    if record.get("exception"):
        view["exception_repr"] = _exception(record)
    return view


def call_rows(store: FileStore, width: int = 60) -> list[dict[str, Any]]:
    """Every call as a line of the log, newest first: its status (``running`` while a live
    lease holds it, ``pending`` before any result), start, duration, ``module:function``
    and arguments (at most *width* characters), read without importing the function.

    Each row has ``call``, ``status``, ``start`` and ``end`` (ISO times or None),
    ``duration`` (seconds or None), ``function``, ``arguments``, ``result`` (a
    fingerprint or None), ``time`` (the end, as before) and ``when`` (seconds since
    the epoch that it is sorted by: its start, or when it was packed).
    """
    from scalems_store.store.lease import live

    running = live(store.root)
    rows = [
        _row(store, info.fingerprint, info.created, running, width) for info in store.list("call")
    ]
    rows.sort(key=lambda row: row["when"], reverse=True)
    return rows


def _row(
    store: FileStore, call_fp: str, packed: float, running: dict[str, Any], width: int
) -> dict[str, Any]:
    try:
        record = cache.load_call(store, call_fp)
        function, arguments = function_name(record), short_arguments(record, width)
    except (CallError, StoreError):
        function, arguments = UNKNOWN, ""
    row: dict[str, Any] = {
        "call": call_fp,
        "status": PENDING,
        "function": function,
        "arguments": arguments,
        "start": None,
        "end": None,
        "duration": None,
        "cpu_seconds": None,
        "max_rss_bytes": None,
        "result": None,
        "time": None,
        "when": packed,
    }
    result_fp = cache.newest(store, call_fp)
    status = None
    if result_fp is None:  # only results this store does not serve: say so
        result_fp = cache.newest(store, call_fp, trusted=False)
        status = None if result_fp is None else cache.verdict(store, result_fp, call_fp).state
    if result_fp is not None:
        result = cache.load_result(store, result_fp)
        prov = result.get("provenance", {})
        start = epoch(prov.get("start"))
        row.update(
            status=status or result.get("status"),
            result=result_fp,
            start=prov.get("start"),
            end=prov.get("end"),
            time=prov.get("end"),
            duration=prov.get("duration"),
            cpu_seconds=prov.get("cpu_seconds"),
            max_rss_bytes=prov.get("max_rss_bytes"),
            when=start if start is not None else packed,
        )
    holder = running.get(call_fp)
    if holder is not None:
        since = holder.get("since")
        since = float(since) if isinstance(since, int | float) else time.time()
        row.update(
            status=RUNNING,
            start=datetime.fromtimestamp(since).astimezone().isoformat(timespec="milliseconds"),
            end=None,
            duration=round(max(time.time() - since, 0.0), 3),
            cpu_seconds=None,
            max_rss_bytes=None,
            when=since,
        )
    return row


def log_line(row: dict[str, Any], short: bool = True) -> str:
    """One line of ``scalems-call ls``: the call's fingerprint (12 digits when *short*),
    status, start (local time), duration, CPU time, peak memory, ``module:function`` and
    the arguments."""
    when = epoch(row["start"])
    started = "-" if when is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
    took = duration(row["duration"]) if isinstance(row["duration"], int | float) else "-"
    cpu, memory = _cpu(row["cpu_seconds"], "-"), _memory(row["max_rss_bytes"], "-")
    name = row["call"][:SHORT] if short else row["call"]
    return (
        f"{name}  {row['status'] or '?':<8} {started:<19}  {took:>8}  {cpu:>8}  {memory:>9}  "
        f"{row['function']}({row['arguments']})"
    )


def log_header(short: bool = True) -> str:
    """The heading of :func:`log_line`'s columns."""
    call = "CALL".ljust(SHORT if short else layout.FINGERPRINT_LENGTH)
    return (
        f"{call}  {'STATUS':<8} {'STARTED':<19}  {'DURATION':>8}  {'CPU':>8}  {'MEMORY':>9}  "
        "FUNCTION(ARGUMENTS)"
    )


def _cpu(seconds: Any, unknown: str = "?") -> str:
    """CPU seconds (user and system) as a duration; *unknown* for a result that does not
    say (recorded before they were, or where the runner could not tell)."""
    return duration(seconds) if isinstance(seconds, int | float) else unknown


def _memory(size_bytes: Any, unknown: str = "?") -> str:
    """Peak resident memory in binary units; *unknown* where not recorded."""
    return size(size_bytes) if isinstance(size_bytes, int) else unknown


SHORT = 12
"""Digits of a fingerprint shown where it is shortened (more than enough to name it)."""


def _versions(differ: dict[str, Any]) -> list[str]:
    from scalems_call.execution.code import describe_versions

    return describe_versions(differ)
