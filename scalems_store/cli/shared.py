"""The click plumbing both command-line tools share: errors, options, progress, JSON.

:class:`ErrorGroup` turns the library's errors into one line and exit 1, and
equips every command it holds the same way (:func:`equip`): ``--store`` is
taken after the command as well as before it, and every parameter that names
an object (``FP``) completes labels and fingerprints from the store in the
shell. :func:`run_main` makes usage errors one line and exit 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from scalems_store.cli.commandline import catch_sigterm, exit_status
from scalems_store.core.errors import StoreError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from scalems_store.store.filestore import FileStore

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ErrorGroup(click.Group):
    """A click group that turns the library's errors into one line and exit 1."""

    error_roots: tuple[type[Exception], ...] = (StoreError,)

    def invoke(self, ctx: click.Context) -> Any:
        ends: tuple[type[BaseException], ...] = (
            *self.error_roots,
            BrokenPipeError,  # the reader went away (``ls | head``)
            KeyboardInterrupt,
        )
        try:
            return super().invoke(ctx)
        except ends as exc:
            ctx.exit(exit_status(exc))
        except OSError as exc:
            if exc.filename is None:
                raise
            ctx.exit(exit_status(exc))  # a path the user gave: -o into a missing directory...

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Add *cmd* equipped as every command of both tools is (see :func:`equip`)."""
        super().add_command(equip(cmd), name)


def diff_parameters(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a ``diff`` command what both tools' take: ``FIRST`` and ``SECOND``
    (``FP[:PATH]``), ``-p/--patch`` and ``--json``."""
    for decorate in reversed(
        [
            click.argument("first", metavar="FP[:PATH]"),
            click.argument("second", metavar="FP[:PATH]"),
            click.option(
                "-p",
                "--patch",
                is_flag=True,
                help="Show the first lines of a unified diff of each text file.",
            ),
            click.option(
                "--json", "as_json", is_flag=True, help="Print a JSON report (sizes in bytes)."
            ),
        ]
    ):
        command = decorate(command)
    return command


def tool_group(
    prog_name: str, help_text: str, error_roots: tuple[type[Exception], ...] = (StoreError,)
) -> ErrorGroup:
    """The top group of a command-line tool: ``-h``/``--help``, ``--store`` before the
    command (kept in ``ctx.obj``), ``--version``, and *error_roots* turned into one line
    and exit 1 (see :class:`ErrorGroup`)."""

    @click.pass_context
    def keep_store(ctx: click.Context, store_path: str | None) -> None:
        ctx.obj = store_path

    group = ErrorGroup(
        name=prog_name,
        callback=keep_store,
        help=help_text,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    group.error_roots = error_roots
    store_option(group)
    click.version_option(package_name="scalems-store", prog_name=prog_name)(group)
    return group


def run_main(group: click.Group, prog_name: str) -> None:
    """Run a CLI group: usage errors are one line and exit 2, as other errors are exit 1."""
    catch_sigterm()
    try:
        status = group.main(prog_name=prog_name, standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else prog_name
        click.echo(f"Usage error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)


def parse_duration(text: str) -> float:
    """Parse ``90``, ``30s``, ``10m``, ``2h``, ``7d`` or ``2w`` into seconds."""
    text = text.strip().lower()
    scale = _UNITS.get(text[-1:])
    number = text[:-1] if scale else text
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration like 30s, 10m, 2h, 7d") from None
    if value < 0:
        raise click.BadParameter("a duration cannot be negative")
    return value


def open_store(ctx: click.Context, *, create: bool = False) -> FileStore:
    """Open the store chosen by ``--store``, ``$SCALEMS_STORE`` or the nearest ``.scalems``;
    say so on a terminal when this creates it.

    Raises:
        StoreNotFound: there is none and *create* is False.
    """
    from scalems_store.store.filestore import FileStore

    store = FileStore(ctx.obj, create=create)
    ctx.call_on_close(store.close)
    if store.created:
        from scalems_store.core.humane import announce_created

        announce_created(store.root)
    return store


@contextmanager
def progress_bar(
    label: str, length: int | Callable[[], int] | None
) -> Iterator[Callable[[int], None] | None]:
    """Yield a callback advancing a progress bar on stderr (None when not a terminal).

    *length* may be a function, called only when a bar is shown.
    """
    if not sys.stderr.isatty():
        yield None
        return
    total = length() if callable(length) else length
    with click.progressbar(length=total or 0, label=label, file=sys.stderr) as bar:
        last = [0]

        def advance(done: int) -> None:
            bar.update(done - last[0])
            last[0] = done

        yield advance


def echo_json(value: Any) -> None:
    """Print *value* as JSON on stdout: indented for a terminal, on one line for a pipe
    or file (as a script reads it; Python's JSON encoder is 4-5x faster without indent,
    which counts for the graph of 10,000 calls or the listing of a million objects)."""
    indent = 2 if sys.stdout.isatty() else None
    click.echo(json.dumps(value, indent=indent, sort_keys=True))


store_option = click.option(
    "--store",
    "store_path",
    metavar="PATH",
    envvar="SCALEMS_STORE",
    show_envvar=True,
    help="Store directory. Default: the nearest .scalems here or above, else ./.scalems "
    "(created on first write).",
)
"""The ``--store`` option shared by both command-line tools."""


def equip(command: click.Command) -> click.Command:
    """Give *command* what every command of both tools has; return it.

    * ``--store PATH`` after the command name, as well as before it (given both
      ways with different paths, it is a usage error);
    * shell completion of labels and fingerprints for each parameter whose metavar
      names an object (``FP``, ``FP...``, ``DIR|FP``), from the chosen store.
    """
    if not any(param.name == "store_after" for param in command.params):
        command.params.append(
            click.Option(
                ["--store", "store_after"],
                metavar="PATH",
                expose_value=False,
                callback=_store_after,
                help="Store directory (as before the command).",
            )
        )
    for param in command.params:
        if "FP" in (param.metavar or "") and param.type is click.STRING:
            param.type = FINGERPRINT
    return command


def _store_after(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    root = ctx.find_root()
    before = root.get_parameter_source("store_path") is ParameterSource.COMMANDLINE
    if before and root.params.get("store_path") != value:
        raise click.UsageError("--store is given twice, with different paths", ctx=ctx)
    ctx.obj = value


class Fingerprint(click.ParamType):
    """A parameter naming an object: completed from the store's labels and fingerprints."""

    name = "fingerprint"

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        """Labels and fingerprints starting with *incomplete* (and directories, where a
        directory is accepted too); nothing, rather than an error, without a store."""
        from click.shell_completion import CompletionItem

        from scalems_store.cli.completion import names

        found: list[CompletionItem] = (
            [CompletionItem(incomplete, type="dir")] if "DIR" in (param.metavar or "") else []
        )
        path = ctx.obj if isinstance(ctx.obj, str) else ctx.find_root().params.get("store_path")
        found.extend(CompletionItem(name, help=what) for name, what in names(path, incomplete))
        return found


FINGERPRINT = Fingerprint()
