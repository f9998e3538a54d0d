"""usb (6-11): recording devices cannot be connected, verified the way the system decides.

Drivers with ``modprobe -n -v`` (what modprobe would do, after every file in /etc/modprobe.d) and
``/proc/modules`` (what is loaded now); SD/MMC and optical devices with ``lsblk``; USBGuard with
``systemctl``, ``usbguard list-rules`` (the rules the running daemon enforces, judged against the
profile, against the rules file as ``usbguard-rule-parser`` reads it, and for what they let
through) and ``usbguard get-parameter`` (the running daemon's policy, against its file); the
devices attached now from sysfs (``/sys/bus/usb/devices``: present with or without usbguard), each
judged by the profile's policy.
Every command is in the host's one observation batch (``measure.observe``); output a check
cannot read is an error (ObservationError), never a pass.
"""

from __future__ import annotations

import pytest

from hardening.evidence.plugin import Evidence
from hardening.measures import usb as measure
from hardening.observe import ObservationError, json_output


def _storage_applies(settings: measure.Settings, evidence: Evidence) -> None:
    if settings.storage == "allow":
        evidence.not_applicable("the profile allows USB storage")


def _usbguard_applies(settings: measure.Settings, evidence: Evidence) -> None:
    if not settings.usbguard:
        evidence.not_applicable("the profile does not use USBGuard")


@pytest.mark.clause("6-11", "7-1")  # 7-1: media brought into a server room cannot be used
def test_storage_driver_blocked(obs, profile, evidence):
    """USB storage, Thunderbolt, FireWire, SD/MMC and optical drivers cannot be loaded (modprobe -n -v)"""
    settings: measure.Settings = profile.measure("usb")
    want = measure.blocked_modules(settings)
    if not want:
        evidence.not_applicable("the profile blocks no driver (storage allowed, Thunderbolt/FireWire allowed)")
    installs = obs.run(measure.modprobe_installs(want))
    seen = {m: measure.block_seen(m, obs.run(measure.modprobe_dry_run(m)), installs) for m in want}
    evidence.record(expected={m: "install /bin/false" for m in want}, observed=seen)
    missing = [m for m in want if not measure.module_blocked(seen[m])]
    assert not missing, f"loadable: {', '.join(missing)}"


@pytest.mark.clause("6-11")
def test_storage_driver_not_loaded(obs, profile, evidence):
    """usb-storage and uas are not loaded now (/proc/modules)"""
    settings: measure.Settings = profile.measure("usb")
    _storage_applies(settings, evidence)
    want = list(measure.STORAGE_MODULES)
    out = obs.run(measure.PROC_MODULES)
    loaded = measure.loaded_modules(out.stdout, want) if out.rc == 0 else []
    evidence.record(expected={"loaded": []},
                    observed={"loaded": loaded} if out.rc == 0 else {"/proc/modules": f"unreadable (exit {out.rc})"})
    assert out.rc == 0, "cannot read /proc/modules"
    assert not loaded, f"loaded now: {', '.join(loaded)} (a device was attached before the block, or it is in use)"


def _loaded(obs, evidence: Evidence, want: list[str]) -> list[str]:
    out = obs.run(measure.PROC_MODULES)
    if out.rc != 0:
        raise ObservationError(f"cannot read /proc/modules (exit {out.rc}): {out.stderr.strip()[:200]}")
    return measure.loaded_modules(out.stdout, want)


@pytest.mark.clause("6-11")
def test_thunderbolt_firewire_not_loaded(obs, profile, evidence):
    """No Thunderbolt or FireWire driver is loaded now (/proc/modules), not only blocked for later"""
    settings: measure.Settings = profile.measure("usb")
    if not settings.block_thunderbolt_firewire:
        evidence.not_applicable("the profile allows Thunderbolt and FireWire")
    loaded = _loaded(obs, evidence, list(measure.THUNDERBOLT_FIREWIRE_MODULES))
    evidence.record(expected={"loaded": []}, observed={"loaded": loaded})
    assert not loaded, f"loaded now: {', '.join(loaded)} (loaded before the block, or by hand with --ignore-install)"


@pytest.mark.clause("6-11", "7-1")  # 7-1: media brought into a server room cannot be used
def test_removable_media_absent(obs, profile, evidence):
    """No SD/MMC or optical driver is loaded and no such block device exists (/proc/modules, lsblk)"""
    settings: measure.Settings = profile.measure("usb")
    if settings.removable_media == "allow":
        evidence.not_applicable("the profile allows SD/MMC cards and optical discs (removable_media: allow)")
    loaded = _loaded(obs, evidence, list(measure.REMOVABLE_MEDIA_MODULES))
    out = obs.run(measure.LSBLK_MEDIA)
    try:
        devices = measure.removable_media(json_output(out.rc, out.stdout, "lsblk"))
    except ValueError as exc:
        raise ObservationError(f"{exc}: {out.stderr.strip()[:200]}") from None
    evidence.record(expected={"loaded": [], "devices": []}, observed={"loaded": loaded, "devices": devices})
    assert not loaded and not devices, (
        f"loaded now: {', '.join(loaded) or 'none'}; SD/MMC or optical devices: {', '.join(devices) or 'none'}")


@pytest.mark.clause("6-11")
def test_usbguard_service(obs, profile, evidence):
    """USBGuard runs and starts at boot (systemctl is-enabled / is-active usbguard)"""
    settings: measure.Settings = profile.measure("usb")
    _usbguard_applies(settings, evidence)
    enabled = obs.run(measure.USBGUARD_ENABLED)
    active = obs.run(measure.USBGUARD_ACTIVE)
    seen = {"enabled": enabled.stdout.strip() or enabled.stderr.strip() or f"exit {enabled.rc}",
            "active": active.stdout.strip() or active.stderr.strip() or f"exit {active.rc}"}
    evidence.record(expected={"enabled": "enabled", "active": "active"}, observed=seen)
    assert seen == {"enabled": "enabled", "active": "active"}, f"usbguard.service is {seen}"


def _loaded_rules(obs) -> list[str]:
    out = obs.run(measure.USBGUARD_LIST_RULES)
    assert out.rc == 0, (f"usbguard list-rules failed (exit {out.rc}: {out.stderr.strip()[:200]}): the daemon "
                         "is not running or not answering, its rules cannot be judged")
    return measure.parse_list_rules(out.stdout)


@pytest.mark.clause("6-11")
def test_usbguard_rules(obs, profile, evidence):
    """The rules the USBGuard daemon enforces equal the profile's (usbguard list-rules), and so
    does its rules file as USBGuard reads it (usbguard-rule-parser); a difference names the stale one"""
    settings: measure.Settings = profile.measure("usb")
    _usbguard_applies(settings, evidence)
    want = measure.usbguard_rules(settings)
    out = obs.run(measure.USBGUARD_LIST_RULES)
    parsed = obs.run(measure.RULES_AS_PARSED)
    seen = measure.parse_list_rules(out.stdout) if out.rc == 0 else []
    in_file = measure.parse_rule_parser(parsed.stdout) if parsed.rc == 0 else []
    evidence.record(expected={"daemon": want, "file": want}, observed={
        "daemon": seen if out.rc == 0 else {"usbguard list-rules": f"exit {out.rc}",
                                            "stderr": out.stderr.strip()[:300]},
        "file": in_file if parsed.rc == 0 else {"usbguard-rule-parser": f"exit {parsed.rc}",
                                                "stderr": parsed.stderr.strip()[:300]}})
    assert out.rc == 0, "usbguard list-rules failed (usbguard not installed or the daemon not running)"
    assert seen == want, f"{len(seen)} rules enforced, {len(want)} wanted; first difference: " + next(
        (f"#{i + 1} {a!r} != {b!r}" for i, (a, b) in enumerate(zip(seen, want, strict=False)) if a != b),
        "one list is a prefix of the other")
    assert parsed.rc == 0, f"{measure.USBGUARD_RULES} unreadable for usbguard-rule-parser (exit {parsed.rc})"
    stale = measure.stale_rules(in_file, seen, want)
    assert not stale, stale


@pytest.mark.clause("6-11")
def test_usbguard_rules_safe(obs, profile, evidence):
    """No rule the daemon enforces lets through a device that carries a storage, still-image,
    vendor-specific or other class the profile does not allow, even next to a keyboard interface
    (judged in first-match order with USBGuard's set operators: one-of / all-of are not an allow-list)"""
    settings: measure.Settings = profile.measure("usb")
    _usbguard_applies(settings, evidence)
    rules = [measure.parse_rule(r) for r in _loaded_rules(obs)]
    wanted_by_id = {r for r in measure.usbguard_rules(settings) if r.startswith("allow id ")}
    unsafe = measure.unsafe_allow_rules(rules, measure.blocked_classes(settings))
    by_profile = {r: d for r, d in unsafe.items() if r in wanted_by_id}
    unsafe = {r: d for r, d in unsafe.items() if r not in wanted_by_id}
    evidence.record(expected={"unsafe allow rules": {}},
                    observed={"unsafe allow rules": unsafe, "allowed by id in the profile": by_profile})
    assert not unsafe, "; ".join(f"{r!r} allows a device with {d}" for r, d in unsafe.items())


@pytest.mark.clause("6-11", "7-1")  # 7-1: media brought into a server room cannot be used
def test_usbguard_policy(obs, profile, evidence):
    """USBGuard blocks what no rule allows, for attached and newly plugged devices: the running
    daemon's parameters (usbguard get-parameter) and its configuration file; a difference names the stale one"""
    settings: measure.Settings = profile.measure("usb")
    _usbguard_applies(settings, evidence)
    keys = ("ImplicitPolicyTarget", "PresentDevicePolicy", "InsertedDevicePolicy", "RuleFile",
            "RuleFolder", "IPCAllowedUsers", "IPCAllowedGroups")
    want = measure.parse_daemon_conf(measure.usbguard_daemon_conf(settings), keys)
    conf = obs.run(measure.DAEMON_CONF_READ)
    absent = conf.rc != 0 and "No such file or directory" in conf.stderr
    if conf.rc != 0 and not absent:
        raise ObservationError(f"{measure.USBGUARD_DAEMON_CONF} unreadable (exit {conf.rc}): "
                               f"{conf.stderr.strip()[:200]}")
    seen = {"file": "absent"} if absent else measure.parse_daemon_conf(conf.stdout, keys)
    running = {p: measure.running_value(obs.run(measure.get_parameter(p))) for p in measure.RUNNING_PARAMETERS}
    evidence.record(expected={"file": want, "running": {p: want[p] for p in running}},
                    observed={"file": seen, "running": running})
    assert not absent, f"{measure.USBGUARD_DAEMON_CONF} absent"
    stale = [m for p in running if (m := measure.stale_parameter(p, running[p], seen[p], want[p]))]
    differ = sorted(k for k in want if seen.get(k) != want[k] and k not in running)
    assert not stale and not differ, "; ".join(
        stale + [f"{k}={seen.get(k)} in the file (want {want[k]})" for k in differ])


@pytest.mark.clause("6-11")
def test_attached_devices(obs, profile, evidence):
    """No USB device the profile does not allow is attached and authorized now (sysfs)"""
    settings: measure.Settings = profile.measure("usb")
    if settings.storage == "allow" and not settings.usbguard:
        evidence.not_applicable("the profile allows USB storage and uses no USBGuard")
    out = obs.run(measure.SYSFS_LISTING_COMMAND)
    if out.rc != 0:
        raise ObservationError(f"USB device listing failed (exit {out.rc}): {out.stderr.strip()[:200]}")
    devices = measure.parse_sysfs_listing(out.stdout)
    seen = [{"device": d.describe(), "authorized": d.authorized,
             "policy": "{} ({})".format(*measure.verdict(d, settings))} for d in devices]
    bad = measure.violations(devices, settings)
    evidence.record(expected={"authorized devices the profile does not allow": []},
                    observed={"attached": seen, "violations": [d.describe() for d in bad]})
    assert not bad, "attached and authorized against the profile: " + "; ".join(d.describe() for d in bad)
