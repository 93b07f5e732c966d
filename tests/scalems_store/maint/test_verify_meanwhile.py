"""verify while a gc removes objects: what went meanwhile is no error, and no traceback
(issue 22, case 5: a FileNotFoundError from the audit's read, 2 runs of 133)."""

from __future__ import annotations

import os

from scalems_store import FileStore
from scalems_store.maint.audit import verify
from tests.recordutil import call_record, result_record


def test_an_object_removed_after_hashing_is_no_error(store: FileStore) -> None:
    """An object a gc removes between verify's hashing and its check of the record is
    skipped; what still names it is reported; nothing raises."""
    blob = store.add_bytes(b"out\n")
    call = store.add_bytes(call_record(), kind="call")
    result = store.add_bytes(result_record(call, stdout=blob), kind="result")
    removed: list[str] = []

    def gc_meanwhile(done: int) -> None:
        if not removed:  # as gc --grace 0 would: the object file, then its meta file
            os.unlink(store.object_path(result))
            removed.append(result)

    report = verify(store, progress=gc_meanwhile)
    assert removed == [result]
    assert all(result not in what or "missing" in problem for what, problem in report.problems)
