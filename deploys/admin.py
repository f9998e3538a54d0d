"""admin (6-6): least administrator privilege, enforced from the observed state.

Order matters: the sudoers drop-in (validated with ``visudo -cf``, root:root 0440) and the
files set aside go live first, under the sudoers watchdog (deploys/_rollback.py: restored unless
the deploy account's sudo is confirmed over a new connection), then root login over SSH
(validated sshd drop-in, sshd reloaded only when it changed, under the sshd watchdog), then
root's password is locked. Before anything, the deploy refuses a profile that would lock it
out (it connects as root while the profile says ``permit_root_login: no``).

It decides from the host's observations (the same the checks judge): the sudoers policy as sudo
would read it WITH the deploy's file in place (a copy, converted by cvtsudoers). A file of
/etc/sudoers.d that would still break the measure (a rule, a Defaults entry) is set aside: renamed
to ``<name>.hardening-quarantine``, which sudo skips, kept for a person to read, and put back in
the same shell when sudoers no longer parses without it. A finding in /etc/sudoers itself, or one
no file can be named for, makes the deploy refuse at its end, naming it; it never edits the
content of other sudoers files. The same for root login: a drop-in already in place while sshd
still allows root is refused.
"""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import apt, server

from hardening.measures import admin as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from . import _sshd as sshd
from ._rollback import SUDOERS, watch
from ._support import refuse, refuse_at_end, unsupported_reason


@deploy("admin")
def apply(profile: Resolved, obs: Observations) -> None:
    """Sudo for the admin group only, sudo logging, root login off, root locked."""
    settings: measure.Settings = profile.measure("admin")
    reason = unsupported_reason() or measure.lockout_reason(settings, sshd.connecting_user()[0])
    if reason:
        refuse(reason)
        return
    apt.packages(name="sudo is installed", packages=["sudo"], present=True)
    region = watch(SUDOERS)  # the deploy account's sudo is confirmed over a new connection
    sshd.validated_file(name=f"sudoers {measure.SUDOERS_PATH} (validated with visudo -cf)",
                        text=measure.sudoers(settings), dest=measure.SUDOERS_PATH,
                        kind="sudoers", mode="440")
    conflicts = _conflicts(settings, obs)
    region.close()
    dropin = sshd.sshd_dropin("admin", measure.sshd_dropin(settings), obs)
    sshd.reload_sshd("admin", dropin)
    if settings.root_locked and measure.root_status(obs.run(measure.PASSWD_STATUS)) != "L":
        server.shell(name="Lock root's password", commands=["passwd -l root"])
    if conflicts:
        refuse_at_end("admin: " + " / ".join(conflicts))


def _conflicts(settings: measure.Settings, obs: Observations) -> list[str]:
    """Set aside the sudoers.d files that break the measure; what this deploy cannot repair, from
    the observations (empty: it converges)."""
    repair = _sudo_repair(settings, obs)
    if repair.quarantine:
        server.shell(name=f"Set aside sudoers files that break the measure: {', '.join(repair.quarantine)} "
                          f"(renamed *{measure.QUARANTINE_SUFFIX}, visudo -c, put back if it fails)",
                     commands=[measure.quarantine_command(repair.quarantine)])
    return list(repair.conflicts)


def _sudo_repair(settings: measure.Settings, obs: Observations) -> measure.SudoRepair:
    sources = measure.sudoers_sources(obs.run(measure.SUDOERS_SOURCES).stdout)
    if sources != ["files"]:
        return measure.SudoRepair(conflicts=(f"nsswitch.conf reads sudoers rules from {sources}: "
                                             "the tool judges only the files",))
    try:
        after, included = measure.read_after(obs.run(measure.policy_after_command(settings)),
                                             obs.run(measure.SUDO_POLICY))
        ctx = None
        if after is not None:
            accounts = measure.Accounts.parse(obs.run(measure.GETENT_PASSWD).stdout,
                                              obs.run(measure.GETENT_GROUP).stdout)
            ctx = measure.Context(after, accounts, measure.HostInfo.parse(obs.run(measure.HOST_INFO).stdout))
        files = measure.parse_files(obs.run(measure.SUDO_FILES).stdout)
        return measure.deploy_plan(ctx, included, files, settings)
    except measure.PolicyError as exc:
        return measure.SudoRepair(conflicts=(f"the sudoers policy cannot be read, so the deploy cannot tell "
                                             f"it converges: {exc}",))
