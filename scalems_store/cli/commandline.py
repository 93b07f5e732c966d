"""How a command line of either tool starts and ends, without click.

Shared by ``scalems-store`` and ``scalems-call``, and by their quick paths
(which start without importing click): one report of what ends a command,
SIGTERM that unwinds like Ctrl-C, and the ``--store`` option read by hand.
"""

from __future__ import annotations

import contextlib
import signal
import sys


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
    """The one line a library error is reported as: ``ErrorName: message`` (for a system
    error on a file: ``ErrorName: 'path': what went wrong``)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{type(exc).__name__}: {exc.filename!r}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def split_store_option(args: list[str]) -> tuple[str | None, list[str]] | None:
    """Take ``--store PATH`` (or ``--store=PATH``) off *args*, given before the command or
    after it (once); None if it is malformed or given twice (click reports that)."""
    store_path = None
    if args[:1] == ["--store"] and len(args) > 1:
        store_path, args = args[1], args[2:]
    elif args and args[0].startswith("--store="):
        store_path, args = args[0].partition("=")[2], args[1:]
    if (store_path or "").startswith("-"):
        return None
    taken = _store_after(args[1:])
    if taken is None:
        return None
    after, rest = taken
    if after is not None:
        if store_path is not None:
            return None
        store_path = after
    return store_path, args[:1] + rest


def _store_after(args: list[str]) -> tuple[str | None, list[str]] | None:
    """Take one ``--store PATH`` (or ``--store=PATH``) off the arguments after the command;
    None when it is malformed or given twice (click reports that)."""
    found: str | None = None
    kept: list[str] = []
    pending = iter(args)
    for arg in pending:
        if arg != "--store" and not arg.startswith("--store="):
            kept.append(arg)
            continue
        if found is not None or "--" in kept:
            return None
        found = arg.partition("=")[2] if "=" in arg else next(pending, "")
        if not found or found.startswith("-"):
            return None
    return found, kept
