"""Benchmarks: scalems-store / scalems-call against their peers, measured in one run.

Usage (from an environment where the project is installed, ideally not editable)::

    python benchmarks/run.py [--quick] [--large] [--only GROUP,...] [--workdir DIR]

Every figure is the median of several runs; each target is printed as a ratio
against the peer measured in the same run (cp, b3sum, GNU tar, git,
``python -c 'import click'``, joblib.Memory, a bare executor). Nothing here is
asserted: tests check behaviour, this measures speed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bigstore import bench_bigstore, fill
from calls import bench_calls, bench_pack_many
from closure import bench_closure
from common import PY, ROWS, Command, fresh, in_process, report, timed, timed_pair, tool
from graphpage import bench_graph
from scale import bench_scale


def add_with_cli(store_cli: str, store: Path, path: Path) -> str:
    """Add *path* to *store* with the CLI; return the fingerprint it prints."""
    done = subprocess.run(
        [store_cli, "--store", str(store), "add", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    return done.stdout.strip()


def bench_store(work: Path, quick: bool) -> None:
    store_cli = tool("scalems-store")
    size = (128 if quick else 1024) << 20
    big = work / "big.bin"
    if not big.exists() or big.stat().st_size != size:
        with open(big, "wb") as stream:
            for _ in range(size >> 20):
                stream.write(os.urandom(1 << 20))
    subprocess.run(["cat", str(big)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    copy = work / "copy.bin"
    store = work / "store-big"
    # alternate ours and cp; each removes its own output just before it runs, so that both
    # write into memory freed a moment ago (on this VM, fresh pages cost up to 5x more)
    label = f"add {size >> 20} MiB file"
    for env, sync, name in (
        ({"SCALEMS_STORE_FSYNC": "0"}, "", "cp"),
        ({}, " && sync", "cp && sync"),
    ):
        ours, peer = timed_pair(
            Command([store_cli, "--store", str(store), "add", str(big)], env, fresh(store)),
            Command(["sh", "-c", f"cp {big} {copy}{sync}"], before=lambda: copy.unlink(True)),
            repeat=7,
        )
        what = f"{label} ({'fsync, the default' if sync else 'no fsync'})"
        report(what, ours, peer, name, "<= 1.1x")
    fp = add_with_cli(store_cli, store, big)
    ours, peer = timed_pair(
        Command(["sh", "-c", f"{store_cli} --store {store} get {fp} > {copy}"]),
        Command(["sh", "-c", f"cat {big} > {copy}"]),
        repeat=7,
    )
    report(f"get {size >> 20} MiB blob to stdout, into a file", ours, peer, "cat", "info")
    if shutil.which("b3sum"):
        verify, b3 = timed_pair(
            [store_cli, "--store", str(store), "verify", fp], ["b3sum", str(big)], repeat=7
        )
        report(
            f"verify {size >> 20} MiB (throughput ratio = b3sum/ours)",
            b3,
            verify,
            "ours",
            ">= 1.0x",
        )
        ROWS[-1] = (
            ROWS[-1][0],
            f"{size / verify / 1e9:.2f} GB/s",
            f"b3sum {size / b3 / 1e9:.2f} GB/s",
            ROWS[-1][3],
        )
    else:
        print("b3sum not installed: skipping the verify comparison")

    files = 2000 if quick else 10_000
    tree = work / "tree"
    if not tree.exists():
        for i in range(files):
            sub = tree / f"d{i % 100:03d}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i:05d}.dat").write_bytes(os.urandom(4096))
    tarball = work / "tree.tar"
    tstore = work / "store-tree"
    add_tree, tar = timed_pair(
        Command(
            [store_cli, "--store", str(tstore), "add", str(tree)],
            {"SCALEMS_STORE_FSYNC": "0"},
            fresh(tstore),
        ),
        Command(["tar", "--sort=name", "-cf", str(tarball), "-C", str(tree), "."]),
        repeat=11,
    )
    report(f"add tree of {files} x 4 KiB files", add_tree, tar, "tar --sort=name -cf", "<= 1.5x")
    tfp = add_with_cli(store_cli, tstore, tree)
    out = work / "out"
    get, untar = timed_pair(
        Command([store_cli, "--store", str(tstore), "get", tfp, "-o", str(out)], before=fresh(out)),
        Command(["sh", "-c", f"mkdir {out} && tar -xf {tarball} -C {out}"], before=fresh(out)),
        repeat=11,
    )
    report(f"get (extract) tree of {files} files", get, untar, "tar -xf", "<= 1.0x")


def bench_index(work: Path, quick: bool) -> None:
    from scalems_store import FileStore

    store_cli = tool("scalems-store")
    count = 10_000 if quick else 100_000
    root = work / f"bigstore-{count}"
    fill(root, count)  # the store the bigstore group uses too
    with FileStore(root) as store:
        fps = store.index.fingerprints()
        prefixes = [fp[:8] for fp in fps[:: max(1, len(fps) // 1000)]]
        it = iter(prefixes * 10)
        resolve = in_process(lambda: store.resolve(next(it)), repeat=len(prefixes))
    report(f"resolve an 8-digit prefix among {count}", resolve, 0.005, "target", "< 5 ms")
    ls = timed([store_cli, "--store", str(root), "ls"], repeat=5)
    report(f"scalems-store ls of {count} objects (process)", ls, 1.0, "target", "< 1 s")
    get, click_import = timed_pair(
        [store_cli, "--store", str(root), "get", fps[0]], [PY, "-c", "import click"]
    )
    report(
        "scalems-store get small blob (process)",
        get,
        click_import,
        "python -c 'import click'",
        "<= 1.3x",
    )
    if shutil.which("git"):
        repo = work / "gitrepo"
        if not repo.exists():
            subprocess.run(["git", "init", "-q", str(repo)], check=True)
        small = work / "small.txt"
        small.write_bytes(os.urandom(100))
        add, git = timed_pair(
            [store_cli, "--store", str(root), "add", str(small)],
            ["git", "-C", str(repo), "hash-object", "-w", str(small)],
            repeat=15,
        )
        report("scalems-store add small file (process)", add, git, "git hash-object -w", "info")


def bench_call(work: Path, quick: bool) -> None:
    import joblib

    from scalems_call import pack, run
    from scalems_store import FileStore

    call_cli = tool("scalems-call")
    root = work / "store-call"
    shutil.rmtree(root, ignore_errors=True)
    with FileStore(root) as store:
        fp = pack(_square, (12,), store=store)
        run(fp, store=store)
        hit = in_process(lambda: run(fp, store=store), repeat=500)
    memory = joblib.Memory(str(work / "joblib"), verbose=0)
    cached = memory.cache(_square)
    cached(12)
    joblib_hit = in_process(lambda: cached(12), repeat=500)
    report("run() cache hit, in process", hit, joblib_hit, "joblib.Memory hit", "<= 1.0x")
    exec_hit, click_import = timed_pair(
        [call_cli, "--store", str(root), "exec", fp], [PY, "-c", "import click"]
    )
    report(
        "scalems-call exec, cache hit (process)",
        exec_hit,
        click_import,
        "python -c 'import click'",
        "<= 1.3x",
    )
    uncached, click_dill = timed_pair(
        [call_cli, "--store", str(root), "exec", "--force", fp],
        [PY, "-c", "import click, dill"],
        repeat=11,
    )
    report(
        "scalems-call exec, uncached trivial call",
        uncached,
        click_dill,
        "python -c 'import click, dill'",
        "<= 3x",
    )


def _square(x: int) -> int:
    return x * x


def _compile_packages() -> None:
    """Byte-compile the packages measured, as ``pip install`` does: an editable install
    under ``PYTHONDONTWRITEBYTECODE`` would otherwise compile them in every command."""
    import compileall

    import scalems_call
    import scalems_store

    for package in (scalems_store, scalems_call):
        compileall.compile_dir(os.path.dirname(str(package.__file__)), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs (for a smoke run)")
    parser.add_argument(
        "--large", action="store_true", help="also a store of 1,000,000 objects (bigstore)"
    )
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups to run")
    parser.add_argument(
        "--workdir", type=Path, help="where to put inputs (default: a temporary directory)"
    )
    options = parser.parse_args()
    work = options.workdir or Path(tempfile.mkdtemp(prefix="scalems-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    _compile_packages()
    here = str(Path(__file__).resolve().parent)
    # calls packed here name functions in these modules: children and workers must import them
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    for name in options.only.split(","):
        if name not in GROUPS:
            parser.error(f"unknown group {name!r}: choose from {', '.join(GROUPS)}")
        print(f"== {name}", flush=True)
        if name == "bigstore":
            bench_bigstore(work, options.quick, large=options.large)
        else:
            GROUPS[name](work, options.quick)
    print("\n| benchmark | ours | peer | ratio |\n|---|---|---|---|")
    for row in ROWS:
        print("| " + " | ".join(row) + " |")


GROUPS = {
    "store": bench_store,
    "index": bench_index,
    "bigstore": bench_bigstore,
    "call": bench_call,
    "calls": bench_calls,
    "pack": bench_pack_many,
    "scale": bench_scale,
    "graph": bench_graph,
    "closure": bench_closure,
}


if __name__ == "__main__":
    main()
