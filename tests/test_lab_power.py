"""power (7-5) and server rooms on a real Debian 12 lab container, through the real command line.

The container is both the room's NUT server (nut-server with the dummy-ups driver, whose .dev file
the test rewrites: dummy-ups re-reads it when it changes) and its member server (the shipped
``server-room`` profile, sensitivity high; the room in rooms.yaml beside the lab inventory gives
it ``room1@localhost``). Lab containers cannot reach each other (each veth is a /30 without a
route), so the member reaches its NUT server over loopback: the same upsc, upsd and upsmon.

1. On line, upsmon not configured: verify --room fails only ``power.shutdown_on_low_battery``
   (and ``power.redundant_psu``: the container has no BMC and the profile requires redundant
   supplies); the room's document names the member's evidence by SHA-256 and is sealed.
2. ``deploy -m power`` writes upsmon.conf and starts upsmon; verify passes the shutdown check;
   a second deploy changes nothing. The three planted violations of the corpus
   (tests/violations/power) each fail exactly that check, naming their own problem, and the next
   deploy repairs them.
3. On battery with 120 s left (no LB, so upsmon does not shut the container down): the UPS checks
   and the room's UPS item fail. An unreachable NUT server is an error, never a pass.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost
from hardening.rooms import safe_name
from tests import nutlab
from tests.helpers import cli, lab_hosts
from tests.violations import HEADER

pytestmark = pytest.mark.lab

HOST = "pw-room1"
ROOM = "lab"  # the lab inventory's asset.room
VIOLATIONS = ROOT / "tests" / "violations" / "power"
SHUTDOWN = "power.shutdown_on_low_battery"
# What the shutdown check names for each planted violation, problem by problem (upsd drops a
# stopped upsmon's login; a stopped upsmon reads as inactive or failed, as its exit status goes).
NOT_LOGGED_IN = "upsd does not list this host among the clients of room1@localhost (upsmon not logged in)"
STOPPED = re.compile(r"nut-monitor\.service \(upsmon\) is (inactive|failed), not active")
PLANTED = {
    "monitor-line-removed.sh": [STOPPED, re.compile(r"no MONITOR line for room1@localhost in /etc/nut/upsmon\.conf"),
                                re.compile(re.escape(NOT_LOGGED_IN))],
    "shutdowncmd-removed.sh": [re.compile(r"no SHUTDOWNCMD in /etc/nut/upsmon\.conf")],
    "upsmon-stopped.sh": [STOPPED, re.compile(re.escape(NOT_LOGGED_IN))],
}



@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (HOST, "server-room", "high"), kind="container") as started:
        nutlab.serve_dummy_ups(started[HOST])
        yield started[HOST]


@pytest.fixture(scope="module")
def inventory(lab: Lab, host: LabHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab inventory with rooms.yaml beside it; the monitor password in a file of this machine."""
    directory = tmp_path_factory.mktemp("inv")
    nutlab.write_room(directory, [HOST], ROOM)
    return lab.write_inventory(directory / "lab.py")


def verify(inventory: Path, evidence: Path) -> tuple[dict[str, dict[str, str]], dict]:
    before = set(evidence.glob("*/index.json"))
    start = time.monotonic()
    proc = cli("verify", inventory, "--room", ROOM, "-m", "power", "--evidence", evidence, timeout=300)
    print(f"verify: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode in (1, 4, 5), proc.stdout + proc.stderr  # 4: a regression since the last run
    [index] = set(evidence.glob("*/index.json")) - before
    data = json.loads(index.read_text())
    [entry] = data["hosts"]
    doc = json.loads((index.parent / entry["json"]).read_text())
    room = json.loads((index.parent / data["rooms"][0]["json"]).read_text())
    checks = {c["id"]: {"status": c["status"], "message": c.get("message") or ""} for c in doc["checks"]}
    return checks, room


def deploy(inventory: Path) -> int:
    start = time.monotonic()
    proc = cli("deploy", inventory, "-l", HOST, "-m", "power", timeout=600)
    print(f"deploy: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [row] = [line for line in proc.stdout.splitlines() if line.split()[:1] == [HOST]]
    return int(row.split()[1])


def statuses(checks: dict[str, dict[str, str]]) -> dict[str, str]:
    return {k: v["status"] for k, v in checks.items()}


def test_power_room_end_to_end(host: LabHost, inventory: Path, tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    checks, room = verify(inventory, evidence)
    assert statuses(checks) == {"power.ups_online": "pass", "power.ups_battery": "pass", SHUTDOWN: "fail",
                                "power.redundant_psu": "fail"}, checks
    assert "nut-monitor.service (upsmon) is inactive" in checks[SHUTDOWN]["message"]
    assert "no BMC" in checks["power.redundant_psu"]["message"]
    assert room["verdict"] == "fail" and room["members"][0]["sha256"].startswith("sha256:")
    seal = json.loads((next(evidence.glob("*/seal.json"))).read_text())
    assert f"{safe_name(ROOM)}.json" in seal["files"]
    assert room["members"][0]["sha256"] == seal["files"][room["members"][0]["document"]]["sha256"]
    ups = {c["id"]: c for c in room["checks"]}["room.ups:room1@localhost"]
    assert ups["status"] == "pass" and ups["observed"]["upsc"][HOST]["ups.status"] == "OL"

    assert deploy(inventory) > 0
    assert "MONITOR room1@localhost 1 monuser labsecret secondary" in host.run(
        "sudo cat /etc/nut/upsmon.conf").stdout
    checks, room = verify(inventory, evidence)
    assert checks[SHUTDOWN]["status"] == "pass", checks[SHUTDOWN]
    assert "labsecret" not in json.dumps(checks) and "labsecret" not in json.dumps(room)
    assert deploy(inventory) == 0

    # each planted violation fails the check, naming only its own problem (the deploy before it
    # repaired the previous one), and the next deploy repairs it
    for script in sorted(VIOLATIONS.glob("*.sh")):
        header = {m[1]: m[2] for line in script.read_text().splitlines() if (m := HEADER.match(line))}
        host.run(f"sudo sh -c {shlex.quote(script.read_text())}")
        checks, _ = verify(inventory, evidence)
        failing = {k for k, v in statuses(checks).items() if v == "fail"}
        assert failing == {header["fails"], "power.redundant_psu"}, (script.name, checks)
        problems = checks[SHUTDOWN]["message"].split("\n", 1)[0].removeprefix("AssertionError: ").split("; ")
        expected = PLANTED[script.name]
        assert len(problems) == len(expected), (script.name, problems)
        assert all(p.fullmatch(x) for p, x in zip(expected, problems, strict=True)), (script.name, problems)
        assert deploy(inventory) > 0, script.name
    checks, _ = verify(inventory, evidence)
    assert checks[SHUTDOWN]["status"] == "pass", checks[SHUTDOWN]

    # on battery, 120 s left: no LB flag, so upsmon does not shut the container down
    nutlab.set_ups(host, "OB DISCHRG", 40, 120)
    checks, room = verify(inventory, evidence)
    assert checks["power.ups_online"] == {"status": "fail", "message": checks["power.ups_online"]["message"]}
    assert "room1@localhost: on battery (OB)" in checks["power.ups_online"]["message"]
    assert "battery.runtime 120 s below the minimum 300 s" in checks["power.ups_battery"]["message"]
    assert "battery.charge 40% below the minimum 50%" in checks["power.ups_battery"]["message"]
    ups = {c["id"]: c for c in room["checks"]}["room.ups:room1@localhost"]
    assert ups["status"] == "fail" and ups["observed"]["upsc"][HOST]["battery.runtime"] == "120"
    report = cli("report", "--room", ROOM, "--lang", "ja", "--evidence", evidence)
    assert report.returncode == 1 and "| room1@localhost | pw-room1 | OB DISCHRG | 40 | 120 | 不適合 |" in report.stdout

    # the NUT server does not answer (nothing listens on 3494): an error, never a pass
    nutlab.write_room(inventory.parent, [HOST], ROOM, server="127.0.0.1:3494")
    checks, room = verify(inventory, evidence)
    for check in ("power.ups_online", "power.ups_battery", SHUTDOWN):
        assert checks[check]["status"] == "error", checks
    assert "Connection refused" in checks["power.ups_online"]["message"]
    assert {c["id"]: c for c in room["checks"]}["room.ups:room1@127.0.0.1:3494"]["status"] == "error"
    assert room["verdict"] == "error"  # the member errored: the room was not judged whole
