"""``hardening verify``: judge every host against its plan in one pytest run of checks/.

The parent resolves each host once into a Plan (hardening.plan) and writes them to one file.
One pytest process (``-p hardening.evidence.plugin``) then observes every host once, in
parallel (one SSH session and one sudo per host, which also tells an unreachable host, a
changed host key or a refused sudo apart), judges the observations and writes
``<run>/<host>.json`` and ``.html`` and a typed result per host. This module prints progress,
writes the run index and seals the run (hardening.evidence.history).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hardening import CHECKS, IN_CHECKOUT, ROOT, __version__
from hardening import attestations as attestations_mod
from hardening import measures as registry
from hardening import plan as plan_mod
from hardening import rooms as rooms_mod
from hardening import waivers as waivers_mod
from hardening.errors import ConfigError, Exit, worst
from hardening.evidence.model import STATUSES
from hardening.evidence.plugin import RESULTS
from hardening.evidence.render import render_index
from hardening.inventory import Inventory
from hardening.plan import Plan
from hardening.profiles import Profiles
from hardening.results import EXPIRING_DAYS
from hardening.transport import ssh_config

RUN_SCHEMA = "hardening.run/1"


@dataclass
class HostResult:
    name: str
    profile: str | None
    sensitivity: str | None
    verdict: str  # pass | not_evaluated | not_configured | fail | error | unreachable (hardening.results)
    summary: dict[str, int] = field(default_factory=dict)
    json: str | None = None
    html: str | None = None
    message: str = ""
    reason: str = ""  # for unreachable: unreachable | host-key | auth | sudo | connection-lost | crashed
    retention_days: int | None = None  # from the plan: how long this host's evidence is kept
    attestations: dict[str, int] = field(default_factory=dict)  # attestation results (hardening.results)
    expiring: list[str] = field(default_factory=list)  # attestations and waivers about to end


@dataclass
class RoomResult:
    """A server room verified with its members (hardening.rooms): its document in the run."""

    name: str
    verdict: str  # pass | not_evaluated | not_configured | fail | error (hardening.results)
    json: str
    summary: dict[str, int] = field(default_factory=dict)
    attestations: dict[str, int] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Ended:
    """One check of one host, with the message it ended with."""

    host: str
    check: str
    message: str


@dataclass
class RunResult:
    run_dir: Path
    hosts: list[HostResult]
    regressions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rooms: list[RoomResult] = field(default_factory=list)

    @property
    def exit_code(self) -> Exit:
        codes = [Exit.OK]
        for room in self.rooms:
            if room.verdict in ("fail", "error"):
                codes.append(Exit.NONCOMPLIANT)
            elif room.verdict in ("not_configured", "not_evaluated"):
                codes.append(Exit.INCOMPLETE)
        for host in self.hosts:
            if host.verdict == "unreachable":
                codes.append(Exit.UNREACHABLE)
            elif host.verdict in ("fail", "error"):
                codes.append(Exit.NONCOMPLIANT)
            elif host.verdict in ("not_configured", "not_evaluated"):
                codes.append(Exit.INCOMPLETE)
        if self.regressions:
            codes.append(Exit.REGRESSION)
        return worst(*codes)

    def ended(self, status: str) -> list[Ended]:
        """Every check of the run that ended with ``status`` (e.g. not_configured), per host."""
        out = []
        for host in self.hosts:
            if not host.json or not host.summary.get(status):
                continue
            doc = json.loads((self.run_dir / host.json).read_text(encoding="utf-8"))
            out += [Ended(host.name, c["id"], _why(c))
                    for c in doc.get("checks", []) if c.get("status") == status]
        return out


def _why(check: dict[str, object]) -> str:
    """A check's message; for a waived check, the waiver that accepts it first."""
    waiver = check.get("waiver")
    if isinstance(waiver, dict):
        return (f"waiver {waiver['id']} (approved by {waiver['approved_by']}, until {waiver['expires']}): "
                f"{waiver['justification']} — found: {check.get('message') or 'failed'}")
    return str(check.get("message") or "")


Progress = Callable[[str], None]


def selected(measures: tuple[str, ...] | list[str]) -> list[str]:
    """The measures to verify, in registry order; an unknown name is a usage error."""
    for name in measures:
        if name not in registry.MEASURES:
            raise ConfigError("--measure", f"unknown measure {name!r} (have: {', '.join(registry.MEASURES)})")
    return [m for m in registry.MEASURES if not measures or m in measures]


def plans_from_inventory(inventory: Inventory, limit: tuple[str, ...], profiles: Profiles,
                         measures: list[str], attestations: Path | None = None,
                         waivers: Path | None = None, rooms: rooms_mod.Rooms | None = None) -> list[Plan]:
    """Resolve each selected host once; a server room's member gets the room's UPS units."""
    hosts = inventory.select(limit)
    if not hosts:
        raise ConfigError(str(inventory.path), "no host selected")
    records = attestations_mod.load(attestations) if attestations else []
    waived = waivers_mod.load(waivers) if waivers else []
    plans = []
    for h in hosts:
        profile = rooms_mod.overlay(h.resolve(profiles), (rooms or rooms_mod.EMPTY).ups_for(h.name))
        applying = waivers_mod.evaluate(profile, waived, name=h.name, host=h, source=waivers)
        plans.append(plan_mod.for_host(h, profile, measures, records, applying))
    return plans


def plan_local(profiles: Profiles, profile_name: str, sensitivity: str | None, measures: list[str],
               attestations: Path | None = None, waivers: Path | None = None) -> list[Plan]:
    records = attestations_mod.load(attestations) if attestations else []
    profile = profiles.resolve(profile_name, sensitivity)
    waived = waivers_mod.load(waivers) if waivers else []
    applying = waivers_mod.evaluate(profile, waived, name=socket.gethostname(), host=None, source=waivers)
    return [plan_mod.for_local(profile, measures, records, applying)]


def _child_env() -> dict[str, str]:
    """In a checkout, the checks' pytest imports this checkout's code (not another install's)."""
    env = dict(os.environ)
    if IN_CHECKOUT:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def pytest_command(plans_file: Path, measures: list[str], *, run_id: str, run_dir: Path, events: Path,
                   config: Path | None, parallel: int) -> list[str]:
    paths = [str(CHECKS / f"test_{m}.py") for m in measures]
    cmd = [sys.executable, "-m", "pytest", *paths, "-p", "hardening.evidence.plugin", "-p", "no:testinfra",
           "-p", "no:cacheprovider", "-q", "--no-header", "-rN", "--tb=no",
           "-c", str(CHECKS / "pytest.ini"), "--rootdir", str(CHECKS),
           "--hardening-out", str(run_dir), "--hardening-plans", str(plans_file),
           "--hardening-run-id", run_id, "--hardening-events", str(events),
           "--hardening-parallel", str(parallel)]
    if config is not None:
        cmd += ["--hardening-ssh-config", str(config)]
    return cmd


class _Watcher:
    """Reads the JSON-lines progress file and reports changes every few seconds."""

    def __init__(self, events: Path, total: int, progress: Progress, every: float = 5.0) -> None:
        self.events = events
        self.total = total
        self.progress = progress
        self.every = every
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

    def counts(self) -> tuple[int, int, dict[str, int]]:
        counts = dict.fromkeys(STATUSES, 0)
        observed = done = 0
        if self.events.exists():
            for line in self.events.read_text(encoding="utf-8").splitlines():
                event = json.loads(line)
                kind = event.get("event")
                if kind == "check":
                    counts[event["status"]] += 1
                elif kind == "observed":
                    observed += 1
                elif kind == "done":
                    done += 1
        return observed, done, counts

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            observed, done, c = self.counts()
            line = (f"  [{time.monotonic() - self._start:4.0f}s] {observed}/{self.total} hosts observed, "
                    f"{done} written · checks: {counts_text(c)}")
            if line.split("]", 1)[1] != self._last:
                self._last = line.split("]", 1)[1]
                self.progress(line)


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


BeforeSeal = Callable[["RunResult"], None]


def run(plans: list[Plan], *, evidence_root: Path, inventory: Path | None, parallel: int = 8,
        progress: Progress = print, before_seal: BeforeSeal | None = None) -> RunResult:
    """Verify every planned host; returns the per-host results and the run directory.
    ``before_seal`` writes what else the run holds (the rooms' documents) before it is sealed."""
    run_id = new_run_id()
    run_dir = evidence_root / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    started = _now()
    measures = plans[0].measures if plans else []
    workdir = Path(tempfile.mkdtemp(prefix="hardening-"))
    try:
        remote = [p for p in plans if not p.local]
        config = ssh_config(remote, workdir) if remote else None
        plans_file = plan_mod.write(plans, workdir / "plans.json")
        events = workdir / "events.jsonl"
        log = workdir / "pytest.log"
        progress(f"verifying {len(plans)} host(s), run {run_id}")
        cmd = pytest_command(plans_file, measures, run_id=run_id, run_dir=run_dir, events=events,
                             config=config, parallel=parallel)
        with _Watcher(events, len(plans), progress), open(log, "w", encoding="utf-8") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  cwd=workdir, check=False, env=_child_env())
        results = _results(run_dir, plans, proc.returncode, log)
        for r in results:
            progress(_host_line(r))
        if config:
            _close_masters(remote, config)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = RunResult(run_dir, results)
    write_index(result, run_id=run_id, started=started, inventory=inventory)
    if before_seal is not None:
        before_seal(result)
        if result.rooms:
            write_index(result, run_id=run_id, started=started, inventory=inventory)
    from hardening.evidence import history

    outcome = history.after_run(run_dir)
    result.regressions, result.notes = list(outcome.regressions), list(outcome.notes)
    return result


def _results(run_dir: Path, plans: list[Plan], returncode: int, log: Path) -> list[HostResult]:
    """The typed per-host results the pytest child wrote; a child that died is every host's error."""
    path = run_dir / RESULTS
    if returncode in (0, 1, 5) and path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        path.unlink()
        return [HostResult(**item) for item in data]
    tail = " | ".join(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:])
    return [HostResult(p.name, p.profile.name, p.profile.sensitivity, "unreachable",
                       message=f"checks did not complete (pytest exit {returncode}): {tail}", reason="crashed",
                       retention_days=p.retention_days)
            for p in plans]


def _host_line(r: HostResult) -> str:
    if r.verdict == "unreachable":
        return f"  {r.name}: NOT VERIFIED ({r.reason}) {r.message}"
    line = f"  {r.name}: {verdict_label(r.verdict)} — {counts_text(r.summary)}"
    line += f"; attestations: {attestations_text(r.attestations)}" if attestations_text(r.attestations) else ""
    return line + (f"; expiring within {EXPIRING_DAYS} days: {', '.join(r.expiring)}" if r.expiring else "")


# How the terminal names each status (the HTML pages label them in Japanese and English).
SHORT = {"pass": "pass", "fail": "fail", "error": "error", "not_applicable": "n/a",
         "not_configured": "n/c", "advisory": "adv", "waived": "wvd"}
ATTESTATION_SHORT = {"attested": "attested", "fail": "fail", "expired": "expired", "not_evaluated": "not evaluated"}


def counts_text(summary: dict[str, int]) -> str:
    """``30 pass, 0 fail, 0 error, 3 n/a, 2 n/c, 1 adv, 0 wvd`` (n/c = not configured, adv =
    advisory, wvd = waived)."""
    return ", ".join(f"{summary.get(status, 0)} {short}" for status, short in SHORT.items())


def attestations_text(summary: dict[str, int]) -> str:
    """``2 attested, 1 expired, 1 not evaluated`` (the results that occur)."""
    return ", ".join(f"{summary[s]} {short}" for s, short in ATTESTATION_SHORT.items() if summary.get(s))


def verdict_label(verdict: str) -> str:
    """A host verdict as the terminal shows it: PASS, FAIL, NOT CONFIGURED ..."""
    return verdict.replace("_", " ").upper()


def _close_masters(plans: list[Plan], config: Path) -> None:
    for p in plans:
        subprocess.run(["ssh", "-F", str(config), "-O", "exit", p.name], capture_output=True,
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
    if result.rooms:
        index["rooms"] = [r.__dict__ for r in result.rooms]
    path = result.run_dir / "index.json"
    path.write_text(json.dumps(index, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (result.run_dir / "index.html").write_text(render_index(index), encoding="utf-8")
    return path


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
