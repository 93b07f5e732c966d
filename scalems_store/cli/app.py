"""``scalems-store``: the command-line face of :class:`scalems_store.FileStore`.

Results go to stdout, diagnostics to stderr. A :class:`StoreError` is printed
as one line ``ErrorName: message`` with exit status 1; usage errors exit 2.
The commands live in :mod:`.cli_objects` and :mod:`.cli_maint`.
"""

from __future__ import annotations

from scalems_store.cli import maint as cli_maint
from scalems_store.cli import objects as cli_objects
from scalems_store.cli import remotes as cli_remotes
from scalems_store.cli import trees as cli_trees
from scalems_store.cli import trust as cli_trust
from scalems_store.cli.shared import run_main, tool_group

cli = tool_group(
    "scalems-store",
    """A content-addressed store: files and directories named by their BLAKE3.

    Fingerprints may be given in full, as blake3:<hex>, or as a unique prefix
    of at least 4 hex digits.
    """,
)
cli.add_command(cli_objects.init)
cli.add_command(cli_objects.add)
cli.add_command(cli_objects.get)
cli.add_command(cli_objects.list_objects)
cli.add_command(cli_objects.info)
cli.add_command(cli_objects.label)
cli.add_command(cli_trees.ls_tree)
cli.add_command(cli_trees.diff)
cli.add_command(cli_maint.verify)
cli.add_command(cli_maint.gc)
cli.add_command(cli_maint.export_command)
cli.add_command(cli_maint.import_command)
cli.add_command(cli_maint.reindex)
cli.add_command(cli_remotes.remote_group)
cli.add_command(cli_remotes.push)
cli.add_command(cli_remotes.pull)
cli.add_command(cli_remotes.fetch)
cli.add_command(cli_remotes.serve)
cli.add_command(cli_trust.key_command)
cli.add_command(cli_trust.trust_group)


def main() -> None:
    """Run ``scalems-store`` through click (the console script starts at console.main)."""
    run_main(cli, "scalems-store")


if __name__ == "__main__":
    main()
