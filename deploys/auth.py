"""auth (6-1, 6-2): faillock, pwquality, ageing and hash in login.defs, shadow files, personal data.

Decides from the host's observations (the same the checks judge): when the common-* files
pam-auth-update writes have drifted (faillock or pam_pwquality made optional, skipped by a jump,
switched off by an argument, ``nullok`` back, a weak pam_unix hash), they are rewritten from the
profiles with ``pam-auth-update --force`` (local edits of those files are dropped: they are the
drift). ``nullok`` goes through the deploy's own copy of Debian's unix profile without it
(``hardening-unix``, made from the host's own profile), which replaces ``unix``. The
pwquality keys go into pwquality.conf, read after every drop-in. The shadow files and
personal-data directories are fixed only where they are wrong. What pam-auth-update does not
write (a service's own PAM lines) and what only a person can do (accounts: empty or weak
passwords, UID 0, ageing of existing accounts) makes it refuse at its end, naming the file or
the account.

Lockout safety: pam_faillock is wired in through pam-auth-update (the Debian way) by a script
that validates the resulting common-auth and common-account and restores the previous files in
the same privileged shell when they are not sound (see ``measure.enable_script``). Root is never
locked by faillock, so root's console login stays possible; key-based SSH logins do not pass
through the auth stack. login.defs has no drop-in directory: its keys are replaced line by line
(``files.line``). Existing accounts (their ageing, chage) are never changed here.
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import apt, files, server

from hardening.measures import auth as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from ._rollback import PAM_PROBE_SERVICE, PAM_PROBE_TEXT, pam, watch
from ._support import refuse_at_end, supported

# What the faillock/pwquality wiring writes: restored as it was unless a fresh authentication
# through the new stack confirms it (deploys/_rollback.py, PAM_PROBE).
PAM_WATCHED = (
    *(f"/etc/pam.d/{name}" for name in ("common-auth", "common-account", "common-password",
                                        "common-session", "common-session-noninteractive")),
    *(f"{measure.PAM_CONFIGS}/{name}" for name in (*measure.pam_profiles(), measure.UNIX_OWN)),
    "/var/lib/pam",
    measure.FAILLOCK_CONF,
)


@deploy("auth")
def apply(profile: Resolved, obs: Observations) -> None:
    """Enforce the auth measure from the host's resolved profile and its observed state."""
    settings: measure.Settings = profile.measure("auth")
    if not supported("auth"):
        return
    if obs.run(measure.PAMTESTER).rc != 0:
        apt.update(name="Update the package lists (pamtester missing)", cache_time=3600)
    apt.packages(name="Install PAM modules, libpam-pwquality and pamtester (the watchdog's fresh authentication)",
                 packages=[*measure.PACKAGES, "pamtester"])
    files.put(name=f"PAM service {PAM_PROBE_SERVICE} (the watchdog's fresh authentication)",
              src=StringIO(PAM_PROBE_TEXT), dest=PAM_PROBE_SERVICE, user="root", group="root", mode="644")
    _faillock(settings, obs)
    _pwquality(settings)
    _login_defs(settings)
    _shadow_files(obs)
    _personal_data(settings, obs)
    conflicts = _conflicts(settings, obs)
    if conflicts:
        refuse_at_end("auth: " + " / ".join(conflicts))


def _text(obs: Observations, command: str) -> str:
    out = obs.run(command)
    return out.stdout if out.rc == 0 else ""


def _faillock(settings: measure.Settings, obs: Observations) -> None:
    files.directory(name="Directory for hardening helpers", path=measure.LIB_DIR,
                    user="root", group="root", mode="755")
    files.put(name="PAM stack validator", src=StringIO(measure.STACK_CHECK_AWK),
              dest=measure.STACK_CHECK, user="root", group="root", mode="644")
    files.put(name="faillock enable script (validates, restores on failure)",
              src=StringIO(measure.enable_script()), dest=measure.ENABLE_SCRIPT,
              user="root", group="root", mode="700")
    drifted = "; ".join(_common_drift(settings, obs))
    region = watch(pam(PAM_WATCHED))
    region.force(drifted)
    for key, value in measure.faillock_values(settings).items():
        files.line(name=f"faillock.conf: {key} = {value}", path=measure.FAILLOCK_CONF,
                   line=measure.kv_conf_regex(key), replace=f"{key} = {value}")
    files.line(name="faillock.conf: no admin_group (its members would never be locked)",
               path=measure.FAILLOCK_CONF, line=measure.kv_conf_regex("admin_group"), present=False)
    profiles = [
        files.put(name=f"pam-auth-update profile {name}", src=StringIO(text),
                  dest=f"{measure.PAM_CONFIGS}/{name}", user="root", group="root", mode="644")
        for name, text in measure.pam_profiles().items()
    ]
    unix = measure.unix_without_nullok(_text(obs, measure.UNIX_PROFILE))
    if unix is not None:
        profiles.append(files.put(name=f"pam-auth-update profile {measure.UNIX_OWN} (Debian's unix without nullok)",
                                  src=StringIO(unix), dest=f"{measure.PAM_CONFIGS}/{measure.UNIX_OWN}",
                                  user="root", group="root", mode="644"))
    server.shell(name="Enable pam_faillock and pam_pwquality with pam-auth-update (validated, restored on failure)"
                      + (f": the common files drifted, rewritten from the profiles ({drifted})" if drifted else ""),
                 commands=[measure.enable_command(force=bool(drifted))],
                 _if=lambda: bool(drifted) or _any_changed(profiles))
    region.close()


def _any_changed(ops: list[OperationMeta]) -> bool:
    return any(op.did_change() for op in ops)


def _pam(obs: Observations) -> measure.PamView | None:
    try:
        return measure.read_pam(obs.run(measure.PAM_TREE), obs.run(measure.PAM_MODULES))
    except measure.PamError:
        return None


def _common_drift(settings: measure.Settings, obs: Observations) -> list[str]:
    """What is wrong in the common-* files (pam-auth-update's), from the observed /etc/pam.d."""
    view = _pam(obs)
    if view is None:
        return ["/etc/pam.d could not be read as libpam reads it"]
    try:
        return measure.common_drift(view, settings)
    except measure.PamError as exc:
        return [str(exc)]


def _pwquality(settings: measure.Settings) -> None:
    # libpwquality reads pwquality.conf after every pwquality.conf.d/*.conf: its keys win over any
    # drop-in, so they are set there (line by line, like login.defs).
    for key, value in measure.pwquality_values(settings).items():
        files.line(name=f"pwquality.conf: {key} = {value}", path=measure.PWQUALITY_CONF,
                   line=measure.kv_conf_regex(key), replace=f"{key} = {value}")
    files.file(name="pwquality drop-in of earlier versions (its keys are in pwquality.conf now)",
               path=measure.PWQUALITY_DROPIN, present=False)


def _login_defs(settings: measure.Settings) -> None:
    for key, value in measure.login_defs_values(settings).items():
        files.line(name=f"login.defs: {key} {value}", path=measure.LOGIN_DEFS,
                   line=measure.login_defs_regex(key), replace=f"{key}\t{value}")


def _shadow_files(obs: Observations) -> None:
    """Only touch a file that is looser than 0640 root:shadow (a stricter mode stays)."""
    for path in measure.SHADOW_FILES:
        seen = _text(obs, measure.shadow_stat(path)).split()
        if len(seen) == 3 and measure.shadow_mode_problems(path, int(seen[0], 8), seen[1], seen[2]):
            files.file(name=f"{path}: root:shadow, no bits beyond 0640 (was {' '.join(seen)})", path=path,
                       user="root", group="shadow", mode="640")


def _personal_data(settings: measure.Settings, obs: Observations) -> None:
    for entry in settings.personal_data:
        server.group(name=f"Group {entry.group} for {entry.path}", group=entry.group)
        if measure.acl_marker(_text(obs, measure.dir_listing(entry.path))) == "+":
            why = shlex.quote(f"refused: {entry.path} has ACL entries and setfacl (package acl) is missing")
            server.shell(name=f"{entry.path}: remove the extended ACL entries (setfacl -b)",
                         commands=[f"command -v setfacl >/dev/null || {{ echo {why} >&2; exit 1; }}; "
                                   f"setfacl -b {shlex.quote(entry.path)}"])
        files.directory(name=f"{entry.path}: root:{entry.group} {entry.mode}", path=entry.path,
                        user="root", group=entry.group, mode=entry.mode)


def _conflicts(settings: measure.Settings, obs: Observations) -> list[str]:
    """What this deploy cannot repair, from the observations (empty: it converges)."""
    shadow = _text(obs, measure.GETENT_SHADOW)
    accounts = measure.account_findings(shadow, _text(obs, measure.GETENT_PASSWD), settings) if shadow else [
        "getent shadow gave nothing: the accounts cannot be judged"]
    if accounts:
        accounts = ["accounts need a person (the deploy never changes accounts): " + "; ".join(accounts)]
    view = _pam(obs)
    if view is None:
        return ["/etc/pam.d cannot be read as libpam reads it (see the check's error)", *accounts]
    try:
        pam = measure.service_conflicts(view, settings)
    except measure.PamError as exc:
        pam = [f"/etc/pam.d not understood: {exc}"]
    if pam:
        pam = ["PAM service files pam-auth-update does not write (a person fixes them): " + " / ".join(pam)]
    return pam + accounts
