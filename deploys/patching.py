"""patching (6-8): automatic security updates, optional immediate update, optional ClamAV.

The deploy turns on Debian's own mechanism (unattended-upgrades run by apt-daily-upgrade.timer)
and refreshes the package lists at most once a day. It installs pending security updates now
only when the profile sets ``apply_security_updates: true`` (a change-management decision), and
it never reboots: a pending reboot is reported by the check.
"""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd

from hardening.measures import patching as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from ._support import supported

LISTS_CACHE_SECONDS = 86400


@deploy("patching")
def apply(profile: Resolved, obs: Observations) -> None:
    """Enforce the patching measure from the host's resolved profile."""
    settings: measure.Settings = profile.measure("patching")
    if not supported("patching"):
        return
    apt.update(name="Refresh package lists (at most once a day)", cache_time=LISTS_CACHE_SECONDS)
    _unattended(settings)
    server.shell(name="Install pending security updates now (profile: apply_security_updates)",
                 commands=[measure.apply_command()],
                 _if=lambda: settings.apply_security_updates and bool(_pending_security()))
    _clamav(settings)


def _unattended(settings: measure.Settings) -> None:
    def wanted() -> bool:
        return settings.unattended_upgrades

    apt.packages(name="Install unattended-upgrades", packages=["unattended-upgrades"],
                 _if=lambda: settings.unattended_upgrades or settings.apply_security_updates)
    files.put(name="Daily list updates and unattended upgrades (20auto-upgrades)",
              src=StringIO(measure.auto_upgrades_conf()), dest=measure.AUTO_UPGRADES,
              user="root", group="root", mode="644", _if=wanted)
    files.put(name="Security origin for unattended-upgrades", src=StringIO(measure.origins_conf()),
              dest=measure.ORIGINS_CONF, user="root", group="root", mode="644", _if=wanted)
    for timer in measure.TIMERS:
        server.shell(name=f"Unmask {timer}", commands=[f"systemctl unmask {timer}"],
                     _if=[wanted, _masked(timer)])
        systemd.service(name=f"Enable {timer}", service=timer, running=True, enabled=True, _if=wanted)


def _masked(unit: str) -> Callable[[], bool]:
    """An admin (or the lab image) may have masked the unit: enabling would fail."""
    def masked() -> bool:
        state = host.get_fact(Command, command=f"systemctl is-enabled {unit} || true") or ""
        return state.strip() == "masked"
    return masked


def _pending_security() -> list[str]:
    simulation = host.get_fact(Command, command=measure.pending_command()) or ""
    return measure.security_updates(simulation)


def _clamav(settings: measure.Settings) -> None:
    def wanted() -> bool:
        return settings.anti_malware == "clamav"

    apt.packages(name="Install ClamAV and freshclam", packages=list(measure.CLAMAV_PACKAGES), _if=wanted)
    systemd.service(name="freshclam keeps signatures fresh", service=measure.FRESHCLAM_SERVICE,
                    running=True, enabled=True, _if=wanted)
