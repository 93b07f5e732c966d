"""``python -m scalems_store``: the same as ``scalems-store``."""

from scalems_store.cli.console import main

main()
