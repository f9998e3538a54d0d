"""power (7-5): backup power for servers: the UPS on line with enough battery, the host's own
shutdown on low battery, redundant power supplies.

Where a host learns its UPS: from its server room (``rooms.yaml`` beside the inventory,
hardening.rooms: each UPS unit lists the members it powers), else from the profile
(``measures.power.ups``, for a site where every host of the profile hangs on the same units).
The room wins: the plan of a room's member carries the room's units in its resolved profile,
so the check, the deploy and the evidence all see the same list.

What the checks read, on the host itself (the path its own shutdown depends on):

* ``upsc UPS@SERVER``: NUT's own client. Its ``key: value`` lines are parsed strictly; a line
  that is not one, an unknown UPS or an unreachable NUT server is an error, never a pass.
  ``ups.status`` must contain ``OL`` (on line) and neither ``OB`` (on battery) nor ``LB`` (low
  battery); ``battery.charge`` (%) and ``battery.runtime`` (s) at least the profile's
  ``min_charge`` and ``min_runtime`` (a UPS that does not report them cannot be judged: error).
* shutdown on low battery: ``nut-monitor.service`` (upsmon) active; ``/etc/nut/upsmon.conf`` has a
  ``MONITOR`` line for each UPS and a ``SHUTDOWNCMD`` (read with the password masked, so the
  evidence never holds it); and upsd itself lists this host among the clients logged in to the
  UPS (``upsc -c``: the running upsmon, not only its file). A host reaching its NUT server
  through NAT shows another address there: that reads as not logged in (a false fail, never a
  false pass).
* redundant power supplies: ``ipmitool sdr type "Power Supply"`` where the host has an IPMI
  device (a BMC). No device: the hardware is absent, said plainly; a failure where the profile
  requires redundant supplies (``hardware.redundant_psu: true``), else not applicable.

The deploy writes ``/etc/nut/upsmon.conf`` (MONITOR per UPS, SHUTDOWNCMD, root:nut 0640), sets
``MODE=netclient`` in ``/etc/nut/nut.conf`` when NUT is off there (``none``), and enables and
(re)starts ``nut-monitor.service``. The monitor password is read, on the machine running the
deploy, from each unit's ``password_file``: it is never in a profile, a plan or the evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from hardening.measures._base import Measure, Strict
from hardening.measures._systemd import show_units
from hardening.observe import quote

UPSMON_CONF = "/etc/nut/upsmon.conf"
NUT_CONF = "/etc/nut/nut.conf"
MONITOR_UNIT = "nut-monitor.service"
MASK = "********"
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
SERVER_RE = re.compile(r"^(?P<host>[A-Za-z0-9][A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?$")


class Ups(Strict):
    """One UPS unit as NUT names it: ``name@server[:port]``."""

    name: str = Field(pattern=NAME_RE)
    server: str
    user: str = Field(default="upsmon", pattern=NAME_RE)  # NUT's monitor account (upsd.users)
    password_file: str | None = None  # on the machine running `hardening deploy`

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        if not SERVER_RE.match(value):
            raise ValueError(f"expected host or host:port of a NUT server, got {value!r}")
        return value

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.server}"


class Settings(Strict):
    ups: list[Ups] = []
    min_charge: int = Field(default=50, ge=0, le=100)  # percent
    min_runtime: int = Field(default=300, ge=0)  # seconds
    shutdown_command: str = Field(default="/sbin/shutdown -h +0", min_length=1)

    @field_validator("shutdown_command")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if '"' in value or "\n" in value:
            raise ValueError("one line without double quotes (upsmon.conf quotes it)")
        return value


# -- reading NUT ------------------------------------------------------------------------------

VAR_LINE = re.compile(r"^([a-z0-9][a-z0-9_.]*): ?(.*)$")


def upsc(ups: Ups) -> str:
    return quote("upsc %s", ups.ref)


def upsc_clients(ups: Ups) -> str:
    return quote("upsc -c %s", ups.ref)


def parse_upsc(rc: int, stdout: str, stderr: str, ref: str) -> dict[str, str]:
    """``upsc``'s variables; ValueError when upsc failed (unknown UPS, NUT server unreachable) or
    printed a line that is not ``key: value``."""
    if rc != 0:
        why = " ".join(line for line in stderr.splitlines() if "Init SSL" not in line).strip()
        raise ValueError(f"upsc {ref} failed (exit {rc}): {why or 'no message'}")
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        if not line.strip():
            continue
        match = VAR_LINE.match(line)
        if not match:
            raise ValueError(f"upsc {ref} printed a line that is not 'key: value': {line[:120]!r}")
        out[match.group(1)] = match.group(2).strip()
    if not out:
        raise ValueError(f"upsc {ref} printed no variables")
    return out


def status_flags(variables: dict[str, str], ref: str) -> list[str]:
    if "ups.status" not in variables:
        raise ValueError(f"{ref} reports no ups.status")
    return variables["ups.status"].split()


def online_problem(flags: list[str]) -> str | None:
    """Why ``ups.status`` is not on line, or None."""
    if "OB" in flags:
        return "on battery (OB)" + (", battery low (LB)" if "LB" in flags else "")
    if "LB" in flags:
        return "battery low (LB)"
    if "OL" not in flags:
        return f"not on line (status {' '.join(flags) or 'empty'})"
    return None


def number(variables: dict[str, str], key: str, ref: str) -> float:
    if key not in variables:
        raise ValueError(f"{ref} does not report {key}: the battery cannot be judged")
    try:
        return float(variables[key])
    except ValueError:
        raise ValueError(f"{ref} reports {key} = {variables[key]!r}, not a number") from None


def battery_problems(variables: dict[str, str], settings: Settings, ref: str) -> list[str]:
    charge = number(variables, "battery.charge", ref)
    runtime = number(variables, "battery.runtime", ref)
    problems = []
    if charge < settings.min_charge:
        problems.append(f"{ref}: battery.charge {charge:g}% below the minimum {settings.min_charge}%")
    if runtime < settings.min_runtime:
        problems.append(f"{ref}: battery.runtime {runtime:g} s below the minimum {settings.min_runtime} s")
    return problems


def parse_clients(rc: int, stdout: str, stderr: str, ref: str) -> list[str]:
    """The addresses upsd lists as logged in to the UPS (``upsc -c``)."""
    if rc != 0:
        why = " ".join(line for line in stderr.splitlines() if "Init SSL" not in line).strip()
        raise ValueError(f"upsc -c {ref} failed (exit {rc}): {why or 'no message'}")
    return [line.strip() for line in stdout.splitlines() if line.strip()]


# -- upsmon ------------------------------------------------------------------------------------

# upsmon.conf's directives this measure judges, with the MONITOR password masked (sed prints nothing
# else); exit 2 from sed: the file is missing or unreadable.
UPSMON_DIRECTIVES = (
    "sed -n -E "
    "-e 's/^[[:space:]]*(MONITOR[[:space:]]+[^[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+[^[:space:]]+)"
    r"[[:space:]]+.*[[:space:]]+([^[:space:]]+)[[:space:]]*$/\1 " + MASK + r" \2/p' "
    "-e '/^[[:space:]]*(SHUTDOWNCMD|MINSUPPLIES|POWERDOWNFLAG)[[:space:]]/p' " + UPSMON_CONF)
MONITOR_STATE = f"systemctl show -p Id -p ActiveState -p SubState -p MainPID -p UnitFileState {MONITOR_UNIT}"
HOST_ADDRESSES = "ip -o addr show"
NUT_MODE = f"sed -n -E 's/^[[:space:]]*MODE[[:space:]]*=[[:space:]]*\"?([a-z]*)\"?.*/\\1/p' {NUT_CONF}"
UPSMON_PRESENT = "test -x /sbin/upsmon"
# Every upsmon process gets SIGTERM before the restart: when systemd signals only the main PID (the
# root parent, early after a start) and cannot kill the rest of the cgroup (seen in systemd-nspawn
# containers: "Failed to kill control group"), the unprivileged child stays and the stop waits for
# TimeoutStopSec (90 s).
RESTART_MONITOR = f"systemctl kill {MONITOR_UNIT} 2>/dev/null; systemctl restart {MONITOR_UNIT}"
NUT_CONF_CLIENT = "# Managed by hardening (measure power): this host monitors a NUT server.\nMODE=netclient\n"


@dataclass(frozen=True)
class Upsmon:
    monitors: list[str]  # UPS refs of the MONITOR lines
    shutdown: str | None  # SHUTDOWNCMD without its quotes


def parse_upsmon(rc: int, stdout: str) -> Upsmon | None:
    """The MONITOR and SHUTDOWNCMD lines; None when the file is missing."""
    if rc == 2:
        return None
    if rc != 0:
        raise ValueError(f"cannot read {UPSMON_CONF} (sed exit {rc})")
    monitors, shutdown = [], None
    for line in stdout.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "MONITOR" and len(words) >= 2:
            monitors.append(words[1])
        elif words[0] == "SHUTDOWNCMD":
            shutdown = line.split(None, 1)[1].strip().strip('"') if len(words) > 1 else ""
    return Upsmon(monitors, shutdown or None)


def parse_show(text: str, rc: int = 0) -> dict[str, str]:
    """upsmon's unit from :data:`MONITOR_STATE` (strictly: unreadable output is an error)."""
    return show_units(text, rc, (MONITOR_UNIT,), MONITOR_STATE)[MONITOR_UNIT]


def addresses(text: str) -> set[str]:
    """The host's own addresses from ``ip -o addr show`` (without prefix length)."""
    out = set()
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 4 and words[2] in ("inet", "inet6"):
            out.add(words[3].split("/", 1)[0])
    return out


def same_ref(a: str, b: str) -> bool:
    """``ups@host`` and ``ups@host:3493`` name the same UPS."""
    return a.removesuffix(":3493") == b.removesuffix(":3493")


def shutdown_problems(settings: Settings, upsmon: Upsmon | None, state: dict[str, str],
                      logged_in: dict[str, bool]) -> list[str]:
    problems = []
    if state.get("ActiveState") != "active":
        problems.append(f"{MONITOR_UNIT} (upsmon) is {state.get('ActiveState') or 'unknown'}, not active")
    if upsmon is None:
        problems.append(f"{UPSMON_CONF} is missing")
    else:
        for ups in settings.ups:
            if not any(same_ref(ups.ref, m) for m in upsmon.monitors):
                problems.append(f"no MONITOR line for {ups.ref} in {UPSMON_CONF}")
        if not upsmon.shutdown:
            problems.append(f"no SHUTDOWNCMD in {UPSMON_CONF}")
    for ref, ok in logged_in.items():
        if not ok:
            problems.append(f"upsd does not list this host among the clients of {ref} (upsmon not logged in)")
    return problems


def upsmon_conf(settings: Settings, passwords: dict[str, str]) -> str:
    """The text of /etc/nut/upsmon.conf; ``passwords`` by UPS ref."""
    lines = ["# Managed by hardening (measure power, clause 7-5): changes here are overwritten.",
             "# Shut this host down when its UPS runs on battery and reports low battery.", ""]
    for ups in settings.ups:
        lines.append(f"MONITOR {ups.ref} 1 {ups.user} {passwords[ups.ref]} secondary")
    lines += ["MINSUPPLIES 1", f'SHUTDOWNCMD "{settings.shutdown_command}"', "POLLFREQ 5",
              "POLLFREQALERT 5", "HOSTSYNC 15", "DEADTIME 15", "POWERDOWNFLAG /etc/killpower",
              "RBWARNTIME 43200", "NOCOMMWARNTIME 300", "FINALDELAY 5", ""]
    return "\n".join(lines)


def read_password(ups: Ups) -> str:
    """The monitor password from the unit's password_file (on the deploying machine)."""
    if not ups.password_file:
        raise ValueError(f"{ups.ref}: no password_file for NUT user {ups.user}")
    path = Path(ups.password_file).expanduser()
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{ups.ref}: cannot read password_file {path}: {exc.strerror}") from None
    if not text or any(c.isspace() for c in text) or '"' in text:
        raise ValueError(f"{ups.ref}: {path} must hold one password without spaces or quotes")
    return text


# -- power supplies (IPMI) ---------------------------------------------------------------------

IPMI_DEVICE = "ls -d /dev/ipmi0 /dev/ipmi/0 /dev/ipmidev/0 2>/dev/null"
IPMI_PSU = "ipmitool sdr type 'Power Supply'"
PSU_FAULTS = ("failure", "ac lost", "out-of-range", "config error", "predictive")
REDUNDANCY_LOST = ("redundancy lost", "redundancy degraded", "non-redundant", "insufficient")


@dataclass(frozen=True)
class Sensor:
    name: str
    status: str
    reading: str

    @property
    def redundancy(self) -> bool:
        return "redundan" in self.name.lower() or "redundan" in self.reading.lower()

    @property
    def healthy(self) -> bool:
        text = self.reading.lower()
        return self.status == "ok" and not any(word in text for word in PSU_FAULTS)


def parse_sdr(rc: int, stdout: str, stderr: str) -> list[Sensor]:
    """``ipmitool sdr type`` lines ``name | id | status | entity | reading``; ValueError otherwise."""
    if rc != 0:
        raise ValueError(f"ipmitool failed (exit {rc}): {stderr.strip()[:200] or 'no message'}")
    sensors = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 5:
            raise ValueError(f"ipmitool printed a line that is not a sensor record: {line[:120]!r}")
        sensors.append(Sensor(parts[0], parts[2], parts[4]))
    return sensors


def psu_problems(sensors: list[Sensor], required: bool) -> list[str]:
    supplies = [s for s in sensors if not s.redundancy and s.status != "ns"]
    problems = [f"{s.name}: {s.status} {s.reading}".strip() for s in supplies if not s.healthy]
    problems += [f"{s.name}: {s.reading}" for s in sensors if s.redundancy
                 and any(w in s.reading.lower() for w in REDUNDANCY_LOST)]
    healthy = sum(1 for s in supplies if s.healthy)
    if required and healthy < 2:
        problems.append(f"{healthy} healthy power supply(ies) reported by the BMC; the profile requires "
                        "redundant ones (at least 2)")
    return problems


def has_ups(profile: Any) -> bool:
    return bool(profile.measure("power").ups) or bool(profile.hardware.ups)


def observe(profile: Any) -> list[str]:
    """upsc per UPS, upsmon's state and file, the host's addresses; the BMC's power supplies."""
    settings: Settings = profile.measure("power")
    commands = [IPMI_DEVICE, IPMI_PSU]
    if settings.ups:
        commands += [upsc(u) for u in settings.ups] + [upsc_clients(u) for u in settings.ups]
        commands += [UPSMON_DIRECTIVES, MONITOR_STATE, HOST_ADDRESSES, NUT_MODE, UPSMON_PRESENT]
    return commands


MEASURE = Measure(
    name="power",
    title="backup power: UPS on line with enough battery (NUT), shutdown on low battery, redundant PSUs",
    clauses=("7-5",),
    order=45,
    settings=Settings,
    observe=observe,
)
