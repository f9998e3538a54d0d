"""Which systems the deploys support, and the one way a deploy refuses the others.

Debian 12 (bookworm) is the reference target, the only one tested. The deploys rely on its
package names, paths, units and tools (pam-auth-update, nftables.service, usbguard, sshd_config.d),
so on anything else a measure refuses with a failing operation that says why, before it changes
anything; pyinfra then stops that host's run.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import server

SUPPORTED = {("debian", 12)}


def unsupported_reason() -> str | None:
    """Why this host's distribution is not supported, or None on Debian 12."""
    distro = host.get_fact(LinuxDistribution) or {}
    ident = str((distro.get("release_meta") or {}).get("ID", distro.get("name", ""))).lower()
    if (ident, distro.get("major")) in SUPPORTED:
        return None
    return (f"unsupported distribution {distro.get('name')} {distro.get('major')}: "
            "the hardening deploys target Debian 12")


def refuse(reason: str) -> OperationMeta:
    """Fail this host's run here with ``reason`` (nothing after it runs on the host)."""
    return server.shell(name=f"Refused: {reason}",
                        commands=[f"echo {shlex.quote('refused: ' + reason)} >&2; exit 1"])


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
