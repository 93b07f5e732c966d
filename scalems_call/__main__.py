"""``python -m scalems_call CALL.json RESULT.json``: the SCALE-MS command line."""

import sys

from .compat import cli

sys.exit(cli(*sys.argv))
