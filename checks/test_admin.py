"""admin (6-6): least administrator privilege, verified as sudo and sshd evaluate it.

Sudo rights are read from ONE parse of the whole sudoers policy by sudo's own parser
(``cvtsudoers -f json /etc/sudoers``: ``@includedir``/``#includedir`` files followed, aliases
kept), judged with the accounts and groups from ``getent`` (hardening.measures.admin explains how
Defaults bindings per user, run-as user, host and command are read, and which single commands
count as a root shell);
each file sudo reads is also converted alone, only to name the file behind a finding. Root login
with ``sshd -T`` (the effective configuration after drop-ins and first match); root's lock with
``passwd -S root``. Output that cannot be read is an error, never a pass.
"""

from __future__ import annotations

import pytest

from hardening.measures import _sshd
from hardening.measures import admin as measure


def _context(obs) -> measure.Context | None:
    """The policy with accounts and host; None when sudo is not installed."""
    sources = measure.sudoers_sources(obs.run(measure.SUDOERS_SOURCES).stdout)
    if sources != ["files"]:
        raise measure.PolicyError(f"nsswitch.conf reads sudoers from {sources}: cvtsudoers sees only the "
                                  "files, rules from the directory are not judged")
    policy = measure.read_policy(obs.run(measure.SUDO_POLICY))
    if policy is None:
        return None
    accounts = measure.Accounts.parse(obs.run(measure.GETENT_PASSWD).stdout, obs.run(measure.GETENT_GROUP).stdout)
    return measure.Context(policy, accounts, measure.HostInfo.parse(obs.run(measure.HOST_INFO).stdout))


def _files(obs) -> dict[str, measure.Policy | str]:
    return measure.parse_files(obs.run(measure.SUDO_FILES).stdout)


@pytest.mark.clause("6-6")
def test_sudo_rights_admin_group_only(obs, profile, evidence):
    """Only the admin group holds blanket sudo rights (ALL or a root shell); no blanket NOPASSWD beyond exceptions"""
    settings: measure.Settings = profile.measure("admin")
    ctx = _context(obs)
    if ctx is None:
        evidence.record(expected={"violations": {}},
                        observed={"sudo": "not installed: nobody holds sudo rights"})
        return
    found = measure.violations(ctx, settings)
    named = measure.files_behind(ctx, _files(obs), settings, found, {}) if found else {}
    evidence.record(
        expected={"blanket rights (ALL commands as root) only for": [f"%{settings.admin_group}", "root",
                                                                     *settings.nopasswd_exceptions],
                  "blanket NOPASSWD only for": settings.nopasswd_exceptions, "violations": {}},
        observed={"admin group members": sorted(ctx.accounts.members(settings.admin_group)),
                  "accounts with sudo rules": measure.accounts_with_rights(ctx),
                  "violations": found, "files behind them": named})
    assert not found, f"sudo rights outside the measure: {found} (files: {sorted(named)})"


@pytest.mark.clause("6-6")
def test_sudo_logging(obs, profile, evidence):
    """sudo uses a pseudo-terminal (use_pty) and logs every allowed command to the profile's log file and syslog"""
    settings: measure.Settings = profile.measure("admin")
    ctx = _context(obs)
    if ctx is None:
        evidence.record(expected=measure.logging_defaults(settings), observed={"sudo": "not installed"})
    assert ctx is not None, "sudo is not installed: the measure's sudo setup is not applied"
    users = sorted(measure.accounts_with_rights(ctx)) or ["root"]
    missing = measure.missing_logging(ctx, settings, users)
    named = measure.files_behind(ctx, _files(obs), settings, {}, missing) if missing else {}
    evidence.record(expected={u: list(measure.logging_defaults(settings).values()) for u in users},
                    observed={"in effect": {u: measure.effective_logging(ctx, settings, u) for u in users},
                              "missing": missing, "files behind them": named})
    assert not missing, f"Defaults not in effect: {missing} (files: {sorted(named)})"


@pytest.mark.clause("6-6")
def test_root_login_ssh(obs, profile, evidence, request):
    """Root login over SSH is at most what the profile allows, for the default connection, user
    root from the host itself, and every Match block (sshd -T; sshd -T -C per class)"""
    settings: measure.Settings = profile.measure("admin")
    classes = _sshd.connection_classes(obs, _sshd.host_runner(request))
    as_root, why = _sshd.effective(obs.run(_sshd.SSHD_T_ROOT))
    classes.append(_sshd.ConnectionClass("user root from 127.0.0.1", _sshd.SSHD_T_ROOT, as_root, why))
    observed, failing = _sshd.judge(classes, ["permitrootlogin"],
                                    lambda c: measure.root_login_problem(settings, c.value("permitrootlogin")))
    evidence.record(expected={"permitrootlogin": f"at most {settings.permit_root_login}",
                              "for": "the default, user root and every Match block"}, observed=observed)
    _sshd.conclude(classes, failing)


@pytest.mark.clause("6-6")
def test_root_locked(obs, profile, evidence):
    """root's password is locked (passwd -S root shows L)"""
    settings: measure.Settings = profile.measure("admin")
    if not settings.root_locked:
        evidence.not_applicable("the profile does not require root's password locked")
    status = measure.root_status(obs.run(measure.PASSWD_STATUS))
    evidence.record(expected={"status": "L"}, observed={"status": status})
    assert status == "L", f"root's password status is {status!r}, not L (locked)"
