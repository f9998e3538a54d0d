"""auth (6-1, 6-2): accounts, faillock, pwquality, ageing, hashing, shadow files, personal data.

Every value comes from the host's one observation batch (hardening.measures.auth.observe) and is
read as the program that uses it reads it (see hardening.measures.auth):
accounts through NSS (``getent shadow``, ``getent passwd``), the PAM stacks from the files PAM
reads (every file of /etc/pam.d with ``@include``, ``include``, ``substack``, controls and
continuations as libpam reads them, each password service's stack walked through every result a
module can give: hardening.measures.auth.pam_outcomes), faillock.conf and module arguments
as pam_faillock combines them, pwquality's drop-ins then pwquality.conf then module arguments,
and login.defs as shadow-utils' getdef.c reads it (the last occurrence of a key wins).
"""

from __future__ import annotations

from typing import Any

import pytest

from hardening.measures import auth as measure


def _text(obs: Any, command: str) -> str | None:
    """Standard output of an observed command, or None when it failed (a missing file, a tool)."""
    out = obs.run(command)
    return out.stdout if out.rc == 0 else None


def _shadow(obs: Any) -> str:
    text = _text(obs, measure.GETENT_SHADOW)
    if not text:
        raise AssertionError("getent shadow gave nothing: the checking account cannot read the shadow database")
    return text


@pytest.mark.clause("6-1", "6-2")
def test_no_empty_passwords(obs, profile, evidence):
    """No account has an empty password field (getent shadow)"""
    found = measure.empty_password_accounts(_shadow(obs))
    evidence.record(expected={"accounts with an empty password": []},
                    observed={"accounts with an empty password": found})
    assert not found, f"accounts with an empty password field: {found}"


@pytest.mark.clause("6-1")
def test_only_root_has_uid0(obs, profile, evidence):
    """No account but root has UID 0 (getent passwd)"""
    found = measure.uid0_accounts(_text(obs, measure.GETENT_PASSWD) or "")
    evidence.record(expected={"UID 0": ["root"]}, observed={"UID 0": found})
    assert found == ["root"], f"accounts with UID 0: {found}"


def _pam(obs: Any) -> measure.PamView:
    """/etc/pam.d as libpam reads it; unreadable or not understood is an error, never a pass."""
    return measure.read_pam(obs.run(measure.PAM_TREE), obs.run(measure.PAM_MODULES))


@pytest.mark.clause("6-1")
def test_faillock_in_pam_stack(obs, profile, evidence):
    """pam_faillock gates every password login: preauth stops a locked account, authfail counts each failure"""
    view = _pam(obs)
    problems = measure.faillock_stacks(view)
    judged = [measure.COMMON["auth"], measure.COMMON["account"], *view.services(measure.AUTH_SERVICES)]
    evidence.record(
        expected={"auth": "pam_faillock preauth on every way to success, its failure fails the stack; "
                          "authfail runs after every pam_unix failure",
                  "account": "pam_faillock on every way to success", "problems": {}},
        observed={"stacks judged": judged, "problems": problems,
                  "common-auth": _lines(view, measure.COMMON["auth"], "auth"),
                  "common-account": _lines(view, measure.COMMON["account"], "account")})
    assert not problems, f"PAM stack problems: {problems}"


@pytest.mark.clause("6-1")
def test_faillock_settings(obs, profile, evidence):
    """faillock locks after the profile's number of failures, for at least its unlock time"""
    settings: measure.Settings = profile.measure("auth")
    conf = _text(obs, measure.FAILLOCK_TEXT) or ""
    values = {name: measure.effective_faillock(conf, args) for name, args in measure.faillock_args(_pam(obs)).items()}
    problems = {name: p for name, v in values.items() if (p := measure.faillock_problems(v, settings))}
    evidence.record(expected={"deny": f"1..{settings.faillock_deny}",
                              "unlock_time": f">= {settings.faillock_unlock_time} or 0 (never)",
                              "fail_interval": f">= {settings.faillock_fail_interval}",
                              "admin_group": "none (or with even_deny_root)"},
                    observed={"per auth stack (faillock.conf, then module arguments)": values, "problems": problems})
    assert not problems, f"faillock looser than the profile: {problems}"


@pytest.mark.clause("6-2")
def test_pwquality(obs, profile, evidence):
    """pam_pwquality gates every password change with the profile's minimum length and classes, enforcing"""
    settings: measure.Settings = profile.measure("auth")
    view = _pam(obs)
    dropins = measure.parse_dropins(_text(obs, measure.PWQUALITY_DROPINS) or "")
    main = _text(obs, measure.PWQUALITY_TEXT) or ""
    values = {name: measure.effective_pwquality(dropins, main, args)
              for name, args in measure.pwquality_args(view).items()}
    problems = {name: p for name, v in values.items() if (p := measure.pwquality_problems(v, settings))}
    problems.update(measure.pwquality_stacks(view))
    evidence.record(expected={"pam_pwquality": "on every way to a new password, its refusal fails the stack",
                              "minlen": f">= {settings.pass_min_len}",
                              "minclass": f">= {settings.pass_min_classes}", "enforcing": "not 0"},
                    observed={"per password stack (drop-ins, pwquality.conf, module arguments)": values,
                              "drop-ins": [name for name, _ in dropins], "problems": problems,
                              "common-password": _lines(view, measure.COMMON["password"], "password")})
    assert not problems, f"pam_pwquality problems: {problems}"


@pytest.mark.clause("6-1")
def test_pam_refuses_empty_passwords(obs, profile, evidence):
    """No password login accepts an empty password: pam_unix without nullok in every auth stack"""
    view = _pam(obs)
    found = measure.nullok_stacks(view)
    evidence.record(expected={"pam_unix lines with nullok": {}},
                    observed={"pam_unix lines with nullok": found,
                              "stacks judged": [measure.COMMON["auth"], *view.services(measure.AUTH_SERVICES)]})
    assert not found, f"pam_unix accepts empty passwords (nullok): {found}"


@pytest.mark.clause("6-2")
def test_password_ageing(obs, profile, evidence):
    """login.defs gives new passwords the profile's maximum, minimum and warning ages"""
    settings: measure.Settings = profile.measure("auth")
    defs = measure.parse_login_defs(_text(obs, measure.LOGIN_DEFS_TEXT) or "")
    problems = measure.ageing_problems(defs, settings)
    keys = ("PASS_MAX_DAYS", "PASS_MIN_DAYS", "PASS_WARN_AGE")
    evidence.record(expected={"PASS_MAX_DAYS": f"1..{settings.pass_max_days}",
                              "PASS_MIN_DAYS": f">= {settings.pass_min_days}",
                              "PASS_WARN_AGE": f">= {settings.pass_warn_age}"},
                    observed={**{k: defs.get(k) for k in keys}, "problems": problems})
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-2")
def test_password_hash(obs, profile, evidence):
    """New passwords are hashed with the profile's method or stronger (login.defs and pam_unix)"""
    settings: measure.Settings = profile.measure("auth")
    method = measure.parse_login_defs(_text(obs, measure.LOGIN_DEFS_TEXT) or "").get("ENCRYPT_METHOD")
    pam_hash = measure.pam_unix_hash(_text(obs, measure.PAM_PASSWORD) or "")
    observed = {"login.defs ENCRYPT_METHOD": method, "pam_unix in common-password": pam_hash}
    evidence.record(expected={"at least": settings.password_hash}, observed=observed)
    weak = {k: v for k, v in observed.items() if not measure.hash_ok(v, settings)}
    assert not weak, f"hash method weaker than {settings.password_hash}: {weak}"


@pytest.mark.clause("6-2")
def test_stored_hashes_strong(obs, profile, evidence):
    """Every usable password is stored with a strong hash (yescrypt, sha512, bcrypt)"""
    found = measure.weak_hash_accounts(_shadow(obs))
    evidence.record(expected={"accounts with a weak hash": []},
                    observed={"accounts with a weak hash": found,
                              "remedy": "the account changes its password (passwd) after the deploy"})
    assert not found, f"accounts whose password hash is weak: {found}"


@pytest.mark.clause("6-2")
def test_existing_accounts_ageing(obs, profile, evidence):
    """Accounts with a usable password expire within the profile's maximum age (chage -l)"""
    settings: measure.Settings = profile.measure("auth")
    found = measure.ageing_exceeding(_shadow(obs), settings)
    evidence.record(expected={"maximum age": f"1..{settings.pass_max_days}", "exceeding": {}},
                    observed={"exceeding (account: maximum days)": found,
                              "remedy": f"chage -M {settings.pass_max_days} ACCOUNT; the deploy reports, "
                                        "it does not change existing accounts"})
    assert not found, f"accounts whose password never expires or expires too late: {found}"


@pytest.mark.clause("6-2")
def test_shadow_files_protected(obs, profile, evidence):
    """/etc/shadow and /etc/gshadow are root-owned, group shadow, 0640 or stricter"""
    observed: dict[str, str] = {}
    problems: list[str] = []
    for path in measure.SHADOW_FILES:
        out = _text(obs, measure.shadow_stat(path))
        if out is None:
            problems.append(f"{path} missing")
            continue
        mode, user, group = out.split()
        observed[path] = f"{int(mode, 8):04o} {user}:{group}"
        problems += measure.shadow_mode_problems(path, int(mode, 8), user, group)
    want = "0640 or stricter, root:shadow (or root:root)"
    evidence.record(expected=dict.fromkeys(measure.SHADOW_FILES, want),
                    observed={**observed, "problems": problems})
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-1")
def test_personal_data_access(obs, profile, evidence):
    """Personal-data directories belong to root and the named group, with no world access"""
    settings: measure.Settings = profile.measure("auth")
    if not settings.personal_data:
        # Every shipped role (terminal, server, server-room: base.yaml) is a host that holds
        # personal information: an empty list is missing data, not a host without any.
        evidence.not_configured("the profile names no personal-data directories: fill measures.auth.personal_data "
                                "(e.g. [{path: /srv/pii, group: pii, mode: '0750'}]) in the host's profile")
    observed: dict[str, Any] = {}
    problems: list[str] = []
    for entry in settings.personal_data:
        stat = _stat(obs, entry.path)
        group_exists = obs.run(measure.group_entry(entry.group)).rc == 0
        observed[entry.path] = {"stat": stat, "group exists": group_exists}
        problems += measure.personal_data_problems(entry, stat, group_exists)
    evidence.record(expected={e.path: f"directory root:{e.group} {e.mode}, no ACL entries"
                              for e in settings.personal_data},
                    observed={**observed, "problems": problems})
    assert not problems, "; ".join(problems)


def _stat(obs: Any, path: str) -> dict[str, str] | None:
    out = _text(obs, measure.dir_stat(path))
    if out is None:
        return None
    return {**measure.parse_stat(out), "acl": measure.acl_marker(_text(obs, measure.dir_listing(path)) or "")}


def _lines(view: measure.PamView, service: str, kind: str) -> list[str]:
    return [str(entry) for entry in view.stack(service, kind)]
