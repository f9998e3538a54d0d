"""systemd-nspawn containers: fast lab hosts for configuration-level tests.

A container boots the same Debian tree as the VMs with systemd as its PID 1, but on the
machine's kernel: no USB, no audit, no kernel modules, no device-mapper (so no USB, auditd or LUKS
tests). It is ready in about a second and suits sshd, sudo, PAM, timeouts and nftables (each
container has its own network namespace, hence its own ruleset).

Layout: the image's tree is copied once to ``images/<key>/rootfs`` (from a read-only loop mount
of the raw image, ``cp -a`` keeping set-uid bits and capabilities); each container gets an
overlayfs over it in ``hosts/<name>/root``. The identity (machine-id, host keys, hostname,
address) is written into the overlay before boot, so there is no golden-key phase. The container
is reached over a veth pair: ``hlab<N>`` (10.233.N.1/30) on the machine, ``host0``
(10.233.N.2/30) inside; the container has no route elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from hardening.lab.errors import LabError
from hardening.lab.identity import host_keys
from hardening.lab.image import Image, remove_tree
from hardening.lab.proc import run, say
from hardening.lab.ssh import locked

SUBNET = "10.233"
# Machine-wide: every lab directory's containers share the machine's 10.233.0.0/16.
SLOT_LOCK_DIR = Path("/run/lock")
SLOT_LOCK = "hardening-lab-container-slots.lock"
PIDFILE = "nspawn.pid"
# Each booted container's systemd holds several inotify instances, all counted against root. With
# Debian's default of 128 the 17th container cannot get one, and nspawn then fails with the
# misleading "Attempted to remove disk file system under /run/systemd/nspawn/propagate/...".
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
MIN_INOTIFY_INSTANCES = 1024


def veth_prefix(labdir: Path) -> str:
    """Machine-side veth names are ``hl<4 hex of the lab directory><slot>`` (at most 15
    characters), so two lab directories never take or report each other's links."""
    return "hl" + hashlib.sha256(str(labdir).encode()).hexdigest()[:4]


def veth_name(labdir: Path, index: int) -> str:
    return f"{veth_prefix(labdir)}{index}"


def ensure_rootfs(image: Image) -> Path:
    """The image's tree as a directory (the containers' shared lower layer), made once."""
    rootfs = image.directory / "rootfs"
    with locked(image.directory, "rootfs.lock"):  # two labs sharing a cache: copy once
        if not rootfs.is_dir():
            _copy_tree(image, rootfs)
    return rootfs


def _copy_tree(image: Image, rootfs: Path) -> None:
    say("copying the image's tree for containers")
    tmp = image.directory / "rootfs.tmp"
    mnt = image.directory / "mnt"
    remove_tree(tmp)
    mnt.mkdir(exist_ok=True)
    run(["mount", "-o", "ro,loop,noload", image.root, mnt])
    try:
        run(["cp", "-a", f"{mnt}/.", tmp], timeout=900)
    finally:
        run(["umount", mnt])
        mnt.rmdir()
    tmp.rename(rootfs)


def free_index(labdir: Path) -> int:
    """The lowest container slot (1..250) no host of the lab uses."""
    used = set()
    for state in (labdir / "hosts").glob("*/host.json"):
        try:
            used.add(int(json.loads(state.read_text()).get("index", 0)))
        except (OSError, ValueError):
            continue
    # Another lab directory may hold a slot too: skip subnets the machine already has.
    taken = run(["ip", "-o", "-4", "addr", "show"])
    for index in range(1, 251):
        if index not in used and f" {addresses(index)[0]}/" not in taken:
            return index
    raise LabError("no free container slot (250 in use)")


def addresses(index: int) -> tuple[str, str]:
    """(machine side, container side) of a container's /30."""
    return f"{SUBNET}.{index}.1", f"{SUBNET}.{index}.2"


def _write_identity(root: Path, name: str, mac: str, index: int, machine_id: str) -> list[str]:
    """Write hostname, machine-id, network and fresh host keys into the container's tree;
    return the public keys."""
    _, inside = addresses(index)
    (root / "etc/machine-id").write_text(machine_id + "\n")
    (root / "etc/hostname").write_text(name + "\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {name}\n"
                                    "::1 localhost ip6-localhost ip6-loopback\n")
    (root / "etc/systemd/network/10-lab.network").write_text(
        f"[Match]\nName=host0\n\n[Link]\nMACAddress={mac}\n\n[Network]\nAddress={inside}/30\n")
    ssh = root / "etc/ssh"
    for old in ssh.glob("ssh_host_*"):
        old.unlink()
    publics = []
    for kind, (private, public) in host_keys().items():
        key = ssh / f"ssh_host_{kind}_key"
        key.write_text(private)
        key.chmod(0o600)
        key.with_suffix(".pub").write_text(public + "\n")
        publics.append(public)
    return publics


def launch(labdir: Path, image: Image, directory: Path, name: str, mac: str, index: int,
           machine_id: str) -> list[str]:
    """Mount the overlay, write the identity, boot the container; return its public host keys.

    Returns once the machine side of the veth has its address (SSH may need a second more).
    """
    ensure_inotify_instances()
    rootfs = ensure_rootfs(image)
    root, upper, work = directory / "root", directory / "upper", directory / "work"
    for path in (root, upper, work):
        path.mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={rootfs},upperdir={upper},workdir={work}", root])
    keys = _write_identity(root, name, mac, index, machine_id)
    veth = veth_name(labdir, index)
    cmd = ["systemd-nspawn", "-D", str(root), "-b", "-M", name, "--register=no", "--keep-unit",
           f"--network-veth-extra={veth}:host0", "--resolv-conf=off", "--timezone=off",
           "--link-journal=no", "--console=passive", f"--uuid={uuid.UUID(machine_id)}"]
    with (directory / "console.log").open("w") as console:
        # A session of its own: the container must outlive this process, and a Ctrl-C in the
        # terminal that started it must not reach it (stop() ends it properly).
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console,
                                stderr=subprocess.STDOUT, start_new_session=True)
    (directory / PIDFILE).write_text(f"{proc.pid}\n")
    _address_veth(veth, index, proc, directory)
    return keys


def ensure_inotify_instances(path: Path = INOTIFY_INSTANCES,
                             minimum: int = MIN_INOTIFY_INSTANCES) -> None:
    """Raise ``fs.inotify.max_user_instances`` to `minimum` when it is lower; LabError if we cannot.

    This writes a sysctl of the machine the lab runs on. It is harmless: the limit only caps how
    many inotify instances one user may hold (a guard against leaks), costs no memory until
    instances exist, and is never lowered here. It is not persisted: a reboot restores the default.
    """
    try:
        current = int(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read fs.inotify.max_user_instances ({path}): {exc}") from None
    if current >= minimum:
        return
    try:
        path.write_text(f"{minimum}\n")
    except OSError as exc:
        raise LabError(
            f"fs.inotify.max_user_instances is {current}: containers need at least {minimum} (each "
            f"holds several; past about 16 nspawn fails with \"Attempted to remove disk file system\"). "
            f"Raise it as root: sysctl -w fs.inotify.max_user_instances={minimum} ({exc.strerror})"
        ) from None
    say(f"raised fs.inotify.max_user_instances from {current} to {minimum} (containers need more)")


def _address_veth(veth: str, index: int, proc: subprocess.Popen[bytes], directory: Path) -> None:
    deadline = time.monotonic() + 30
    while not Path(f"/sys/class/net/{veth}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = (directory / "console.log").read_text(errors="replace").strip().splitlines()[-1:]
            raise LabError(f"systemd-nspawn did not start: {tail[0] if tail else 'no output'}")
        time.sleep(0.1)
    outside, _ = addresses(index)
    run(["ip", "addr", "add", f"{outside}/30", "dev", veth])
    run(["ip", "link", "set", veth, "up"])


def stop(labdir: Path, pid: int | None, directory: Path, index: int, timeout: float = 20) -> None:
    """Power the container off (SIGTERM makes nspawn shut it down), unmount, delete the veth."""
    if pid is not None:
        _signal_and_wait(pid, timeout)
    root = directory / "root"
    if os.path.ismount(root):
        run(["umount", "-l", root])
    veth = veth_name(labdir, index)
    if index and Path(f"/sys/class/net/{veth}").exists():
        subprocess.run(["ip", "link", "del", veth], capture_output=True, check=False)


def _signal_and_wait(pid: int, timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie has an empty cmdline)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def lab_veths(labdir: Path) -> list[str]:
    """Machine-side veths of this lab's containers that still exist."""
    return sorted(p.name for p in Path("/sys/class/net").glob(f"{veth_prefix(labdir)}*"))


def lab_mounts(labdir: Path) -> list[str]:
    """Mount points under the lab directory (container overlays, a leftover image mount)."""
    prefix = f"{labdir}/"
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(prefix)]

