"""Which systems the deploys support, and the one way a deploy refuses the others.

Debian 12 (bookworm) is the reference target, the only one tested. The deploys rely on its
package names, paths, units and tools (pam-auth-update, nftables.service, usbguard, sshd_config.d),
so on anything else a measure refuses with a failing operation that says why, before it changes
anything; pyinfra then stops that host's run.
"""

from __future__ import annotations

import shlex
import socket

from pyinfra import host
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import server

SUPPORTED = {("debian", 12)}
# A host that restarts or loses power mid-run must end its run within minutes: pyinfra's SSH
# connection has no keepalive, so it would wait on the dead connection forever (seen on a lab VM
# power-cycled while a change was live). Every KEEPALIVE_S without traffic an SSH keepalive is
# sent: a restarted host answers it with a TCP reset; a host gone silent leaves it unacknowledged,
# and the kernel closes the connection after DEAD_AFTER_S (TCP_USER_TIMEOUT).
KEEPALIVE_S = 15
DEAD_AFTER_S = 90


def unsupported_reason() -> str | None:
    """Why this host's distribution is not supported, or None on Debian 12."""
    distro = host.get_fact(LinuxDistribution) or {}
    ident = str((distro.get("release_meta") or {}).get("ID", distro.get("name", ""))).lower()
    if (ident, distro.get("major")) in SUPPORTED:
        return None
    return (f"unsupported distribution {distro.get('name')} {distro.get('major')}: "
            "the hardening deploys target Debian 12")


def bound_connection() -> bool:
    """Keepalives and a dead-peer timeout on this host's SSH connection (see KEEPALIVE_S). False
    for a connector without a paramiko transport (local, docker): nothing to bound."""
    client = getattr(host.connector, "client", None)
    transport = client.get_transport() if client is not None else None
    if transport is None:
        return False
    transport.set_keepalive(KEEPALIVE_S)
    sock = getattr(transport, "sock", None)
    if isinstance(sock, socket.socket) and hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, DEAD_AFTER_S * 1000)
    return True


def refuse(reason: str) -> OperationMeta:
    """Fail this host's run here with ``reason`` (nothing after it runs on the host)."""
    return server.shell(name=f"Refused: {reason}",
                        commands=[f"echo {shlex.quote('refused: ' + reason)} >&2; exit 1"])


# Per host: conflicts found by measures that need not stop the others (see refuse_at_end).
_DEFERRED: dict[str, list[str]] = {}


def refuse_at_end(reason: str) -> None:
    """Fail this host's run with ``reason`` once every measure has run.

    For what a person must settle (an account, a file the tool does not own) and that does not
    make the later measures unsafe: the firewall, USB and sshd measures still go live, and the
    host is still reported failed, never "no change". A refusal that protects what follows (an
    unsupported system, a lockout) uses :func:`refuse`, which stops the host at once.
    """
    _DEFERRED.setdefault(host.name, []).append(reason)


def refuse_deferred() -> OperationMeta | None:
    """The one refusing operation for what :func:`refuse_at_end` collected on this host."""
    reasons = _DEFERRED.pop(host.name, [])
    if not reasons:
        return None
    text = "refused: " + " // ".join(reasons)
    # Last operation of the host: ignoring its error keeps pyinfra's per-host results (what did
    # change) while it is still reported as a failed operation and fails the deploy.
    return server.shell(name=f"Refused: {' // '.join(reasons)}",
                        commands=[f"echo {shlex.quote(text)} >&2; exit 1"], _ignore_errors=True)


def supported(measure: str) -> bool:
    """True on a supported system; otherwise adds the refusing operation and returns False.

    >>> if not supported("usb"):
    ...     return
    """
    reason = unsupported_reason()
    if reason is None:
        return True
    refuse(f"{measure}: {reason}")
    return False
