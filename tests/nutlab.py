"""A NUT server with the dummy-ups driver on a lab host, and the room that names it (rooms.yaml).

Lab containers cannot reach each other (each veth is a /30 without a route), so a member reaches
its NUT server over loopback: the member is its own room's NUT server, with the same upsc, upsd
and upsmon as across a network. dummy-ups re-reads its .dev file when it changes
(:func:`set_ups`). Used by tests/test_lab_power.py, and by any lab test whose server must have
a UPS (the planted power violations need one: tests/violations/power/).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from hardening.lab import LabHost

UPS = "room1"
USER = "monuser"
PASSWORD = "labsecret"

SERVE = rf"""set -e
printf 'MODE=netserver\n' > /etc/nut/nut.conf
printf '[{UPS}]\n  driver = dummy-ups\n  port = {UPS}.dev\n  desc = "lab UPS"\n' > /etc/nut/ups.conf
printf 'ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\nups.mfr: Lab\nups.model: Dummy\n' \
  > /etc/nut/{UPS}.dev
printf 'LISTEN 127.0.0.1 3493\n' > /etc/nut/upsd.conf
printf '[{USER}]\n  password = {PASSWORD}\n  upsmon secondary\n' > /etc/nut/upsd.users
chown root:nut /etc/nut/*.conf /etc/nut/upsd.users /etc/nut/{UPS}.dev
chmod 0640 /etc/nut/*.conf /etc/nut/upsd.users /etc/nut/{UPS}.dev
systemctl restart nut-driver-enumerator.service nut-server.service
for i in $(seq 50); do upsc {UPS}@localhost ups.status 2>/dev/null | grep -q OL && exit 0; sleep 0.2; done
echo 'dummy UPS not on line' >&2; exit 1
"""


def serve_dummy_ups(host: LabHost) -> None:
    """nut-server on ``host`` with one dummy UPS, on line, full battery (a few seconds)."""
    host.run(f"sudo sh -c {shlex.quote(SERVE)}", timeout=60)


def set_ups(host: LabHost, status: str, charge: int, runtime: int, timeout: float = 15) -> None:
    """Rewrite the dummy UPS's state and wait until upsd reports it. Never give ``LB`` with ``OB``
    to a host whose upsmon monitors it: upsmon would shut the host down."""
    text = f"ups.status: {status}\nbattery.charge: {charge}\nbattery.runtime: {runtime}\n"
    host.run(f"sudo sh -c {shlex.quote(f'printf %s {shlex.quote(text)} > /etc/nut/{UPS}.dev')}")
    deadline = time.monotonic() + timeout
    while host.run(f"upsc {UPS}@localhost ups.status 2>/dev/null", check=False).stdout.strip() != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"dummy-ups did not report {status!r} within {timeout} s")
        time.sleep(0.5)


def write_room(directory: Path, members: list[str], room: str = "lab", server: str = "localhost") -> Path:
    """rooms.yaml in ``directory`` (beside the lab inventory): ``room`` (the lab inventory's
    asset.room is "lab") holds ``members``, all powered by the dummy UPS; the monitor password in
    a file beside it."""
    secret = directory / "nut.pass"
    secret.write_text(PASSWORD + "\n")
    path = directory / "rooms.yaml"
    path.write_text(
        f"{room}:\n  members: [{', '.join(members)}]\n"
        f"  ups:\n    - {{name: {UPS}, server: '{server}', powers: [{', '.join(members)}], user: {USER},"
        f" password_file: {secret}}}\n"
        "  attestations: [locks-alarms, disaster-measures]\n", encoding="utf-8")
    return path
