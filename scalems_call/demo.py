"""End-to-end demo: ``python -m scalems_call.demo`` (uses the store in ./.scalems).

It writes a small input directory, packs a call of :func:`simulate` with it as
the skeleton, runs it by fingerprint, runs it again (a cache hit), shows the
result, checks that a rerun reproduces it, and verifies the store: the same
commands a user types.
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scalems_store.core import humane


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
        {"scalems-store": "scalems_store", "scalems-call": "scalems_call.cmdline.commands"}[
            argv[0]
        ],
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
    print(
        "  The recorded and rerun result fingerprints differ although every output is the\n"
        "  same: a result record includes its provenance (host, start and end times), so\n"
        "  each run makes a new record. The check compares the outputs themselves.\n",
        flush=True,
    )
    _run("scalems-store", "verify")
    print(f"demo done: call {call[:12]} is in ./.scalems; try")
    print(f"  {_command('scalems-call')} result {call[:8]} -o out")
    activate = os.path.join(os.path.dirname(sys.executable), "activate")
    if _command("scalems-call") != "scalems-call" and os.path.exists(activate):
        print(f"(or activate the environment first: source {humane.path(activate)})")


def _command(name: str) -> str:
    """How to type the installed command *name*: its bare name when the shell finds this
    environment's script, else the script's path (the environment is not activated)."""
    script = os.path.join(os.path.dirname(sys.executable), name)
    found = shutil.which(name)
    if not os.path.exists(script) or (found and os.path.samefile(found, script)):
        return name
    return humane.path(script)


if __name__ == "__main__":
    main()
