"""usb (6-11): recording devices cannot be connected, verified the way the system decides.

Drivers with ``modprobe -n -v`` (what modprobe would do, after every file in /etc/modprobe.d) and
``/proc/modules`` (what is loaded now); USBGuard with ``systemctl`` and ``usbguard list-rules``
(the rules the running daemon enforces, not the file); the devices attached now from sysfs
(``/sys/bus/usb/devices``: present with or without usbguard), each judged by the profile's policy.
Every command is in the host's one observation batch (``measure.observe``); output a check
cannot read is an error (ObservationError), never a pass.
"""

from __future__ import annotations

import pytest

from hardening.evidence.plugin import Evidence
from hardening.measures import usb as measure
from hardening.observe import ObservationError


def _storage_applies(settings: measure.Settings, evidence: Evidence) -> None:
    if settings.storage == "allow":
        evidence.not_applicable("the profile allows USB storage")


def _usbguard_applies(settings: measure.Settings, evidence: Evidence) -> None:
    if not settings.usbguard:
        evidence.not_applicable("the profile does not use USBGuard")


@pytest.mark.clause("6-11")
def test_storage_driver_blocked(obs, profile, evidence):
    """USB storage, Thunderbolt and FireWire drivers cannot be loaded (modprobe -n -v)"""
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


@pytest.mark.clause("6-11")
def test_usbguard_rules(obs, profile, evidence):
    """The rules the USBGuard daemon enforces equal the profile's (usbguard list-rules)"""
    settings: measure.Settings = profile.measure("usb")
    _usbguard_applies(settings, evidence)
    want = measure.usbguard_rules(settings)
    out = obs.run(measure.USBGUARD_LIST_RULES)
    seen = measure.parse_list_rules(out.stdout) if out.rc == 0 else []
    evidence.record(expected=want, observed=seen if out.rc == 0
                    else {"usbguard list-rules": f"exit {out.rc}", "stderr": out.stderr.strip()[:300]})
    assert out.rc == 0, "usbguard list-rules failed (usbguard not installed or the daemon not running)"
    assert seen == want, f"{len(seen)} rules enforced, {len(want)} wanted; first difference: " + next(
        (f"#{i + 1} {a!r} != {b!r}" for i, (a, b) in enumerate(zip(seen, want, strict=False)) if a != b),
        "one list is a prefix of the other")


@pytest.mark.clause("6-11")
def test_usbguard_policy(obs, profile, evidence):
    """USBGuard blocks what no rule allows, for attached and newly plugged devices (daemon config)"""
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
    evidence.record(expected=want, observed=seen)
    assert not absent, f"{measure.USBGUARD_DAEMON_CONF} absent"
    differ = sorted(k for k in want if seen.get(k) != want[k])
    assert not differ, "differs: " + ", ".join(f"{k}={seen.get(k)} (want {want[k]})" for k in differ)


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
