"""Retention: prune never deletes a run younger than its hosts' retention period, and the chain
still verifies after pruning; documents deleted early are reported."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from hardening.evidence import chain, history, keys
from hardening.evidence.store import Store
from tests.helpers import cli
from tests.test_evidence_support import all_pass, make_run


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs on Nov 1, 2, 3 (retention 7 days) and Nov 4 (one host with 1825 days) and Nov 27."""
    monkeypatch.setenv("HARDENING_KEY_DIR", str(tmp_path / "keys"))
    keys.init(tmp_path / "keys")
    root = tmp_path / "evidence"
    for day in (1, 2, 3):
        history.seal_run(make_run(root, day, {"web01": all_pass()}, retention_days=7))
    long_kept = make_run(root, 4, {"web01": all_pass()}, retention_days=7)
    doc = json.loads((long_kept / "web01.json").read_text())
    doc["profile"]["resolved"]["evidence"]["retention_days"] = 1825  # a server kept five years
    (long_kept / "web01.json").write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    history.seal_run(long_kept)
    history.seal_run(make_run(root, 27, {"web01": all_pass()}, retention_days=7))
    return root


def _verify(root: Path) -> chain.Report:
    with Store(root) as store:
        return chain.verify_tree(root, chain.Policy(trusted=keys.trusted()), store.indexed())


def test_prune_keeps_young_runs_and_the_chain_verifies(root: Path) -> None:
    runs = chain.run_dirs(root)
    decisions = {d.run_id: d for d in history.prune(root, keep=1)}
    assert [r.name for r in runs if decisions.get(r.name) and decisions[r.name].prune] == [
        r.name for r in runs[:3]]
    assert "1825 days" in decisions[runs[3].name].reason and not decisions[runs[3].name].prune
    assert runs[4].name not in decisions  # the newest is always kept
    for run_dir in runs[:3]:
        assert sorted(p.name for p in run_dir.iterdir()) == ["pruned.json", "seal.json", "seal.sig"]
    assert (runs[3] / "web01.json").exists()
    report = _verify(root)
    assert report.ok, [f.line() for f in report.findings]
    with Store(root) as store:
        pruned = [r["run_id"] for r in store.runs() if r["pruned_at"]]
        assert pruned == [r.name for r in runs[:3]] and not store.results(runs[0].name, "web01")
        assert len(store.host_history("web01")) == 5  # summaries stay


def test_keep_n_and_dry_run(root: Path) -> None:
    proc = cli("evidence", "prune", "--evidence", root, "--keep", "3", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("would prune") == 2 and "2 run(s) to prune" in proc.stdout
    assert all((r / "index.json").exists() for r in chain.run_dirs(root))


def test_documents_deleted_before_retention_are_reported(root: Path) -> None:
    young = chain.run_dirs(root)[3]
    note = {"pruned_at": chain.now().isoformat(timespec="seconds"), "by": "someone"}
    (young / "pruned.json").write_text(json.dumps(note))
    for path in young.iterdir():
        if path.name not in chain.UNSEALED_FILES:
            path.unlink()
    report = _verify(root)
    assert [f.kind for f in report.findings if f.fatal] == ["removed"]
    assert "before its retention period of 1825 days" in report.findings[0].detail


def test_whole_pruned_run_removed_is_still_detected(root: Path) -> None:
    history.prune(root, keep=1)
    shutil.rmtree(chain.run_dirs(root)[1])
    assert "run-removed" in {f.kind for f in _verify(root).findings}


def test_plan_uses_the_run_start_not_the_file_dates(root: Path) -> None:
    at = dt.datetime(2026, 11, 9, 10, 0, tzinfo=dt.UTC)  # 8, 7 and 6 days after Nov 1, 2, 3
    plan = {d.run_id[:8]: d.prune for d in history.plan_prune(root, keep=1, at=at)}
    assert plan == {"20261101": True, "20261102": True, "20261103": False, "20261104": False}
