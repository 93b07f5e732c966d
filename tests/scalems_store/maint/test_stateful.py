"""The store's promise under any interleaving: nothing referenced is ever lost.

A hypothesis state machine adds, labels, packs, runs, collects (grace 0),
exports, imports, and kills runners and writers at random moments (SIGKILL of
a real process). After every step: every object reachable from a label, a
ref, a recorded result or a live lease is present and matches its name, what
a label was set to is still readable, and ``verify`` finds nothing wrong.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from scalems_call import pack
from scalems_call.execution import cache as call_cache
from scalems_call.execution.execute import execute
from scalems_store import FileStore, gc, hash_bytes, verify
from scalems_store.core.fsutil import remove_tree
from scalems_store.maint import reach
from scalems_store.maint.bundle import export, import_bundle
from tests.conftest import entry_point
from tests.recordutil import forged_bundle, result_record, stranger_signature
from tests.scalems_call import funcs

WRITER = """
import os, sys
from scalems_store import FileStore
with FileStore(sys.argv[1], durable=True) as store:
    for i in range(10**6):
        store.add_bytes(os.urandom(2000) + b"%d" % i)
        if i % 7 == 0:
            store.add_bytes(b"label-target-%d" % i, label="moving")
        if i % 5 == 0:
            with store.batch():  # a group commit, killed at any point of it
                for j in range(40):
                    store.add_bytes(os.urandom(500) + b"%d-%d" % (i, j))
                store.add_bytes(b"batched-%d" % i, label="moving")
"""


class StorePromise(RuleBasedStateMachine):
    """Drive one store through random operations; check its promise after each."""

    objects: Bundle[str] = Bundle("objects")
    calls: Bundle[str] = Bundle("calls")
    exported: Bundle[bytes] = Bundle("exported")

    def __init__(self) -> None:
        super().__init__()
        self.top = Path(tempfile.mkdtemp(prefix="scalems-stateful-"))
        self.store = FileStore(self.top / "store", durable=False)
        self.labelled: dict[str, bytes] = {}
        """label -> the bytes it was last set to (by this machine)."""
        self.ran: dict[str, str] = {}
        """call -> a result recorded for it."""
        self.forged: set[str] = set()
        """Results put beside calls that nobody the store trusts signed."""

    def teardown(self) -> None:
        self.store.close()
        remove_tree(self.top)

    @initialize(target=calls)
    def a_call_that_ran(self) -> str:
        call = pack(funcs.add, (1, 1), store=self.store)
        self.run_call(call)
        return call

    # -- writes --------------------------------------------------------------

    @rule(target=objects, data=st.binary(max_size=64), label=st.sampled_from([None, "a", "b"]))
    def add(self, data: bytes, label: str | None) -> str:
        fp = self.store.add_bytes(data, label=label)
        if label is not None:
            self.labelled[label] = data
        return fp

    @rule(target=objects, files=st.dictionaries(st.sampled_from("xyz"), st.binary(max_size=32)))
    def add_tree(self, files: dict[str, bytes]) -> str:
        work = Path(tempfile.mkdtemp(dir=self.top))
        for name, data in files.items():
            (work / name).write_bytes(data)
        return self.store.add_tree(work)

    @rule(target=calls, a=st.integers(0, 3), b=st.integers(0, 3))
    def pack_call(self, a: int, b: int) -> str:
        return pack(funcs.add, (a, b), store=self.store)

    @rule(target=calls, skeleton=objects)
    def pack_with_skeleton(self, skeleton: str) -> str:
        if skeleton not in self.store or self.store.kind(skeleton) != "tree":
            return pack(funcs.add, (9, 9), store=self.store)
        return pack(funcs.read_environment, ("HOME",), store=self.store, skeleton=skeleton)

    @rule(call=calls)
    def run_call(self, call: str) -> None:
        if call not in self.store:
            return  # collected before it ran: it was never labelled nor run
        done = execute(self.store, call)
        self.ran[call] = done.result

    @rule(name=st.sampled_from(["a", "b", "c"]), obj=objects)
    def label_something(self, name: str, obj: str) -> None:
        if obj in self.store:
            self.store.set_label(name, obj)
            self.labelled[name] = self.store.read_bytes(obj)

    @rule(name=st.sampled_from(["a", "b", "c"]))
    def unlabel(self, name: str) -> None:
        if name in self.store.labels():
            self.store.remove_label(name)
            self.labelled.pop(name, None)

    # -- maintenance ------------------------------------------------------------

    @rule()
    def collect(self) -> None:
        gc(self.store, grace=0)

    @rule(target=exported, roots=st.lists(objects | calls, min_size=1, max_size=3))
    def export_some(self, roots: list[str]) -> bytes:
        present = [fp for fp in roots if fp in self.store]
        out = io.BytesIO()
        if present:
            export(self.store, present, out)
        return out.getvalue()

    @rule(bundle=consumes(exported))
    def import_back(self, bundle: bytes) -> None:
        if bundle:
            import_bundle(self.store, io.BytesIO(bundle))

    @rule(seconds=st.sampled_from([0.2, 0.5]))
    def collect_beside_a_runner(self, seconds: float) -> None:
        call = pack(funcs.sleep, (seconds,), store=self.store)
        os.utime(self.store.object_path(call), (0, 0))  # old: only its lease keeps it
        runner = subprocess.Popen(
            [*entry_point("scalems-call"), "--store", self.store.root, "exec", call],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        lease = Path(self.store.root, "tmp", "leases", call)
        while not lease.exists() and runner.poll() is None:
            time.sleep(0.01)
        gc(self.store, grace=0)
        out, err = runner.communicate(timeout=60)
        assert runner.returncode == 0, err.decode()
        self.ran[call] = out.decode().strip()

    # -- forgeries ----------------------------------------------------------------

    @rule(call=calls, how=st.sampled_from(["unsigned", "stranger", "planted"]), n=st.integers(0, 9))
    def forge_a_result(self, call: str, how: str, n: int) -> None:
        if call not in self.store:
            return
        value = f"80044b{n:02x}2e"  # pickle protocol 4 of the int n
        data = result_record(call, return_value=value, provenance={"end": "2099-01-01T00:00:00"})
        fp = hash_bytes(data)
        self.forged.add(fp)
        if how == "planted":  # written into the refs, as another user of the store could
            self.store.add_bytes(data, kind="result")
            self.store.update_ref("calls", call, lambda known: [fp, *known])
            return
        signatures = [] if how == "unsigned" else [stranger_signature(fp, call)]
        import_bundle(self.store, io.BytesIO(forged_bundle(call, data, signatures)))

    # -- crashes ------------------------------------------------------------------

    @rule(call=calls, after=st.floats(0.0, 0.4))
    def kill_a_runner(self, call: str, after: float) -> None:
        if call not in self.store:
            return
        runner = subprocess.Popen(
            [*entry_point("scalems-call"), "--store", self.store.root, "exec", call],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(after)
        runner.send_signal(signal.SIGKILL)
        runner.wait()

    @rule(after=st.floats(0.05, 0.3))
    def kill_a_writer(self, after: float) -> None:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, self.store.root])
        time.sleep(after)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        moving = self.store.labels().get("moving")
        if moving is not None:
            self.labelled["moving"] = self.store.read_bytes(moving)

    # -- the promise ---------------------------------------------------------------

    @invariant()
    def nothing_referenced_is_lost(self) -> None:
        roots = reach.roots(self.store)
        assert roots.damage == []
        for fp in reach.closure(self.store, roots.fingerprints()):
            assert fp in self.store, f"{fp} is needed but gone"
            assert hash_bytes(self.store.read_bytes(fp, verify=False)) == fp
        for name, data in self.labelled.items():
            assert self.store.read_bytes(self.store.refs.label(name)) == data
        for call, result in self.ran.items():
            assert result in call_cache.results(self.store, call)
        report = verify(self.store)
        assert report.ok, report.problems

    @invariant()
    def only_what_the_store_signed_or_trusts_is_served(self) -> None:
        for ref in self.store.iter_refs("calls"):
            found = call_cache.hit(self.store, ref.key)
            if found is not None:
                assert found[0] not in self.forged, f"forged {found[0]} served for {ref.key}"
                assert call_cache.verdict(self.store, found[0], ref.key).state == "trusted"


TestStorePromise = StorePromise.TestCase
TestStorePromise.settings = settings(
    max_examples=int(os.environ.get("SCALEMS_STATEFUL_EXAMPLES", "12")),
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
