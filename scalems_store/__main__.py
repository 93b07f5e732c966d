"""``python -m scalems_store``: the same as ``scalems-store``."""

from .cli import main

main()
