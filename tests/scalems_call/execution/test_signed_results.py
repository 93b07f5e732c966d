"""Foreign results are data until a trusted key vouches for them (issue 22, cases 1 to 3).

Each test is a case found by an attacker on an earlier version: a bundle or a
fellow user of a shared store puts a well-formed result beside a call, and
the store served it as a cache hit, unpickled it when shown, or gave it to a
downstream call, which then ran the attacker's code as the user.
"""

from __future__ import annotations

import builtins
import io
import json
import pickle
import tarfile
from pathlib import Path
from typing import Any

import pytest

from scalems_call import output, pack, run
from scalems_call.engines.graph import plan, states
from scalems_call.execution import cache
from scalems_store import FileStore
from scalems_store.maint.bundle import export, import_bundle
from scalems_store.store.refs import Signature, message
from scalems_store.trust import keys, policy
from tests.conftest import MakeStore, RunCli
from tests.recordutil import forged_bundle, result_record, stranger_signature
from tests.scalems_call import funcs


class _Opens:
    """Unpickling this creates the file it names: code run by looking at a result."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return builtins.open, (self.path, "w")


def crafted(marker: Path) -> str:
    """The hex of a pickle that creates *marker* when it is loaded."""
    return pickle.dumps(_Opens(str(marker)), protocol=4).hex()


def forged_result(store: FileStore, call: str, marker: Path, **fields: Any) -> bytes:
    """A well-formed result record of *call*, claiming to have ended in 2099, whose return
    value runs code (creates *marker*) when it is unpickled."""
    record = {
        "return_value": crafted(marker),
        "provenance": {
            "start": "2099-01-01T00:00:00.000+00:00",
            "end": "2099-01-01T00:00:01+00:00",
        },
        **fields,
    }
    return result_record(call, **record)


def _fp(data: bytes) -> str:
    from scalems_store import hash_bytes

    return hash_bytes(data)


def test_case1_a_bundle_claiming_a_later_run_is_not_served(
    store: FileStore, tmp_path: Path, run_cli: RunCli
) -> None:
    """Case 1: a bundle's result for a call the store ran, claiming to have ended in 2099,
    becomes neither the latest nor a hit; exec, result and run() keep the store's own."""
    call = pack(funcs.add, (2, 3), store=store)
    genuine = run(call, store=store).fingerprint
    marker = tmp_path / "ran"
    data = forged_result(store, call, marker)
    forged = _fp(data)
    import_bundle(store, io.BytesIO(forged_bundle(call, data)))
    assert cache.results(store, call) == [genuine, forged]  # the store's order
    done = run_cli("scalems-call", "--store", store.root, "exec", call)
    assert done.returncode == 0 and done.stdout.decode().split() == [genuine]
    shown = run_cli("scalems-call", "--store", store.root, "result", call)
    assert f"result      {genuine}" in shown.stdout.decode()
    result = run(call, store=store)
    assert (result.fingerprint, result.return_value, result.cached) == (genuine, 5, True)
    assert not marker.exists()


def test_case1_a_forged_only_result_is_run_again(
    store: FileStore, tmp_path: Path, run_cli: RunCli
) -> None:
    """A call whose only result came unsigned from a bundle is not cached: status says
    'unsigned', and exec runs it (a new result, the right value)."""
    call = pack(funcs.add, (4, 5), store=store)
    marker = tmp_path / "ran"
    data = forged_result(store, call, marker)
    import_bundle(store, io.BytesIO(forged_bundle(call, data)))
    status = run_cli("scalems-call", "--store", store.root, "status", call)
    assert status.returncode == 1 and "unsigned" in status.stdout.decode()
    standing = states(store, plan(store, [call]))[call]
    assert (standing.state, standing.because) == ("unsigned", "unsigned")
    done = run_cli("scalems-call", "--store", store.root, "exec", call)
    assert done.returncode == 0
    fresh = done.stdout.decode().strip()
    assert fresh != _fp(data)
    assert cache.hit(store, call) is not None and cache.hit(store, call)[0] == fresh  # type: ignore[index]
    assert run(call, store=store).return_value == 9
    assert not marker.exists()


def test_case1_a_result_signed_by_a_stranger_is_untrusted(
    store: FileStore, tmp_path: Path, run_cli: RunCli
) -> None:
    """A bundle whose result carries a valid signature by a key the store does not trust:
    status names the key, exec runs the call again; once the key is trusted, it is served."""
    call = pack(funcs.add, (6, 7), store=store)
    data = forged_result(store, call, tmp_path / "ran")
    forged = _fp(data)
    signature = stranger_signature(forged, call)
    import_bundle(store, io.BytesIO(forged_bundle(call, data, [signature])))
    assert store.signatures(forged) == [Signature(signature["key"], signature["signature"])]
    verdict = cache.verdict(store, forged, call)
    assert (verdict.state, verdict.served) == ("untrusted", False)
    status = run_cli("scalems-call", "--store", store.root, "status", call)
    assert f"untrusted (signed by ed25519:{signature['key']})" in status.stdout.decode()
    assert cache.hit(store, call) is None
    added = run_cli("scalems-store", "--store", store.root, "trust", "add", signature["key"], "x")
    assert added.returncode == 0, added.stderr
    done = run_cli("scalems-call", "--store", store.root, "exec", call)
    assert done.stdout.decode().split() == [forged]


def test_case2_showing_an_untrusted_result_runs_no_code(
    store: FileStore, tmp_path: Path, run_cli: RunCli
) -> None:
    """Case 2: 'result' of an imported result (text and --json) shows its fields but does
    not unpickle its return value or exception: nothing of the attacker's runs."""
    call = pack(funcs.add, (1, 1), store=store)
    marker = tmp_path / "ran"
    data = forged_result(store, call, marker, exception=crafted(marker), status="failed")
    forged = _fp(data)
    import_bundle(store, io.BytesIO(forged_bundle(call, data)))
    text = run_cli("scalems-call", "--store", store.root, "result", forged)
    assert text.returncode == 0, text.stderr
    out = text.stdout.decode()
    assert "return value not decoded: unsigned" in out and "trust       unsigned" in out
    as_json = run_cli("scalems-call", "--store", store.root, "result", call, "--json")
    view = json.loads(as_json.stdout)
    assert (view["fingerprint"], view["trust"], view["not_decoded"]) == (
        forged,
        "unsigned",
        "unsigned",
    )
    assert view["return_value_repr"] is None and "exception_repr" not in view
    assert not marker.exists()
    # the explicit way out decodes it (and so runs it): what the user asked for
    policy.set_unsigned(store, True)
    run_cli("scalems-call", "--store", store.root, "result", forged)
    assert marker.exists()


def test_case3_a_planted_upstream_result_never_reaches_a_downstream_call(
    store: FileStore, tmp_path: Path, run_cli: RunCli
) -> None:
    """Case 3 (code execution): another user records a result with a crafted pickle for
    the upstream call; exec of the downstream call runs the upstream again and feeds the
    downstream the genuine value: the crafted pickle is never loaded."""
    up = pack(funcs.add, (20, 1), store=store)
    down = pack(funcs.identity, (output(up),), store=store)
    marker = tmp_path / "ran"
    data = forged_result(store, up, marker)
    planted = store.add_bytes(data, kind="result")
    store.set_ref("calls", up, [planted])  # as a fellow user of a shared store could
    done = run_cli("scalems-call", "--store", store.root, "exec", down)
    assert done.returncode == 0, done.stderr
    assert run(down, store=store).return_value == 21
    assert cache.results(store, up)[0] != planted
    assert not marker.exists()


def test_case3_a_planted_result_behind_a_served_one_changes_nothing(
    store: FileStore, tmp_path: Path
) -> None:
    """A result planted in front of an upstream's genuine one leaves the downstream cached:
    the upstream's current result is its newest trusted one."""
    up = pack(funcs.add, (30, 1), store=store)
    down = pack(funcs.identity, (output(up),), store=store)
    assert run(down, store=store).return_value == 31
    marker = tmp_path / "ran"
    planted = store.add_bytes(forged_result(store, up, marker), kind="result")
    store.update_ref("calls", up, lambda known: [planted, *known])
    result = run(down, store=store)
    assert (result.return_value, result.cached) == (31, True)
    assert not marker.exists()


def test_exec_trust_unsigned_serves_what_was_imported(
    store: FileStore, tmp_path: Path, run_cli: RunCli
) -> None:
    """'exec --trust-unsigned' (and the store setting) serve an unsigned result, as before."""
    call = pack(funcs.add, (8, 8), store=store)
    data = result_record(call, return_value=pickle.dumps(16).hex())
    import_bundle(store, io.BytesIO(forged_bundle(call, data)))
    plain = run_cli("scalems-call", "--store", store.root, "exec", "--trust-unsigned", call)
    assert plain.stdout.decode().split() == [_fp(data)]
    assert cache.hit(store, call) is None  # only for that command
    setting = run_cli("scalems-store", "--store", store.root, "trust", "unsigned", "on")
    assert setting.returncode == 0
    again = run_cli("scalems-call", "--store", store.root, "exec", call)
    assert again.stdout.decode().split() == [_fp(data)]


def test_the_runner_signs_what_it_records(store: FileStore) -> None:
    """Each result the runner records has the user's signature beside it, over the
    domain-separated message naming the result and its call; the record is unchanged."""
    call = pack(funcs.add, (1, 2), store=store)
    result = run(call, store=store).fingerprint
    assert result is not None
    (sig,) = store.signatures(result)
    assert sig.key == keys.own_public()
    assert keys.verify(sig.key, sig.signature, message(result, call))
    assert not keys.verify(sig.key, sig.signature, message(result, result))
    assert b"signature" not in store.read_bytes(result)
    assert cache.verdict(store, result, call).describe() == "trusted (signed by you)"


def test_signatures_travel_in_bundles(make_store: MakeStore) -> None:
    """A bundle carries the signatures of its results; the importing store keeps them, serves
    the result once it trusts the key, and marks what came in as imported."""
    here, there = make_store("here"), make_store("there")
    call = pack(funcs.add, (5, 5), store=here)
    result = run(call, store=here).fingerprint
    assert result is not None
    buffer = io.BytesIO()
    export(here, [call], buffer)
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as tar:
        member = tar.extractfile("bundle.json")
        assert member is not None
        manifest = json.loads(member.read())
    assert [s["result"] for s in manifest["signatures"]] == [result]
    # "there" is another user: a key of its own
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(Path(there.root).parent / "other-config"))
        import_bundle(there, io.BytesIO(buffer.getvalue()))
        assert there.signatures(result) == here.signatures(result)
        assert there.sigs.read(result).imported
        assert cache.hit(there, call) is None
        policy.add(there, here.signatures(result)[0].key, "here")
        assert cache.hit(there, call) is not None


def test_sign_existing_vouches_for_old_results_not_imported_ones(
    store: FileStore, tmp_path: Path, run_cli: RunCli
) -> None:
    """Results recorded before signing existed (nothing beside them) are not served until
    'trust sign-existing' signs them; a result that came by import is never signed by it."""
    import shutil

    old_call = pack(funcs.add, (3, 3), store=store)
    old = run(old_call, store=store).fingerprint
    shutil.rmtree(Path(store.root, "sigs"))  # as a store written before signing existed
    shutil.rmtree(tmp_path / "xdg-cache")
    assert cache.hit(store, old_call) is None
    imported_call = pack(funcs.add, (4, 4), store=store)
    data = forged_result(store, imported_call, tmp_path / "ran")
    import_bundle(store, io.BytesIO(forged_bundle(imported_call, data)))
    dry = run_cli("scalems-store", "--store", store.root, "trust", "sign-existing", "--dry-run")
    assert dry.stdout.decode().split() == [old] and cache.hit(store, old_call) is None
    done = run_cli("scalems-store", "--store", store.root, "trust", "sign-existing")
    assert done.stdout.decode().split() == [old], done.stderr
    assert cache.hit(store, old_call) is not None
    assert cache.hit(store, imported_call) is None
    again = run_cli("scalems-store", "--store", store.root, "trust", "sign-existing")
    assert again.stdout == b""
