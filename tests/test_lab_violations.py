"""The planted-violation corpus on real lab hosts (tests/violations/).

A container (shipped "server" profile, high) and a VM ("terminal", high) are deployed and
verified once: that is the baseline. Then, per group of violations (tests.violations.groups:
distinct target checks, distinct ``touches``), the test plants every script of the group as
root and asserts, through the real command line (the container's groups and the VM's run at
the same time, each host's one after the other):

1. every check a violation names in ``fails:`` is "fail";
2. no other check changed its verdict against the baseline;
3. the next ``hardening deploy`` exits 0 and the following verify is exactly the baseline.

The container is deployed and verified with every measure, and its repairing deploy is of every
measure. The VM is there for what needs a kernel of its own (USB, audit, swap): it is deployed
and verified with the measures its violations belong to or name, plus auth (it makes the
personal-data directory audit watches), and its repairing deploy is of the measures the group's
violations name (``-m``), as an operator repairing one finding would run it: a full deploy under
emulation takes many minutes. "Nothing else moved" is judged over every measure the host is
verified with.

HARDENING_VIOLATIONS selects violations by id glob (``auth/*,usb/sr-*``);
HARDENING_VIOLATIONS_HOST=container (or vm) keeps one host kind;
HARDENING_VIOLATIONS_ALONE=1 plants each one alone (one group each: exact attribution, slower);
HARDENING_VIOLATIONS_REPORT names a file for the result table (markdown), which is also printed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socketserver
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost
from hardening.measures import MEASURES, deploy_order
from tests import nutlab
from tests import violations as corpus
from tests.helpers import cli

pytestmark = pytest.mark.lab

HOSTS = {"container": ("vc-srv", "server", "high"), "vm": ("vm-term", "terminal", "high")}
# A container shares the machine's kernel: no modules, USB, audit or LUKS.
NOT_IN_CONTAINER = ("usb",)
DEPLOYABLE = deploy_order()
SELECTED = [v for v in corpus.select(corpus.load(), os.environ.get("HARDENING_VIOLATIONS", ""))
            if os.environ.get("HARDENING_VIOLATIONS_HOST", v.host) == v.host
            and not v.needs]  # needs: planted by the measure's own lab test (tests/violations)
GROUPS = corpus.groups(SELECTED, alone=os.environ.get("HARDENING_VIOLATIONS_ALONE") == "1")
ROWS: list[dict[str, str]] = []


@dataclass
class Target:
    host: LabHost
    measures: list[str]
    inventory: Path
    evidence: Path
    profiles: Path = Path()
    baseline: dict[str, str] = field(default_factory=dict)

    @property
    def measure_args(self) -> list[str]:
        return [a for m in self.measures for a in ("-m", m)]

    def verify(self) -> dict[str, str]:
        before = set(self.evidence.glob("*/index.json"))
        proc = cli("verify", self.inventory, "-l", self.host.name, "--evidence", self.evidence,
                   "--profiles", self.profiles,
                   *self.measure_args, timeout=900)
        assert proc.returncode in (0, 1, 4, 5), proc.stdout + proc.stderr
        [index] = set(self.evidence.glob("*/index.json")) - before
        [entry] = json.loads(index.read_text())["hosts"]
        assert entry["verdict"] != "unreachable", entry
        doc = json.loads((index.parent / entry["json"]).read_text())
        return {c["id"]: c["status"] for c in doc["checks"]}

    def deploy(self, measures: list[str] | None = None) -> tuple[int, str]:
        # Check-only measures (disks) have no deploy to name.
        args = [a for m in (measures or self.measures) if m in DEPLOYABLE for a in ("-m", m)]
        proc = cli("deploy", self.inventory, "-l", self.host.name, "--profiles", self.profiles, *args,
                   timeout=1800)
        return proc.returncode, proc.stdout[-4000:] + proc.stderr[-4000:]

    def plant(self, violation: corpus.Violation) -> None:
        encoded = base64.b64encode(violation.script().encode()).decode()
        self.host.run(f"echo {encoded} | base64 -d > /tmp/violation.sh && sudo sh /tmp/violation.sh", timeout=300)


def _prepare(target: Target) -> Target:
    code, output = target.deploy()
    assert code == 0, f"the first deploy of {target.host.name} failed:\n{output}"
    target.baseline = target.verify()
    return target


def vm_measures(selected: list[corpus.Violation]) -> list[str]:
    """The measures the VM is deployed and verified with: those its violations belong to or name,
    and auth, which makes the personal-data directory that audit watches. The VM is there for
    what needs a kernel of its own (USB, audit, swap); the container judges every measure."""
    named = {"auth"} | {v.measure for v in selected if v.host == "vm"}
    named |= {c.split(".", 1)[0] for v in selected if v.host == "vm" for c in v.fails}
    return [m for m in MEASURES if m in named]


def corpus_profiles(directory: Path, log_port: int) -> Path:
    """The shipped profiles, the terminal (the VM's) with what an agency adds: a personal-data
    directory and a log host, so that the audit and bulkwatch checks are configured and their
    planted violations have something to break. The log host is this machine (10.0.2.2 from the
    VM, :func:`log_port`)."""
    shutil.copytree(ROOT / "hwprofiles", directory, dirs_exist_ok=True)
    terminal = directory / "terminal.yaml"
    terminal.write_text(terminal.read_text(encoding="utf-8").replace("measures:\n", (
        "measures:\n"
        "  auth:\n    personal_data: [{path: /srv/pii, group: pii, mode: \"0750\"}]\n"
        f"  audit:\n    log_host: 10.0.2.2\n    log_port: {log_port}\n"), 1), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def log_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts and discards (the VM's rsyslog forwards to it)."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Discard)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class _Discard(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while self.rfile.read(65536):
            pass


@pytest.fixture(scope="module")
def targets(lab: Lab, tmp_path_factory: pytest.TempPathFactory, log_port: int) -> Iterator[dict[str, Target]]:
    kinds = [k for k in corpus.HOSTS if any(v.host == k for v in SELECTED)]
    started: dict[str, Target] = {}
    try:
        for kind in kinds:
            name, profile, sensitivity = HOSTS[kind]
            host = lab.start(name, profile, sensitivity, kind=kind)
            measures = ([m for m in MEASURES if m not in NOT_IN_CONTAINER] if kind == "container"
                        else vm_measures(SELECTED))
            started[kind] = Target(host, measures, Path(), tmp_path_factory.mktemp(f"evidence-{kind}"))
        inventory = lab.write_inventory(tmp_path_factory.mktemp("inv") / "lab.py")
        profiles = corpus_profiles(tmp_path_factory.mktemp("hwprofiles"), log_port)
        for target in started.values():
            target.inventory, target.profiles = inventory, profiles
        if "container" in started:
            # The container is its room's NUT server (dummy-ups) and a member powered by it, so
            # that the power measure has a UPS to watch and the power violations something to break.
            nutlab.serve_dummy_ups(started["container"].host)
            nutlab.write_room(inventory.parent, [started["container"].host.name])
        with ThreadPoolExecutor(len(started) or 1) as pool:
            list(pool.map(_prepare, started.values()))
        yield started
    finally:
        for target in started.values():
            lab.stop(target.host.name)


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not ROWS:
        return
    lines = ["| violation | by | host | what | expected to fail | failed | other verdicts changed | "
             "repaired |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['id']} | {r['by']} | {r['host']} | {r['what']} | {r['expected']} | {r['failed']} | "
              f"{r['others']} | {r['repaired']} |" for r in sorted(ROWS, key=lambda r: r["id"])]
    text = "\n".join(lines) + "\n"
    path = os.environ.get("HARDENING_VIOLATIONS_REPORT")
    if path:
        Path(path).write_text(text, encoding="utf-8")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


def _changed(baseline: dict[str, str], now: dict[str, str]) -> dict[str, str]:
    return {c: f"{baseline.get(c, 'absent')} -> {now.get(c, 'absent')}"
            for c in sorted(set(baseline) | set(now)) if baseline.get(c) != now.get(c)}


def repair_measures(group: list[corpus.Violation]) -> list[str]:
    """The measures a group's violations belong to or make fail, in the tool's order."""
    named = {v.measure for v in group} | {c.split(".", 1)[0] for v in group for c in v.fails}
    return [m for m in MEASURES if m in named]


def run_group(target: Target, group_id: str, group: list[corpus.Violation]) -> list[str]:
    """Plant, verify, deploy, verify; the table's rows and what went wrong (empty: all held)."""
    start = time.monotonic()
    try:
        for violation in corpus.planting_order(group):
            target.plant(violation)
    except Exception as exc:  # a script that does not plant is the corpus's defect: say which
        problems = [f"{group_id}: planting failed: {exc}"]
    else:
        problems = []
    planted = target.verify()
    changed = _changed(target.baseline, planted)
    expected = {c for v in group for c in v.fails}
    others = {c: d for c, d in changed.items() if c not in expected}
    code, output = target.deploy(None if target.host.kind == "container" else repair_measures(group))
    repaired = target.verify()
    after = _changed(target.baseline, repaired)
    for violation in group:
        ROWS.append({
            "id": violation.id, "by": violation.by, "host": violation.host, "what": violation.what,
            "expected": ", ".join(violation.fails),
            "failed": ", ".join(f"{c}: {planted.get(c, 'absent')}" for c in violation.fails),
            "others": ", ".join(f"{c} {d}" for c, d in others.items()) or "none",
            "repaired": "yes" if code == 0 and not after else f"NO (deploy exit {code}; {after or 'verdicts back'})",
        })
    if not all(planted.get(c) == "fail" for c in expected):
        problems.append(f"{group_id}: not every target check failed: { {c: planted.get(c) for c in expected} }")
    if others:
        problems.append(f"{group_id}: other checks changed verdict: {others}")
    if code != 0:
        problems.append(f"{group_id}: the repairing deploy failed:\n{output}")
    if after:
        problems.append(f"{group_id}: not back to the baseline after the deploy "
                        f"({round(time.monotonic() - start)} s): {after}")
    return problems


def _series(target: Target, kind: str) -> list[str]:
    problems: list[str] = []
    for group_id, group in GROUPS:
        if group[0].host == kind:
            problems += run_group(target, group_id, group)
    return problems


@pytest.mark.skipif(not GROUPS, reason="no violation selected (HARDENING_VIOLATIONS)")
def test_planted_violations_fail_their_checks_and_are_repaired(targets: dict[str, Target]) -> None:
    """Each host kind's groups one after the other; the container's and the VM's series at once
    (the VM is emulated and slow; the container's series fits in the VM's)."""
    with ThreadPoolExecutor(len(targets) or 1) as pool:
        series = list(pool.map(_series, targets.values(), targets.keys()))
    problems = [p for found in series for p in found]
    assert not problems, "\n".join(problems)
