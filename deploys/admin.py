"""admin (6-6): least administrator privilege, enforced.

Order matters: the sudoers drop-in (validated with ``visudo -cf``, root:root 0440) goes live
first, then root login over SSH (validated sshd drop-in, sshd reloaded only when it changed),
then root's password is locked. Before anything, the deploy refuses a profile that would lock
it out (it connects as root while the profile says ``permit_root_login: no``). It never edits
other sudoers files; the check reports rules elsewhere that break the measure.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import apt, server

from hardening.measures import admin as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from . import _sshd as sshd
from ._support import refuse, unsupported_reason


@deploy("admin")
def apply(profile: Resolved, obs: Observations) -> None:
    """Sudo for the admin group only, sudo logging, root login off, root locked."""
    settings: measure.Settings = profile.measure("admin")
    reason = unsupported_reason() or measure.lockout_reason(settings, sshd.connecting_user()[0])
    if reason:
        refuse(reason)
        return
    apt.packages(name="sudo is installed", packages=["sudo"], present=True)
    sshd.validated_file(name=f"sudoers {measure.SUDOERS_PATH} (validated with visudo -cf)",
                        text=measure.sudoers(settings), dest=measure.SUDOERS_PATH,
                        kind="sudoers", mode="440")
    dropin = sshd.sshd_dropin("admin", measure.sshd_dropin(settings))
    sshd.reload_sshd("admin", dropin)
    if settings.root_locked and not _root_locked():
        server.shell(name="Lock root's password", commands=["passwd -l root"])


def _root_locked() -> bool:
    """``passwd -S root`` says L (password field starts with ! or *)."""
    status = (host.get_fact(Command, "passwd -S root") or "").split()
    return len(status) > 1 and status[1] == "L"
