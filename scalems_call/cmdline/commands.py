"""``scalems-call``: pack, run, inspect and rerun calls by fingerprint.

Exit status: 0 success; 1 a call raised, timed out or could not be loaded, or
an error (one line on stderr); 2 usage errors; 3 ``rerun --check`` found differences.

The cache-hit path of ``exec`` imports neither dill nor subprocess nor tarfile.
"""

from __future__ import annotations

from scalems_call.cmdline import cmd_exec, cmd_graph, cmd_run, cmd_show
from scalems_call.identity.errors import CallError
from scalems_store.cli.shared import run_main, tool_group
from scalems_store.core.errors import StoreError

cli = tool_group(
    "scalems-call",
    """Pack Python function calls into a store and run them by fingerprint.

    The same call (function, its code, arguments, skeleton directory,
    environment overrides, requirements) always has the same fingerprint;
    running it again serves the recorded result.
    """,
    error_roots=(StoreError, CallError),
)
cli.add_command(cmd_run.pack_command)
cli.add_command(cmd_exec.exec_command)
cli.add_command(cmd_run.rerun_command)
cli.add_command(cmd_run.command_command)
cli.add_command(cmd_show.result_command)
cli.add_command(cmd_show.ls_command)
cli.add_command(cmd_show.diff_command)
cli.add_command(cmd_show.forget_command)
cli.add_command(cmd_graph.status_command)
cli.add_command(cmd_graph.graph_command)
cli.add_command(cmd_graph.why_command)


def main() -> None:
    """Console-script entry point."""
    run_main(cli, "scalems-call")


if __name__ == "__main__":
    main()
