"""``hardening verify``: run checks/ against hosts, one pytest process per host, in parallel.

Each host is first reached with a preflight over the same generated ssh_config the checks use
(strict host keys, a known_hosts file, a ControlPath so the checks reuse one connection), so an
unreachable host, a changed host key or a refused sudo is reported in one line per host instead
of as a wall of failed checks. Hosts that pass the preflight are verified by
``python -m pytest checks/ -p hardening.evidence.plugin`` (testinfra's ssh backend), which writes
``<run>/<host>.json`` and ``.html``; this module then writes the run index and calls the
history hook (sealing, drift).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardening import ROOT, __version__
from hardening import attestations as attestations_mod
from hardening.errors import ConfigError, Exit, worst
from hardening.evidence import model
from hardening.evidence.render import render_index
from hardening.inventory import Host, Inventory
from hardening.profiles import Profiles

CHECKS = ROOT / "checks"
RUN_SCHEMA = "hardening.run/1"
PREFLIGHT_TIMEOUT = 60


@dataclass
class Target:
    """One host to verify: from the inventory, or the machine we run on (``--local``)."""

    name: str
    profile: str
    sensitivity: str | None
    local: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> str | None:
        return self.data.get("ssh_user")

    @property
    def sudo(self) -> bool:
        if self.local:
            return os.geteuid() != 0
        return self.user not in (None, "root") or bool(self.data.get("_sudo"))


@dataclass
class HostResult:
    name: str
    profile: str | None
    sensitivity: str | None
    verdict: str  # pass | fail | error | unreachable
    summary: dict[str, int] = field(default_factory=dict)
    json: str | None = None
    html: str | None = None
    message: str = ""
    reason: str = ""  # for unreachable: unreachable | host-key | auth | sudo | crashed


@dataclass
class RunResult:
    run_dir: Path
    hosts: list[HostResult]
    regressions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> Exit:
        codes = [Exit.OK]
        for host in self.hosts:
            if host.verdict == "unreachable":
                codes.append(Exit.UNREACHABLE)
            elif host.verdict in ("fail", "error"):
                codes.append(Exit.NONCOMPLIANT)
        if self.regressions:
            codes.append(Exit.REGRESSION)
        return worst(*codes)


Progress = Callable[[str], None]


def targets_from_inventory(inventory: Inventory, limit: tuple[str, ...], profiles: Profiles) -> list[Target]:
    hosts: list[Host] = inventory.select(limit)
    if not hosts:
        raise ConfigError(str(inventory.path), "no host selected")
    for host in hosts:
        host.resolve(profiles)
    return [Target(h.name, h.profile_name, h.sensitivity, data=h.data) for h in hosts]


def ssh_config(targets: list[Target], workdir: Path) -> Path:
    """An OpenSSH client config: strict host keys, batch mode, one shared connection per host."""
    lines: list[str] = []
    for t in targets:
        d = t.data
        known = d.get("ssh_known_hosts_file") or str(Path.home() / ".ssh" / "known_hosts")
        lines += [f"Host {t.name}",
                  f"  HostName {d.get('ssh_hostname') or t.name}",
                  f"  Port {int(d.get('ssh_port') or 22)}"]
        if t.user:
            lines.append(f"  User {t.user}")
        if d.get("ssh_key"):
            lines += [f"  IdentityFile {d['ssh_key']}", "  IdentitiesOnly yes"]
        lines += [f"  UserKnownHostsFile {known}",
                  "  StrictHostKeyChecking yes",
                  "  BatchMode yes",
                  "  ConnectTimeout 10",
                  "  ServerAliveInterval 15",
                  "  ControlMaster auto",
                  f"  ControlPath {workdir}/cm-%C",
                  "  ControlPersist 120",
                  "  LogLevel ERROR",
                  ""]
    path = workdir / "ssh_config"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def classify_ssh_failure(rc: int, stderr: str, sudo: bool) -> tuple[str, str]:
    """(reason, message) for a failed preflight, from what ssh and sudo printed."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else f"exit {rc}"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key verification failed" in text:
        return "host-key", f"host key verification failed (not the key in known_hosts): {last}"
    if "Permission denied" in text and rc == 255:
        return "auth", f"SSH login refused: {last}"
    if rc == 255:
        return "unreachable", f"unreachable: {last}"
    if sudo and ("password is required" in text or "sudoers" in text or "may not run sudo" in text
                 or "not allowed" in text):
        return "sudo", f"sudo refused for the checking account (needs passwordless sudo): {last}"
    return "unreachable", f"preflight failed: {last}"


def preflight(target: Target, config: Path) -> tuple[str, str] | None:
    """None when the host answers (and sudo works where needed); else (reason, message)."""
    if target.local:
        return None
    remote = "sudo -n true" if target.sudo else "true"
    try:
        proc = subprocess.run(["ssh", "-F", str(config), target.name, remote], capture_output=True,
                              text=True, timeout=PREFLIGHT_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "unreachable", f"unreachable: no answer within {PREFLIGHT_TIMEOUT} s"
    if proc.returncode == 0:
        return None
    return classify_ssh_failure(proc.returncode, proc.stderr, target.sudo)


def pytest_command(target: Target, *, run_id: str, run_dir: Path, events: Path, config: Path | None,
                   inventory: Path | None, profiles_dir: Path, measures: tuple[str, ...],
                   attestations: Path | None = None) -> list[str]:
    paths = [str(CHECKS / f"test_{m}.py") for m in measures] or [str(CHECKS)]
    cmd = [sys.executable, "-m", "pytest", *paths, "-p", "hardening.evidence.plugin",
           "-p", "no:cacheprovider", "-q", "--no-header", "-rN", "--tb=no",
           "-c", str(CHECKS / "pytest.ini"), "--rootdir", str(CHECKS),
           "--hardening-out", str(run_dir), "--hardening-host", target.name,
           "--hardening-run-id", run_id, "--hardening-events", str(events),
           "--hardening-profiles", str(profiles_dir),
           "--hardening-mode", "local" if target.local else "ssh"]
    if target.local:
        cmd += ["--hosts", "local://", "--hardening-profile", target.profile]
        if target.sensitivity:
            cmd += ["--hardening-sensitivity", target.sensitivity]
    else:
        assert config is not None and inventory is not None
        cmd += ["--hosts", f"ssh://{target.name}", "--ssh-config", str(config),
                "--hardening-inventory", str(inventory)]
    if attestations:
        cmd += ["--hardening-attestations", str(attestations)]
    if target.sudo:
        cmd.append("--sudo")
    return cmd


class _Watcher:
    """Reads the per-host JSON-lines progress files and reports changes every few seconds."""

    def __init__(self, events: dict[str, Path], progress: Progress, every: float = 5.0) -> None:
        self.events = events
        self.progress = progress
        self.every = every
        self.done: set[str] = set()
        self._stop = threading.Event()
        self._last = ""
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def counts(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "error": 0, "not_applicable": 0}
        for path in self.events.values():
            if path.exists():
                for line in path.read_text(encoding="utf-8").splitlines():
                    event = json.loads(line)
                    if event.get("event") == "check":
                        counts[event["status"]] += 1
        return counts

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            c = self.counts()
            line = (f"  [{time.monotonic() - self._start:4.0f}s] {len(self.done)}/{len(self.events)} hosts"
                    f" done · checks: {c['pass']} pass, {c['fail']} fail, {c['error']} error,"
                    f" {c['not_applicable']} n/a")
            if line.split("]", 1)[1] != self._last:
                self._last = line.split("]", 1)[1]
                self.progress(line)


def _verify_host(target: Target, *, run_id: str, run_dir: Path, workdir: Path, config: Path | None,
                 inventory: Path | None, profiles_dir: Path, measures: tuple[str, ...],
                 events: Path, attestations: Path | None) -> HostResult:
    failure = preflight(target, config) if config else None
    if failure:
        reason, message = failure
        return HostResult(target.name, target.profile, target.sensitivity, "unreachable",
                          message=message, reason=reason)
    cmd = pytest_command(target, run_id=run_id, run_dir=run_dir, events=events, config=config,
                         inventory=inventory, profiles_dir=profiles_dir, measures=measures,
                         attestations=attestations)
    log = workdir / f"{target.name}.log"
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              cwd=ROOT, check=False)
    doc_path = model.host_file(run_dir, target.name, "json")
    if doc_path.exists() and str(model.read(doc_path).get("error") or "").startswith("connection lost"):
        return HostResult(target.name, target.profile, target.sensitivity, "unreachable",
                          message=model.read(doc_path)["error"], reason="connection-lost",
                          json=doc_path.name, html=model.host_file(run_dir, target.name, "html").name)
    if proc.returncode not in (0, 1) or not doc_path.exists():
        tail = " | ".join(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:])
        return HostResult(target.name, target.profile, target.sensitivity, "unreachable",
                          message=f"checks did not complete (pytest exit {proc.returncode}): {tail}",
                          reason="crashed")
    doc = model.read(doc_path)
    return HostResult(target.name, target.profile, doc["profile"]["sensitivity"] if doc["profile"] else None,
                      doc["verdict"], doc["summary"], doc_path.name,
                      model.host_file(run_dir, target.name, "html").name, doc.get("error") or "")


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def run(targets: list[Target], *, evidence_root: Path, inventory: Path | None, profiles_dir: Path,
        measures: tuple[str, ...] = (), parallel: int = 4, progress: Progress = print,
        attestations: Path | None = None) -> RunResult:
    """Verify every target; returns the per-host results and the run directory."""
    if attestations:
        attestations_mod.load(attestations)  # a broken file is a config error before anything runs
    for name in measures:
        if not (CHECKS / f"test_{name}.py").is_file():
            raise ConfigError("--measure", f"no checks for measure {name!r} (no checks/test_{name}.py)")
    run_id = new_run_id()
    run_dir = evidence_root / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    started = _now()
    workdir = Path(tempfile.mkdtemp(prefix="hardening-"))
    try:
        config = None if all(t.local for t in targets) else ssh_config(targets, workdir)
        events = {t.name: workdir / f"{t.name}.events" for t in targets}
        progress(f"verifying {len(targets)} host(s), run {run_id}")
        with _Watcher(events, progress) as watcher, ThreadPoolExecutor(max(1, parallel)) as pool:
            def one(t: Target) -> HostResult:
                result = _verify_host(t, run_id=run_id, run_dir=run_dir, workdir=workdir, config=config,
                                      inventory=inventory, profiles_dir=profiles_dir, measures=measures,
                                      events=events[t.name], attestations=attestations)
                watcher.done.add(t.name)
                progress(_host_line(result))
                return result
            results = list(pool.map(one, targets))
        if config:
            _close_masters(targets, config)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = RunResult(run_dir, results)
    write_index(result, run_id=run_id, started=started, inventory=inventory)
    result.regressions, result.notes = _after_run(run_dir)
    return result


def _after_run(run_dir: Path) -> tuple[list[str], list[str]]:
    """Seal the run and compare it with the previous one (hardening.evidence.history)."""
    from hardening.evidence import history

    messages: list[str] = history.after_run(run_dir)
    regressions = [m for m in messages if not m.startswith("note:")]
    notes = [m.removeprefix("note:").strip() for m in messages if m.startswith("note:")]
    return regressions, notes


def _host_line(r: HostResult) -> str:
    if r.verdict == "unreachable":
        return f"  {r.name}: NOT VERIFIED ({r.reason}) {r.message}"
    s = r.summary
    return (f"  {r.name}: {r.verdict.upper()} — {s.get('pass', 0)} pass, {s.get('fail', 0)} fail, "
            f"{s.get('error', 0)} error, {s.get('not_applicable', 0)} n/a")


def _close_masters(targets: list[Target], config: Path) -> None:
    for t in targets:
        subprocess.run(["ssh", "-F", str(config), "-O", "exit", t.name], capture_output=True,
                       timeout=10, check=False, stdin=subprocess.DEVNULL)


def write_index(result: RunResult, *, run_id: str, started: str, inventory: Path | None) -> Path:
    index = {
        "schema": RUN_SCHEMA,
        "run_id": run_id,
        "started": started,
        "finished": _now(),
        "tool_version": __version__,
        "inventory": str(inventory) if inventory else None,
        "hosts": [h.__dict__ for h in result.hosts],
    }
    path = result.run_dir / "index.json"
    path.write_text(json.dumps(index, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (result.run_dir / "index.html").write_text(render_index(index), encoding="utf-8")
    return path


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
