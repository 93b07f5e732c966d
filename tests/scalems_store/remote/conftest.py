"""Fixtures for the remote tests: a store holding a call that ran, a real sshd, a static
web server, and a store of signed, unsigned and a stranger's results."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scalems_store import FileStore
from tests.recordutil import ran_call
from tests.scalems_call import funcs
from tests.scalems_store.remote.servers import Sshd, sshd

__all__ = ["ran_call", "sshd_server"]  # ran_call: as the remote tests import it from here


@pytest.fixture(scope="module")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """One sshd for the tests of a module, stopped by PID after them."""
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(403, "no listings")  # as most static servers: nothing may rely on them
        return None

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on a free localhost port, without listings."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def signed_unsigned_stranger(make_store: Any, where: Path) -> tuple[FileStore, dict[str, str]]:
    """A store holding three calls that ran: one signed by you, one whose signature was
    removed, one signed by a stranger's key; labelled ``mine``, ``bare``, ``stranger``
    (the calls). Returns the store and the stranger's key (``{"key": hex}``)."""
    from scalems_call import pack, run
    from scalems_store.trust import keys

    store = make_store("signed")
    mine = pack(funcs.add, (1, 2), store=store)
    bare = pack(funcs.add, (3, 4), store=store)
    stranger = pack(funcs.add, (5, 6), store=store)
    for name, call in (("mine", mine), ("bare", bare)):
        assert run(call, store=store).status == "success"
        store.set_label(name, call)
    os.unlink(store.sigs.path(store.get_ref("calls", bare)[0]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(where / "stranger-config"))
        patch.setenv("XDG_CACHE_HOME", str(where / "stranger-cache"))
        assert run(stranger, store=store).status == "success"
        other = keys.own_public()
    store.set_label("stranger", stranger)
    assert other is not None
    return store, {"key": other}


def check_trust_travelled(back: FileStore, stranger_key: str) -> None:
    """In *back*, pulled from a remote holding :func:`signed_unsigned_stranger`'s calls:
    yours is a cache hit, the unsigned one and the stranger's are not, until the
    stranger's key is trusted."""
    from scalems_call.execution import cache
    from scalems_store.trust import policy

    labels = back.labels()
    assert cache.hit(back, labels["mine"]) is not None
    assert cache.hit(back, labels["bare"]) is None
    assert cache.hit(back, labels["stranger"]) is None
    policy.add(back, stranger_key, "stranger")
    assert cache.hit(back, labels["stranger"]) is not None
    assert cache.hit(back, labels["bare"]) is None
