"""The Lab: set up the image and golden state, start and stop hosts, and describe them.

All state lives in the lab directory (default ``<repo>/.lab``, or ``$HARDENING_LAB_DIR``), so any
number of processes (the CLI, pytest, the demo) see the same running hosts.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import hardening
from hardening.files import write_atomic
from hardening.lab import container, inventory
from hardening.lab.errors import LabError
from hardening.lab.golden import Golden, ensure_golden, golden_key, overlay
from hardening.lab.identity import give_identity, mac_for
from hardening.lab.image import Image, ensure_image, mirror_sources, recipe_key, remove_tree
from hardening.lab.ports import free_port
from hardening.lab.proc import run, say
from hardening.lab.qmp import QMP
from hardening.lab.ssh import (
    close_master,
    ensure_key,
    forget_port,
    golden_ssh,
    locked,
    set_known_keys,
    wait_ssh,
    write_golden_known_hosts,
)
from hardening.lab.vm import QEMU, HostState, LabHost, Machine, launch, pid_of, terminate, wait_running

# Debian packages the machine needs to run the lab (socat: to poke at monitor sockets by hand;
# systemd-container and iproute2: containers).
HOST_PACKAGES = ("qemu-system-x86", "qemu-utils", "debootstrap", "socat", "openssh-client",
                 "e2fsprogs", "systemd-container", "iproute2")
PROFILES = ("terminal", "server", "server-room")
SENSITIVITIES = ("low", "medium", "high")
KINDS = ("vm", "container")
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class Lab:
    """Disposable Debian 12 hosts emulated by QEMU, all kept in one lab directory."""

    def __init__(self, directory: Path | None = None, cache: Path | None = None) -> None:
        """`directory`: default ``<repo>/.lab`` (installed: ``~/.local/state/hardening/.lab``), env
        HARDENING_LAB_DIR overrides.

        `cache` (env HARDENING_LAB_CACHE): another lab directory whose image, golden state and
        SSH key this one uses through symlinks, so a second lab (say, one per test session) costs
        no build. Hosts, known_hosts and ssh_config stay per lab directory.
        """
        env = os.environ.get("HARDENING_LAB_DIR")
        chosen = directory or (Path(env) if env else hardening.STATE_DIR / ".lab")
        self.directory = chosen.resolve()
        env_cache = os.environ.get("HARDENING_LAB_CACHE")
        shared = cache or (Path(env_cache) if env_cache else None)
        self.cache = shared.resolve() if shared else self.directory

    def __repr__(self) -> str:
        return f"Lab({str(self.directory)!r})"

    # ----- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        """Install missing machine packages, then build the image and golden state if needed.

        Idempotent: a second call only checks. Needs root the first time (apt, debootstrap).
        Concurrent setups of one cache wait for each other instead of building twice.
        """
        started = time.monotonic()
        _install_packages()
        for directory in {self.directory, self.cache}:
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)
        with locked(self.cache, "build.lock"):
            key = ensure_key(self.cache)
            image = ensure_image(self.cache, key.with_suffix(".pub").read_text())
            say(f"image {image.key} ready")
            golden = ensure_golden(self.cache, image)
        if self.cache != self.directory:
            self._link_cache()
            write_golden_known_hosts(self.directory, image.host_keys)
        say(f"golden state {golden.directory.name} ready ({time.monotonic() - started:.0f} s)")

    def _link_cache(self) -> None:
        for name in ("id_ed25519", "id_ed25519.pub", "images", "golden"):
            link = self.directory / name
            if link.is_symlink() and link.resolve() == (self.cache / name).resolve():
                continue
            if link.exists() or link.is_symlink():
                raise LabError(f"{link} exists: a lab with a cache must not have its own {name}")
            link.symlink_to(self.cache / name)

    def _ready(self) -> tuple[Image, Golden]:
        """The cached image and golden state, without building anything."""
        pub = self.directory / "id_ed25519.pub"
        if pub.is_file():
            mirror, sources = mirror_sources()
            image = Image(self.directory / "images" / recipe_key(pub.read_text(), mirror, sources))
            if (image.directory / "recipe.json").is_file():
                golden = Golden(self.directory / "golden" / golden_key(image))
                if (golden.directory / "golden.json").is_file():
                    return image, golden
        raise LabError(f"the lab in {self.directory} is not set up: run `hardening lab setup`")

    # ----- hosts ---------------------------------------------------------------------------

    def start(self, name: str, profile: str = "terminal", sensitivity: str = "medium",
              kind: str = "vm") -> LabHost:
        """Start a host and return it once SSH with strict host-key checking works.

        ``kind="vm"`` (default): an emulated machine restored from the golden state, then given
        its identity. ``kind="container"``: a systemd-nspawn container on the machine's kernel
        (about a second; no USB, audit, modules or LUKS; see hardening.lab.container).
        """
        _validate(name, profile, sensitivity, kind)
        if kind == "container":
            return self._start_container(name, profile, sensitivity)
        image, golden = self._ready()
        host = self._launch(image, golden, name, profile, sensitivity)
        try:
            self._identify(host)
        except BaseException:
            self.stop(name)
            raise
        return host

    def start_many(self, specs: Iterable[tuple[str, str, str]], kind: str = "vm") -> list[LabHost]:
        """Start several hosts at once, ``(name, profile, sensitivity)`` each; all or none.

        Restores overlap well (three VMs are ready in about the time of two), so this is the
        quickest way to a small fleet.
        """
        specs = list(specs)
        with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
            futures = [pool.submit(self.start, name, profile, sensitivity, kind)
                       for name, profile, sensitivity in specs]
            wait(futures)
        failed = [exc for f in futures if (exc := f.exception()) is not None]
        if failed:
            for future, (name, _, _) in zip(futures, specs, strict=True):
                if future.exception() is None:
                    self.stop(name)
            raise failed[0]
        return [f.result() for f in futures]

    def _start_container(self, name: str, profile: str, sensitivity: str) -> LabHost:
        image, _ = self._ready()
        directory = self.directory / "hosts" / name
        try:
            # The slot (its 10.233.N.0/30) is chosen from the machine's addresses: the machine-wide
            # lock keeps two lab directories (CI's two workers, two people) from taking the same
            # one between the choice and the address going up.
            with locked(self.directory), locked(container.SLOT_LOCK_DIR, container.SLOT_LOCK):
                self._claim(directory, name)
                index = container.free_index(self.directory)
                state = HostState(name, profile, sensitivity, 22, mac_for(self.directory, name),
                                  machine_id=uuid.uuid4().hex, started=time.time(),
                                  kind="container", address=container.addresses(index)[1],
                                  index=index)
                state.save(directory)
                state.host_keys = container.launch(self.directory, image, directory, name,
                                                   state.mac, index, state.machine_id)
                state.save(directory)
                set_known_keys(self.directory, 22, state.host_keys, state.address)
                self._write_ssh_config()
            host = LabHost(self.directory, state)
            host.wait_ssh(60)
        except BaseException:
            if directory.exists():
                self.stop(name)
            raise
        return host

    def _claim(self, directory: Path, name: str) -> None:
        """Make the host's directory, clearing a dead host of the same name; lock held."""
        if directory.exists():
            if _pid(directory, self.directory) is not None:
                raise LabError(f"lab host {name} is already running")
            self._cleanup(name)
        directory.mkdir(parents=True)

    def _launch(self, image: Image, golden: Golden, name: str, profile: str,
                sensitivity: str) -> LabHost:
        directory = self.directory / "hosts" / name
        with locked(self.directory):
            self._claim(directory, name)
            state = HostState(name, profile, sensitivity, free_port(self.directory),
                              mac_for(self.directory, name), started=time.time())
            state.save(directory)
            overlay(golden.disk, directory / "disk.qcow2", "qcow2")
            for spare in golden.spares:
                overlay(spare, directory / spare.name, "qcow2")
            try:
                qmp = self._launch_on_free_port(image, golden, state, directory)
            except BaseException:
                self._cleanup(name)
                raise
        wait_running(qmp, 120)
        return LabHost(self.directory, state)

    def _launch_on_free_port(self, image: Image, golden: Golden, state: HostState,
                             directory: Path) -> QMP:
        """Launch QEMU; if another lab directory took the port meanwhile, try the next one."""
        for attempt in range(3):
            machine = Machine(state.name, directory, directory / "disk.qcow2",
                              tuple(directory / s.name for s in golden.spares), state.ssh_port, state.mac,
                              incoming=golden.state)
            try:
                return launch(image, machine)
            except LabError as exc:
                if "forwarding" not in str(exc) or attempt == 2:
                    raise
                state.ssh_port = free_port(self.directory, skip={state.ssh_port})
                state.save(directory)
        raise AssertionError("unreachable")

    def _identify(self, host: LabHost) -> None:
        ssh = golden_ssh(self.directory, host.ssh_port)
        wait_ssh(ssh, 120, f"{host.name} (golden key)")
        identity = give_identity(ssh, host.name, host.mac)
        host.state.machine_id = identity.machine_id
        host.state.host_keys = identity.host_keys
        host.state.serial = identity.serial
        host.state.save(host.directory)
        with locked(self.directory):
            set_known_keys(self.directory, host.ssh_port, identity.host_keys)
            self._write_ssh_config()
        host.wait_ssh(60)

    def hosts(self) -> list[LabHost]:
        """The running hosts that have their identity (those still starting are left out)."""
        found = []
        for state_file in sorted((self.directory / "hosts").glob("*/host.json")):
            if _pid(state_file.parent, self.directory) is None:
                continue
            try:
                state = HostState.load(state_file.parent)
            except (OSError, ValueError, TypeError):
                continue  # being written or removed by another process
            if state.host_keys:  # else still starting: no identity yet
                found.append(LabHost(self.directory, state))
        return found

    def host(self, name: str) -> LabHost:
        """A running host by name; LabError if there is none."""
        for host in self.hosts():
            if host.name == name:
                return host
        raise LabError(f"no running lab host named {name!r}")

    def stop(self, name: str) -> None:
        """Stop a host and remove everything it had: process, overlays, sockets, known_hosts."""
        if not (self.directory / "hosts" / name).exists():
            raise LabError(f"no lab host named {name!r}")
        close_master(self.directory, name)
        with locked(self.directory):
            self._cleanup(name)
            self._write_ssh_config()

    def stop_all(self) -> None:
        """Stop every host of this lab, and anything a crashed run left behind."""
        for directory in sorted((self.directory / "hosts").glob("*")):
            self.stop(directory.name)
        for pid in _lab_processes(self.directory):
            _kill(pid)
        for socket_path in self.directory.glob("cm-*"):
            socket_path.unlink(missing_ok=True)
        for mount in sorted(container.lab_mounts(self.directory), key=len, reverse=True):
            run(["umount", "-l", mount])
        for veth in container.lab_veths(self.directory):
            subprocess.run(["ip", "link", "del", veth], capture_output=True, check=False)

    def _cleanup(self, name: str) -> None:
        """Stop and remove one host; the caller holds the lab lock."""
        directory = self.directory / "hosts" / name
        try:
            state: HostState | None = HostState.load(directory)
        except (OSError, ValueError, TypeError):
            state = None
        if state is not None and state.kind == "container":
            container.stop(self.directory, pid_of(directory / container.PIDFILE, self.directory),
                           directory, state.index)
        else:
            terminate(QMP(directory / "qmp.sock", timeout=5), directory / "qemu.pid", self.directory)
        if state is not None:
            forget_port(self.directory, state.ssh_port, state.address)
        remove_tree(directory)  # unmounts a container's overlay first, if still mounted

    # ----- descriptions --------------------------------------------------------------------

    def ssh_config(self) -> Path:
        """Write and return the OpenSSH client config with one ``Host`` block per running host."""
        with locked(self.directory):
            return self._write_ssh_config()

    def _write_ssh_config(self) -> Path:
        path = self.directory / "ssh_config"
        text = inventory.ssh_config_text(self.directory, self.hosts())
        write_atomic(path, text)
        return path

    def write_inventory(self, path: Path | None = None, names: Iterable[str] | None = None) -> Path:
        """Write a pyinfra inventory of the running hosts (default ``<labdir>/inventory.py``), or
        of those of them named in ``names`` (the others serve them: a log host, a backup target)."""
        hosts = self.hosts()
        if names is not None:
            wanted = set(names)
            hosts = [h for h in hosts if h.name in wanted]
        if not hosts:
            raise LabError("no lab host is running: start one with `hardening lab start NAME`")
        target = (path or self.directory / "inventory.py").resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, inventory.inventory_text(self.directory, hosts))
        return target

    def leftovers(self) -> list[str]:
        """What this lab would leave behind now: processes, host directories, sockets."""
        found = [f"process {pid}: {' '.join(argv)[:120]}" for pid, argv in
                 ((p, _argv(p)) for p in _lab_processes(self.directory))]
        found += [f"host directory {d}" for d in sorted((self.directory / "hosts").glob("*"))]
        found += [f"socket {s}" for s in sorted(self.directory.glob("cm-*"))]
        found += [f"mount {m}" for m in container.lab_mounts(self.directory)]
        found += [f"network link {v} (a container's veth)" for v in container.lab_veths(self.directory)]
        return found


def _pid(directory: Path, labdir: Path) -> int | None:
    """The pid of a host's QEMU or systemd-nspawn process, if it runs."""
    return (pid_of(directory / "qemu.pid", labdir)
            or pid_of(directory / container.PIDFILE, labdir))


def _validate(name: str, profile: str, sensitivity: str, kind: str) -> None:
    if not NAME.match(name):
        raise LabError(f"bad host name {name!r}: lower-case letters, digits and -, at most 31")
    if profile not in PROFILES:
        raise LabError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    if sensitivity not in SENSITIVITIES:
        raise LabError(f"unknown sensitivity {sensitivity!r}: expected one of {', '.join(SENSITIVITIES)}")
    if kind not in KINDS:
        raise LabError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")


def _install_packages() -> None:
    missing = [p for p in HOST_PACKAGES if not _installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise LabError(f"missing packages {' '.join(missing)}: install them as root")
    say(f"installing {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
        if proc.returncode != 0:
            raise LabError(f"{' '.join(cmd[:2])} failed: {proc.stderr.strip()[-300:]}")
    if shutil.which(QEMU) is None:
        raise LabError(f"{QEMU} still missing after installing qemu-system-x86")


def _installed(package: str) -> bool:
    try:
        status = run(["dpkg-query", "-W", "-f=${Status}", package])
    except LabError:
        return False
    return status.endswith(" installed")


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _lab_processes(labdir: Path) -> list[int]:
    """QEMU processes and SSH control masters that belong to this lab directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        argv = _argv(int(entry.name))
        if not argv or Path(argv[0]).name not in (QEMU, "ssh", "systemd-nspawn"):
            continue
        if any(f"{labdir}/" in arg for arg in argv):
            found.append(int(entry.name))
    return found


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
