"""patching (6-8): automatic security updates, what is still pending, reboot, anti-malware.

Read-only: nothing here refreshes the package lists (``apt-get update`` would change the host).
The pending count comes from the lists the host already has (``apt-get -s`` with no lock), so
``package_lists_fresh`` reports how old those lists are and fails when they are too old or the
security suite was never fetched; held packages are counted (apt simulates with holds ignored).
APT settings are read as apt evaluates them (``apt-config dump``: every apt.conf.d file, later
files winning) and judged as apt.systemd.daily and unattended-upgrade use them, against the
profile (unattended upgrades on or off, exactly its origins); timers and
services with ``systemctl show`` (running state). apt never writes its cache here. Every
command is in the measure's observation batch (``hardening.measures.patching.observe``); the
host's clock is read once, in that batch.
"""

from __future__ import annotations

import datetime as dt

import pytest

from hardening.measures import patching as measure
from hardening.observe import Observations


def _now(obs: Observations) -> int:
    return measure.now_epoch(obs.run(measure.NOW))


def _installed(obs: Observations, package: str) -> bool:
    return measure.installed(obs.run(measure.package_status(package)))


def _security_lists(obs: Observations) -> str:
    """`<mtime> <path>` of every Release file of a security suite the host has fetched."""
    return obs.run(measure.SECURITY_LISTS).stdout


@pytest.mark.clause("6-8")
def test_unattended_upgrades_enabled(obs, profile, plan, evidence):
    """unattended-upgrades is installed and apt.systemd.daily runs it, and the list update, at
    least daily (APT::Periodic as apt-config dump gives it: Enable not "0", intervals <= 1 day);
    when the profile turns unattended upgrades off: apt.systemd.daily runs none (Unattended-Upgrade
    "0"), the lists are still updated daily, and the manual patch process that replaces them
    is attested (the profile's attestation item for 6-8; none declared: not configured)"""
    settings: measure.Settings = profile.measure("patching")
    on = settings.unattended_on
    installed = _installed(obs, "unattended-upgrades")
    config = measure.read_apt_config(obs.run(measure.APT_CONFIG))
    problems = list(measure.periodic_problems(config, on).values())
    if on and not installed:
        problems.insert(0, "unattended-upgrades is not installed")
    status, why = ("", "") if on else measure.manual_patching(plan.attestations)
    keys = (measure.ENABLE, *measure.INTERVALS)
    evidence.record(
        expected={"unattended upgrades (profile)": "on" if on else "off",
                  "installed": True if on else "any", measure.ENABLE: "absent or not 0",
                  "APT::Periodic::Update-Package-Lists": "at most daily ('1', 'always', <= 24h)",
                  measure.UNATTENDED_KEY: "at most daily ('1', 'always', <= 24h)" if on else "'0' (never)",
                  **({} if on else {"manual patch process (6-8)": "attested"})},
        observed={"installed": installed, **{k: config.get(k, [None])[-1] for k in keys}, "problems": problems,
                  **({} if on else {"manual patch process (6-8)": why})})
    assert not problems, "; ".join(problems)
    if status == "not_configured":
        evidence.not_configured(why)
    assert status != "fail", why


@pytest.mark.clause("6-8")
def test_unattended_upgrades_security_origin(obs, profile, evidence):
    """unattended-upgrades' origins are exactly the profile's and cover the security suite
    (unattended_origins against Origins-Pattern and the legacy Allowed-Origins as apt-config
    dump gives them and unattended-upgrade substitutes them: Debian's default point-release
    origin is an extra; every Debian security package file apt knows is matched when the
    profile names any origin), and its package filters (Package-Blacklist, Package-Whitelist)
    do not keep every package out"""
    # The id (security_origin) predates the exact comparison with the profile; ids stay stable.
    settings: measure.Settings = profile.measure("patching")
    config = measure.read_apt_config(obs.run(measure.APT_CONFIG))
    distro = measure.parse_distro(obs.run(measure.DISTRO))
    releases = measure.parse_policy(obs.run(measure.POLICY).stdout)
    patterns, _ = measure.origin_patterns(config, distro)
    problems = measure.origin_problems(config, releases, distro, settings.unattended_origins)
    if settings.unattended_origins:
        problems += measure.package_filter_problems(config)
    security = [str(r) for r in measure.security_releases(releases, distro[1])]
    wanted = measure.wanted_origins(settings, distro)
    evidence.record(expected={"origins (substituted)": wanted,
                              "security origins matched": security if wanted else "none (no origins)"},
                    observed={"origins (substituted)": patterns, "security package files": security,
                              "from apt's lists": any(r.label == "Debian-Security" for r in releases),
                              "package blacklist": config.get(measure.BLACKLIST_KEY + "::", []),
                              "package whitelist": config.get(measure.WHITELIST_KEY + "::", []),
                              "problems": problems})
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-8")
def test_update_timers_enabled(obs, profile, evidence):
    """apt-daily.timer and apt-daily-upgrade.timer are enabled, running and fire at least daily
    (systemd's next elapse), their services not masked"""
    settings: measure.Settings = profile.measure("patching")
    if not settings.unattended_on:
        evidence.not_applicable("the profile turns unattended upgrades off (test_unattended_upgrades_enabled "
                                "judges the manual patch process)")
    units = measure.parse_units(obs.run(measure.UNITS))
    problems = measure.unit_problems(units, _now(obs))
    evidence.record(expected={**{t: {"UnitFileState": "enabled", "ActiveState": "active"} for t in measure.TIMERS},
                              **{s: {"LoadState": "loaded"} for s in measure.SERVICES}},
                    observed={**{u: {k: v for k, v in state.items() if k not in ("Id", "FragmentPath")}
                                 for u, state in units.items()},
                              "problems": problems})
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-8")
def test_package_lists_fresh(obs, profile, evidence):
    """The security suite's package lists were fetched recently (apt-daily keeps them fresh)"""
    settings: measure.Settings = profile.measure("patching")
    lists = _security_lists(obs)
    age = measure.lists_age_days(lists, _now(obs))
    evidence.record(expected={"security lists age (days)": f"<= {settings.max_lists_age_days}"},
                    observed={"security lists age (days)": age,
                              "files": [ln.split(maxsplit=1)[-1] for ln in lists.splitlines()]})
    assert age is not None, "no package lists of a security suite: apt has never fetched security updates"
    assert age <= settings.max_lists_age_days, f"security package lists are {age} days old"


@pytest.mark.clause("6-8")
def test_pending_security_updates(obs, profile, evidence):
    """No more pending security updates than the profile allows (the host's own lists; held packages count)"""
    settings: measure.Settings = profile.measure("patching")
    lists = _security_lists(obs)
    if not lists.strip():
        evidence.record(expected={"pending security updates": f"<= {settings.max_pending_security_updates}"},
                        observed={"pending security updates": "unknown: no security package lists"})
        raise AssertionError("no package lists of a security suite: pending security updates cannot be counted")
    out = obs.run(measure.PENDING)
    pending = measure.security_updates(out.stdout)
    held = measure.held_security_updates(out.stdout)
    holds = measure.parse_holds(obs.run(measure.HOLDS))
    pinned = measure.pinned_security_updates(out.stdout, obs.run(measure.POLICY).stdout)
    evidence.record(expected={"pending security updates": f"<= {settings.max_pending_security_updates}"},
                    observed={"pending security updates": len(pending), "packages": pending,
                              "held with a pending security update": held,
                              "held, nothing pending (not a finding)": [p for p in holds if p not in held],
                              "pinned away by apt preferences": pinned,
                              "kept back (not installable)": measure.kept_back(out.stdout),
                              "lists age (days)": measure.lists_age_days(lists, _now(obs))})
    assert out.rc == 0, f"apt-get -s failed: {out.stderr.strip()[:300]}"
    if " upgraded, " not in out.stdout:
        raise ValueError(f"apt-get -s: unreadable output {out.stdout[:600]!r}")
    assert len(pending) <= settings.max_pending_security_updates, \
        f"{len(pending)} pending security updates: {', '.join(pending[:20])}" + \
        (f" (held, never installed by unattended-upgrades: {', '.join(held)})" if held else "") + \
        (f" (pinned away by apt preferences: {', '.join(pinned)})" if pinned else "")


@pytest.mark.clause("6-8")
def test_no_reboot_pending(obs, profile, evidence):
    """No reboot is pending (reboot-required flag, or a newer kernel installed than running)"""
    settings: measure.Settings = profile.measure("patching")
    if settings.reboot_required_allowed:
        evidence.not_applicable("the profile allows a pending reboot")
    flagged = obs.run(measure.REBOOT_FLAG).rc == 0
    packages = obs.run(measure.REBOOT_PACKAGES).stdout.split() if flagged else []
    release = obs.run(measure.KERNEL_RELEASE).stdout.strip()
    version = obs.run(measure.KERNEL_VERSION).stdout.strip()
    listing = obs.run(measure.KERNELS)
    installed = {f[0].removeprefix("linux-image-"): f[1] for f in (ln.split() for ln in listing.stdout.splitlines())
                 if len(f) >= 3 and f[2] == "ii"}
    kernel = measure.kernel_reboot_pending(release, version, installed)
    evidence.record(expected={"reboot-required": False, "kernel": "running = newest installed"},
                    observed={"reboot-required": flagged, "packages": packages, "running": release,
                              "running build": version, "installed kernels": installed,
                              "kernel": kernel or ("up to date" if installed
                                                   else "no linux-image package: not compared")})
    assert not flagged, f"{measure.REBOOT_REQUIRED} exists (packages: {packages})"
    assert kernel is None, f"reboot pending for the kernel: {kernel}"


@pytest.mark.clause("6-8")
def test_anti_malware(obs, profile, evidence):
    """ClamAV is installed, freshclam runs, and its signatures are fresh"""
    settings: measure.Settings = profile.measure("patching")
    if settings.anti_malware == "not-required":
        evidence.not_applicable("the profile does not require anti-malware (Linux server: see the measure)")
    installed = {p: _installed(obs, p) for p in measure.CLAMAV_PACKAGES}
    active = obs.run(measure.FRESHCLAM_ACTIVE).stdout.strip()
    info = obs.run(measure.SIGNATURES)
    now = dt.datetime.fromtimestamp(_now(obs), dt.UTC)
    age = measure.signature_age_days(info.stdout, now) if info.rc == 0 else None
    evidence.record(expected={"installed": dict.fromkeys(measure.CLAMAV_PACKAGES, True), "freshclam": "active",
                              "signatures age (days)": f"<= {settings.malware_signatures_max_age_days}"},
                    observed={"installed": installed, "freshclam": active, "signatures age (days)": age})
    assert all(installed.values()), f"not installed: {[p for p, ok in installed.items() if not ok]}"
    assert active == "active", f"{measure.FRESHCLAM_SERVICE} is {active or 'absent'}"
    assert age is not None, "no ClamAV daily database (sigtool --info found none)"
    assert age <= settings.malware_signatures_max_age_days, f"signatures are {age} days old"
