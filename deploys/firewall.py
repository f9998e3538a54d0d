"""firewall (6-7): nftables default-deny inbound with the profile's allow-list, forwarding off.

The ruleset (``hardening.measures.firewall.ruleset``) goes live lockout-safe through
deploys/_rollback.py: validated with ``nft -c -f`` on the host, applied with ``nft -f`` and an
automatic rollback armed for ``confirm_timeout`` seconds; it becomes ``/etc/nftables.conf``
(loaded at boot by the enabled ``nftables.service``) only when the deploy runner reconnects and
runs ``hardening-confirm``. Run this measure LAST in deploys/main.py: the timeout has to cover
the rest of the pyinfra run plus the reconnection.

The ruleset is (re)applied when ``/etc/nftables.conf`` differs from the desired ruleset (first
run, a profile change, a rollback, a reboot before the confirmation) or when the live ruleset
(``nft -j list ruleset``) has drifted from it.

Forwarding off (terminals, or ``forwarding: false``): ``net.ipv4.ip_forward = 0`` and the IPv6
equivalent in ``/etc/sysctl.d/90-hardening-firewall.conf``, applied by restarting
``systemd-sysctl`` on the host (never ``server.sysctl``, which would run ``sysctl -w`` wherever
pyinfra runs its commands, e.g. the machine's own kernel through a chroot).

Example::

    from deploys import firewall
    firewall.apply(profile)      # inside a pyinfra deploy, profile: hardening.profiles.Resolved
"""

from __future__ import annotations

import hashlib
import json
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import Sha256File
from pyinfra.facts.server import Command, Which
from pyinfra.operations import apt, files, server, systemd

from hardening.measures import firewall as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from ._rollback import Change, guarded
from ._support import supported


def change(timeout: int) -> Change:
    """The firewall as a lockout-safe change: the payload file is ``$DIR/desired``."""
    return Change(
        name="firewall",
        timeout=timeout,
        validate='nft -c -f "$DIR/desired"',
        save="nft list ruleset > ruleset.nft",
        apply='nft -f "$DIR/desired"',
        # One transaction: if the saved ruleset does not load, nothing changed, and removing the
        # tool's own table still leaves the host reachable.
        restore="{ echo 'flush ruleset'; cat ruleset.nft; } | nft -f - "
                f"|| nft delete table inet {measure.TABLE}",
        commit=f'install -m 0644 -o root -g root "$DIR/desired" {measure.NFTABLES_CONF}',
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _live_drift(settings: measure.Settings, role: str) -> list[str]:
    output = host.get_fact(Command, command="nft -j list ruleset 2>/dev/null || true") or ""
    try:
        document = json.loads(output) if output.strip() else {}
    except ValueError:
        document = {}
    return measure.live_problems(document, settings, role)


def _forwarding(settings: measure.Settings, role: str) -> None:
    content = measure.sysctl_conf(settings, role)
    if not content:
        files.file(name="Forwarding allowed: remove the forwarding sysctl file",
                   path=measure.SYSCTL_CONF, present=False)
        return
    conf = files.put(
        name="Forwarding off (net.ipv4.ip_forward = 0) in /etc/sysctl.d",
        src=StringIO(content), dest=measure.SYSCTL_CONF, user="root", group="root", mode="644",
    )
    server.shell(name="Apply sysctl.d on the host (systemd-sysctl)",
                 commands=["systemctl restart systemd-sysctl.service"], _if=conf.did_change)


@deploy("firewall")
def apply(profile: Resolved, obs: Observations) -> None:
    settings: measure.Settings = profile.measure("firewall")
    if not settings.enabled or not supported("firewall"):
        return
    if not host.get_fact(Which, command="nft"):
        apt.update(name="Update the package lists (nftables missing)", cache_time=3600)
        apt.packages(name="Install nftables", packages=["nftables"], present=True)
    _forwarding(settings, profile.role)
    desired = measure.ruleset(settings, profile.role)
    committed = host.get_fact(Sha256File, path=measure.NFTABLES_CONF)
    needed = committed != _sha256(desired) or bool(_live_drift(settings, profile.role))
    guarded(change(settings.confirm_timeout), payload={"desired": desired}, needed=needed)
    # Enabled, never started here: starting it would load the previous /etc/nftables.conf over
    # the ruleset waiting for confirmation.
    systemd.service(name="Enable nftables.service (loads /etc/nftables.conf at boot)",
                    service="nftables.service", running=None, enabled=True)
