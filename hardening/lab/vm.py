"""One emulated machine: its QEMU command line, its process, and the LabHost handle.

A host lives in ``<labdir>/hosts/<name>/``: qcow2 overlays over the golden disks, the QMP socket,
the pidfile, the serial console log, USB stick images and ``host.json`` (its bookkeeping). QEMU is
daemonized, so hosts outlive the process that started them (the CLI starts and stops them in
separate invocations).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hardening.lab.errors import LabError
from hardening.lab.image import SPARE_DISKS, Image
from hardening.lab.proc import run
from hardening.lab.qmp import QMP
from hardening.lab.ssh import wait_ssh

QEMU = "qemu-system-x86_64"
MEMORY_MB = 768
APPEND = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"
GOLDEN_MAC = "52:54:00:12:34:56"


@dataclass
class Machine:
    """Everything that differs between two QEMU processes of the lab."""

    name: str
    directory: Path
    disk: Path
    spares: tuple[Path, ...]  # data disks; each file's stem is its virtio serial
    ssh_port: int
    mac: str
    incoming: Path | None = None

    @property
    def qmp_socket(self) -> Path:
        return self.directory / "qmp.sock"

    @property
    def pidfile(self) -> Path:
        return self.directory / "qemu.pid"

    @property
    def console(self) -> Path:
        return self.directory / "console.log"


def qemu_args(image: Image, m: Machine) -> list[str]:
    """The QEMU command line. Save and restore must agree on every device, so the USB controller,
    the spare disks and the RNG are always there; only paths, ports, names and the MAC differ."""
    args = [
        QEMU, "-name", m.name, "-machine", "pc", "-accel", "tcg,thread=multi,tb-size=128",
        "-cpu", "max", "-smp", "1", "-m", str(MEMORY_MB),
        "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", APPEND,
        "-drive", f"file={m.disk},if=none,id=root,format=qcow2,discard=unmap",
        "-device", "virtio-blk-pci,drive=root",
        *_spare_args(m.spares),
        "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{m.ssh_port}-:22",
        "-device", f"virtio-net-pci,netdev=n0,mac={m.mac}",
        "-device", "qemu-xhci,id=xhci",
        "-device", "virtio-rng-pci",
        "-smbios", f"type=1,serial={m.name}",
        "-display", "none", "-serial", f"file:{m.console}",
        "-qmp", f"unix:{m.qmp_socket},server=on,wait=off",
        "-daemonize", "-pidfile", str(m.pidfile),
    ]
    if m.incoming is not None:
        args += ["-incoming", f"exec:cat {shlex.quote(str(m.incoming))}"]
    return args


def _spare_args(spares: tuple[Path, ...]) -> list[str]:
    args: list[str] = []
    for path in spares:
        args += ["-drive", f"file={path},if=none,id={path.stem},format=qcow2",
                 "-device", f"virtio-blk-pci,drive={path.stem},serial={path.stem}"]
    return args


def args_template(image: Image) -> list[str]:
    """The command line with the per-machine parts blanked: part of the golden state's key.

    The image's own path is blanked too (its content is in the image key), so a lab directory
    that reaches a shared cache through a symlink computes the same key."""
    spares = tuple(Path(f"/{name}.qcow2") for name, _ in SPARE_DISKS)
    blank = Machine("NAME", Path("/DIR"), Path("/DISK"), spares, 0, "MAC", Path("/STATE"))
    return [arg.replace(str(image.directory), "/IMAGE") for arg in qemu_args(image, blank)]


def launch(image: Image, machine: Machine) -> QMP:
    """Start QEMU daemonized and return a QMP client once its socket answers."""
    machine.directory.mkdir(parents=True, exist_ok=True)
    machine.qmp_socket.unlink(missing_ok=True)
    run(qemu_args(image, machine), timeout=120)
    qmp = QMP(machine.qmp_socket)
    qmp.wait_socket(30)
    return qmp


def wait_running(qmp: QMP, timeout: float) -> None:
    """Wait for an incoming migration to finish and the guest to run."""
    deadline = time.monotonic() + timeout
    while (status := qmp.status()) != "running":
        if status in ("paused", "postmigrate"):
            qmp.execute("cont")
        elif status not in ("inmigrate", "prelaunch") or time.monotonic() > deadline:
            raise LabError(f"QEMU did not restore the golden state (status {status})")
        time.sleep(0.1)


def pid_of(pidfile: Path, labdir: Path) -> int | None:
    """The pid (QEMU or systemd-nspawn) from a pidfile, only if that process is alive and is
    one of this lab's: a stale pidfile must never make us signal an unrelated process."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return None
    ours = (QEMU in cmdline or "systemd-nspawn" in cmdline) and f"{labdir}/" in cmdline
    return pid if ours else None


def terminate(qmp: QMP, pidfile: Path, labdir: Path, timeout: float = 10) -> None:
    """Stop a QEMU process: ``quit`` over QMP, then SIGTERM, then SIGKILL."""
    pid = pid_of(pidfile, labdir)
    if pid is None:
        return
    try:
        qmp.execute("quit")
    except LabError:
        os.kill(pid, signal.SIGTERM)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pid_of(pidfile, labdir) != pid:
                return
            time.sleep(0.1)
        os.kill(pid, sig)


@dataclass
class HostState:
    """What ``host.json`` records about a running host."""

    name: str
    profile: str
    sensitivity: str
    ssh_port: int
    mac: str
    machine_id: str = ""
    serial: str | None = None
    host_keys: list[str] = field(default_factory=list)
    forwards: dict[str, int] = field(default_factory=dict)
    usb: list[str] = field(default_factory=list)
    started: float = 0.0
    kind: str = "vm"  # or "container" (systemd-nspawn)
    address: str = "127.0.0.1"  # where SSH listens: 127.0.0.1 (VM) or the container's veth
    index: int = 0  # a container's slot: its veth is hlab<index>, its subnet 10.233.<index>.0/30

    def save(self, directory: Path) -> None:
        (directory / "host.json").write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, directory: Path) -> HostState:
        return cls(**json.loads((directory / "host.json").read_text()))


class CommandFailed(LabError, subprocess.CalledProcessError):
    """A command run on a lab host exited non-zero (also a CalledProcessError)."""

    def __init__(self, host: str, proc: subprocess.CompletedProcess[str]) -> None:
        subprocess.CalledProcessError.__init__(self, proc.returncode, proc.args, proc.stdout,
                                               proc.stderr)
        self.host = host

    def __str__(self) -> str:
        tail = (self.stderr or self.stdout or "").strip().splitlines()[-1:] or [""]
        return f"{self.host}: `{self.cmd[-1]}` exited {self.returncode}: {tail[0]}"


class LabHost:
    """A running lab host. Get one from ``Lab.start`` or ``Lab.host``; do not build it yourself."""

    def __init__(self, labdir: Path, state: HostState) -> None:
        self.labdir = labdir
        self.state = state
        self.directory = labdir / "hosts" / state.name
        self.qmp = QMP(self.directory / "qmp.sock")

    def __repr__(self) -> str:
        return f"LabHost({self.name!r}, port={self.ssh_port}, profile={self.profile!r})"

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def ssh_port(self) -> int:
        return self.state.ssh_port

    @property
    def address(self) -> str:
        """Where SSH listens: 127.0.0.1 for a VM, the container's own address for a container."""
        return self.state.address

    @property
    def kind(self) -> str:
        """``vm`` (QEMU, its own kernel) or ``container`` (systemd-nspawn, the machine's kernel)."""
        return self.state.kind

    @property
    def profile(self) -> str:
        return self.state.profile

    @property
    def sensitivity(self) -> str:
        return self.state.sensitivity

    @property
    def machine_id(self) -> str:
        return self.state.machine_id

    @property
    def mac(self) -> str:
        return self.state.mac

    @property
    def host_keys(self) -> list[str]:
        """The host's own public SSH host keys ("type base64"), as recorded in known_hosts."""
        return list(self.state.host_keys)

    def ssh_command(self) -> list[str]:
        """``ssh`` with the lab's ssh_config and this host: append a remote command to use it."""
        return ["ssh", "-F", str(self.labdir / "ssh_config"), self.name]

    def run(self, cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a shell command as the ``hardening`` account (prefix ``sudo`` yourself).

        Host keys are checked strictly against the lab's known_hosts. With `check`, a non-zero
        exit raises CommandFailed (a LabError and a subprocess.CalledProcessError).
        """
        try:
            proc = subprocess.run([*self.ssh_command(), "--", cmd], capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            raise LabError(f"{self.name}: `{cmd}` timed out after {timeout:.0f} s") from None
        if check and proc.returncode != 0:
            raise CommandFailed(self.name, proc)
        return proc

    def monitor(self, cmd: str) -> str:
        """Run a QEMU human monitor (HMP) command, e.g. ``info usb``; returns its output."""
        self._need_vm("QEMU monitor")
        return self.qmp.hmp(cmd)

    def _need_vm(self, what: str) -> None:
        if self.kind != "vm":
            raise LabError(f"{self.name} is a container: it has no {what} (use an emulated host)")

    def usb_plug_storage(self, id: str, size_mb: int = 16) -> Path:
        """Hot-plug a blank USB stick of `size_mb` MiB (serial = `id`) on the xhci controller.

        Returns the stick's raw image on the machine, e.g. to put files on it beforehand.
        """
        self._need_vm("USB")
        _check_id(id)
        image = self.directory / f"usb-{id}.img"
        if not image.exists():
            with image.open("wb") as handle:
                handle.truncate(size_mb << 20)
        self._hmp_ok(f"drive_add 0 if=none,id=drv-{id},file={image},format=raw")
        self._hmp_ok(f"device_add usb-storage,bus=xhci.0,drive=drv-{id},id={id},serial={id}")
        self._remember_usb(id, add=True)
        return image

    def usb_plug_keyboard(self, id: str) -> None:
        """Hot-plug a USB keyboard (HID class 03) on the xhci controller."""
        self._need_vm("USB")
        _check_id(id)
        self._hmp_ok(f"device_add usb-kbd,bus=xhci.0,id={id}")
        self._remember_usb(id, add=True)

    def usb_plug_network(self, id: str, subnet: str = "10.0.9.0/24") -> None:
        """Hot-plug a USB network adapter (QEMU ``usb-net``: RNDIS/CDC Ethernet, 0525:a4a2, interface
        classes 02 and 0a; the guest names it ``usb0``) on the xhci controller.

        Its other end is a user-mode network of its own (``subnet``, QEMU's DHCP and gateway at .2)
        with ``restrict=on``: the guest can reach nothing beyond it. Unplug it with
        :meth:`usb_unplug_network` (that also removes the network backend).
        """
        self._need_vm("USB")
        _check_id(id)
        self._hmp_ok(f"netdev_add user,id=nd-{id},net={subnet},restrict=on")
        try:
            self._hmp_ok(f"device_add usb-net,bus=xhci.0,netdev=nd-{id},id={id}")
        except LabError:
            self.monitor(f"netdev_del nd-{id}")
            raise
        self._remember_usb(id, add=True)

    def usb_unplug_network(self, id: str) -> None:
        """Unplug a USB network adapter plugged by :meth:`usb_plug_network`, and its backend."""
        self.usb_unplug(id)
        self._hmp_ok(f"netdev_del nd-{id}")

    def usb_plug_serial(self, id: str) -> Path:
        """Hot-plug a USB serial adapter (QEMU ``usb-serial``: an FTDI FT232, 0403:6001, interface
        class ff; the guest names it ``ttyUSB<n>``) on the xhci controller.

        What the guest writes to it goes to a file on the machine, which is returned. (A ``file``
        backend, not ``null``: QEMU attaches a usb-serial only once its backend reports itself
        open, which ``null`` never does.) Unplug it with :meth:`usb_unplug_serial`.
        """
        self._need_vm("USB")
        _check_id(id)
        output = self.directory / f"serial-{id}.out"
        self._hmp_ok(f"chardev-add file,id=cd-{id},path={output}")
        try:
            self._hmp_ok(f"device_add usb-serial,bus=xhci.0,chardev=cd-{id},id={id}")
        except LabError:
            self.monitor(f"chardev-remove cd-{id}")
            raise
        self._remember_usb(id, add=True)
        return output

    def usb_unplug_serial(self, id: str, timeout: float = 10) -> None:
        """Unplug a USB serial adapter plugged by :meth:`usb_plug_serial`, and its backend (which
        QEMU frees only once the device is gone)."""
        self.usb_unplug(id)
        deadline = time.monotonic() + timeout
        while (out := self.monitor(f"chardev-remove cd-{id}").strip()) and time.monotonic() < deadline:
            time.sleep(0.2)
        if out:
            raise LabError(f"{self.name}: `chardev-remove cd-{id}`: {out}")

    def usb_unplug(self, id: str) -> None:
        """Unplug a USB device plugged by this lab (QEMU also drops a stick's drive)."""
        self._hmp_ok(f"device_del {id}")
        self._remember_usb(id, add=False)

    def forward(self, guest_port: int) -> int:
        """Forward a free port on 127.0.0.1 to `guest_port` in the guest; returns the host port."""
        from hardening.lab.ports import free_port

        self._need_vm(f"port forwarding (reach it at {self.address}:{guest_port})")
        key = str(guest_port)
        if key in self.state.forwards:
            return self.state.forwards[key]
        port = free_port(self.labdir)
        self._hmp_ok(f"hostfwd_add n0 tcp:127.0.0.1:{port}-:{guest_port}")
        self.state.forwards[key] = port
        self.state.save(self.directory)
        return port

    def reboot(self, timeout: float = 180) -> float:
        """Reboot the guest, wait until SSH works again and reset its clock; returns seconds."""
        from hardening.lab.ssh import close_master

        self._need_vm("reboot support (nspawn exits when its container reboots)")
        started = time.monotonic()
        boot_id = self.run("cat /proc/sys/kernel/random/boot_id").stdout.strip()
        self.run("sudo systemd-run --on-active=1 systemctl reboot", timeout=30)
        close_master(self.labdir, self.name)
        # No ControlMaster while the guest goes down: a master on a dying connection hangs.
        direct = [*self.ssh_command()[:-1], "-o", "ControlPath=none", self.name]
        deadline = started + timeout
        while time.monotonic() < deadline:
            time.sleep(2)
            try:
                proc = subprocess.run([*direct, "cat /proc/sys/kernel/random/boot_id"],
                                      capture_output=True, text=True, timeout=20,
                                      stdin=subprocess.DEVNULL, check=False)
            except subprocess.TimeoutExpired:
                continue
            if proc.returncode == 0 and proc.stdout.strip() not in ("", boot_id):
                self._after_boot()
                return time.monotonic() - started
        raise LabError(f"{self.name}: not back {timeout:.0f} s after reboot")

    def _after_boot(self) -> None:
        """Reset the clock; re-read the DMI serial, which is this host's own only after a boot
        (a restored clone still reports the golden machine's, read at its boot)."""
        out = self.run(f"sudo sh -c 'date -u -s @{time.time():.3f} >/dev/null; "
                       "cat /sys/class/dmi/id/product_serial'").stdout.strip()
        self.state.serial = out or None
        self.state.save(self.directory)

    def wait_ssh(self, timeout: float = 120) -> float:
        return wait_ssh(self.ssh_command(), timeout, self.name)

    def _hmp_ok(self, cmd: str) -> None:
        """HMP commands report errors as text, not as QMP errors: any output means failure."""
        out = self.monitor(cmd).strip()
        if out and not cmd.startswith("drive_add"):
            raise LabError(f"{self.name}: `{cmd}`: {out}")
        if cmd.startswith("drive_add") and out not in ("", "OK"):
            raise LabError(f"{self.name}: `{cmd}`: {out}")

    def _remember_usb(self, id: str, add: bool) -> None:
        usb = [u for u in self.state.usb if u != id]
        self.state.usb = [*usb, id] if add else usb
        self.state.save(self.directory)


def _check_id(value: str) -> None:
    if not value or not value.replace("-", "").replace("_", "").isalnum():
        raise LabError(f"bad USB device id {value!r}: letters, digits, - and _ only")
