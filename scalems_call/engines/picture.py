"""A graph of calls as a picture people can read at 2,000 calls: boxes and arrows.

Calls of one *shape* (the same function, taking the same kinds of input from
calls of the same shape, with or without a skeleton) become one group box,
``200 x mdsim:simulate`` (a multiplication sign) over ``198 cached, 2 failed``,
once there are :data:`GROUP_AT` of them; fewer are drawn one box a call, ``simulate(seed=7)``
over its state and, for a failed or stale call, why. Each call or group box
has its own input-tree box and output box, named by the files in them, so no
box is shared by calls that have nothing to do with each other (two empty
output directories are the same object, but not the same output). Arrows run
from what is used to what uses it, labelled with the path taken (``value``
for a return value) and, between groups, how many times.

:func:`picture` builds the boxes; :func:`dot` and :func:`mermaid` draw them.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scalems_store.core import layout

if TYPE_CHECKING:
    from scalems_call.engines.graph import Plan
    from scalems_store import FileStore

GROUP_AT = 4
"""Calls of one shape are drawn as one group box from this many on."""

COLOURS = {
    "cached": "#b7e1a1",
    "stale": "#ffe08a",
    "missing": "#d9d9d9",
    "running": "#9fc5f8",
    "failed": "#f4a3a3",
    "upstream-failed": "#f9cb9c",
    "untrusted": "#d5a6bd",
    "unsigned": "#d5a6bd",
}
"""Fill colour of a call, by state (the legend's order)."""

MEANINGS = {
    "cached": "its result stands: exec serves it",
    "stale": "it has a result, but may run again",
    "missing": "never run",
    "running": "a runner is at it now",
    "failed": "its newest result failed",
    "upstream-failed": "a call it takes from failed",
    "untrusted": "its results are signed by no key this store trusts: exec runs it",
    "unsigned": "its results are not signed (imported): exec runs it",
}
"""What each state means, for the legend."""

TIMES = "\N{MULTIPLICATION SIGN}"

NAMES_SHOWN = 4
"""File names shown in an input or output box before ``+N more``."""

TREES_READ = 8
"""Output directories of a group read for its file names (the rest are alike, mostly)."""


@dataclass
class Box:
    """One box of the picture: a call, a group of calls, or an input or output tree."""

    id: str
    kind: str
    """``call``, ``group``, ``input`` or ``output``."""
    lines: list[str]
    members: list[str] = field(default_factory=list)
    """The calls in it (a call or group box), upstream first."""
    states: collections.Counter[str] = field(default_factory=collections.Counter)
    tooltip: str = ""


@dataclass
class Picture:
    """The boxes (in the order they are first met, upstream first) and the arrows."""

    boxes: dict[str, Box]
    arrows: list[tuple[str, str, str]]
    """``(from box, to box, label)``."""
    box_of: dict[str, str]
    """The box each call is drawn in."""
    names: Names
    """The file names of the trees, read once."""


def call_text(info: dict[str, Any], width: int = 40) -> str:
    """``simulate(seed=7)``: a call's function (without its module) and short arguments."""
    name = info["function"].rpartition(":")[2] or info["function"]
    arguments = info["arguments"] or ""
    return f"{name}({arguments if len(arguments) <= width else arguments[: width - 1] + '…'})"


def counts_text(states: collections.Counter[str]) -> str:
    """``198 cached, 2 failed``, in the legend's order."""
    return ", ".join(f"{states[s]:,} {s}" for s in COLOURS if states[s])


def picture(
    plan: Plan,
    described: list[dict[str, Any]],
    store: FileStore | None = None,
    group_at: int | None = GROUP_AT,
) -> Picture:
    """The boxes and arrows of a graph of calls.

    Args:
        described: :func:`scalems_call.engines.graphview.calls` of the plan.
        store: Where to read the file names of input and output trees; without
            it trees show as short fingerprints.
        group_at: Group calls of one shape from this many on; None: never.
    """
    by_call = {info["call"]: info for info in described}
    shapes = _shapes(plan, by_call)
    sizes = collections.Counter(shapes.values())
    box_of = {
        fp: (
            f"group_{shapes[fp]}"
            if group_at is not None and sizes[shapes[fp]] >= group_at
            else f"call_{fp}"
        )
        for fp in plan.order
    }
    boxes: dict[str, Box] = {}
    for fp in plan.order:
        box = boxes.setdefault(box_of[fp], Box(box_of[fp], "call", []))
        box.members.append(fp)
        box.states[by_call[fp]["state"]] += 1
    arrows: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for fp in plan.order:
        for item in plan.nodes[fp].record.get("inputs", []):
            up = layout.normalize(item["call"])
            arrows[(box_of[up], box_of[fp], input_label(item))] += 1
    drawn = [
        (source, target, label if n == 1 else f"{label} {TIMES}{n:,}")
        for (source, target, label), n in arrows.items()
    ]
    names = Names(store)
    for box in list(boxes.values()):
        members = [by_call[fp] for fp in box.members]
        _describe(box, members)
        for kind, key in (("input", "skeleton"), ("output", "directory")):
            trees = [m[key] for m in members if m[key]]
            if trees:
                tree_box = Box(f"{kind}_{box.id}", kind, [kind if len(trees) == 1 else kind + "s"])
                tree_box.lines += names.lines(trees)
                tree_box.tooltip = " ".join(list(dict.fromkeys(trees))[:3])
                boxes[tree_box.id] = tree_box
                ends = (tree_box.id, box.id) if kind == "input" else (box.id, tree_box.id)
                drawn.append((*ends, ""))
    return Picture(boxes, drawn, box_of, names)


def input_label(item: dict[str, Any]) -> str:
    """What an arrow into a call says: the path taken, ``value``, ``-> where``."""
    label = item.get("path") or ("value" if item.get("to") is None else ".")
    return f"{label} -> {item['to']}" if item.get("to") else label


def _shapes(plan: Plan, by_call: dict[str, dict[str, Any]]) -> dict[str, int]:
    """A number per call, the same for calls of the same shape (upstream first, so the
    shape of what a call takes from is known when it is met)."""
    known: dict[tuple[Any, ...], int] = {}
    shapes: dict[str, int] = {}
    for fp in plan.order:
        record = plan.nodes[fp].record
        takes = sorted(
            {
                (input_label(item), shapes[layout.normalize(item["call"])])
                for item in record.get("inputs", [])
            }
        )
        key = (by_call[fp]["function"], record.get("skeleton") is not None, tuple(takes))
        shapes[fp] = known.setdefault(key, len(known))
    return shapes


def _describe(box: Box, members: list[dict[str, Any]]) -> None:
    """Write a call or group box's lines: what it is, where it stands, and why."""
    troubled = [m for m in members if m["reason"] and m["state"] != "cached"]
    if len(members) == 1:
        (info,) = members
        took = "" if info["duration"] is None else f", {info['duration']:.1f} s"
        why = [_cut(info["reason"], 56)] if troubled else []
        box.lines = [call_text(info), info["state"] + took, *why, info["call"][:12]]
        box.tooltip = f"{info['function']}({info['arguments']})"
        return
    # the commonest reason, with its state: the group's calls may stand differently
    reasons = collections.Counter(f"{m['state']}: {m['reason']}" for m in troubled)
    function = members[0]["function"]
    box.kind = "group"
    box.lines = [f"{len(members):,} {TIMES} {function}", counts_text(box.states)]
    box.lines += [_cut(reason, 56) for reason, _ in reasons.most_common(1)]
    box.tooltip = f"{len(members)} calls of {function}; click to list them"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class Names:
    """The file names at the top of stored trees, read from their headers (unchecked:
    a picture reads names only; every read of content is checked elsewhere)."""

    def __init__(self, store: FileStore | None) -> None:
        self.store = store
        self.cache: dict[str, list[str] | None] = {}

    def top(self, fp: str) -> list[str] | None:
        if fp not in self.cache:
            self.cache[fp] = self._read(fp)
        return self.cache[fp]

    def _read(self, fp: str) -> list[str] | None:
        if self.store is None:
            return None
        from scalems_store.tar.tarformat import DIR
        from scalems_store.tar.treeread import iter_entries, mapped

        try:
            with self.store.tree_file(fp) as path, mapped(path) as data:
                entries = list(iter_entries(data))
        except Exception:  # absent or damaged: shown by fingerprint (verify tells more)
            return None
        found: dict[str, bool] = {}
        for entry in entries:
            top, below, _ = entry.path.partition("/")
            found[top] = found.get(top) or bool(below) or entry.type == DIR
        return [name + ("/" if is_dir else "") for name, is_dir in sorted(found.items())]

    def lines(self, trees: list[str]) -> list[str]:
        """``traj.csv, md.log`` (``+3 more``) of the trees, or their short fingerprints."""
        distinct = list(dict.fromkeys(trees))
        read = [self.top(fp) for fp in distinct[:TREES_READ]]
        if any(names is None for names in read):
            head = ", ".join(fp[:12] for fp in distinct[:2])
            return [head + (f" +{len(distinct) - 2} more" if len(distinct) > 2 else "")]
        names = list(dict.fromkeys(n for found in read if found for n in found))
        if not names:
            return ["(empty)"]
        shown = ", ".join(names[:NAMES_SHOWN])
        more = len(names) - NAMES_SHOWN
        return [shown + (f" +{more} more" if more > 0 else "")]


def dot(drawing: Picture, *, legend: bool = True) -> str:
    """The picture in Graphviz's dot language."""
    out = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for box in drawing.boxes.values():
        out.append(f'  "{box.id}" [{_attributes(box)}];')
    for source, target, label in drawing.arrows:
        out.append(f'  "{source}" -> "{target}" [label="{_escape(label)}"];')
    if legend:
        out += _legend()
    out.append("}")
    return "\n".join(out) + "\n"


def _attributes(box: Box) -> str:
    label = _escape("\n".join(box.lines))
    tip = _escape(box.tooltip)
    if box.kind in ("input", "output"):
        return f'shape=folder, label="{label}", tooltip="{tip}"'
    if box.kind == "call":
        (state,) = box.states
        fill = COLOURS.get(state, "#ffffff")
        return (
            f'shape=box, style="rounded,filled", fillcolor="{fill}", label="{label}", '
            f'tooltip="{tip}"'
        )
    return (
        f'shape=box, style=striped, peripheries=2, fillcolor="{stripes(box.states)}", '
        f'label="{label}", tooltip="{tip}"'
    )


def stripes(states: collections.Counter[str]) -> str:
    """Graphviz's striped fill: a stripe per state as wide as its share, none thinner
    than a tenth (two failed calls of 200 must show)."""
    present = [s for s in COLOURS if states[s]]
    total = sum(states[s] for s in present)
    widths = {s: max(states[s] / total, 0.1) for s in present}
    scale = sum(widths.values())
    return ":".join(f"{COLOURS[s]};{widths[s] / scale:.3f}" for s in present)


def _legend() -> list[str]:
    out = ["  subgraph cluster_legend {", '    label="legend"; fontname="Helvetica"; fontsize=10;']
    for state, colour in COLOURS.items():
        out.append(
            f'    "legend_{state}" [shape=box, style="rounded,filled", fillcolor="{colour}", '
            f'label="{state}", tooltip="{_escape(MEANINGS[state])}"];'
        )
    out.append(
        '    "legend_group" [shape=box, peripheries=2, label="N \u00d7 module:function\\n'
        'a group of calls of one shape"];'
    )
    out.append('    "legend_tree" [shape=folder, label="input or output files"];')
    out.append("  }")
    return out


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def mermaid(drawing: Picture, *, legend: bool = True) -> str:
    """The picture as a Mermaid flowchart, with a legend (a subgraph of one box a state,
    a group and a tree, as :func:`dot` draws it) unless *legend* is false."""
    out = ["flowchart LR"]
    for state, colour in COLOURS.items():
        out.append(f"  classDef {state.replace('-', '_')} fill:{colour}")
    if legend:
        out.append('  subgraph legend["legend"]')
        for state in COLOURS:
            name = state.replace("-", "_")
            out.append(f'    legend_{name}["{state}"]')
            out.append(f"    class legend_{name} {name}")
        group = f"N {TIMES} module:function<br>a group of calls of one shape"
        out.append(f'    legend_group[["{group}"]]')
        out.append('    legend_tree[/"input or output files"/]')
        out.append("  end")
    ids = {box_id: f"n{number}" for number, box_id in enumerate(drawing.boxes)}
    for box in drawing.boxes.values():
        text = "<br>".join(line.replace('"', "#quot;") for line in box.lines)
        if box.kind in ("input", "output"):
            out.append(f'  {ids[box.id]}[/"{text}"/]')
            continue
        shape = '[["{}"]]' if box.kind == "group" else '["{}"]'  # a double border
        out.append(f"  {ids[box.id]}{shape.format(text)}")
        worst = next((s for s in reversed(COLOURS) if box.states[s]), "missing")
        out.append(f"  class {ids[box.id]} {worst.replace('-', '_')}")
    for source, target, label in drawing.arrows:
        shown = f'|"{label}"|' if label else ""
        out.append(f"  {ids[source]} -->{shown} {ids[target]}")
    return "\n".join(out) + "\n"
