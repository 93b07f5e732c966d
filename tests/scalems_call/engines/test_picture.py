"""Pictures of graphs that scale: calls of one shape grouped, boxes of their own, a legend."""

from __future__ import annotations

import re
from pathlib import Path

from scalems_call import output, pack
from scalems_call.engines import graphview, picture
from scalems_call.engines.graph import plan, states
from scalems_call.engines.picture import TIMES
from scalems_store import FileStore
from tests.scalems_call import funcs


def drawn(store: FileStore, roots: list[str]) -> picture.Picture:
    graph = plan(store, roots)
    return picture.picture(graph, graphview.calls(graph, states(store, graph)), store)


def test_calls_of_one_shape_group_from_four(store: FileStore) -> None:
    """Four simulations are one group box (whatever their arguments), three calls of another
    function are three call boxes; the analyses of each simulation are grouped too, and
    arrows between groups count what they carry."""
    four = [pack(funcs.simulate, (seed,), store=store) for seed in range(4)]
    three = [pack(funcs.produce, (seed,), store=store) for seed in range(3)]
    takes = [pack(funcs.analyze, ([output(s, "traj.csv")],), store=store) for s in four]
    drawing = drawn(store, [*takes, *three])
    groups = [box for box in drawing.boxes.values() if box.kind == "group"]
    assert [box.lines[:2] for box in groups] == [
        [f"4 {TIMES} tests.scalems_call.funcs:simulate", "4 missing"],
        [f"4 {TIMES} tests.scalems_call.funcs:analyze", "4 missing"],
    ]
    singles = [box for box in drawing.boxes.values() if box.kind == "call"]
    assert sorted(box.lines[0] for box in singles) == [f"produce({seed})" for seed in range(3)]
    assert (groups[0].id, groups[1].id, f"traj.csv {TIMES}4") in drawing.arrows
    assert {drawing.box_of[fp] for fp in four} == {groups[0].id}


def test_shape_is_what_a_call_takes_from(store: FileStore) -> None:
    """Analyses of the same function taking from calls of different shapes are not one
    group: a group's arrows stay true."""
    sims = [pack(funcs.simulate, (seed,), store=store) for seed in range(4)]
    picks = [pack(funcs.pick, ([seed],), store=store) for seed in range(4)]
    by_file = [pack(funcs.total, ([output(s)],), store=store) for s in sims]
    by_pick = [pack(funcs.total, ([output(p)],), store=store) for p in picks]
    drawing = drawn(store, [*by_file, *by_pick])
    assert len({drawing.box_of[fp] for fp in by_file}) == 1
    assert drawing.box_of[by_file[0]] != drawing.box_of[by_pick[0]]


def test_every_box_says_what_it_is(store: FileStore, tmp_path: Path) -> None:
    """The dot source has a legend of every state, a call box with its function and
    arguments, an input box named by the skeleton's files; mermaid draws the same boxes."""
    (tmp_path / "md-input").mkdir()
    (tmp_path / "md-input" / "input.txt").write_text("x")
    (tmp_path / "md-input" / "conf").mkdir()
    first = pack(funcs.produce, (3,), store=store)
    fp = pack(
        funcs.consume, (output(first), "input.txt"), store=store, skeleton=tmp_path / "md-input"
    )
    graph = plan(store, [fp])
    standing = states(store, graph)
    source = graphview.dot(graph, standing, store)
    for state in picture.COLOURS:
        assert f'"legend_{state}"' in source
    assert "consume(output(" in source and "produce(3)" in source
    assert f'"input_call_{fp}" [shape=folder, label="input\\nconf/, input.txt"' in source
    assert f'"call_{first}" -> "call_{fp}" [label="value"]' in source
    flow = graphview.mermaid(graph, standing, store)
    assert flow.startswith("flowchart LR") and "produce(3)" in flow and "conf/, input.txt" in flow


def test_mermaid_has_a_legend_and_draws_groups_as_groups(store: FileStore) -> None:
    """The Mermaid flowchart carries the legend the dot picture has (each state in its
    colour, a group, a folder of files), and a group of calls is drawn with the double
    border the legend gives it."""
    fps = [pack(funcs.add, (n, 1), store=store) for n in range(5)]
    graph = plan(store, fps)
    flow = graphview.mermaid(graph, states(store, graph), store)
    legend = flow[flow.index('subgraph legend["legend"]') : flow.index("\n  end\n")]
    for state in picture.COLOURS:
        name = state.replace("-", "_")
        assert f'legend_{name}["{state}"]' in legend
        assert f"class legend_{name} {name}" in legend
    assert "legend_group[[" in legend and 'legend_tree[/"input or output files"/]' in legend
    assert re.search(r'\n  n\d+\[\["5 \u00d7 [^"]*add', flow), flow
