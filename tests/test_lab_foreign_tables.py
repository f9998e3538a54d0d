"""Demo: a host where Docker made its nftables tables. The firewall deploy says, dry or not, that
it replaces table inet hardening only and names Docker's tables as left alone; the dry run
changes nothing, a real deploy and a rollback keep Docker's tables byte for byte (``nft -j list
table``), and a table Docker adds while the rollback is pending stays too. Through the real
command line, on one lab container (server profile, sensitivity high).

The tables are what iptables-nft makes for Docker's default bridge (``ip nat`` with DOCKER
chains and the masquerade rule, ``ip filter`` with FORWARD, DOCKER-USER and the isolation
chains), loaded as plain ``nft -f`` text, without the counter iptables-nft puts in each rule
(the traffic that reaches the nat hook, SSH included, would change them between two listings).
The rollback is provoked as in tests/test_lab_firewall_restore.py: management networks that do
not hold the lab's address, so the change cuts SSH, the confirmation never comes, and the host
restores itself.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost
from hardening.measures import firewall as measure
from tests.helpers import DOCKER_NAT, cli, lab_hosts, wait_for

pytestmark = pytest.mark.lab

HOST = "fw-docker"
DOCKER = ("ip nat", "ip filter")
LEFT_ALONE = "left alone: table ip nat (docker), table ip filter (docker)"
DOCKER_RULESET = DOCKER_NAT + """\
table ip filter {
	chain FORWARD {
		type filter hook forward priority filter; policy drop;
		jump DOCKER-USER
		jump DOCKER-ISOLATION-STAGE-1
		oifname "docker0" ct state related,established accept
		oifname "docker0" jump DOCKER
		iifname "docker0" oifname != "docker0" accept
		iifname "docker0" oifname "docker0" accept
	}
	chain DOCKER {
	}
	chain DOCKER-ISOLATION-STAGE-1 {
		iifname "docker0" oifname != "docker0" jump DOCKER-ISOLATION-STAGE-2
		return
	}
	chain DOCKER-ISOLATION-STAGE-2 {
		oifname "docker0" drop
		return
	}
	chain DOCKER-USER {
		return
	}
}
"""
# Docker starting a container with IPv6 while the change waits for its confirmation: run on the
# host (systemd-run), so it acts without SSH, which the change cuts.
WHEN_PENDING = "until [ -f /run/hardening/pending/firewall ]; do sleep 0.1; done\n"
DOCKER_IPV6 = (WHEN_PENDING
               + "nft add table ip6 nat\n"
               + "nft add chain ip6 nat DOCKER\n"
               + "nft add chain ip6 nat POSTROUTING '{ type nat hook postrouting priority srcnat; policy accept; }'\n"
               + "nft add rule ip6 nat POSTROUTING ip6 saddr fd00:dead::/64 oifname != docker0 masquerade\n"
               + "[ -f /run/hardening/pending/firewall ] && echo during > /run/docker-ipv6.ok\n")


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (HOST, "server", "high"), kind="container") as started:
        started[HOST].run(f"sudo nft -f - <<'EOF'\n{DOCKER_RULESET}EOF")
        yield started[HOST]


def tables(host: LabHost, names: tuple[str, ...] = DOCKER) -> dict[str, str]:
    """Each table as ``nft -j list table`` prints it, handles included (no counters: see above)."""
    return {t: host.run(f"sudo nft -j list table {t}").stdout for t in names}


def state(host: LabHost) -> dict[str, str]:
    """What a dry run must not change: the whole ruleset, the boot file, the tool's state."""
    return {"ruleset": host.run("sudo nft -j list ruleset").stdout,
            "nftables.conf": hashlib.sha256(host.run(f"sudo cat {measure.NFTABLES_CONF}").stdout.encode()).hexdigest(),
            "tool state": host.run("sudo ls -A /var/lib/hardening /run/hardening 2>&1; true").stdout}


def ours(host: LabHost) -> str | None:
    out = host.run(f"sudo nft list table inet {measure.TABLE}", check=False)
    return out.stdout if out.returncode == 0 else None


def deploy(inventory: Path, *args: str | Path) -> tuple[int, str]:
    start = time.monotonic()
    proc = cli("deploy", inventory, "-l", HOST, "-m", "firewall", *args, timeout=900)
    print(f"deploy {' '.join(map(str, args))}: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    return proc.returncode, proc.stdout + proc.stderr


def test_dry_run_names_dockers_tables_as_left_alone_and_changes_nothing(host: LabHost, inventory: Path) -> None:
    before = state(host)
    code, output = deploy(inventory, "--dry")
    assert code == 0, output
    assert f"firewall: replaces table inet {measure.TABLE} only; {LEFT_ALONE}" in output, output
    assert "flush ruleset" not in output
    assert state(host) == before
    assert ours(host) is None


def test_deploy_names_them_in_the_operation_and_keeps_them_byte_for_byte(host: LabHost, inventory: Path) -> None:
    before = tables(host)
    code, output = deploy(inventory)
    assert code == 0, output
    assert "confirmed: firewall" in output, output
    assert "Apply firewall live, rollback in" in output
    assert f"(replaces table inet {measure.TABLE} only; {LEFT_ALONE}; " in output, output
    assert tables(host) == before
    assert ours(host) is not None
    # Nothing left to do: the next run says the table is not replaced, and still names Docker's.
    code, output = deploy(inventory, "--dry")
    assert code == 0, output
    assert f"firewall: table inet {measure.TABLE} not replaced (as desired); {LEFT_ALONE}" in output, output


def test_rollback_keeps_dockers_tables_and_one_added_while_pending(host: LabHost, inventory: Path,
                                                                   tmp_path: Path) -> None:
    before, table = tables(host), ours(host)
    host.run("sudo rm -f /run/docker-ipv6.ok")
    host.run(f"sudo sh -c 'cat > /run/docker-ipv6.sh' <<'EOF'\n#!/bin/sh\n{DOCKER_IPV6}EOF")
    host.run("sudo chmod 755 /run/docker-ipv6.sh && sudo systemd-run --quiet --unit=test-docker-ipv6 "
             "/run/docker-ipv6.sh")
    # 192.0.2.0/24 (TEST-NET-1) does not hold the lab's address: the change cuts SSH.
    cut = tmp_path / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", cut)
    text = (cut / "server.yaml").read_text()
    (cut / "server.yaml").write_text(text.replace(
        "measures:\n", "measures:\n  firewall:\n    management_networks: [192.0.2.0/24]\n    confirm_timeout: 15\n", 1))
    start = time.monotonic()
    code, output = deploy(inventory, "--profiles", cut)
    assert code in (1, 3), output
    assert LEFT_ALONE in output, output
    assert wait_for(lambda: host.run("true", check=False).returncode == 0, timeout=120), "never came back"
    record = wait_for(lambda: host.run("cat /run/hardening/rolled-back/firewall 2>/dev/null", check=False).stdout
                      if code == 3 else "consumed by hardening-confirm", timeout=60)
    print(f"rollback: back in {time.monotonic() - start:.1f} s; {record.strip()}")
    assert "RESTORE FAILED" not in record and "RESTORE FAILED" not in output
    assert host.run("cat /run/docker-ipv6.ok").stdout.strip() == "during", "ip6 nat not added while pending"
    assert "masquerade" in host.run("sudo nft list table ip6 nat").stdout, "the table added while pending is gone"
    assert tables(host) == before
    assert ours(host) == table
    host.run("sudo hardening-confirm >/dev/null 2>&1; sudo rm -f /run/hardening/rolled-back/firewall; true")
