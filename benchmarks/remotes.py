"""Remotes against rclone on the same servers, in the same run, alternated (issue 23).

Servers are started here (moto_server for S3, OpenSSH's sshd for SSH/SFTP) on
free localhost ports, and stopped at the end. For each: 10,000 x 4 KiB objects
plus 4 x 64 MiB (``--quick``: 1,000 x 4 KiB + 2 x 8 MiB), pushed (ours: a
store's closure with ``scalems-store push``; rclone: ``rclone copy`` of the
same files as a directory), then pulled into an empty store (rclone: into an
empty directory); then a push with nothing new from a store of 100,000 objects
(``--quick``: 10,000). Targets: ours/rclone <= 1.0; no-op push < 1 s on S3,
< 0.5 s over SSH.

    python benchmarks/remotes.py --workdir /dev/shm/remotes-bench [--quick] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.scalems_store.remote.servers import S3_ENVIRONMENT, s3_server, sshd

BIN = Path(sys.executable).parent
STORE = str(BIN / "scalems-store")
"""The installation measured (``--bin DIR``: another one, e.g. a checkout of an earlier commit)."""


def make_source(where: Path, small: int, large: int, large_size: int) -> Path:
    """A directory of the files, and a store holding them as blobs, all named by one ref
    (``refs/bench/<key>``) whose key is labelled ``all`` (a tree would be one object)."""
    from scalems_store import FileStore

    files = where / "files"
    if files.exists():
        return files
    files.mkdir(parents=True)
    for i in range(small):
        (files / f"s{i:06d}").write_bytes(os.urandom(4096))
    for i in range(large):
        (files / f"l{i}").write_bytes(os.urandom(large_size))
    store = FileStore(where / "store")
    with store.batch():
        fps = [store.add_file(str(path)) for path in sorted(files.iterdir())]
    key = store.add_bytes(b"the benchmark's files\n")
    store.set_ref("bench", key, fps)
    store.set_label("all", key)
    return files


def run(argv: list[str], env: dict[str, str] | None = None) -> float:
    environment = {**os.environ, **(env or {})}
    if argv[0] == "rclone":  # its S3 client refuses a CA bundle over plain HTTP
        environment.pop("AWS_CA_BUNDLE", None)
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=environment, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


Step = tuple[Callable[[], object], list[str], "dict[str, str] | None"]
"""An untimed step before, and the command to time with its environment."""


def alternate(ours: Step, peer: Step, repeat: int) -> tuple[float, float]:
    """Median times of ours and the peer, each a (before, argv, env) triple, alternated."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        for mine, out in ((ours, a), (peer, b)):
            before, argv, env = mine
            before()
            out.append(run(argv, env))
    return statistics.median(a), statistics.median(b)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="/dev/shm/remotes-bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bin", help="the bin/ directory of the scalems-store to measure")
    parser.add_argument(
        "--only", default="s3,ssh,noop", help="of s3, ssh, noop (noop-ssh, noop-s3)"
    )
    args = parser.parse_args()
    global STORE
    if args.bin:
        STORE = str(Path(args.bin) / "scalems-store")
    only = set(args.only.split(","))
    load = os.getloadavg()
    print(f"{STORE}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    small, large, size = (1000, 2, 8 << 20) if args.quick else (10_000, 4, 64 << 20)
    noop = 10_000 if args.quick else 100_000
    files = make_source(work / "src", small, large, size)
    store = str(work / "src" / "store")
    os.environ.update(S3_ENVIRONMENT)
    os.environ["SCALEMS_STORE_FSYNC"] = "0"  # rclone does not fsync either
    rows: list[tuple[str, str, str, str]] = []
    if "s3" in only:
        rows += s3_rows(work, store, files, args.repeat)
    with sshd(work / "sshd") as server:
        os.environ["SCALEMS_SSH_COMMAND"] = server.ssh_command
        rclone = {
            "RCLONE_CONFIG_BENCH_TYPE": "sftp",
            "RCLONE_CONFIG_BENCH_HOST": "127.0.0.1",
            "RCLONE_CONFIG_BENCH_PORT": str(server.port),
            "RCLONE_CONFIG_BENCH_USER": server.user,
            "RCLONE_CONFIG_BENCH_KEY_FILE": str(work / "sshd" / "user_key"),
            # no md5sum run on the far side for each file: less work for the peer
            "RCLONE_CONFIG_BENCH_DISABLE_HASHCHECK": "true",
        }
        if "ssh" in only:
            rows += compare(
                work,
                "SSH",
                store,
                files,
                args.repeat,
                fs=None,
                rclone=rclone,
                url=lambda n: server.url(work / "far" / n),
                endpoint=None,
                peer=f"bench:{work / 'far-rclone'}",
            )
        if only & {"noop", "noop-ssh"}:
            rows += noop_push(work, noop, "SSH", lambda n: server.url(work / "far" / n), None)
    if only & {"noop", "noop-s3"}:
        with s3_server(work / "moto2") as s3:
            import s3fs

            s3fs.S3FileSystem(endpoint_url=s3.endpoint, skip_instance_cache=True).mkdir("bench")
            rows += noop_push(work, noop, "S3", lambda n: f"s3://bench/{n}", s3.endpoint)
    print()
    print("| benchmark | ours | rclone / target | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def s3_rows(work: Path, store: str, files: Path, repeat: int) -> list[tuple[str, str, str, str]]:
    """Push and pull on a moto S3 server, ours and rclone's."""
    with s3_server(work / "moto") as s3:
        import s3fs

        fs = s3fs.S3FileSystem(endpoint_url=s3.endpoint, skip_instance_cache=True)
        rclone = {
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": s3.endpoint,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": "testing",
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": "testing",
        }
        return compare(
            work,
            "S3",
            store,
            files,
            repeat,
            fs=fs,
            rclone=rclone,
            url=lambda n: f"s3://bench/{n}",
            endpoint=s3.endpoint,
            peer="bench:bench",
        )


def compare(
    work: Path,
    label: str,
    store: str,
    files: Path,
    repeat: int,
    fs: Any,
    rclone: dict[str, str],
    url: Callable[[str], str],
    endpoint: str | None,
    peer: str,
) -> list[tuple[str, str, str, str]]:
    """Push then pull, ours and rclone's, alternated; each run into a fresh place."""
    counter = [0]
    rows: list[tuple[str, str, str, str]] = []
    if fs is not None:
        fs.mkdir("bench")

    def fresh_remote() -> list[str]:
        counter[0] += 1
        name = f"r{counter[0]}"
        subprocess.run([STORE, "--store", store, "remote", "remove", "bench"], capture_output=True)
        argv = [STORE, "--store", store, "remote", "add", "bench", url(name)]
        argv += ["--command", STORE] if endpoint is None else ["--endpoint-url", endpoint]
        subprocess.run(argv, check=True, capture_output=True)
        return argv

    def clear_peer() -> None:
        environment = {**os.environ, **rclone}
        environment.pop("AWS_CA_BUNDLE", None)
        subprocess.run(["rclone", "purge", f"{peer}/files"], env=environment, capture_output=True)

    push = alternate(
        (fresh_remote, [STORE, "--store", store, "push", "--labels"], None),
        (clear_peer, ["rclone", "copy", "--transfers", "16", str(files), f"{peer}/files"], rclone),
        repeat,
    )
    _add(
        rows, (f"{label} push", f"{push[0]:.2f} s", f"{push[1]:.2f} s", f"{push[0] / push[1]:.2f}x")
    )
    # the last pushed remote stays for the pulls
    target = work / "pulled"
    add = [STORE, "--store", str(target), "remote", "add", "bench", url(f"r{counter[0]}")]
    add += ["--command", STORE] if endpoint is None else ["--endpoint-url", endpoint]

    def empty_store() -> None:
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(add, check=True, capture_output=True)

    def empty_dir() -> None:
        shutil.rmtree(work / "pulled-rclone", ignore_errors=True)

    pull = alternate(
        (empty_store, [STORE, "--store", str(target), "pull", "all"], None),
        (
            empty_dir,
            ["rclone", "copy", "--transfers", "16", f"{peer}/files", str(work / "pulled-rclone")],
            rclone,
        ),
        repeat,
    )
    _add(
        rows,
        (
            f"{label} pull into an empty store",
            f"{pull[0]:.2f} s",
            f"{pull[1]:.2f} s",
            f"{pull[0] / pull[1]:.2f}x",
        ),
    )
    return rows


def _add(rows: list[tuple[str, str, str, str]], row: tuple[str, str, str, str]) -> None:
    rows.append(row)
    print("| " + " | ".join(row) + " |", flush=True)  # as it comes: a run may be cut short


def noop_push(
    work: Path, count: int, label: str, url: Callable[[str], str], endpoint: str | None
) -> list[tuple[str, str, str, str]]:
    """A push with nothing new, from a store of *count* objects reached by *count*/100
    refs of 100 values each."""
    from scalems_store import FileStore

    root = work / f"noop-refs-{count}"
    if not (root / "store.json").exists():
        store = FileStore(root)
        with store.batch():
            fps = [store.add_bytes(b"object %d\n" % i) for i in range(count)]
            keys = [store.add_bytes(b"key %d\n" % i) for i in range(0, count, 100)]
        # as a store of calls: many refs of a few values (a ref file holds at most 1 MiB)
        for i, key in enumerate(keys):
            store.set_ref("bench", key, fps[i * 100 : (i + 1) * 100])
    store_root = str(root)
    name = f"noop-{label.lower()}"
    subprocess.run([STORE, "--store", store_root, "remote", "remove", "n"], capture_output=True)
    argv = [STORE, "--store", store_root, "remote", "add", "n", url(name)]
    argv += ["--command", STORE] if endpoint is None else ["--endpoint-url", endpoint]
    subprocess.run(argv, check=True, capture_output=True)
    first = run([STORE, "--store", store_root, "push"])
    times = []
    for _ in range(5):
        before = os.times()
        wall = run([STORE, "--store", store_root, "push"])
        after = os.times()
        cpu = (after.children_user - before.children_user) + (
            after.children_system - before.children_system
        )
        times.append((wall, cpu))
    wall = statistics.median(t[0] for t in times)
    cpu = statistics.median(t[1] for t in times)
    target = "< 1 s" if label == "S3" else "< 0.5 s"
    rows: list[tuple[str, str, str, str]] = []
    name = f"{label} no-op push, {count:,} objects (first push {first:.1f} s)"
    load = os.getloadavg()[0]
    _add(rows, (name, f"{wall:.2f} s (CPU {cpu:.2f} s)", target, f"load {load:.1f}"))
    return rows


if __name__ == "__main__":
    main()
