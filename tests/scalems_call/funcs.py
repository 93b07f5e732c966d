"""Functions that tests pack into calls (importable by the child through PYTHONPATH)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def add(a: int, b: int) -> int:
    return a + b


def count_runs(ledger: str, value: object = None) -> object:
    """Append a line to *ledger* (outside the work directory): a visible side effect."""
    with open(ledger, "a") as stream:
        stream.write("ran\n")
    return value


def fail_and_count(ledger: str) -> None:
    with open(ledger, "a") as stream:
        stream.write("ran\n")
    raise ValueError("deliberate failure")


def read_environment(name: str) -> str | None:
    return os.environ.get(name)


def use_skeleton() -> list[str]:
    """Read the skeleton's input, write outputs, and list the work directory."""
    text = Path("input.txt").read_text()
    Path("results").mkdir()
    Path("results", "upper.txt").write_text(text.upper())
    return sorted(os.listdir("."))


def talk() -> str:
    print("python stdout")
    sys.stdout.flush()
    subprocess.run(["echo", "subprocess stdout"], check=True)
    os.write(2, b"fd-level stderr\n")
    return "done"


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def write_time() -> int:
    Path("stamp.txt").write_text(repr(time.time_ns()))
    return 1


def write_fixed() -> int:
    Path("fixed.txt").write_text("always the same\n")
    print("same output")
    return 42


def hard_exit() -> None:
    os._exit(7)


def mpi_rank_info() -> tuple[int, int]:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    # one write per line: the ranks' output is merged as written, so a line must not be split
    os.write(1, f"rank {comm.Get_rank()} of {comm.Get_size()}\n".encode())
    return comm.Get_rank(), comm.Get_size()


def leave_a_process(pidfile: str) -> str:
    """Start a process that outlives the call, and say where its pid is."""
    import subprocess

    stray = subprocess.Popen(["sleep", "60"])
    with open(pidfile, "w") as stream:
        stream.write(str(stray.pid))
    return "returned"


def wait_for_removal(flag: str) -> str:
    """Run until the file *flag* is removed."""
    while os.path.exists(flag):
        time.sleep(0.05)
    return "released"


def use_hypothesis() -> str:
    """Import a third-party package and return its version."""
    import hypothesis

    return str(hypothesis.__version__)


def count_and_wait(ledger: str, flag: str) -> str:
    """Append a line to *ledger*, then run until the file *flag* is removed."""
    with open(ledger, "a") as stream:
        stream.write("ran\n")
    return wait_for_removal(flag)


def deep(levels: int) -> int:
    """Leave an output directory *levels* directories deep, with a file at the bottom."""
    fd = os.open(".", os.O_RDONLY)
    for _ in range(levels):
        os.mkdir("d", dir_fd=fd)
        below = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = below
    with open(os.open("bottom.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as out:
        out.write("deep\n")
    os.close(fd)
    return levels


def produce(n: int) -> int:
    """Write n lines to out/data.txt and return n squared."""
    Path("out").mkdir()
    Path("out", "data.txt").write_text("".join(f"{i}\n" for i in range(n)))
    return n * n


def consume(value: int, path: str) -> str:
    """Combine an upstream value and an upstream file given as a path."""
    return f"{value}:{len(Path(path).read_text().splitlines())}"


def total(values: list[int]) -> int:
    return sum(values)


def read_mounted(name: str) -> str:
    return Path(name).read_text()


def simulate(seed: int, ledger: str | None = None) -> int:
    """Write traj.csv (its content depends on the seed only) and return seed * 10."""
    if ledger:
        with open(ledger, "a") as stream:
            stream.write(f"simulate {seed}\n")
    Path("traj.csv").write_text("".join(f"{seed},{i}\n" for i in range(seed + 1)))
    return seed * 10


def analyze(paths: list[str], ledger: str | None = None) -> int:
    """The total number of lines in the files given."""
    if ledger:
        with open(ledger, "a") as stream:
            stream.write("analyze\n")
    return sum(len(Path(p).read_text().splitlines()) for p in paths)


def pick(values: list[int], n: int = 1) -> list[int]:
    return sorted(values)[-n:]


def read_external(path: str, ledger: str) -> str:
    """Return the content of a file outside the store (so a forced rerun may differ)."""
    with open(ledger, "a") as stream:
        stream.write("read_external\n")
    text = Path(path).read_text()
    Path("value.txt").write_text(text)
    return text


def shout(text: str, ledger: str) -> str:
    with open(ledger, "a") as stream:
        stream.write(f"shout {text}\n")
    return text.upper()


def identity(value: object) -> object:
    return value


def leave(code: object) -> None:
    """Leave with sys.exit(code) instead of returning."""
    sys.exit(code)  # type: ignore[arg-type]


def how_started() -> str:
    """``forked`` when the call's parent is the fork server, else ``fresh``."""
    parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    return "forked" if b"scalems_call.execution.forkserver" in parent else "fresh"


def what_python_shows() -> dict[str, object]:
    """What a call sees of its interpreter that a fork server could leak or miss."""
    main = sys.modules["__main__"]
    return {
        "main": Path(str(getattr(main, "__file__", "?"))).name,
        "server names": [n for n in ("serve", "end", "become_child") if hasattr(main, n)],
        "safe_path": sys.flags.safe_path,
        "tz": time.strftime("%z", time.localtime(0)),
    }


def interrupt() -> None:
    raise KeyboardInterrupt


_remembered: list[str] = []


def remember(value: str) -> tuple[list[str], str | None]:
    """Change module state and the environment; say what was there before."""
    before = list(_remembered), os.environ.get("SCALEMS_TEST_LEAK")
    _remembered.append(value)
    os.environ["SCALEMS_TEST_LEAK"] = value
    return before


_kept: list[object] = []


def leave_work_for_exit(text: str) -> str:
    """Leave work to be finished at exit: a file never closed, an atexit handler, a
    non-daemon thread still running, and output never flushed."""
    import atexit
    import threading

    unclosed = open("unclosed.txt", "w")  # noqa: SIM115 - left open on purpose
    unclosed.write(text)
    _kept.append(unclosed)
    atexit.register(Path("atexit.txt").write_text, text)

    def late() -> None:
        time.sleep(0.3)
        Path("thread.txt").write_text(text)

    threading.Thread(target=late).start()
    print(text, end="")
    return text


def pid_and_sleep(pidfile: str, seconds: float) -> None:
    """Write this process's pid to *pidfile*, then sleep."""
    Path(pidfile).write_text(str(os.getpid()))
    time.sleep(seconds)


def import_from_workdir(name: str) -> object:
    """Import module *name* from the work directory (the skeleton), as ``python -m`` can."""
    import importlib

    return importlib.import_module(name).VALUE


def kill_self(signal_number: int) -> None:
    """End this call's process with a signal, as a cancelled job's would end."""
    import signal as signals

    os.kill(os.getpid(), signals.Signals(signal_number))


def fragile_simulate(seed: int, diverge: bool = False) -> int:
    """Write traj.csv and return the seed, or, asked to diverge, fail before writing anything."""
    if diverge:
        raise FloatingPointError(f"seed {seed} diverged at step 12")
    Path("traj.csv").write_text(f"{seed},0\n")
    Path("md.log").write_text("done\n")
    return seed


def write_unnamed() -> int:
    """Write one file with a UTF-8 name and one whose name is not UTF-8 (Latin-1 bytes)."""
    with open("fine.txt", "w") as out:
        out.write("kept\n")
    with open(b"caf\xe9.txt", "wb") as out:
        out.write(b"left out\n")
    return 1


def settle(seed: int, ledger: str) -> int:
    """Write state.txt, whose content depends on the seed's parity only."""
    with open(ledger, "a") as stream:
        stream.write(f"settle {seed}\n")
    Path("state.txt").write_text(f"{seed % 2}\n")
    return seed


def read_text(path: str) -> tuple[str, str]:
    """The name and the text of the file at *path*."""
    return os.path.basename(path), Path(path).read_text()
