"""admin (6-6): least administrator privilege, verified as sudo and sshd evaluate it.

Sudo rights are read with ``sudo -l -U <user>`` for every account (sudo's own evaluation of
/etc/sudoers and its includes, with the Defaults that apply to that user); root login with
``sshd -T`` (the effective configuration after drop-ins and first match); root's lock with
``passwd -S root``.
"""

from __future__ import annotations

from typing import Any

import pytest

from hardening.measures import _sshd
from hardening.measures import admin as measure

LIST_ALL = ('command -v sudo >/dev/null || { echo "sudo: not installed"; exit 127; }; '
            'getent passwd | cut -d: -f1 | while read -r u; do echo "### $u"; sudo -n -l -U "$u" 2>&1; done')


def _listings(host: Any) -> dict[str, dict[str, list[str]]] | None:
    """Every account's ``sudo -l`` as parsed rules and defaults; None when sudo is absent."""
    out = host.run(LIST_ALL)
    if out.rc == 127:
        return None
    blocks: dict[str, dict[str, list[str]]] = {}
    for chunk in out.stdout.split("### ")[1:]:
        user, _, body = chunk.partition("\n")
        blocks[user.strip()] = measure.parse_sudo_list(body)
    return blocks


def _admins(host: Any, group: str) -> set[str]:
    """Members of the admin group, supplementary and primary."""
    entry = host.run("getent group %s", group).stdout.strip().split(":")
    if len(entry) < 4:
        return set()
    members = {m for m in entry[3].split(",") if m}
    passwd = host.run("getent passwd").stdout.splitlines()
    return members | {p.split(":")[0] for p in passwd if p.split(":")[3:4] == [entry[2]]}


@pytest.mark.clause("6-6")
def test_sudo_rights_admin_group_only(host, profile, evidence):
    """Only the admin group holds blanket sudo rights; no blanket NOPASSWD outside the exceptions"""
    settings: measure.Settings = profile.measure("admin")
    listings = _listings(host)
    if listings is None:
        evidence.record(expected={"violations": {}},
                        observed={"sudo": "not installed: nobody holds sudo rights"})
        return
    admins = _admins(host, settings.admin_group)
    found = measure.violations(listings, admins, settings)
    with_rights = {u: v["rules"] for u, v in listings.items() if v["rules"]}
    evidence.record(
        expected={"blanket rights only for": [f"%{settings.admin_group}", "root",
                                              *settings.nopasswd_exceptions],
                  "blanket NOPASSWD only for": settings.nopasswd_exceptions, "violations": {}},
        observed={"admin group members": sorted(admins), "accounts with sudo rules": with_rights,
                  "violations": found})
    assert not found, f"sudo rights outside the measure: {found}"


@pytest.mark.clause("6-6")
def test_sudo_logging(host, profile, evidence):
    """sudo runs commands in a pseudo-terminal (use_pty) and logs them to the profile's log file"""
    settings: measure.Settings = profile.measure("admin")
    listings = _listings(host)
    if listings is None:
        evidence.record(expected=measure.logging_defaults(settings), observed={"sudo": "not installed"})
    assert listings is not None, "sudo is not installed: the measure's sudo setup is not applied"
    users = [u for u, v in listings.items() if v["rules"]] or ["root"]
    missing = {u: measure.missing_defaults(listings.get(u, {"defaults": []})["defaults"], settings)
               for u in users}
    missing = {u: m for u, m in missing.items() if m}
    evidence.record(expected={u: list(measure.logging_defaults(settings).values()) for u in users},
                    observed={"defaults": {u: listings[u]["defaults"] for u in users if u in listings},
                              "missing": missing})
    assert not missing, f"Defaults not in effect: {missing}"


@pytest.mark.clause("6-6")
def test_root_login_ssh(host, profile, evidence):
    """Root login over SSH is as the profile says (sshd -T, effective after drop-ins)"""
    settings: measure.Settings = profile.measure("admin")
    config, why = _sshd.effective(host.run(_sshd.SSHD_T))
    as_root, _ = _sshd.effective(host.run(_sshd.SSHD_T_ROOT))  # a Match User root block counts
    aliases = {"without-password": "prohibit-password"}
    seen = {label: aliases.get(c["permitrootlogin"][0], c["permitrootlogin"][0]) if c else why
            for label, c in (("global", config), ("for user root", as_root))}
    want = settings.permit_root_login
    evidence.record(expected={"global": want, "for user root": want}, observed=seen)
    assert config is not None, why
    assert seen == {"global": want, "for user root": want}


@pytest.mark.clause("6-6")
def test_root_locked(host, profile, evidence):
    """root's password is locked (passwd -S root shows L)"""
    settings: measure.Settings = profile.measure("admin")
    if not settings.root_locked:
        evidence.not_applicable("the profile does not require root's password locked")
    out = host.run("passwd -S root")
    fields = out.stdout.split()
    status = fields[1] if len(fields) > 1 else (out.stderr.strip() or f"exit {out.rc}")
    evidence.record(expected={"status": "L"}, observed={"status": status})
    assert status == "L", f"root's password status is {status!r}, not L (locked)"
