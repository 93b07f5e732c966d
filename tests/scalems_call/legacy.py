"""Calls packed as before records carried their code (record version 1), for the tests
that old records keep working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_PACK = """
import json, sys
from scalems_call.identity.compat import build_call
from scalems_call.identity.targets import import_target
from scalems_store import FileStore
from scalems_store.core.layout import canonical
record = build_call(import_target(sys.argv[2]), args=json.loads(sys.argv[3]))
print(FileStore(sys.argv[1]).add_bytes(canonical(record), kind="call"))
"""


def legacy_pack(store: str | Path, target: str, args: list[object], where: Path) -> str:
    """Pack ``MODULE:FUNC`` (found in *where*) into the store at *store* as a version 1
    record: no code, the function imported where the call runs."""
    done = subprocess.run(
        [sys.executable, "-c", _PACK, str(store), target, json.dumps(args)],
        cwd=where,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(where), os.environ["PYTHONPATH"]])},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()
