"""usblog (6-11): a log of every USB connection and of USBGuard's decision, as evidence that the
USB block (measure usb) works in daily use.

Desired state, the same for every profile (the evidence window is the only setting):

* The monitor program :data:`PROGRAM` is this package's ``hardening/measures/_usblog_monitor.py``
  byte for byte (:func:`program_text`): pyudev's netlink monitor, one journal entry per connected
  USB device (time, port, vendor:product, name, serial, interface classes from the raw
  descriptors, USBGuard's decision read from ``usbguard list-devices`` and the kernel's
  ``authorized``; ``no policy`` when USBGuard does not answer), ``SYSLOG_IDENTIFIER=``
  :data:`IDENTIFIER`, warning priority for blocked devices. It runs with Debian's
  ``/usr/bin/python3 -I`` and ``python3-pyudev``.
* :data:`UNIT` (:func:`unit_text`, in ``/usr/local/lib/systemd/system`` so that a mask or an
  override in /etc is visible as one) enabled and running, loaded as written (no drop-in, no
  other unit file, no pending daemon-reload), started after the program file last changed (the
  running process runs this version).

The checks read systemd's own view (``systemctl show``), the program's sha256 and mtime, and the
journal (``journalctl -o json`` for the identifier, over the last ``days``): the evidence lists the
blocked attempts; a connection of a device the usb profile blocks that was not blocked (allowed, or
no policy while the kernel authorized it) fails. Hosts without a USB bus (``/sys/bus/usb`` absent:
the lab's containers) are not applicable.

Examples::

    >>> [line for line in unit_text().splitlines() if line.startswith("ExecStart=")]
    ['ExecStart=/usr/bin/python3 -I /usr/local/lib/hardening/usblog_monitor.py --wait 5']
    >>> parse_exec_start("{ path=/usr/bin/python3 ; argv[]=/usr/bin/python3 -I /x.py ; ignore_errors=no }")
    ['/usr/bin/python3', '-I', '/x.py']
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from hardening.measures import _usblog_monitor as monitor
from hardening.measures._base import Measure, Strict
from hardening.measures._systemd import show_units
from hardening.measures.usb import Settings as UsbSettings
from hardening.measures.usb import UsbDevice, verdict
from hardening.observe import ObservationError, quote

IDENTIFIER = monitor.IDENTIFIER
UNIT = "hardening-usblog.service"
UNIT_DIR = "/usr/local/lib/systemd/system"
UNIT_PATH = f"{UNIT_DIR}/{UNIT}"
PROGRAM = "/usr/local/lib/hardening/usblog_monitor.py"
PYTHON = "/usr/bin/python3"
WAIT_S = 5
ARGV = [PYTHON, "-I", PROGRAM, "--wait", str(WAIT_S)]
PACKAGE = "python3-pyudev"
# At most this many journal entries are read (the newest), and this many blocked attempts listed.
READ_LIMIT = 5000
LISTED = 100


class Settings(Strict):
    # How many days of connections the evidence lists (the journal must keep them: Debian 12's is
    # persistent in /var/log/journal).
    days: int = Field(default=7, ge=1, le=366)


def program_text() -> str:
    """The monitor as deployed: the package's own module file."""
    return Path(monitor.__file__).read_text(encoding="utf-8")


def program_sha256() -> str:
    return hashlib.sha256(program_text().encode("utf-8")).hexdigest()


def unit_text() -> str:
    """The service: restarted whenever it ends; read-only file system, no new privileges; AF_UNIX
    (journald, usbguard's IPC) and AF_NETLINK (uevents) only."""
    return ("# Managed by hardening (measure usblog, clause 6-11). Changes here are overwritten.\n"
            "[Unit]\n"
            "Description=USB connection log (hardening usblog, 6-11)\n"
            "After=systemd-udevd.service usbguard.service\n"
            "\n[Service]\n"
            "Type=simple\n"
            "Restart=always\n"
            "RestartSec=2\n"
            f"SyslogIdentifier={IDENTIFIER}\n"
            f"ExecStart={' '.join(ARGV)}\n"
            "ProtectSystem=strict\n"
            "ProtectHome=yes\n"
            "PrivateTmp=yes\n"
            "NoNewPrivileges=yes\n"
            "ProtectControlGroups=yes\n"
            "RestrictAddressFamilies=AF_UNIX AF_NETLINK\n"
            "\n[Install]\n"
            "WantedBy=multi-user.target\n")


# -- observations ---------------------------------------------------------------------------------

USB_BUS = "[ -d /sys/bus/usb ] && echo present || echo absent"
PYUDEV = f"{PYTHON} -c 'import pyudev; print(pyudev.__version__)'"
SHOW = ("systemctl show --timestamp=unix -p Id,LoadState,ActiveState,SubState,UnitFileState,FragmentPath,"
        f"DropInPaths,NeedDaemonReload,ExecStart,MainPID,ExecMainStartTimestamp {UNIT}")
PROGRAM_STATE = quote("stat -c %%Y %s && sha256sum %s", PROGRAM, PROGRAM)


def journal_command(days: int) -> str:
    """The monitor's entries of the last ``days`` days, one JSON object a line (none: no output)."""
    return (f"journalctl --quiet --no-pager -o json -n {READ_LIMIT} --since=-{int(days)}d "
            f"SYSLOG_IDENTIFIER={IDENTIFIER}")


def observe(profile: Any) -> list[str]:
    settings: Settings = profile.measure("usblog")
    return [USB_BUS, PYUDEV, SHOW, PROGRAM_STATE, journal_command(settings.days)]


def usb_bus(stdout: str, rc: int) -> bool:
    """Whether the host has a USB bus; ValueError when the probe printed something else."""
    if rc != 0 or stdout.strip() not in ("present", "absent"):
        raise ObservationError(f"USB bus probe: exit {rc}, {stdout[:200]!r}")
    return stdout.strip() == "present"


# -- the service as systemd has it ------------------------------------------------------------------

def parse_show(stdout: str, rc: int) -> dict[str, str]:
    """:data:`SHOW` -> properties; ValueError when unreadable."""
    return show_units(stdout, rc, (UNIT,), "systemctl show")[UNIT]


def parse_exec_start(value: str) -> list[str]:
    """argv of systemctl's ``ExecStart={ path=... ; argv[]=... ; ... }`` (first command); [] if none."""
    match = re.search(r"argv\[\]=(.*?) ;", value)
    return match.group(1).split() if match else []


def service_problems(props: dict[str, str]) -> list[str]:
    """Why the monitor does not run now or at boot."""
    problems = []
    load = props.get("LoadState", "")
    if load != "loaded":
        problems.append(f"{UNIT} is {load or 'unknown'}" + (" (not installed)" if load == "not-found" else ""))
    if props.get("UnitFileState") != "enabled":
        problems.append(f"not enabled at boot ({props.get('UnitFileState') or 'no unit file'})")
    if props.get("ActiveState") != "active" or props.get("SubState") != "running":
        problems.append(f"not running ({props.get('ActiveState')}/{props.get('SubState')})")
    return problems


def parse_program_state(stdout: str, rc: int) -> tuple[int, str] | None:
    """:data:`PROGRAM_STATE` -> (mtime, sha256), None when the file is absent; ValueError otherwise."""
    lines = stdout.split()
    if rc != 0:
        if not stdout.strip():
            return None
        raise ValueError(f"stat/sha256sum {PROGRAM}: exit {rc}: {stdout[:200]!r}")
    if len(lines) != 3 or not lines[0].isdigit() or not re.fullmatch(r"[0-9a-f]{64}", lines[1]):
        raise ValueError(f"stat/sha256sum {PROGRAM}: unreadable {stdout[:200]!r}")
    return int(lines[0]), lines[1]


def program_problems(props: dict[str, str], state: tuple[int, str] | None) -> list[str]:
    """Why the running monitor is not this version's, as systemd loaded it."""
    problems = []
    if state is None:
        problems.append(f"{PROGRAM} is absent")
    elif state[1] != program_sha256():
        problems.append(f"{PROGRAM} is not this version's monitor (sha256 {state[1][:12]}…, want "
                        f"{program_sha256()[:12]}…)")
    if props.get("LoadState") == "not-found":
        return [*problems, f"{UNIT} is not installed"]
    if props.get("LoadState") == "masked":
        return problems  # nothing of the unit is loaded: the service check says so
    if props.get("FragmentPath") != UNIT_PATH:
        problems.append(f"systemd loads {UNIT} from {props.get('FragmentPath') or 'nowhere'}, not {UNIT_PATH}")
    if props.get("DropInPaths"):
        problems.append(f"drop-ins change it: {props['DropInPaths']}")
    argv = parse_exec_start(props.get("ExecStart", ""))
    if argv != ARGV:
        problems.append(f"it runs {' '.join(argv) or 'nothing'}, not {' '.join(ARGV)}")
    if props.get("NeedDaemonReload") == "yes":
        problems.append("its unit file changed since systemd read it (daemon-reload pending)")
    started = started_at(props)
    if state is not None and started is not None and started < state[0]:
        problems.append(f"the running process started before {PROGRAM} last changed: it runs an older program")
    return problems


def started_at(props: dict[str, str]) -> int | None:
    value = props.get("ExecMainStartTimestamp", "")
    return int(value[1:]) if re.fullmatch(r"@\d+", value) else None


# -- the journal ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Connection:
    """One ``connected`` entry of the monitor."""

    time: str           # the journal's time, UTC
    port: str
    id: str
    name: str
    serial: str
    classes: tuple[str, ...]
    decision: str
    authorized: str
    target: str

    def shown(self) -> dict[str, str]:
        return {"time": self.time, "device": self.id, "name": self.name, "serial": self.serial,
                "classes": " ".join(self.classes), "port": self.port, "decision": self.decision,
                "authorized": self.authorized, **({"usbguard": self.target} if self.target else {})}


def _field(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key, "")
    if isinstance(value, list):  # journalctl's JSON for binary or repeated fields
        if value and all(isinstance(b, int) for b in value):
            return bytes(value).decode("utf-8", "replace")
        value = value[-1] if value else ""
    if not isinstance(value, str):
        raise ValueError(f"field {key} is {value!r}")
    return value


def _utc(microseconds: str) -> str:
    return datetime.fromtimestamp(int(microseconds) / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_journal(stdout: str, rc: int) -> tuple[list[Connection], list[str]]:
    """The monitor's ``connected`` entries and its other messages (start, errors); ValueError on any
    line that is not a journal entry, or a ``connected`` entry without its fields."""
    if rc != 0:
        raise ValueError(f"journalctl failed (exit {rc}): {stdout[:200]!r}")
    connections, other = [], []
    for number, line in enumerate(stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
            when = _utc(_field(entry, "__REALTIME_TIMESTAMP"))
            if _field(entry, "USBLOG_EVENT") != "connected":
                other.append(f"{when} {_field(entry, 'MESSAGE')[:300]}")
                continue
            connections.append(_connection(entry, when))
        except ValueError as exc:
            raise ValueError(f"journalctl -o json line {number}: unreadable ({exc}): {line[:200]!r}") from None
    return connections, other


def _connection(entry: dict[str, Any], when: str) -> Connection:
    device_id, decision = _field(entry, "USB_ID"), _field(entry, "USB_DECISION")
    classes = tuple(_field(entry, "USB_CLASSES").split())
    if not re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{4}", device_id) or decision not in monitor.DECISIONS \
            or not all(re.fullmatch(r"[0-9a-f]{2}", c) for c in classes):
        raise ValueError(f"a connected entry without a device id, classes or decision "
                         f"({device_id!r}, {classes!r}, {decision!r})")
    return Connection(time=when, port=_field(entry, "USB_PORT"), id=device_id, name=_field(entry, "USB_NAME"),
                      serial=_field(entry, "USB_SERIAL"), classes=classes, decision=decision,
                      authorized=_field(entry, "USB_AUTHORIZED"), target=_field(entry, "USBGUARD_TARGET"))


def let_through(connections: list[Connection], usb: UsbSettings) -> list[Connection]:
    """Connections of a device the usb profile blocks that were not blocked: allowed, or with no
    policy (or undecided) while the kernel authorized it."""
    found = []
    for c in connections:
        device = UsbDevice(port=c.port, vendor=c.id[:4], product=c.id[5:], interfaces=c.classes, name=c.name)
        if verdict(device, usb)[0] == "block" and (c.decision == "allowed" or c.authorized == "1"):
            found.append(c)
    return found


MEASURE = Measure(
    name="usblog",
    title="every USB connection logged with USBGuard's decision (evidence the USB block works)",
    clauses=("6-11",),
    order=75,
    settings=Settings,
    observe=observe,
)
