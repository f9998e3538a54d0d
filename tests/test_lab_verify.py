"""`hardening verify` against real lab hosts over SSH: evidence, host keys, sudo.

A fresh lab host is a plain Debian 12 install, so it is not compliant: verify must say so (exit 1)
and write evidence whose identity is the host's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening.lab import Lab, LabHost
from tests.helpers import cli, lab_hosts

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def hosts(lab: Lab) -> Iterator[dict[str, LabHost]]:
    with lab_hosts(lab, ("v-term1", "terminal", "high"), ("v-srv1", "server", "medium")) as started:
        yield started


@pytest.fixture(scope="module")
def inventory(lab: Lab, hosts: dict[str, LabHost], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lab.write_inventory(tmp_path_factory.mktemp("inv") / "lab.py")


@pytest.fixture(scope="module")
def first_run(inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, str]:
    evidence = tmp_path_factory.mktemp("evidence")
    proc = cli("verify", inventory, "--evidence", evidence)
    [run_dir] = [p for p in evidence.iterdir() if p.is_dir()]
    return proc.returncode, run_dir, proc.stdout + proc.stderr


def test_fresh_lab_hosts_are_not_compliant(first_run: tuple[int, Path, str]) -> None:
    code, run_dir, output = first_run
    assert code == 1, output
    index = json.loads((run_dir / "index.json").read_text())
    assert {h["name"]: h["verdict"] for h in index["hosts"]} == {"v-term1": "fail", "v-srv1": "fail"}
    assert "v-term1: FAIL" in output and "evidence:" in output


def test_evidence_carries_the_hosts_own_identity(first_run: tuple[int, Path, str],
                                                 hosts: dict[str, LabHost]) -> None:
    _, run_dir, _ = first_run
    for name, host in hosts.items():
        doc = json.loads((run_dir / f"{name}.json").read_text())
        identity = doc["host"]["identity"]
        assert identity["machine_id"] == host.machine_id
        assert identity["hostname"] == name
        assert host.mac in identity["macs"]
        assert identity["os"].startswith("Debian GNU/Linux 12")
        assert doc["host"]["asset_register"]["machine_id"] == host.machine_id
        assert doc["profile"]["name"] == host.profile
        clauses = {c for check in doc["checks"] for c in check["clauses"]}
        assert len(clauses) >= 8, clauses
        assert all(check["observations"] or check["own_commands"] for check in doc["checks"]
                   if check["status"] in ("pass", "fail"))
        # one batch: every observation once, shared by the checks that read it
        commands = [o["command"] for o in doc["observations"]]
        assert len(commands) == len(set(commands)) and doc["run"]["observe_seconds"] > 0
        assert (run_dir / f"{name}.html").read_text(encoding="utf-8").count("<tr class=") >= len(doc["checks"])


def test_asset_register_matches_on_lab_hosts(first_run: tuple[int, Path, str]) -> None:
    _, run_dir, _ = first_run
    doc = json.loads((run_dir / "v-term1.json").read_text())
    status = {c["id"]: c["status"] for c in doc["checks"]}
    assert status.get("terminal.asset_machine_id") == "pass"


def _rewrite(inventory: Path, target: Path, old: str, new: str) -> Path:
    target.write_text(inventory.read_text().replace(old, new))
    return target


def test_host_key_mismatch_is_refused(inventory: Path, hosts: dict[str, LabHost], lab: Lab,
                                      tmp_path: Path) -> None:
    term, srv = hosts["v-term1"], hosts["v-srv1"]
    wrong = tmp_path / "known_hosts"
    wrong.write_text("".join(f"[127.0.0.1]:{term.ssh_port} {key}\n" for key in srv.host_keys))
    known = str(lab.directory / "known_hosts")
    inv = _rewrite(inventory, tmp_path / "wrong.py", known, str(wrong))
    assert str(wrong) in inv.read_text()
    proc = cli("verify", inv, "--limit", "v-term1", "--evidence", tmp_path / "ev")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "v-term1: NOT VERIFIED (host-key)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sudo_refused_is_reported(inventory: Path, hosts: dict[str, LabHost], tmp_path: Path) -> None:
    # Last test of the module: this host's account loses its passwordless sudo.
    hosts["v-srv1"].run("sudo rm -f /etc/sudoers.d/hardening")
    proc = cli("verify", inventory, "--limit", "v-srv1", "--evidence", tmp_path / "ev")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "v-srv1: NOT VERIFIED (sudo)" in proc.stderr
    assert "passwordless sudo" in proc.stderr


def test_host_lost_in_the_middle_of_a_run(lab: Lab, lab_host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    import time

    lab_host("v-lost", "server")
    inv = lab.write_inventory(tmp_path / "lost.py")
    evidence = tmp_path / "ev"
    proc = subprocess.Popen([sys.executable, "-m", "hardening", "verify", str(inv), "--limit", "v-lost",
                             "--evidence", str(evidence)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)
    # Stop the host while its observation batch runs on it (seen from another connection): once
    # it has finished three commands (their result files in its scratch directory), so that its
    # first progress lines have left the host even on a loaded machine (with a fixed 2 s wait a
    # loaded CI run stopped it before any line arrived: "unreachable" instead of "connection lost").
    host = lab.host("v-lost")
    deadline = time.monotonic() + 120
    done = "sudo sh -c 'ls /tmp/tmp.*/*.r 2>/dev/null | wc -l'"
    while time.monotonic() < deadline:
        if int(host.run(done, check=False).stdout.strip() or 0) >= 3:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the observation batch never got going on v-lost")
    time.sleep(1)
    lab.stop("v-lost")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 3, out + err
    assert "v-lost: NOT VERIFIED (connection-lost) connection lost during the run" in err
    assert err.count("v-lost") < 10  # one line, not one error per check
