"""terminal (6-12, 6-13, 6-14): SSH only for the profile's groups, enforced.

The deploy writes ``AllowGroups`` in the measure's sshd drop-in (validated, sshd reloaded only when
it changed); an AllowGroups of another file, or of a Match block that widens it for some
connections, is disabled in place (deploys/_sshd.py). It refuses a profile whose
``ssh_allow_groups`` would shut out the account it connects as. The asset register and the
expected networks are observed by the checks only.
"""

from __future__ import annotations

from pyinfra.api import deploy

from hardening.measures import terminal as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from . import _sshd as sshd
from ._support import refuse, unsupported_reason


@deploy("terminal")
def apply(profile: Resolved, obs: Observations) -> None:
    """AllowGroups from the profile, never excluding the deploy account."""
    settings: measure.Settings = profile.measure("terminal")
    reason = unsupported_reason() or measure.lockout_reason(settings, *sshd.connecting_user())
    if reason:
        refuse(reason)
        return
    dropin = sshd.sshd_dropin("terminal", measure.sshd_dropin(settings), obs,
                              lambda key, groups: measure.allow_groups_problem(settings, groups) is None)
    sshd.reload_sshd("terminal", dropin)
