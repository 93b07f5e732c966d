"""Records for tests: minimal valid call and result records (for store tests that need
records but no runner), and what an attacker forges: a bundle written by hand, a
signature by a key nobody trusts."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from scalems_store import FileStore
from scalems_store.core import layout
from scalems_store.objects.files import Meta

_CALL: dict[str, Any] = {
    "args": [],
    "decoder": "dill",
    "encoder": "dill",
    "environment": None,
    "func": "00",
    "kwargs": {},
    "outputs": ["return_value"],
    "requirements": {},
    "skeleton": None,
}


def uri(fp: str | None) -> str | None:
    return None if fp is None else layout.to_uri(fp)


def call_record(
    skeleton: str | None = None, upstream: tuple[str, ...] = (), **fields: Any
) -> bytes:
    """The bytes of a call record naming *skeleton* and taking the return value of each
    *upstream* call as an input."""
    record: dict[str, Any] = {**_CALL, "skeleton": uri(skeleton), **fields}
    if upstream:
        record["inputs"] = [
            {"call": layout.to_uri(fp), "path": None, "to": None} for fp in sorted(upstream)
        ]
    return layout.canonical(record)


def result_record(
    call: str | None,
    *,
    stdout: str | None = None,
    stderr: str | None = None,
    directory: str | None = None,
    status: str = "success",
    **fields: Any,
) -> bytes:
    """The bytes of a result record of *call* naming the given objects."""
    record = {
        "call": call,
        "decoder": "dill",
        "encoder": "dill",
        "exception": None,
        "return_value": None,
        "status": status,
        "stdout": uri(stdout),
        "stderr": uri(stderr),
        "directory": uri(directory),
        **fields,
    }
    return layout.canonical(record)


def forge(store: FileStore, data: bytes, kind: str) -> str:
    """Store *data* and record it as a *kind* by hand, bypassing the store's checks, as a
    damaged meta file or an older, buggier writer could; return its fingerprint."""
    fp = store.add_bytes(data)
    store.objects.write_meta(fp, Meta(kind, ()), store.tmp, durable=False)
    return fp


def stranger_signature(result: str, call: str) -> dict[str, str]:
    """A valid signature of *result* for *call* by a key nobody here trusts (an
    attacker's own)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from scalems_store.store.refs import message

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return {
        "result": result,
        "key": public.hex(),
        "signature": key.sign(message(result, call)).hex(),
    }


def forged_bundle(call: str, data: bytes, signatures: list[dict[str, str]] | None = None) -> bytes:
    """A bundle, written by hand, of one result record (*data*) of *call*, the ref naming
    it, and *signatures* (no ``signatures`` field when None)."""
    from scalems_store import hash_bytes

    fp = hash_bytes(data)
    manifest = {
        "format": "scalems-bundle",
        "version": 1,
        "objects": [{"fingerprint": fp, "kind": "result", "refs": [call]}],
        "refs": [{"namespace": "calls", "key": call, "values": [fp]}],
        **({"signatures": signatures} if signatures is not None else {}),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in [("bundle.json", json.dumps(manifest).encode()), (f"objects/{fp}", data)]:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def ran_call(store: FileStore, where: Path) -> tuple[str, str]:
    """Pack and run a call with a skeleton (made under *where*) in *store*: ``(call,
    result)``."""
    from scalems_call import pack, run
    from tests.scalems_call import funcs

    skeleton = where / "skel"
    skeleton.mkdir(exist_ok=True)
    (skeleton / "input.txt").write_text("input\n")
    call = pack(funcs.use_skeleton, store=store, skeleton=skeleton)
    result = run(call, store=store)
    assert result.status == "success" and result.fingerprint is not None
    return call, result.fingerprint
