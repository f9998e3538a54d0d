"""auth (6-1, 6-2): faillock, pwquality, ageing and hash in login.defs, shadow files, personal data.

Decides from the host's observations (the same the checks judge): a PAM stack that lost its
faillock lines (or pam_pwquality) is rebuilt even when the tool's own files are unchanged; the
shadow files and personal-data directories are fixed only where they are wrong. What no file of
the deploy can win over (module arguments in the PAM files, a pwquality drop-in read after its
own, a weak pam_unix hash) and what only a person can do (accounts: empty or weak passwords,
UID 0, ageing of existing accounts) makes it refuse at its end, naming the file or the account.

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

from ._support import refuse_at_end, supported


@deploy("auth")
def apply(profile: Resolved, obs: Observations) -> None:
    """Enforce the auth measure from the host's resolved profile and its observed state."""
    settings: measure.Settings = profile.measure("auth")
    if not supported("auth"):
        return
    apt.packages(name="Install PAM modules and libpam-pwquality", packages=list(measure.PACKAGES))
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
    for key, value in measure.faillock_values(settings).items():
        files.line(name=f"faillock.conf: {key} = {value}", path=measure.FAILLOCK_CONF,
                   line=measure.kv_conf_regex(key), replace=f"{key} = {value}")
    profiles = [
        files.put(name=f"pam-auth-update profile {name}", src=StringIO(text),
                  dest=f"{measure.PAM_CONFIGS}/{name}", user="root", group="root", mode="644")
        for name, text in measure.pam_profiles().items()
    ]
    drifted = _stack_drift(obs)
    server.shell(name="Enable pam_faillock and pam_pwquality with pam-auth-update (validated, restored on failure)"
                      + (f": the stack drifted ({drifted})" if drifted else ""),
                 commands=[measure.enable_command()],
                 _if=lambda: bool(drifted) or _any_changed(profiles))


def _any_changed(ops: list[OperationMeta]) -> bool:
    return any(op.did_change() for op in ops)


def _stack_drift(obs: Observations) -> str:
    """What is wrong with the observed PAM stacks (faillock, pam_pwquality); empty when sound."""
    problems = (measure.stack_problems(_text(obs, measure.PAM_AUTH), "auth")
                + measure.stack_problems(_text(obs, measure.PAM_ACCOUNT), "account"))
    if not measure.pam_in_stack(_text(obs, measure.PAM_PASSWORD), "pam_pwquality.so"):
        problems.append("no pam_pwquality.so in common-password")
    return "; ".join(problems)


def _pwquality(settings: measure.Settings) -> None:
    files.directory(name="pwquality drop-in directory", path=measure.PWQUALITY_DIR,
                    user="root", group="root", mode="755")
    files.put(name="pwquality drop-in from the profile", src=StringIO(measure.pwquality_conf(settings)),
              dest=measure.PWQUALITY_DROPIN, user="root", group="root", mode="644")
    for key in measure.pwquality_values(settings):
        # pwquality.conf is read after the drop-ins, so an active key there would override ours.
        files.line(name=f"pwquality.conf: no active {key} overriding the drop-in",
                   path=measure.PWQUALITY_CONF, line=measure.kv_conf_regex(key), present=False)


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
    dropins = measure.parse_dropins(_text(obs, measure.PWQUALITY_DROPINS))
    config = measure.config_findings(settings, _text(obs, measure.PAM_AUTH), _text(obs, measure.PAM_PASSWORD),
                                     dropins)
    if accounts:
        accounts = ["accounts need a person (the deploy never changes accounts): " + "; ".join(accounts)]
    return config + accounts
