"""patching (6-8): desired state and parsers, no host."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hardening.measures import patching as measure
from hardening.observe import Observation
from hardening.profiles import Profiles

SIMULATION = """\
Reading package lists...
Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Inst libgcrypt20 [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])
Inst liblzma-dev [5.4.1-1] (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security [amd64]) []
Inst foo [1] (2 Ubuntu:22.04/jammy-security [amd64])
Conf base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])
"""


def test_security_updates_from_simulation():
    assert measure.security_updates(SIMULATION) == ["libgcrypt20", "liblzma-dev", "foo"]
    assert measure.security_updates("0 upgraded, 0 newly installed\n") == []


def test_pending_command_is_read_only():
    command = measure.pending_command()
    assert " -s " in command and "Debug::NoLocking=1" in command


DUMP = """\
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "0";
Unattended-Upgrade::Origins-Pattern "";
Unattended-Upgrade::Origins-Pattern:: "origin=Debian,codename=${distro_codename},label=Debian";
Unattended-Upgrade::Origins-Pattern:: "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";
"""


def test_apt_config_dump():
    config = measure.parse_apt_config(DUMP)
    assert measure.periodic_problems(config) == ["APT::Periodic::Unattended-Upgrade is '0', wanted '1'"]
    assert measure.security_origin_configured(config)
    assert not measure.security_origin_configured(measure.parse_apt_config(DUMP.splitlines()[3] + "\n"))
    assert measure.periodic_problems({}) == [
        "APT::Periodic::Update-Package-Lists is None, wanted '1'",
        "APT::Periodic::Unattended-Upgrade is None, wanted '1'"]


@pytest.mark.skipif(shutil.which("apt-config") is None, reason="needs apt-config")
def test_written_files_are_effective_for_apt(tmp_path: Path):
    """apt-config reads our two files and yields the values the check wants."""
    auto, origins = tmp_path / "20auto-upgrades", tmp_path / "52hardening"
    auto.write_text(measure.auto_upgrades_conf())
    origins.write_text(measure.origins_conf())
    out = subprocess.run(["apt-config", "-c", str(auto), "-c", str(origins), "dump"],
                         capture_output=True, text=True, check=True).stdout
    config = measure.parse_apt_config(out)
    assert measure.periodic_problems(config) == []
    assert measure.SECURITY_ORIGIN in config["Unattended-Upgrade::Origins-Pattern::"]


def test_lists_age_days():
    now = 1_800_000_000
    stat = f"{now - 86400} /var/lib/apt/lists/a_InRelease\n{now - 3 * 86400} /var/lib/apt/lists/b_Release\n"
    assert measure.lists_age_days(stat, now) == 1.0
    assert measure.lists_age_days("", now) is None


def test_signature_age_days():
    info = "File: /var/lib/clamav/daily.cld\nBuild time: 27 Nov 2026 04:25 -0500\nVersion: 27469\n"
    now = dt.datetime(2026, 11, 28, 9, 25, tzinfo=dt.UTC)
    assert measure.signature_age_days(info, now) == 1.0
    assert measure.signature_age_days("garbage", now) is None


@pytest.mark.parametrize(("release", "version", "installed", "pending"), [
    ("6.1.0-21-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.90-1 (2024-05-03)", {"6.1.0-21-amd64": "6.1.90-1"}, False),
    ("6.1.0-21-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.90-1 (2024-05-03)",
     {"6.1.0-21-amd64": "6.1.90-1", "6.1.0-9-amd64": "6.1.27-1", "6.1.0-28-amd64": "6.1.119-1"}, True),
    ("6.1.0-21-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.90-1 (2024-05-03)", {"6.1.0-21-amd64": "6.1.94-1"}, True),
    ("6.18.44-custom", "#1 SMP", {}, False),
])
def test_kernel_reboot_pending(release, version, installed, pending):
    assert (measure.kernel_reboot_pending(release, version, installed) is not None) is pending


def test_settings_defaults_keep_updates_a_change_management_decision():
    settings = measure.Settings()
    assert settings.apply_security_updates is False
    assert settings.anti_malware == "not-required"
    assert settings.max_pending_security_updates == 0


# -- deciding from the observation batch ---------------------------------------------------------

def seen(command: str, stdout: str = "", rc: int = 0) -> Observation:
    return Observation("o0", command, rc, stdout, "", 0.0)


def test_installed_and_clock_from_observations():
    assert measure.installed(seen(measure.package_status("x"), "ii "))
    assert not measure.installed(seen(measure.package_status("x"), "rc "))
    assert not measure.installed(seen(measure.package_status("x"), "", rc=1))
    assert measure.package_status("unattended-upgrades") == "dpkg-query -W -f '${db:Status-Abbrev}' unattended-upgrades"
    assert measure.now_epoch(seen(measure.NOW, "1800000000\n")) == 1_800_000_000
    with pytest.raises(ValueError, match="unreadable"):
        measure.now_epoch(seen(measure.NOW, "Tue Dec  1 14:45:50 UTC 2026\n"))


@pytest.mark.parametrize(("age", "stale"), [(None, True), (0.0, False), (1.0, False), (1.01, True), (30, True)])
def test_lists_stale(age, stale):
    assert measure.lists_stale(age) is stale


def test_a_check_failure_for_old_lists_always_means_a_refresh():
    """Whatever the profile's max_lists_age_days (at least 1), lists the check rejects are refreshed."""
    for limit in (1, 2, 7):
        for age in (limit + 0.01, limit * 2.0):
            assert measure.lists_stale(age)


@pytest.mark.parametrize(("enabled", "active", "commands"), [
    ("enabled", "active", []),
    ("enabled", "inactive", ["systemctl start apt-daily.timer"]),
    ("disabled", "inactive", ["systemctl enable --now apt-daily.timer"]),
    ("masked", "inactive", ["systemctl unmask apt-daily.timer", "systemctl enable --now apt-daily.timer"]),
    ("", "", ["systemctl enable --now apt-daily.timer"]),
])
def test_timer_commands(enabled, active, commands):
    assert measure.timer_commands("apt-daily.timer", enabled, active) == commands


GREP = """\
/etc/apt/apt.conf.d/50unattended-upgrades:Unattended-Upgrade::Origins-Pattern {
/etc/apt/apt.conf.d/50unattended-upgrades://Unattended-Upgrade::Mail "";
/etc/apt/apt.conf.d/50unattended-upgrades:Unattended-Upgrade::Package-Blacklist {
/etc/apt/apt.conf.d/99local:APT::Periodic::Unattended-Upgrade "0";
/etc/apt/apt.conf.d/20auto-upgrades:APT::Periodic::Update-Package-Lists "1";
/etc/apt/apt.conf.d/20auto-upgrades:APT::Periodic::Unattended-Upgrade "1";
/etc/apt/apt.conf.d/52hardening-unattended-upgrades:Unattended-Upgrade::Origins-Pattern {
/etc/apt/apt.conf.d/60site:APT { Periodic { Update-Package-Lists "0"; }; };
/etc/apt/apt.conf.d/70site:#clear Unattended-Upgrade::Origins-Pattern;
"""


def test_config_conflict_names_the_overriding_file():
    problems = measure.config_problems(measure.parse_apt_config(DUMP))
    assert problems == ["APT::Periodic::Unattended-Upgrade is '0', wanted '1'"]
    reason = measure.config_conflict(problems, True, GREP)
    assert reason == ("patching: APT::Periodic::Unattended-Upgrade is '0', wanted '1' "
                      "(set in /etc/apt/apt.conf.d/99local) although the tool's files are in place")
    assert measure.config_conflict(problems, False, GREP) is None  # writing ours repairs it
    assert measure.config_conflict([], True, GREP) is None
    assert "cannot name" in (measure.config_conflict(problems, True, "") or "")


def test_setting_files_per_key():
    assert measure.setting_files("APT::Periodic::Update-Package-Lists is '0', wanted '1'", GREP) == [
        "/etc/apt/apt.conf.d/60site"]
    assert measure.setting_files("no security origin in Unattended-Upgrade::Origins-Pattern", GREP) == [
        "/etc/apt/apt.conf.d/70site"]
    assert measure.config_problems({}) == [
        "APT::Periodic::Update-Package-Lists is None, wanted '1'",
        "APT::Periodic::Unattended-Upgrade is None, wanted '1'",
        "no security origin in Unattended-Upgrade::Origins-Pattern"]


def _with(profile, **changes):
    settings = profile.measure("patching").model_copy(update=changes)
    measures: Any = profile.measures
    return profile.model_copy(update={"measures": measures.model_copy(update={"patching": settings})})


def test_observe_follows_the_profile():
    profile = Profiles().resolve("terminal")
    commands = measure.observe(profile)
    assert commands[:3] == [measure.NOW, measure.SECURITY_LISTS, measure.PENDING]
    assert measure.KERNELS in commands and measure.APT_CONFIG in commands
    assert "systemctl is-enabled apt-daily-upgrade.timer" in commands
    assert measure.SIGNATURES not in commands
    assert measure.SIGNATURES in measure.observe(_with(profile, anti_malware="clamav"))
    assert measure.KERNELS not in measure.observe(_with(profile, reboot_required_allowed=True))
    assert measure.APT_CONFIG not in measure.observe(_with(profile, unattended_upgrades=False))
    assert len(set(commands)) == len(commands)


# hwprofiles/base.yaml's patching section before the baseline moved into the Settings defaults.
BASE_YAML_PATCHING: dict[str, Any] = {"unattended_upgrades": True, "max_pending_security_updates": 0,
                      "reboot_required_allowed": False, "apply_security_updates": False,
                      "max_lists_age_days": 2, "anti_malware": "not-required"}


def test_settings_defaults_are_the_baseline():
    """The Settings defaults are the values hwprofiles/base.yaml used to name (one place now)."""
    assert measure.Settings() == measure.Settings(**BASE_YAML_PATCHING)
