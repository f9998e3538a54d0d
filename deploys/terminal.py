"""terminal (6-12, 6-13, 6-14): SSH only for the profile's groups, enforced.

The deploy writes ``AllowGroups`` in the measure's sshd drop-in (validated, sshd reloaded only when
it changed); an AllowGroups of another file, or of a Match block that widens it for some
connections, is disabled in place (deploys/_sshd.py). Before any measure changes the host
(:func:`preflight`, asked by deploys/main.py first) it refuses, and nothing runs on that host:

* a profile whose ``ssh_allow_groups`` would shut out the account it connects as (counting the
  ``ssh-users`` membership it adds itself);
* groups that contain none of the accounts that log in over SSH today, other than the deploy
  account (read from the host's observations: hardening.measures.terminal.logins_today), unless
  the profile says ``ssh_allow_groups_confirmed: true``; a reading that cannot be parsed is a
  refusal too.

When the profile allows ``ssh-users`` (the default), the group is created (a system group) when
missing and the deploy account is added to it: it needs SSH for the deploy to work at all and
has sudo already, so the membership grants nothing new. Accounts that log in today and lose SSH
while others keep it are named in a warning. The asset register and the expected networks are
observed by the checks only.
"""

from __future__ import annotations

import shlex

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import server

from hardening.measures import terminal as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from . import _sshd as sshd
from ._support import refuse, unsupported_reason


def _access_refusal(settings: measure.Settings, obs: Observations, user: str, warn: bool = True) -> str | None:
    """Why AllowGroups must not be written (who logs in today would all lose SSH, or cannot be
    read), or None; warns about the accounts that lose SSH while others keep it."""
    try:
        logins = measure.logins_today(obs.run)
    except ValueError as exc:  # ReadingError, or sshd -T unreadable
        if not settings.ssh_allow_groups_confirmed:
            return measure.unreadable_refusal(host.name, exc)
        if warn:
            host.log(f"terminal: who logs in over SSH today could not be read ({exc}); AllowGroups is written "
                     "as the profile confirms it (ssh_allow_groups_confirmed)", logger.warning)
        return None
    reason = measure.access_refusal(settings, host.name, user, logins)
    lost = measure.shut_out(settings, logins, user)
    if reason is None and lost and warn:
        host.log(f"terminal: AllowGroups {' '.join(settings.ssh_allow_groups)} shuts out accounts that "
                 f"log in over SSH today: {'; '.join(map(str, lost))}", logger.warning)
    return reason


def preflight(profile: Resolved, obs: Observations) -> str | None:
    """Why this host must not be deployed at all (deploys/main.py asks before any measure runs,
    so that no other measure has changed the host when this one refuses), or None."""
    settings: measure.Settings = profile.measure("terminal")
    user, groups = sshd.connecting_user()
    return (unsupported_reason() or measure.lockout_reason(settings, user, groups)
            or _access_refusal(settings, obs, user, warn=False))


@deploy("terminal")
def apply(profile: Resolved, obs: Observations) -> None:
    """AllowGroups from the profile, never excluding the deploy account nor, unconfirmed, every
    account that logs in today."""
    settings: measure.Settings = profile.measure("terminal")
    user, groups = sshd.connecting_user()
    reason = (unsupported_reason() or measure.lockout_reason(settings, user, groups)
              or _access_refusal(settings, obs, user))
    if reason:
        refuse(reason)
        return
    group = measure.membership_to_add(settings, groups)
    if group:
        g, u = shlex.quote(group), shlex.quote(user)
        create = "" if measure.group_exists(obs.run(measure.GETENT_GROUP).stdout, group) else \
            f"create the system group {group} (SSH access only) and "
        server.shell(name=f"terminal: {create}add the deploy account {user} to {group}, so that it keeps SSH "
                          f"(it has sudo already: this grants nothing new)",
                     commands=[f"getent group {g} >/dev/null || groupadd --system {g}", f"gpasswd -a {u} {g}"])
    dropin = sshd.sshd_dropin("terminal", measure.sshd_dropin(settings), obs,
                              lambda key, groups: measure.allow_groups_problem(settings, groups) is None)
    sshd.reload_sshd("terminal", dropin)
