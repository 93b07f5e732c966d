"""The index writes the rows of added objects together: nothing is lost or shown late."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalems_store import FileStore, hash_bytes
from scalems_store.store import index as index_module

ADD_AND_WAIT = """
import sys, time
from scalems_store import FileStore
store = FileStore(sys.argv[1])
store.add_bytes(b"only one")
print("added", flush=True)
time.sleep(600)
"""

ADD_AND_DIE = """
import os, signal, sys
from scalems_store import FileStore
store = FileStore(sys.argv[1])
for i in range(10):
    store.add_bytes(b"doomed-%d" % i)
os.kill(os.getpid(), signal.SIGKILL)
"""


def listed(root: Path) -> set[str]:
    with FileStore(root) as store:
        return {info.fingerprint for info in store.list()}


def test_a_lone_row_is_written_without_more_activity(tmp_path: Path) -> None:
    """A process that adds one object and then idles (a running call) does not keep it
    out of other processes' listings: the pending row is written after a moment."""
    root = tmp_path / "store"
    assert listed(root) == set()  # the index exists: it will not be rebuilt
    with subprocess.Popen(
        [sys.executable, "-c", ADD_AND_WAIT, str(root)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "added\n"
            deadline = time.monotonic() + 60
            while hash_bytes(b"only one") not in listed(root):
                assert time.monotonic() < deadline, "the row was never written"
                time.sleep(0.1)
        finally:
            proc.kill()


def test_rows_of_a_killed_writer_are_recovered(tmp_path: Path) -> None:
    """Rows still pending when their process is killed are found by the next process."""
    root = tmp_path / "store"
    assert listed(root) == set()
    subprocess.run([sys.executable, "-c", ADD_AND_DIE, str(root)], check=False)
    expected = {hash_bytes(b"doomed-%d" % i) for i in range(10)}
    assert listed(root) == expected
    assert not list(root.glob("index.sqlite.pending-*"))


def _add_in_child(root: str) -> None:
    store = FileStore(root)
    store.add_bytes(b"from the child")
    # a multiprocessing child leaves through os._exit: no atexit, no flush


def test_a_forked_child_neither_repeats_nor_loses_rows(tmp_path: Path) -> None:
    """A child forked while the parent has pending rows does not inherit them, and the
    rows it leaves unwritten are recovered by the parent's next query."""
    with FileStore(tmp_path / "store") as store:
        mine = store.add_bytes(b"from the parent")
        assert index_module.BATCH_ROWS > 1 and store.index._pending
        child = multiprocessing.get_context("fork").Process(
            target=_add_in_child, args=(store.root,)
        )
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert {info.fingerprint for info in store.list()} == {mine, hash_bytes(b"from the child")}
    assert not list(Path(store.root).glob("index.sqlite.pending-*"))


def test_a_batch_is_one_transaction(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many adds are written BATCH_ROWS at a time, not one transaction each."""
    monkeypatch.setattr(index_module, "BATCH_ROWS", 50)
    writes: list[int] = []
    update = store.index._update

    def counted(sql: str, rows: list[tuple[object, ...]]) -> None:
        writes.append(len(rows))
        update(sql, rows)

    monkeypatch.setattr(store.index, "_update", counted)
    added = {store.add_bytes(b"row %d" % i) for i in range(120)}
    assert writes == [50, 50]
    assert {info.fingerprint for info in store.list()} == added
    assert writes == [50, 50, 20]
