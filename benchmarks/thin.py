"""Trees stored thin (issue 24, item 2): what 200 calls over a 20 MiB skeleton cost the
store, and what reading a thin tree costs against reading the same tree whole.

    python benchmarks/thin.py --workdir /dev/shm/scalems-thin   # 200 calls, 20 MiB, 512 KiB
    python benchmarks/thin.py --calls 20 --skeleton-mib 2       # a smoke run

Growth is measured twice in the same run: as stored now, and with every tree kept whole
(``thintar.THRESHOLD`` out of reach: the bytes every earlier version wrote). Reading is
timed alternately (whole, thin, whole, ...), medians: ``write_to`` (``get FP``), and
``materialize`` (``get FP -o DIR``, ``result -o``), and, as the peer, ``cat`` of the
whole archive's file to /dev/null.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scalems_call import pack, run
from scalems_store import FileStore
from scalems_store.tar import thintar
from tests.scalems_call import outfuncs


def stored_bytes(root: Path) -> int:
    """The bytes of every object file and meta file of the store at *root*."""
    total = 0
    for top in ("objects", "meta"):
        for directory, _, files in os.walk(root / top):
            total += sum(os.lstat(os.path.join(directory, name)).st_size for name in files)
    return total


def growth(work: Path, calls: int, skeleton_mib: int, output: int, whole: bool) -> dict[str, float]:
    """Run *calls* calls over a skeleton of *skeleton_mib* MiB, each writing *output*
    bytes; return what the runs added to the store, and their wall time."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "skel").mkdir(parents=True)
    (work / "skel" / "topol.tpr").write_bytes(os.urandom(skeleton_mib << 20))
    (work / "skel" / "md.mdp").write_text("nsteps = 1000\n")
    kept = thintar.THRESHOLD
    thintar.THRESHOLD = 1 << 62 if whole else kept
    try:
        store = FileStore(work / "store")
        skeleton = store.add_tree(work / "skel")
        fps = [
            pack(outfuncs.write_output, (seed, output), store=store, skeleton=skeleton)
            for seed in range(calls)
        ]
        before = stored_bytes(Path(store.root))
        start = time.perf_counter()
        for fp in fps:
            assert run(fp, store=store).status == "success"
        seconds = time.perf_counter() - start
        grown = stored_bytes(Path(store.root)) - before
    finally:
        thintar.THRESHOLD = kept
    return {"grown": grown, "seconds": seconds}


def reading(work: Path, size_mib: int, repeat: int) -> dict[str, float]:
    """Median seconds to read a tree of one *size_mib* MiB file and a small one, stored
    thin and stored whole, and of ``cat`` of the whole archive."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "tree").mkdir(parents=True)
    (work / "tree" / "topol.tpr").write_bytes(os.urandom(size_mib << 20))
    (work / "tree" / "traj.csv").write_text("t,x\n0,1\n")
    kept = thintar.THRESHOLD
    thin, whole = FileStore(work / "thin"), FileStore(work / "whole")
    fp = thin.add_tree(work / "tree")
    thintar.THRESHOLD = 1 << 62
    try:
        assert whole.add_tree(work / "tree") == fp
    finally:
        thintar.THRESHOLD = kept
    times: dict[str, list[float]] = {}

    def timed(name: str, action: object) -> None:
        start = time.perf_counter()
        action()  # type: ignore[operator]
        times.setdefault(name, []).append(time.perf_counter() - start)

    for _ in range(repeat):
        for label, store in (("whole", whole), ("thin", thin)):
            with open(os.devnull, "wb") as null:
                timed(f"get {label}", lambda s=store, n=null: s.write_to(fp, n))
            out = work / f"out-{label}"
            shutil.rmtree(out, ignore_errors=True)
            timed(f"get -o {label}", lambda s=store, o=out: s.materialize(fp, o))
        timed(
            "cat whole",
            lambda: subprocess.run(
                ["cat", whole.object_path(fp)], stdout=subprocess.DEVNULL, check=True
            ),
        )
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/dev/shm/scalems-thin"))
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--skeleton-mib", type=int, default=20)
    parser.add_argument("--output-kib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    output = args.output_kib << 10
    outputs = args.calls * output
    load = os.getloadavg()[0]
    print(
        f"{args.calls} calls over a {args.skeleton_mib} MiB skeleton, each writing "
        f"{args.output_kib} KiB ({outputs} bytes of outputs); load average {load:.1f}"
    )
    for whole in (True, False):
        got = growth(args.workdir / "growth", args.calls, args.skeleton_mib, output, whole)
        name = "whole trees (before)" if whole else "thin trees (after)"
        extra = (got["grown"] - outputs) / args.calls
        print(
            f"| store growth, {name} | {got['grown'] / 2**20:.1f} MiB | "
            f"{got['grown'] / outputs:.4f}x the outputs | {extra:.0f} bytes a call beyond "
            f"its output | runs {got['seconds']:.1f} s |"
        )
    got = reading(args.workdir / "read", args.skeleton_mib, args.repeat)
    for what in ("get", "get -o"):
        ratio = got[f"{what} thin"] / got[f"{what} whole"]
        thin_ms, whole_ms = got[f"{what} thin"] * 1e3, got[f"{what} whole"] * 1e3
        print(
            f"| `{what}` of a {args.skeleton_mib} MiB tree | thin {thin_ms:.1f} ms"
            f" | whole {whole_ms:.1f} ms | {ratio:.2f}x |"
        )
    print(f"| `cat` of the whole archive (peer) | {got['cat whole'] * 1e3:.1f} ms | | |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
