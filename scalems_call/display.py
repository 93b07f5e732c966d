"""Human and JSON views of calls and results for the command line."""

from __future__ import annotations

from typing import Any

from scalems_store import FileStore, layout

from . import cache


def _decoded_repr(hexed: str | None) -> str:
    if hexed is None:
        return "None"
    from .serialize import from_hex

    try:
        text = repr(from_hex(hexed))
    except Exception as exc:
        return f"<cannot load here: {exc!r}>"
    return text if len(text) <= 200 else text[:197] + "..."


def _size(store: FileStore, uri: str | None) -> str:
    if uri is None:
        return "not recorded"
    fp = layout.normalize(uri)
    try:
        return f"{store.info(fp).size} bytes  {uri}"
    except Exception:
        return f"missing  {uri}"


def lines(store: FileStore, result_fp: str, record: dict[str, Any]) -> list[str]:
    """Return a human-readable description of a result."""
    from .check import tree_summary

    prov = record.get("provenance", {})
    out = [
        f"call        {record.get('call')}",
        f"result      {result_fp}",
        f"status      {record.get('status')}",
        f"return      {_decoded_repr(record.get('return_value'))}",
        f"exception   {_decoded_repr(record.get('exception')) if record.get('exception') else '-'}",
        f"stdout      {_size(store, record.get('stdout'))}",
        f"stderr      {_size(store, record.get('stderr'))}",
    ]
    directory = record.get("directory")
    if directory:
        files = tree_summary(store, directory)
        out.append(f"directory   {layout.normalize(directory)}  ({len(files)} entries)")
        out.extend(
            f"              {path}{'/' if kind == 'directory' else ''}"
            for path, (kind, _, _) in files.items()
        )
    out += [
        f"host        {prov.get('host', '?')}",
        f"python      {prov.get('python', '?')}  dill {prov.get('dill', '?')}"
        f"  scalems {prov.get('scalems', '?')}",
        *(
            [f"packages    {', '.join(f'{n} {v}' for n, v in prov['packages'].items())}"]
            if prov.get("packages")
            else []
        ),
        f"started     {prov.get('start', '?')}",
        f"ended       {prov.get('end', '?')}",
        f"duration    {prov.get('duration', '?')} s",
    ]
    if prov.get("skipped"):
        out.append("not archived: " + "; ".join(prov["skipped"]))
    if record.get("traceback"):
        out += ["traceback:", *("  " + line for line in record["traceback"].rstrip().splitlines())]
    return out


def as_json(store: FileStore, result_fp: str, record: dict[str, Any]) -> dict[str, Any]:
    """Return the result record with its fingerprint and a readable return value and exception."""
    view = dict(record)
    view["fingerprint"] = result_fp
    view["return_value_repr"] = _decoded_repr(record.get("return_value"))
    if record.get("exception"):
        view["exception_repr"] = _decoded_repr(record["exception"])
    return view


def call_rows(store: FileStore) -> list[dict[str, Any]]:
    """Return every call with the status and end time of its latest result."""
    rows = []
    for info in store.list(kind="call"):
        row: dict[str, Any] = {
            "call": info.fingerprint,
            "status": "pending",
            "time": None,
            "result": None,
        }
        result_fp = cache.newest(store, info.fingerprint)
        if result_fp is not None:
            record = cache.load_result(store, result_fp)
            row.update(
                status=record.get("status"),
                result=result_fp,
                time=record.get("provenance", {}).get("end"),
            )
        rows.append(row)
    return rows
