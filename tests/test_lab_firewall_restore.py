"""The firewall touches only its own table: other tools' nftables tables survive a dry run, a
deploy and a rollback, including a table added while the rollback was pending; a restore that
fails keeps the new table (never no table) and the confirmation reports it. Through the real
command line, on one lab container (server profile, sensitivity high).

Docker-style tables as Docker, fail2ban and libvirt leave them: ``ip nat`` with DOCKER chains,
``ip filter`` with a FORWARD chain, ``inet f2b-table`` with a set and a drop rule. Each is
compared as ``nft -j list table`` prints it, byte for byte, before and after.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost
from hardening.measures import firewall as measure
from tests.helpers import DOCKER_NAT, cli, lab_hosts, wait_for

pytestmark = pytest.mark.lab

HOST = "fw-restore"
FOREIGN = ("ip nat", "ip filter", "inet f2b-table")
FOREIGN_RULESET = DOCKER_NAT + """\
table ip filter {
	chain FORWARD {
		type filter hook forward priority filter; policy drop;
		jump DOCKER-USER
		oifname "docker0" ct state related,established accept
		iifname "docker0" oifname != "docker0" accept
	}
	chain DOCKER-USER {
		return
	}
}
table inet f2b-table {
	set addr-set-sshd {
		type ipv4_addr
		elements = { 192.0.2.7 }
	}
	chain f2b-chain {
		type filter hook input priority filter - 1; policy accept;
		tcp dport 22 ip saddr @addr-set-sshd drop
	}
}
"""
# Run on the host (systemd-run) before a deploy: waits for the pending marker, then acts while
# the change waits for its confirmation, without needing SSH (which the change may cut).
WHEN_PENDING = "until [ -f /run/hardening/pending/firewall ]; do sleep 0.1; done\n"
LATECOMER = (WHEN_PENDING + "nft add table inet latecomer\n"
             "nft add chain inet latecomer c '{ type filter hook input priority 10; policy accept; }'\n"
             "[ -f /run/hardening/pending/firewall ] && echo during > /run/latecomer.ok\n")
# The saved table made unloadable, then the rollback started at once (as its timer would).
CORRUPT = (WHEN_PENDING + "echo 'table inet hardening { chain input { nonsense } }' "
           "> /var/lib/hardening/rollback/firewall/saved/table.nft\n"
           "/var/lib/hardening/rollback/firewall/restore\n")


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (HOST, "server", "high"), kind="container") as started:
        started[HOST].run(f"sudo nft -f - <<'EOF'\n{FOREIGN_RULESET}EOF")
        yield started[HOST]


def foreign(host: LabHost) -> dict[str, str]:
    """Each foreign table as ``nft -j list table`` prints it."""
    return {t: host.run(f"sudo nft -j list table {t}").stdout for t in FOREIGN}


def ours(host: LabHost) -> Any:
    """table inet hardening as JSON, without handles (a restored table gets new ones)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "handle"}
        return [strip(v) for v in value] if isinstance(value, list) else value
    out = host.run(f"sudo nft -j list table inet {measure.TABLE}", check=False)
    return strip(json.loads(out.stdout)) if out.returncode == 0 else None


def deploy(inventory: Path, *args: str | Path) -> tuple[int, str]:
    start = time.monotonic()
    proc = cli("deploy", inventory, "-l", HOST, "-m", "firewall", *args, timeout=900)
    print(f"deploy {' '.join(map(str, args))}: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    return proc.returncode, proc.stdout + proc.stderr


def when_pending(host: LabHost, name: str, script: str) -> None:
    """Start ``script`` on the host now; it acts once the firewall change is pending."""
    host.run(f"sudo sh -c 'cat > /run/{name}.sh' <<'EOF'\n#!/bin/sh\n{script}EOF")
    host.run(f"sudo chmod 755 /run/{name}.sh && sudo systemd-run --quiet --unit=test-{name} /run/{name}.sh")


def profiles(tmp_path: Path, firewall: str) -> Path:
    """The shipped hardware profiles with ``firewall`` settings (YAML lines) for the server."""
    out = tmp_path / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", out)
    text = (out / "server.yaml").read_text()
    (out / "server.yaml").write_text(text.replace("measures:\n", f"measures:\n  firewall:\n{firewall}", 1))
    return out


def test_dry_run_leaves_foreign_tables_alone(host: LabHost, inventory: Path) -> None:
    before = foreign(host)
    code, output = deploy(inventory, "--dry")
    assert code == 0, output
    # Named only in the line that says they are left alone (tests/test_lab_foreign_tables.py).
    rest = "\n".join(line for line in output.lower().splitlines() if "; left alone: " not in line)
    for name in (*FOREIGN, "flush ruleset", "list ruleset", "docker", "f2b"):
        assert name not in rest, f"{name!r} in the dry run's output:\n{output}"
    assert foreign(host) == before
    assert ours(host) is None


def test_deploy_keeps_foreign_tables_byte_identical(host: LabHost, inventory: Path, tmp_path: Path) -> None:
    before = foreign(host)
    code, output = deploy(inventory)
    assert code == 0, output
    assert "confirmed: firewall" in output, output
    assert foreign(host) == before
    assert ours(host) is not None
    proc = cli("verify", inventory, "-l", HOST, "-m", "firewall", "--evidence", tmp_path)
    [doc] = tmp_path.glob(f"*/{HOST}.json")
    statuses = {c["id"]: c["status"] for c in json.loads(doc.read_text())["checks"]}
    assert {k: v for k, v in statuses.items() if v not in ("pass", "not_applicable")} == {}, proc.stdout


def test_rollback_keeps_foreign_tables_and_a_latecomer(host: LabHost, inventory: Path, tmp_path: Path) -> None:
    before, table = foreign(host), ours(host)
    host.run("sudo rm -f /run/latecomer.ok")
    when_pending(host, "latecomer", LATECOMER)
    # 192.0.2.0/24 (TEST-NET-1) does not hold the lab's address: the change cuts SSH, is never
    # confirmed, and the host restores itself after confirm_timeout.
    cut = profiles(tmp_path, "    management_networks: [192.0.2.0/24]\n    confirm_timeout: 15\n")
    start = time.monotonic()
    code, output = deploy(inventory, "--profiles", cut)
    assert code in (1, 3), output
    assert wait_for(lambda: host.run("true", check=False).returncode == 0, timeout=120), "never came back"
    record = wait_for(lambda: host.run("cat /run/hardening/rolled-back/firewall 2>/dev/null", check=False).stdout
                      if code == 3 else "consumed by hardening-confirm", timeout=60)
    print(f"rollback: back in {time.monotonic() - start:.1f} s; {record.strip()}")
    assert "RESTORE FAILED" not in record and "RESTORE FAILED" not in output
    assert host.run("cat /run/latecomer.ok").stdout.strip() == "during", "latecomer not added while pending"
    assert host.run("sudo nft list table inet latecomer", check=False).returncode == 0, "latecomer lost"
    assert foreign(host) == before
    assert ours(host) == table
    journal = host.run("sudo journalctl -t hardening --no-pager -q").stdout
    assert "rollback firewall: not confirmed, restored the previous state" in journal


def test_failed_restore_keeps_the_new_table_and_says_so(host: LabHost, inventory: Path, tmp_path: Path) -> None:
    before = foreign(host)
    when_pending(host, "corrupt", CORRUPT)
    web = profiles(tmp_path, "    allow: [{name: web, port: 8443}]\n")
    code, output = deploy(inventory, "--profiles", web)
    assert code == 1, output
    assert "RESTORE FAILED, kept the new state" in output, output
    assert "tcp dport 8443 accept" in host.run(f"sudo nft list table inet {measure.TABLE}").stdout
    assert foreign(host) == before
    journal = host.run("sudo journalctl -t hardening --no-pager -q").stdout
    assert "rollback firewall: not confirmed, RESTORE FAILED, kept the new state" in journal


def test_boot_file_with_foreign_tables_is_refused(host: LabHost, inventory: Path) -> None:
    conf = measure.NFTABLES_CONF
    host.run(f"sudo cp -p {conf} /root/nftables.conf.test && "
             f"sudo sh -c 'printf \"table inet mine {{\\n\\tchain c {{\\n\\t\\ttype filter hook input priority 5; "
             f"policy accept;\\n\\t\\ttcp dport 9 drop\\n\\t}}\\n}}\\n\" > {conf}'")
    try:
        planted = host.run(f"sudo cat {conf}").stdout
        code, output = deploy(inventory)
        assert code == 1, output
        assert f"{conf} also loads table inet mine" in output, output
        assert host.run(f"sudo cat {conf}").stdout == planted
    finally:
        host.run(f"sudo cp -p /root/nftables.conf.test {conf}")
