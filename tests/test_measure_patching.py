"""patching (6-8): desired state and parsers, no host."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from hardening.measures import patching as measure

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
