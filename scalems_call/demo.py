"""End-to-end demo: ``python -m scalems_call.demo`` (uses the store in ./.scalems).

It writes a small input directory, packs a call of :func:`simulate` with it as
the skeleton, runs it by fingerprint, runs it again (a cache hit), shows the
result, checks that a rerun reproduces it, and verifies the store: the same
commands a user types.
"""

from __future__ import annotations

import random
import shlex
import subprocess
import sys
import time
from pathlib import Path


def simulate(steps: int, seed: int = 7) -> dict[str, float]:
    """A toy random-walk "simulation": reads params.txt, writes trajectory.csv, prints progress."""
    scale = float(Path("params.txt").read_text().split("=")[1])
    walk = random.Random(seed)
    position = 0.0
    with open("trajectory.csv", "w") as out:
        out.write("step,position\n")
        for step in range(steps):
            position += walk.gauss(0.0, scale)
            out.write(f"{step},{position:.6f}\n")
    print(f"simulated {steps} steps with scale {scale}")
    return {"steps": steps, "final": round(position, 6)}


def _run(*argv: str, expect: int = 0) -> str:
    print(f"$ {shlex.join(argv)}", flush=True)
    command = [
        sys.executable,
        "-m",
        {"scalems-store": "scalems_store", "scalems-call": "scalems_call.commands"}[argv[0]],
    ]
    started = time.perf_counter()
    proc = subprocess.run([*command, *argv[1:]], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    print(f"  ({elapsed * 1000:.0f} ms, exit {proc.returncode})\n", flush=True)
    if proc.returncode != expect:
        sys.exit(f"demo: {argv[0]} {argv[1]} exited {proc.returncode}, expected {expect}")
    return proc.stdout.strip()


def main() -> None:
    """Run the demo in the current directory."""
    inputs = Path("demo-input")
    inputs.mkdir(exist_ok=True)
    (inputs / "params.txt").write_text("scale=0.5\n")
    tree = _run("scalems-store", "add", str(inputs), "--label", "demo-input")
    call = _run(
        "scalems-call",
        "pack",
        "scalems_call.demo:simulate",
        "--args-json",
        "[1000]",
        "--skeleton",
        tree,
    )
    _run("scalems-call", "exec", call)
    _run("scalems-call", "exec", call, "--json")
    _run("scalems-call", "result", call)
    _run("scalems-call", "rerun", call, "--check")
    _run("scalems-store", "verify")
    print(
        f"demo done: call {call[:12]} is in ./.scalems; try 'scalems-call result {call[:8]} -o out'"
    )


if __name__ == "__main__":
    main()
