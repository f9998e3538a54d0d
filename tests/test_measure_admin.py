"""admin (6-6): desired state and the reading of sudo's own view, without a host."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from hardening.measures import admin as measure
from hardening.profiles import Profiles

SUDO_L = """Matching Defaults entries for {user} on lab:
    env_reset, mail_badpass, secure_path=/usr/local/sbin\\:/usr/bin, use_pty, logfile=/var/log/sudo.log

User {user} may run the following commands on lab:
    {rules}
"""


def listing(user: str, *rules: str) -> dict[str, list[str]]:
    return measure.parse_sudo_list(SUDO_L.format(user=user, rules="\n    ".join(rules)))


def test_sudoers_names_group_logging_and_exception() -> None:
    text = measure.sudoers(measure.Settings(nopasswd_exceptions=["hardening"]))
    assert "Defaults use_pty\n" in text
    assert 'Defaults logfile="/var/log/sudo.log"\n' in text
    assert "%sudo ALL=(ALL:ALL) ALL\n" in text
    assert "hardening ALL=(ALL:ALL) NOPASSWD: ALL\n" in text
    assert text.count("NOPASSWD") == 1


@pytest.mark.parametrize("bad", [
    {"admin_group": "sudo ALL=(ALL) NOPASSWD: ALL"},
    {"admin_group": "wheel\nDefaults !use_pty"},
    {"nopasswd_exceptions": ["ALL"]},
    {"nopasswd_exceptions": ["deploy, %users"]},
    {"sudo_logfile": "/var/log/sudo log"},
    {"sudo_logfile": 'x"\nDefaults !use_pty'},
    {"permit_root_login": "yes"},
])
def test_invalid_values_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        measure.Settings(**bad)  # type: ignore[arg-type]


def test_base_profile_names_the_lab_deploy_account_as_exception() -> None:
    settings = Profiles().resolve("terminal").measure("admin")
    assert settings.nopasswd_exceptions == ["hardening"]
    assert measure.sshd_dropin(settings).endswith("PermitRootLogin no\n")


def test_lockout_refused_when_deploy_connects_as_root() -> None:
    assert measure.lockout_reason(measure.Settings(), "root")
    assert measure.lockout_reason(measure.Settings(permit_root_login="prohibit-password"), "root") is None
    assert measure.lockout_reason(measure.Settings(), "hardening") is None


def test_parse_sudo_list_defaults_and_rules() -> None:
    parsed = listing("alice", "(ALL : ALL) ALL", "(root) NOPASSWD: /usr/bin/restic")
    assert "use_pty" in parsed["defaults"]
    assert "logfile=/var/log/sudo.log" in parsed["defaults"]
    assert parsed["rules"] == ["(ALL : ALL) ALL", "(root) NOPASSWD: /usr/bin/restic"]
    assert measure.parse_sudo_list("User bob is not allowed to run sudo on lab.\n")["rules"] == []


def test_violations() -> None:
    settings = measure.Settings(nopasswd_exceptions=["hardening"])
    users = {
        "alice": listing("alice", "(ALL : ALL) ALL"),                      # admin: fine
        "hardening": listing("hardening", "(ALL) NOPASSWD: ALL"),         # exception: fine
        "backup": listing("backup", "(root) NOPASSWD: /usr/bin/restic"),  # narrow: fine
        "mallory": listing("mallory", "(ALL : ALL) ALL"),                 # not in the group
        "bob": listing("bob", "(ALL) NOPASSWD: ALL"),                     # admin, NOPASSWD
    }
    found = measure.violations(users, {"alice", "bob"}, settings)
    assert set(found) == {"mallory", "bob"}
    assert "outside group sudo" in found["mallory"][0]
    assert "NOPASSWD" in found["bob"][0]


def test_missing_defaults_last_setting_wins() -> None:
    settings = measure.Settings()
    assert measure.missing_defaults(["use_pty", "logfile=/var/log/sudo.log"], settings) == []
    assert measure.missing_defaults(["use_pty", "!use_pty"], settings) == [
        "use_pty", "logfile=/var/log/sudo.log"]
    assert measure.missing_defaults(['logfile="/var/log/sudo.log"', "use_pty"], settings) == []


@pytest.mark.skipif(shutil.which("visudo") is None, reason="visudo is not installed here")
def test_visudo_accepts_rendered_and_refuses_broken(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text(measure.sudoers(measure.Settings(nopasswd_exceptions=["hardening"])))
    broken = tmp_path / "broken"
    broken.write_text(measure.sudoers(measure.Settings()).replace("(ALL:ALL)", "(ALL:ALL"))
    assert subprocess.run(["visudo", "-cf", str(good)], capture_output=True).returncode == 0
    assert subprocess.run(["visudo", "-cf", str(broken)], capture_output=True).returncode != 0
