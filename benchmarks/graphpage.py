"""The HTML page of a large graph: 200 and 2,000 simulations (2 of them failing) and an
analysis of all, drawn by ``scalems-call graph --format html`` and opened in headless
Chromium.

Reported: the time to write the page, and the page's own load time (navigation start to
its load event, read from the page) against an empty page opened the same way, in the
same run (target: < 2 s). Chromium's whole run, start to exit, is shown beside it: on a
busy machine that is mostly the browser starting.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import BIN, report, timed

EMPTY = (
    '<!doctype html><html><body><p>empty</p><script>window.addEventListener("load", '
    "function () { document.body.dataset.loadedMs = String(Math.round(performance.now())); "
    "});</script></body></html>"
)


def _build(store_root: Path, count: int) -> str:
    from callfuncs import simulate, total

    from scalems_call import output, pack
    from scalems_call.engines.executors import run_many
    from scalems_store import FileStore

    shutil.rmtree(store_root, ignore_errors=True)
    with FileStore(store_root) as store:
        sims = [
            pack(simulate, (seed,), {"diverge": seed in (7, 11)}, store=store)
            for seed in range(count)
        ]
        analysis = pack(total, ([output(s) for s in sims],), store=store)
        run_many(sims, store=store)
    return analysis


def _open(browser: str, page: Path) -> tuple[float, int]:
    """Chromium's wall time for *page*, and the page's own load time in ms."""
    profile = tempfile.mkdtemp(prefix="scalems-bench-chromium-")
    start = time.perf_counter()
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    shutil.rmtree(profile, ignore_errors=True)
    found = re.search(r'data-loaded-ms="(\d+)"', done.stdout)
    if found is None:
        raise SystemExit(f"{page}: the page's script did not run")
    return wall, int(found.group(1))


def bench_graph(work: Path, quick: bool) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None or shutil.which("dot") is None:
        raise SystemExit("the graph benchmark needs chromium and Graphviz's dot")
    empty = work / "empty.html"
    empty.write_text(EMPTY)
    for count in (50,) if quick else (200, 2000):
        root = work / f"store-graph-{count}"
        analysis = _build(root, count)
        page = work / f"graph-{count}.html"
        argv = [str(BIN / "scalems-call"), "--store", str(root), "graph", analysis]
        written = timed([*argv, "--format", "html", "-o", str(page)], repeat=3)
        report(f"graph --format html, {count} calls", written, written, "itself", "(shown)")
        ours, peer, ours_wall, peer_wall = [], [], [], []
        for _ in range(5):  # alternated, so that machine drift cancels
            wall, loaded = _open(browser, page)
            ours.append(loaded / 1000)
            ours_wall.append(wall)
            wall, loaded = _open(browser, empty)
            peer.append(loaded / 1000)
            peer_wall.append(wall)
        median = statistics.median
        report(f"page load, {count} calls", median(ours), median(peer), "empty page", "< 2 s")
        report(
            f"Chromium start to exit, {count} calls",
            median(ours_wall),
            median(peer_wall),
            "empty page",
            "(shown)",
        )
