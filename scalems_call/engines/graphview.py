"""Pictures of a graph of calls: an indented tree, JSON, Graphviz dot, Mermaid, SVG, HTML.

The lineage graph has calls (coloured by state; many calls of one shape drawn
as one group), the input trees they start from (skeletons) and the output
directories they made, named by their files (:mod:`.picture` lays them out).
Edges run from what is used to what uses it: a skeleton to its call, an
upstream call to the calls taking its outputs (labelled with the path, or
``value``), a call to its outputs. SVG is drawn by Graphviz's ``dot``; HTML is
one self-contained file: the picture (when ``dot`` is installed), a legend,
and every call with its arguments, state, why, times and outputs, a group's
calls folded until its box is clicked, and a timeline of the calls' latest runs
(a bar each on one time axis, with wall time, CPU time and peak memory).
"""

from __future__ import annotations

import collections
import html
import re
import shutil
import subprocess
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from scalems_call.engines import picture
from scalems_call.engines.graph import Plan, Standing
from scalems_call.engines.picture import COLOURS, MEANINGS
from scalems_call.identity.describe import epoch, function_name, short_arguments
from scalems_store.core import layout
from scalems_store.core.humane import duration as humane_duration
from scalems_store.core.humane import size

if TYPE_CHECKING:
    from scalems_store import FileStore


def duration(standing: Standing) -> float | None:
    """Wall seconds of the run behind a call's newest result, if it has one."""
    value = ((standing.record or {}).get("provenance") or {}).get("duration")
    return float(value) if isinstance(value, int | float) else None


def calls(
    plan: Plan, standing: dict[str, Standing], *, arguments: bool = True
) -> list[dict[str, Any]]:
    """One JSON-ready record per call of the graph, upstream first (*arguments*: with
    each call's arguments on one line, the dearest field to read)."""
    found = []
    for fp in plan.order:
        node, state = plan.nodes[fp], standing[fp]
        record = state.record or {}
        found.append(
            {
                "call": fp,
                "function": function_name(node.record),
                "arguments": short_arguments(node.record, 200) if arguments else None,
                "state": state.state,
                "reason": state.reason,
                "result": state.result,
                "because": state.because,
                "note": state.note,
                "duration": duration(state),
                "start": (record.get("provenance") or {}).get("start"),
                "end": (record.get("provenance") or {}).get("end"),
                "skeleton": _fp(node.record.get("skeleton")),
                "directory": _fp(record.get("directory")),
                "stdout": _fp(record.get("stdout")),
                "stderr": _fp(record.get("stderr")),
                "upstream": node.upstream,
                "inputs": node.record.get("inputs", []),
            }
        )
    return found


def _fp(uri: Any) -> str | None:
    return layout.normalize(uri) if isinstance(uri, str) and uri.startswith("blake3:") else None


def tree_lines(plan: Plan, described: list[dict[str, Any]]) -> list[str]:
    """The graph below each root as an indented tree, one line a call: short fingerprint,
    ``module:function(short arguments)`` (the arguments when *described* has them), state,
    duration. A call met again says so instead of repeating what is below it."""
    lines: list[str] = []
    shown: set[str] = set()
    by_call = {c["call"]: c for c in described}
    for root in plan.roots:
        stack: list[tuple[str, str, str]] = [(root, "", "")]
        while stack:
            fp, lead, below = stack.pop()
            info = by_call[fp]
            took = "" if info["duration"] is None else f"{info['duration']:.1f} s"
            again = fp in shown
            called = info["function"]
            if info.get("arguments") is not None:
                args = info["arguments"]
                called += f"({args if len(args) <= 40 else args[:39] + '…'})"
            state = info["because"] if info["state"] in ("untrusted", "unsigned") else info["state"]
            text = f"{fp[:12]}  {called:<32} {state:<16} {took}"
            note = f"  ({info['note']})" if info.get("note") and not again else ""
            lines.append(lead + text.rstrip() + ("  (see above)" if again else "") + note)
            if again:
                continue
            shown.add(fp)
            ups = plan.nodes[fp].upstream
            for i, up in reversed(list(enumerate(ups))):
                last = i == len(ups) - 1
                stack.append(
                    (up, below + ("└─ " if last else "├─ "), below + ("   " if last else "│  "))
                )
    return lines


def _edges(plan: Plan, standing: dict[str, Standing]) -> list[tuple[str, str, str]]:
    """``(from, to, label)`` between calls and trees: ``call_<fp>``, ``tree_<fp>``."""
    edges = []
    for fp in plan.order:
        node, record = plan.nodes[fp], standing[fp].record or {}
        skeleton = _fp(node.record.get("skeleton"))
        if skeleton:
            edges.append((f"tree_{skeleton}", f"call_{fp}", "skeleton"))
        for item in node.record.get("inputs", []):
            up = layout.normalize(item["call"])
            edges.append((f"call_{up}", f"call_{fp}", picture.input_label(item)))
        directory = _fp(record.get("directory"))
        if directory:
            edges.append((f"call_{fp}", f"tree_{directory}", "output"))
    return edges


def _drawing(
    plan: Plan, standing: dict[str, Standing], store: FileStore | None
) -> tuple[list[dict[str, Any]], picture.Picture]:
    described = calls(plan, standing)
    return described, picture.picture(plan, described, store)


def dot(plan: Plan, standing: dict[str, Standing], store: FileStore | None = None) -> str:
    """The lineage graph in Graphviz's dot language, with a legend (*store*: where to read
    the names of the files in input and output trees)."""
    return picture.dot(_drawing(plan, standing, store)[1])


def mermaid(plan: Plan, standing: dict[str, Standing], store: FileStore | None = None) -> str:
    """The lineage graph as a Mermaid flowchart."""
    return picture.mermaid(_drawing(plan, standing, store)[1])


def text(plan: Plan, standing: dict[str, Standing], store: FileStore | None = None) -> str:
    """The lineage graph as lines ``from -> to (label)``, short fingerprints, every call."""

    def short(node: str) -> str:
        kind, _, fp = node.partition("_")
        return f"{kind} {fp[:12]}"

    return "".join(
        f"{short(s)} -> {short(t)} ({label})\n" for s, t, label in _edges(plan, standing)
    )


class NoGraphviz(RuntimeError):
    """Graphviz's ``dot`` is not installed."""


def svg(plan: Plan, standing: dict[str, Standing], store: FileStore | None = None) -> str:
    """The lineage graph drawn by Graphviz's ``dot``.

    Raises:
        NoGraphviz: ``dot`` is not on PATH (the message says how to install it).
    """
    return _render(dot(plan, standing, store))


def _render(source: str) -> str:
    found = shutil.which("dot")
    if found is None:
        raise NoGraphviz(
            "svg needs Graphviz's 'dot' (apt install graphviz, dnf install graphviz, "
            "brew install graphviz, conda install graphviz); --format dot gives its input"
        )
    drawn = subprocess.run(
        [found, "-Tsvg"], input=source, capture_output=True, text=True, check=False
    )
    if drawn.returncode != 0:
        raise NoGraphviz(f"dot failed: {drawn.stderr.strip()[:300]}")
    return drawn.stdout[drawn.stdout.find("<svg") :]


ORDER = (
    "failed",
    "upstream-failed",
    "untrusted",
    "unsigned",
    "stale",
    "running",
    "missing",
    "cached",
)
"""The order of a group's calls in the page: what needs a look first."""


def page(plan: Plan, standing: dict[str, Standing], store: FileStore | None = None) -> str:
    """One self-contained HTML page (no network): a summary, a legend, the picture (when
    Graphviz's ``dot`` is installed), then the calls: those drawn alone in one table,
    each group folded under its own heading (click its box, or the heading, to unfold)."""
    described, drawing = _drawing(plan, standing, store)
    try:
        shown = _render(picture.dot(drawing, legend=False))
    except NoGraphviz as exc:
        shown = f'<p class="note">No picture: {html.escape(str(exc))}. The calls are below.</p>'
    by_call = {info["call"]: info for info in described}
    names = drawing.names
    single, groups = [], []
    for box in drawing.boxes.values():
        if box.kind == "call":
            single.append(_row(by_call[box.members[0]], names))
        elif box.kind == "group":
            groups.append(_group(box, by_call, names))
    states = picture.counts_text(collections.Counter(i["state"] for i in described))
    sections = []
    if single:
        sections.append(f"<h2>Calls</h2>\n{_table(single)}")
    if groups:
        sections.append("<h2>Groups of calls</h2>\n" + "\n".join(groups))
    return _PAGE.format(
        title=html.escape(f"scalems-call graph {plan.roots[0][:12]}"),
        summary=html.escape(f"{len(described):,} calls: {states}"),
        styles="\n".join(f".state.{s} {{ background: {c}; }}" for s, c in COLOURS.items()),
        legend="\n".join(
            f'<li><span class="state {s}">{s}</span> {html.escape(MEANINGS[s])}</li>'
            for s in COLOURS
        ),
        svg=shown,
        sections="\n".join(sections),
        timeline=timeline_section(plan, standing, COLOURS),
    )


def _group(box: picture.Box, by_call: dict[str, dict[str, Any]], names: picture.Names) -> str:
    members = sorted(box.members, key=lambda fp: _needs_a_look(by_call[fp]))
    rows = [_row(by_call[fp], names) for fp in members]
    head = html.escape(f"{box.lines[0]}: {box.lines[1]}")
    why = "".join(f' <span class="why">{html.escape(line)}</span>' for line in box.lines[2:])
    return (
        f'<details id="list_{box.id}" class="group"><summary>{head}{why}</summary>\n'
        f"{_table(rows)}\n</details>"
    )


def _needs_a_look(info: dict[str, Any]) -> tuple[int, list[Any]]:
    """Failed calls first; then by arguments, numbers as numbers (``seed=2`` before
    ``seed=10``)."""
    parts = re.split(r"(\d+)", picture.call_text(info, 200))
    return ORDER.index(info["state"]), [int(p) if p.isdigit() else p for p in parts]


def _table(rows: list[str]) -> str:
    return (
        "<table><thead><tr><th>fingerprint</th><th>call</th><th>state</th><th>why</th>"
        "<th>started</th><th>took</th><th>outputs</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>"
    )


def _row(info: dict[str, Any], names: picture.Names) -> str:
    took = "" if info["duration"] is None else f"{info['duration']:.2f} s"
    outputs = ""
    if info["directory"]:
        found = names.top(info["directory"])
        outputs = info["directory"][:12] if found is None else ", ".join(found) or "(empty)"
    start = html.escape(info["start"] or "")
    cells = [
        f'<code title="{info["call"]}">{info["call"][:12]}</code>',
        f'<code title="{html.escape(info["function"])}">'
        f"{html.escape(picture.call_text(info, 200))}</code>",
        f'<span class="state {info["state"]}">{info["state"]}</span>',
        html.escape(info["reason"] or ""),
        f'<span title="{start}">{start[11:19]}</span>',  # the time of day; the date on hover
        took,
        html.escape(outputs),
    ]
    return (
        f'<tr id="row_{info["call"]}" class="call">'
        + "".join(f"<td>{cell}</td>" for cell in cells)
        + "</tr>"
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; font-size: 0.9em; text-align: left; }}
td:nth-child(5), td:nth-child(6) {{ white-space: nowrap; }}
tr.chosen {{ outline: 2px solid #333; }}
.state {{ padding: 0 0.3em; border-radius: 3px; }}
.legend {{ list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0.3em 1.5em; }}
#picture svg {{ max-width: 100%; height: auto; }}
#picture g.node {{ cursor: pointer; }}
details.group {{ margin: 0.3em 0; }}
details.group summary {{ cursor: pointer; font-weight: bold; }}
.why {{ font-weight: normal; color: #733; margin-left: 1em; }}
.note {{ color: #733; }}
{styles}
</style></head>
<body>
<h1>{title}</h1>
<p id="summary">{summary}</p>
<ul class="legend">
{legend}
<li>a box with a double border: a group of calls of one shape (click it)</li>
<li>a folder: input or output files</li>
</ul>
<div id="picture">{svg}</div>
{sections}
{timeline}
<script>
(function () {{
  var rows = document.querySelectorAll("tr.call");
  document.getElementById("summary").dataset.calls = String(rows.length);
  function show(id) {{
    document.querySelectorAll("tr.chosen").forEach(function (r) {{
      r.classList.remove("chosen");
    }});
    var target = document.getElementById("list_" + id);
    if (target) {{ target.open = true; target.scrollIntoView(); return; }}
    var row = document.getElementById("row_" + id.slice(5));
    if (row) {{ row.classList.add("chosen"); row.scrollIntoView(); }}
  }}
  document.querySelectorAll("#picture g.node").forEach(function (node) {{
    var title = node.querySelector("title");
    if (!title) {{ return; }}
    var id = title.textContent;
    if (id.indexOf("call_") !== 0 && id.indexOf("group_") !== 0) {{ return; }}
    node.addEventListener("click", function () {{ show(id); }});
  }});
  window.addEventListener("load", function () {{
    document.body.dataset.loadedMs = String(Math.round(performance.now()));
  }});
}})();
</script>
</body></html>
"""


# -- the timeline of the runs on the HTML page (Nextflow's timeline as the model): one row
# a call with a result, in the order the runs started, a bar from its start to its end on
# one time axis, coloured by state, with its wall time, CPU time and peak memory. Plain
# HTML and CSS: no script, readable at thousands of rows.

_TIMELINE_STYLE = """
.timeline {{ margin-top: 1em; font-size: 0.85em; }}
.timeline .row {{ display: flex; align-items: center; height: 1.3em;
  content-visibility: auto; contain-intrinsic-size: auto 1.3em; }}
.timeline .name {{ width: 28em; overflow: hidden; white-space: nowrap;
  text-overflow: ellipsis; }}
.timeline .axis {{ position: relative; flex: 1; height: 1em; border-left: 1px solid #ccc; }}
.timeline .bar {{ position: absolute; top: 0; height: 1em; min-width: 2px; }}
.timeline .cost {{ width: 16em; white-space: nowrap; padding-left: 0.6em; color: #444; }}
{colours}
"""


def timeline_runs(plan: Plan, standing: Mapping[str, Standing]) -> list[dict[str, Any]]:
    """Each call of *plan* with a result whose start and end are recorded, by start: its
    ``call``, ``state``, ``label``, ``start`` and ``end`` (seconds since the epoch),
    ``cpu_seconds`` and ``max_rss_bytes`` (None where not recorded)."""
    found = []
    for fp in plan.order:
        state = standing[fp]
        prov = (state.record or {}).get("provenance") or {}
        start, end = epoch(prov.get("start")), epoch(prov.get("end"))
        if start is None or end is None:
            continue
        record = plan.nodes[fp].record
        found.append(
            {
                "call": fp,
                "state": state.state,
                "label": f"{function_name(record)}({short_arguments(record, 60)})",
                "start": start,
                "end": max(end, start),
                "cpu_seconds": prov.get("cpu_seconds"),
                "max_rss_bytes": prov.get("max_rss_bytes"),
            }
        )
    found.sort(key=lambda run: (run["start"], run["call"]))
    return found


def timeline_section(
    plan: Plan, standing: Mapping[str, Standing], colours: Mapping[str, str]
) -> str:
    """The timeline as a ``<section>`` of HTML with its own style (empty when no call of
    the graph has run)."""
    found = timeline_runs(plan, standing)
    if not found:
        return ""
    first = found[0]["start"]
    span = max(max(run["end"] for run in found) - first, 1e-3)
    rows = [_timeline_row(run, first, span) for run in found]
    began = datetime.fromtimestamp(first).astimezone().isoformat(timespec="seconds")
    shades = "\n".join(
        f".timeline .bar.{state} {{ background: {colour}; }}" for state, colour in colours.items()
    )
    return (
        f"<style>{_TIMELINE_STYLE.format(colours=shades)}</style>\n"
        f'<section class="timeline" data-runs="{len(found)}"><h2>Timeline</h2>\n'
        f"<p>{len(found)} runs from {html.escape(began)} over {humane_duration(span)} "
        "(each call's latest run: wall time, CPU time, peak memory)</p>\n"
        + "\n".join(rows)
        + "\n</section>"
    )


def _timeline_row(run: dict[str, Any], first: float, span: float) -> str:
    left = 100 * (run["start"] - first) / span
    width = 100 * (run["end"] - run["start"]) / span
    took = humane_duration(run["end"] - run["start"])
    cost = [took]
    if isinstance(run["cpu_seconds"], int | float):
        cost.append(f"cpu {humane_duration(run['cpu_seconds'])}")
    if isinstance(run["max_rss_bytes"], int):
        cost.append(size(run["max_rss_bytes"]))
    label = html.escape(run["label"])
    return (
        f'<div class="row" id="run_{run["call"]}"><div class="name" title="{label}">'
        f"<code>{run['call'][:12]}</code> {label}</div>"
        f'<div class="axis"><div class="bar {html.escape(run["state"])}" '
        f'style="left: {left:.3f}%; width: {width:.3f}%"></div></div>'
        f'<div class="cost">{html.escape(", ".join(cost))}</div></div>'
    )
