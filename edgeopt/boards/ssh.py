"""A board reached over SSH (OpenSSH's client): `ssh://user@host[:port]`.

The bundle is streamed over the connection as a tar into a fresh remote temporary directory,
its runner runs there, its JSON report comes back on stdout, and the directory is removed
whatever happened. Host keys are checked: against known_hosts, or against a fingerprint
given on the command line (`--host-key-fingerprint SHA256:...`), never accepted blindly.
Every word of every remote command is shell-quoted; user and host are checked against a
strict pattern. `?via=qemu-aarch64` runs aarch64 runners through qemu-user on the remote
(a board emulated behind SSH, as the tests use).
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from edgeopt.boards._remote import SHORT_TIMEOUT_S, VIA, RemoteBoard
from edgeopt.errors import BoardError, UsageError

CONNECT_TIMEOUT_S = 10
RUN_TIMEOUT_S = 600
SPEC = re.compile(r"^ssh://(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}))?/?"
                  r"(?:\?via=(?P<via>[a-z0-9-]+))?$")


@dataclass(frozen=True)
class Address:
    user: str
    host: str
    port: int
    via: str | None

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}"


def parse(spec: str) -> Address:
    found = SPEC.match(spec)
    port = int(found["port"] or 22) if found else 0
    if not found or not 0 < port < 65536 or (found["via"] is not None and found["via"] not in VIA):
        raise UsageError(f"not an SSH board: {spec!r}",
                         hint="Give ssh://user@host or ssh://user@host:port (user and host: letters, digits, '.', "
                              "'_', '-'; optionally ?via=qemu-aarch64).")
    return Address(found["user"], found["host"].strip("[]"), port, found["via"])


class SshBoard(RemoteBoard):
    def __init__(self, spec: str, identity: str | None = None, fingerprint: str | None = None,
                 timeout: float = RUN_TIMEOUT_S):
        self.address, self.identity, self.fingerprint, self.timeout = parse(spec), identity, fingerprint, timeout
        self.name, self.via = spec, self.address.via
        self.scratch = tempfile.TemporaryDirectory(prefix="edgeopt-ssh-")
        if shutil.which("ssh") is None:
            raise BoardError("SSH boards need OpenSSH's client (ssh)", hint="Run scripts/setup_arm.sh.")

    def execute(self, words: list[str], timeout: float, data: bytes | None = None) -> subprocess.CompletedProcess:
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "-o", "StrictHostKeyChecking=yes",
                   "-p", str(self.address.port)]
        if self.known_hosts is not None:
            options += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        if self.identity:
            options += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        command = ["ssh", *options, self.address.destination, "--", " ".join(shlex.quote(w) for w in words)]
        try:
            return subprocess.run(command, input=data, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BoardError(f"board {self.name}: no answer within {timeout:.0f} s to: {' '.join(words[:3])}",
                             hint="Check the board is up and not overloaded; --timeout raises the limit.") from None

    def check(self, done: subprocess.CompletedProcess, what: str) -> str:
        if done.returncode == 255:  # ssh's own failure: connection, authentication, host key
            said = done.stderr.decode(errors="replace").strip().splitlines()
            reason = said[-1] if said else "ssh exited 255"
            hint = ("The host key differs from the one expected: check --host-key-fingerprint / known_hosts."
                    if "Host key verification failed" in reason or "REMOTE HOST IDENTIFICATION" in " ".join(said)
                    else "Check the address, that sshd runs there, and that your key is authorized.")
            raise BoardError(f"board {self.name}: cannot {what}: {reason}", hint=hint)
        return done.stdout.decode(errors="replace")

    @cached_property
    def known_hosts(self) -> Path | None:
        """With a fingerprint: a known_hosts file holding only the host's key that matches it
        (None: the user's known_hosts decide)."""
        if self.fingerprint is None:
            return None
        target = f"[{self.address.host}]:{self.address.port}" if self.address.port != 22 else self.address.host
        scan = subprocess.run(["ssh-keyscan", "-T", str(CONNECT_TIMEOUT_S), "-p", str(self.address.port),
                               self.address.host], capture_output=True, text=True)
        for line in scan.stdout.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            printed = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=line, capture_output=True, text=True)
            if self.fingerprint in printed.stdout.split():
                path = Path(self.scratch.name) / "known_hosts"
                path.write_text(f"{target} {line.split(None, 1)[1]}\n")
                return path
        raise BoardError(f"board {self.name}: no host key matches {self.fingerprint}"
                         + ("" if scan.stdout.strip() else " (the host did not answer)"),
                         hint="Compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the board.")

    def copy(self, bundle: Path, directory: str) -> None:
        self.check(self.execute(["tar", "-x", "-f", "-", "-C", directory], SHORT_TIMEOUT_S * 10, _tar(bundle)),
                   "copy the bundle")


def _tar(bundle: Path) -> bytes:
    """The bundle directory as an uncompressed tar, modes kept (the runner stays executable)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(bundle.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(bundle)), recursive=False)
    return buffer.getvalue()
