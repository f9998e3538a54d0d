"""Give a freshly restored clone its own identity, over SSH still checked against the golden keys.

Every clone wakes up as the golden machine: same machine-id, SSH host keys, hostname, MAC and a
clock stopped at save time. One script (run with sudo, sent on standard input) fixes all of it.
The new host keys are generated here, on the machine, so their public halves are known without
trusting anything the guest says; RSA under emulation would also take seconds.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from hardening.lab.errors import LabError
from hardening.lab.proc import run

KEY_TYPES = ("ed25519", "ecdsa", "rsa")


@dataclass
class Identity:
    """What a clone became: recorded in host.json and in the lab inventory."""

    machine_id: str
    host_keys: list[str]
    serial: str | None


def mac_for(labdir: Path, name: str) -> str:
    """A stable locally administered QEMU-range MAC per lab and host name."""
    digest = hashlib.sha256(f"{labdir}/{name}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def host_keys() -> dict[str, tuple[str, str]]:
    """Fresh host keys: type -> (private key text, "type base64" public key)."""
    keys: dict[str, tuple[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="lab-keys-") as tmp:
        for kind in KEY_TYPES:
            path = Path(tmp) / f"ssh_host_{kind}_key"
            run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "", "-f", path])
            public = " ".join(path.with_suffix(".pub").read_text().split()[:2])
            keys[kind] = (path.read_text(), public)
    return keys


def _script(name: str, mac: str, machine_id: str, keys: dict[str, tuple[str, str]]) -> str:
    lines = [
        "set -eu",
        f"date -u -s @{time.time():.3f} >/dev/null",
        f"echo {machine_id} > /etc/machine-id",
        f"echo {name} > /etc/hostname",
        f"hostname {name}",
        f"printf '127.0.0.1 localhost\\n127.0.1.1 {name}\\n::1 localhost ip6-localhost ip6-loopback\\n'"
        " > /etc/hosts",
        "rm -f /etc/ssh/ssh_host_*",
    ]
    for kind, (private, public) in keys.items():
        path = f"/etc/ssh/ssh_host_{kind}_key"
        lines += [f"cat > {path} <<'LAB_KEY_END'", private.rstrip("\n"), "LAB_KEY_END",
                  f"echo '{public}' > {path}.pub", f"chmod 600 {path}", f"chmod 644 {path}.pub"]
    lines += [
        "systemctl restart ssh",
        # journald read the golden machine-id at boot and keeps writing under it, where journalctl
        # does not look: restarted, it writes under the clone's own. Stopping, systemd 252's
        # journald switches the kernel's audit off (auditctl -s: enabled 0); auditd, restarted,
        # switches it on again, as at boot.
        "systemctl restart systemd-journald",
        "if systemctl -q is-active auditd; then systemctl restart auditd; fi",
        "cat /sys/class/dmi/id/product_serial 2>/dev/null || true",
        # Last, detached: the new MAC reaches QEMU's user network with the ARP of the ping.
        f"nohup sh -c 'sleep 0.3; ip link set dev eth0 address {mac}; ip neigh flush dev eth0; "
        "ping -c1 -W2 10.0.2.2' </dev/null >/dev/null 2>&1 &",
    ]
    return "\n".join(lines) + "\n"


def give_identity(ssh: list[str], name: str, mac: str) -> Identity:
    """Run the identity script through `ssh` (a command line trusted with the golden keys)."""
    machine_id = uuid.uuid4().hex
    keys = host_keys()
    script = _script(name, mac, machine_id, keys)
    try:
        proc = subprocess.run([*ssh, "sudo sh -s"], input=script, capture_output=True, text=True,
                              timeout=120, check=False)
    except subprocess.TimeoutExpired:
        raise LabError(f"{name}: giving the clone its identity timed out") from None
    if proc.returncode != 0:
        raise LabError(f"{name}: identity script failed: {proc.stderr.strip()[-300:]}")
    serial = proc.stdout.strip().splitlines()[-1].strip() if proc.stdout.strip() else ""
    return Identity(machine_id, [public for _, public in keys.values()], serial or None)
