"""Engines whose workers run calls from stores of their own against a remote: a lost worker
costs only its call, which is run again (and fetched again) on another worker."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from scalems_call import pack
from scalems_call.engines.executors import default_executor, remote_submit
from scalems_call.engines.pool import WorkerPool
from scalems_call.execution.remote import where_for
from scalems_store import FileStore
from scalems_store.remote import settings, sync
from tests.conftest import MakeStore
from tests.scalems_call import funcs
from tests.scalems_call.engines.test_pool import first_runner, run_in_thread


def test_a_killed_worker_under_a_remote_costs_only_its_call(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of a pool worker running a call from its own store: that call alone is
    retried, every call succeeds, and the remote records each result once."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "node"))
    (tmp_path / "node").mkdir()
    client = make_store("client")
    fps = [pack(funcs.sleep, (0.5 + i / 1000,), store=client) for i in range(4)]
    remote = settings.add(client.root, "r", str(tmp_path / "remote"))
    with sync.open_peer(remote, create=True) as peer:
        sync.push(client, peer, sync.plan_push(client, peer, fps, False))
    where = where_for(client, remote)
    # the workers' default store under their $TMPDIR (this process's tempfile has its own)
    worker = FileStore(tmp_path / "node" / f"scalems-{os.getuid()}" / "store")
    pool = default_executor(2)
    assert isinstance(pool, WorkerPool)
    try:
        submit = remote_submit("pool", client, where, None, None)
        thread, outcomes, retries = run_in_thread(client, fps, pool, submit, leases=False)
        victim, pid = first_runner(worker, fps, set())
        os.kill(pid, signal.SIGKILL)
        thread.join(120)
        assert not thread.is_alive()
    finally:
        pool.shutdown()
    assert {fp: outcomes[fp].state for fp in fps} == dict.fromkeys(fps, "success")
    assert len(retries) == 1 and victim[:12] in retries[0] and "WorkerLost" in retries[0]
    there = FileStore(tmp_path / "remote")
    assert [len(there.get_ref("calls", fp)) for fp in fps] == [1, 1, 1, 1]
    assert all(outcomes[fp].result == there.get_ref("calls", fp)[0] for fp in fps)
