"""encryption (6-10): swap with a random key and the LUKS2 data disk, on a real Debian 12 lab VM
across a reboot, through the real command line.

The shipped "server" profile at sensitivity high (``swap: required``), copied with a
personal-data path /srv/pii (``measures.auth.personal_data``) and the VM's blank 1 GB disk as
its data disk (``measures.encryption.data_disk``: /dev/disk/by-id/virtio-spare at /srv/pii).
Only ``-m encryption`` is deployed.

1. The host as an agency might have it: a swap PARTITION on virtio-raid-a (an MBR written by the
   test: the image has no fdisk), in fstab by its swap UUID and active; ext4 on the data disk;
   /srv/pii a directory (root:adm 0750, a subdirectory) on the unencrypted root. ``verify``
   fails the swap, swap-at-boot, personal-data and data-disk checks.
2. ``deploy --dry --format-data-disk``: the data disk is REFUSED, naming host, device and the
   ext4 signature (the flag never overrides a signature; the decision is the same in a real run,
   made from the same observation), and still carries it.
3. The operator erases it (wipefs -a). ``deploy --dry`` without the flag says it would refuse
   (blank, the flag is needed); ``--dry`` with the flag says it would FORMAT; nothing changes.
   (Dry runs: each real deploy costs about 200 s on a loaded machine.)
4. ``deploy --format-data-disk``: the swap moves onto a random-key crypttab mapping named by its
   PARTUUID; the disk becomes LUKS2 (cryptsetup's defaults: argon2id), key file root-only, ext4
   with /srv/pii's directories copied (owner, mode), opened, mounted. A file is written there.
5. Reboot: the swap is on a PLAIN dm-crypt mapping (random key), the data disk is open and
   mounted with the file on it, every check of these passes (the root is not encrypted on the
   lab's image: that one still fails, as it must).
6. A second deploy without the flag changes nothing (the file is still there: no reformat).

Measured (2026-12-02, the machine shared with other helpers' VMs, load 4-8 on 2 cores): 567 s in
all (start 35 s, verify 32 s, three dry runs 76 + 61 + 52 s, the formatting deploy 139 s, reboot
95 s, verify 13 s, the last deploy 36 s). At load 12-18 the reboot alone took 211 s to 6 min
(systemd-cryptsetup units 85-96 s each), hence the reboot timeout of 900 s. Not measured idle;
from the lab's idle/busy ratios, about 200-250 s: over the 150 s budget.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost
from tests.helpers import cli, lab_hosts

pytestmark = pytest.mark.lab

HOST = "enc-pii"
SPARE = "/dev/disk/by-id/virtio-spare"
SWAP_DISK = "/dev/disk/by-id/virtio-raid-a"
PARTUUID = "1a2b3c4d-01"  # the MBR's disk signature 0x1a2b3c4d, partition 1
MAPPING = f"cswap-{PARTUUID}"
DATA = "/srv/pii"
CHECKS = ("encryption.swap_encrypted", "encryption.swap_encrypted_at_boot", "encryption.personal_data_encrypted",
          "encryption.data_disk_at_boot")
SETUP = f"""set -e
dd of={SWAP_DISK} bs=512 count=1 conv=fsync status=none
udevadm settle
i=0; while [ ! -e {SWAP_DISK}-part1 ] && [ $i -lt 20 ]; do sleep 0.5; i=$((i+1)); done
mkswap -q {SWAP_DISK}-part1
echo "UUID=$(blkid -s UUID -o value {SWAP_DISK}-part1) none swap sw 0 0" >> /etc/fstab
swapon -a
mkfs.ext4 -q -F {SPARE}
mkdir -p {DATA}/inbox
chgrp adm {DATA}
chmod 0750 {DATA}
"""


def mbr(size: int) -> bytes:
    """A DOS partition table: one Linux-swap partition (type 0x82) from sector 2048 to the end."""
    table = bytearray(512)
    table[440:444] = struct.pack("<I", int(PARTUUID.split("-")[0], 16))
    table[446:462] = bytes([0, 0xFE, 0xFF, 0xFF, 0x82, 0xFE, 0xFF, 0xFF]) + struct.pack("<II", 2048,
                                                                                          size // 512 - 2048)
    table[510:512] = b"\x55\xaa"
    return bytes(table)


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (HOST, "server", "high"), kind="vm") as started:
        yield started[HOST]


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped profiles; the server's personal data in /srv/pii on the spare disk."""
    out = tmp_path_factory.mktemp("profiles") / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", out)
    server = out / "server.yaml"
    text = server.read_text()
    assert text.count("\nmeasures:\n") == 1
    server.write_text(text.replace("\nmeasures:\n", f"""
measures:
  auth:
    personal_data: [{{path: {DATA}, group: adm, mode: "0750"}}]
  encryption:
    data_disk: {{device: {SPARE}, mount_point: {DATA}}}
""", 1))
    return out


def sudo(host: LabHost, command: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run([*host.ssh_command(), f"sudo sh -c {shlex_quote(command)}"], input=stdin,
                          capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def verify(inventory: Path, profiles: Path, evidence: Path) -> dict[str, dict[str, str]]:
    before = set(evidence.glob("*/index.json"))
    start = time.monotonic()
    proc = cli("verify", inventory, "-l", HOST, "-m", "encryption", "--profiles", profiles, "--evidence", evidence)
    print(f"verify: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode in (0, 1, 5), proc.stdout + proc.stderr
    [index] = set(evidence.glob("*/index.json")) - before
    [entry] = json.loads(index.read_text())["hosts"]
    doc = json.loads((index.parent / entry["json"]).read_text())
    return {c["id"]: {"status": c["status"], "message": c.get("message") or ""} for c in doc["checks"]}


def deploy(inventory: Path, profiles: Path, *args: str) -> tuple[int, str]:
    start = time.monotonic()
    proc = cli("deploy", inventory, "-l", HOST, "-m", "encryption", "--profiles", profiles, *args, timeout=900)
    print(f"deploy {' '.join(args)}: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    return proc.returncode, proc.stdout + proc.stderr


def changed(output: str) -> int:
    [row] = [line for line in output.splitlines() if line.split()[:1] == [HOST]]
    return int(row.split()[1])


def signatures(host: LabHost) -> str:
    return sudo(host, f"wipefs --no-act --noheadings --output TYPE {SPARE}").strip()


def test_swap_and_data_disk_encrypted_across_a_reboot(host: LabHost, inventory: Path, profiles: Path,
                                                      tmp_path: Path) -> None:
    started = time.monotonic()
    size = int(sudo(host, f"blockdev --getsize64 {SWAP_DISK}"))
    sudo(host, SETUP, stdin=mbr(size))
    checks = verify(inventory, profiles, tmp_path)
    for check in CHECKS:
        assert checks[check]["status"] == "fail", (check, checks[check])

    flag = ("--format-data-disk", f"{HOST}:{SPARE}")
    code, output = deploy(inventory, profiles, "--dry", *flag)
    assert (f"would: Refused: encryption: {HOST}: data disk {SPARE} (/dev/vdb) is not empty: it carries ext4 at "
            "offset 0x438") in output, output
    assert "--format-data-disk never overrides a signature" in output
    assert f"would: encryption | encryption: swap onto dm-crypt: /dev/vdc1 -> /dev/mapper/{MAPPING}" in output
    assert signatures(host) == "ext4"

    sudo(host, f"wipefs -q -a {SPARE}")
    code, output = deploy(inventory, profiles, "--dry")
    assert f"blank and not set up: it is formatted only with `hardening deploy --format-data-disk {HOST}:{SPARE}`" \
        in output, output
    assert "FORMAT" not in output
    code, output = deploy(inventory, profiles, "--dry", *flag)
    assert code == 0, output
    assert (f"would: encryption | encryption: {HOST}: data disk {SPARE} (/dev/vdb): FORMAT as LUKS2 (blank: "
            f"wipefs --no-act shows no signature), key file /etc/cryptsetup-keys.d/hardening-data.key, ext4, "
            f"mounted at {DATA}") in output, output
    assert signatures(host) == ""
    assert "/dev/vdc1" in sudo(host, "cat /proc/swaps")

    code, output = deploy(inventory, profiles, *flag)
    assert code == 0, output
    assert f"/dev/vdc1 -> /dev/mapper/{MAPPING} (PARTUUID={PARTUUID}, random key at each boot)" in output, output
    for operation in ("FORMAT as LUKS2", f"crypttab opens {SPARE} as hardening-data at boot (key file)",
                      f"fstab mounts /dev/mapper/hardening-data at {DATA}", f"mount {DATA} (fstab)"):
        assert f"encryption: {operation}" in output or operation in output, (operation, output)
    sudo(host, f"echo 'juminhyo 2026-001' > {DATA}/inbox/case-001.txt")
    assert sudo(host, f"stat -c '%U %G %a' {DATA}").split() == ["root", "adm", "750"]

    seconds = host.reboot(timeout=900)  # ~45 s idle; minutes on a loaded machine (cryptsetup under TCG)
    print(f"reboot: back after {seconds:.0f} s")
    swaps = sudo(host, "cat /proc/swaps")
    assert "/dev/dm-" in swaps and "/dev/vdc1" not in swaps, swaps
    status = sudo(host, f"cryptsetup status {MAPPING}")
    assert "type:    PLAIN" in status and "device:  /dev/vdc1" in status, status
    assert sudo(host, f"findmnt -n -o SOURCE {DATA}").strip() == "/dev/mapper/hardening-data"
    assert sudo(host, f"cat {DATA}/inbox/case-001.txt").strip() == "juminhyo 2026-001"
    assert sudo(host, "stat -c '%U %a' /etc/cryptsetup-keys.d/hardening-data.key").split() == ["root", "400"]
    checks = verify(inventory, profiles, tmp_path)
    for check in CHECKS:
        assert checks[check]["status"] == "pass", (check, checks[check])
    assert checks["encryption.root_encrypted"]["status"] == "fail"  # the lab's root is plain ext4

    code, output = deploy(inventory, profiles)
    assert code == 0 and changed(output) == 0, output
    assert sudo(host, f"cat {DATA}/inbox/case-001.txt").strip() == "juminhyo 2026-001"
    print(f"the whole test: {time.monotonic() - started:.0f} s")
