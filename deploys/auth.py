"""auth (6-1, 6-2): faillock, pwquality, ageing and hash in login.defs, shadow files, personal data.

Lockout safety: pam_faillock is wired in through pam-auth-update (the Debian way) by a script
that validates the resulting common-auth and common-account and restores the previous files in
the same privileged shell when they are not sound (see ``measure.enable_script``). Root is never
locked by faillock, so root's console login stays possible; key-based SSH logins do not pass
through the auth stack. login.defs has no drop-in directory: its keys are replaced line by line
(``files.line``). Existing accounts' ageing (chage) is reported by the check, never changed here.
"""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import File
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server

from hardening.measures import auth as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from ._support import supported


@deploy("auth")
def apply(profile: Resolved, obs: Observations) -> None:
    """Enforce the auth measure from the host's resolved profile."""
    settings: measure.Settings = profile.measure("auth")
    if not supported("auth"):
        return
    apt.packages(name="Install PAM modules and libpam-pwquality", packages=list(measure.PACKAGES))
    _faillock(settings)
    _pwquality(settings)
    _login_defs(settings)
    _shadow_files()
    _personal_data(settings)


def _faillock(settings: measure.Settings) -> None:
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
    server.shell(name="Enable pam_faillock with pam-auth-update (validated, restored on failure)",
                 commands=[measure.enable_command()],
                 _if=lambda: _any_changed(profiles) or _stack_unsound())


def _any_changed(ops: list[OperationMeta]) -> bool:
    return any(op.did_change() for op in ops)


def _stack_unsound() -> bool:
    auth_text = host.get_fact(Command, command="cat /etc/pam.d/common-auth") or ""
    account_text = host.get_fact(Command, command="cat /etc/pam.d/common-account") or ""
    return bool(measure.stack_problems(auth_text, "auth") or measure.stack_problems(account_text, "account"))


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


def _shadow_files() -> None:
    for path in measure.SHADOW_FILES:
        files.file(name=f"{path}: root:shadow, no bits beyond 0640", path=path,
                   user="root", group="shadow", mode="640", _if=_shadow_needs_fix(path))


def _shadow_needs_fix(path: str) -> Callable[[], bool]:
    """Only touch the file when it is looser than 0640 root:shadow (a stricter mode stays)."""
    def needs() -> bool:
        info = host.get_fact(File, path=path)
        if not info:
            return False
        mode = int(str(info["mode"]), 8)
        return bool(measure.shadow_mode_problems(path, mode, info["user"], info["group"]))
    return needs


def _personal_data(settings: measure.Settings) -> None:
    for entry in settings.personal_data:
        server.group(name=f"Group {entry.group} for {entry.path}", group=entry.group)
        files.directory(name=f"{entry.path}: root:{entry.group} {entry.mode}", path=entry.path,
                        user="root", group=entry.group, mode=entry.mode)
