"""An output file whose name is not UTF-8 (issue 22, case 5): a tree stores only UTF-8
names, so the call's failure is recorded with a one-line reason; never a missing result."""

from __future__ import annotations

import json

from scalems_call import pack, run
from scalems_store import FileStore
from tests.scalems_call import funcs


def test_an_output_name_that_is_not_utf8_fails_the_call_on_record(store: FileStore) -> None:
    """The result is recorded as failed, naming the file (its bytes as \\xNN) in one line;
    the rest of the directory is kept (it ended in a raw UnicodeEncodeError, no result)."""
    call = pack(funcs.write_unnamed, store=store)
    done = run(call, store=store)
    assert done.status == "failed"
    [result] = store.get_ref("calls", call)
    record = json.loads(store.read_bytes(result))
    line = (
        "OutputNameError: 1 output file name(s) not UTF-8, left out of the output "
        "directory: caf\\xe9.txt"
    )
    assert record["traceback"] == line + "\n"
    assert record["return_value"] is None
    assert record["provenance"]["skipped"] == ["caf\\xe9.txt: its name is not valid UTF-8"]
    assert store.read_bytes(record["stderr"][len("blake3:") :]).decode().endswith(line + "\n")
    names = [entry.path for entry in store.tree_entries(record["directory"][len("blake3:") :])]
    assert names == ["fine.txt"]
