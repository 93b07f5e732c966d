"""A call's code closure (issue 21): what carrying the code costs.

- packing 1,000 calls of one function whose closure has 50 of the user's
  modules, per call after the first (target: <= 5 ms), beside packing the same
  number of calls of a standard library function (no code to carry);
- ``scalems-call exec FP`` on a cache hit of such a call, against
  ``python -c 'import click'`` (target: <= 1.3x);
- a miss (``exec --force``) of the call carrying its code, against the same
  function packed as before records carried code (target: <= 5 ms more): the
  code tree is written out once per worker and reused.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import PY, Command, report, timed_pair, tool

MODULES = 50
LEGACY_PACK = """
import sys
from scalems_call.identity.compat import build_call
from scalems_store import FileStore
from scalems_store.core.layout import canonical
import closure_bench.entry as entry
print(FileStore(sys.argv[1]).add_bytes(canonical(build_call(entry.f, args=(1,))), kind="call"))
"""


def _project(work: Path) -> Path:
    """A package of MODULES modules, each importing the next; entry.f imports the first."""
    root = work / "closure-project"
    shutil.rmtree(root, ignore_errors=True)
    package = root / "closure_bench"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for i in range(MODULES - 2):
        follow = f"from closure_bench import m{i + 1:02d}\n" if i + 1 < MODULES - 2 else ""
        (package / f"m{i:02d}.py").write_text(
            f"{follow}\nVALUE = {i}\n\n\ndef g(x):\n    return x\n"
        )
    (package / "entry.py").write_text(
        "from closure_bench import m00\n\n\ndef f(x):\n    return m00.g(x) + 1\n"
    )
    return root


def _pack_many(store: Any, func: Any, count: int) -> tuple[float, float]:
    from scalems_call import pack

    start = time.perf_counter()
    pack(func, (0,), store=store)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(1, count):
        pack(func, (i,), store=store)
    return first, (time.perf_counter() - start) / (count - 1)


def bench_closure(work: Path, quick: bool) -> None:
    from scalems_call.identity.closure import closure
    from scalems_store import FileStore

    count = 200 if quick else 1000
    project = _project(work)
    sys.path.insert(0, str(project))
    try:
        entry = importlib.import_module("closure_bench.entry")
        assert len(closure(["closure_bench.entry"]).files) == MODULES
        root = work / "store-closure"
        shutil.rmtree(root, ignore_errors=True)
        with FileStore(root, durable=False) as store:
            first, ours = _pack_many(store, entry.f, count)
            _, plain = _pack_many(store, abs, count)
            fp = _pack_many_fp(store, entry.f)
    finally:
        sys.path.remove(str(project))
    print(f"first pack of the {MODULES}-module closure: {first * 1000:.1f} ms")
    report(
        f"pack, {MODULES}-module closure, per call after the first",
        ours,
        plain,
        "pack of abs (no code)",
        "<= 5 ms",
    )
    call_cli = tool("scalems-call")
    cache = work / "code-cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {"SCALEMS_CALL_CODE_CACHE": str(cache)}
    store_args = [call_cli, "--store", str(root)]
    subprocess.run([*store_args, "exec", fp], check=True, env={**os.environ, **env})
    hit, click_import = timed_pair(
        Command([*store_args, "exec", fp], env), [PY, "-c", "import click"]
    )
    report("scalems-call exec, hit, call with code", hit, click_import, "import click", "<= 1.3x")
    legacy = subprocess.run(
        [PY, "-c", LEGACY_PACK, str(root)],
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with_path = {**env, "PYTHONPATH": os.pathsep.join([str(project), os.environ["PYTHONPATH"]])}
    miss, before = timed_pair(
        Command([*store_args, "exec", "--force", fp], with_path),
        Command([*store_args, "exec", "--force", legacy], with_path),
        repeat=15,
    )
    report(
        "exec --force (a miss), call with code",
        miss,
        before,
        "the same call, no code recorded",
        "<= +5 ms",
    )
    print(f"a miss pays {(miss - before) * 1000:+.1f} ms for its code")


def _pack_many_fp(store: Any, func: Any) -> str:
    from scalems_call import pack

    return str(pack(func, (12345,), store=store))
