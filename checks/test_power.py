"""power (7-5): the UPS powering the host, its own shutdown on low battery, redundant power supplies.

Read on the host with NUT's own client (``upsc UPS@SERVER``, ``upsc -c``), systemd and upsmon's
file (password masked), and ``ipmitool sdr type "Power Supply"`` where a BMC exists. Which UPS
powers the host comes from its server room (rooms.yaml) or its profile (hardening.measures.power).
An unreachable UPS or NUT server, or output that is not NUT's ``key: value``, is an error.
"""

from __future__ import annotations

from typing import Any

import pytest

from hardening.measures import power as measure

NO_UPS_KNOWN = ("rooms.yaml beside the inventory (a UPS unit whose `powers` lists this host) or "
                "hwprofiles: measures.power.ups (the UPS units that power the host; hardware.ups is true)")


def _units(profile: Any, evidence: Any) -> list[measure.Ups]:
    settings: measure.Settings = profile.measure("power")
    if settings.ups:
        return list(settings.ups)
    if profile.hardware.ups:
        evidence.not_configured(NO_UPS_KNOWN)
    evidence.not_applicable("the hardware profile has no UPS (hardware.ups: false) and no room lists one "
                            "powering this host")
    return []


def _variables(obs: Any, ups: measure.Ups) -> dict[str, str]:
    out = obs.run(measure.upsc(ups))
    return measure.parse_upsc(out.rc, out.stdout, out.stderr, ups.ref)


@pytest.mark.clause("7-5")
def test_ups_online(obs, profile, evidence):
    """Every UPS powering the host is on line (upsc: ups.status has OL, no OB or LB)"""
    units = _units(profile, evidence)
    seen, problems = {}, {}
    for ups in units:
        variables = _variables(obs, ups)
        seen[ups.ref] = variables.get("ups.status")
        why = measure.online_problem(measure.status_flags(variables, ups.ref))
        if why:
            problems[ups.ref] = why
    evidence.record(expected={u.ref: "OL" for u in units}, observed={"ups.status": seen, "problems": problems})
    assert not problems, "; ".join(f"{ref}: {why}" for ref, why in problems.items())


@pytest.mark.clause("7-5")
def test_ups_battery(obs, profile, evidence):
    """Every UPS powering the host has battery charge and runtime at least the profile's minimum"""
    settings: measure.Settings = profile.measure("power")
    units = _units(profile, evidence)
    seen, problems = {}, []
    for ups in units:
        variables = _variables(obs, ups)
        seen[ups.ref] = {k: variables.get(k) for k in ("battery.charge", "battery.runtime", "ups.status")}
        problems += measure.battery_problems(variables, settings, ups.ref)
    evidence.record(expected={"battery.charge >= %": settings.min_charge,
                              "battery.runtime >= s": settings.min_runtime},
                    observed={"units": seen, "problems": problems})
    assert not problems, "; ".join(problems)


@pytest.mark.clause("7-5")
def test_shutdown_on_low_battery(obs, profile, evidence):
    """upsmon runs, monitors every UPS of the host (logged in to upsd) and has a SHUTDOWNCMD"""
    settings: measure.Settings = profile.measure("power")
    units = _units(profile, evidence)
    conf = obs.run(measure.UPSMON_DIRECTIVES)
    upsmon = measure.parse_upsmon(conf.rc, conf.stdout)
    state = measure.parse_show(obs.run(measure.MONITOR_STATE).stdout, obs.run(measure.MONITOR_STATE).rc)
    own = measure.addresses(obs.run(measure.HOST_ADDRESSES).stdout)
    clients: dict[str, list[str]] = {}
    for ups in units:
        out = obs.run(measure.upsc_clients(ups))
        clients[ups.ref] = measure.parse_clients(out.rc, out.stdout, out.stderr, ups.ref)
    logged_in = {ref: bool(own & set(found)) for ref, found in clients.items()}
    problems = measure.shutdown_problems(settings, upsmon, state, logged_in)
    evidence.record(
        expected={"nut-monitor.service": "active", "MONITOR": [u.ref for u in units], "SHUTDOWNCMD": "set",
                  "logged in to upsd": True},
        observed={"nut-monitor.service": state.get("ActiveState"),
                  "MONITOR": upsmon.monitors if upsmon else None,
                  "SHUTDOWNCMD": upsmon.shutdown if upsmon else None,
                  "upsd clients": clients, "host addresses": sorted(own), "problems": problems})
    assert not problems, "; ".join(problems)


@pytest.mark.clause("7-5")
def test_redundant_psu(obs, profile, evidence):
    """The BMC reports every power supply healthy, and at least two where the profile requires redundancy"""
    required = bool(profile.hardware.redundant_psu)
    devices = obs.run(measure.IPMI_DEVICE).stdout.split()
    if not devices:
        absent = ("no BMC: the host has no IPMI device (/dev/ipmi0, /dev/ipmi/0, /dev/ipmidev/0), so "
                  "ipmitool cannot read its power supplies")
        evidence.record(expected={"redundant power supplies": required}, observed={"bmc": "absent"})
        if not required:
            evidence.not_applicable(absent + "; the profile does not require redundant power supplies")
        raise AssertionError(absent + "; the profile requires redundant power supplies "
                             "(hardware.redundant_psu: true)")
    out = obs.run(measure.IPMI_PSU)
    sensors = measure.parse_sdr(out.rc, out.stdout, out.stderr)
    problems = measure.psu_problems(sensors, required)
    evidence.record(expected={"every supply healthy": True, "at least two": required},
                    observed={"bmc": devices, "sensors": [s.__dict__ for s in sensors], "problems": problems})
    assert not problems, "; ".join(problems)
