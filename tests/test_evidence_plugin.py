"""The evidence plugin: what a check records, kept apart by status, in JSON and HTML."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hardening.evidence.model import SCHEMA
from hardening.profiles import Profiles

CHECKS = '''
import pytest

@pytest.mark.clause("6-2")
def test_passes(obs, profile, evidence):
    """passwd is not world-writable"""
    mode = int(obs.run("stat -c %a /etc/passwd").stdout.strip(), 8)
    evidence.record(expected="no world write", observed=oct(mode))
    assert not mode & 0o002

@pytest.mark.clause("6-15")
def test_fails(obs, profile, evidence):
    """the idle timeout is what the profile says"""
    result = obs.run("echo TMOUT=42; echo oops >&2; exit 3")
    evidence.record(expected=profile.measure("timeouts").shell_tmout, observed=result.stdout.strip())
    assert result.rc == 0

@pytest.mark.clause("6-15")
def test_chained_comparison_fails(obs):
    """a chained comparison is a failed assertion, not an error"""
    value = 0
    assert 0 < value <= 900

@pytest.mark.clause("6-11", "7-1")
def test_not_applicable(obs, evidence):
    """storage allowed by the profile"""
    evidence.not_applicable("the profile allows USB storage")

@pytest.mark.clause("6-7")
def test_errors(obs):
    """a check that crashes"""
    raise RuntimeError("nft not parsable")

@pytest.mark.clause("6-7")
def test_undeclared(obs):
    """a check that reads a command nobody declared"""
    obs.run("cat /etc/hostname")

@pytest.mark.clause("6-2")
def test_own_call(host, evidence):
    """a check that must make its own call"""
    evidence.record(expected="ok", observed=host.run("echo ok").stdout.strip())
'''
COMMANDS = ["stat -c %a /etc/passwd", "echo TMOUT=42; echo oops >&2; exit 3"]


def write_plans(tmp_path: Path, names: tuple[str, ...] = ("h1", "h2")) -> Path:
    from hardening.attestations import evaluate
    from hardening.plan import Plan, observation_commands, write

    profile = Profiles().resolve("terminal", "high")
    commands = [*observation_commands(profile, []), *COMMANDS]
    plans = [Plan(name=n, local=True, profile=profile, digest=profile.digest(), measures=[],
                  commands=commands, attestations=evaluate(profile, [], name=n, host=None)) for n in names]
    return write(plans, tmp_path / "plans.json")


def run_checks(tmp_path: Path, source: str, *extra: str) -> subprocess.CompletedProcess[str]:
    checks = tmp_path / "checks"
    checks.mkdir(exist_ok=True)
    (checks / "test_demo.py").write_text(source, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(checks), "-p", "hardening.evidence.plugin", "-q",
         "-p", "no:cacheprovider", "-p", "no:testinfra", "--rootdir", str(checks), "-c", "/dev/null",
         "--hardening-out", str(tmp_path / "out"), "--hardening-plans", str(write_plans(tmp_path)),
         "--hardening-events", str(tmp_path / "events"), "--hardening-run-id", "r1", *extra],
        capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("plugin")
    proc = run_checks(tmp, CHECKS)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return tmp


@pytest.fixture(scope="module")
def doc(out: Path) -> dict:
    return json.loads((out / "out" / "h1.json").read_text(encoding="utf-8"))


def test_document_header(doc: dict) -> None:
    assert doc["schema"] == SCHEMA
    assert doc["run"]["id"] == "r1"
    assert doc["profile"]["name"] == "terminal" and doc["profile"]["sensitivity"] == "high"
    assert doc["profile"]["digest"].startswith("sha256:")
    assert doc["host"]["identity"]["kernel"] and doc["host"]["identity"]["machine_id"]


def test_one_run_judges_every_host_from_one_batch_each(out: Path, doc: dict) -> None:
    other = json.loads((out / "out" / "h2.json").read_text(encoding="utf-8"))
    assert {c["id"] for c in other["checks"]} == {c["id"] for c in doc["checks"]}
    # every observation once per host, identity included, shared by the checks that read it
    assert [o["command"] for o in doc["observations"]][-2:] == COMMANDS
    assert doc["run"]["observe_seconds"] > 0
    results = {r["name"]: r for r in json.loads((out / "out" / ".results.json").read_text())}
    assert set(results) == {"h1", "h2"} and results["h2"]["verdict"] == "error"


def test_undeclared_command_is_an_error_never_a_pass(doc: dict) -> None:
    check = next(c for c in doc["checks"] if c["id"] == "demo.undeclared")
    assert check["status"] == "error" and "not in the observation batch" in check["message"]


def test_own_calls_are_recorded_apart(doc: dict) -> None:
    check = next(c for c in doc["checks"] if c["id"] == "demo.own_call")
    assert check["status"] == "pass" and check["observations"] == []
    assert [c["command"] for c in check["own_commands"]] == ["echo ok"]


def test_statuses_are_kept_apart(doc: dict) -> None:
    status = {c["id"]: c["status"] for c in doc["checks"]}
    assert status == {"demo.passes": "pass", "demo.fails": "fail", "demo.not_applicable": "not_applicable",
                      "demo.errors": "error", "demo.undeclared": "error", "demo.own_call": "pass",
                      "demo.chained_comparison_fails": "fail"}
    assert doc["summary"] == {"pass": 2, "fail": 2, "error": 2, "not_applicable": 1, "not_configured": 0,
                              "advisory": 0, "waived": 0, "total": 7}
    assert doc["verdict"] == "error"


def test_failing_check_records_command_exit_code_and_output(doc: dict) -> None:
    check = next(c for c in doc["checks"] if c["id"] == "demo.fails")
    assert check["clauses"] == ["6-15"]
    assert check["title"] == "the idle timeout is what the profile says"
    assert check["expected"] == 300  # terminal at sensitivity high
    assert check["observed"] == "TMOUT=42"
    [used] = check["observations"]
    command = next(o for o in doc["observations"] if o["id"] == used)
    assert command["command"] == "echo TMOUT=42; echo oops >&2; exit 3"
    assert command["exit_code"] == 3
    assert command["stdout"] == "TMOUT=42\n" and command["stderr"] == "oops\n"
    assert "assert 3 == 0" in check["message"]
    assert check["duration"] >= 0


def test_not_applicable_keeps_its_reason(doc: dict) -> None:
    check = next(c for c in doc["checks"] if c["id"] == "demo.not_applicable")
    assert check["message"] == "the profile allows USB storage"
    assert check["clauses"] == ["6-11", "7-1"]


def test_error_keeps_the_exception(doc: dict) -> None:
    check = next(c for c in doc["checks"] if c["id"] == "demo.errors")
    assert "RuntimeError: nft not parsable" in check["message"]


def test_html_is_bilingual_and_shows_each_check(tmp_path: Path) -> None:
    run_checks(tmp_path, CHECKS)
    html = (tmp_path / "out" / "h1.html").read_text(encoding="utf-8")
    for text in ("点検結果", "Verification evidence", "不適合 fail", "対象外 n/a", "第三者の閲覧防止",
                 "echo TMOUT=42", "[exit 3"):
        assert text in html


def test_progress_events(tmp_path: Path) -> None:
    run_checks(tmp_path, CHECKS)
    events = [json.loads(line) for line in (tmp_path / "events").read_text().splitlines()]
    assert [e["event"] for e in events[:3]] == ["observed", "observed", "collected"]
    assert events[2]["total"] == 14
    statuses = [e["status"] for e in events if e["event"] == "check" and e["host"] == "h1"]
    assert statuses == ["pass", "fail", "fail", "not_applicable", "error", "error", "pass"]
    assert [e["event"] for e in events[-2:]] == ["done", "done"]


def test_unknown_clause_stops_the_run(tmp_path: Path) -> None:
    proc = run_checks(tmp_path, 'import pytest\n\n@pytest.mark.clause("6-99")\ndef test_x(obs):\n    pass\n')
    assert proc.returncode != 0
    assert "unknown clause id '6-99'" in proc.stdout + proc.stderr


def test_unmarked_check_stops_the_run(tmp_path: Path) -> None:
    proc = run_checks(tmp_path, "def test_x(obs):\n    pass\n")
    assert proc.returncode != 0
    assert "must be marked @pytest.mark.clause" in proc.stdout + proc.stderr


def test_attestation_items_of_the_profile_are_in_the_evidence(doc: dict) -> None:
    items = {a["id"]: a["status"] for a in doc["attestations"]}
    assert items == {"input-verification": "not_evaluated", "design-documents-paper": "not_evaluated",
                     "terminal-theft": "not_evaluated", "terminal-carry": "not_evaluated"}
    assert doc["attestation_summary"]["not_evaluated"] == 4
