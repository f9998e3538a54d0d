"""timeouts (6-15): idle sessions logged off, enforced.

Writes the readonly TMOUT script, the sshd ClientAlive drop-in (validated, sshd reloaded only
when it changed), the logind drop-in and, where dconf is installed, the locked screen-lock
settings (``dconf update`` only when they changed). systemd-logind is NOT restarted: a restart
can end sessions, so the logind values take effect at the next boot or when an operator restarts
systemd-logind (the check reads the configuration and records the value logind runs with now).
"""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Which
from pyinfra.operations import files, server

from hardening.measures import timeouts as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from . import _sshd as sshd
from ._support import refuse, unsupported_reason


@deploy("timeouts")
def apply(profile: Resolved, obs: Observations) -> None:
    """TMOUT, sshd ClientAlive, logind idle action, desktop screen lock."""
    settings: measure.Settings = profile.measure("timeouts")
    reason = unsupported_reason()
    if reason:
        refuse(reason)
        return
    files.put(name="Readonly TMOUT for login shells", src=StringIO(measure.profile_script(settings)),
              dest=measure.PROFILE_SCRIPT, user="root", group="root", mode="644")
    dropin = sshd.sshd_dropin("timeouts", measure.sshd_dropin(settings))
    sshd.reload_sshd("timeouts", dropin)
    files.put(name="logind idle action (applies at next boot, logind is not restarted)",
              src=StringIO(measure.logind_dropin(settings)), dest=measure.LOGIND_DROPIN,
              user="root", group="root", mode="644")
    if host.get_fact(Which, command="dconf"):
        _desktop(settings)


def _desktop(settings: measure.Settings) -> None:
    """The screen locks after the profile's delay; users cannot change it (dconf locks)."""
    changed = [
        files.put(name="dconf profile: user db, then system db local",
                  src=StringIO(measure.dconf_profile()), dest=measure.DCONF_PROFILE, mode="644"),
        files.put(name="dconf screen lock settings", src=StringIO(measure.dconf_keyfile(settings)),
                  dest=measure.DCONF_KEYFILE, mode="644"),
        files.put(name="dconf locks on the screen lock settings", src=StringIO(measure.dconf_locks()),
                  dest=measure.DCONF_LOCKS, mode="644"),
    ]
    server.shell(name="Compile the dconf databases", commands=["dconf update"],
                 _if=lambda: any(op.did_change() for op in changed))
