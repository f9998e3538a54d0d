"""Host ports on 127.0.0.1 for SSH and other forwards: free, and not promised to another host."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from hardening.lab.errors import LabError

FIRST_PORT = 40022
LAST_PORT = 40999


def _taken(labdir: Path) -> set[int]:
    """Ports recorded by every host of the lab (running or not yet cleaned up)."""
    taken: set[int] = set()
    for state in (labdir / "hosts").glob("*/host.json"):
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        taken.add(int(data.get("ssh_port", 0)))
        taken.update(int(p) for p in data.get("forwards", {}).values())
    return taken


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(labdir: Path, skip: set[int] | None = None) -> int:
    """A port in 40022..40999 that nothing listens on and no lab host uses.

    Call it with the lab lock held until QEMU has bound the port, or two starts may race.
    """
    taken = _taken(labdir) | (skip or set())
    for port in range(FIRST_PORT, LAST_PORT + 1):
        if port not in taken and _bindable(port):
            return port
    raise LabError(f"no free port on 127.0.0.1 in {FIRST_PORT}-{LAST_PORT}")
