"""Real servers for the remote tests, started and stopped by the tests (by PID).

:func:`sshd`: OpenSSH's sshd on a free localhost port, with a throwaway host key
and user key, letting in the current user by that key only; ``ssh`` is then run
as ``$SCALEMS_SSH_COMMAND`` with that key.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from tests.conftest import require

SSHD = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:/sbin:" + os.environ.get("PATH", ""))


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Sshd(NamedTuple):
    """A running sshd: its port, its process, and the ssh command that reaches it."""

    port: int
    process: subprocess.Popen[bytes]
    ssh_command: str
    user: str

    def url(self, path: str | os.PathLike[str]) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{os.fspath(path)}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)


def _keygen(path: Path) -> None:
    for old in (path, path.with_suffix(".pub")):
        old.unlink(missing_ok=True)  # a directory used before (a benchmark's work directory)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def sshd(where: Path) -> Iterator[Sshd]:
    """Run sshd for the current user on a free port; stop it (by PID) at the end."""
    if SSHD is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        require("OpenSSH's sshd, ssh and ssh-keygen are needed (Debian: openssh-server)")
    assert SSHD is not None
    where.mkdir(parents=True, exist_ok=True)
    _keygen(where / "host_key")
    _keygen(where / "user_key")
    (where / "authorized_keys").write_text((where / "user_key.pub").read_text())
    os.chmod(where / "authorized_keys", 0o600)
    if os.getuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation
    port = free_port()
    config = where / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {where / 'host_key'}\n"
        f"AuthorizedKeysFile {where / 'authorized_keys'}\nPidFile {where / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nLogLevel ERROR\n"
        "AcceptEnv SCALEMS_*\nSubsystem sftp internal-sftp\n"
        "MaxSessions 64\nMaxStartups 64\n"  # rclone's 16 transfers: sessions of one connection
    )
    with open(where / "sshd.log", "wb") as log:
        process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log
        )
    ssh = (
        f"ssh -i {where / 'user_key'} -o IdentitiesOnly=yes -o BatchMode=yes "
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    )
    server = Sshd(port, process, ssh, getpass.getuser())
    try:
        _wait_listening(port, process, where / "sshd.log")
        yield server
    finally:
        server.stop()


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"{log.name} says: {log.read_text()[-500:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("sshd did not listen within 30 s")


class S3Server(NamedTuple):
    """A running moto S3 server: its endpoint and its process."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)


@contextlib.contextmanager
def s3_server(where: Path) -> Iterator[S3Server]:
    """Run ``moto_server`` on a free port (credentials: moto's dummies, set in the
    environment by the caller); stop it by PID at the end."""
    import sys

    program = Path(sys.executable).parent / "moto_server"
    if not program.exists():
        require("moto is needed for the S3 tests (pip install -e '.[test]')")
    port = free_port()
    where.mkdir(parents=True, exist_ok=True)
    with open(where / "moto.log", "wb") as log:
        process = subprocess.Popen(
            [str(program), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
        )
    server = S3Server(f"http://127.0.0.1:{port}", process)
    try:
        _wait_listening(port, process, where / "moto.log")
        yield server
    finally:
        server.stop()


S3_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_CONFIG_FILE": "/nonexistent",
}
"""The environment a client of the moto server needs (dummy credentials)."""
