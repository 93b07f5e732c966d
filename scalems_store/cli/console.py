"""Start-up of ``scalems-store``: the commonest command lines run without click.

Importing click costs about 30 ms, three times the interpreter's own start-up
and more than adding or extracting a small object, so a script that calls
``scalems-store get`` in a loop mostly waits for click. A command line of
exactly one of these shapes runs here, through the same library calls as its
click command in :mod:`scalems_store.cli.app`::

    scalems-store [--store PATH] add PATH...            every PATH addable; stderr not a terminal
    scalems-store [--store PATH] get FP[:PATH] [-o DEST] without -o, stdout is not a terminal
    scalems-store [--store PATH] verify [FP...]         stderr is not a terminal

``--store PATH`` may also come after the command (once; given both ways, the
paths must agree). Any other line (another command or option, ``--help``, ``-``, a path
that cannot be added, a terminal that would show a progress bar) goes to click. Usage errors, help
and progress bars therefore have one source, and the output of a line run
here is the output click would give (``tests/cli/test_console.py`` runs both).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING

from scalems_store.cli.commandline import catch_sigterm, exit_status, split_store_option
from scalems_store.core.errors import StoreError

if TYPE_CHECKING:
    from scalems_store.store.filestore import FileStore

Quick = Callable[["FileStore", list[str], "str | None"], int]


def main() -> None:
    """Console-script entry point of ``scalems-store``."""
    status = run_quick(sys.argv[1:])
    if status is None:
        from scalems_store.cli.app import cli
        from scalems_store.cli.shared import run_main

        run_main(cli, "scalems-store")
    sys.exit(status)


def run_quick(argv: Sequence[str]) -> int | None:
    """Run *argv* if it has one of the quick shapes; return its exit status, else None."""
    _checked.cache_clear()  # paths are judged anew for each command line
    parsed = _parse(list(argv))
    if parsed is None:
        return None
    command, store_path, args, output = parsed
    catch_sigterm()
    try:
        from scalems_store.store.filestore import FileStore

        with FileStore(store_path, create=command == "add") as store:
            if store.created:
                from scalems_store.core.humane import announce_created

                announce_created(store.root)
            return _COMMANDS[command](store, args, output)
    except (StoreError, BrokenPipeError, KeyboardInterrupt) as exc:
        return exit_status(exc)


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
        quick = bool(rest) and _checked(tuple(rest)) is not None and not sys.stderr.isatty()
    else:
        quick = not sys.stderr.isatty()
    return (command, store_path, rest, output) if quick else None


@functools.lru_cache(maxsize=1)
def _checked(paths: tuple[str, ...]) -> frozenset[str] | None:
    """The directories among *paths* if every path can be added, else None (click then
    says why, as the command does); checked once for the parse and the add."""
    from scalems_store.cli.adding import check_paths

    try:
        return frozenset(check_paths(paths))
    except StoreError:
        return None


def _add(store: FileStore, paths: list[str], output: str | None) -> int:
    from scalems_store.cli.adding import add_paths

    directories = _checked(tuple(paths))
    assert directories is not None  # a quick line: checked as it was parsed

    def add_one(path: str, directory: bool, label: str | None) -> str:
        return store.add_tree(path) if directory else store.add_file(path)

    def report(added: list[str]) -> None:
        if added:
            print("\n".join(added), flush=True)

    add_paths(store, paths, set(directories), add_one, report)
    return 0


def _get(store: FileStore, args: list[str], output: str | None) -> int:
    from scalems_store.core.errors import ObjectNotFound

    try:
        return _get_here(store, args[0], output)
    except ObjectNotFound as exc:  # not here: from the default remote, if it has it
        from scalems_store.remote.lazy import retry_spec

        spec, line = retry_spec(store, args[0], str(exc))
        print(line, file=sys.stderr)
        return _get_here(store, spec, output)


def _get_here(store: FileStore, spec: str, output: str | None) -> int:
    materialize: Callable[[str, str], object] = store.materialize
    write: Callable[[str, IO[bytes]], int] = store.write_to
    if ":" in spec:  # FP:path (or a blake3: URI) goes through treeview; a plain FP need not load it
        from scalems_store.store import treeview

        materialize = functools.partial(treeview.materialize_spec, store)
        write = functools.partial(treeview.write_spec, store)
    if output is not None:
        materialize(spec, output)
    else:
        sys.stdout.flush()
        write(spec, sys.stdout.buffer)
    return 0


def _verify(store: FileStore, fingerprints: list[str], output: str | None) -> int:
    from scalems_store.maint.audit import verify

    report = verify(store, fingerprints or None)
    for fp, problem in report.problems:
        print(f"{fp}  {problem}")
    print(report.summary(), file=sys.stderr)
    return 0 if report.ok else 1


_COMMANDS: dict[str, Quick] = {"add": _add, "get": _get, "verify": _verify}
