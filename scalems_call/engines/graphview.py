"""Pictures of a graph of calls: an indented tree, JSON, Graphviz dot, Mermaid, SVG, HTML.

The lineage graph has three kinds of nodes: calls (coloured by state), the
input trees they start from (skeletons) and the output directories they made.
Edges run from what is used to what uses it: a skeleton to its call, an
upstream call to the calls taking its outputs (labelled with the path, or
``value``), a call to its output directory. SVG is drawn by Graphviz's
``dot``; HTML is one self-contained file: the SVG, and per call its
function, arguments, state, times and outputs.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from typing import Any

from scalems_call.engines.graph import Plan, Standing
from scalems_call.identity.describe import function_name, short_arguments
from scalems_store.core import layout

COLOURS = {
    "cached": "#b7e1a1",
    "stale": "#ffe08a",
    "missing": "#d9d9d9",
    "running": "#9fc5f8",
    "failed": "#f4a3a3",
    "upstream-failed": "#f9cb9c",
}
"""Fill colour of a call node, by state."""


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
    ``module:function``, state, duration. A call met again says so instead of repeating
    what is below it."""
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
            text = f"{fp[:12]}  {info['function']:<32} {info['state']:<16} {took}"
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
    """``(from, to, label)`` of the lineage graph: node ids ``call_<fp>``, ``tree_<fp>``."""
    edges = []
    for fp in plan.order:
        node, record = plan.nodes[fp], standing[fp].record or {}
        skeleton = _fp(node.record.get("skeleton"))
        if skeleton:
            edges.append((f"tree_{skeleton}", f"call_{fp}", "skeleton"))
        for item in node.record.get("inputs", []):
            up = layout.normalize(item["call"])
            label = item.get("path") or ("value" if item.get("to") is None else ".")
            if item.get("to"):
                label = f"{label} -> {item['to']}"
            edges.append((f"call_{up}", f"call_{fp}", label))
        directory = _fp(record.get("directory"))
        if directory:
            edges.append((f"call_{fp}", f"tree_{directory}", "output"))
    return edges


def dot(plan: Plan, standing: dict[str, Standing]) -> str:
    """The lineage graph in Graphviz's dot language."""
    out = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    trees: set[str] = set()
    for info in calls(plan, standing):
        fp = info["call"]
        label = f"{fp[:12]}\\n{info['function']}\\n{info['state']}"
        fill = COLOURS.get(info["state"], "#ffffff")
        out.append(
            f'  "call_{fp}" [shape=box, style="rounded,filled", fillcolor="{fill}", '
            f'label="{_escape(label)}", tooltip="{_escape(info["arguments"])}"];'
        )
    for source, target, label in _edges(plan, standing):
        for end in (source, target):
            if end.startswith("tree_") and end not in trees:
                trees.add(end)
                out.append(f'  "{end}" [shape=folder, label="{end[5:17]}"];')
        out.append(f'  "{source}" -> "{target}" [label="{_escape(label)}"];')
    out.append("}")
    return "\n".join(out) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\\\\n", "\\n")


def mermaid(plan: Plan, standing: dict[str, Standing]) -> str:
    """The lineage graph as a Mermaid flowchart."""
    out = ["flowchart LR"]
    for state, colour in COLOURS.items():
        out.append(f"  classDef {state.replace('-', '_')} fill:{colour}")
    for info in calls(plan, standing):
        fp = info["call"]
        out.append(f'  call_{fp[:16]}["{fp[:12]}<br>{info["function"]}<br>{info["state"]}"]')
        out.append(f"  class call_{fp[:16]} {info['state'].replace('-', '_')}")
    for source, target, label in _edges(plan, standing):
        for end in (source, target):
            if end.startswith("tree_"):
                out.append(f'  {end[:21]}[/"{end[5:17]}"/]')
        out.append(f'  {source[:21]} -->|"{label}"| {target[:21]}')
    return "\n".join(dict.fromkeys(out)) + "\n"


def text(plan: Plan, standing: dict[str, Standing]) -> str:
    """The lineage graph as lines ``from -> to (label)``, short fingerprints."""

    def short(node: str) -> str:
        kind, _, fp = node.partition("_")
        return f"{kind} {fp[:12]}"

    return "".join(
        f"{short(s)} -> {short(t)} ({label})\n" for s, t, label in _edges(plan, standing)
    )


class NoGraphviz(RuntimeError):
    """Graphviz's ``dot`` is not installed."""


def svg(plan: Plan, standing: dict[str, Standing]) -> str:
    """The lineage graph drawn by Graphviz's ``dot``.

    Raises:
        NoGraphviz: ``dot`` is not on PATH (the message says how to install it).
    """
    found = shutil.which("dot")
    if found is None:
        raise NoGraphviz(
            "svg and html need Graphviz's 'dot' (apt install graphviz, dnf install graphviz, "
            "brew install graphviz, conda install graphviz); --format dot gives its input"
        )
    drawn = subprocess.run(
        [found, "-Tsvg"], input=dot(plan, standing), capture_output=True, text=True, check=False
    )
    if drawn.returncode != 0:
        raise NoGraphviz(f"dot failed: {drawn.stderr.strip()[:300]}")
    return drawn.stdout[drawn.stdout.find("<svg") :]


def page(plan: Plan, standing: dict[str, Standing]) -> str:
    """One self-contained HTML page (no network): the picture, then a table of the calls."""
    picture = svg(plan, standing)
    rows = []
    for info in calls(plan, standing):
        outputs = " ".join(
            f"{name} {info[name][:12]}" for name in ("directory", "stdout", "stderr") if info[name]
        )
        took = "" if info["duration"] is None else f"{info['duration']:.2f} s"
        cells = [
            f"<code>{info['call'][:12]}</code>",
            html.escape(info["function"]),
            f"<code>{html.escape(info['arguments'])}</code>",
            f'<span class="state {info["state"]}">{info["state"]}</span>',
            html.escape(info["start"] or ""),
            took,
            f"<code>{html.escape(outputs)}</code>",
        ]
        rows.append(
            f'<tr id="row_{info["call"]}" class="call">'
            + "".join(f"<td>{cell}</td>" for cell in cells)
            + "</tr>"
        )
    styles = "\n".join(f".state.{s} {{ background: {c}; }}" for s, c in COLOURS.items())
    data = json.dumps([{"call": c["call"], "state": c["state"]} for c in calls(plan, standing)])
    return _PAGE.format(
        title=html.escape(f"scalems-call graph {plan.roots[0][:12]}"),
        styles=styles,
        svg=picture,
        rows="\n".join(rows),
        data=data.replace("</", "<\\/"),
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; font-size: 0.9em; }}
tr.chosen {{ outline: 2px solid #333; }}
.state {{ padding: 0 0.3em; border-radius: 3px; }}
{styles}
</style></head>
<body>
<h1>{title}</h1>
<p id="summary"></p>
<div id="picture">{svg}</div>
<table><thead><tr><th>call</th><th>function</th><th>arguments</th><th>state</th>
<th>started</th><th>took</th><th>outputs</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<script>
(function () {{
  var calls = {data};
  var counts = {{}};
  calls.forEach(function (c) {{ counts[c.state] = (counts[c.state] || 0) + 1; }});
  var parts = Object.keys(counts).sort().map(function (s) {{ return counts[s] + " " + s; }});
  var summary = document.getElementById("summary");
  summary.textContent = calls.length + " calls: " + parts.join(", ");
  summary.dataset.calls = String(calls.length);
  document.querySelectorAll("#picture g.node").forEach(function (node) {{
    var title = node.querySelector("title");
    if (!title || title.textContent.indexOf("call_") !== 0) {{ return; }}
    node.style.cursor = "pointer";
    node.addEventListener("click", function () {{
      document.querySelectorAll("tr.chosen").forEach(function (r) {{
        r.classList.remove("chosen");
      }});
      var row = document.getElementById("row_" + title.textContent.slice(5));
      if (row) {{ row.classList.add("chosen"); row.scrollIntoView(); }}
    }});
  }});
}})();
</script>
</body></html>
"""
