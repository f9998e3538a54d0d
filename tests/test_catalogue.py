"""The clause catalogue, and coverage read from the tree."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from hardening import ROOT, catalogue, deploying, measures
from hardening.errors import ConfigError

EXPECTED_IDS = [f"6-{n}" for n in range(1, 19)] + [f"7-{n}" for n in range(1, 6)]


def test_catalogue_has_all_23_clauses_in_order() -> None:
    cat = catalogue.load()
    assert cat.ids() == EXPECTED_IDS
    rows = {r.clause.id: r for r in catalogue.coverage()}
    for clause in cat.clauses:
        assert clause.heading_ja and clause.text_ja and clause.summary_en
        assert rows[clause.id].measures or rows[clause.id].attestations or "tech" in clause.kind, clause.id


def test_every_manual_clause_has_an_attestation_item_in_some_profile() -> None:
    rows = {r.clause.id: r for r in catalogue.coverage()}
    for clause_id, row in rows.items():
        if "manual" in row.clause.kind:
            assert row.attestations, f"{clause_id} is manual but no profile defines an attestation"


def test_measure_lists_and_deploy_order_come_from_the_registry() -> None:
    rows = {r.clause.id: r for r in catalogue.coverage()}
    for m in measures.all_measures():
        for clause_id in m.clauses:
            assert m.name in rows[clause_id].measures
    assert rows["6-13"].measures == ["terminal"] and rows["6-14"].deploys == ["terminal"]
    assert deploying.available() == [m.name for m in sorted(measures.all_measures(), key=lambda m: m.order)
                                     if m.deployable]
    assert rows["7-5"].measures == ["power", "disks"] and rows["7-5"].deploys == ["power"]  # disks only checks
    assert rows["7-1"].measures == ["usb"]  # media brought into a server room: the USB block
    assert deploying.available()[-1] == "firewall"  # what can lock the tool out goes last


def fake_tree(tmp_path: Path) -> Path:
    """A copy of the shipped checks, deploys and profiles, to break one thing at a time."""
    for name in ("checks", "deploys", "hwprofiles"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_shipped_tree_is_consistent(tmp_path: Path) -> None:
    assert len(catalogue.coverage(fake_tree(tmp_path))) == 23


def test_unknown_clause_in_a_check_is_a_load_error(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    (root / "checks" / "test_usb.py").write_text(
        "import pytest\n\n@pytest.mark.clause('6-11', '6-99')\ndef test_x(obs):\n    assert True\n")
    with pytest.raises(ConfigError, match=r"test_usb\.py: test_x: unknown clause id '6-99'"):
        catalogue.coverage(root)


def test_check_marked_with_a_clause_its_measure_does_not_declare(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    (root / "checks" / "test_usb.py").write_text(
        "import pytest\n\n@pytest.mark.clause('6-11', '7-2')\ndef test_x(obs):\n    assert True\n")
    with pytest.raises(ConfigError, match=r"test_usb\.py: test_x: marked with clause 7-2, which measure 'usb' "
                                          r"does not declare in .*measures/usb\.py"):
        catalogue.coverage(root)


def test_registered_measure_without_a_deploy_is_a_load_error(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    (root / "deploys" / "usb.py").unlink()
    with pytest.raises(ConfigError, match=r"measures/usb\.py: MEASURE: measure 'usb' is registered with a deploy, "
                                          r"but .*deploys/usb\.py does not exist"):
        catalogue.coverage(root)


def test_registered_measure_without_checks_is_a_load_error(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    (root / "checks" / "test_usb.py").unlink()
    with pytest.raises(ConfigError, match=r"measures/usb\.py: MEASURE: measure 'usb' is registered, but "
                                          r".*checks/test_usb\.py does not exist"):
        catalogue.coverage(root)


def test_deploy_or_checks_of_an_unregistered_measure_are_load_errors(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    (root / "deploys" / "faxlog.py").write_text("X = 1\n")
    with pytest.raises(ConfigError, match=r"deploys/faxlog\.py: module: deploy for measure 'faxlog', which no "
                                          r"module in .*measures registers"):
        catalogue.coverage(root)
    (root / "deploys" / "faxlog.py").unlink()
    (root / "checks" / "test_faxlog.py").write_text("X = 1\n")
    with pytest.raises(ConfigError, match=r"checks/test_faxlog\.py: module: checks for measure 'faxlog'"):
        catalogue.coverage(root)


def _with(monkeypatch: pytest.MonkeyPatch, name: str, **changes: object) -> None:
    """The registry with one measure changed (as if its module declared that)."""
    changed = dataclasses.replace(measures.get(name), **changes)  # type: ignore[arg-type]
    registry = {m.name: (changed if m.name == name else m) for m in measures.all_measures()}
    monkeypatch.setattr(measures, "_registry", lambda: registry)


def test_measure_declaring_an_unknown_clause_is_a_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _with(monkeypatch, "usb", clauses=("6-11", "8-1"))
    with pytest.raises(ConfigError, match=r"measures/usb\.py: MEASURE\.clauses: unknown clause id '8-1'"):
        catalogue.coverage()


def test_no_deploy_must_be_declared_on_purpose(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _with(monkeypatch, "usb", no_deploy="checks only")
    with pytest.raises(ConfigError, match=r"measures/usb\.py: MEASURE\.no_deploy: .*declares no_deploy, but "
                                          r".*deploys/usb\.py exists"):
        catalogue.coverage()
    root = fake_tree(tmp_path)
    (root / "deploys" / "usb.py").unlink()
    rows = {r.clause.id: r for r in catalogue.coverage(root)}
    assert rows["6-11"].measures == ["usb", "usblog"] and rows["6-11"].deploys == ["usblog"]
    assert "usb" not in deploying.available()


def test_catalogue_naming_an_unregistered_measure_is_a_load_error() -> None:
    cat = catalogue.load()
    broken = cat.model_copy(update={"clauses": [c.model_copy(update={"measures": ["ups"]}) if c.id == "7-5" else c
                                                for c in cat.clauses]})
    per_measure = {m.name: {} for m in measures.all_measures()}
    with pytest.raises(ConfigError, match=r"clauses\.yaml: clauses\.7-5\.measures: names measure 'ups', which no "
                                          r"module in .*measures registers"):
        measures.validate(ROOT, broken, per_measure)
    wrong = cat.model_copy(update={"clauses": [c.model_copy(update={"measures": ["usb"]}) if c.id == "6-1" else c
                                               for c in cat.clauses]})
    with pytest.raises(ConfigError, match=r"clauses\.6-1\.measures: names measure 'usb', whose MEASURE does not "
                                          r"declare clause 6-1"):
        measures.validate(ROOT, wrong, per_measure)


def test_module_without_measure_object_is_a_load_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "fake_measures"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "backup.py").write_text("X = 1\n")
    monkeypatch.setattr(measures, "__path__", [str(package)])
    monkeypatch.setattr(measures, "__name__", "fake_measures")
    monkeypatch.syspath_prepend(str(tmp_path))
    measures._registry.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"backup\.py: MEASURE: a measure module must declare MEASURE"):
            measures._registry()
    finally:
        measures._registry.cache_clear()


def test_unknown_clause_in_a_profile_attestation_is_a_load_error(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    (root / "hwprofiles" / "room.yaml").write_text(
        "name: room\nextends: server\nattestations:\n  - {id: x, clauses: ['9-1'], ja: a, en: b}\n")
    with pytest.raises(ConfigError, match=r"room\.yaml: attestations\.x: unknown clause id '9-1'"):
        catalogue.coverage(root, root / "hwprofiles")


def test_docs_measures_reference_is_generated_from_the_registry() -> None:
    from hardening import measuredocs

    text = (ROOT / "docs" / "measures.md").read_text(encoding="utf-8")
    assert measuredocs.section_of(text) == measuredocs.markdown(), (
        "docs/measures.md is stale: regenerate its reference section with `hardening measures --markdown`")
