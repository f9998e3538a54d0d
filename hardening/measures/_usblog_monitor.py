"""USB connection log (hardening measure usblog, clause 6-11): the monitor that runs on the host.

Deployed as ONE file (``/usr/local/lib/hardening/usblog_monitor.py``) and run by
``hardening-usblog.service`` with Debian's ``/usr/bin/python3 -I``: it imports nothing but the
standard library and pyudev (Debian's ``python3-pyudev``), never the hardening package.

For every USB device the kernel announces (udev ``add`` of a ``usb_device``, through pyudev's
netlink monitor) it writes one journal entry: when, port, vendor:product, name, serial, the
interface classes (from the device's raw ``descriptors``: a device USBGuard blocks has no
interface directories in sysfs, its descriptors are still there), and USBGuard's decision, read
the way USBGuard and the kernel expose it: ``usbguard list-devices`` (the daemon's target for the
device, matched by port and id) together with the device's ``authorized`` attribute, polled for
up to ``--wait`` seconds (``AuthorizedDefault=none`` keeps a new device unauthorized until the
daemon has decided). Decisions:

* ``allowed``: USBGuard's target is ``allow`` and the kernel authorized the device;
* ``blocked``: the target is ``block`` or ``reject`` (the device stays unauthorized, or is gone);
* ``no policy``: USBGuard does not answer (not installed or not running); ``USB_AUTHORIZED``
  still says whether the kernel let the device work;
* ``undecided``: USBGuard answered but showed no decision for the device within ``--wait``.

The entry goes to journald's native socket: ``SYSLOG_IDENTIFIER=hardening-usblog``,
``SYSLOG_FACILITY=4`` (auth), ``PRIORITY`` 4 (warning) for blocked and undecided devices, 5
(notice) with no policy, 6 (info) for allowed ones, a ``MESSAGE`` that carries everything for
plain syslog readers (journald forwards it like any other entry), and structured fields
(``USBLOG_EVENT=connected``, ``USB_PORT``, ``USB_ID``, ``USB_VENDOR``, ``USB_PRODUCT``,
``USB_NAME``, ``USB_MANUFACTURER``, ``USB_SERIAL``, ``USB_CLASSES``, ``USB_INTERFACES``,
``USB_DECISION``, ``USB_AUTHORIZED``, ``USBGUARD_TARGET``, ``USB_CONNECTED_AT``).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

IDENTIFIER = "hardening-usblog"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
FACILITY_AUTH = 4
WARNING, NOTICE, INFO, ERR = 4, 5, 6, 3
DECISIONS = ("allowed", "blocked", "no policy", "undecided")
PRIORITIES = {"allowed": INFO, "blocked": WARNING, "no policy": NOTICE, "undecided": WARNING}
POLL_S = 0.25
# ``usbguard list-devices`` lines: ``7: block id 0781:5567 serial "x" name "y" ... via-port "1-1" ...``
_LIST_LINE = re.compile(r'^\s*\d+:\s*(allow|block|reject)\s+id\s+([0-9a-fA-F]{4}:[0-9a-fA-F]{4})\b(.*)$')
_VIA_PORT = re.compile(r'\bvia-port\s+"((?:\\.|[^"\\])*)"')


@dataclass(frozen=True)
class Connected:
    """A USB device as sysfs shows it when it is announced."""

    port: str
    vendor: str
    product: str
    name: str = ""
    manufacturer: str = ""
    serial: str = ""
    interfaces: tuple[str, ...] = ()  # cc:ss:pp, in descriptor order, each once

    @property
    def id(self) -> str:
        return f"{self.vendor}:{self.product}"

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.split(":", 1)[0] for i in self.interfaces))


@dataclass(frozen=True)
class Decision:
    decision: str           # one of DECISIONS
    authorized: str         # the kernel's attribute: "1", "0", or "gone" (device removed)
    target: str = ""        # USBGuard's target (allow, block, reject), "" when it showed none
    detail: str = ""        # why, for a person (USBGuard not answering ...)


# -- reading the device -----------------------------------------------------------------------------

def interfaces_from_descriptors(raw: bytes) -> tuple[str, ...]:
    """Interface class:subclass:protocol of every interface descriptor in a device's raw
    ``descriptors`` (device descriptor, then each configuration with its interfaces), each once.

    >>> interfaces_from_descriptors(bytes.fromhex("12010002000000400000000000000000000109022000010100c032"
    ...                                           "0904000002080650000705810200020007050202000200"))
    ('08:06:50',)
    """
    found: list[str] = []
    i = 0
    while i + 2 <= len(raw):
        length, kind = raw[i], raw[i + 1]
        if length < 2:
            break
        if kind == 4 and length >= 9 and i + 9 <= len(raw):
            found.append(f"{raw[i + 5]:02x}:{raw[i + 6]:02x}:{raw[i + 7]:02x}")
        i += length
    return tuple(dict.fromkeys(found))


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _text(sys_path: str, name: str) -> str:
    raw = _read(os.path.join(sys_path, name))
    return raw.decode("utf-8", "replace").strip() if raw is not None else ""


def read_device(sys_path: str) -> Connected:
    """The device at ``sys_path`` (``/sys/devices/.../1-2``) from its sysfs attributes."""
    raw = _read(os.path.join(sys_path, "descriptors")) or b""
    interfaces = interfaces_from_descriptors(raw)
    if not interfaces:  # no descriptors file: the configured interfaces, where there are any
        interfaces = _interface_dirs(sys_path)
    return Connected(port=os.path.basename(sys_path), vendor=_text(sys_path, "idVendor").lower(),
                     product=_text(sys_path, "idProduct").lower(), name=_text(sys_path, "product"),
                     manufacturer=_text(sys_path, "manufacturer"), serial=_text(sys_path, "serial"),
                     interfaces=interfaces)


def _interface_dirs(sys_path: str) -> tuple[str, ...]:
    try:
        names = sorted(n for n in os.listdir(sys_path) if ":" in n)
    except OSError:
        return ()
    found = []
    for name in names:
        sub = os.path.join(sys_path, name)
        values = [_text(sub, f"bInterface{k}") for k in ("Class", "SubClass", "Protocol")]
        if all(values):
            found.append(":".join(values))
    return tuple(dict.fromkeys(found))


def authorized(sys_path: str) -> str:
    """The kernel's ``authorized`` attribute: "1", "0", or "gone" when the device is no more."""
    value = _text(sys_path, "authorized")
    return value if value in ("0", "1") else "gone"


# -- USBGuard's decision ----------------------------------------------------------------------------

def parse_list_devices(output: str) -> dict[tuple[str, str], str]:
    """``usbguard list-devices`` -> (port, vendor:product) -> target (allow, block, reject).

    >>> parse_list_devices('3: block id 0781:5567 serial "s1" name "x" via-port "1-1" with-interface 08:06:50\\n')
    {('1-1', '0781:5567'): 'block'}
    """
    targets: dict[tuple[str, str], str] = {}
    for line in output.splitlines():
        match = _LIST_LINE.match(line)
        if not match:
            continue
        port = _VIA_PORT.search(match.group(3))
        if port:
            targets[(port.group(1), match.group(2).lower())] = match.group(1)
    return targets


def usbguard_targets(command: str) -> dict[tuple[str, str], str] | str:
    """What ``usbguard list-devices`` says, or why it said nothing (a string)."""
    try:
        proc = subprocess.run([command, "list-devices"], capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        return "usbguard is not installed"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"usbguard list-devices: {exc}"
    if proc.returncode != 0:
        why = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        return f"usbguard is not answering (exit {proc.returncode}: {why[-1][:200] if why else 'no output'})"
    return parse_list_devices(proc.stdout)


def decide(device: Connected, read_authorized: Callable[[], str],
           targets: Callable[[], dict[tuple[str, str], str] | str],
           wait: float, sleep: Callable[[float], None] = time.sleep,
           clock: Callable[[], float] = time.monotonic) -> Decision:
    """USBGuard's decision for ``device``, polled until it is visible and the kernel agrees with
    it (``authorized``), or ``wait`` seconds passed."""
    deadline = clock() + wait
    target = ""
    while True:
        state = read_authorized()
        seen = targets()
        if isinstance(seen, str):
            return Decision("no policy", state, "", seen)
        target = seen.get((device.port, device.id), target)  # a rejected device leaves the list
        if target == "allow" and state == "1":
            return Decision("allowed", state, target)
        if target in ("block", "reject") and state != "1":
            return Decision("blocked", state, target)
        if clock() >= deadline:
            break
        sleep(POLL_S)
    if target:
        decision = "allowed" if target == "allow" else "blocked"
        return Decision(decision, state, target,
                        f"USBGuard says {target}, the kernel's authorized is {state} after {wait:g} s")
    return Decision("undecided", state, "", f"USBGuard showed no decision for the device within {wait:g} s")


# -- the journal entry ------------------------------------------------------------------------------

def message(device: Connected, decision: Decision, when: str) -> str:
    """The entry's text: everything a plain syslog reader needs on one line."""
    name = f' "{device.name}"' if device.name else ""
    serial = device.serial or "(none)"
    classes = " ".join(device.classes) or "(none)"
    how = f"USBGuard: {decision.target}" if decision.target else decision.detail
    text = (f"USB device {device.id}{name} serial {serial} interface classes {classes} connected on port "
            f"{device.port} at {when}: {decision.decision}")
    return text + (f" ({how})" if how else "") + f", authorized={decision.authorized}"


def fields(device: Connected, decision: Decision, when: str) -> dict[str, str]:
    """The journal fields of one connection."""
    return {
        "MESSAGE": message(device, decision, when),
        "PRIORITY": str(PRIORITIES[decision.decision]),
        "SYSLOG_IDENTIFIER": IDENTIFIER,
        "SYSLOG_FACILITY": str(FACILITY_AUTH),
        "USBLOG_EVENT": "connected",
        "USB_CONNECTED_AT": when,
        "USB_PORT": device.port,
        "USB_ID": device.id,
        "USB_VENDOR": device.vendor,
        "USB_PRODUCT": device.product,
        "USB_NAME": device.name,
        "USB_MANUFACTURER": device.manufacturer,
        "USB_SERIAL": device.serial,
        "USB_CLASSES": " ".join(device.classes),
        "USB_INTERFACES": " ".join(device.interfaces),
        "USB_DECISION": decision.decision,
        "USB_AUTHORIZED": decision.authorized,
        "USBGUARD_TARGET": decision.target,
        "USBLOG_DETAIL": decision.detail,
    }


def encode(entry: dict[str, str]) -> bytes:
    """journald's native protocol: ``KEY=value`` lines; a value with a newline as KEY, a 64-bit
    little-endian length and the raw bytes.

    >>> encode({"MESSAGE": "a", "X": "b\\nc"})
    b'MESSAGE=a\\nX\\n\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x00b\\nc\\n'
    """
    out = bytearray()
    for key, value in entry.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class Journal:
    """Sends entries to journald's native socket; on failure prints the message to stderr (which
    the service's journal stream still carries)."""

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.lock = threading.Lock()

    def send(self, entry: dict[str, str]) -> None:
        try:
            with self.lock:
                self.sock.sendto(encode(entry), self.path)
        except OSError as exc:
            print(f"<{entry.get('PRIORITY', INFO)}>{entry.get('MESSAGE', '')} (journal socket {self.path}: {exc})",
                  file=sys.stderr, flush=True)


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the service ------------------------------------------------------------------------------------

def handle(sys_path: str, when: str, journal: Journal, usbguard: str, wait: float) -> None:
    """Log one announced device (runs in a thread of its own: a slow decision holds up no other)."""
    device = read_device(sys_path)
    decision = decide(device, lambda: authorized(sys_path), lambda: usbguard_targets(usbguard), wait)
    journal.send(fields(device, decision, when))


def started(journal: Journal, wait: float, usbguard: str) -> None:
    journal.send({"MESSAGE": f"USB connection monitor started (pid {os.getpid()}; waits {wait:g} s for "
                             f"{usbguard}'s decision)",
                  "PRIORITY": str(INFO), "SYSLOG_IDENTIFIER": IDENTIFIER,
                  "SYSLOG_FACILITY": str(FACILITY_AUTH), "USBLOG_EVENT": "started"})


def run(args: argparse.Namespace) -> int:
    import pyudev  # Debian's python3-pyudev on the host

    journal = Journal(args.socket)
    context = pyudev.Context()
    monitor = pyudev.Monitor.from_netlink(context)
    monitor.filter_by(subsystem="usb", device_type="usb_device")
    monitor.start()
    started(journal, args.wait, args.usbguard)
    while True:
        device: Any = monitor.poll()
        if device is None or device.action != "add":
            continue
        threading.Thread(target=handle, args=(device.sys_path, now_utc(), journal, args.usbguard, args.wait),
                         daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Log every connected USB device and USBGuard's decision "
                                                 "to the journal (hardening usblog, 6-11).")
    parser.add_argument("--wait", type=float, default=5.0, help="seconds to wait for USBGuard's decision")
    parser.add_argument("--usbguard", default="usbguard", help="the usbguard command")
    parser.add_argument("--socket", default=JOURNAL_SOCKET, help="journald's native socket")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
