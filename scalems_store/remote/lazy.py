"""Lazy fetch: what a read needs and this store lacks, brought from the default remote.

``scalems-store get`` and ``scalems-call result`` call :func:`fetch` when the
object they read is not here (a result ``exec --remote`` ran on workers, whose
outputs stay on the remote until pulled). It asks the default remote for the
closure of the name (one exchange) and brings only what reading it needs: the
object itself, or for a call the newest result the remote records for it, and
for a result its record, stdout, stderr and output directory (with whatever a
tree references), never the calls and results they name. No ref is set here
(as ``fetch``): the name read is the result's own fingerprint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from scalems_store.core.errors import BadSetting, ObjectNotFound, StoreError
from scalems_store.maint.bundle import Entry
from scalems_store.objects import content

if TYPE_CHECKING:
    from scalems_store.remote.peer import Closure
    from scalems_store.store.filestore import FileStore


class Fetched(NamedTuple):
    """What :func:`fetch` brought: the object to read now, and one line saying so."""

    fingerprint: str
    """The object the name stands for here: the remote's newest result of a call."""
    line: str


def fetch(store: FileStore, name: str, why: str, *, outputs: bool = True) -> Fetched:
    """Bring from the default remote what reading *name* (a fingerprint, prefix or label)
    needs and *store* lacks; *why* is what failed here (for the error). With *outputs*, a
    call stands for its newest result there (else for its own record).

    Raises:
        ObjectNotFound: there is no default remote, or it does not hold *name* (or, for a
            call, any result of it); one line with *why*.
    """
    from scalems_store.remote import packs, settings, sync

    try:
        remote = settings.find(store.root, None)
    except BadSetting:
        raise ObjectNotFound(f"{why} (and no default remote to fetch it from)") from None
    try:
        with sync.open_peer(remote) as peer:
            closure = peer.closure([name], True)
            target = _target(closure, name, outputs)
            wanted = _wanted(closure, target)
            missing = [e for e in wanted if e.fingerprint not in store]
            for pack in packs.split(missing, closure.sizes):
                peer.receive(store, pack, None)
    except ObjectNotFound:
        raise ObjectNotFound(f"{why}, nor does remote {remote.name!r}") from None
    except StoreError as exc:
        raise type(exc)(f"{why}; fetching it from remote {remote.name!r}: {exc}") from None
    size = sum(closure.sizes.get(e.fingerprint, 0) for e in missing)
    from scalems_store.core.humane import size as human

    count = f"{len(missing)} object{'' if len(missing) == 1 else 's'}"
    line = f"fetched {count} ({human(size)}) from remote {remote.name}"
    return Fetched(target, line)


def _target(closure: Closure, name: str, outputs: bool) -> str:
    """The object *name* stands for on the remote; with *outputs*, for a call its newest
    result."""
    text = name.removeprefix("blake3:").lower()
    labelled = closure.labels.get(name)
    found = [
        e
        for e in closure.entries
        if e.fingerprint == labelled or (labelled is None and e.fingerprint.startswith(text))
    ]
    if len(found) != 1:
        raise ObjectNotFound(name)
    if found[0].kind != content.CALL or not outputs:
        return found[0].fingerprint
    call = found[0].fingerprint
    results = next((r.values for r in closure.refs if r.key == call), [])
    if not results:
        raise ObjectNotFound(f"call {call} has no result")
    return results[0]


def retry_spec(store: FileStore, spec: str, why: str) -> tuple[str, str]:
    """``FP[:PATH]`` to read again after fetching what it needs (a call's name replaced by
    its result's fingerprint), and the line saying what was fetched (see :func:`fetch`)."""
    from scalems_store.store.treeview import split_spec

    name, path = split_spec(spec)
    fetched = fetch(store, name, why, outputs=path is not None)
    return fetched.fingerprint + ("" if path is None else f":{path}"), fetched.line


def _wanted(closure: Closure, target: str) -> list[Entry]:
    """*target* and what reading it needs: what it references, through trees and blobs,
    never into the calls and results a result names (in the closure's order)."""
    entries = {e.fingerprint: e for e in closure.entries}
    wanted: set[str] = set()
    pending = [target]
    while pending:
        fp = pending.pop()
        entry = entries.get(fp)
        if fp in wanted or entry is None:
            continue
        if fp != target and entry.kind in (content.CALL, content.RESULT):
            continue
        wanted.add(fp)
        pending.extend(entry.refs)
    return [e for e in closure.entries if e.fingerprint in wanted]
