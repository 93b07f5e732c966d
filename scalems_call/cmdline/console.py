"""Start-up of ``scalems-call``: a cache-hit ``exec`` runs without click.

A workflow that calls ``scalems-call exec FP`` for steps already done should
pay for a lookup, not for importing click (about 30 ms, more than the lookup).
The line ::

    scalems-call [--store PATH] exec FP...

when every call named has a result that can be served (what ``exec`` would
print without running anything), prints the result fingerprints here. Any
other line, and any such line with a call to run, an error or a name that
does not resolve, goes to click (:mod:`scalems_call.cmdline.commands`) before anything
is printed, so running, errors, usage and help have one source.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from scalems_call.identity.errors import CallError
from scalems_store.cli.commandline import catch_sigterm, exit_status, split_store_option
from scalems_store.core.errors import StoreError


def main() -> None:
    """Console-script entry point of ``scalems-call``."""
    try:
        status = run_quick(sys.argv[1:])
        if status is None:
            from scalems_call.cmdline.commands import main as click_main

            click_main()
    except KeyboardInterrupt as exc:  # Ctrl-C while starting up (importing click...)
        status = exit_status(exc)
    sys.exit(status)


def run_quick(argv: Sequence[str]) -> int | None:
    """Serve *argv* if it is an ``exec`` of calls that all hit the cache; else return None."""
    split = split_store_option(list(argv))
    if split is None:
        return None
    store_path, args = split
    fingerprints = args[1:]
    if args[:1] != ["exec"] or not fingerprints or any(a.startswith("-") for a in fingerprints):
        return None
    catch_sigterm()
    try:
        results = _cached_results(store_path, fingerprints)
        if results is None:
            return None
        print("\n".join(results), flush=True)
    except (BrokenPipeError, KeyboardInterrupt) as exc:
        return exit_status(exc)
    return 0


def _cached_results(store_path: str | None, fingerprints: list[str]) -> list[str] | None:
    """The result fingerprint of each call named (in order, one per name) when all are
    cache hits, the graphs below them included; None when one is not, or on any error
    (left for click to report)."""
    from scalems_call.execution import cache
    from scalems_store.store.filestore import FileStore

    try:
        with FileStore(store_path, create=False) as store:
            known: dict[str, bool] = {}
            served: dict[str, str] = {}
            results = []
            for name in fingerprints:
                call_fp = cache.resolve_call(store, name)
                if call_fp not in served:
                    hit = cache.hit(store, call_fp, known)
                    if hit is None:
                        return None
                    served[call_fp] = hit[0]
                results.append(served[call_fp])
            return results
    except (StoreError, CallError):
        return None


if __name__ == "__main__":
    main()
