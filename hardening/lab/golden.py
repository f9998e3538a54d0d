"""The golden state: the image booted once, then frozen with ``migrate exec:cat > golden.state``.

Every host restores from it instead of booting (seconds instead of half a minute). A saved state
restores only under the same QEMU binary and the same devices, so its key hashes the image key,
QEMU's version, the command line (per-machine parts blanked) and this machine's machine-id: it is
rebuilt whenever one of them changes and never reused on another machine.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hardening.lab.errors import LabError
from hardening.lab.image import SPARE_DISKS, Image
from hardening.lab.ports import free_port
from hardening.lab.proc import run, say
from hardening.lab.qmp import QMP
from hardening.lab.ssh import golden_ssh, locked, wait_ssh, write_golden_known_hosts
from hardening.lab.vm import GOLDEN_MAC, QEMU, Machine, args_template, launch, terminate

# Commands run once before saving, so every clone starts with them in its page cache.
WARM_UP = ("sudo -n true && python3 -c 'import apt, json, subprocess' && "
           "sudo nft list ruleset >/dev/null && usbguard --version >/dev/null && "
           "sudo systemctl is-system-running --wait >/dev/null; sync")


@dataclass(frozen=True)
class Golden:
    """A saved state and the disks it was saved with (never written to again)."""

    directory: Path

    @property
    def state(self) -> Path:
        return self.directory / "golden.state"

    @property
    def disk(self) -> Path:
        return self.directory / "disk.qcow2"

    @property
    def spares(self) -> list[Path]:
        return [self.directory / f"{name}.qcow2" for name, _ in SPARE_DISKS]


def golden_key(image: Image) -> str:
    version = run([QEMU, "--version"]).splitlines()[0]
    machine = Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").exists() else ""
    blob = json.dumps({"image": image.key, "qemu": version, "args": args_template(image),
                       "warm": WARM_UP, "machine": machine})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def ensure_golden(labdir: Path, image: Image) -> Golden:
    """Return the golden state for this image, QEMU and machine, making it if needed."""
    golden = Golden(labdir / "golden" / golden_key(image))
    write_golden_known_hosts(labdir, image.host_keys)
    if (golden.directory / "golden.json").is_file():
        return golden
    _make(labdir, image, golden)
    return golden


def overlay(backing: Path, path: Path, backing_format: str) -> None:
    """A qcow2 overlay; QEMU needs the backing path absolute."""
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing.resolve(), "-F", backing_format,
         path])


def _make(labdir: Path, image: Image, golden: Golden) -> None:
    work = golden.directory.with_name(golden.directory.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    overlay(image.root, work / "disk.qcow2", "raw")
    spares = [work / f"{name}.qcow2" for name, _ in SPARE_DISKS]
    for blank, spare in zip(image.spares, spares, strict=True):
        overlay(blank, spare, "raw")
    say(f"booting the image once to save the golden state {golden.directory.name}")
    started = time.monotonic()
    with locked(labdir):
        port = free_port(labdir)
        machine = Machine("lab-golden", work, work / "disk.qcow2", tuple(spares), port,
                          GOLDEN_MAC)
        qmp = launch(image, machine)
    try:
        booted = wait_ssh(golden_ssh(labdir, port), 300, "golden boot")
        _warm_up(labdir, port)
        say(f"booted in {booted:.0f} s; saving the state")
        _save(qmp, work / "golden.state")
    finally:
        terminate(qmp, machine.pidfile, labdir)
    for name in ("qmp.sock", "qemu.pid"):
        (work / name).unlink(missing_ok=True)
    for disk in (work / "disk.qcow2", *spares):
        disk.chmod(0o444)  # the clones' backing files: never written again
    elapsed = time.monotonic() - started
    (work / "golden.json").write_text(json.dumps({"boot_seconds": round(booted, 1),
                                                  "total_seconds": round(elapsed, 1)}))
    work.rename(golden.directory)
    _prune(labdir / "golden", keep=golden.directory.name)
    say(f"golden state saved in {elapsed:.0f} s")


def _warm_up(labdir: Path, port: int) -> None:
    proc = subprocess.run([*golden_ssh(labdir, port), WARM_UP], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        # A degraded system (a unit failed at boot) still makes a usable golden state.
        say(f"warm-up exit {proc.returncode}: {proc.stderr.strip()[-200:]}")


def _save(qmp: QMP, state: Path) -> None:
    qmp.execute("stop")
    qmp.execute("migrate", {"uri": f"exec:cat > {state}"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        info = qmp.execute("query-migrate")
        status = info.get("status")
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise LabError(f"saving the golden state failed: {info.get('error-desc', status)}")
        time.sleep(0.2)
    raise LabError("saving the golden state took more than 300 s")


def _prune(goldens: Path, keep: str) -> None:
    """Drop states of older images or QEMU versions. Hosts running on one keep their open files."""
    older = sorted((e for e in goldens.iterdir() if e.name != keep), key=lambda e: e.stat().st_mtime)
    for entry in older[:-1]:  # the newest other one: see hardening.lab.image._prune
        shutil.rmtree(entry, ignore_errors=True)
