"""SSH remotes: ``ssh://[user@]host[:port]/path``, through the system ``ssh``.

The system client is used (``$SCALEMS_SSH_COMMAND``, default ``ssh``), so that
``~/.ssh/config``, agents, ProxyJump, ControlMaster and a cluster's two-factor
login work as they do for git and rsync. On the far side it runs
``scalems-store serve --stdio PATH`` (the remote's ``command`` setting names
another program, e.g. a virtual environment's ``bin/scalems-store``) and speaks
:mod:`.wire` with it: one exchange settles what is missing, then packs stream
each way, verified by the receiver before it publishes them.

Where ``scalems-store`` does not run on the far side, the transfer stops with
one line saying so and how to fix it (install it there, or name its path with
``remote add ... --command``): there is no fallback to copying files with
``ssh cat`` or sftp, which could not verify objects or update refs safely on
the far side. A path ``/~/x`` (``ssh://host/~/x``) is ``x`` under the far
side's home directory.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import urllib.parse
from collections.abc import Callable
from typing import IO, Any

from scalems_store.core import errors
from scalems_store.core.errors import BadSetting, RemoteError, StoreError
from scalems_store.maint.bundle import Entry
from scalems_store.remote import wire
from scalems_store.remote.bucket import write_signatures
from scalems_store.remote.peer import Closure, Peer
from scalems_store.remote.settings import Remote
from scalems_store.store.refs import Ref, Signature

COMMAND = "scalems-store"
_INSTALL = (
    "install it there (pip install scalems-store) or name it with "
    "'scalems-store remote add NAME URL --command /path/to/scalems-store'"
)


def command_line(remote: Remote, *, create: bool) -> list[str]:
    """The ``ssh`` command that runs the far side's server for *remote*.

    Raises:
        BadSetting: the URL has no host or path, or a host that looks like an option.
    """
    parts = urllib.parse.urlsplit(remote.url)
    host, path = parts.hostname, urllib.parse.unquote(parts.path)
    if not host or host.startswith("-") or (parts.username or "").startswith("-"):
        raise BadSetting(f"remote {remote.name!r}: not an ssh://[user@]host[:port]/path URL")
    # ssh starts the command in the home directory: /~/x is x there
    quoted = shlex.quote(path[3:] or ".") if path.startswith("/~/") else shlex.quote(path)
    try:
        port = parts.port
    except ValueError:
        raise BadSetting(f"remote {remote.name!r}: bad port in {remote.url!r}") from None
    ssh = shlex.split(os.environ.get("SCALEMS_SSH_COMMAND") or "ssh")
    if port is not None:
        ssh += ["-p", str(port)]
    ssh.append(f"{parts.username}@{host}" if parts.username else host)
    program = remote.command or COMMAND
    ssh.append(f"{program} serve --stdio {'--create ' if create else ''}{quoted}")
    return ssh


class SshPeer(Peer):
    """A store on another host, served there by ``scalems-store serve --stdio``."""

    def __init__(self, remote: Remote, *, create: bool) -> None:
        self.remote = remote
        self.where = remote.url
        argv = command_line(remote, create=create)
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=False,
            )
        except OSError as exc:
            raise RemoteError(f"cannot run {argv[0]!r}: {exc.strerror}") from exc
        assert self.process.stdin is not None and self.process.stdout is not None
        self.inp: IO[bytes] = self.process.stdout
        self.out: IO[bytes] = self.process.stdin
        self.said: list[bytes] = []
        self._stderr = threading.Thread(target=self._collect, daemon=True)
        self._stderr.start()
        try:
            hello = self._receive()
        except RemoteError:
            self.close()
            raise self._failed("", self.remote.command or COMMAND) from None
        if hello != wire.HELLO:
            self.close()
            raise self._reply_error(hello)

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.said.append(line)
            del self.said[:-20]

    def _failed(self, doing: str, program: str) -> RemoteError:
        """The error for a connection that ended: what ssh (or the far side) said."""
        try:
            status = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            status = None
        self._stderr.join(timeout=5)
        said = b" ".join(line.strip() for line in self.said[-3:]).decode(errors="replace")
        where = f"{self.remote.name} ({self.remote.url})"
        if status == 127:
            return RemoteError(f"{program} does not run on {where}: {said}; {_INSTALL}")
        why = f": {said}" if said else f" (ssh exit status {status})"
        return RemoteError(f"the connection to {where} ended{' ' + doing if doing else ''}{why}")

    def _receive(self) -> dict[str, Any]:
        return wire.receive_message(self.inp, self.where)

    def _reply_error(self, reply: dict[str, Any]) -> StoreError:
        """The error a reply names, as the same class here where it is one of ours."""
        name, message = reply.get("type"), str(reply.get("error", reply))[:2000]
        cls = getattr(errors, name, None) if isinstance(name, str) else None
        text = f"{self.remote.name}: {message}"
        if isinstance(cls, type) and issubclass(cls, StoreError):
            try:
                return cls(text)
            except TypeError:  # an error made otherwise (AmbiguousPrefix)
                pass
        return RemoteError(text)

    def _ask(self, request: dict[str, Any], doing: str) -> dict[str, Any]:
        try:
            wire.send_message(self.out, request)
            reply = self._receive()
        except (RemoteError, OSError):
            raise self._failed(doing, self.remote.command or COMMAND) from None
        if "error" in reply:
            raise self._reply_error(reply)
        return reply

    def have(self, fingerprints: list[str]) -> set[str]:
        reply = self._ask({"op": "have", "fingerprints": fingerprints}, "while comparing")
        return {fp for fp in reply.get("have", ()) if fp in set(fingerprints)}

    def closure(self, names: list[str] | None, labels: bool) -> Closure:
        reply = self._ask({"op": "closure", "names": names, "labels": labels}, "while listing")
        entries, refs = wire.read_manifest(reply.get("manifest"))
        sizes = reply.get("sizes")
        if not isinstance(sizes, dict) or not all(isinstance(v, int) for v in sizes.values()):
            raise RemoteError(f"{self.remote.name}: bad sizes in its reply")
        return Closure(entries, refs, sizes, wire.read_labels(reply.get("labels")))

    def put(self, write: Callable[[IO[bytes]], object]) -> int:
        try:
            wire.send_message(self.out, {"op": "put"})
            writer = wire.StreamWriter(self.out)
            write(writer)  # type: ignore[arg-type]
            writer.end()
            reply = self._receive()
        except (RemoteError, OSError):
            raise self._failed("while sending", self.remote.command or COMMAND) from None
        if "error" in reply:
            raise self._reply_error(reply)
        count = reply.get("count")
        return count if isinstance(count, int) else 0

    def get(self, entries: list[Entry], read: Callable[[IO[bytes]], object]) -> None:
        try:
            wire.send_message(self.out, {"op": "get", "manifest": wire.manifest(entries, [])})
        except OSError:
            raise self._failed("while asking", self.remote.command or COMMAND) from None
        reader = wire.StreamReader(self.inp, self.where)
        failure: StoreError | None = None
        try:
            read(reader)  # type: ignore[arg-type]
        except StoreError as exc:
            failure = exc
        try:
            reader.drain()
            reply = self._receive()
        except (RemoteError, OSError):
            raise self._failed("while receiving", self.remote.command or COMMAND) from None
        if "error" in reply:
            raise self._reply_error(reply)  # the sender's reason, not the truncated pack
        if failure is not None:
            raise failure

    def settled(self, refs: list[Ref], labels: dict[str, str]) -> tuple[set[int], set[str]]:
        request = {"op": "settled", "refs": wire.ref_summaries(refs), "labels": labels}
        reply = self._ask(request, "while comparing refs")
        same = reply.get("refs")
        names = reply.get("labels")
        if not (isinstance(same, list) and isinstance(names, list)):
            raise RemoteError(f"{self.remote.name}: bad reply to 'settled'")
        return (
            {i for i in same if isinstance(i, int) and 0 <= i < len(refs)},
            {n for n in names if isinstance(n, str) and n in labels},
        )

    def update(
        self,
        refs: list[Ref],
        labels: dict[str, str],
        signatures: dict[str, list[Signature]] | None = None,
    ) -> None:
        request = {
            "op": "update",
            "manifest": wire.manifest([], refs),
            "labels": labels,
            "signatures": write_signatures(signatures or {}),
        }
        self._ask(request, "while updating refs")

    def close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.join(timeout=5)
        if self.process.stderr is not None:
            self.process.stderr.close()
