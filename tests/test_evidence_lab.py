"""Drift on a real lab host (a container): a measure undone between two verify runs is a regression,
`hardening verify` exits 4, `hardening diff` names it, and the sealed evidence verifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardening.lab import Lab
from hardening.lab.fixtures import StartHost
from tests.helpers import cli

pytestmark = pytest.mark.lab

HOST = "ev-drift1"


def test_measure_undone_between_two_runs_is_a_regression(lab: Lab, lab_host: StartHost, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDENING_KEY_DIR", str(tmp_path / "keys"))
    assert cli("keys", "init").returncode == 0
    host = lab_host(HOST, "server", "medium", kind="container")  # 6-6's root lock: any Debian host
    inventory = lab.write_inventory(tmp_path / "lab.py")
    evidence = tmp_path / "evidence"
    only = ("-l", HOST, "-m", "admin")  # other sessions' lab hosts may be in the inventory

    host.run("sudo passwd -l root")  # the measure in place (what deploys/admin.py does for 6-6)
    first = cli("verify", inventory, *only, "--evidence", evidence)
    assert "REGRESSION" not in first.stdout, first.stdout
    [run_a] = [p for p in evidence.iterdir() if p.is_dir()]
    status = {c["id"]: c["status"] for c in json.loads((run_a / f"{HOST}.json").read_text())["checks"]}
    assert status["admin.root_locked"] == "pass", status

    host.run("echo root:lab-only-Undo-1 | sudo chpasswd")  # the measure undone: root can log in again

    second = cli("verify", inventory, *only, "--evidence", evidence)
    output = second.stdout + second.stderr
    assert second.returncode == 4, output
    assert f"REGRESSION regression {HOST}: 6-6 admin.root_locked pass → fail since run {run_a.name}" in output
    assert "signed by sha256:" in output
    drift = cli("diff", "--evidence", evidence)
    assert f"{HOST}:" in drift.stdout and "worse   admin.root_locked  pass → fail" in drift.stdout
    intact = cli("evidence", "verify", "--evidence", evidence)
    assert intact.returncode == 0 and "2 signed seal(s): intact" in intact.stdout, intact.stdout
