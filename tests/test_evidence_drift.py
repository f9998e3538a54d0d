"""Drift: a check that went pass → fail between two runs is a regression (exit 4 in verify)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardening.evidence import diff, history
from tests.helpers import cli
from tests.test_evidence_support import all_pass, make_run


@pytest.fixture(autouse=True)
def _no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDENING_KEY_DIR", str(tmp_path / "keys"))


def undone(check_id: str, status: str = "fail") -> dict[str, str]:
    statuses = all_pass()
    statuses[check_id] = status
    return statuses


def test_measure_undone_between_two_runs_is_a_regression(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    first = make_run(root, 20, {"web01": all_pass(), "pc01": all_pass()})
    assert history.after_run(first).regressions == []
    second = make_run(root, 21, {"web01": undone("firewall.default_deny_inbound"), "pc01": all_pass()})
    lines = history.after_run(second).regressions
    assert len(lines) == 1
    assert "web01" in lines[0] and "6-7" in lines[0] and "firewall.default_deny_inbound" in lines[0]
    assert "pass → fail" in lines[0] and first.name in lines[0]


def test_each_host_is_compared_with_its_own_previous_run(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    history.after_run(make_run(root, 20, {"web01": all_pass()}))
    history.after_run(make_run(root, 21, {"pc01": all_pass()}))  # another inventory, same root
    third = make_run(root, 22, {"web01": undone("usb.storage_blocked", "error"), "pc01": all_pass()})
    outcome = history.seal_run(third)
    assert len(outcome.regressions) == 1 and "20261120" in outcome.regressions[0]


def test_diff_lists_worse_better_new_and_gone_per_host_and_clause(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    before = {"web01": undone("auth.no_empty_passwords"), "old01": all_pass()}
    statuses = undone("admin.root_login_disabled")
    del statuses["timeouts.shell_tmout"]
    history.after_run(make_run(root, 20, before))
    history.after_run(make_run(root, 21, {"web01": statuses, "new01": None}))
    changes = diff.compare_runs(*(diff.load_run(r) for r in sorted(p for p in root.iterdir() if p.is_dir())))
    web = next(d for d in changes if d.host == "web01")
    assert [(c.kind, c.check) for c in web.changes] == [
        ("worse", "admin.root_login_disabled"), ("better", "auth.no_empty_passwords"),
        ("gone", "timeouts.shell_tmout")]
    proc = cli("diff", "--evidence", root)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "web01:\n" in text and "  6-6\n    worse   admin.root_login_disabled  pass → fail" in text
    assert "  6-1\n    better  auth.no_empty_passwords  fail → pass" in text
    assert "gone    timeouts.shell_tmout" in text
    assert "old01:\n  gone" in text and "new01:\n  new host" in text
    assert cli("diff", "--evidence", root, "--exit-code").returncode == 4
    data = json.loads(cli("diff", "--evidence", root, "--json").stdout)
    assert data["schema"] == "hardening.diff/1" and len(data["hosts"]) == 3


def test_diff_needs_two_runs(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    history.after_run(make_run(root, 20, {"web01": all_pass()}))
    proc = cli("diff", "--evidence", root)
    assert proc.returncode == 2 and proc.stderr.startswith("hardening: error:")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_diff_refuses_a_pruned_run(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    first = make_run(root, 1, {"web01": all_pass()}, retention_days=1)
    history.after_run(first)
    history.after_run(make_run(root, 2, {"web01": all_pass()}, retention_days=1))
    assert [d.prune for d in history.prune(root, keep=1)] == [True]
    proc = cli("diff", first.name, "latest", "--evidence", root)
    assert proc.returncode == 2 and "pruned" in proc.stderr


def test_diff_shows_a_changed_profile(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    history.after_run(make_run(root, 20, {"web01": all_pass()}, retention_days=1825))
    history.after_run(make_run(root, 21, {"web01": all_pass()}, retention_days=30))
    text = cli("diff", "--evidence", root).stdout
    assert "web01:\n  profile terminal (high, " in text and " → terminal (high, " in text
