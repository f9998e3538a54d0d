"""SSH plumbing: the lab key, known_hosts files, the generated ssh_config and waiting for sshd.

Host keys are always checked strictly. Two known_hosts files exist:

* ``known_hosts``: one ``[127.0.0.1]:PORT`` entry per running host, with the keys that host was
  given after its restore. pyinfra and testinfra use this one.
* ``golden_known_hosts``: the keys baked into the image, under the alias ``lab-golden``. A freshly
  restored clone still has them, so the first connection (which gives the clone its own keys)
  is checked against this file with ``HostKeyAlias=lab-golden``.
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hardening.files import write_atomic
from hardening.lab.errors import LabError
from hardening.lab.image import USER
from hardening.lab.proc import run

GOLDEN_ALIAS = "lab-golden"
LOCALHOST = "127.0.0.1"


@contextmanager
def locked(labdir: Path, name: str = "lock") -> Iterator[None]:
    """Serialise bookkeeping (ports, known_hosts, ssh_config) between lab processes; with
    ``name="build.lock"``, builds of the image and golden state."""
    labdir.mkdir(parents=True, exist_ok=True)
    with (labdir / name).open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_key(labdir: Path) -> Path:
    """The lab's client key (ed25519, one per lab directory); returns the private key path."""
    key = labdir / "id_ed25519"
    if not key.is_file():
        labdir.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hardening-lab", "-f", key])
    return key


def known_entry(port: int, address: str = LOCALHOST) -> str:
    """How OpenSSH and paramiko name a host in known_hosts (``[addr]:port`` unless port 22)."""
    return address if port == 22 else f"[{address}]:{port}"


def set_known_keys(labdir: Path, port: int, keys: list[str], address: str = LOCALHOST) -> None:
    """Record `keys` ("type base64") as the only keys of the host at `address`:`port`."""
    path = labdir / "known_hosts"
    entry = known_entry(port, address)
    lines = [ln for ln in _read_lines(path) if ln.split(" ", 1)[0] != entry]
    lines += [f"{entry} {key}" for key in keys]
    write_atomic(path, "".join(f"{ln}\n" for ln in lines))


def forget_port(labdir: Path, port: int, address: str = LOCALHOST) -> None:
    """Drop the known_hosts entries of a host that is gone (its port may be reused)."""
    path = labdir / "known_hosts"
    entry = known_entry(port, address)
    write_atomic(path, "".join(f"{ln}\n" for ln in _read_lines(path) if ln.split(" ", 1)[0] != entry))


def write_golden_known_hosts(labdir: Path, keys: list[str]) -> Path:
    path = labdir / "golden_known_hosts"
    write_atomic(path, "".join(f"{GOLDEN_ALIAS} {key}\n" for key in keys))
    return path


def _read_lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []


def host_block(labdir: Path, name: str, port: int, address: str = LOCALHOST) -> str:
    """One ``Host`` block of the generated ssh_config."""
    return (f"Host {name}\n"
            f"  HostName {address}\n"
            f"  Port {port}\n"
            f"  User {USER}\n"
            f"  IdentityFile {labdir / 'id_ed25519'}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {labdir / 'known_hosts'}\n"
            "  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n"
            "  ControlMaster auto\n"
            f"  ControlPath {labdir / 'cm-%C'}\n"
            "  ControlPersist 60\n"
            "  BatchMode yes\n"
            "  ConnectTimeout 10\n"
            "  LogLevel ERROR\n")


def golden_ssh(labdir: Path, port: int) -> list[str]:
    """An ssh command line to a clone that still has the image's host keys (strict checking)."""
    return ["ssh", "-F", "/dev/null", "-p", str(port), "-i", str(labdir / "id_ed25519"),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"HostKeyAlias={GOLDEN_ALIAS}",
            "-o", f"UserKnownHostsFile={labdir / 'golden_known_hosts'}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ControlPath=none",
            "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", f"{USER}@{LOCALHOST}"]


def wait_ssh(ssh: list[str], timeout: float, what: str) -> float:
    """Retry ``ssh ... true`` until it works; return the seconds it took."""
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < timeout:
        try:
            proc = subprocess.run([*ssh, "true"], capture_output=True, text=True, timeout=30,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            last = "ssh timed out"
            continue
        if proc.returncode == 0:
            return time.monotonic() - started
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        if "Host key verification failed" in proc.stderr or "IDENTIFICATION HAS CHANGED" in proc.stderr:
            raise LabError(f"{what}: host key refused: {last}")
        time.sleep(0.5)
    raise LabError(f"{what}: SSH not ready after {timeout:.0f} s ({last})")


def close_master(labdir: Path, name: str) -> None:
    """Ask the ControlMaster of a host (if any) to exit."""
    config = labdir / "ssh_config"
    if config.is_file():
        subprocess.run(["ssh", "-F", str(config), "-O", "exit", name], capture_output=True,
                       timeout=10, check=False, stdin=subprocess.DEVNULL)
