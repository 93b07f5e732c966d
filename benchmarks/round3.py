"""Issue 25's rows, before and after in one run: ``add`` of one 512 MiB file (durable)
against ``cp F D && sync D``, and ``verify`` of a mixed store (20,000 objects of 2-6 KiB
and 8 of 32 MiB) against ``find objects -type f -print0 | xargs -0 -P 2 -n 2500 b3sum``.

Usage::

    python benchmarks/round3.py [--before DIR] [--repeat N] [--workdir DIR] [--only add,verify]

``--before`` is the ``bin`` directory of another installation (a venv of an older
checkout): its ``scalems-store`` is timed in the same rounds as this one's and the peer,
each round running all three in turn (ABCABC...), each after its own untimed set-up.
Medians are printed, and the median of each round's ratio.

Each command is run once untimed first, with ``PYTHONDONTWRITEBYTECODE`` unset, so that
both installations run from their bytecode caches, as an installed package does (an
editable checkout without ``__pycache__`` compiles every module at every start: some
60 ms of the ``add`` row when this was measured without them).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
from pathlib import Path

from common import BIN, Command, fresh, run_timed

SMALL, LARGE = 20_000, 8


def sides(before: str | None) -> dict[str, str]:
    found = {"after": str(BIN / "scalems-store")}
    if before:
        found["before"] = str(Path(before) / "scalems-store")
    return found


CPU: dict[str, list[float]] = {}
"""CPU seconds (user + system) of each command's processes, run by run: what it costs a
machine whose cores are busy with other work, where the wall time says more of the others."""


def rounds(commands: dict[str, Command], repeat: int) -> dict[str, list[float]]:
    import resource

    times: dict[str, list[float]] = {name: [] for name in commands}
    CPU.clear()
    for command in commands.values():
        run_timed(command)  # untimed: bytecode caches written, files in the page cache
    for _ in range(repeat):
        for name, command in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            times[name].append(run_timed(command))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            CPU.setdefault(name, []).append(used)
    return times


def show(what: str, times: dict[str, list[float]], peer: str, target: str, load: float) -> None:
    print(
        f"{what} (1-minute load average at the start: {load:.1f}, "
        f"at the end: {os.getloadavg()[0]:.1f})"
    )
    for name, values in times.items():
        line = f"  {name:<8} median {statistics.median(values):.3f} s"
        if name != peer:
            ratios = [a / b for a, b in zip(values, times[peer], strict=True)]
            overall = statistics.median(values) / statistics.median(times[peer])
            line += (
                f"  ratio of medians {overall:.2f}x"
                f"  median of round ratios {statistics.median(ratios):.2f}x"
            )
        line += f"  CPU {statistics.median(CPU[name]):.3f} s"
        print(line + ("" if name != peer else f"  (peer; target {target})"))
    print("  all:", {name: [round(v, 3) for v in values] for name, values in times.items()})


def bench_add(work: Path, clis: dict[str, str], repeat: int) -> None:
    big = work / "big-512.bin"
    if not big.exists():
        with open(big, "wb") as stream:
            for _ in range(512):
                stream.write(os.urandom(1 << 20))
    subprocess.run(["cat", str(big)], stdout=subprocess.DEVNULL, check=True)
    copy = work / "copy.bin"
    commands = {
        name: Command(
            [cli, "--store", str(work / f"store-add-{name}"), "add", str(big)],
            before=fresh(work / f"store-add-{name}"),
        )
        for name, cli in clis.items()
    }
    commands["cp"] = Command(
        ["sh", "-c", f"cp {big} {copy} && sync {copy}"], before=lambda: copy.unlink(True)
    )
    load = os.getloadavg()[0]
    show("add 512 MiB file, durable", rounds(commands, repeat), "cp", "<= 1.1x", load)


def fill_mixed(root: Path) -> None:
    """A store of many small objects and a few large ones (kept between runs)."""
    from scalems_store import FileStore

    if (root / "store.json").exists():
        return
    staging = root.with_name(root.name + ".filling")
    shutil.rmtree(staging, ignore_errors=True)
    rng = random.Random(25)
    with FileStore(staging, durable=False) as store:
        for _ in range(SMALL):
            store.add_bytes(os.urandom(rng.randint(2048, 6144)))
        for _ in range(LARGE):
            store.add_bytes(os.urandom(32 << 20))
    staging.rename(root)


def bench_verify(work: Path, clis: dict[str, str], repeat: int) -> None:
    root = work / "store-mixed"
    fill_mixed(root)
    commands = {name: Command([cli, "--store", str(root), "verify"]) for name, cli in clis.items()}
    commands["b3sum"] = Command(
        ["sh", "-c", f"cd {root} && find objects -type f -print0 | xargs -0 -P 2 -n 2500 b3sum"]
    )
    load = os.getloadavg()[0]
    show(
        f"verify, {SMALL} objects of 2-6 KiB + {LARGE} of 32 MiB",
        rounds(commands, repeat),
        "b3sum",
        "<= 1.0x",
        load,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="bin directory of the installation to compare")
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--workdir", default="/dev/shm/scalems-bench")
    parser.add_argument("--only", default="add,verify")
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    clis = sides(args.before)
    groups = args.only.split(",")
    if "add" in groups:
        bench_add(work, clis, args.repeat)
    if "verify" in groups:
        bench_verify(work, clis, args.repeat)


if __name__ == "__main__":
    main()
