"""``hardening deploy``: apply the measures with pyinfra's CLI, then confirm lockout-safe changes.

pyinfra runs as a subprocess (its CLI plans hosts concurrently and keeps per-host branching
correct; importing it here would also monkey-patch this process with gevent). After it has
finished, every host is reached again over a NEW SSH connection: changes that could cut the
tool off (firewall, sshd) are armed with an automatic rollback on the host and only made
permanent by ``hardening-confirm`` over that fresh connection. A host that cannot be reached
again rolls itself back, and the deploy reports it as failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hardening import DEPLOYS, IN_CHECKOUT, ROOT
from hardening import measures as registry
from hardening import plan as plan_mod
from hardening.errors import ConfigError, Exit, worst
from hardening.inventory import Inventory
from hardening.measures import firewall as firewall_measure
from hardening.plan import Plan
from hardening.profiles import Profiles
from hardening.transport import classify_ssh_failure, ssh_config

# Exit statuses of hardening-confirm (deploys/_rollback.py): 0 confirmed or nothing pending,
# 1 a commit failed, 2 a change had already rolled back before it could be confirmed.
RECONNECT_ATTEMPTS = 4
RECONNECT_PAUSE = 5.0
CONFIRM_FAILED = {1: "a pending change could not be made permanent; it will roll back",
                  2: "a change rolled back before it could be confirmed"}


def available() -> list[str]:
    """The measures with a deploy, in the order they run (from the registry)."""
    return registry.deploy_order()


@dataclass
class HostChanges:
    """What pyinfra did (or, with --dry, would do) on one host, by operation name."""

    changed: list[str] = field(default_factory=list)
    maybe: list[str] = field(default_factory=list)  # --dry: depends on an earlier change (_if)
    failed: list[str] = field(default_factory=list)
    unchanged: int = 0


@dataclass
class DeployResult:
    pyinfra_exit: int
    confirmed: dict[str, str]
    unreachable: dict[str, str]
    failed: dict[str, str] = field(default_factory=dict)
    hosts: dict[str, HostChanges] = field(default_factory=dict)

    @property
    def exit_code(self) -> Exit:
        codes = [Exit.OK]
        if self.pyinfra_exit != 0 or self.failed or any(h.failed for h in self.hosts.values()):
            codes.append(Exit.NONCOMPLIANT)
        if self.unreachable:
            codes.append(Exit.UNREACHABLE)
        return worst(*codes)


def pyinfra_command(inventory: Path, limit: tuple[str, ...], dry: bool, parallel: int) -> list[str]:
    # --json: the plan and results on stdout for us; progress and --diff output on stderr for the user.
    cmd = [str(Path(sys.executable).with_name("pyinfra")), str(inventory), str(DEPLOYS / "main.py"),
           "--parallel", str(parallel), "--diff", "--json"]
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
    chosen = [m for m in names if not measures or m in measures]
    hosts = inventory.select(limit)
    if not hosts:
        raise ConfigError(str(inventory.path), "no host selected")
    profiles = Profiles(profiles_dir)
    plans = [plan_mod.for_host(h, h.resolve(profiles), chosen) for h in hosts]
    with tempfile.TemporaryDirectory(prefix="hardening-deploy-") as tmp:
        env = {**os.environ, "HARDENING_PLANS": str(plan_mod.write(plans, Path(tmp) / "plans.json"))}
        if IN_CHECKOUT:  # deploys/ is a top-level package only in a checkout
            env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.run(pyinfra_command(inventory.path, limit, dry, parallel), cwd=tmp, env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, check=False)
    result = DeployResult(proc.returncode, {}, {}, hosts=parse_pyinfra_json(proc.stdout, dry))
    for plan in plans:  # a host whose run stopped (pyinfra: "No hosts remaining!") still gets its row
        if plan.name not in result.hosts and proc.returncode != 0:
            result.hosts[plan.name] = HostChanges(failed=["its run stopped before pyinfra reported results "
                                                          "(see pyinfra's messages above)"])
    if dry:
        return result
    confirm(plans, result)
    return result


def parse_pyinfra_json(stdout: str, dry: bool) -> dict[str, HostChanges]:
    """Per host, the operations that changed (or would change) and those that failed."""
    try:
        payload = json.loads(stdout[stdout.index("{"):]) if "{" in stdout else {}
    except ValueError:
        return {}
    hosts: dict[str, HostChanges] = {}
    if dry or not payload.get("results"):
        for op in payload.get("plan") or []:
            for name in op.get("hosts_with_change", []):
                hosts.setdefault(name, HostChanges()).changed.append(op["name"])
            for name in op.get("hosts_with_conditional_change", []):
                hosts.setdefault(name, HostChanges()).maybe.append(op["name"])
        return hosts
    for op in payload["results"].get("operations", []):
        for name in op.get("success", []):
            hosts.setdefault(name, HostChanges()).changed.append(op["name"])
        for name in op.get("error", []):
            hosts.setdefault(name, HostChanges()).failed.append(op["name"])
        for name in op.get("no_change", []):
            hosts.setdefault(name, HostChanges()).unchanged += 1
    return hosts


def confirm_remote(sudo: bool) -> str:
    """Run hardening-confirm wherever it is installed: it confirms what is pending, and also
    reports (exit 2) a change that already rolled back before this connection came."""
    command = firewall_measure.confirm_command() if sudo else firewall_measure.CONFIRM_PATH
    return (f"if [ -x {firewall_measure.CONFIRM_PATH} ]; then {command}; "
            f"else echo 'nothing pending'; fi")


def _reconnect(config: Path, t: Plan) -> subprocess.CompletedProcess[str] | None:
    """A new connection, retried for a few seconds: sshd refuses connections while it reloads.

    The rollback timeout (confirm_timeout, 120 s by default) leaves room for these retries; a host key mismatch
    or a refused login is never retried.
    """
    proc = None
    for attempt in range(RECONNECT_ATTEMPTS):
        try:
            proc = subprocess.run(["ssh", "-F", str(config), "-o", "ControlMaster=no", "-o",
                                   "ControlPath=none", t.name, confirm_remote(t.sudo)],
                                  capture_output=True, text=True, timeout=90,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            return None
        reason = classify_ssh_failure(proc.returncode, proc.stderr, t.sudo)[0] if proc.returncode else ""
        if reason != "unreachable" or attempt == RECONNECT_ATTEMPTS - 1:
            return proc
        time.sleep(RECONNECT_PAUSE)
    return proc


def confirm(targets: list[Plan], result: DeployResult) -> None:
    """Reach each host over a NEW connection (no shared master) and make pending changes permanent."""
    with tempfile.TemporaryDirectory(prefix="hardening-confirm-") as tmp:
        config = ssh_config(targets, Path(tmp))
        for t in targets:
            proc = _reconnect(config, t)
            if proc is None:
                result.unreachable[t.name] = "no answer within 90 s"
                continue
            output = proc.stdout.strip()
            if proc.returncode == 0:
                result.confirmed[t.name] = output
            elif proc.returncode in CONFIRM_FAILED:
                result.failed[t.name] = f"{CONFIRM_FAILED[proc.returncode]}: {output}"
            else:
                result.unreachable[t.name] = classify_ssh_failure(proc.returncode, proc.stderr, t.sudo)[1]
