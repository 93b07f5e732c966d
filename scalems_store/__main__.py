"""``python -m scalems_store``: the same as ``scalems-store``."""

from .console import main

main()
