"""unattended-upgrades' origins follow the profile, on a real Debian 12 lab container, through
the real command line (shipped "server" profile, sensitivity high).

1. A fresh host has Debian's defaults: 50unattended-upgrades allows the stable point release
   (and a Debian-Security line for codename=bookworm) beside the security suite, so
   ``hardening verify`` fails the origins check; ``hardening deploy -m patching`` leaves
   exactly the profile's origins effective (``apt-config dump``, and unattended-upgrade's own
   "Allowed origins are:" in a dry run) and the check passes.
2. The corpus's planted violation patching/origins-extra-later-file (a 99-extra read after the
   tool's ``#clear``, adding origins) fails exactly that check; the next deploy switches its
   block off (commented out in place, the file kept) and the verdicts are the baseline again.
3. A profile that turns unattended upgrades off (``unattended_origins: []``): the deploy writes
   Unattended-Upgrade "0" and no origin; verify reports 6-8 as not configured (the profile
   declares no attestation of a manual patch process), then, with such an item declared and a
   person's record, as passed.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost
from hardening.measures import patching as measure
from tests import violations as corpus
from tests.helpers import cli, lab_hosts

pytestmark = pytest.mark.lab

HOST = "pt-origins"
ORIGINS = "patching.unattended_upgrades_security_origin"
ENABLED = "patching.unattended_upgrades_enabled"
POINT_RELEASE = "origin=Debian,codename=${distro_codename},label=Debian"
PLANTED = corpus.parse(corpus.DIRECTORY / "patching" / "origins-extra-later-file.sh")
EXTRA = "/etc/apt/apt.conf.d/99-extra"


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (HOST, "server", "high"), kind="container") as started:
        yield started[HOST]


def verify(inventory: Path, evidence: Path, *args: str | Path) -> dict[str, dict[str, str]]:
    """Check id -> {status, message} of one verify of the patching measure."""
    before = set(evidence.glob("*/index.json"))
    start = time.monotonic()
    proc = cli("verify", inventory, "-l", HOST, "-m", "patching", "--evidence", evidence, *args, timeout=900)
    print(f"verify: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode in (0, 1, 4, 5), proc.stdout + proc.stderr
    [index] = set(evidence.glob("*/index.json")) - before
    [entry] = json.loads(index.read_text())["hosts"]
    doc = json.loads((index.parent / entry["json"]).read_text())
    return {c["id"]: {"status": c["status"], "message": c.get("message") or ""} for c in doc["checks"]}


def statuses(checks: dict[str, dict[str, str]]) -> dict[str, str]:
    return {k: v["status"] for k, v in checks.items()}


def deploy(inventory: Path, *args: str | Path) -> str:
    start = time.monotonic()
    proc = cli("deploy", inventory, "-l", HOST, "-m", "patching", *args, timeout=1800)
    print(f"deploy {' '.join(map(str, args))}: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def effective(host: LabHost) -> dict[str, list[str]]:
    """apt's effective configuration on the host, as the measure parses it."""
    return measure.parse_apt_config(host.run("apt-config dump").stdout)


def origins(host: LabHost) -> list[str]:
    config = effective(host)
    return config.get(measure.ORIGINS_KEY + "::", []) + config.get(measure.LEGACY_ORIGINS_KEY + "::", [])


def allowed_by_unattended_upgrade(host: LabHost) -> str:
    """unattended-upgrade's own reading: its "Allowed origins are: ..." line of a dry run."""
    out = host.run("sudo unattended-upgrade --dry-run -v 2>&1 | grep -m1 'Allowed origins are:'", timeout=600)
    return out.stdout.strip()


def profiles(tmp_path: Path, patching: str, attestation: bool) -> Path:
    """The shipped hardware profiles with ``patching`` settings (YAML lines) for the server, and
    optionally an attestation item for 6-8 (the manual patch process)."""
    out = tmp_path / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", out)
    text = (out / "server.yaml").read_text().replace("measures:\n", f"measures:\n  patching:\n{patching}", 1)
    if attestation:
        text += ("attestations:\n  - id: manual-patching\n    clauses: [\"6-8\"]\n"
                 "    ja: セキュリティ更新を変更管理の手順で定期的に適用している\n"
                 "    en: Security updates are applied regularly through the change-management process\n"
                 "    valid_days: 90\n")
    (out / "server.yaml").write_text(text)
    return out


def test_fresh_host_then_deploy_then_planted_extra_origin(host: LabHost, inventory: Path, tmp_path: Path) -> None:
    # 1. Debian's defaults: the point release among the origins; the check fails naming it.
    assert POINT_RELEASE in origins(host)
    assert effective(host)[measure.UNATTENDED_KEY] == ["1"]
    fresh = verify(inventory, tmp_path)
    assert fresh[ORIGINS]["status"] == "fail", fresh[ORIGINS]
    assert "'origin=Debian,codename=bookworm,label=Debian' is not in the profile's unattended_origins" \
        in fresh[ORIGINS]["message"]

    deploy(inventory)
    assert origins(host) == [measure.SECURITY_ORIGIN]
    allowed = allowed_by_unattended_upgrade(host)
    print(allowed)
    assert allowed.endswith("Allowed origins are: origin=Debian,codename=bookworm-security,label=Debian-Security"), \
        allowed
    baseline = verify(inventory, tmp_path)
    assert baseline[ORIGINS]["status"] == "pass", baseline[ORIGINS]
    assert baseline[ENABLED]["status"] == "pass", baseline[ENABLED]

    # 2. The corpus's planted violation: exactly the origins check fails.
    assert PLANTED.fails == (ORIGINS,)
    encoded = base64.b64encode(PLANTED.script().encode()).decode()
    host.run(f"echo {encoded} | base64 -d > /tmp/violation.sh && sudo sh /tmp/violation.sh", timeout=120)
    assert POINT_RELEASE in origins(host)
    planted = verify(inventory, tmp_path)
    changed = {k: v for k, v in statuses(planted).items() if v != baseline[k]["status"]}
    assert changed == {ORIGINS: "fail"}, planted
    assert "99-extra" not in planted[ORIGINS]["message"]  # the check judges what apt reads, not files
    assert "is not in the profile's unattended_origins" in planted[ORIGINS]["message"]

    output = deploy(inventory)
    assert f"Switch off a non-compliant apt setting: {EXTRA}:2-5" in output, output
    repaired = host.run(f"cat {EXTRA}").stdout.splitlines()
    assert repaired[0] == "// web team: keep the point release and backports current"
    assert all(line.startswith(measure.DISABLED_MARK) for line in repaired[1:]), repaired
    assert origins(host) == [measure.SECURITY_ORIGIN]
    assert statuses(verify(inventory, tmp_path)) == statuses(baseline)
    host.run(f"sudo rm -f {EXTRA}")


def test_unattended_off_is_not_a_quiet_pass(host: LabHost, inventory: Path, tmp_path: Path) -> None:
    # 3. Off by the profile: apt.systemd.daily runs no unattended-upgrade, no origin is left.
    off = profiles(tmp_path / "off", "    unattended_origins: []\n", attestation=False)
    deploy(inventory, "--profiles", off)
    config = effective(host)
    assert config[measure.UNATTENDED_KEY] == ["0"]
    assert config["APT::Periodic::Update-Package-Lists"] == ["1"]
    assert origins(host) == []
    checks = verify(inventory, tmp_path, "--profiles", off)
    assert checks[ORIGINS]["status"] == "pass", checks[ORIGINS]
    assert checks[ENABLED]["status"] == "not_configured", checks[ENABLED]
    assert "declares no attestation item for clause 6-8" in checks[ENABLED]["message"]
    assert checks["patching.update_timers_enabled"]["status"] == "not_applicable"

    # Declared and not yet recorded: a failure; recorded by a person: passed.
    attested = profiles(tmp_path / "attested", "    unattended_origins: []\n", attestation=True)
    checks = verify(inventory, tmp_path, "--profiles", attested)
    assert checks[ENABLED]["status"] == "fail" and "manual-patching is not_evaluated" in checks[ENABLED]["message"]
    records = tmp_path / "attestations.yaml"
    today = time.strftime("%Y-%m-%d")
    records.write_text(f"- item: manual-patching\n  applies_to: {{hosts: [{HOST}]}}\n  by: 山田 太郎\n"
                       f"  role: 情報システム課\n  date: {today}\n  result: pass\n  note: 月次の変更管理で適用\n")
    checks = verify(inventory, tmp_path, "--profiles", attested, "--attestations", records)
    assert checks[ENABLED]["status"] == "pass", checks[ENABLED]

    # Back on (the shipped profile): the security origin only, unattended-upgrade daily again.
    deploy(inventory)
    assert origins(host) == [measure.SECURITY_ORIGIN]
    assert effective(host)[measure.UNATTENDED_KEY] == ["1"]
