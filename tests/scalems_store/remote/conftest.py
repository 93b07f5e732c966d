"""Fixtures for the remote tests: a store holding a call that ran, and a real sshd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scalems_call import pack, run
from scalems_store import FileStore
from tests.scalems_call import funcs
from tests.scalems_store.remote.servers import Sshd, sshd


def ran_call(store: FileStore, where: Path) -> tuple[str, str]:
    """Pack and run a call with a skeleton in *store*: ``(call, result)``."""
    skeleton = where / "skel"
    skeleton.mkdir(exist_ok=True)
    (skeleton / "input.txt").write_text("input\n")
    call = pack(funcs.use_skeleton, store=store, skeleton=skeleton)
    result = run(call, store=store)
    assert result.status == "success" and result.fingerprint is not None
    return call, result.fingerprint


@pytest.fixture(scope="module")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """One sshd for the tests of a module, stopped by PID after them."""
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
