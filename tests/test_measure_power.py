"""power (7-5): parsing NUT, upsmon and ipmitool strictly, and the checks' verdicts on given output."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hardening import ROOT
from hardening.measures import power as measure
from hardening.observe import Observation, Observations
from hardening.profiles import Profiles
from hardening.rooms import overlay

UPS = measure.Ups(name="ups-b1", server="nut-b1.example.lg.jp", user="monuser", password_file="/nonexistent")
ONLINE = ("battery.charge: 100\nbattery.runtime: 1800\ndevice.type: ups\ndriver.name: dummy-ups\n"
          "ups.status: OL\n")
ON_BATTERY = "battery.charge: 35\nbattery.runtime: 120\nups.status: OB DISCHRG\n"
SSL = "Init SSL without certificate database\n"
SDR_REDUNDANT = ("PS1 Status       | C8h | ok  | 10.1 | Presence detected\n"
                 "PS2 Status       | C9h | ok  | 10.2 | Presence detected\n"
                 "PS Redundancy    | 77h | ok  | 21.1 | Fully Redundant\n")
SDR_LOST = ("PS1 Status       | C8h | ok  | 10.1 | Presence detected\n"
            "PS2 Status       | C9h | ok  | 10.2 | Presence detected, Power Supply AC lost\n"
            "PS Redundancy    | 77h | ok  | 21.1 | Redundancy Lost\n")


def test_settings_refuse_what_nut_would_not_read() -> None:
    assert measure.Ups(name="ups1", server="10.0.0.5:3493").ref == "ups1@10.0.0.5:3493"
    for bad in ({"name": "ups 1", "server": "a"}, {"name": "u", "server": "a b"}, {"name": "u", "server": "h:x"},
                {"name": "u", "server": "h", "colour": "red"}):
        with pytest.raises(ValidationError):
            measure.Ups.model_validate(bad)
    with pytest.raises(ValidationError):
        measure.Settings(shutdown_command='/sbin/shutdown -h "now"')
    with pytest.raises(ValidationError):
        measure.Settings(min_charge=101)


def test_upsc_is_parsed_strictly() -> None:
    values = measure.parse_upsc(0, ONLINE, SSL, UPS.ref)
    assert values["ups.status"] == "OL" and values["battery.runtime"] == "1800"
    with pytest.raises(ValueError, match="Unknown UPS"):
        measure.parse_upsc(1, "", SSL + "Error: Unknown UPS\n", UPS.ref)
    with pytest.raises(ValueError, match="Connection refused"):
        measure.parse_upsc(1, "", "Error: Connection failure: Connection refused\n", UPS.ref)
    with pytest.raises(ValueError, match="not 'key: value'"):
        measure.parse_upsc(0, ONLINE + "<html>proxy error</html>\n", "", UPS.ref)
    with pytest.raises(ValueError, match="no variables"):
        measure.parse_upsc(0, "\n", "", UPS.ref)


def test_status_and_battery() -> None:
    assert measure.online_problem(["OL"]) is None
    assert measure.online_problem(["OL", "CHRG"]) is None
    assert measure.online_problem(["OB", "DISCHRG"]) == "on battery (OB)"
    assert measure.online_problem(["OB", "LB"]) == "on battery (OB), battery low (LB)"
    assert measure.online_problem(["OL", "LB"]) == "battery low (LB)"
    assert measure.online_problem(["WAIT"]) == "not on line (status WAIT)"
    with pytest.raises(ValueError, match=r"no ups\.status"):
        measure.status_flags({"battery.charge": "100"}, UPS.ref)
    settings = measure.Settings(min_charge=50, min_runtime=300)
    assert measure.battery_problems(measure.parse_upsc(0, ONLINE, "", "u"), settings, "u") == []
    assert measure.battery_problems(measure.parse_upsc(0, ON_BATTERY, "", "u"), settings, "u") == [
        "u: battery.charge 35% below the minimum 50%", "u: battery.runtime 120 s below the minimum 300 s"]
    with pytest.raises(ValueError, match=r"does not report battery\.runtime"):
        measure.battery_problems({"battery.charge": "100", "ups.status": "OL"}, settings, "u")
    with pytest.raises(ValueError, match="not a number"):
        measure.battery_problems({"battery.charge": "full", "battery.runtime": "1"}, settings, "u")


def test_upsmon_directives_mask_the_password(tmp_path: Path) -> None:
    conf = tmp_path / "upsmon.conf"
    conf.write_text("# MONITOR example@host 1 u p secondary\n"
                    "MONITOR ups-b1@nut-b1.example.lg.jp 1 monuser s3cr3t secondary\n"
                    '  MONITOR ups-b2@nut-b1 1 monuser "two words" primary\n'
                    'SHUTDOWNCMD "/sbin/shutdown -h +0"\nPOLLFREQ 5\n')
    command = measure.UPSMON_DIRECTIVES.replace(measure.UPSMON_CONF, str(conf))
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    assert "s3cr3t" not in out.stdout and "two words" not in out.stdout and "words" not in out.stdout
    assert out.stdout.splitlines() == [
        "MONITOR ups-b1@nut-b1.example.lg.jp 1 monuser ******** secondary",
        "MONITOR ups-b2@nut-b1 1 monuser ******** primary", 'SHUTDOWNCMD "/sbin/shutdown -h +0"']
    parsed = measure.parse_upsmon(out.returncode, out.stdout)
    assert parsed == measure.Upsmon(["ups-b1@nut-b1.example.lg.jp", "ups-b2@nut-b1"], "/sbin/shutdown -h +0")
    missing = subprocess.run(["sh", "-c", command.replace(str(conf), str(tmp_path / "none"))],
                             capture_output=True, text=True, check=False)
    assert measure.parse_upsmon(missing.returncode, missing.stdout) is None


def test_shutdown_problems_name_each_gap() -> None:
    settings = measure.Settings(ups=[UPS])
    upsmon = measure.Upsmon([UPS.ref + ":3493"], "/sbin/shutdown -h +0")
    assert measure.shutdown_problems(settings, upsmon, {"ActiveState": "active"}, {UPS.ref: True}) == []
    problems = measure.shutdown_problems(settings, measure.Upsmon([], None), {"ActiveState": "inactive"},
                                         {UPS.ref: False})
    assert problems == ["nut-monitor.service (upsmon) is inactive, not active",
                        f"no MONITOR line for {UPS.ref} in /etc/nut/upsmon.conf",
                        "no SHUTDOWNCMD in /etc/nut/upsmon.conf",
                        f"upsd does not list this host among the clients of {UPS.ref} (upsmon not logged in)"]
    assert measure.shutdown_problems(settings, None, {"ActiveState": "active"}, {})[0] == (
        "/etc/nut/upsmon.conf is missing")
    assert measure.addresses("1: lo    inet 127.0.0.1/8 scope host lo\n2: host0    inet6 fe80::1/64 scope link\n") == {
        "127.0.0.1", "fe80::1"}


def test_upsmon_conf_and_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "nut.pass"
    secret.write_text("s3cr3t\n")
    ups = UPS.model_copy(update={"password_file": str(secret)})
    settings = measure.Settings(ups=[ups])
    text = measure.upsmon_conf(settings, {ups.ref: measure.read_password(ups)})
    assert f"MONITOR {ups.ref} 1 monuser s3cr3t secondary\n" in text
    assert 'SHUTDOWNCMD "/sbin/shutdown -h +0"\n' in text and "MINSUPPLIES 1\n" in text
    with pytest.raises(ValueError, match="cannot read password_file"):
        measure.read_password(UPS)
    secret.write_text("two words\n")
    with pytest.raises(ValueError, match="one password"):
        measure.read_password(ups)
    with pytest.raises(ValueError, match="no password_file"):
        measure.read_password(measure.Ups(name="u", server="h"))


def test_ipmitool_power_supplies() -> None:
    sensors = measure.parse_sdr(0, SDR_REDUNDANT, "")
    assert [s.name for s in sensors] == ["PS1 Status", "PS2 Status", "PS Redundancy"]
    assert measure.psu_problems(sensors, required=True) == []
    lost = measure.psu_problems(measure.parse_sdr(0, SDR_LOST, ""), required=True)
    assert lost == ["PS2 Status: ok Presence detected, Power Supply AC lost", "PS Redundancy: Redundancy Lost",
                    "1 healthy power supply(ies) reported by the BMC; the profile requires redundant ones "
                    "(at least 2)"]
    single = measure.parse_sdr(0, "PS1 Status | C8h | ok | 10.1 | Presence detected\n", "")
    assert measure.psu_problems(single, required=False) == []
    assert measure.psu_problems(single, required=True)[0].startswith("1 healthy power supply")
    with pytest.raises(ValueError, match="not a sensor record"):
        measure.parse_sdr(0, "Power Supply sensors:\n", "")
    with pytest.raises(ValueError, match="ipmitool failed"):
        measure.parse_sdr(1, "", "Could not open device at /dev/ipmi0\n")


def test_observe_follows_the_profile_and_the_room() -> None:
    profiles = Profiles()
    server = profiles.resolve("server", "high")
    assert measure.observe(server) == [measure.IPMI_DEVICE, measure.IPMI_PSU]
    member = overlay(profiles.resolve("server-room", "high"), [UPS])
    commands = measure.observe(member)
    assert f"upsc {UPS.ref}" in commands and f"upsc -c {UPS.ref}" in commands
    assert measure.UPSMON_DIRECTIVES in commands
    assert member.digest() != profiles.resolve("server-room", "high").digest()
    assert overlay(server, []) is server


# -- the checks themselves, on given observations ------------------------------------------------

class Ended(Exception):
    pass


class Evidence:
    def __init__(self) -> None:
        self.recorded: dict[str, Any] = {}

    def record(self, expected: Any, observed: Any) -> None:
        self.recorded = {"expected": expected, "observed": observed}

    def not_applicable(self, reason: str) -> None:
        raise Ended("not_applicable: " + reason)

    def not_configured(self, reason: str) -> None:
        raise Ended("not_configured: " + reason)

    def advisory(self, reason: str) -> None:
        raise Ended("advisory: " + reason)


@pytest.fixture(autouse=True)
def _clause_marker(request: pytest.FixtureRequest) -> None:
    """checks/ marks each check with its clauses (the evidence plugin registers the marker)."""
    request.config.addinivalue_line("markers", "clause(*ids): the guideline clauses a check verifies")


def _checks() -> Any:
    spec = importlib.util.spec_from_file_location("check_power", ROOT / "checks" / "test_power.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_check(name: str, profile: Any, results: dict[str, tuple[int, str, str]]) -> str:
    obs = Observations({c: Observation(f"o{i}", c, rc, out, err, 0.0) for i, (c, (rc, out, err))
                        in enumerate(results.items())})
    try:
        getattr(_checks(), name)(obs, profile, Evidence())
    except Ended as exc:
        return str(exc)
    except AssertionError as exc:
        return f"fail: {exc}"
    except Exception as exc:  # the plugin reports any other exception as an error
        return f"error: {exc}"
    return "pass"


def member(**settings: Any) -> Any:
    profile = overlay(Profiles().resolve("server-room", "high"), [UPS])
    if settings:
        power = profile.measure("power").model_copy(update=settings)
        measures: Any = profile.measures
        profile = profile.model_copy(update={"measures": measures.model_copy(update={"power": power})})
    return profile


def test_online_passes_on_battery_fails_unreachable_is_an_error() -> None:
    profile = member()
    upsc = measure.upsc(UPS)
    assert run_check("test_ups_online", profile, {upsc: (0, ONLINE, SSL)}) == "pass"
    assert run_check("test_ups_battery", profile, {upsc: (0, ONLINE, SSL)}) == "pass"
    assert run_check("test_ups_online", profile, {upsc: (0, ON_BATTERY, SSL)}) == (
        f"fail: {UPS.ref}: on battery (OB)")
    assert run_check("test_ups_battery", profile, {upsc: (0, ON_BATTERY, SSL)}).startswith(
        f"fail: {UPS.ref}: battery.charge 35% below the minimum 50%")
    for name in ("test_ups_online", "test_ups_battery"):
        outcome = run_check(name, profile, {upsc: (1, "", SSL + "Error: Connection failure: Connection refused")})
        assert outcome == f"error: upsc {UPS.ref} failed (exit 1): Error: Connection failure: Connection refused"


def test_no_ups_known_is_not_configured_where_the_hardware_has_one() -> None:
    profiles = Profiles()
    outcome = run_check("test_ups_online", profiles.resolve("server-room", "high"), {})
    assert outcome.startswith("not_configured: rooms.yaml beside the inventory")
    assert run_check("test_shutdown_on_low_battery", profiles.resolve("server", "high"), {}).startswith(
        "not_applicable: the hardware profile has no UPS")


def test_shutdown_check_reads_the_running_monitor() -> None:
    profile = member()
    good = {measure.UPSMON_DIRECTIVES: (0, f"MONITOR {UPS.ref} 1 monuser ******** secondary\n"
                                           'SHUTDOWNCMD "/sbin/shutdown -h +0"\n', ""),
            measure.MONITOR_STATE: (0, f"Id={measure.MONITOR_UNIT}\nActiveState=active\nSubState=running\n"
                                               "MainPID=42\n", ""),
            measure.HOST_ADDRESSES: (0, "2: host0    inet 10.233.1.2/30 brd 10.233.1.3 scope global host0\n", ""),
            measure.upsc_clients(UPS): (0, "10.233.1.2\n", SSL)}
    assert run_check("test_shutdown_on_low_battery", profile, good) == "pass"
    other = {**good, measure.upsc_clients(UPS): (0, "10.233.7.2\n", SSL)}
    assert "upsmon not logged in" in run_check("test_shutdown_on_low_battery", profile, other)
    unreachable = {**good, measure.upsc_clients(UPS): (1, "", "Error: Connection failure: Connection refused")}
    assert run_check("test_shutdown_on_low_battery", profile, unreachable).startswith("error: upsc -c")


def test_power_supplies_absent_fail_only_where_required() -> None:
    none = {measure.IPMI_DEVICE: (2, "", ""), measure.IPMI_PSU: (1, "", "Could not open device at /dev/ipmi0")}
    required = Profiles().resolve("server-room", "high")
    assert run_check("test_redundant_psu", required, none).startswith(
        "fail: no BMC: the host has no IPMI device")
    assert run_check("test_redundant_psu", Profiles().resolve("server", "high"), none).startswith(
        "not_applicable: no BMC")
    bmc = {measure.IPMI_DEVICE: (0, "/dev/ipmi0\n", ""), measure.IPMI_PSU: (0, SDR_REDUNDANT, "")}
    assert run_check("test_redundant_psu", required, bmc) == "pass"
    broken = {**bmc, measure.IPMI_PSU: (0, "garbage\n", "")}
    assert run_check("test_redundant_psu", required, broken).startswith("error: ipmitool printed")
