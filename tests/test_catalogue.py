"""The clause catalogue, and coverage read from the tree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hardening import ROOT, catalogue
from hardening.errors import ConfigError

EXPECTED_IDS = [f"6-{n}" for n in range(1, 19)] + [f"7-{n}" for n in range(1, 6)]


def test_catalogue_has_all_23_clauses_in_order() -> None:
    cat = catalogue.load()
    assert cat.ids() == EXPECTED_IDS
    for clause in cat.clauses:
        assert clause.heading_ja and clause.text_ja and clause.summary_en
        assert clause.measures or clause.attestations, clause.id


def test_every_manual_clause_has_an_attestation_item_in_some_profile() -> None:
    rows = {r.clause.id: r for r in catalogue.coverage()}
    for clause_id, row in rows.items():
        if "manual" in row.clause.kind:
            assert row.attestations, f"{clause_id} is manual but no profile defines an attestation"


def fake_tree(tmp_path: Path) -> Path:
    for name in ("checks", "deploys"):
        (tmp_path / name).mkdir()
    shutil.copytree(ROOT / "hwprofiles", tmp_path / "hwprofiles")
    return tmp_path


def test_unknown_clause_in_a_check_is_a_load_error(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    (root / "checks" / "test_usb.py").write_text(
        "import pytest\n\n@pytest.mark.clause('6-11', '6-99')\ndef test_x(host):\n    assert True\n")
    with pytest.raises(ConfigError, match=r"test_usb\.py: test_x: unknown clause id '6-99'"):
        catalogue.coverage(root)


def test_unknown_clause_in_a_deploy_is_a_load_error(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    (root / "deploys" / "usb.py").write_text("CLAUSES = ('6-11', '8-1')\n")
    with pytest.raises(ConfigError, match=r"usb\.py: CLAUSES: unknown clause id '8-1'"):
        catalogue.coverage(root)


def test_deploy_without_clauses_is_a_load_error(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    (root / "deploys" / "usb.py").write_text("X = 1\n")
    with pytest.raises(ConfigError, match="must declare CLAUSES"):
        catalogue.coverage(root)


def test_unknown_clause_in_a_profile_attestation_is_a_load_error(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    (root / "hwprofiles" / "room.yaml").write_text(
        "name: room\nextends: server\nattestations:\n  - {id: x, clauses: ['9-1'], ja: a, en: b}\n")
    with pytest.raises(ConfigError, match=r"room\.yaml: attestations\.x: unknown clause id '9-1'"):
        catalogue.coverage(root)


def test_coverage_counts_checks_and_deploys(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    (root / "checks" / "test_usb.py").write_text(
        "import pytest\n\n@pytest.mark.clause('6-11', '7-1')\ndef test_blocked(host):\n    assert True\n")
    (root / "deploys" / "usb.py").write_text("CLAUSES = ('6-11',)\n")
    rows = {r.clause.id: r for r in catalogue.coverage(root)}
    assert rows["6-11"].checks == ["usb.blocked"] and rows["6-11"].deploys == ["usb"]
    assert rows["7-1"].checks == ["usb.blocked"] and rows["7-1"].deploys == []
