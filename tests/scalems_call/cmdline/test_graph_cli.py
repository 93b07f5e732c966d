"""Seeing graphs: status, graph (text, dot, mermaid, svg, html in a real browser), why,
and rerun --check --deep."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scalems_call import output, pack
from scalems_call.engines.executors import run_many
from scalems_call.engines.picture import TIMES
from scalems_call.execution import cache
from scalems_store import FileStore
from tests.conftest import RunCli, require
from tests.scalems_call import funcs


def packed_graph(tmp_path: Path) -> tuple[list[str], str, str]:
    """Three simulations, an analysis of their trajectories, a pick of their values."""
    with FileStore(tmp_path / ".scalems") as store:
        sims = [pack(funcs.simulate, (seed,), store=store) for seed in range(3)]
        ana = pack(funcs.analyze, ([output(s, "traj.csv") for s in sims],), store=store)
        best = pack(funcs.pick, ([output(s) for s in sims],), {"n": 2}, store=store)
    return sims, ana, best


def test_status_shows_the_graph_and_its_states(run_cli: RunCli, tmp_path: Path) -> None:
    """status prints one line a call, indented below what takes from it, with its state;
    exit 0 only when everything is cached; --json has a record per call."""
    sims, ana, _ = packed_graph(tmp_path)
    assert run_cli("scalems-call", "exec", sims[0]).returncode == 0
    before = run_cli("scalems-call", "status", ana)
    assert before.returncode == 1
    lines = before.stdout.decode().splitlines()
    assert lines[0].startswith(ana[:12]) and "tests.scalems_call.funcs:analyze" in lines[0]
    assert "missing" in lines[0] and len(lines) == 4
    by_call = {line.split()[1]: line for line in lines[1:]}
    assert " cached " in by_call[sims[0][:12]] and by_call[sims[0][:12]].endswith(" s")
    assert by_call[sims[1][:12]].endswith("missing")
    assert run_cli("scalems-call", "exec", ana).returncode == 0
    after = run_cli("scalems-call", "status", ana, "--json")
    assert after.returncode == 0
    record = json.loads(after.stdout)
    assert {c["call"] for c in record["calls"]} == {*sims, ana}
    assert all(c["state"] == "cached" and c["duration"] is not None for c in record["calls"])


@pytest.mark.parametrize("form", ["text", "dot", "mermaid"])
def test_graph_sources(run_cli: RunCli, tmp_path: Path, form: str) -> None:
    """graph --format text|dot|mermaid names every call and the edges between them."""
    sims, ana, best = packed_graph(tmp_path)
    drawn = run_cli("scalems-call", "graph", ana, best, "--format", form)
    assert drawn.returncode == 0, drawn.stderr
    text = drawn.stdout.decode()
    for fp in (*sims, ana, best):
        assert fp[:12] in text
    edge = {"text": "(traj.csv)", "dot": 'label="traj.csv"', "mermaid": '|"traj.csv"|'}[form]
    assert text.count(edge) == 3
    if form == "dot":
        assert text.startswith("digraph") and "cluster_legend" in text
        assert len(re.findall(r'^  "call_[0-9a-f]{64}" \[shape=box', text, re.M)) == 5
        assert "simulate(0)" in text and "pick([output(" in text  # function and arguments


def test_graph_svg_without_graphviz_says_how_to_get_it(run_cli: RunCli, tmp_path: Path) -> None:
    """Where dot is not installed, svg is one line naming how to install Graphviz."""
    _, ana, _ = packed_graph(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    python_dir = Path(shutil.which("python3") or "/usr/bin/python3").parent
    done = run_cli(
        "scalems-call", "graph", ana, "--format", "svg", env={"PATH": f"{empty}:{python_dir}"}
    )
    assert done.returncode == 1 and b"apt install graphviz" in done.stderr


def dump_dom(browser: str, page: Path, tmp_path: Path) -> str:
    """The DOM of *page* after headless Chromium loaded it and its script ran; asserts that
    Chromium printed no console message (a script error would be one)."""
    loaded = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    console = [line for line in loaded.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    return loaded.stdout


def chromium() -> str:
    """Chromium's path (skips, or fails under .ci/run, where it is not installed)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    require(None if browser else "Chromium is not installed (apt install chromium)")
    assert browser is not None
    return browser


def test_graph_html_in_a_real_browser(run_cli: RunCli, tmp_path: Path) -> None:
    """The HTML page loads in headless Chromium with no console message, shows one node per
    call and a row per call, and its script ran."""
    require(None if shutil.which("dot") else "Graphviz's dot is not installed")
    browser = chromium()
    sims, ana, best = packed_graph(tmp_path)
    assert run_cli("scalems-call", "exec", sims[0]).returncode == 0
    done = run_cli("scalems-call", "graph", ana, best, "--format", "html", "-o", "graph.html")
    assert done.returncode == 0, done.stderr
    page = tmp_path / "graph.html"
    assert "http://" not in page.read_text().replace("http://www.w3.org", "")
    dom = dump_dom(browser, page, tmp_path)
    calls = {*sims, ana, best}
    nodes = re.findall(
        r'<g id="node\d+" class="node"[^>]*>\s*<title>call_([0-9a-f]{64})</title>', dom
    )
    assert sorted(nodes) == sorted(calls), "one node per call"
    assert len(re.findall(r'<tr id="row_[0-9a-f]{64}" class="call"', dom)) == len(calls)
    assert 'data-calls="5"' in dom, "the page's script ran"


def test_200_calls_in_a_real_browser(run_cli: RunCli, tmp_path: Path) -> None:
    """200 simulations of which 2 fail, and an analysis of them all, make one readable page:
    the simulations are one group box (its counts, the commonest error) that unfolds into
    200 rows, failed rows first with their error line; outputs are named by file; a
    legend; and the analysis says which call below failed."""
    require(None if shutil.which("dot") else "Graphviz's dot is not installed")
    browser = chromium()
    with FileStore(tmp_path / ".scalems") as store:
        sims = [
            pack(funcs.fragile_simulate, (seed,), {"diverge": seed in (7, 11)}, store=store)
            for seed in range(200)
        ]
        ana = pack(funcs.analyze, ([output(s, "traj.csv") for s in sims],), store=store)
        run_many(sims, store=store)
    done = run_cli("scalems-call", "graph", ana, "--format", "html", "-o", "graph.html")
    assert done.returncode == 0, done.stderr
    dom = dump_dom(browser, tmp_path / "graph.html", tmp_path)
    assert "201 calls: 198 cached, 2 failed, 1 upstream-failed" in dom
    boxes = re.findall(r'<g id="node\d+" class="node"[^>]*>\s*<title>([^<]+)</title>', dom)
    assert sorted(boxes) == sorted(["group_0", f"call_{ana}", "output_group_0"])
    group = dom[dom.index("<title>group_0</title>") : dom.index("</g>", dom.index("group_0"))]
    assert f"200 {TIMES} tests.scalems_call.funcs:fragile_simulate" in group
    assert "198 cached, 2 failed" in group and "FloatingPointError: seed 7 diverged" in group
    output_box = dom[dom.index("<title>output_group_0</title>") :]
    assert "md.log, traj.csv" in output_box[: output_box.index("</g>")]
    assert f"traj.csv {TIMES}200" in dom  # the arrow to the analysis
    unfolded = dom[dom.index('<details id="list_group_0"') : dom.index("</details>")]
    rows = re.findall(r'<tr id="row_([0-9a-f]{64})" class="call">(.*?)</tr>', unfolded)
    assert len(rows) == 200 and {fp for fp, _ in rows} == set(sims)
    order = [7, 11, *(seed for seed in range(200) if seed not in (7, 11))]
    assert [fp for fp, _ in rows] == [sims[seed] for seed in order]  # failed first, by seed
    assert "FloatingPointError: seed 11 diverged at step 12" in rows[1][1]
    assert rows[2][0] == sims[0] and "fragile_simulate(0, diverge=False)" in rows[2][1]
    assert "md.log, traj.csv" in rows[2][1]
    assert f"call below {sims[7][:12]} failed" in dom
    assert dom.count('class="legend"') == 1 and "never run" in dom
    assert re.search(r'data-loaded-ms="\d+"', dom), "the page's script ran to its load event"


def test_no_box_is_shared_by_unrelated_calls(run_cli: RunCli, tmp_path: Path) -> None:
    """Two unrelated calls whose output directories are the same (empty) object each get
    their own output box, so neither seems to feed the other; with Graphviz missing, the
    HTML page still lists every call and says why there is no picture."""
    with FileStore(tmp_path / ".scalems") as store:
        failed = pack(funcs.fragile_simulate, (1,), {"diverge": True}, store=store)
        other = pack(funcs.add, (1, 2), store=store)
        run_many([failed, other], store=store)
        made = [cache.load_result(store, cache.results(store, fp)[0]) for fp in (failed, other)]
        assert made[0]["directory"] == made[1]["directory"]  # one empty directory object
    drawn = run_cli("scalems-call", "graph", failed, other, "--format", "dot")
    text = drawn.stdout.decode()
    arrows = re.findall(r'^  "([^"]+)" -> "([^"]+)"', text, re.M)
    assert sorted(arrows) == sorted(
        [(f"call_{failed}", f"output_call_{failed}"), (f"call_{other}", f"output_call_{other}")]
    )
    assert text.count("(empty)") == 2
    empty = tmp_path / "bin"
    empty.mkdir()
    python_dir = Path(shutil.which("python3") or "/usr/bin/python3").parent
    page = run_cli(
        "scalems-call",
        "graph",
        failed,
        other,
        "--format",
        "html",
        env={"PATH": f"{empty}:{python_dir}"},
    )
    assert page.returncode == 0, page.stderr
    html = page.stdout.decode()
    assert "No picture: svg needs Graphviz" in html
    assert html.count('class="call"') == 2 and "add(1, 2)" in html


def test_why_names_maker_and_takers(run_cli: RunCli, tmp_path: Path) -> None:
    """why says which call made an output directory and which calls took from that call."""
    sims, ana, best = packed_graph(tmp_path)
    assert run_cli("scalems-call", "exec", ana, best).returncode == 0
    with FileStore(tmp_path / ".scalems") as store:
        from scalems_call.execution import cache

        found = cache.current(store, sims[1])
        assert found is not None
        directory = found[1]["directory"].removeprefix("blake3:")
    said = run_cli("scalems-call", "why", directory, "--json")
    assert said.returncode == 0, said.stderr
    record = json.loads(said.stdout)
    assert [link["call"] for link in record["made_by"]] == [sims[1]]
    assert {link["call"] for link in record["taken_by"]} >= {ana, best}
    consumed = [link for link in record["taken_by"] if link["how"] == "consumed"]
    assert consumed and all(link["result"] for link in consumed)
    text = run_cli("scalems-call", "why", directory).stdout.decode()
    for link in consumed:  # which result consumed it, not only which call
        assert f"(consumed by result {link['result'][:12]})" in text


def test_why_of_a_call_nothing_takes_from(run_cli: RunCli, tmp_path: Path) -> None:
    """A packed call that has not run: why says so, not "added by hand?"."""
    with FileStore(tmp_path / ".scalems") as store:
        fp = pack(funcs.add, (1, 2), store=store)
    said = run_cli("scalems-call", "why", fp).stdout.decode().splitlines()
    assert said[1] == (
        "a call (tests.scalems_call.funcs:add(1, 2)); no call takes its output; it has not run "
        "(scalems-call exec)"
    )
    assert run_cli("scalems-call", "exec", fp).returncode == 0
    said = run_cli("scalems-call", "why", fp).stdout.decode().splitlines()
    assert said[1] == "a call (tests.scalems_call.funcs:add(1, 2)); no call takes its output"


def test_rerun_check_deep_names_what_differs(run_cli: RunCli, tmp_path: Path) -> None:
    """rerun --check --deep runs the whole graph again from scratch and names every call
    whose output differs (and only those); recorded results stay as they were."""
    source, ledger = tmp_path / "source.txt", tmp_path / "ledger"
    source.write_text("one")
    with FileStore(tmp_path / ".scalems") as store:
        upstream = pack(funcs.read_external, (str(source), str(ledger)), store=store)
        down = pack(funcs.shout, (output(upstream), str(ledger)), store=store)
    assert run_cli("scalems-call", "exec", down).returncode == 0
    same = run_cli("scalems-call", "rerun", down, "--check", "--deep")
    assert same.returncode == 0, same.stdout + same.stderr
    assert b"2 of 2 calls reproduced" in same.stderr
    source.write_text("two")
    changed = run_cli("scalems-call", "rerun", down, "--check", "--deep", "--json")
    assert changed.returncode == 3
    rows = {row["call"]: row for row in json.loads(changed.stdout)["calls"]}
    assert rows[upstream]["differences"] and rows[down]["differences"]
    assert run_cli("scalems-call", "exec", down, "--json").stdout.count(b'"cached": true') == 1
