"""The usb deploy refuses rather than cut off what a real host uses now, and changes nothing then.

One emulated terminal (profile terminal, sensitivity high: ``storage: block`` and USBGuard with
the terminal allow-list, which allows neither a network adapter nor a serial adapter by class), its
USB devices hot-plugged through QEMU's monitor:

* a USB network adapter (``usb-net``) up with an address: refused, naming the interface;
* a USB serial adapter (``usb-serial``) with a getty on it: refused, naming the tty;
* a USB stick, partitioned, formatted and mounted on /srv/stick: refused, naming the mount and the
  device; with what the refusal tells the operator to do (``storage: allow`` and the stick allowed
  by id in a copy of the profile) the deploy applies and the stick stays usable; unmounted, the
  shipped profile applies and blocks it.

After each refusal nothing of the usb measure changed on the host: no modprobe.d file, the same
USBGuard files and service state, the same initramfs (``update-initramfs`` did not run). The tests
run in file order on the one host: only the last two apply the measure (then USBGuard blocks
newly plugged devices, and the first two could no longer bring theirs up).

Slow: one VM (QEMU, TCG), five deploys of the usb measure.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost
from tests.helpers import cli, lab_hosts, wait_for

pytestmark = pytest.mark.lab

NAME = "ur-term"
T = TypeVar("T")

# Everything the usb measure writes or starts, with sizes, times and hashes.
USB_STATE = (
    "sudo sh -c 'for f in /etc/modprobe.d/* /etc/usbguard/* /boot/*; do [ -f \"$f\" ] || continue; "
    "stat -c \"%n %s %Y\" \"$f\"; sha256sum \"$f\"; done; systemctl is-active usbguard.service; "
    "systemctl is-enabled usbguard.service; true' 2>&1"
)
# One MBR partition over the whole stick from sector 2048 (the guest has no sfdisk).
PARTITION = (
    "import struct, sys; dev = sys.argv[1]; "
    "size = int(open('/sys/class/block/' + dev.rsplit('/', 1)[1] + '/size').read()); "
    "entry = struct.pack('<B3sB3sII', 0, bytes(3), 0x83, bytes(3), 2048, size - 2048); "
    "f = open(dev, 'r+b'); f.seek(446); f.write(entry + bytes(48) + bytes([0x55, 0xaa])); f.close()"
)
# Name of each USB network interface and USB tty, from its sysfs device path.
ON_USB = ("for d in /sys/class/{0}/*; do readlink -f \"$d\" | grep -q '/usb[0-9]*/' && echo \"${{d##*/}}\"; "
          "done; true")


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (NAME, "terminal", "high")) as started:
        yield started[NAME]


def deploy_usb(inventory: Path, *args: str) -> tuple[int, str]:
    proc = cli("deploy", inventory, "-l", NAME, "-m", "usb", *args, timeout=1800)
    return proc.returncode, proc.stdout + proc.stderr


def refused_and_unchanged(host: LabHost, inventory: Path) -> str:
    """Deploy the usb measure, which must refuse and change nothing; returns its output."""
    before = host.run(USB_STATE).stdout
    assert "hardening-usb.conf" not in before, before
    code, output = deploy_usb(inventory)
    assert code != 0, output
    assert "refused: usb: nothing changed: in use now" in output, output
    assert host.run(USB_STATE).stdout == before
    return output


def on_usb(host: LabHost, kind: str) -> list[str]:
    return host.run(ON_USB.format(kind)).stdout.split()


def test_usb_network_adapter_in_use_is_refused(host: LabHost, inventory: Path) -> None:
    host.usb_plug_network("unet1")
    try:
        [iface] = wait_for(lambda: on_usb(host, "net"))
        host.run(f"sudo ip link set {iface} up && sudo ip addr add 10.0.9.15/24 dev {iface}")
        output = refused_and_unchanged(host, inventory)
        assert f"network interface {iface} is up with 10.0.9.15/24" in output, output
        assert "(routes 10.0.9.0/24" in output
        assert 'USBGuard would block USB device 1-' in output and '0525:a4a2 "RNDIS/QEMU USB Network Device"' in output
        assert 'allow it by id in the profile (measures.usb.allow: {name: ..., vendor: "0525", product: "a4a2"})' \
            in output
    finally:
        host.usb_unplug_network("unet1")
    assert wait_for(lambda: not on_usb(host, "net"))


def test_usb_serial_console_in_use_is_refused(host: LabHost, inventory: Path) -> None:
    host.usb_plug_serial("ser1")
    [tty] = wait_for(lambda: on_usb(host, "tty"))
    try:
        host.run(f"sudo systemctl start serial-getty@{tty}.service")
        output = refused_and_unchanged(host, inventory)
        assert f"serial console {tty} (serial-getty@{tty}.service active): USBGuard would block USB device" in output
        assert '0403:6001 "QEMU USB SERIAL" [ff]' in output and 'vendor: "0403", product: "6001"' in output
    finally:
        host.run(f"sudo systemctl stop serial-getty@{tty}.service", check=False)
        host.usb_unplug_serial("ser1")
    assert wait_for(lambda: not on_usb(host, "tty"))


def usb_disks(host: LabHost) -> list[str]:
    out = host.run("lsblk -d -n -o PATH,TRAN").stdout
    return [line.split()[0] for line in out.splitlines() if line.split()[1:] == ["usb"]]


@pytest.fixture(scope="module")
def stick(host: LabHost) -> Iterator[str]:
    """A USB stick with one partition, ext4, mounted on /srv/stick with a file on it: its disk."""
    host.usb_plug_storage("stick1", size_mb=32)
    [disk] = wait_for(lambda: usb_disks(host))
    part = f"{disk}1"
    host.run(f'sudo python3 -c "{PARTITION}" {disk} && for i in 1 2 3 4 5 6 7 8 9 10; do '
             f"sudo blockdev --rereadpt {disk} 2>/dev/null && break; sleep 1; done; sudo udevadm settle; "
             f"test -b {part} && sudo mkfs.ext4 -q {part} && sudo mkdir -p /srv/stick && "
             f"sudo mount {part} /srv/stick && echo data | sudo tee /srv/stick/file >/dev/null")
    yield disk
    host.run("sudo umount /srv/stick", check=False)
    host.usb_unplug("stick1")


def test_mounted_usb_stick_is_refused(host: LabHost, inventory: Path, stick: str) -> None:
    output = refused_and_unchanged(host, inventory)
    assert f"{stick}1 mounted on /srv/stick (part {stick}1 on USB disk {stick}): " in output, output
    assert "the profile blocks the USB storage drivers usb-storage and uas (storage: block)" in output
    assert '46f4:0001 "QEMU USB HARDDRIVE" [08]' in output
    assert ('what to do: set storage: allow in the profile and allow it by id in the profile (measures.usb.allow: '
            '{name: ..., vendor: "46f4", product: "0001"}), or unmount it') in output
    assert host.run("cat /srv/stick/file").stdout == "data\n"  # still mounted and readable


def test_mounted_usb_stick_allowed_by_the_profile_is_deployed_and_stays_usable(
        host: LabHost, inventory: Path, stick: str, tmp_path: Path) -> None:
    """What the refusal tells the operator to do works: storage: allow and the stick by id."""
    profiles = tmp_path / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", profiles)
    text = (profiles / "terminal.yaml").read_text()
    reader = '      - {name: smart card reader (IC card login), interface_class: "0b"}\n'
    assert reader in text
    (profiles / "terminal.yaml").write_text(text.replace(reader, reader + (
        '      - {name: the lab stick, vendor: "46f4", product: "0001"}\n    storage: allow\n'), 1))
    code, output = deploy_usb(inventory, "--profiles", str(profiles))
    assert code == 0, output
    assert "/etc/modprobe.d/hardening-usb.conf" in host.run(USB_STATE).stdout
    assert host.run("systemctl is-active usbguard.service").stdout.strip() == "active"
    assert "allow id 46f4:0001" in host.run("sudo usbguard list-devices").stdout
    host.run("echo more | sudo tee -a /srv/stick/file >/dev/null && sync")
    assert host.run("cat /srv/stick/file").stdout == "data\nmore\n"


def test_usb_stick_unmounted_the_shipped_profile_applies(host: LabHost, inventory: Path, stick: str) -> None:
    host.run("sudo umount /srv/stick")
    before = host.run(USB_STATE).stdout
    code, output = deploy_usb(inventory)
    assert code == 0, output
    assert "confirmed: usb" in output  # it went live under the watchdog (deploys/_rollback.py)
    after = host.run(USB_STATE).stdout
    assert "install usb-storage /bin/false" in host.run("cat /etc/modprobe.d/hardening-usb.conf").stdout
    initrd = [line for line in before.splitlines() if line.startswith("/boot/initrd.img")]
    assert initrd and not set(initrd) & set(after.splitlines()), (initrd, after)  # update-initramfs ran
    assert after.splitlines()[-2:] == ["active", "enabled"], after
    # The stick is now blocked: no block device, no storage driver.
    assert wait_for(lambda: not usb_disks(host), timeout=30), host.run("lsblk").stdout
    assert "usb_storage" not in host.run("cat /proc/modules").stdout
