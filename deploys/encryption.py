"""encryption (6-10): SSH transport ciphers and MACs, enforced.

The deploy writes only the sshd ``Ciphers``/``MACs`` drop-in (validated, sshd reloaded only when it
changed), refusing algorithm lists the deploy's own SSH client could not speak. It never
(re-)encrypts a disk: root and swap encryption are set up at installation and verified by the
checks; LUKS on a data disk holding personal information is later work.
"""

from __future__ import annotations

from pyinfra.api import deploy

from hardening.measures import encryption as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from . import _sshd as sshd
from ._support import refuse, unsupported_reason


@deploy("encryption")
def apply(profile: Resolved, obs: Observations) -> None:
    """sshd Ciphers and MACs from the profile."""
    settings: measure.Settings = profile.measure("encryption")
    reason = unsupported_reason() or measure.lockout_reason(settings)
    if reason:
        refuse(reason)
        return
    dropin = sshd.sshd_dropin("encryption", measure.sshd_dropin(settings), obs)
    sshd.reload_sshd("encryption", dropin)
