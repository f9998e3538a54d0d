"""disks (7-5) on a real Debian 12 lab VM, through the real command line: an mdadm RAID1 on the
VM's two blank 256 MB disks (/dev/disk/by-id/virtio-raid-a and virtio-raid-b), and a second one
on its other two blank disks (virtio-spare, virtio-backup), so that one verify sees a failed
member and a removed one (three verifies instead of four: the lab budget).

The one VM is in the inventory twice: as ``dk-room`` with the shipped "server-room" profile
(``hardware.raid: true``) and as ``dk-srv`` with "server" (``hardware.raid: false``), so one
verify judges the same disks under both requirements.

1. No array: ``disks.raid_arrays`` fails on dk-room (the profile requires RAID) and is not
   applicable on dk-srv, with the reason; ``disks.smart_health`` is not applicable, naming the
   virtio disks as "no SMART"; ``disks.raid_alerts`` is not applicable.
2. ``mdadm --create`` of ``lab`` waited for (``mdadm --wait``: the initial resync of 256 MB takes
   seconds, so the test sees the state a real array reaches), ``lab2`` created ``--assume-clean``
   (its members are blank, all zeroes: they already agree, and a 512 MB resync would only cost
   time), and an alert PROGRAM in mdadm.conf (Debian's ``MAILADDR root`` alone mails nowhere: the
   image has no mailer): ``raid_arrays`` and ``raid_alerts`` pass.
3. ``mdadm --fail`` of raid-b in ``lab``, ``--fail`` and ``--remove`` of backup in ``lab2``:
   ``raid_arrays`` fails naming each array and member with its serial, and for the removed one
   the disk that still carries the array's superblock; the monitor really ran the PROGRAM for the
   Fail event. With the PROGRAM line taken out again (Debian's default), ``raid_alerts`` fails:
   alerts mailed to root without a mailer.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening.lab import Lab, LabHost
from tests.helpers import cli, lab_hosts, wait_for

pytestmark = pytest.mark.lab

HOST = "dk-room"
SERVER = "dk-srv"
ARRAYS, SMART, ALERTS = "disks.raid_arrays", "disks.smart_health", "disks.raid_alerts"
MDADM = "/sbin/mdadm"
ALERT = "/usr/local/sbin/raid-alert"
ALERT_LOG = "/var/log/raid-alert.log"
PROGRAM_LINE = f"PROGRAM {ALERT}"


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (HOST, "server-room", "medium"), kind="vm") as started:
        yield started[HOST]


@pytest.fixture(scope="module")
def inventory(lab: Lab, host: LabHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab inventory with the VM a second time, as a server whose profile does not require RAID."""
    path = lab.write_inventory(tmp_path_factory.mktemp("inv") / "lab.py")
    lines = path.read_text().splitlines()
    [entry] = [line for line in lines if line.startswith(f"    ('{HOST}',")]
    assert "'profile': 'server-room'" in entry
    twin = entry.replace(f"('{HOST}',", f"('{SERVER}',").replace("'profile': 'server-room'", "'profile': 'server'")
    lines.insert(lines.index(entry) + 1, twin)
    path.write_text("\n".join(lines) + "\n")
    return path


def verify(inventory: Path, evidence: Path, *hosts: str) -> dict[str, dict[str, dict[str, str]]]:
    """Per host, per check: status and message."""
    before = set(evidence.glob("*/index.json"))
    start = time.monotonic()
    limit = [a for h in hosts for a in ("-l", h)]
    proc = cli("verify", inventory, *limit, "-m", "disks", "--evidence", evidence, timeout=600)
    print(f"verify {' '.join(hosts)}: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode in (0, 1, 4, 5), proc.stdout + proc.stderr  # 4: a regression against the last run
    [index] = set(evidence.glob("*/index.json")) - before
    out = {}
    for entry in json.loads(index.read_text())["hosts"]:
        doc = json.loads((index.parent / entry["json"]).read_text())
        out[entry["name"]] = {
            c["id"]: {"status": c["status"], "message": c.get("message") or ""} for c in doc["checks"]}
    return out


def sudo(host: LabHost, script: str) -> str:
    return host.run(f"sudo sh -c {shlex.quote(script)}", timeout=180).stdout


def test_raid_required_healthy_failed_and_removed(host: LabHost, inventory: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    # 1. no array
    checks = verify(inventory, tmp_path, HOST, SERVER)
    room, server = checks[HOST], checks[SERVER]
    assert room[ARRAYS]["status"] == "fail", room[ARRAYS]
    assert ("the hardware profile requires RAID (hardware.raid: true), but the host has no md RAID array"
            in room[ARRAYS]["message"])
    assert server[ARRAYS] == {"status": "not_applicable", "message": "no md RAID array on this host, "
                              "and its hardware profile does not require one (hardware.raid: false)"}
    for judged in (room, server):
        assert judged[SMART]["status"] == "not_applicable", judged[SMART]
        assert "no disk reports SMART (no SMART: /dev/vda, " in judged[SMART]["message"]
        assert "/dev/vdc (serial raid-a)" in judged[SMART]["message"]
        assert judged[ALERTS]["status"] == "not_applicable", judged[ALERTS]

    # 2. two healthy RAID1 arrays, their alerts sent to a program
    sudo(host, f"{MDADM} --create /dev/md/lab --run --level=1 --raid-devices=2 --metadata=1.2 "
               "/dev/disk/by-id/virtio-raid-a /dev/disk/by-id/virtio-raid-b && "
               f"{MDADM} --create /dev/md/lab2 --run --assume-clean --level=1 --raid-devices=2 --metadata=1.2 "
               "/dev/disk/by-id/virtio-spare /dev/disk/by-id/virtio-backup && "
               f"{MDADM} --wait /dev/md/lab; cat /proc/mdstat")
    sudo(host, f"printf '#!/bin/sh\\necho \"$*\" >> {ALERT_LOG}\\n' > {ALERT} && chmod 0755 {ALERT} && "
               f"echo '{PROGRAM_LINE}' >> /etc/mdadm/mdadm.conf && systemctl restart mdmonitor.service")
    healthy = verify(inventory, tmp_path, HOST)[HOST]
    assert healthy[ARRAYS]["status"] == "pass", healthy[ARRAYS]
    assert healthy[ALERTS]["status"] == "pass", healthy[ALERTS]
    assert healthy[SMART]["status"] == "not_applicable", healthy[SMART]

    # 3. a member of lab fails, one of lab2 fails and is removed; the monitor runs the program;
    # without it, Debian's MAILADDR root reaches nobody
    sudo(host, f"{MDADM} /dev/md/lab --fail /dev/disk/by-id/virtio-raid-b && "
               f"{MDADM} /dev/md/lab2 --fail /dev/disk/by-id/virtio-backup && "
               f"{MDADM} /dev/md/lab2 --remove /dev/disk/by-id/virtio-backup")
    logged = wait_for(lambda: "Fail" in host.run(f"sudo cat {ALERT_LOG}", check=False).stdout, timeout=60)
    assert logged, host.run(f"sudo cat {ALERT_LOG}; sudo journalctl -u mdmonitor --no-pager | tail", check=False).stdout
    sudo(host, f"sed -i '\\|^{PROGRAM_LINE}$|d' /etc/mdadm/mdadm.conf && systemctl restart mdmonitor.service")
    failed = verify(inventory, tmp_path, HOST)[HOST]
    message = failed[ARRAYS]["message"]
    assert failed[ARRAYS]["status"] == "fail", failed[ARRAYS]
    assert "/dev/md/lab (/dev/md127): member /dev/vdd (serial raid-b) is faulty" in message, message
    assert "/dev/md/lab (/dev/md127): degraded" in message, message
    lab2 = re.search(r"/dev/md/lab2 \(/dev/md12\d\): slot 1 is empty \(member removed\); /dev/vde \(serial backup\) "
                     r"still carries its superblock \(removed from it\)", message)
    assert lab2, message
    assert failed[ALERTS]["status"] == "fail", failed[ALERTS]
    assert "alerts are mailed to root, but there is no mailer (/usr/sbin/sendmail): they are lost" in (
        failed[ALERTS]["message"])
    print(f"lab test body: {time.monotonic() - started:.1f} s")
