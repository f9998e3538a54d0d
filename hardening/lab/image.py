"""The lab's disk image: Debian 12 (bookworm) built from Debian's archive with debootstrap.

The build needs root (debootstrap, chroot) but no loop mount: ``mkfs.ext4 -d`` turns the tree
into a raw image. The result lives in ``<labdir>/images/<key>/`` where ``key`` hashes the recipe
(package list, the customisation script, this module's BUILD_VERSION, the mirror and the lab's SSH
public key), so an unchanged recipe is never rebuilt and a changed one always is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from hardening.lab.errors import LabError
from hardening.lab.proc import run, say

# Bump when the build steps change in a way the hashed inputs below do not show.
BUILD_VERSION = "3"
SUITE = "bookworm"
USER = "hardening"
IMAGE_SIZE = "4G"
# Blank data disks beside the root disk (sparse files), attached in this order with their name
# as virtio serial: the guest finds each as /dev/disk/by-id/virtio-NAME (vdb, vdc, ... in order).
SPARE_DISKS: tuple[tuple[str, int], ...] = (
    ("spare", 1 << 30),      # LUKS2 data disk (encryption)
    ("raid-a", 256 << 20),   # the two members of an mdadm RAID1 (raid checks)
    ("raid-b", 256 << 20),
    ("backup", 512 << 20),   # a backup repository on a disk of its own (backup)
)
GOLDEN_HOSTNAME = "lab-golden"

# Everything the deploys of the tool under test need: apt under emulation is very slow
# (about 20 s a package), so all of it is installed here, once.
PACKAGES = (
    "linux-image-amd64", "systemd-sysv", "openssh-server", "sudo", "python3", "iproute2", "udev",
    "kmod", "ca-certificates", "procps", "e2fsprogs", "nftables", "auditd", "usbguard", "restic",
    "cryptsetup", "usbutils", "libpam-pwquality", "unattended-upgrades", "python3-apt", "acl",
    "dbus", "nut-server", "nut-client", "iputils-ping", "less", "pamtester",
    "mdadm", "smartmontools", "ipmitool", "rsyslog", "audispd-plugins", "python3-pyudev",
    "python3-psutil", "openssh-sftp-server",
)

# Modules the initramfs needs to mount the root disk; USB storage comes from the rootfs later.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "ext4")

# Run inside the chroot once the files below are written.
CUSTOMIZE = f"""set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
useradd -m -s /bin/bash -G sudo {USER}
passwd -l root
install -d -m 700 -o {USER} -g {USER} /home/{USER}/.ssh
install -m 600 -o {USER} -g {USER} /tmp/lab.pub /home/{USER}/.ssh/authorized_keys
rm /tmp/lab.pub
chmod 440 /etc/sudoers.d/{USER}
visudo -cf /etc/sudoers.d/{USER}
# The tool under test configures these; a fresh host has neither policy nor ruleset loaded.
# (usbguard-dbus requires usbguard: enabled, it would start the daemon with its block policy.)
systemctl disable usbguard.service usbguard-dbus.service nftables.service
# Debian 12 logs to the journal only: rsyslog is there for the measures that forward records and
# starts only when one enables it. smartd and ipmievd find no SMART disk or BMC in a VM and would
# fail at every boot (the measures read smartctl and ipmitool themselves).
systemctl disable rsyslog.service smartmontools.service
systemctl disable ipmievd.service 2>/dev/null || :
# No timer may start apt or dpkg behind a test's back (they would also hold the dpkg lock).
systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \\
    fstrim.timer systemd-networkd-wait-online.service
systemctl enable systemd-networkd.service
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
ln -s /etc/machine-id /var/lib/dbus/machine-id
update-initramfs -u -k all
apt-get clean
rm -rf /var/lib/apt/lists/*
"""


def _files() -> dict[str, str]:
    """Files written into the tree before CUSTOMIZE runs (path -> content)."""
    modules = "".join(f"{m}\n" for m in INITRAMFS_MODULES)
    return {
        "etc/apt/apt.conf.d/99lab": 'Acquire::Check-Valid-Until "false";\n'
                                    'APT::Install-Recommends "false";\n',
        "etc/fstab": "/dev/vda / ext4 defaults,errors=remount-ro 0 1\n",
        "etc/hostname": f"{GOLDEN_HOSTNAME}\n",
        "etc/hosts": f"127.0.0.1 localhost\n127.0.1.1 {GOLDEN_HOSTNAME}\n"
                     "::1 localhost ip6-localhost ip6-loopback\n",
        "etc/resolv.conf": "nameserver 10.0.2.3\n",
        # QEMU user networking: fixed addresses, no DHCP wait at boot.
        "etc/systemd/network/10-lab.network": "[Match]\nName=eth0\n\n[Network]\n"
                                              "Address=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n",
        f"etc/sudoers.d/{USER}": f"{USER} ALL=(ALL) NOPASSWD: ALL\n",
        "etc/initramfs-tools/conf.d/lab": "MODULES=list\n",
        "etc/initramfs-tools/modules": modules,
        "etc/ssh/sshd_config.d/lab.conf": "UseDNS no\n",
    }


def mirror_sources() -> tuple[str, str]:
    """The machine's own Debian mirror URI and its deb822 sources file (copied into the guest).

    Reading it from the machine keeps the lab on the archive the machine already trusts.
    """
    path = Path("/etc/apt/sources.list.d/debian.sources")
    if not path.is_file():
        raise LabError(f"{path} not found: the lab builds from the machine's Debian mirror")
    text = path.read_text()
    for stanza in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in stanza.splitlines()
                      if ":" in line and not line.startswith("#"))
        suites = fields.get("Suites", "").split()
        if SUITE in suites and "URIs" in fields:
            return fields["URIs"].split()[0], text
    raise LabError(f"{path} has no {SUITE} stanza")


@dataclass(frozen=True)
class Image:
    """A built image: raw root disk, blank spare disks, kernel, initrd and the golden host keys."""

    directory: Path

    @property
    def root(self) -> Path:
        return self.directory / "root.img"

    @property
    def spares(self) -> list[Path]:
        """The blank data disks, in :data:`SPARE_DISKS` order."""
        return [self.directory / f"{name}.img" for name, _ in SPARE_DISKS]

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def host_keys(self) -> list[str]:
        """The public host keys every clone has until it gets its own ("type base64" lines)."""
        return (self.directory / "host_keys.pub").read_text().splitlines()

    @property
    def key(self) -> str:
        return self.directory.name


def recipe_key(pubkey: str, mirror: str, sources: str) -> str:
    """Hash of everything that decides the image's content."""
    recipe = json.dumps({"version": BUILD_VERSION, "suite": SUITE, "packages": PACKAGES,
                         "customize": CUSTOMIZE, "files": _files(), "mirror": mirror,
                         "sources": sources, "pubkey": pubkey, "size": IMAGE_SIZE,
                         "spares": SPARE_DISKS},
                        sort_keys=True)
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def ensure_image(labdir: Path, pubkey: str) -> Image:
    """Return the image for the current recipe, building it first if it is not cached."""
    mirror, sources = mirror_sources()
    key = recipe_key(pubkey, mirror, sources)
    image = Image(labdir / "images" / key)
    if (image.directory / "recipe.json").is_file():
        return image
    _build(image, pubkey, mirror, sources)
    _prune(labdir / "images", keep=key)
    return image


def _build(image: Image, pubkey: str, mirror: str, sources: str) -> None:
    if os.geteuid() != 0:
        raise LabError("building the lab image needs root (debootstrap and chroot)")
    work = image.directory.with_name(image.key + ".tmp")
    remove_tree(work)
    work.mkdir(parents=True)
    log = work / "build.log"
    rootfs = work / "rootfs"
    started = time.monotonic()
    say(f"building image {image.key} with debootstrap from {mirror} (log: {log})")
    run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, rootfs,
         mirror], log=log, timeout=1800)
    say(f"debootstrap done in {time.monotonic() - started:.0f} s; customising")
    _customize(rootfs, pubkey, sources, log)
    _export(rootfs, work, log)
    remove_tree(rootfs)
    elapsed = time.monotonic() - started
    (work / "recipe.json").write_text(json.dumps({"packages": PACKAGES, "version": BUILD_VERSION,
                                                  "mirror": mirror, "build_seconds": round(elapsed)}))
    work.rename(image.directory)
    say(f"image {image.key} built in {elapsed:.0f} s")


def _customize(rootfs: Path, pubkey: str, sources: str, log: Path) -> None:
    for rel, content in _files().items():
        path = rootfs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # resolv.conf may be a symlink to the machine's
        path.write_text(content)
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(sources)
    (rootfs / "tmp/lab.pub").write_text(pubkey.strip() + "\n")
    run(["chroot", rootfs, "/bin/sh", "-c", CUSTOMIZE], log=log, timeout=900)


def _export(rootfs: Path, work: Path, log: Path) -> None:
    """Kernel, initrd, golden host keys, then the raw root and spare disks."""
    boot = rootfs / "boot"
    kernels = sorted(boot.glob("vmlinuz-*"))
    initrds = sorted(boot.glob("initrd.img-*"))
    if not kernels or not initrds:
        raise LabError(f"no kernel or initrd in {boot} (see {log})")
    shutil.copy(kernels[-1], work / "vmlinuz")
    shutil.copy(initrds[-1], work / "initrd.img")
    keys = [p.read_text().split()[:2] for p in sorted((rootfs / "etc/ssh").glob("ssh_host_*_key.pub"))]
    if not keys:
        raise LabError(f"the image has no SSH host keys (see {log})")
    (work / "host_keys.pub").write_text("".join(f"{t} {k}\n" for t, k in keys))
    run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", rootfs, work / "root.img", IMAGE_SIZE],
        log=log, timeout=900)
    for name, size in SPARE_DISKS:
        with (work / f"{name}.img").open("wb") as spare:
            spare.truncate(size)


def remove_tree(path: Path) -> None:
    """rmtree that first unmounts what an interrupted debootstrap left mounted (/proc, /sys)
    inside the tree: rmtree would otherwise walk into the machine's own /proc and /sys."""
    prefix = f"{path.resolve()}/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        run(["umount", "-l", mount])
    shutil.rmtree(path, ignore_errors=True)


def _prune(images: Path, keep: str) -> None:
    """Drop images of older recipes (each is about 1 GB) once the new one is in place, but the
    newest of them: containers run on an image's rootfs as their overlay's lower layer, and a
    checkout of another revision sharing the cache (HARDENING_LAB_CACHE) may still use it."""
    older = sorted((e for e in images.iterdir() if e.name != keep), key=lambda e: e.stat().st_mtime)
    for entry in older[:-1]:
        remove_tree(entry)
