"""The lab itself: real emulated Debian 12 hosts, distinct identities, strict SSH, USB, cleanup.

Slow (QEMU under TCG): about 2 minutes with a cached image, plus the image build on a fresh
machine. Run alone with ``pytest tests/test_lab.py -p hardening.lab.fixtures``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening.inventory import load
from hardening.lab import Lab, LabError, LabHost
from hardening.lab.fixtures import StartHost

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def pair(lab: Lab) -> Iterator[tuple[LabHost, LabHost]]:
    """A terminal and a server, shared by the tests of this module."""
    term, srv = lab.start_many([("lab-term1", "terminal", "high"), ("lab-srv1", "server", "medium")])
    hosts = (term, srv)
    yield hosts
    for host in hosts:
        if (lab.directory / "hosts" / host.name).exists():
            lab.stop(host.name)


def _wait(host: LabHost, cmd: str, predicate: str, present: bool, timeout: float = 30) -> str:
    """Run `cmd` until its output contains `predicate` (or no longer does); return the output."""
    deadline = time.monotonic() + timeout
    while True:
        out = host.run(cmd).stdout
        if (predicate in out) == present or time.monotonic() > deadline:
            return out
        time.sleep(0.5)


def test_hosts_have_distinct_identities(pair: tuple[LabHost, LabHost]) -> None:
    seen = []
    for host in pair:
        out = host.run("cat /etc/machine-id; hostname; cat /etc/ssh/ssh_host_ed25519_key.pub; "
                       "ip -br link show eth0; sudo -n id -u").stdout.split("\n")
        machine_id, hostname, host_key, link, uid = out[:5]
        assert machine_id == host.machine_id and len(machine_id) == 32
        assert hostname == host.name
        assert " ".join(host_key.split()[:2]) in host.host_keys
        assert host.mac in link
        assert uid == "0"
        seen.append((machine_id, host_key, host.mac))
    assert len({s[0] for s in seen}) == len({s[1] for s in seen}) == len({s[2] for s in seen}) == 2


def test_clock_is_the_machines(pair: tuple[LabHost, LabHost]) -> None:
    guest = float(pair[0].run("date +%s.%N").stdout)
    assert abs(guest - time.time()) < 30


def test_wrong_host_key_is_refused(lab: Lab, pair: tuple[LabHost, LabHost], tmp_path: Path) -> None:
    term, srv = pair
    wrong = tmp_path / "known_hosts"
    # The server's keys under the terminal's address: what a man in the middle would present.
    wrong.write_text("".join(f"[127.0.0.1]:{term.ssh_port} {key}\n" for key in srv.host_keys))
    proc = subprocess.run(["ssh", "-F", str(lab.ssh_config()), "-o", f"UserKnownHostsFile={wrong}",
                           "-o", "ControlPath=none", term.name, "true"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr
    assert term.run("echo ok").stdout == "ok\n"  # the lab's own known_hosts is right


def test_inventory_loads_with_the_tools_loader(lab: Lab, pair: tuple[LabHost, LabHost]) -> None:
    inventory = load(lab.write_inventory())
    assert inventory.groups()["terminals"] == ["lab-term1"]
    assert inventory.groups()["servers"] == ["lab-srv1"]
    term = next(h for h in inventory.hosts if h.name == "lab-term1")
    assert term.sensitivity == "high"
    assert term.asset.machine_id == pair[0].machine_id
    assert term.data["ssh_port"] == pair[0].ssh_port
    assert term.data["ssh_strict_host_key_checking"] == "yes"
    config = lab.ssh_config().read_text()
    assert "Host lab-term1\n" in config and "StrictHostKeyChecking yes" in config


def test_usb_stick_appears_as_usb_block_device(pair: tuple[LabHost, LabHost]) -> None:
    term = pair[0]
    term.usb_plug_storage("stick1", size_mb=8)
    out = _wait(term, "lsblk -dno NAME,TRAN,SERIAL", "stick1", present=True)
    line = next(ln for ln in out.splitlines() if "stick1" in ln)
    name, transport = line.split()[:2]
    assert name.startswith("sd") and transport == "usb"
    term.usb_unplug("stick1")
    out = _wait(term, "lsblk -dno NAME,TRAN,SERIAL", "stick1", present=False)
    assert "stick1" not in out


def test_usb_keyboard_and_forward(pair: tuple[LabHost, LabHost]) -> None:
    srv = pair[1]
    srv.usb_plug_keyboard("kbd1")
    assert "USB Keyboard" in _wait(srv, "cat /sys/bus/usb/devices/*/product", "Keyboard", True)
    srv.usb_unplug("kbd1")
    port = srv.forward(22)
    scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(port), "127.0.0.1"],
                          capture_output=True, text=True, timeout=60)
    assert scan.stdout.split()[1:3] == srv.host_keys[0].split()


def test_reboot_keeps_identity(lab_host: StartHost) -> None:
    host = lab_host("lab-reboot", profile="server-room")
    before = host.run("cat /etc/machine-id /proc/sys/kernel/random/boot_id").stdout.split()
    host.reboot()
    after = host.run("cat /etc/machine-id /proc/sys/kernel/random/boot_id; hostname").stdout.split()
    assert after[0] == before[0] == host.machine_id
    assert after[1] != before[1]
    assert after[2] == host.name
    assert host.state.serial == host.name  # the DMI serial QEMU gives it, read at boot


def test_containers_have_own_identity_and_network(lab: Lab, lab_host: StartHost) -> None:
    one = lab_host("lab-ct1", kind="container")
    two = lab_host("lab-ct2", profile="server", kind="container")
    ids = [h.run("cat /etc/machine-id; hostname; sudo -n id -u").stdout.split() for h in (one, two)]
    assert ids[0] == [one.machine_id, "lab-ct1", "0"] and ids[1][0] != ids[0][0]
    assert one.host_keys[0] != two.host_keys[0] and one.address != two.address
    # Each container has its own network namespace, hence its own nftables ruleset.
    one.run("sudo nft add table inet lab_probe")
    assert "lab_probe" not in two.run("sudo nft list tables").stdout
    with pytest.raises(LabError, match="container"):
        one.usb_plug_storage("nope")
    assert {h.name for h in lab.hosts()} >= {"lab-ct1", "lab-ct2"}


def test_errors_are_one_line(lab: Lab) -> None:
    with pytest.raises(LabError, match="no running lab host"):
        lab.host("nope")
    with pytest.raises(LabError, match="bad host name"):
        lab.start("Bad Name")


def test_nothing_left_after_stop_all(lab: Lab) -> None:
    lab.stop_all()
    assert lab.leftovers() == []
    assert lab.hosts() == []
