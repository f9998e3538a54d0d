"""Every measure on real lab hosts: the check FAILS on a fresh host, the deploy makes it PASS,
a second deploy changes nothing, and --dry changes nothing. Through the real command line.

Also what a person would try by hand: a USB stick becomes a block device before the deploy and
not after, while a USB keyboard still works; a port served on the host is reachable before and
not after, while SSH still is; the deploy account can still log in and sudo.

The USB connection log (usblog) is proved here too, on the same plugs: the stick logged blocked,
the keyboard allowed, and the blocked attempt listed in the evidence.

Slow: two emulated hosts (QEMU, TCG), a full deploy and five verifications.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.demo import NOT_DEPLOYABLE
from hardening.deploying import available
from hardening.lab import Lab, LabHost
from hardening.measures import usblog
from tests.helpers import cli, lab_hosts, wait_for

pytestmark = pytest.mark.lab

FINGERPRINT = ("sudo sh -c 'nft list ruleset; cat /etc/ssh/sshd_config.d/* /etc/sudoers.d/* /etc/login.defs "
               "/etc/pam.d/common-* /etc/modprobe.d/* /etc/profile.d/* 2>/dev/null; "
               "systemctl is-enabled usbguard nftables 2>&1' | sha256sum")
WEB_PORT = 8080


@pytest.fixture(scope="module")
def hosts(lab: Lab) -> Iterator[dict[str, LabHost]]:
    with lab_hosts(lab, ("d-term1", "terminal", "high"), ("d-srv1", "server", "medium")) as started:
        yield started


@pytest.fixture(scope="module")
def inventory(lab: Lab, hosts: dict[str, LabHost], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lab.write_inventory(tmp_path_factory.mktemp("inv") / "lab.py")


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evidence")


def verify(inventory: Path, evidence: Path) -> dict[str, dict[str, str]]:
    """Per host, check id -> status, from the run's evidence documents."""
    before = set(evidence.glob("*/index.json"))
    proc = cli("verify", inventory, "--evidence", evidence, "-p", "2")
    assert proc.returncode in (0, 1, 4, 5), proc.stdout + proc.stderr
    [index] = set(evidence.glob("*/index.json")) - before
    out = {}
    for host in json.loads(index.read_text())["hosts"]:
        assert host["verdict"] in ("pass", "fail", "not_configured", "not_evaluated"), host
        doc = json.loads((index.parent / host["json"]).read_text())
        out[host["name"]] = {c["id"]: c["status"] for c in doc["checks"]}
    return out


def deploy(inventory: Path, *args: str) -> tuple[int, str, dict[str, dict[str, int]]]:
    proc = cli("deploy", inventory, *args, timeout=1800)
    table: dict[str, dict[str, int]] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("d-") and len(parts) >= 4 and parts[1].isdigit():
            table[parts[0]] = {"changed": int(parts[1]), "failed": int(parts[-2]), "unchanged": int(parts[-1])}
    return proc.returncode, proc.stdout + proc.stderr, table


def usb_block_devices(host: LabHost) -> list[str]:
    out = host.run("lsblk -d -n -o NAME,TRAN").stdout
    return [line.split()[0] for line in out.splitlines() if line.split()[1:] == ["usb"]]


def rolled_back(host: LabHost) -> str:
    """The host's rollback records, or "" while it cannot be reached (a cut ruleset is live)."""
    try:
        return host.run("ls /run/hardening/rolled-back/ 2>/dev/null || true", check=False, timeout=20).stdout
    except Exception:  # a timeout or a refused connection: not rolled back yet
        return ""


def http_status(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return int(response.status)
    except (TimeoutError, OSError):
        return None


@pytest.fixture(scope="module")
def web_port(hosts: dict[str, LabHost]) -> int:
    srv = hosts["d-srv1"]
    # In a subshell with every descriptor closed, so that the ssh session returns at once.
    srv.run(f"cd /tmp && (setsid python3 -m http.server {WEB_PORT} </dev/null >/dev/null 2>&1 &)")
    return srv.forward(WEB_PORT)


@pytest.fixture(scope="module")
def before(inventory: Path, evidence: Path) -> dict[str, dict[str, str]]:
    return verify(inventory, evidence)


# Measures with nothing to judge on these hosts until an agency names it: their checks are "not
# configured" or "not applicable" here, and their own lab tests give them the data
# (tests/test_lab_backup.py, tests/test_lab_power.py, tests/test_lab_audit.py).
NEEDS_AGENCY_DATA = {
    "backup": "the shipped profiles name no backup repositories",
    "power": "no room of these hosts names a UPS (rooms.yaml)",
    "bulkwatch": "the shipped profiles name no personal-data paths to watch",
}


def test_every_measure_fails_on_fresh_hosts(before: dict[str, dict[str, str]]) -> None:
    failing = {check.split(".")[0] for checks in before.values() for check, s in checks.items() if s == "fail"}
    expected = set(available()) - set(NEEDS_AGENCY_DATA)
    assert expected <= failing, f"measures with no failing check: {expected - failing}"
    unjudged = {check.split(".")[0]: s for checks in before.values() for check, s in checks.items()
                if check.split(".")[0] in NEEDS_AGENCY_DATA and s not in ("not_configured", "not_applicable")}
    assert not unjudged, f"a measure said to need agency data judged something: {unjudged}"


def test_usb_stick_is_a_block_device_before_the_deploy(hosts: dict[str, LabHost]) -> None:
    term = hosts["d-term1"]
    term.usb_plug_storage("stick0")
    try:
        assert wait_for(lambda: usb_block_devices(term)), "the stick never became a block device"
    finally:
        term.usb_unplug("stick0")
    assert wait_for(lambda: not usb_block_devices(term))


def test_served_port_is_reachable_before_the_deploy(web_port: int) -> None:
    assert wait_for(lambda: http_status(web_port) == 200), "the test web server did not answer"


def test_dry_run_lists_changes_and_changes_nothing(inventory: Path, hosts: dict[str, LabHost]) -> None:
    prints = {name: h.run(FINGERPRINT).stdout for name, h in hosts.items()}
    code, output, table = deploy(inventory, "--dry")
    assert code == 0, output
    assert set(table) == set(hosts), output
    assert all(row["changed"] > 10 for row in table.values()), table
    assert "would change" in output
    assert {name: h.run(FINGERPRINT).stdout for name, h in hosts.items()} == prints


@pytest.fixture(scope="module")
def deployed(inventory: Path, before: dict[str, dict[str, str]], web_port: int) -> dict[str, dict[str, int]]:
    code, output, table = deploy(inventory)
    assert code == 0, output
    assert "reconnected; confirmed: firewall" in output
    return table


def test_deploy_changes_every_host(deployed: dict[str, dict[str, int]]) -> None:
    assert all(row["changed"] > 10 and row["failed"] == 0 for row in deployed.values()), deployed


@pytest.fixture(scope="module")
def after(inventory: Path, evidence: Path, deployed: dict[str, dict[str, int]]) -> dict[str, dict[str, str]]:
    return verify(inventory, evidence)


def test_every_deployable_check_passes_after_the_deploy(before: dict[str, dict[str, str]],
                                                        after: dict[str, dict[str, str]]) -> None:
    still_failing = {(host, check): status for host, checks in after.items() for check, status in checks.items()
                     if status not in ("pass", "not_applicable", "not_configured", "advisory")
                     and check not in NOT_DEPLOYABLE}
    assert not still_failing
    fixed = sum(1 for host, checks in before.items() for check, status in checks.items()
                if status == "fail" and after[host][check] == "pass")
    assert fixed >= 20, fixed


def test_second_deploy_changes_nothing(inventory: Path, after: dict[str, dict[str, str]]) -> None:
    code, output, table = deploy(inventory)
    assert code == 0, output
    assert {name: row["changed"] for name, row in table.items()} == {"d-term1": 0, "d-srv1": 0}, output


def usblog_entries(host: LabHost, match: str) -> list[dict[str, str]]:
    """The usblog monitor's journal entries with a field (``USB_SERIAL=stick1``)."""
    out = host.run(f"sudo journalctl -q -o json SYSLOG_IDENTIFIER={usblog.IDENTIFIER} {match}").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def usbguard_devices(host: LabHost) -> dict[str, str]:
    """Interface class (first two hex digits) -> target, from `usbguard list-devices`."""
    out = host.run("sudo usbguard list-devices").stdout
    found = {}
    for line in out.splitlines():
        if "with-interface" in line:
            interfaces = line.split("with-interface", 1)[1]
            for cls in ("08", "03"):
                if f" {cls}:" in interfaces or f"{{ {cls}:" in interfaces:
                    found[cls] = line.split()[1]
    return found


def test_usb_stick_is_blocked_after_the_deploy_keyboard_still_allowed(hosts: dict[str, LabHost],
                                                                     after: dict[str, dict[str, str]]) -> None:
    term = hosts["d-term1"]
    term.usb_plug_keyboard("kbd0")
    term.usb_plug_storage("stick1")
    try:
        devices = wait_for(lambda: (lambda d: d if {"08", "03"} <= set(d) else None)(usbguard_devices(term)),
                           timeout=60)
        assert devices, term.run("sudo usbguard list-devices").stdout
        assert devices == {"08": "block", "03": "allow"}, devices
        time.sleep(3)
        assert usb_block_devices(term) == [], "a USB stick became a block device after the deploy"
        assert "QEMU USB Keyboard" in term.run("cat /proc/bus/input/devices").stdout
        # usblog (6-11): the monitor logged both, with USBGuard's decision.
        stick = wait_for(lambda: usblog_entries(term, "USB_SERIAL=stick1"), timeout=60)[-1]
        assert stick["USB_DECISION"] == "blocked" and stick["USBGUARD_TARGET"] == "block", stick
        assert stick["USB_CLASSES"] == "08" and stick["PRIORITY"] == "4" and stick["USB_AUTHORIZED"] == "0"
        assert f"USB device {stick['USB_ID']} \"QEMU USB HARDDRIVE\" serial stick1 interface classes 08" in \
            stick["MESSAGE"] and ": blocked (USBGuard: block)" in stick["MESSAGE"], stick
        keyboard = wait_for(lambda: usblog_entries(term, "USB_CLASSES=03"), timeout=60)[-1]
        assert keyboard["USB_DECISION"] == "allowed" and keyboard["USB_AUTHORIZED"] == "1", keyboard
    finally:
        term.usb_unplug("stick1")
        term.usb_unplug("kbd0")


def test_usb_connection_log_in_the_evidence_lists_the_blocked_stick(inventory: Path, evidence: Path,
                                                                   hosts: dict[str, LabHost]) -> None:
    """usblog's evidence: the blocked attempt of the test above, with its device, classes and
    serial; the keyboard counted as allowed."""
    before = set(evidence.glob("*/index.json"))
    proc = cli("verify", inventory, "-l", "d-term1", "-m", "usblog", "--evidence", evidence)
    assert proc.returncode in (0, 4, 5), proc.stdout + proc.stderr  # 5: the terminal's attestation items
    [index] = set(evidence.glob("*/index.json")) - before
    [entry] = json.loads(index.read_text())["hosts"]
    doc = json.loads((index.parent / entry["json"]).read_text())
    [log] = [c for c in doc["checks"] if c["id"] == "usblog.connection_log"]
    assert log["status"] == "pass", log
    [attempt] = [a for a in log["observed"]["blocked attempts"] if a["serial"] == "stick1"]
    assert attempt["classes"] == "08", log["observed"]
    assert log["observed"]["by decision"]["allowed"] >= 1, log["observed"]


def test_served_port_is_closed_after_the_deploy_ssh_still_works(hosts: dict[str, LabHost], web_port: int,
                                                              after: dict[str, dict[str, str]]) -> None:
    srv = hosts["d-srv1"]
    assert "python3 -m http.server" in srv.run("ps -eo args").stdout  # still served on the host
    assert http_status(web_port) is None
    for host in hosts.values():
        assert host.run("sudo -n true").returncode == 0  # the deploy account logs in and sudoes


def test_firewall_that_would_cut_ssh_is_rolled_back(lab: Lab, inventory: Path, hosts: dict[str, LabHost],
                                                    after: dict[str, dict[str, str]], tmp_path: Path) -> None:
    srv = hosts["d-srv1"]
    ruleset = srv.run("sudo nft list ruleset").stdout
    profiles = tmp_path / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", profiles)
    text = (profiles / "server.yaml").read_text()
    # 192.0.2.0/24 is TEST-NET-1: an allow-list that does not include the lab's management address.
    (profiles / "server.yaml").write_text(text.replace(
        "measures:\n", "measures:\n  firewall:\n    management_networks: [192.0.2.0/24]\n"
        "    confirm_timeout: 60\n", 1))
    code, output, _ = deploy(inventory, "-l", "d-srv1", "-m", "firewall", "--profiles", str(profiles))
    # The reconnection fails while the cut ruleset is live; at its deadline the deploy waits for
    # the host's own rollback, reconnects, and hardening-confirm reports (and clears) the rollback.
    assert code == 1, output
    assert "d-srv1: FAILED: a change rolled back before it could be confirmed: not confirmed in time" in output
    assert "its watchdog restored the previous state, reachable again" in output
    assert "rolled back before confirmation: firewall" in output
    assert srv.run("sudo nft list ruleset").stdout == ruleset
    assert rolled_back(srv).strip() == ""  # reported once, by that reconnection


# -- convergence: a redeploy decides from what the host runs, not from its own files' hashes -------

def measure_statuses(inventory: Path, evidence: Path, host: str, *measures: str) -> dict[str, str]:
    proc = cli("verify", inventory, "-l", host, "--evidence", evidence,
               *[a for m in measures for a in ("-m", m)])
    assert proc.returncode in (0, 1, 4, 5), proc.stdout + proc.stderr
    [index] = sorted(evidence.glob("*/index.json"))[-1:]
    doc = json.loads((index.parent / f"{host}.json").read_text())
    return {c["id"]: c["status"] for c in doc["checks"]}


def test_runtime_drift_is_repaired_by_the_next_deploy(inventory: Path, evidence: Path, hosts: dict[str, LabHost],
                                                      after: dict[str, dict[str, str]]) -> None:
    srv = hosts["d-srv1"]
    srv.run("sudo sysctl -qw net.ipv4.ip_forward=1")
    srv.run("sudo modprobe --ignore-install usb-storage")
    assert "usb_storage" in srv.run("cat /proc/modules").stdout
    drifted = measure_statuses(inventory, evidence, "d-srv1", "firewall", "usb")
    assert drifted["firewall.forwarding_off"] == "fail" and drifted["usb.storage_driver_not_loaded"] == "fail"
    code, output, table = deploy(inventory, "-l", "d-srv1", "-m", "firewall", "-m", "usb")
    assert code == 0, output
    assert table["d-srv1"]["changed"] >= 2, output  # never "no change" on a host whose checks fail
    assert srv.run("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
    assert "usb_storage" not in srv.run("cat /proc/modules").stdout
    repaired = measure_statuses(inventory, evidence, "d-srv1", "firewall", "usb")
    assert {k: v for k, v in repaired.items() if v == "fail"} == {}


REPAIRS = [
    # (measure, plant as root, the file the deploy names, shell test of what is left of it, cleanup)
    ("timeouts", "printf 'ClientAliveInterval 0\\n' > /etc/ssh/sshd_config.d/00-foreign.conf && "
                 "systemctl reload ssh", "/etc/ssh/sshd_config.d/00-foreign.conf",
     # kept, the directive commented out in place (a backup beside it)
     "grep -q '^# disabled by hardening (timeouts): ClientAliveInterval 0' /etc/ssh/sshd_config.d/00-foreign.conf",
     "rm -f /etc/ssh/sshd_config.d/00-foreign.conf* && systemctl reload ssh"),
    ("admin", "echo 'nobody ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/zz-extra && chmod 440 /etc/sudoers.d/zz-extra",
     "/etc/sudoers.d/zz-extra",
     # set aside under a name sudo skips, for a person to read
     "test ! -e /etc/sudoers.d/zz-extra && test -e /etc/sudoers.d/zz-extra.hardening-quarantine",
     "rm -f /etc/sudoers.d/zz-extra*"),
]


@pytest.mark.parametrize(("measure", "plant", "culprit", "left", "cleanup"), REPAIRS,
                         ids=["sshd-dropin-read-first", "extra-sudoers-file"])
def test_a_conflict_in_a_file_it_does_not_own_is_repaired_and_the_file_kept(
        inventory: Path, evidence: Path, hosts: dict[str, LabHost], after: dict[str, dict[str, str]],
        measure: str, plant: str, culprit: str, left: str, cleanup: str) -> None:
    srv = hosts["d-srv1"]
    srv.run(f"sudo sh -c {json.dumps(plant)}")
    try:
        statuses = measure_statuses(inventory, evidence, "d-srv1", measure)
        assert "fail" in statuses.values(), statuses
        code, output, table = deploy(inventory, "-l", "d-srv1", "-m", measure)
        assert code == 0, output
        assert culprit in output, output  # the deploy says which file it changed
        assert table["d-srv1"]["changed"] >= 1, output
        assert srv.run(f"sudo sh -c {json.dumps(left)}", check=False).returncode == 0, output
        repaired = measure_statuses(inventory, evidence, "d-srv1", measure)
        assert "fail" not in repaired.values(), repaired
    finally:
        srv.run(f"sudo sh -c {json.dumps(cleanup)}")


def test_a_conflict_it_does_not_own_stops_the_deploy_naming_it(inventory: Path, evidence: Path,
                                                               hosts: dict[str, LabHost],
                                                               after: dict[str, dict[str, str]]) -> None:
    """A TMOUT set readonly earlier in /etc/profile.d cannot be overridden by the tool's script:
    the deploy refuses, naming the file, and leaves it."""
    srv = hosts["d-srv1"]
    culprit = "/etc/profile.d/00-tmout.sh"
    srv.run(f"sudo sh -c \"printf 'readonly TMOUT=0; export TMOUT\\n' > {culprit}\"")
    try:
        statuses = measure_statuses(inventory, evidence, "d-srv1", "timeouts")
        assert "fail" in statuses.values(), statuses
        code, output, table = deploy(inventory, "-l", "d-srv1", "-m", "timeouts")
        assert code == 1, output
        assert culprit in output, output
        assert table.get("d-srv1", {}).get("failed", 0) >= 1, output
        assert srv.run(f"test -e {culprit}", check=False).returncode == 0  # not the tool's to delete
    finally:
        srv.run(f"sudo rm -f {culprit}")
