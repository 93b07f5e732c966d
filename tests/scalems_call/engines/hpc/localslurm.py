"""A real single-node Slurm on localhost, started (and stopped) by the tests themselves.

:func:`start` runs munged, slurmctld and slurmd in the foreground as children of this
process, with a key, sockets, a ``slurm.conf``, state, spool, pid and log files all in one
directory of its own; :meth:`LocalSlurm.stop` cancels the jobs left and stops each daemon by
the PID it started (SIGTERM, then SIGKILL). Nothing outside that directory is written.
:class:`SlurmUnavailable` says why Slurm cannot run here (not root, binaries missing, a
daemon that does not come up).

Used by ``tests/scalems_call/engines/hpc/conftest.py`` and ``benchmarks/slurm_bench.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: Commands the fixture and the tests run (the daemons live in /usr/sbin on Debian).
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("munge", "sbatch", "srun", "squeue", "scancel", "sinfo", "scontrol")
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

PARTITION = "debug"


class SlurmUnavailable(RuntimeError):
    """Slurm cannot be run on this machine (the message says why)."""


def find(name: str) -> str | None:
    return shutil.which(name, path=SEARCH_PATH)


def missing_binaries() -> list[str]:
    """The daemons and client commands that are not installed."""
    return [name for name in (*DAEMONS, *CLIENTS) if find(name) is None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Have the kernel SIGTERM the daemon if this (test) process dies without its teardown."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class LocalSlurm:
    """A running single-node Slurm: its files, the environment to use it, and small helpers."""

    root: Path
    node: str
    cpus: int
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # -- files ----------------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def jobcomp_log(self) -> Path:
        return self.root / "log" / "jobcomp.log"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    def logs(self) -> str:
        """The node's state, the queue and the tail of every daemon's log (for failure
        messages)."""
        parts = []
        if self.processes.get("slurmctld") and self.processes["slurmctld"].poll() is None:
            for argv in (["sinfo", "--Node", "--long"], ["squeue", "--long"]):
                with contextlib.suppress(Exception):
                    proc = self.run(*argv, check=False, timeout=10)
                    parts.append(f"--- {' '.join(argv)}\n{proc.stdout}{proc.stderr}")
        for path in sorted((self.root / "log").iterdir()):  # *.log, and the daemons' output
            lines = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    # -- commands -------------------------------------------------------------------------
    def run(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = 60,
        cwd: Path | str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command with this Slurm's environment (in its directory unless *cwd*, so that
        a job's default ``slurm-%j.out`` lands there); raise with its output when it fails."""
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd or self.root,
            env={**self.env, **(env or {})},
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def sbatch(
        self,
        *options: str,
        script: Path | str | None = None,
        wrap: str | None = None,
        cwd: Path | str | None = None,
        timeout: float = 60,
    ) -> str:
        """Submit a batch job (a script, or ``--wrap`` a command line); return its job id.

        With ``--wait`` among *options*, return when the job (or every task of an array)
        has ended; a job that failed raises.
        """
        argv = ["sbatch", "--parsable", *options]
        if wrap is not None:
            argv.append(f"--wrap={wrap}")
        if script is not None:
            argv.append(str(script))
        out = self.run(*argv, cwd=cwd, timeout=timeout).stdout.strip()
        return out.splitlines()[-1].split(";")[0]

    def squeue(self) -> list[dict[str, str]]:
        """The jobs Slurm has not finished: id, name and state (``PD``, ``R``, ``CG``...)."""
        out = self.run("squeue", "--noheader", "--format=%i|%j|%t").stdout
        jobs = []
        for line in out.splitlines():
            if line.strip():
                job_id, name, state = line.strip().split("|", 2)
                jobs.append({"id": job_id, "name": name, "state": state})
        return jobs

    def jobs_completed(self) -> list[dict[str, str]]:
        """The job completion log (jobcomp/filetxt): one dict of its ``Key=value`` per job."""
        if not self.jobcomp_log.exists():
            return []
        jobs = []
        for line in self.jobcomp_log.read_text().splitlines():
            # values may hold spaces (WorkDir, Name): split before each " Key="
            pairs = re.split(r" (?=[A-Za-z]+=)", line.strip())
            jobs.append(dict(pair.split("=", 1) for pair in pairs if "=" in pair))
        return jobs

    def wait_until(
        self,
        predicate: Callable[[], object],
        timeout: float = 60,
        interval: float = 0.2,
        what: str = "",
    ) -> None:
        """Poll *predicate* until it is true; raise TimeoutError (with the daemons' logs), or
        SlurmUnavailable when a daemon has exited meanwhile."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}\n{self.logs()}")
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise SlurmUnavailable(
                        f"{name} exited with {proc.returncode} while waiting for {what}\n"
                        + self.logs()
                    )
            time.sleep(interval)

    def node_state(self) -> str:
        proc = self.run("sinfo", "--noheader", "--Node", "--format=%t|%c", check=False)
        line = proc.stdout.strip().splitlines()[:1]
        return line[0].split("|")[0] if line else ""

    def node_cpus(self) -> int:
        out = self.run("sinfo", "--noheader", "--Node", "--format=%c").stdout.split()
        return int(out[0])

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until the node is idle: no job on it, ready to take the next one. A node left
        DOWN or DRAINED (a step that could not be killed, say) is resumed first."""
        state = self.node_state().rstrip("*~#!%$@^-")
        if state in ("down", "drain", "drng", "fail", "failg"):
            self.run("scontrol", "update", f"NodeName={self.node}", "State=RESUME", check=False)
        self.wait_until(
            lambda: self.node_state() == "idle" and not self.squeue(),
            timeout=timeout,
            what="the node to be idle",
        )

    def cancel_all(self, timeout: float = 30) -> None:
        """Cancel every job and wait until Slurm has finished them."""
        jobs = [job["id"] for job in self.squeue()]
        if jobs:
            self.run("scancel", *jobs, check=False)
            self.wait_until(lambda: not self.squeue(), timeout=timeout, what="cancelled jobs")

    # -- teardown -------------------------------------------------------------------------
    def stop(self, grace: float = 10) -> list[str]:
        """Cancel the jobs left, then stop each daemon by its PID: SIGTERM, then SIGKILL.

        Returns:
            The processes of this Slurm's jobs that outlived the daemons (``pid command``),
            if any: they are killed (SIGKILL, by PID) after a short wait.
        """
        try:
            if self.processes.get("slurmctld") and self.processes["slurmctld"].poll() is None:
                self.cancel_all()
        except Exception as exc:  # stop the daemons all the same
            print(f"localslurm: cancelling jobs failed: {exc}", file=sys.stderr)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.processes.pop(name, None)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(grace)
        deadline = time.monotonic() + 5
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        for line in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
        return left

    def leftovers(self) -> list[str]:
        """Live processes (``pid command``) whose environment names this Slurm's conf: job
        steps and job processes (slurmd passes ``SLURM_CONF`` on), and the daemons."""
        return processes_with_env(f"SLURM_CONF={self.conf}")

    def start_daemon(self, name: str, *argv: str) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 - kept by the child
        with log:
            self.processes[name] = subprocess.Popen(
                [name, *argv],
                executable=find(name),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.root,
                preexec_fn=_die_with_parent,
            )


def slurm_conf(root: Path, node: str, topology: str, ctld_port: int, slurmd_port: int) -> str:
    """A minimal slurm.conf for one node on localhost, every path inside *root*."""
    return f"""\
ClusterName=scalemstest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/slurmd
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# start a batch job within a second of its submission, or of a free CPU (defaults: up to 3 s
# of batch_sched_delay, then backfill every 30 s)
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,bf_interval=1
# `sbatch --wait` polls after 2 s, then 4x longer each time while that stays below about
# MinJobAge/2 (so that it sees a job before slurmctld purges it): 4 keeps it at 2 s (with
# the default 300, a 3 s job returns after 10 s, an 11 s one after 42 s)
MinJobAge=4
# a cancelled job's processes get SIGKILL 2 s after SIGTERM (default 30)
KillWait=2
MailProg=/bin/true
# array task indices below 4 (default 1001): docs/scale.md's job-array recipe then needs its
# loop of several arrays for a handful of calls, as it would for thousands on a cluster
MaxArraySize=4
InactiveLimit=0
Waittime=0
NodeName={node} NodeAddr=127.0.0.1 {topology} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _topology(cpus: int) -> str:
    """The node's CPUs for slurm.conf: slurmd -C's sockets/cores/threads when they add up to
    *cpus* (``nproc``), else just ``CPUs=``."""
    found = subprocess.run(
        [find("slurmd") or "slurmd", "-C"], capture_output=True, text=True, timeout=30
    ).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", found))
    try:
        sockets = int(fields["SocketsPerBoard"]) * int(fields.get("Boards", "1"))
        cores, threads = int(fields["CoresPerSocket"]), int(fields["ThreadsPerCore"])
    except (KeyError, ValueError):
        return f"CPUs={cpus}"
    if sockets * cores * threads != cpus:
        return f"CPUs={cpus}"
    return f"CPUs={cpus} Sockets={sockets} CoresPerSocket={cores} ThreadsPerCore={threads}"


def start(root: Path, timeout: float = 60) -> LocalSlurm:
    """Start munged, slurmctld and slurmd for one node with all their files under *root*.

    Raises:
        SlurmUnavailable: not root, a binary is missing, or a daemon did not come up (the
            daemons already started are stopped again).
    """
    if os.geteuid() != 0:
        raise SlurmUnavailable("a local Slurm needs root (slurmd starts jobs as their user)")
    missing = missing_binaries()
    if missing:
        raise SlurmUnavailable(
            f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)"
        )
    root = Path(root).resolve()
    if len(str(root / "munge" / "munge.socket")) > 100:
        raise SlurmUnavailable(f"path too long for a unix socket: {root}")
    for sub in ("munge", "ctld", "slurmd", "run", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    node = socket.gethostname().split(".")[0]
    cpus = len(os.sched_getaffinity(0))
    (root / "slurm.conf").write_text(
        slurm_conf(root, node, _topology(cpus), free_port(), free_port())
    )
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o400)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    env["SLURM_CONF"] = str(root / "slurm.conf")
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), SEARCH_PATH])
    slurm = LocalSlurm(root=root, node=node, cpus=cpus, env=env)
    try:
        munge_dir = root / "munge"
        slurm.start_daemon(
            "munged",
            "--foreground",
            "--force",  # as root
            f"--socket={munge_dir}/munge.socket",
            f"--key-file={key}",
            f"--pid-file={root}/run/munged.pid",
            f"--log-file={root}/log/munged.log",
            f"--seed-file={munge_dir}/munged.seed",
        )
        slurm.wait_until(
            lambda: _munge_works(slurm), timeout=timeout, what="munged to answer on its socket"
        )
        slurm.start_daemon("slurmctld", "-D", "-i", "-f", str(slurm.conf))
        slurm.wait_until(
            lambda: slurm.run("scontrol", "ping", check=False).stdout.count("UP") > 0,
            timeout=timeout,
            what="slurmctld to answer",
        )
        slurm.start_daemon("slurmd", "-D", "-N", node, "-f", str(slurm.conf))
        slurm.wait_idle(timeout)
    except (SlurmUnavailable, TimeoutError, OSError) as exc:
        slurm.stop()
        raise SlurmUnavailable(f"Slurm did not start: {exc}") from exc
    except BaseException:
        slurm.stop()
        raise
    return slurm


def _munge_works(slurm: LocalSlurm) -> bool:
    if not slurm.munge_socket.exists():
        return False
    sock = str(slurm.munge_socket)
    cred = slurm.run("munge", "-n", "-S", sock, check=False, timeout=10)
    if cred.returncode != 0:
        return False
    check = subprocess.run(
        [find("unmunge") or "unmunge", "-S", sock],
        input=cred.stdout,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return check.returncode == 0


@contextmanager
def running(root: Path, timeout: float = 60) -> Iterator[LocalSlurm]:
    """:func:`start`, yield, :meth:`LocalSlurm.stop`."""
    slurm = start(root, timeout)
    try:
        yield slurm
    finally:
        slurm.stop()


#: What a config file for this Slurm defines before its ``config``: Parsl's SlurmProvider asks
#: Slurm for its blocks' states every 60 s; this Slurm forgets a job MinJobAge (4) s after it
#: ended, and then ``squeue --job`` fails and Parsl never learns that the block has ended (so
#: never replaces a lost one). Asking every second, Parsl sees a block end as it does on a
#: cluster (where it asks sacct, or squeue within the default MinJobAge of 300 s).
QUICK_PROVIDER = """\
from parsl.providers import SlurmProvider as _SlurmProvider


class SlurmProvider(_SlurmProvider):
    @property
    def status_polling_interval(self) -> int:
        return 1
"""


def _quick_block(launcher: str, worker_init: str, cluster: bool = False) -> str:
    """An executor's heartbeats and its provider, as both configs here want them: one
    node a block, one block at a time, a lost one noticed in seconds; with *cluster*,
    Parsl's own heartbeats and Slurm polling (every 60 s), as on a real cluster."""
    beats = "heartbeat_period=2,\n            heartbeat_threshold=6,\n"
    quick = "" if cluster else f"            {beats}"
    provider = "_SlurmProvider" if cluster else "SlurmProvider"
    return f"""\
{quick}            poll_period=10,
            provider={provider}(
                partition={PARTITION!r},
                nodes_per_block=1,
                init_blocks=1,
                min_blocks=0,
                max_blocks=1,
                walltime="00:10:00",
                launcher={launcher},
                worker_init={worker_init!r},
                cmd_timeout=30,
            ),
"""


def write_parsl_config(
    path: Path,
    *,
    run_dir: Path,
    worker_init: str,
    label: str = "slurm",
    workers: int = 2,
    strategy: str = "simple",
    cluster: bool = False,
) -> Path:
    """Write a Parsl config file (defining ``config``) for this Slurm: blocks of one node (one
    at a time), a HighThroughputExecutor on 127.0.0.1 with short heartbeats, so that a lost
    block is noticed, and cleanup is done, in seconds; Parsl's default strategy ("simple")
    replaces a lost block. With *cluster*, the heartbeats and Slurm polling are Parsl's
    defaults (the provider asks Slurm every 60 s), as on a real cluster."""
    path.write_text(
        f"""\
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import SrunLauncher

{QUICK_PROVIDER}

config = Config(
    executors=[
        HighThroughputExecutor(
            label={label!r},
            address="127.0.0.1",
            max_workers_per_node={workers},
{_quick_block("SrunLauncher()", worker_init, cluster)}        )
    ],
    run_dir={str(run_dir)!r},
    strategy={strategy!r},
    strategy_period={5 if cluster else 1},
    initialize_logging=False,
)
"""
    )
    return path


def write_mpi_config(
    path: Path, *, run_dir: Path, worker_init: str, mpi_launcher: str = "srun"
) -> Path:
    """Write a Parsl config file for MPI calls on this Slurm: an MPIExecutor (one MPI call at a
    time) whose block is one node, launching ranks with *mpi_launcher*."""
    path.write_text(
        f"""\
from parsl.config import Config
from parsl.executors import MPIExecutor
from parsl.launchers import SimpleLauncher

{QUICK_PROVIDER}

config = Config(
    executors=[
        MPIExecutor(
            label="mpi",
            address="127.0.0.1",
            max_workers_per_block=1,
            mpi_launcher={mpi_launcher!r},
{_quick_block("SimpleLauncher()", worker_init)}        )
    ],
    run_dir={str(run_dir)!r},
    strategy_period=1,
    initialize_logging=False,
)
"""
    )
    return path


def processes_with_env(entry: str) -> list[str]:
    """Live (not zombie) processes with *entry* (``NAME=value``) in their environment, as
    ``pid command`` lines."""
    wanted = entry.encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if wanted not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if state != "Z":
            found.append(f"{proc.name} {command.strip()}")
    return found
