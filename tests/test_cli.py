"""The command line as a user meets it: --help, one-line errors and exit codes for bad input."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from hardening import ROOT
from tests.helpers import cli, one_line_error


def test_help_explains_commands_and_exit_codes() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    for word in ("verify", "deploy", "clauses", "profiles", "Exit codes", "unreachable"):
        assert word in proc.stdout
    verify_help = cli("verify", "--help").stdout
    assert "--local" in verify_help and "--limit" in verify_help and "read-only" in verify_help.lower()
    assert "5  nothing failed, but something was not judged: a check not configured" in verify_help
    assert "n/c (not configured" in verify_help and "adv (advisory" in verify_help
    assert "5  nothing failed" in proc.stdout  # the top-level help lists the same codes


def test_clauses_shows_all_23_with_coverage() -> None:
    proc = cli("clauses", "--json")
    assert proc.returncode == 0
    rows = json.loads(proc.stdout)
    assert [r["id"] for r in rows][:2] == ["6-1", "6-2"] and len(rows) == 23
    assert {"deploys", "checks", "attestations"} <= set(rows[0])


def test_profiles_show_for_a_host() -> None:
    proc = cli("profiles", "show", "db-juki-01.soumu.example.lg.jp", "-i", "inventories/example_agency.py",
               "--profiles", "inventories/profiles")
    assert proc.returncode == 0, proc.stderr
    assert ("soumu-server-room (base -> server -> server-room -> soumu-server-room), sensitivity high"
            in proc.stdout)
    assert "expected_networks:\n    - 203.0.113.0/26" in proc.stdout


def test_wrong_flag_is_a_usage_error() -> None:
    proc = cli("verify", "--no-such-flag")
    assert proc.returncode == 2 and "No such option" in proc.stderr


def test_verify_needs_inventory_or_local() -> None:
    proc = cli("verify")
    assert proc.returncode == 2 and "give an INVENTORY, or --local" in proc.stderr


def test_missing_inventory(tmp_path: Path) -> None:
    proc = cli("verify", tmp_path / "nope.py")
    assert proc.returncode == 2
    assert "nope.py: inventory file not found" in one_line_error(proc)


def test_python_error_in_inventory(tmp_path: Path) -> None:
    inv = tmp_path / "inv.py"
    inv.write_text("servers = [('a', {'profile': 'server'})]\nundefined_name + 1\n")
    proc = cli("verify", inv)
    assert proc.returncode == 2
    assert "Python error at line 2: NameError" in one_line_error(proc)


def test_unknown_profile(tmp_path: Path) -> None:
    inv = tmp_path / "inv.py"
    inv.write_text("servers = [('a', {'profile': 'mainframe'})]\n")
    proc = cli("deploy", inv, "--dry")
    assert proc.returncode == 2
    assert "unknown profile 'mainframe'" in one_line_error(proc)


def _profiles(tmp_path: Path) -> Path:
    target = tmp_path / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", target)
    return target


def test_profile_cycle(tmp_path: Path) -> None:
    profiles = _profiles(tmp_path)
    (profiles / "terminal.yaml").write_text("name: terminal\nextends: loop\n")
    (profiles / "loop.yaml").write_text("name: loop\nextends: terminal\n")
    proc = cli("verify", "--local", "--profiles", profiles)
    assert proc.returncode == 2
    assert "profile cycle: terminal -> loop -> terminal" in one_line_error(proc)


def test_unknown_clause_id(tmp_path: Path) -> None:
    profiles = _profiles(tmp_path)
    with open(profiles / "server.yaml", "a", encoding="utf-8") as fh:
        fh.write("attestations:\n  - {id: x, clauses: ['6-19'], ja: a, en: b}\n")
    proc = cli("verify", "--local", "--profiles", profiles)
    assert proc.returncode == 2
    assert "unknown clause id '6-19'" in one_line_error(proc)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_host_is_exit_3_and_in_the_evidence(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    inv = tmp_path / "inv.py"
    inv.write_text(f"servers = [('gone', {{'profile': 'server', 'ssh_hostname': '127.0.0.1', "
                   f"'ssh_port': {_closed_port()}, 'ssh_user': 'hardening', "
                   f"'ssh_known_hosts_file': '{known}'}})]\n")
    proc = cli("verify", inv, "--evidence", tmp_path / "ev")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "gone: NOT VERIFIED (unreachable)" in proc.stderr
    [index] = (tmp_path / "ev").glob("*/index.json")
    host = json.loads(index.read_text())["hosts"][0]
    assert host["verdict"] == "unreachable" and host["reason"] == "unreachable"


@pytest.mark.parametrize("args", [("deploy", "--help"), ("profiles", "--help"), ("clauses", "--help")])
def test_every_command_has_help(args: tuple[str, ...]) -> None:
    proc = cli(*args)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) > 5


def _machine_lacks_what_checks_read() -> bool:
    """A container (like a CI runner) has no /proc/modules and may run no systemd."""
    pid1 = Path("/proc/1/comm").read_text(encoding="utf-8").strip() if Path("/proc/1/comm").exists() else ""
    return not Path("/proc/modules").exists() or pid1 != "systemd"


@pytest.mark.slow
def test_verify_local_writes_json_and_html_that_opens_in_a_browser(tmp_path: Path) -> None:
    from tests.helpers import headless_chromium

    proc = cli("verify", "--local", "--profile", "server", "--evidence", tmp_path / "ev")
    # this machine is not hardened; 5 if nothing fails but a check lacks profile data
    assert proc.returncode in (0, 1, 5), proc.stdout + proc.stderr
    [run_dir] = [p for p in (tmp_path / "ev").iterdir() if p.is_dir()]
    index = json.loads((run_dir / "index.json").read_text())
    [host] = index["hosts"]
    doc = json.loads((run_dir / host["json"]).read_text())
    clauses = {c for check in doc["checks"] for c in check["clauses"]}
    assert len(clauses) >= 8, clauses
    errors = [c["message"] for c in doc["checks"] if c["status"] == "error"]
    if _machine_lacks_what_checks_read():
        # A check that cannot read a thing is an error that says so, never a pass.
        assert all(m and "Traceback" not in m for m in errors), errors
    else:
        assert not errors, errors
    shot = tmp_path / "host.png"
    page = (run_dir / host["html"]).as_uri()
    headless_chromium(tmp_path, "--window-size=1400,2000", f"--screenshot={shot}", page)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    dom = headless_chromium(tmp_path, "--dump-dom", page).stdout
    assert f"点検結果 / Verification evidence: {host['name']}" in dom
    assert dom.count('<tr class="') >= len(doc["checks"])
