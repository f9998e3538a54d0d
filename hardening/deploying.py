"""``hardening deploy``: apply the measures with pyinfra's CLI, then confirm lockout-safe changes.

pyinfra runs as a subprocess (its CLI plans hosts concurrently and keeps per-host branching
correct; importing it here would also monkey-patch this process with gevent). After it has
finished, every host is reached again over a NEW SSH connection: changes that could cut the
tool off (firewall, sshd) are armed with an automatic rollback on the host and only made
permanent by ``hardening-confirm`` over that fresh connection. A host that cannot be reached
again rolls itself back, and the deploy reports it as failed.
"""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from hardening import ROOT
from hardening.errors import ConfigError, Exit, worst
from hardening.inventory import Inventory
from hardening.profiles import Profiles, Resolved
from hardening.verify import Target, classify_ssh_failure, ssh_config

DEPLOYS = ROOT / "deploys"
# Packages and users first; changes that can lock the tool out (sshd, firewall) last, so that
# a rollback of those cannot leave the earlier measures half-applied.
ORDER: tuple[str, ...] = ("patching", "auth", "encryption", "timeouts", "admin", "terminal",
                          "usb", "firewall")
CONFIRM = ("if [ -d /run/hardening/pending ] && [ -n \"$(ls -A /run/hardening/pending)\" ]; "
           "then /usr/local/sbin/hardening-confirm; else echo 'nothing pending'; fi")


def available() -> list[str]:
    return [name for name in ORDER if (DEPLOYS / f"{name}.py").is_file()]


def selected_measures() -> list[str]:
    wanted = [m for m in os.environ.get("HARDENING_MEASURES", "").split(",") if m]
    names = available()
    return [m for m in names if m in wanted] if wanted else names


def load_measure(name: str) -> ModuleType:
    return importlib.import_module(f"deploys.{name}")


def resolve_profile(host_name: str, profile: object, sensitivity: object) -> Resolved:
    directory = Path(os.environ.get("HARDENING_PROFILES") or ROOT / "hwprofiles")
    if not isinstance(profile, str):
        raise ConfigError("inventory", "expected profile: <name>", key=f"host {host_name}: profile")
    return Profiles(directory).resolve(profile, sensitivity if isinstance(sensitivity, str) else None)


@dataclass
class DeployResult:
    pyinfra_exit: int
    confirmed: dict[str, str]
    unreachable: dict[str, str]

    @property
    def exit_code(self) -> Exit:
        codes = [Exit.OK]
        if self.pyinfra_exit != 0:
            codes.append(Exit.NONCOMPLIANT)
        if self.unreachable:
            codes.append(Exit.UNREACHABLE)
        return worst(*codes)


def pyinfra_command(inventory: Path, limit: tuple[str, ...], dry: bool, parallel: int) -> list[str]:
    cmd = [str(Path(sys.executable).with_name("pyinfra")), str(inventory), str(DEPLOYS / "main.py"),
           "--parallel", str(parallel), "--diff"]
    cmd.append("--dry" if dry else "-y")
    for item in limit:
        cmd += ["--limit", item]
    return cmd


def run(inventory: Inventory, *, limit: tuple[str, ...], measures: tuple[str, ...], dry: bool,
        parallel: int, profiles_dir: Path) -> DeployResult:
    names = available()
    for name in measures:
        if name not in names:
            raise ConfigError("--measure", f"no deploy for measure {name!r} (have: {', '.join(names)})")
    hosts = inventory.select(limit)
    profiles = Profiles(profiles_dir)
    for host in hosts:
        host.resolve(profiles)
    env = {**os.environ, "HARDENING_MEASURES": ",".join(measures),
           "HARDENING_PROFILES": str(profiles_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(pyinfra_command(inventory.path, limit, dry, parallel), cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, check=False)
    if dry:
        return DeployResult(proc.returncode, {}, {})
    targets = [Target(h.name, h.profile_name, h.sensitivity, data=h.data) for h in hosts]
    confirmed, unreachable = confirm(targets)
    return DeployResult(proc.returncode, confirmed, unreachable)


def confirm(targets: list[Target]) -> tuple[dict[str, str], dict[str, str]]:
    """Reach each host over a fresh connection and make pending changes permanent."""
    confirmed: dict[str, str] = {}
    unreachable: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="hardening-confirm-") as tmp:
        config = ssh_config(targets, Path(tmp))
        for t in targets:
            remote = f"sudo -n sh -c {shlex.quote(CONFIRM)}" if t.sudo else CONFIRM
            proc = subprocess.run(["ssh", "-F", str(config), "-o", "ControlMaster=no", "-o",
                                   "ControlPath=none", t.name, remote], capture_output=True, text=True,
                                  timeout=90, stdin=subprocess.DEVNULL, check=False)
            if proc.returncode == 0:
                confirmed[t.name] = proc.stdout.strip()
            else:
                unreachable[t.name] = classify_ssh_failure(proc.returncode, proc.stderr, t.sudo)[1]
    return confirmed, unreachable
