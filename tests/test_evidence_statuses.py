"""Not configured and advisory, carried through: counted apart, the host verdict, the exit code,
evidence schema 3 (2 still read), the store migration, the pages, the CSV, diff and the summary."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from hardening.cli import _summary
from hardening.errors import Exit, worst
from hardening.evidence import chain, diff, fleet, history, model
from hardening.evidence.render import render_host, render_index
from hardening.evidence.store import FILE, SCHEMA_VERSION, Store
from hardening.verify import HostResult, RunResult
from tests.test_evidence_support import all_pass, check, make_run

UNSET = all_pass() | {"admin.root_login_disabled": "not_configured", "usb.storage_blocked": "advisory"}


@pytest.fixture(autouse=True)
def _keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDENING_KEY_DIR", str(tmp_path / "keys"))


def test_every_status_is_counted_apart() -> None:
    statuses = ["pass", "pass", "fail", "error", "not_applicable", "not_configured", "not_configured", "advisory"]
    summary = model.summarize([{"status": s} for s in statuses])
    assert summary == {"pass": 2, "fail": 1, "error": 1, "not_applicable": 1, "not_configured": 2,
                       "advisory": 1, "waived": 0, "total": 8}


@pytest.mark.parametrize(("counts", "expected"), [
    ({"pass": 3}, "pass"),
    ({"pass": 3, "not_applicable": 2, "advisory": 1}, "pass"),  # advisory is not a failure
    ({"pass": 3, "not_configured": 1}, "not_configured"),  # never a pass
    ({"pass": 3, "not_configured": 1, "advisory": 1}, "not_configured"),
    ({"not_configured": 1, "fail": 1}, "fail"),
    ({"not_configured": 1, "fail": 1, "error": 1}, "error"),
    ({"not_configured": 0, "advisory": 0}, "pass"),
])
def test_host_verdict_error_then_fail_then_not_configured(counts: dict[str, int], expected: str) -> None:
    assert model.verdict(counts) == expected
    assert model.verdict(counts, error="profile did not load") == "error"


@pytest.mark.parametrize(("checks", "attestations", "expected"), [
    ({"pass": 3}, {"attested": 2}, "pass"),
    ({"pass": 3, "waived": 1}, {"attested": 2}, "pass"),  # a waived failure is accepted
    ({"pass": 3}, {"attested": 1, "not_evaluated": 1}, "not_evaluated"),  # nobody attested: incomplete
    ({"pass": 3, "not_configured": 1}, {"not_evaluated": 1}, "not_configured"),
    ({"pass": 3}, {"attested": 1, "expired": 1}, "fail"),  # an expired attestation fails the host
    ({"pass": 3}, {"fail": 1, "not_evaluated": 1}, "fail"),  # so does a negative one
    ({"error": 1}, {"fail": 1}, "error"),
])
def test_attestations_count_in_the_host_verdict(checks: dict[str, int], attestations: dict[str, int],
                                                expected: str) -> None:
    assert model.verdict(checks, None, attestations) == expected


def test_incomplete_ranks_below_noncompliant_and_above_ok() -> None:
    assert Exit.INCOMPLETE == 5
    assert worst(Exit.OK, Exit.INCOMPLETE) == Exit.INCOMPLETE
    assert worst(Exit.INCOMPLETE, Exit.NONCOMPLIANT) == Exit.NONCOMPLIANT
    assert worst(Exit.INCOMPLETE, Exit.REGRESSION) == Exit.REGRESSION
    assert worst(Exit.INCOMPLETE, Exit.UNREACHABLE, Exit.CONFIG) == Exit.CONFIG


def _hosts(*verdicts: str) -> list[HostResult]:
    return [HostResult(f"h{i}", "terminal", "high", v) for i, v in enumerate(verdicts)]


@pytest.mark.parametrize(("verdicts", "regressed", "code"), [
    (("pass", "pass"), False, Exit.OK),
    (("pass", "not_configured"), False, Exit.INCOMPLETE),
    (("pass", "not_evaluated"), False, Exit.INCOMPLETE),
    (("not_evaluated", "fail"), False, Exit.NONCOMPLIANT),
    (("not_configured", "fail"), False, Exit.NONCOMPLIANT),
    (("not_configured", "unreachable"), False, Exit.UNREACHABLE),
    (("not_configured",), True, Exit.REGRESSION),
])
def test_run_exit_code(verdicts: tuple[str, ...], regressed: bool, code: Exit, tmp_path: Path) -> None:
    result = RunResult(tmp_path, _hosts(*verdicts), regressions=["x"] if regressed else [])
    assert result.exit_code == code


def test_schema_3_written_and_2_still_read(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "evidence", 28, {"pc03": UNSET})
    doc = model.read(run_dir / "pc03.json")
    assert doc["schema"] == model.SCHEMA == "hardening.evidence/4"
    assert doc["verdict"] == "not_configured"
    assert doc["summary"]["not_configured"] == 1 and doc["summary"]["advisory"] == 1
    old = _schema_2(doc)
    (run_dir / "old.json").write_text(json.dumps(old), encoding="utf-8")
    assert model.read(run_dir / "old.json")["schema"] == "hardening.evidence/2"
    assert "対象外 n/a" in render_host(old)  # a schema 2 document still renders
    (run_dir / "bogus.json").write_text(json.dumps({**old, "schema": "hardening.evidence/9"}), encoding="utf-8")
    with pytest.raises(ValueError, match="not an evidence document"):
        model.read(run_dir / "bogus.json")


def _schema_2(doc: dict[str, object]) -> dict[str, object]:
    """The same host as schema 2 wrote it: no not configured or advisory status or count."""
    checks = [check(c["id"], "pass") for c in doc["checks"]]  # type: ignore[attr-defined]
    summary = {"pass": len(checks), "fail": 0, "error": 0, "not_applicable": 0, "total": len(checks)}
    return {**doc, "schema": "hardening.evidence/2", "checks": checks, "summary": summary, "verdict": "pass"}


def test_diff_from_schema_2_pass_to_not_configured_is_a_regression(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    before = make_run(root, 27, {"pc03": all_pass()})
    path = before / "pc03.json"
    path.write_text(json.dumps(_schema_2(json.loads(path.read_text()))), encoding="utf-8")
    history.seal_run(before)
    after = make_run(root, 28, {"pc03": UNSET})
    outcome = history.seal_run(after)
    assert outcome.regressions == [
        "regression pc03: 6-6 admin.root_login_disabled pass → not_configured since run "
        f"{before.name} — 期待値と異なる: policy accept"]
    [host] = outcome.diffs
    assert [(c.check, c.kind) for c in host.changes] == [
        ("admin.root_login_disabled", "worse"), ("usb.storage_blocked", "changed")]
    assert chain.host_documents(before) == {"pc03": "pc03.json"}  # the chain still reads the /2 document
    assert chain.load_sealed(before).seal["hosts"]["pc03"]["document"] == "pc03.json"


@pytest.mark.parametrize(("before", "after", "kind"), [
    ("pass", "not_configured", "worse"),
    ("not_applicable", "not_configured", "worse"),
    ("advisory", "not_configured", "worse"),
    ("not_configured", "fail", "worse"),
    ("advisory", "fail", "worse"),
    ("not_configured", "pass", "better"),
    ("fail", "advisory", "better"),
    ("fail", "not_configured", "changed"),  # hides the finding; not a repair
    ("pass", "advisory", "changed"),
    ("not_configured", "error", "worse"),
])
def test_diff_classifies_the_new_statuses(before: str, after: str, kind: str) -> None:
    assert diff.classify(before, after) == kind


def test_not_applicable_in_schema_2_then_not_configured_is_changed_not_a_regression(tmp_path: Path) -> None:
    """Before schema 3 a missing setting ended as not applicable: the first run after the upgrade
    shows it as changed, without exit 4 for every host of the fleet."""
    root = tmp_path / "evidence"
    before = make_run(root, 27, {"pc03": all_pass() | {"admin.root_login_disabled": "not_applicable"}})
    path = before / "pc03.json"
    old = json.loads(path.read_text())
    path.write_text(json.dumps({**old, "schema": "hardening.evidence/2"}), encoding="utf-8")
    history.seal_run(before)
    outcome = history.seal_run(make_run(root, 28, {"pc03": UNSET}))
    assert outcome.regressions == []
    [host] = outcome.diffs
    assert [(c.check, c.kind, c.before, c.after) for c in host.changes] == [
        ("admin.root_login_disabled", "changed", "not_applicable", "not_configured"),
        ("usb.storage_blocked", "changed", "pass", "advisory")]
    assert diff.classify("not_applicable", "not_configured") == "worse"  # within schema 3 it is


V1_HOST_RUNS = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE runs (run_id TEXT PRIMARY KEY, sequence INTEGER NOT NULL, started TEXT, finished TEXT,
    sealed_at TEXT, tool_version TEXT, inventory TEXT, seal_sha256 TEXT NOT NULL, key_fingerprint TEXT,
    retention_days INTEGER NOT NULL, pruned_at TEXT);
CREATE TABLE hosts (name TEXT PRIMARY KEY, first_run TEXT NOT NULL, last_run TEXT NOT NULL);
CREATE TABLE host_runs (run_id TEXT NOT NULL REFERENCES runs(run_id), host TEXT NOT NULL REFERENCES hosts(name),
    profile TEXT, sensitivity TEXT, verdict TEXT, document TEXT, document_sha256 TEXT,
    pass INTEGER, fail INTEGER, error INTEGER, not_applicable INTEGER, total INTEGER,
    retention_days INTEGER, message TEXT, PRIMARY KEY (run_id, host));
INSERT INTO runs VALUES ('20261101T100000Z-0110', 1, '2026-11-01T10:00:00+00:00', NULL, NULL, '0.1.0', NULL,
    'sha256:old', NULL, 1825, NULL);
INSERT INTO hosts VALUES ('web01', '20261101T100000Z-0110', '20261101T100000Z-0110');
INSERT INTO host_runs VALUES ('20261101T100000Z-0110', 'web01', 'server', 'medium', 'pass', 'web01.json',
    'sha256:doc', 30, 0, 0, 2, 32, 1825, '');
"""


def test_a_version_1_store_opens_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    root.mkdir()
    db = sqlite3.connect(root / FILE)
    db.executescript(V1_HOST_RUNS)
    db.close()
    with Store(root) as store:
        assert store.version() == SCHEMA_VERSION == 3
        [old] = store.host_history("web01")
        assert (old["pass"], old["not_applicable"], old["not_configured"], old["advisory"]) == (30, 2, None, None)
        run_dir = make_run(root, 28, {"pc03": UNSET})
        history.seal_run(run_dir)  # indexes the run in the migrated store
    with Store(root) as store:  # opening again changes nothing
        assert store.version() == 3
        [new] = store.host_history("pc03")
        assert (new["verdict"], new["pass"], new["not_configured"], new["advisory"]) == ("not_configured", 3, 1, 1)
        assert store.results(run_dir.name, "pc03")["admin.root_login_disabled"] == "not_configured"
        assert len(store.host_history("web01")) == 1 and store.integrity() == "ok"


def test_a_new_store_has_the_columns(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        columns = {r["name"] for r in store.db.execute("PRAGMA table_info(host_runs)")}
        assert {"not_configured", "advisory", "waived"} <= columns and store.version() == 3


def test_host_page_lists_checks_not_configured_with_their_message(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "evidence", 28, {"pc03": UNSET})
    page = (run_dir / "pc03.html").read_text(encoding="utf-8")
    assert '<span class="badge not_configured">未設定 not configured</span>' in page
    assert '<td class="not_configured" data-count="not_configured">1</td>' in page
    assert '<td class="advisory" data-count="advisory">1</td>' in page
    assert 'id="not-configured"' in page and "<code>admin.root_login_disabled</code>" in page
    assert "推奨 advisory" in page
    passing = make_run(tmp_path / "other", 28, {"pc01": all_pass()})
    assert 'id="not-configured"' not in (passing / "pc01.html").read_text(encoding="utf-8")


def test_run_index_counts_the_new_statuses(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "evidence", 28, {"pc03": UNSET})
    index = json.loads((run_dir / "index.json").read_text(encoding="utf-8"))
    page = render_index(index)
    assert "未設定 not configured" in page and "推奨 advisory" in page
    assert '<td data-count="not_configured">1</td>' in page and '<td data-count="advisory">1</td>' in page


def test_fleet_csv_and_counts_show_them(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "evidence", 28, {"pc01": all_pass(), "pc03": UNSET})
    history.seal_run(run_dir)
    with open(run_dir / fleet.CSV, encoding="utf-8-sig", newline="") as fh:
        rows = [r for r in csv.reader(fh) if r[5] == "pc03"]
    results = {r[1].rsplit("(", 1)[1].rstrip(")"): r[2] for r in rows}
    assert results["admin.root_login_disabled"] == "未設定 not configured"
    assert results["usb.storage_blocked"] == "推奨 advisory"
    hosts = fleet.host_rows(run_dir)
    counts = fleet.counts(hosts)
    assert counts["host_not_configured"] == 1 and counts["host_pass"] == 1
    assert counts["check_not_configured"] == 1 and counts["check_advisory"] == 1
    pc03 = next(r for r in hosts if r.name == "pc03")
    assert pc03.cells["6-6"] == "not_configured" and pc03.cells["6-11"] == "advisory"
    assert fleet.worst(["pass", "not_configured", "advisory"]) == "not_configured"
    assert fleet.worst(["pass", "advisory", "not_applicable"]) == "advisory"
    assert fleet.worst(["not_configured", "fail"]) == "fail"


def test_summary_table_and_the_not_configured_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = make_run(tmp_path / "evidence", 28, {"pc01": all_pass(), "pc03": UNSET})
    index = json.loads((run_dir / "index.json").read_text(encoding="utf-8"))
    result = RunResult(run_dir, [HostResult(**{k: h[k] for k in ("name", "profile", "sensitivity", "verdict",
                                                                 "summary", "json", "html", "message")})
                                 for h in index["hosts"]])
    _summary(result)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("host"))
    assert header.split()[-7:] == ["pass", "fail", "error", "n/a", "n/c", "adv", "wvd"]
    row = next(line for line in out.splitlines() if line.startswith("pc03"))
    assert "NOT CONFIGURED" in row and row.split()[-7:] == ["3", "0", "0", "0", "1", "1", "0"]
    block = out.split("not configured (data the check needs is missing; never a pass):", 1)[1]
    assert block.splitlines()[1:3] == ["  pc03:", "    admin.root_login_disabled — 期待値と異なる: policy accept"]
    assert "inventories/example_agency.py" in block
    assert "advisory (expected, not required; not a failure):" in out and "usb.storage_blocked" in out
    assert out.rstrip().endswith("exit 5 (incomplete)")
