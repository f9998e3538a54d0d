"""audit (6-3, 6-4) on a real Debian 12 lab VM (auditd needs a kernel of its own) with a lab
container as the separate log host (rsyslog with imtcp, :func:`measure.receiver_text`), through
the real command line. The profile is the shipped terminal one with ``measures.audit.paths:
[/srv/pii]`` (a directory the test makes; the auth measure would make it from
``measures.auth.personal_data``, at the cost of its PAM deploy) and the container as ``log_host``.

1. A fresh VM fails: no watch rules, rules not immutable, auditd rotates (deletes) its logs,
   /var/log/audit is group adm, nothing forwarded. ``hardening deploy -m audit`` makes every
   check pass. An ordinary user reads a personal-data file: the SYSCALL record with the read key
   and the user's name, and the PATH record of the same event with the file, arrive on the log
   host. A second deploy changes nothing. The loaded rules cannot be deleted, even by root.
   Deleting the VM's local audit logs leaves the log host's copy.
2. bulkwatch (6-5) on the same hosts: see its test.
3. Immutable: with one more watched path in the profile, the deploy writes the boot rules and
   fails the host saying a reboot is needed; the check fails with the same words.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost
from hardening.measures import audit as measure
from hardening.measures import bulkwatch
from tests.helpers import cli, lab_hosts, wait_for

pytestmark = pytest.mark.lab

HOST = "au-vm1"
LOGHOST = "au-log1"
PII = "/srv/pii"


@pytest.fixture(scope="module")
def loghost(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (LOGHOST, "server", "medium"), kind="container") as started:
        receiver = started[LOGHOST]
        receiver.run(f"printf %s {shlex.quote(measure.receiver_text())} | sudo tee {measure.RECEIVER_FILE} >/dev/null"
                     " && sudo systemctl enable --now rsyslog.service")
        yield receiver


@pytest.fixture(scope="module")
def host(lab: Lab, loghost: LabHost) -> Iterator[LabHost]:
    with lab_hosts(lab, (HOST, "terminal", "medium")) as started:
        vm = started[HOST]
        vm.run(f"sudo sh -c 'useradd -m alice && mkdir -p {PII} && echo 住民票 > {PII}/juminhyo.csv && "
               f"chmod 0644 {PII}/juminhyo.csv'")
        yield vm


def profiles(tmp_path: Path, loghost: LabHost, *paths: str) -> Path:
    out = tmp_path / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", out, dirs_exist_ok=True)
    text = (out / "terminal.yaml").read_text()
    text = text.replace("measures:\n", f"measures:\n  audit:\n    log_host: {loghost.address}\n"
                                       f"    paths: [{', '.join(paths)}]\n", 1)
    assert loghost.address in text
    (out / "terminal.yaml").write_text(text)
    return out


def verify(inventory: Path, evidence: Path, hwprofiles: Path,
           measure_name: str = "audit") -> dict[str, dict[str, object]]:
    before = set(evidence.glob("*/index.json"))
    start = time.monotonic()
    proc = cli("verify", inventory, "-l", HOST, "-m", measure_name, "--evidence", evidence, "--profiles", hwprofiles,
               timeout=900)
    print(f"verify: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode in (0, 1, 5), proc.stdout + proc.stderr
    [index] = set(evidence.glob("*/index.json")) - before
    [entry] = json.loads(index.read_text())["hosts"]
    doc = json.loads((index.parent / entry["json"]).read_text())
    return {c["id"]: {"status": c["status"], "message": c.get("message") or ""} for c in doc["checks"]}


def statuses(checks: dict[str, dict[str, object]]) -> dict[str, object]:
    return {k: v["status"] for k, v in checks.items()}


def deploy(inventory: Path, hwprofiles: Path, expect: int = 0, measure_name: str = "audit") -> tuple[str, int]:
    start = time.monotonic()
    proc = cli("deploy", inventory, "-l", HOST, "-m", measure_name, "--profiles", hwprofiles, timeout=1800)
    print(f"deploy: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode == expect, proc.stdout[-4000:] + proc.stderr[-4000:]
    [row] = [line.split() for line in proc.stdout.splitlines() if line.startswith(HOST + " ")]
    return proc.stdout + proc.stderr, int(row[1])


def received(loghost: LabHost) -> str:
    return loghost.run(f"sudo cat {measure.RECEIVED}/{HOST}.log 2>/dev/null || true").stdout


def read_event(text: str) -> str:
    """The audit event id of alice's read of the file, when both its records arrived ('' if not)."""
    for match in re.finditer(r"type=SYSCALL msg=audit\(([\d.:]+)\):.*", text):
        line = match.group(0)
        if f'key="{measure.READ_KEY}"' in line and 'UID="alice"' in line:
            event = match.group(1)
            if re.search(rf"type=PATH msg=audit\({re.escape(event)}\):.*name=\"{PII}/juminhyo.csv\"", text):
                return event
    return ""


ALL_PASS = {f"audit.{name}": "pass" for name in ("auditd_running", "watch_rules", "rules_immutable", "log_retention",
                                                 "log_protection", "forwarding")}


def test_fresh_fails_deploy_passes_records_reach_the_log_host(host: LabHost, loghost: LabHost, inventory: Path,
                                                               tmp_path: Path) -> None:
    hw = profiles(tmp_path, loghost, PII)
    fresh = verify(inventory, tmp_path, hw)
    assert statuses(fresh) == {**ALL_PASS, "audit.watch_rules": "fail", "audit.rules_immutable": "fail",
                               "audit.log_retention": "fail", "audit.log_protection": "fail",
                               "audit.forwarding": "fail"}, fresh
    assert "max_log_file_action = ROTATE" in str(fresh["audit.log_retention"]["message"])
    assert "group adm" in str(fresh["audit.log_protection"]["message"])

    output, changed = deploy(inventory, hw)
    assert changed >= 8, output
    after = verify(inventory, tmp_path, hw)
    assert statuses(after) == ALL_PASS, after

    host.run(f"sudo -u alice cat {PII}/juminhyo.csv")
    event = wait_for(lambda: read_event(received(loghost)), timeout=60)
    assert event, received(loghost)[-3000:]

    output, changed = deploy(inventory, hw)
    assert changed == 0, output

    denied = host.run("sudo auditctl -D", check=False)
    assert denied.returncode != 0 and "Operation not permitted" in denied.stdout + denied.stderr
    host.run(f"sudo sh -c 'rm -f {measure.LOG_DIR}/audit.log*'")
    assert host.run(f"sudo ausearch --input-logs -k {measure.READ_KEY}", check=False).returncode != 0
    assert read_event(received(loghost)) == event


def journal_warnings(host: LabHost) -> list[dict[str, str]]:
    out = host.run(f"sudo journalctl -m -q -o cat -p warning -t {bulkwatch.IDENTIFIER} --no-pager", check=False)
    return bulkwatch.parse_warnings(out.stdout)


def test_bulk_reads_over_the_threshold_raise_one_warning(host: LabHost, loghost: LabHost, inventory: Path,
                                                         tmp_path: Path) -> None:
    """bulkwatch (6-5): threshold 1 MiB in 2 minutes. bob copies 600 KiB: no warning; alice copies
    1200 KiB: one warning naming her, in the journal at warning priority and on the log host."""
    hw = profiles(tmp_path, loghost, PII)
    text = (hw / "terminal.yaml").read_text()
    (hw / "terminal.yaml").write_text(text.replace("measures:\n", "measures:\n  bulkwatch:\n    threshold_mib: 1\n"
                                                                  "    window_seconds: 120\n", 1))
    assert verify(inventory, tmp_path, hw, "bulkwatch")["bulkwatch.monitor_running"]["status"] == "fail"
    output, changed = deploy(inventory, hw, measure_name="bulkwatch")
    assert changed >= 4, output
    checks = verify(inventory, tmp_path, hw, "bulkwatch")
    assert statuses(checks) == {"bulkwatch.monitor_running": "pass"}, checks

    host.run(f"sudo sh -c 'useradd -m bob; for f in a b; do head -c 614400 /dev/urandom > {PII}/bulk-$f.bin; "
             f"done; chmod 0644 {PII}/bulk-*.bin'")
    host.run(f"sudo -u bob cp {PII}/bulk-a.bin /tmp/bob-copy")
    host.run(f"sudo -u alice sh -c 'cp {PII}/bulk-a.bin {PII}/bulk-b.bin /tmp/'")
    found = wait_for(lambda: [w for w in journal_warnings(host) if w.get("user") == "alice"], timeout=60)
    assert found, host.run("sudo journalctl -m -n 30 --no-pager -u hardening-bulkwatch", check=False).stdout
    time.sleep(3)
    warnings = journal_warnings(host)
    assert [w["user"] for w in warnings] == ["alice"], warnings
    assert warnings[0]["bytes"] == str(2 * 614400) and warnings[0]["threshold"] == str(1024 * 1024)
    assert wait_for(lambda: "bulkwatch-warning user=alice" in received(loghost), timeout=30)

    output, changed = deploy(inventory, hw, measure_name="bulkwatch")
    assert changed == 0, output


def test_immutable_rules_need_a_reboot(host: LabHost, loghost: LabHost, inventory: Path, tmp_path: Path) -> None:
    host.run("sudo mkdir -p /srv/pii2")
    hw = profiles(tmp_path, loghost, PII, "/srv/pii2")
    output, _ = deploy(inventory, hw, expect=1)
    assert "immutable" in output and "reboot the host" in output, output
    assert "-w /srv/pii2 -p r" in host.run(f"sudo cat {measure.RULES_FILE}").stdout
    checks = verify(inventory, tmp_path, hw)
    assert checks["audit.watch_rules"]["status"] == "fail"
    message = str(checks["audit.watch_rules"]["message"])
    assert "loaded: missing -w /srv/pii2" in message and "reboot the host" in message, message
    assert "at boot" not in message.split(";")[0]
