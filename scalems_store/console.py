"""Start-up of ``scalems-store``: the commonest command lines run without click.

Importing click costs about 30 ms, three times the interpreter's own start-up
and more than adding or extracting a small object, so a script that calls
``scalems-store get`` in a loop mostly waits for click. A command line of
exactly one of these shapes runs here, through the same library calls as its
click command in :mod:`scalems_store.cli`::

    scalems-store [--store PATH] add PATH...        every PATH exists; stderr is not a terminal
    scalems-store [--store PATH] get FP [-o DEST]   without -o, stdout is not a terminal
    scalems-store [--store PATH] verify [FP...]     stderr is not a terminal

Any other line (another command or option, ``--help``, ``-``, a missing path,
a terminal that would show a progress bar) goes to click. Usage errors, help
and progress bars therefore have one source, and the output of a line run
here is the output click would give (``tests/cli/test_console.py`` runs both).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .errors import StoreError

if TYPE_CHECKING:
    from .store import FileStore

Quick = Callable[["FileStore", list[str], "str | None"], int]


def main() -> None:
    """Console-script entry point of ``scalems-store``."""
    status = run_quick(sys.argv[1:])
    if status is None:
        from .cli import cli, run_main

        run_main(cli, "scalems-store")
    sys.exit(status)


def run_quick(argv: Sequence[str]) -> int | None:
    """Run *argv* if it has one of the quick shapes; return its exit status, else None."""
    parsed = _parse(list(argv))
    if parsed is None:
        return None
    command, store_path, args, output = parsed
    catch_sigterm()
    try:
        from .store import FileStore

        with FileStore(store_path, create=command == "add") as store:
            return _COMMANDS[command](store, args, output)
    except (StoreError, BrokenPipeError, KeyboardInterrupt) as exc:
        return exit_status(exc)


def exit_status(exc: BaseException) -> int:
    """Report what ended a command, as both front ends do; return the exit status.

    A library error is one line ``ErrorName: message`` and 1; a reader that went
    away (``get FP | head``) is 0, not a traceback; Ctrl-C is ``interrupted``, 130.
    """
    if isinstance(exc, BrokenPipeError):
        sys.stderr.close()
        return 0
    if isinstance(exc, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return 130
    print(error_line(exc), file=sys.stderr)
    return 1


def catch_sigterm() -> None:
    """Make SIGTERM (scancel, kill, a time limit) unwind like Ctrl-C, exiting 143.

    Leases, work directories and temporary files are then cleaned up on the way
    out. Outside the main thread, signals are left to the host program.
    """
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def error_line(exc: BaseException) -> str:
    """The one line a library error is reported as: ``ErrorName: message``."""
    return f"{type(exc).__name__}: {exc}"


def split_store_option(args: list[str]) -> tuple[str | None, list[str]] | None:
    """Take a leading ``--store PATH`` (or ``--store=PATH``) off *args*; None if malformed."""
    store_path = None
    if args[:1] == ["--store"] and len(args) > 1:
        store_path, args = args[1], args[2:]
    elif args and args[0].startswith("--store="):
        store_path, args = args[0].partition("=")[2], args[1:]
    if (store_path or "").startswith("-"):
        return None
    return store_path, args


def _parse(args: list[str]) -> tuple[str, str | None, list[str], str | None] | None:
    split = split_store_option(args)
    if split is None:
        return None
    store_path, args = split
    if not args or args[0] not in _COMMANDS:
        return None
    command, rest = args[0], args[1:]
    output = None
    if command == "get" and len(rest) == 3 and rest[1] in ("-o", "--output"):
        output, rest = rest[2], rest[:1]
    if any(arg.startswith("-") for arg in rest) or (output or "").startswith("-"):
        return None
    if command == "get":
        quick = len(rest) == 1 and (output is not None or not sys.stdout.isatty())
    elif command == "add":
        quick = bool(rest) and all(os.path.lexists(p) for p in rest) and not sys.stderr.isatty()
    else:
        quick = not sys.stderr.isatty()
    return (command, store_path, rest, output) if quick else None


def _add(store: FileStore, paths: list[str], output: str | None) -> int:
    for path in paths:
        fp = store.add_tree(path) if os.path.isdir(path) else store.add_file(path)
        print(fp, flush=True)
    return 0


def _get(store: FileStore, args: list[str], output: str | None) -> int:
    if output is not None:
        store.materialize(args[0], output)
    else:
        sys.stdout.flush()
        store.write_to(args[0], sys.stdout.buffer)
    return 0


def _verify(store: FileStore, fingerprints: list[str], output: str | None) -> int:
    report = store.verify(fingerprints or None)
    for fp, problem in report.problems:
        print(f"{fp}  {problem}")
    print(report.summary(), file=sys.stderr)
    return 0 if report.ok else 1


_COMMANDS: dict[str, Quick] = {"add": _add, "get": _get, "verify": _verify}
