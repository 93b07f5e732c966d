"""``python -m scalems_call CALL.json RESULT.json``: the SCALE-MS command line."""

import sys

from scalems_call.identity.compat import cli

sys.exit(cli(*sys.argv))
