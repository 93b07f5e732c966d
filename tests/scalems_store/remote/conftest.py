"""Fixtures for the remote tests: a store holding a call that ran, and a real sshd."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.recordutil import ran_call
from tests.scalems_store.remote.servers import Sshd, sshd

__all__ = ["ran_call", "sshd_server"]  # ran_call: as the remote tests import it from here


@pytest.fixture(scope="module")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """One sshd for the tests of a module, stopped by PID after them."""
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
