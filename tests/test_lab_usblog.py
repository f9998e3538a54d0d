"""usblog (6-11) on one emulated Debian 12 terminal (shipped "terminal" profile, high), through the
real command line:

1. A fresh host: the monitor is not installed, so its checks fail (the connection log is empty
   and passes: nothing got through).
2. ``hardening deploy -m usb -m usblog`` (usb blocks, usblog logs): every usblog check passes.
3. A USB stick hot-plugged through QEMU's monitor: the journal has the monitor's entry, blocked,
   with vendor:product, class 08 and the stick's serial, at warning priority; a USB keyboard:
   allowed. ``hardening verify`` lists the blocked attempt in the check's evidence.
4. A second deploy of usblog changes nothing.

Slow: one VM (QEMU, TCG) and a deploy of the usb measure, which is most of the time: 251 s of
366 s measured on two cores under a load of 4-5 (the rest: VM 27 s, three verifies 46 s, the plugs
30 s, the second deploy 29 s).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening.lab import Lab, LabHost
from hardening.measures import usblog as measure
from tests.helpers import cli, lab_hosts, wait_for

pytestmark = pytest.mark.lab

HOST = "ul-term"
CHECKS = ("usblog.monitor_service", "usblog.monitor_program", "usblog.connection_log")


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (HOST, "terminal", "high")) as started:
        yield started[HOST]


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evidence")


def verify(inventory: Path, evidence: Path) -> dict[str, dict[str, object]]:
    """Check id -> {status, message, observed} of one verify of the usblog measure."""
    before = set(evidence.glob("*/index.json"))
    start = time.monotonic()
    proc = cli("verify", inventory, "-l", HOST, "-m", "usblog", "--evidence", evidence, timeout=900)
    print(f"verify: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode in (0, 1, 5), proc.stdout + proc.stderr
    [index] = set(evidence.glob("*/index.json")) - before
    [entry] = json.loads(index.read_text())["hosts"]
    doc = json.loads((index.parent / entry["json"]).read_text())
    return {c["id"]: {"status": c["status"], "message": c.get("message") or "", "observed": c.get("observed")}
            for c in doc["checks"]}


def statuses(checks: dict[str, dict[str, object]]) -> dict[str, object]:
    return {k: v["status"] for k, v in checks.items()}


def deploy(inventory: Path, *measures: str) -> tuple[str, int]:
    """Output and the host's number of changes."""
    start = time.monotonic()
    proc = cli("deploy", inventory, "-l", HOST, *(a for m in measures for a in ("-m", m)), timeout=1800)
    print(f"deploy: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    [row] = [line.split() for line in proc.stdout.splitlines() if line.startswith(HOST + " ")]
    return proc.stdout + proc.stderr, int(row[1])


def logged(host: LabHost, match: str) -> list[dict[str, str]]:
    """The monitor's journal entries that have a field (``USB_SERIAL=stick1``)."""
    out = host.run(f"sudo journalctl -q -o json SYSLOG_IDENTIFIER={measure.IDENTIFIER} {match}").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_fresh_host_fails_then_deploy_passes(host: LabHost, inventory: Path, evidence: Path) -> None:
    fresh = verify(inventory, evidence)
    assert statuses(fresh) == {"usblog.monitor_service": "fail", "usblog.monitor_program": "fail",
                               "usblog.connection_log": "pass"}, fresh
    assert "not-found (not installed)" in str(fresh["usblog.monitor_service"]["message"])
    output, changed = deploy(inventory, "usb", "usblog")
    assert changed > 5 and "Enable hardening-usblog.service" in output, output
    assert set(statuses(verify(inventory, evidence)).values()) == {"pass"}


def test_plugged_stick_is_logged_blocked_and_keyboard_allowed(host: LabHost, inventory: Path,
                                                               evidence: Path) -> None:
    start = time.monotonic()
    host.usb_plug_storage("stick1")
    try:
        [stick] = wait_for(lambda: logged(host, "USB_SERIAL=stick1"), timeout=60)
    finally:
        host.usb_unplug("stick1")
    print(f"stick logged in {time.monotonic() - start:.1f} s")
    assert stick["USB_DECISION"] == "blocked" and stick["USBGUARD_TARGET"] == "block", stick
    assert stick["USB_CLASSES"] == "08" and stick["PRIORITY"] == "4" and stick["USB_AUTHORIZED"] == "0"
    assert stick["USB_ID"] == f"{stick['USB_VENDOR']}:{stick['USB_PRODUCT']}"
    assert f"USB device {stick['USB_ID']} \"QEMU USB HARDDRIVE\" serial stick1 interface classes 08" in \
        stick["MESSAGE"] and ": blocked (USBGuard: block)" in stick["MESSAGE"], stick
    assert not host.run("lsblk -d -n -o TRAN").stdout.count("usb")

    host.usb_plug_keyboard("kbd1")
    try:
        [keyboard] = wait_for(lambda: logged(host, "USB_CLASSES=03"), timeout=60)
    finally:
        host.usb_unplug("kbd1")
    assert keyboard["USB_DECISION"] == "allowed" and keyboard["USB_CLASSES"] == "03", keyboard
    assert keyboard["USB_AUTHORIZED"] == "1" and keyboard["PRIORITY"] == "6"

    checks = verify(inventory, evidence)
    assert set(statuses(checks).values()) == {"pass"}, checks
    observed = checks["usblog.connection_log"]["observed"]
    assert isinstance(observed, dict)
    [attempt] = observed["blocked attempts"]
    assert (attempt["device"], attempt["classes"], attempt["serial"]) == (stick["USB_ID"], "08", "stick1"), observed
    assert observed["by decision"]["allowed"] == 1, observed


def test_second_deploy_changes_nothing(host: LabHost, inventory: Path) -> None:
    # usblog alone: the usb measure's own second deploy costs two minutes under emulation and is
    # proved by tests/test_lab_deploy.py (a second usb+usblog deploy was seen to change nothing too).
    output, changed = deploy(inventory, "usblog")
    assert changed == 0, output
