"""patching (6-8): desired state and parsers, no host."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
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


def test_pending_command_is_read_only_and_counts_holds():
    """Simulation as nobody (never writes apt's cache: a stale pkgcache.bin was rewritten by the
    root simulation on lab hosts), holds ignored and no preferences, so held or pinned-away
    security updates show."""
    nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups -- "
    assert measure.pending_command() == (
        nobody + "apt-get -s -o APT::Ignore-Hold=1 -o Dir::Etc::Preferences=/dev/null "
        "-o Dir::Etc::PreferencesParts=/dev/null -o APT::Default-Release= dist-upgrade")
    assert measure.POLICY.endswith(" -- apt-cache policy") and measure.POLICY.startswith(nobody)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("apt-get") is None,
                    reason="needs root, setpriv and apt-get")
def test_simulation_as_nobody_writes_no_cache():
    """The tool's commands against an empty, root-owned cache directory leave it empty; the same
    simulation as root writes pkgcache.bin there (apt's cache files named: this machine's
    docker-clean empties them)."""
    cache = Path(tempfile.mkdtemp(prefix="hardening-apt-cache-"))
    try:
        cache.chmod(0o755)
        (cache / "archives" / "partial").mkdir(parents=True)
        options = [f"Dir::Cache={cache}", "Dir::Cache::pkgcache=pkgcache.bin",
                   "Dir::Cache::srcpkgcache=srcpkgcache.bin"]
        extra = " ".join(f"-o {o}" for o in options)
        for command in (measure.PENDING, measure.POLICY):
            tool, _, rest = command.partition(" apt-")
            done = subprocess.run(f"{tool} apt-{rest.replace(' ', f' {extra} ', 1)}", shell=True,
                                  capture_output=True, text=True, check=True)
            assert "W:" not in done.stderr, done.stderr  # /dev/null is apt's own "no preferences"
        assert not list(cache.glob("*.bin"))
        subprocess.run(f"apt-get -s {extra} dist-upgrade", shell=True, capture_output=True, text=True, check=True)
        assert (cache / "pkgcache.bin").exists()
    finally:
        shutil.rmtree(cache)


# Real output (lab VM, Debian 12 after apt-get update, 2026-12-01): libexpat1 and tzdata held,
# simulated with the tool's command (APT::Ignore-Hold) and without it (how a hold hid them).
HELD_IGNORED = """\
Reading package lists...
Building dependency tree...
Calculating upgrade...
The following NEW packages will be installed:
  linux-image-6.1.0-57-amd64
The following held packages will be changed:
  libexpat1 tzdata
The following packages will be upgraded:
  apt ca-certificates libapt-pkg6.0 libexpat1 liblzma5 libnss3 libpam-modules
  libpam-modules-bin libpam-runtime libpam0g libpcre2-8-0
  libpython3.11-minimal libpython3.11-stdlib libssl3 libzstd1
  linux-image-amd64 openssl perl-base python3.11 python3.11-minimal tzdata
  xz-utils zlib1g
23 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.
Inst perl-base [5.36.0-7+deb12u3] (5.36.0-7+deb12u4 Debian-Security:12/oldstable-security [amd64])
Conf perl-base (5.36.0-7+deb12u4 Debian-Security:12/oldstable-security [amd64])
Inst libexpat1 [2.5.0-1+deb12u2] (2.5.0-1+deb12u5 Debian-Security:12/oldstable-security [amd64])
Inst tzdata [2026b-0+deb12u1] (2026f-0+deb12u1 Debian-Security:12/oldstable-security [all])
Inst linux-image-6.1.0-57-amd64 (6.1.192-3 Debian-Security:12/oldstable-security [amd64])
Conf libexpat1 (2.5.0-1+deb12u5 Debian-Security:12/oldstable-security [amd64])
Conf tzdata (2026f-0+deb12u1 Debian-Security:12/oldstable-security [all])
Conf linux-image-6.1.0-57-amd64 (6.1.192-3 Debian-Security:12/oldstable-security [amd64])
"""
HELD_HIDDEN = """\
Reading package lists...
Building dependency tree...
Calculating upgrade...
The following NEW packages will be installed:
  linux-image-6.1.0-57-amd64
The following packages have been kept back:
  libexpat1 tzdata
The following packages will be upgraded:
  apt ca-certificates libapt-pkg6.0 liblzma5 libnss3 libpam-modules
  libpam-modules-bin libpam-runtime libpam0g libpcre2-8-0
  libpython3.11-minimal libpython3.11-stdlib libssl3 libzstd1
  linux-image-amd64 openssl perl-base python3.11 python3.11-minimal xz-utils
  zlib1g
21 upgraded, 1 newly installed, 0 to remove and 2 not upgraded.
Inst perl-base [5.36.0-7+deb12u3] (5.36.0-7+deb12u4 Debian-Security:12/oldstable-security [amd64])
Conf perl-base (5.36.0-7+deb12u4 Debian-Security:12/oldstable-security [amd64])
Inst linux-image-6.1.0-57-amd64 (6.1.192-3 Debian-Security:12/oldstable-security [amd64])
Conf linux-image-6.1.0-57-amd64 (6.1.192-3 Debian-Security:12/oldstable-security [amd64])
"""


def test_held_packages_with_pending_security_updates_are_counted():
    assert measure.security_updates(HELD_IGNORED) == ["perl-base", "libexpat1", "tzdata", "linux-image-6.1.0-57-amd64"]
    assert measure.held_changes(HELD_IGNORED) == ["libexpat1", "tzdata"]
    assert measure.held_security_updates(HELD_IGNORED) == ["libexpat1", "tzdata"]
    assert measure.kept_back(HELD_IGNORED) == []
    # Without APT::Ignore-Hold the held updates vanish from the Inst lines ("kept back").
    assert "libexpat1" not in measure.security_updates(HELD_HIDDEN)
    assert measure.kept_back(HELD_HIDDEN) == ["libexpat1", "tzdata"]
    assert measure.held_security_updates(HELD_HIDDEN) == []


# Real `apt-cache policy` of the lab VM with apt preferences planted: openssl and libssl3 pinned
# to 50 for Debian-Security, tzdata pinned to its installed version.
POLICY_PINNED = """\
Package files:
 100 /var/lib/dpkg/status
     release a=now
 500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     release v=12,o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian bookworm-updates/main amd64 Packages
     release v=12-updates,o=Debian,a=oldstable-updates,n=bookworm-updates,l=Debian,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian bookworm/main amd64 Packages
     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64
     origin deb.debian.org
Pinned packages:
     tzdata -> 2026b-0+deb12u1 with priority 1001
     libssl3 -> 3.0.22-1~deb12u2 with priority 50
     openssl -> 3.0.22-1~deb12u2 with priority 50
"""


def test_pinned_security_updates():
    """Pins hide updates from apt's own simulation; the tool's simulates without preferences and
    names the pending ones the host's pins keep out."""
    assert measure.pinned_packages(POLICY_PINNED) == ["tzdata", "libssl3", "openssl"]
    assert measure.pinned_security_updates(HELD_IGNORED, POLICY_PINNED) == ["tzdata"]
    assert measure.pinned_security_updates(HELD_IGNORED, POLICY) == []
    # `Pin: release l=Debian-Security` / `Pin-Priority: -1` (seen on the lab VM: the file's priority is -1).
    lowered = POLICY.replace(" 500 http://deb.debian.org/debian-security", "  -1 http://deb.debian.org/debian-security")
    assert [r.priority for r in measure.parse_policy(lowered)] == [-1, 500, 500]
    assert measure.pinned_security_updates(HELD_IGNORED, lowered) == measure.security_updates(HELD_IGNORED)
    # APT::Default-Release=bookworm raises the main archive to 990, the security suite stays at 500.
    main = " {} http://deb.debian.org/debian bookworm/main"
    default_release = POLICY.replace(main.format(500), main.format(990))
    assert measure.pinned_security_updates(HELD_IGNORED, default_release) == measure.security_updates(HELD_IGNORED)


def test_holds_from_dpkg():
    assert measure.parse_holds(seen(measure.HOLDS, "libexpat1\nsudo\n")) == ["libexpat1", "sudo"]
    assert measure.parse_holds(seen(measure.HOLDS, "")) == []
    with pytest.raises(ValueError):
        measure.parse_holds(seen(measure.HOLDS, "", rc=2))


DUMP = """\
APT::Architecture "amd64";
APT::Periodic "";
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "0";
Unattended-Upgrade::Origins-Pattern "";
Unattended-Upgrade::Origins-Pattern:: "origin=Debian,codename=${distro_codename},label=Debian";
Unattended-Upgrade::Origins-Pattern:: "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";
"""
DISTRO = ("Debian", "bookworm")
# Real `apt-cache policy` of a lab VM after apt-get update.
POLICY = """\
Package files:
 100 /var/lib/dpkg/status
     release a=now
 500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     release v=12,o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian bookworm-updates/main amd64 Packages
     release v=12-updates,o=Debian,a=oldstable-updates,n=bookworm-updates,l=Debian,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian bookworm/main amd64 Packages
     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64
     origin deb.debian.org
Pinned packages:
"""
# A lab container: no lists fetched.
POLICY_NO_LISTS = "Package files:\n 100 /var/lib/dpkg/status\n     release a=now\nPinned packages:\n"
SECURITY = measure.Release("Debian", "Debian-Security", "oldstable-security", "bookworm-security", "main",
                           "deb.debian.org")


def test_apt_config_dump():
    config = measure.parse_apt_config(DUMP)
    uu, lists = "APT::Periodic::Unattended-Upgrade", "APT::Periodic::Update-Package-Lists"
    assert measure.periodic_problems(config) == {uu: f"{uu} is '0': never runs, wanted at most daily ('1')"}
    assert measure.periodic_problems({}) == {lists: f"{lists} is None, wanted at most daily ('1')",
                                             uu: f"{uu} is None, wanted at most daily ('1')"}
    assert measure.read_apt_config(seen(measure.APT_CONFIG, DUMP)) == config
    with pytest.raises(ValueError, match="Syntax error"):
        error = "E: Syntax error /etc/apt/apt.conf.d/99x:1: Extra junk at end of file"
        measure.read_apt_config(Observation("o0", measure.APT_CONFIG, 100, "", error, 0.0))


@pytest.mark.parametrize(("value", "ok"), [
    ("1", True), ("always", True), ("12h", True), ("86400s", True), ("1440m", True), ("1d", True),
    ("0", False), ("2", False), ("7d", False), ("25h", False), (None, False), ("", False), ("daily", False),
    ("-1", False),
])
def test_interval_as_apt_systemd_daily_reads_it(value, ok):
    assert (measure.interval_problem("APT::Periodic::Unattended-Upgrade", value) is None) is ok


@pytest.mark.parametrize(("value", "ok"), [(None, True), ("1", True), ("2", True), ("0", False), ("00", False),
                                           ("no", False), ("", False)])
def test_periodic_enable(value, ok):
    assert (measure.enable_problem(value) is None) is ok


def test_policy_releases():
    releases = measure.parse_policy(POLICY)
    assert measure.security_releases(releases, "bookworm") == [SECURITY]
    assert len(releases) == 3
    assert measure.security_releases(measure.parse_policy(POLICY_NO_LISTS), "bookworm") == [
        measure.Release("Debian", "Debian-Security", "", "bookworm-security", "main", "")]
    with pytest.raises(ValueError, match="unreadable"):
        measure.parse_policy("E: Could not open lock file\n")


@pytest.mark.parametrize(("pattern", "matches"), [
    ("origin=Debian,codename=${distro_codename}-security,label=Debian-Security", True),
    ("o=Debian,a=oldstable-security", True),
    ("o=Debian,n=*-security", True),
    ("origin=Debian,codename=${distro_codename},label=Debian-Security", False),  # Debian's default, n=bookworm
    ("origin=Debian,codename=${distro_codename},label=Debian", False),
    ("origin=Debian,codename=${distro_codename}-security,label=NotSecurity", False),
    ("o=Evil-security", False),
    ("site=security.debian.org", False),
    ("o=Debian,c=contrib", False),
    ("", False),
])
def test_origins_as_unattended_upgrade_matches(pattern, matches):
    assert measure.pattern_matches(measure._substitute(pattern, DISTRO), SECURITY) is matches


POINT_RELEASE = "origin=Debian,codename=${distro_codename},label=Debian"
MAIN_ARCHIVE = "o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,site=deb.debian.org"


def test_origin_problems():
    """The effective origins against the profile's: extra (naming the package files it admits),
    missing, the security package files not matched."""
    config = measure.parse_apt_config(DUMP)
    releases = measure.parse_policy(POLICY)
    security = [measure.SECURITY_ORIGIN]
    assert measure.origin_problems(config, releases, DISTRO, [POINT_RELEASE, *security]) == []
    # The package's point-release origin left beside the security one: updates outside change management.
    assert measure.origin_problems(config, releases, DISTRO, security) == [
        "unattended-upgrades origin 'origin=Debian,codename=bookworm,label=Debian' is not in the profile's "
        f"unattended_origins (admits {MAIN_ARCHIVE})"]
    only_security = {measure.ORIGINS_KEY + "::": [measure.SECURITY_ORIGIN]}
    assert measure.origin_problems(only_security, releases, DISTRO, security) == []
    assert measure.origin_problems(only_security, releases, DISTRO, [POINT_RELEASE, *security]) == [
        "the profile's origin 'origin=Debian,codename=bookworm,label=Debian' is not among unattended-upgrades' origins"]
    # Debian's own 50unattended-upgrades without the security line: its Debian-Security line names
    # codename=bookworm, the security suite's is bookworm-security.
    default = measure.parse_apt_config(DUMP.replace("${distro_codename}-security", "${distro_codename}"))
    assert measure.origin_problems(default, releases, DISTRO, security)[-2:] == [
        "the profile's origin 'origin=Debian,codename=bookworm-security,label=Debian-Security' is not among "
        "unattended-upgrades' origins",
        "no unattended-upgrades origin matches the security origin "
        "o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,c=main,site=deb.debian.org"]
    # A profile whose origins match no security package file fails even when the host follows it.
    assert measure.origin_problems(measure.parse_apt_config(DUMP.replace("${distro_codename}-security",
                                                                         "${distro_codename}")),
                                   releases, DISTRO, [POINT_RELEASE, POINT_RELEASE.replace("label=Debian",
                                                                                           "label=Debian-Security")]
                                   ) == ["no unattended-upgrades origin matches the security origin "
                                         "o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,"
                                         "c=main,site=deb.debian.org"]
    # The legacy Allowed-Origins count as origins too (unattended-upgrade turns them into o=,a=).
    legacy = {"Unattended-Upgrade::Allowed-Origins::": ["${distro_id}:oldstable-security"]}
    assert measure.origin_patterns(legacy, DISTRO) == (["o=Debian,a=oldstable-security"], [])
    assert measure.origin_problems(legacy, releases, DISTRO, ["o=${distro_id},a=oldstable-security"]) == []
    assert measure.origin_problems({**legacy, **only_security}, releases, DISTRO, security) == [
        "unattended-upgrades origin 'o=Debian,a=oldstable-security' is not in the profile's unattended_origins "
        "(admits o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,c=main,site=deb.debian.org)"]
    # The codename form Debian's docs once showed does not match (a= is the suite).
    codename = {"Unattended-Upgrade::Allowed-Origins::": ["${distro_id}:${distro_codename}-security"]}
    assert measure.origin_problems(codename, releases, DISTRO, ["o=${distro_id},a=${distro_codename}-security"])
    broken = {"Unattended-Upgrade::Origins-Pattern::": ["o=Debian,${nope}", "x=1"]}
    problems = measure.origin_problems(broken, releases, DISTRO, security)
    assert any("unknown substitution" in p for p in problems) and any("token 'x=1'" in p for p in problems)
    # No origins wanted (unattended upgrades off): none effective is right, any is extra.
    assert measure.origin_problems({}, releases, DISTRO, []) == []
    assert measure.origin_problems(only_security, releases, DISTRO, []) == [
        "unattended-upgrades origin 'origin=Debian,codename=bookworm-security,label=Debian-Security' is not in "
        "the profile's unattended_origins (admits "
        "o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,c=main,site=deb.debian.org)"]
    assert measure.parse_distro(seen(measure.DISTRO, "Debian\nbookworm\n")) == DISTRO
    with pytest.raises(ValueError):
        measure.parse_distro(seen(measure.DISTRO, "", rc=127))


@pytest.mark.parametrize(("blacklist", "whitelist", "problems"), [
    (["linux-", "libc6$"], [], 0),  # Debian's commented examples: some packages only
    ([".*"], [], 1), (["."], [], 1), ([""], [], 1), (["[a-z0-9]"], [], 1), (["(unclosed"], [], 1),
    ([], ["openssl"], 1),
])
def test_package_filters_as_unattended_upgrade_applies_them(blacklist, whitelist, problems):
    config = {measure.BLACKLIST_KEY + "::": blacklist, measure.WHITELIST_KEY + "::": whitelist}
    assert len(measure.package_filter_problems(config)) == problems


def test_package_filters_are_refused_naming_the_files():
    config = {measure.BLACKLIST_KEY + "::": [".*"]}
    problems = measure.config_problems({**measure.parse_apt_config(DUMP), **config}, measure.parse_policy(POLICY),
                                       DISTRO, measure.Settings())
    assert problems[measure.FILTERS_KEY] == [
        "Unattended-Upgrade::Package-Blacklist entry '.*' matches every package: nothing is upgraded"]
    grep = "/etc/apt/apt.conf.d/51local:1:Unattended-Upgrade::Package-Blacklist { \".*\"; };\n"
    switch_off, refusals = measure.repairs({measure.FILTERS_KEY: problems[measure.FILTERS_KEY]}, True, grep)
    assert switch_off == [] and refusals == [
        "patching: Unattended-Upgrade::Package-Blacklist entry '.*' matches every package: nothing is upgraded "
        "(set in one of /etc/apt/apt.conf.d/51local:1; the deploy never edits unattended-upgrades' package filters)"]


# Debian 12's /etc/apt/apt.conf.d/50unattended-upgrades (unattended-upgrades 2.9.1+nmu3, the lab
# image's), its origins block verbatim; and 20auto-upgrades as the package writes it.
DEBIAN_50 = """\
// Unattended-Upgrade::Origins-Pattern controls which packages are
// upgraded.
Unattended-Upgrade::Origins-Pattern {
        // Codename based matching:
//      "origin=Debian,codename=${distro_codename}-updates";
        "origin=Debian,codename=${distro_codename},label=Debian";
        "origin=Debian,codename=${distro_codename},label=Debian-Security";
        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";

        // Archive or Suite based matching:
//      "o=Debian,a=stable";
};

// Python regular expressions, matching packages to exclude from upgrading
Unattended-Upgrade::Package-Blacklist {
    // The following matches all packages starting with linux-
//  "linux-";
};
"""
DEBIAN_20 = 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'


def _apt_config(root: Path) -> tuple[dict[str, list[str]], str]:
    """apt's own configuration reading of ``root/parts`` only (APT_CONFIG names the parts
    directory), and the tool's observation of it (file:number:line, APT_CONFIG_LINES)."""
    main = root / "main.conf"
    main.write_text(f'Dir::Etc::Parts "{root / "parts"}/";\nDir::Etc::main "{root / "none.conf"}";\n')
    env = {"APT_CONFIG": str(main), "PATH": "/usr/bin:/bin"}
    dump = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, check=True, env=env)
    grep = measure.APT_CONFIG_LINES.replace("/etc/apt/apt.conf /etc/apt/apt.conf.d", str(root / "parts"))
    assert grep != measure.APT_CONFIG_LINES
    lines = subprocess.run(grep, shell=True, capture_output=True, text=True).stdout
    return measure.read_apt_config(Observation("o0", measure.APT_CONFIG, 0, dump.stdout, "", 0.0)), lines


def _parts(tmp_path: Path, settings: measure.Settings | None) -> Path:
    """A parts directory as a fresh Debian host has it, with the tool's two files for ``settings``."""
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "50unattended-upgrades").write_text(DEBIAN_50)
    (parts / "20auto-upgrades").write_text(DEBIAN_20)
    if settings is not None:
        (parts / "20auto-upgrades").write_text(measure.auto_upgrades_conf(settings))
        (parts / "52hardening-unattended-upgrades").write_text(measure.origins_conf(settings))
    return parts


@pytest.mark.skipif(shutil.which("apt-config") is None, reason="needs apt-config")
def test_debian_defaults_add_the_point_release(tmp_path: Path):
    """A fresh host: Debian's 50unattended-upgrades allows the point release (and a Debian-Security
    line for codename=bookworm) beside the security origin: not the profile's origins."""
    _parts(tmp_path, None)
    config, _ = _apt_config(tmp_path)
    assert config[measure.ORIGINS_KEY + "::"] == [
        POINT_RELEASE, "origin=Debian,codename=${distro_codename},label=Debian-Security", measure.SECURITY_ORIGIN]
    problems = measure.config_problems(config, measure.parse_policy(POLICY), DISTRO, measure.Settings())
    assert set(problems) == {measure.ORIGINS_KEY}
    assert problems[measure.ORIGINS_KEY][0].startswith(
        "unattended-upgrades origin 'origin=Debian,codename=bookworm,label=Debian' is not in the profile's")


@pytest.mark.skipif(shutil.which("apt-config") is None, reason="needs apt-config")
@pytest.mark.parametrize("settings", [
    measure.Settings(),
    measure.Settings(unattended_origins=[measure.SECURITY_ORIGIN, "o=Debian,a=${distro_codename}-updates"]),
    measure.Settings(unattended_upgrades=False),
    measure.Settings(unattended_origins=[]),
], ids=["security-only", "two-origins", "off", "no-origins"])
def test_written_files_are_effective_for_apt(tmp_path: Path, settings: measure.Settings):
    """apt-config reads the tool's files after Debian's: the effective origins are exactly the
    profile's (the #clear drops the package's), unattended-upgrade runs daily or never as the
    profile says, and the checks find nothing wrong."""
    _parts(tmp_path, settings)
    config, grep = _apt_config(tmp_path)
    assert config.get(measure.ORIGINS_KEY + "::", []) == settings.unattended_origins
    assert config.get(measure.LEGACY_ORIGINS_KEY + "::", []) == []
    assert config[measure.UNATTENDED_KEY] == ["1" if settings.unattended_on else "0"]
    assert measure.config_problems(config, measure.parse_policy(POLICY), DISTRO, settings) == {}
    # Debian's file, read before the tool's, is never a repair's target.
    assert measure.origin_lines(grep, parts=str(tmp_path / "parts")) == ([], [])
    assert "50unattended-upgrades:3:Unattended-Upgrade::Origins-Pattern {" in grep
    # The check's wanted state written as another profile's files is a finding for this one.
    other = measure.Settings(unattended_origins=[POINT_RELEASE])
    assert measure.ORIGINS_KEY in measure.config_problems(config, measure.parse_policy(POLICY), DISTRO, other)


EXTRA = """\
// Backports for the web team
Unattended-Upgrade::Origins-Pattern {
        "o=Debian Backports,a=${distro_codename}-backports,l=Debian Backports";

        // and the stable point release
        "origin=Debian,codename=${distro_codename},label=Debian";
};
Unattended-Upgrade::Mail "root";
Unattended-Upgrade::Allowed-Origins:: "Debian:oldstable-updates";
"""


@pytest.mark.skipif(shutil.which("apt-config") is None, reason="needs apt-config")
def test_a_later_file_overrides_and_the_repair_switches_it_off(tmp_path: Path):
    """The tool's files in place, a later 99zz-local switching periodic runs off and clearing the
    origins, a later 99-extra adding origins (a block over several lines, an Allowed-Origins
    statement), an earlier 10early adding one (cleared by the tool's file: left alone), an
    ignored 99zz.local: apt-config says what apt reads; the repair comments out exactly the
    overriding lines and the whole block (run with sh here), after which apt reads a compliant
    configuration and the foreign files' other settings stay."""
    settings = measure.Settings()
    parts = _parts(tmp_path, settings)
    early = parts / "10early"
    early.write_text('Unattended-Upgrade::Origins-Pattern { "o=*"; };\n')
    extra = parts / "99-extra"
    extra.write_text(EXTRA)
    local = parts / "99zz-local"
    local.write_text('Acquire::http::Proxy "http://proxy:3128";\nAPT::Periodic::Enable "0";\n'
                     'APT::Periodic::Unattended-Upgrade "0";  // too noisy\n'
                     '#clear Unattended-Upgrade::Origins-Pattern;\nAPT::Periodic::Update-Package-Lists "1";\n')
    (parts / "99zz.local").write_text('APT::Periodic::Update-Package-Lists "0";\n')  # apt skips it
    config, grep = _apt_config(tmp_path)
    problems = measure.config_problems(config, measure.parse_policy(POLICY), DISTRO, settings)
    assert set(problems) == {measure.ENABLE, measure.UNATTENDED_KEY, measure.ORIGINS_KEY}
    switch_off, refusals = measure.repairs(problems, True, grep, parts=str(parts))
    assert refusals == []
    assert sorted(map(str, switch_off)) == [f"{extra}:2-7", f"{extra}:9", f"{local}:2", f"{local}:3", f"{local}:4"]
    for line in switch_off:
        subprocess.run(["sh", "-c", measure.disable_command(line)], check=True)
    assert local.read_text().splitlines()[0] == 'Acquire::http::Proxy "http://proxy:3128";'
    assert local.read_text().splitlines()[1] == measure.DISABLED_MARK + 'APT::Periodic::Enable "0";'
    assert [ln.startswith(measure.DISABLED_MARK) for ln in extra.read_text().splitlines()] == [
        False, True, True, True, True, True, True, False, True]
    assert (parts / "50unattended-upgrades").read_text() == DEBIAN_50
    assert early.read_text() == 'Unattended-Upgrade::Origins-Pattern { "o=*"; };\n'
    config, grep = _apt_config(tmp_path)
    assert config["Unattended-Upgrade::Mail"] == ["root"]
    assert measure.config_problems(config, measure.parse_policy(POLICY), DISTRO, settings) == {}
    assert measure.repairs({}, True, grep, parts=str(parts)) == ([], [])
    # A line changed since it was observed is not touched: the command fails, naming it.
    stale = measure.ConfLine(str(local), 5, 'APT::Periodic::Update-Package-Lists "0";')
    done = subprocess.run(["sh", "-c", measure.disable_command(stale)], capture_output=True, text=True)
    assert done.returncode == 1 and "changed since it was observed" in done.stderr


@pytest.mark.skipif(shutil.which("apt-config") is None, reason="needs apt-config")
def test_a_block_changed_since_observed_is_left_whole(tmp_path: Path):
    """A block is switched off as a whole or not at all: a half-commented block would leave a
    stray '};' and apt could read nothing."""
    parts = _parts(tmp_path, measure.Settings())
    extra = parts / "99-extra"
    extra.write_text(EXTRA)
    _, grep = _apt_config(tmp_path)
    [block, _] = measure.origin_lines(grep, parts=str(parts))[0]
    extra.write_text(EXTRA.replace("label=Debian\"", "label=Debian,c=main\""))
    done = subprocess.run(["sh", "-c", measure.disable_command(block)], capture_output=True, text=True)
    assert done.returncode == 1 and f"{extra}:2-7 changed since it was observed" in done.stderr
    assert extra.read_text() == EXTRA.replace("label=Debian\"", "label=Debian,c=main\"")


@pytest.mark.skipif(shutil.which("apt-config") is None, reason="needs apt-config")
def test_unattended_off_a_later_file_turning_it_on_is_switched_off(tmp_path: Path):
    """Profile off: a later file's Unattended-Upgrade "1" is the finding and the repair; the
    same file's "0" would be left alone."""
    settings = measure.Settings(unattended_upgrades=False)
    parts = _parts(tmp_path, settings)
    later = parts / "99later"
    later.write_text('APT::Periodic::Unattended-Upgrade "1";\n')
    config, grep = _apt_config(tmp_path)
    problems = measure.config_problems(config, measure.parse_policy(POLICY), DISTRO, settings)
    assert problems == {measure.UNATTENDED_KEY: [
        "APT::Periodic::Unattended-Upgrade is '1': apt.systemd.daily runs unattended-upgrade, the profile "
        "turns it off (wanted '0')"]}
    switch_off, refusals = measure.repairs(problems, True, grep, parts=str(parts), unattended=False)
    assert [str(x) for x in switch_off] == [f"{later}:1"] and refusals == []
    assert measure.repairs(problems, True, grep, parts=str(parts), unattended=True) == ([], [
        "patching: " + problems[measure.UNATTENDED_KEY][0] + " (set in a file the tool cannot name) "
        "although the tool's files are in place"])


@pytest.mark.parametrize(("text", "kind"), [
    ('#clear Unattended-Upgrade::Origins-Pattern;', "simple"),
    ('#clear Unattended-Upgrade;', "simple"),
    ('Unattended-Upgrade::Origins-Pattern:: "o=x";', "simple"),
    ('Unattended-Upgrade::Origins-Pattern:: "o=x"; // why', "simple"),
    ('Unattended-Upgrade::Allowed-Origins { "Debian:stable"; "Debian:stable-updates"; };', "simple"),
    ('Unattended-Upgrade::Origins-Pattern:: "o=x"; Unattended-Upgrade::Mail "root";', "other"),
    ('Unattended-Upgrade { Origins-Pattern { "o=x"; }; };', "other"),
    ('#clear Unattended-Upgrade::Origins-Pattern::Foo;', "other"),
    ('Unattended-Upgrade::Mail "root";', None),
    ('// Unattended-Upgrade::Origins-Pattern:: "o=x";', None),
])
def test_origin_lines_one_line(text, kind):
    grep = f"/etc/apt/apt.conf.d/99x:1:{text}\n/etc/apt/apt.conf.d/10x:1:{text}\n"
    simple, other = measure.origin_lines(grep)
    expected = [measure.ConfLine("/etc/apt/apt.conf.d/99x", 1, text)]
    assert (simple, other) == {"simple": (expected, []), "other": ([], expected), None: ([], [])}[kind]


def test_origin_lines_blocks():
    nested = ("/etc/apt/apt.conf.d/60site:1:Unattended-Upgrade {\n"
              "/etc/apt/apt.conf.d/60site:2:  Origins-Pattern {\n"
              '/etc/apt/apt.conf.d/60site:3:    "o=x";\n'
              "/etc/apt/apt.conf.d/60site:4:  };\n")
    assert measure.origin_lines(nested) == (
        [], [measure.ConfLine("/etc/apt/apt.conf.d/60site", 2, "  Origins-Pattern {")])
    unclosed = ("/etc/apt/apt.conf:7:Unattended-Upgrade::Origins-Pattern {\n"
                '/etc/apt/apt.conf:8:  "o=x"; /* a\n')
    assert measure.origin_lines(unclosed) == (
        [], [measure.ConfLine("/etc/apt/apt.conf", 7, "Unattended-Upgrade::Origins-Pattern {")])
    block = ('/etc/apt/apt.conf:7:Unattended-Upgrade::Origins-Pattern { "o=a";\n'
             '/etc/apt/apt.conf:8:  "o=x";\n/etc/apt/apt.conf:9:}\n')
    assert measure.origin_lines(block) == (
        [measure.ConfLine("/etc/apt/apt.conf", 7, 'Unattended-Upgrade::Origins-Pattern { "o=a";\n  "o=x";\n}', 9)], [])


@pytest.mark.parametrize(("path", "after"), [
    ("/etc/apt/apt.conf", True), ("/etc/apt/apt.conf.d/99-extra", True), ("/etc/apt/apt.conf.d/52zz", True),
    ("/etc/apt/apt.conf.d/52hardening-unattended-upgrades", False),
    ("/etc/apt/apt.conf.d/50unattended-upgrades", False),
    ("/etc/apt/apt.conf.d/52Hardening", False), ("/etc/apt/apt.conf.d/zz", True), ("/etc/apt/other/99x", False),
])
def test_read_after_ours(path, after):
    assert measure.read_after_ours(path) is after


def test_repairs_refuse_what_they_cannot_switch_off():
    grep = ('/etc/apt/apt.conf.d/60site:1:APT { Periodic { Update-Package-Lists "0"; }; };\n'
            '/etc/apt/apt.conf.d/61site:1:APT { Periodic { Update-Package-Lists "1"; }; };\n'
            '/etc/apt/apt.conf.d/50unattended-upgrades:3://APT::Periodic::Update-Package-Lists "0";\n')
    problems = {"APT::Periodic::Update-Package-Lists": ["APT::Periodic::Update-Package-Lists is '0'"]}
    assert measure.repairs(problems, True, grep) == ([], [
        "patching: APT::Periodic::Update-Package-Lists is '0' (set in /etc/apt/apt.conf.d/60site:1: a nested scope)"])
    assert measure.repairs(problems, False, "") == ([], [])  # writing the tool's file repairs it
    assert measure.repairs(problems, True, "") == ([], [
        "patching: APT::Periodic::Update-Package-Lists is '0' (set in a file the tool cannot name) "
        "although the tool's files are in place"])


@pytest.mark.parametrize(("path", "read"), [
    ("/etc/apt/apt.conf", True), ("/etc/apt/apt.conf.d/99zz-local", True), ("/etc/apt/apt.conf.d/x.conf", True),
    ("/etc/apt/apt.conf.d/99zz.local", False), ("/etc/apt/apt.conf.d/20auto-upgrades.dpkg-old", False),
    ("/etc/apt/apt.conf.d/a b", False), ("/etc/apt/apt.conf.d/sub/x", False),
])
def test_apt_reads(path, read):
    assert measure.apt_reads(path) is read


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


def test_settings_unattended_origins():
    """Default: the security origin only; an origin apt or unattended-upgrade cannot take is a
    profile error; no origins turns unattended upgrades off, and cannot feed apply_security_updates."""
    assert measure.Settings().unattended_origins == [measure.SECURITY_ORIGIN]
    assert measure.Settings().unattended_on
    assert not measure.Settings(unattended_upgrades=False).unattended_on
    assert not measure.Settings(unattended_origins=[]).unattended_on
    assert measure.Settings(unattended_origins=["o=Debian,n=${distro_codename}-updates", "site=mirror.example"])
    for bad, message in [("", "an empty origin"), ('o=Debian";', "double quote"), ("o=x\n", "control character"),
                         ("o=${nope}", "unattended-upgrade would stop"), ("x=1", "unattended-upgrade would stop"),
                         ("Debian:stable", "unattended-upgrade would stop")]:
        with pytest.raises(ValueError, match=message):
            measure.Settings(unattended_origins=[bad])
    with pytest.raises(ValueError, match="listed twice"):
        measure.Settings(unattended_origins=[measure.SECURITY_ORIGIN, measure.SECURITY_ORIGIN])
    with pytest.raises(ValueError, match="apply_security_updates installs with unattended-upgrade"):
        measure.Settings(unattended_origins=[], apply_security_updates=True)
    assert measure.Settings(unattended_upgrades=False, apply_security_updates=True)  # applied in a window


def test_files_follow_the_profile():
    off = measure.Settings(unattended_origins=[])
    assert measure.periodic_values(measure.Settings())[measure.UNATTENDED_KEY] == "1"
    assert measure.periodic_values(off) == {"APT::Periodic::Update-Package-Lists": "1", measure.UNATTENDED_KEY: "0"}
    assert measure.periodic_values(measure.Settings(unattended_upgrades=False))[measure.UNATTENDED_KEY] == "0"
    body = [ln for ln in measure.origins_conf(measure.Settings()).splitlines() if not ln.startswith("//")]
    assert body == ["#clear Unattended-Upgrade::Origins-Pattern;", "#clear Unattended-Upgrade::Allowed-Origins;",
                    "Unattended-Upgrade::Origins-Pattern {", f'    "{measure.SECURITY_ORIGIN}";', "};"]
    assert [ln for ln in measure.origins_conf(off).splitlines() if not ln.startswith("//")] == body[:2]
    assert measure.wanted_origins(measure.Settings(), DISTRO) == [
        "origin=Debian,codename=bookworm-security,label=Debian-Security"]


@pytest.mark.parametrize(("value", "problem"), [
    (None, False), ("0", False), ("0d", False), ("00", False), ("1", True), ("always", True), ("12h", True),
    ("", True), ("daily", True),
])
def test_unattended_off_as_apt_systemd_daily_reads_it(value, problem):
    assert (measure.value_problem(measure.UNATTENDED_KEY, value, unattended=False) is not None) is problem
    # The list update is wanted daily either way.
    assert measure.value_problem("APT::Periodic::Update-Package-Lists", "0", unattended=False)


def _attestation(status: str, clauses: tuple[str, ...] = ("6-8",)) -> dict[str, Any]:
    done = status != "not_evaluated"
    return {"id": "manual-patching", "clauses": list(clauses), "status": status, "by": "山田" if done else None,
            "date": "2026-11-01" if done else None, "until": "2027-02-01" if done else None}


def test_manual_patching_replaces_unattended_upgrades_only_when_attested():
    status, why = measure.manual_patching([])
    assert status == "not_configured" and "declares no attestation item for clause 6-8" in why
    assert measure.manual_patching([_attestation("attested", ("6-16",))])[0] == "not_configured"
    for open_status in ("not_evaluated", "expired", "fail"):
        status, why = measure.manual_patching([_attestation(open_status)])
        assert status == "fail" and f"manual-patching is {open_status}" in why
    status, why = measure.manual_patching([_attestation("attested")])
    assert status == "pass" and "manual-patching by 山田 on 2026-11-01 (until 2027-02-01)" in why


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


UNITS_MASKED = """\
Id=apt-daily.timer
LoadState=masked
ActiveState=inactive
UnitFileState=masked

Id=apt-daily-upgrade.timer
LoadState=loaded
ActiveState=inactive
UnitFileState=enabled

Id=apt-daily.service
LoadState=loaded
ActiveState=inactive
UnitFileState=static

Id=apt-daily-upgrade.service
LoadState=masked
ActiveState=inactive
UnitFileState=masked
"""


NOW = 1796149691
# Real `systemctl show --timestamp=unix` of a lab container's apt-daily.timer (the other units alike).
TIMER_DAILY = """\
TimersCalendar={ OnCalendar=*-*-* 06,18:00:00 ; next_elapse=@1796191200 }
Id=apt-daily.timer
LoadState=loaded
ActiveState=active
FragmentPath=/lib/systemd/system/apt-daily.timer
DropInPaths=
UnitFileState=enabled
"""


def test_units_from_systemctl_show():
    """Real `systemctl show` shape (lab VM): masked timer, enabled-but-stopped timer, masked service."""
    units = measure.parse_units(seen(measure.UNITS, UNITS_MASKED))
    assert measure.unit_problems(units, NOW) == [
        "apt-daily.timer is masked, not enabled", "apt-daily.timer is inactive, not running (active)",
        "apt-daily-upgrade.timer is inactive, not running (active)",
        "apt-daily-upgrade.service is masked: its timer cannot start it"]
    assert measure.unit_commands(units) == [
        "systemctl unmask apt-daily-upgrade.service", "systemctl unmask apt-daily.timer",
        "systemctl enable --now apt-daily.timer", "systemctl start apt-daily-upgrade.timer"]
    good = UNITS_MASKED.replace("masked", "loaded").replace("ActiveState=inactive", "ActiveState=active")
    good = good.replace("UnitFileState=loaded", "UnitFileState=enabled")
    good = good.split("\n\n", 1)[0].replace("Id=apt-daily.timer\n", TIMER_DAILY) + "\n\n" + good.split("\n\n", 1)[1]
    units = measure.parse_units(seen(measure.UNITS, good))
    assert measure.unit_problems(units, NOW) == ["apt-daily-upgrade.timer has no calendar schedule (OnCalendar: none)"]
    with pytest.raises(ValueError, match="missing"):
        measure.parse_units(seen(measure.UNITS, UNITS_MASKED.split("\n\n")[0]))
    with pytest.raises(ValueError, match="unreadable"):
        measure.parse_units(seen(measure.UNITS, "Failed to connect to bus"))


@pytest.mark.parametrize(("calendar", "problem"), [
    ("{ OnCalendar=*-*-* 06,18:00:00 ; next_elapse=@1796191200 }", None),
    ("{ OnCalendar=*-*-* 06:00:00 ; next_elapse=@1796234091 }", None),  # exactly a day
    ("{ OnCalendar=*-01-01 00:00:00 ; next_elapse=@1798761600 }",
     "apt-daily-upgrade.timer next fires in 30.2 days (OnCalendar: *-01-01 00:00:00), wanted at least daily"),
    ("{ OnCalendar=*-01-01 00:00:00 ; next_elapse=@1798761600 } "
     "{ OnCalendar=*-*-* 03:00:00 ; next_elapse=@1796180400 }", None),
    ("", "apt-daily-upgrade.timer has no calendar schedule (OnCalendar: none)"),
])
def test_timer_schedule_at_least_daily(calendar, problem):
    state = {"ActiveState": "active", "TimersCalendar": calendar}
    assert measure.schedule_problem("apt-daily-upgrade.timer", state, NOW) == problem


def test_schedule_repairs_rename_the_overrides_in_etc():
    yearly = {"ActiveState": "active", "TimersCalendar": "{ OnCalendar=*-01-01 00:00:00 ; next_elapse=@1798761600 }",
              "FragmentPath": "/lib/systemd/system/apt-daily-upgrade.timer",
              "DropInPaths": "/etc/systemd/system/apt-daily-upgrade.timer.d/override.conf"}
    daily = {"ActiveState": "active", "TimersCalendar": "{ OnCalendar=*-*-* 06,18:00:00 ; next_elapse=@1796191200 }"}
    commands, refusals = measure.schedule_repairs({"apt-daily.timer": daily, "apt-daily-upgrade.timer": yearly}, NOW)
    assert commands == ["mv /etc/systemd/system/apt-daily-upgrade.timer.d/override.conf "
                        "/etc/systemd/system/apt-daily-upgrade.timer.d/override.conf.disabled-by-hardening",
                        "systemctl daemon-reload", "systemctl restart apt-daily-upgrade.timer"]
    assert refusals == []
    vendor = {**yearly, "DropInPaths": "/usr/lib/systemd/system/apt-daily-upgrade.timer.d/x.conf"}
    commands, refusals = measure.schedule_repairs({"apt-daily.timer": daily, "apt-daily-upgrade.timer": vendor}, NOW)
    assert commands == [] and "set in /usr/lib/systemd/system/apt-daily-upgrade.timer.d/x.conf" in refusals[0]


def _with(profile, **changes):
    settings = profile.measure("patching").model_copy(update=changes)
    measures: Any = profile.measures
    return profile.model_copy(update={"measures": measures.model_copy(update={"patching": settings})})


def test_observe_follows_the_profile():
    profile = Profiles().resolve("terminal")
    commands = measure.observe(profile)
    assert commands[:4] == [measure.NOW, measure.SECURITY_LISTS, measure.PENDING, measure.HOLDS]
    assert measure.KERNELS in commands and measure.APT_CONFIG in commands
    assert measure.UNITS in commands and measure.POLICY in commands and measure.DISTRO in commands
    assert measure.SIGNATURES not in commands
    assert measure.SIGNATURES in measure.observe(_with(profile, anti_malware="clamav"))
    assert measure.KERNELS not in measure.observe(_with(profile, reboot_required_allowed=True))
    # Off is judged too (apt's configuration), the timers are not.
    off = measure.observe(_with(profile, unattended_upgrades=False))
    assert measure.APT_CONFIG in off and measure.APT_CONFIG_LINES in off and measure.UNITS not in off
    assert measure.UNITS not in measure.observe(_with(profile, unattended_origins=[]))
    assert len(set(commands)) == len(commands)


# hwprofiles/base.yaml's patching section before the baseline moved into the Settings defaults.
BASE_YAML_PATCHING: dict[str, Any] = {"unattended_upgrades": True, "max_pending_security_updates": 0,
                      "reboot_required_allowed": False, "apply_security_updates": False,
                      "max_lists_age_days": 2, "anti_malware": "not-required"}


def test_settings_defaults_are_the_baseline():
    """The Settings defaults are the values hwprofiles/base.yaml used to name (one place now)."""
    assert measure.Settings() == measure.Settings(**BASE_YAML_PATCHING)
