"""HTTP remotes: a copy of a store served read-only by Python's own static web server,
started and stopped by the tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scalems_store import BadSetting, ObjectNotFound, RemoteError, verify
from scalems_store.remote import sync
from scalems_store.remote.settings import Remote
from tests.conftest import MakeStore
from tests.scalems_store.remote.conftest import (
    check_trust_travelled,
    ran_call,
    signed_unsigned_stranger,
)


def test_pull_a_call_from_a_static_copy_of_a_store(
    served: tuple[Path, str], make_store: MakeStore, tmp_path: Path
) -> None:
    """A store copied under a web root (no listings): pull LABEL brings the call's closure,
    its result ref and the label; fetch by full fingerprint works too."""
    www, url = served
    origin = make_store("origin")
    call, result = ran_call(origin, tmp_path)
    origin.set_label("job", call)
    origin.close()
    shutil.copytree(origin.root, www / "store")
    remote = Remote("web", url + "store")
    here = make_store("here")
    with sync.open_peer(remote) as peer:
        plan = sync.plan_pull(here, peer, ["job"], True)
        sync.pull(here, peer, plan)
    assert here.get_ref("calls", call) == [result] and here.labels() == {"job": call}
    assert here.kind(call) == "call" and verify(here).ok
    other = make_store("other")
    with sync.open_peer(remote) as peer:
        sync.pull(other, peer, sync.plan_pull(other, peer, [result], False), refs=False)
    assert result in other and other.get_ref("calls", call) == []


def test_what_http_cannot_do_is_one_clear_error(
    served: tuple[Path, str], make_store: MakeStore
) -> None:
    """Push is refused (read-only); a prefix, a missing label, a URL with no store, a
    tampered object: each a clear error, nothing published."""
    www, url = served
    origin = make_store("origin")
    fp = origin.add_bytes(b"served" * 100)
    origin.set_label("x", fp)
    shutil.copytree(origin.root, www / "s")
    remote = Remote("web", url + "s")
    with pytest.raises(BadSetting, match="read-only"):
        sync.open_peer(remote, create=True)
    with pytest.raises(RemoteError, match="serves no scalems store"):
        sync.open_peer(Remote("web", url + "nothing"))
    here = make_store("here")
    with sync.open_peer(remote) as peer:
        with pytest.raises(ObjectNotFound, match="in full"):
            peer.closure([fp[:8]], False)
        obj = www / "s" / "objects" / fp[:2] / fp[2:]
        obj.chmod(0o644)
        obj.write_bytes(b"tampered")
        with pytest.raises(Exception, match=r"corrupt|fingerprint"):
            sync.pull(here, peer, sync.plan_pull(here, peer, ["x"], True))
    assert fp not in here and here.labels() == {}


def test_signatures_travel_from_a_static_copy_of_a_store(
    served: tuple[Path, str], make_store: MakeStore, tmp_path: Path
) -> None:
    """The sigs/ files of a served store come with its results: yours is a cache hit here,
    an unsigned one and a stranger's are not (until the stranger's key is trusted)."""
    www, url = served
    origin, stranger = signed_unsigned_stranger(make_store, tmp_path)
    origin.close()
    shutil.copytree(origin.root, www / "store")
    here = make_store("here")
    with sync.open_peer(Remote("web", url + "store")) as peer:
        sync.pull(here, peer, sync.plan_pull(here, peer, ["mine", "bare", "stranger"], True))
    check_trust_travelled(here, stranger["key"])


def test_pull_a_thin_tree_from_a_static_copy(
    served: tuple[Path, str], make_store: MakeStore, tmp_path: Path
) -> None:
    """A tree stored thin in the served store comes over HTTP thin, with its pieces, and is
    verified (rebuilt, hashed) before it is published."""
    from scalems_store.tar import thintar
    from tests.scalems_store.objects.test_thin import golden_tree, stored, whole

    www, url = served
    origin = make_store("origin")
    golden_tree(tmp_path / "t")
    fp = origin.add_tree(tmp_path / "t", label="t")
    origin.close()
    shutil.copytree(origin.root, www / "store", symlinks=True)
    here = make_store("here")
    with sync.open_peer(Remote("web", url + "store")) as peer:
        sync.pull(here, peer, sync.plan_pull(here, peer, ["t"], True))
    assert thintar.is_thin(stored(here, fp)) and here.read_bytes(fp) == whole(tmp_path / "t")
    assert verify(here).ok
