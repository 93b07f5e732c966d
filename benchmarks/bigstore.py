"""Whole-store operations at scale: 10,000 and 100,000 objects (1,000,000 with --large).

For each size, in one run and alternated with its peer:

- ``verify`` against ``find objects -type f -print0 | xargs -0 -P <cores> b3sum``
  (target: at least the peer's throughput, ratio <= 1.0x);
- ``reindex`` against ``find objects -printf`` (target <= 2x);
- ``ls --json`` and ``gc`` with nothing to remove (targets < 3 s at 1M);
- the cost per object of each, so that growth faster than linear shows.

And filling a store: ``FileStore.add_bytes`` in a loop (target >= 20,000
objects/s without fsync), the same inside ``store.batch()`` with the default
durability (target: no more than 2x the time without fsync), and
``scalems-store add --files-from`` of many files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from common import Command, fresh, report, timed, timed_pair, tool

SMALL_OBJECT = b"object %d\n"
LARGE_OBJECTS = 5
LARGE_SIZE = 20 << 20


def fill(root: Path, count: int) -> None:
    """Make a store of *count* small objects and a few large ones (kept between runs)."""
    from scalems_store import FileStore

    if (root / "store.json").exists():
        return
    start = time.perf_counter()
    staging = root.with_name(root.name + ".filling")
    shutil.rmtree(staging, ignore_errors=True)
    with FileStore(staging, durable=False) as store:
        for i in range(count - LARGE_OBJECTS):
            store.add_bytes(SMALL_OBJECT % i)
        for _ in range(LARGE_OBJECTS):
            store.add_bytes(os.urandom(LARGE_SIZE))
    staging.rename(root)
    print(f"(filled a store of {count} objects in {time.perf_counter() - start:.1f} s)")


def bench_bigstore(work: Path, quick: bool, large: bool = False) -> None:
    store_cli = tool("scalems-store")
    sizes = [10_000] if quick else [10_000, 100_000] + ([1_000_000] if large else [])
    cores = os.cpu_count() or 1
    per_object: dict[str, list[str]] = {}
    for count in sizes:
        root = work / f"bigstore-{count}"
        fill(root, count)
        cli = [store_cli, "--store", str(root)]
        objects = str(root / "objects")
        repeat = 5 if count <= 100_000 else 3
        if shutil.which("b3sum"):
            ours, peer = timed_pair(
                [*cli, "verify"],
                [
                    "sh",
                    "-c",
                    f"find {objects} -type f -print0 | xargs -0 -P {cores} -n 2000 b3sum",
                ],
                repeat=repeat,
            )
            report(
                f"verify, {count} objects", ours, peer, f"find | xargs -P{cores} b3sum", "<= 1.0x"
            )
            per_object.setdefault("verify", []).append(_per(ours, count))
        else:
            print("b3sum not installed (apt install b3sum): skipping verify")
        ours, peer = timed_pair(
            [*cli, "reindex"], ["find", objects, "-printf", "%s %T@ %p\\n"], repeat=repeat
        )
        report(f"reindex, {count} objects", ours, peer, "find -printf", "<= 2x")
        per_object.setdefault("reindex", []).append(_per(ours, count))
        ls = timed(Command([*cli, "ls", "--json"]), repeat=repeat)
        report(f"ls --json, {count} objects", ls, 3.0, "target", "< 3 s at 1M")
        per_object.setdefault("ls --json", []).append(_per(ls, count))
        gc = timed(Command([*cli, "gc"]), repeat=repeat)  # all young: nothing to remove
        report(f"gc with nothing to remove, {count} objects", gc, 3.0, "target", "< 3 s at 1M")
        per_object.setdefault("gc", []).append(_per(gc, count))
    print("cost per object (us) at " + ", ".join(f"{n:,}" for n in sizes) + ":")
    for what, costs in per_object.items():
        print(f"  {what:<12} " + "  ".join(costs))
    _bench_filling(work, 5_000 if quick else 50_000)


def _per(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:.2f}"


def _bench_filling(work: Path, count: int) -> None:
    from scalems_store import FileStore

    def add_loop(durable: bool, batch: bool) -> float:
        root = work / "filling"
        shutil.rmtree(root, ignore_errors=True)
        with FileStore(root, durable=durable) as store:
            store.list()  # the index exists: its rows are part of the cost
            start = time.perf_counter()
            with store.batch() if batch else contextlib.nullcontext():
                for i in range(count):
                    store.add_bytes(b"fill %d %d" % (i, durable))
        elapsed = time.perf_counter() - start  # closing wrote the last index rows
        shutil.rmtree(root)
        return elapsed

    plain, batched, one_by_one = [], [], []
    for _ in range(3):  # alternated
        plain.append(add_loop(False, False))
        batched.append(add_loop(True, True))
        one_by_one.append(add_loop(True, False))
    best = min(plain)
    report(
        f"add_bytes x {count}, no fsync (objects/s)",
        count / best,
        20_000,
        "target",
        ">= 1.0x",
        unit="/s",
    )
    report(
        f"add_bytes x {count} in batch(), fsync vs none",
        min(batched),
        best,
        "same loop, no fsync",
        "<= 2x",
    )
    report(f"add_bytes x {count}, fsync each (no batch)", min(one_by_one), best, "no fsync", "info")
    files = work / "many-files"
    if not files.exists():
        files.mkdir()
        for i in range(count):
            (files / f"f{i}").write_bytes(b"file %d\n" % i)
    listing = work / "many-files.list"
    listing.write_text("".join(f"{files}/f{i}\n" for i in range(count)))
    store = work / "added"
    cli_add = Command(
        [tool("scalems-store"), "--store", str(store), "add", "--files-from", str(listing)],
        before=lambda: shutil.rmtree(store, ignore_errors=True),
    )
    cp = Command(
        ["sh", "-c", f"mkdir {work}/copied && cp -r {files} {work}/copied/"],
        before=lambda: shutil.rmtree(work / "copied", ignore_errors=True),
    )
    ours, peer = timed_pair(cli_add, cp, repeat=3)
    report(f"scalems-store add --files-from, {count} files", ours, peer, "cp -r", "info")
    print(f"  ({count / ours:.0f} files/s)")
    _bench_import(work, store, count)
    subprocess.run(["rm", "-rf", str(store), str(work / "copied")], check=True)


def _bench_import(work: Path, source: Path, count: int) -> None:
    """Import a bundle of *count* small objects, without fsync and with durability."""
    from scalems_store import FileStore
    from scalems_store.maint.bundle import export

    bundle = work / "many.bundle"
    with FileStore(source) as store, open(bundle, "wb") as out:
        export(store, [info.fingerprint for info in store.list()], out)
    target = work / "imported"
    runs = {
        flag: Command(
            [tool("scalems-store"), "--store", str(target), "import", str(bundle)],
            {"SCALEMS_STORE_FSYNC": flag},
            fresh(target),
        )
        for flag in ("0", "1")
    }
    durable, plain = timed_pair(runs["1"], runs["0"], repeat=3)
    report(
        f"import of a bundle of {count} objects (objects/s)",
        count / plain,
        20_000,
        "target",
        ">= 1.0x",
        unit="/s",
    )
    report(f"import of {count} objects, durable vs no fsync", durable, plain, "no fsync", "<= 2x")
    shutil.rmtree(target, ignore_errors=True)
    bundle.unlink()
