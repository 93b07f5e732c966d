"""The timeline of a graph's runs on its HTML page: one bar a run, on one time axis,
with its wall time, CPU time and peak memory."""

from __future__ import annotations

import re
import shutil

from scalems_call import output, pack, run
from scalems_call.engines import graph, graphview
from scalems_store import FileStore
from tests.conftest import require
from tests.scalems_call import funcs


def test_timeline_has_a_bar_a_run_on_one_axis(store: FileStore) -> None:
    """Two calls, one taking the other's value: two rows in the order they ran, the
    first bar at the left edge, the second starting after the first ended, each with
    its costs; a call never run has no row."""
    first = pack(funcs.sleep, (0.3,), store=store)
    second = pack(funcs.total, ([output(first), 1],), store=store)
    never = pack(funcs.total, ([output(second), 2],), store=store)
    assert run(second, store=store).status == "success"
    plan = graph.plan(store, [never])
    section = graphview.timeline_section(plan, graph.states(store, plan), graphview.COLOURS)
    assert 'data-runs="2"' in section
    rows = re.findall(r'id="run_([0-9a-f]{64})".*?left: ([\d.]+)%; width: ([\d.]+)%', section)
    assert [fp for fp, _, _ in rows] == [first, second]
    (_, left1, width1), (_, left2, _) = ((fp, float(a), float(b)) for fp, a, b in rows)
    assert left1 == 0 and left2 >= left1 + width1 - 0.01
    assert section.count("MiB") == 2 and section.count("cpu ") == 2
    assert never not in section


def test_no_timeline_before_anything_ran(store: FileStore) -> None:
    """A graph none of whose calls has run has no timeline."""
    fp = pack(funcs.add, (1, 2), store=store)
    plan = graph.plan(store, [fp])
    assert graphview.timeline_section(plan, graph.states(store, plan), graphview.COLOURS) == ""


def test_the_page_shows_the_timeline(store: FileStore) -> None:
    """The graph's HTML page carries the timeline after the table of calls."""
    require(None if shutil.which("dot") else "Graphviz's dot is not installed")
    fp = pack(funcs.add, (1, 2), store=store)
    run(fp, store=store)
    plan = graph.plan(store, [fp])
    page = graphview.page(plan, graph.states(store, plan))
    assert page.index("</table>") < page.index('<section class="timeline" data-runs="1">')
