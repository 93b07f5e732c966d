"""What a remote cache hit costs in ``exec --remote``, against a local hit (issue 23).

Target: a remote cache hit costs at most one round trip more than a local hit (which costs
none). For a path, an SSH and an S3 remote (sshd and moto_server started here on free
localhost ports, stopped at the end), a call's result is pushed to the remote; then an
empty store asks it, as ``exec --remote`` does, and we count:

- exchanges: requests the client waits on (a transport's ``have``, ``closure``, ``get``,
  ``put``, ``update``), after connecting;
- for SSH, the connection itself (one ``ssh`` login: TCP, key exchange and
  authentication, then the server's hello);
- for S3, the HTTP requests moto_server logged.

Then the wall time of ``scalems-call exec CALL`` (a local hit) and of
``scalems-call exec --remote NAME --jobs 2 CALL`` from an empty store (a remote hit),
alternated, medians.

    python benchmarks/remote_hit.py --workdir /dev/shm/remote-hit [--repeat 5]
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.scalems_store.remote.servers import S3_ENVIRONMENT, s3_server, sshd

BIN = Path(sys.executable).parent
EXCHANGES = ("have", "closure", "get", "put", "update")


def source(work: Path) -> tuple[str, str]:
    """A store with a call that ran (a local hit): ``(store root, call)``."""
    from scalems_call import pack, run
    from scalems_store import FileStore
    from tests.scalems_call import funcs

    root = work / "source"
    if root.exists():
        shutil.rmtree(root)
    store = FileStore(root)
    call = pack(funcs.simulate, (7,), store=store)
    assert run(call, store=store).status == "success"
    return str(root), call


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        env={**os.environ, **(env or {})},
        capture_output=True,
        check=True,
    )


def options(url: str, endpoint: str | None) -> list[str]:
    """``remote add`` options: the S3 endpoint, or the far side's ``scalems-store``."""
    if endpoint:
        return ["--endpoint-url", endpoint]
    if url.startswith("ssh://"):
        return ["--command", str(BIN / "scalems-store")]
    return []


def empty_client(work: Path, url: str, endpoint: str | None) -> str:
    root = work / "client"
    if root.exists():
        shutil.rmtree(root)
    extra = options(url, endpoint)
    cli("scalems-store", "--store", str(root), "remote", "add", "r", url, *extra)
    return str(root)


@contextmanager
def counted() -> Iterator[collections.Counter[str]]:
    """Count each transport's exchanges (and SSH logins) made meanwhile, in this process."""
    from scalems_store.remote import http, peer, s3, ssh

    counts: collections.Counter[str] = collections.Counter()
    saved: list[tuple[type, str, Any]] = []
    classes: tuple[type, ...] = (peer.LocalPeer, ssh.SshPeer, s3.BucketPeer, http.HttpPeer)

    def wrap(cls: type, name: str, key: str) -> None:
        original = cls.__dict__.get(name)
        if original is None:
            return

        def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts[key] += 1
            return original(self, *args, **kwargs)

        saved.append((cls, name, original))
        setattr(cls, name, counting)

    for klass in classes:
        if klass is ssh.SshPeer:  # a request and its reply, whatever method sends it
            for name in ("_ask", "get", "put"):
                wrap(klass, name, "exchanges")
            continue
        for name in EXCHANGES:
            wrap(klass, name, "exchanges")
        if klass is s3.BucketPeer:
            wrap(klass, "receive", "exchanges")  # a bucket receives without get
    wrap(ssh.SshPeer, "__init__", "logins")
    try:
        yield counts
    finally:
        for cls, name, original in saved:
            setattr(cls, name, original)


def remote_hit(client: str, call: str) -> None:
    """What ``exec --remote r --jobs 2 CALL`` does for a hit: connect, ask, close."""
    from scalems_call.cmdline import remote_exec
    from scalems_store import FileStore

    with FileStore(client) as store, redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        session = remote_exec.serve_hits(store, "r", (call,), False, True)
        session.peer.close()
        assert not session.misses, "not a hit"


def timed(before: Callable[[], object], argv: list[str], env: dict[str, str]) -> float:
    before()
    start = time.perf_counter()
    subprocess.run(argv, env={**os.environ, **env}, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(
    work: Path,
    label: str,
    src: str,
    call: str,
    url: str,
    endpoint: str | None,
    repeat: int,
    requests: Callable[[], int] | None = None,
) -> list[str]:
    extra = options(url, endpoint)
    cli("scalems-store", "--store", src, "remote", "add", label.lower(), url, *extra)
    cli("scalems-store", "--store", src, "push", "-r", label.lower(), call)
    client = empty_client(work, url, endpoint)
    before = requests() if requests else 0
    with counted() as counts:
        remote_hit(client, call)
    http_requests = (requests() - before) if requests else None
    if requests is not None and os.environ.get("SHOW_REQUESTS"):
        log = work / "moto" / "moto.log"
        shown = [line for line in log.read_text().splitlines() if '"' in line]
        print("\n".join(line.split('"')[1] for line in shown[before:]), flush=True)
    local: list[float] = []
    far: list[float] = []
    exec_local = [str(BIN / "scalems-call"), "--store", src, "exec", call]
    exec_far = [str(BIN / "scalems-call"), "--store", client, "exec", "--remote", "r"]
    exec_far += ["--jobs", "2", call]
    for _ in range(repeat):
        local.append(timed(lambda: None, exec_local, {}))
        far.append(timed(lambda: empty_client(work, url, endpoint), exec_far, {}))
    row = (
        f"| {label} | {counts['exchanges']} | {counts['logins'] or '-'} | "
        f"{'-' if http_requests is None else http_requests} | "
        f"{statistics.median(local) * 1000:.0f} ms | {statistics.median(far) * 1000:.0f} ms |"
    )
    print(row, flush=True)
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="/dev/shm/remote-hit")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(S3_ENVIRONMENT)
    os.environ["SCALEMS_STORE_FSYNC"] = "0"
    src, call = source(work)
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print("| remote | exchanges | ssh logins | HTTP requests | local hit | remote hit |")
    print("|---|---|---|---|---|---|", flush=True)
    far = work / "far"
    shutil.rmtree(far, ignore_errors=True)
    measure(work, "path", src, call, str(far / "path"), None, args.repeat)
    with sshd(work / "sshd") as server:
        os.environ["SCALEMS_SSH_COMMAND"] = server.ssh_command
        measure(work, "ssh", src, call, server.url(far / "ssh"), None, args.repeat)
        login = [*server.ssh_command.split(), "-p", str(server.port)]
        login += [f"{server.user}@127.0.0.1", f"{BIN / 'python'} -c pass"]
        alone = statistics.median(timed(lambda: None, login, {}) for _ in range(args.repeat))
        print(f"(an ssh login running python -c pass there: {alone * 1000:.0f} ms)", flush=True)
    with s3_server(work / "moto") as s3:
        import s3fs

        s3fs.S3FileSystem(endpoint_url=s3.endpoint, skip_instance_cache=True).mkdir("hit")
        log = work / "moto" / "moto.log"

        def requests() -> int:
            return sum(1 for line in log.read_text().splitlines() if '"' in line)

        measure(work, "s3", src, call, "s3://hit/store", s3.endpoint, args.repeat, requests)
        imports = [str(BIN / "python"), "-c", "import s3fs"]
        alone = statistics.median(timed(lambda: None, imports, {}) for _ in range(args.repeat))
        print(f"(python -c 'import s3fs': {alone * 1000:.0f} ms)", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
