"""Waivers: loaded with errors that name the file and the key, scoped to hosts, groups, rooms or
profiles, and applied to failed checks only while valid (hardening.waivers)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from hardening import ROOT, waivers
from hardening.errors import ConfigError
from hardening.evidence import model
from hardening.inventory import load as load_inventory
from hardening.plan import Plan, observation_commands
from hardening.profiles import Profiles

TODAY = dt.date(2026, 12, 2)
VALID = """\
- id: W-2026-003
  applies_to: {groups: [terminals]}
  check: usb.usbguard_service
  justification: 窓口のICカードリーダー更新まで
  requested_by: 鈴木 一郎 (保険年金課)
  approved_by: 山田 太郎 (保護管理者)
  approved: 2026-11-01
  expires: 2027-03-31
- id: W-2026-004
  applies_to: {profiles: [server]}
  clause: "6-8"
  justification: 年度末の更新停止期間
  requested_by: 情報政策課
  approved_by: 山田 太郎 (保護管理者)
  approved: 2026-01-05
  expires: 2026-03-31
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waivers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hosts() -> dict[str, Any]:
    inv = load_inventory(ROOT / "inventories" / "example_agency.py")
    return {h.name.split(".")[0]: h for h in inv.hosts}


def applying(host: Any, path: Path, today: dt.date = TODAY) -> list[dict[str, Any]]:
    profile = host.resolve(Profiles(ROOT / "inventories" / "profiles"))
    return waivers.evaluate(profile, waivers.load(path), name=host.name, host=host, source=path, today=today)


def test_a_valid_file_loads_and_each_waiver_applies_to_its_scope(tmp_path: Path, hosts: dict[str, Any]) -> None:
    path = write(tmp_path, VALID)
    terminal = applying(hosts["pc-kokuho-001"], path)
    assert [(w["id"], w["status"]) for w in terminal] == [("W-2026-003", "valid")]
    server = applying(hosts["db-juki-01"], path)
    assert [(w["id"], w["status"]) for w in server] == [("W-2026-004", "expired")]  # by profile chain
    assert server[0]["file"] == str(path)


@pytest.mark.parametrize(("change", "key", "message"), [
    (("justification: 窓口のICカードリーダー更新まで", "justification: '  '"), r"\[0\]\.justification",
     "must not be empty"),
    (("  approved_by: 山田 太郎 (保護管理者)\n  approved: 2026-11-01", "  approved: 2026-11-01"),
     r"\[0\]\.approved_by", "Field required"),
    (("  requested_by: 鈴木 一郎 (保険年金課)\n", ""), r"\[0\]\.requested_by", "Field required"),
    (("expires: 2027-03-31", "expires: 2026-10-01"), r"\[0\]\.expires", "not after approved 2026-11-01"),
    (("check: usb.usbguard_service", "check: usb.no_such_check"), r"\[0\]\.check", "unknown check"),
    (('clause: "6-8"', 'clause: "6-99"'), r"\[1\]\.clause", "unknown clause id"),
    (("  check: usb.usbguard_service\n", ""), r"\[0\]\.check", "exactly one of check"),
    (("W-2026-004", "W-2026-003"), r"\[1\]\.id", "duplicate waiver id"),
    (("applies_to: {groups: [terminals]}", "applies_to: {}"), r"\[0\]\.applies_to", "needs hosts"),
    (("  justification: 窓口", "  because: x\n  justification: 窓口"), r"\[0\]\.because", "Extra inputs"),
])
def test_an_invalid_waiver_is_a_load_error_naming_file_and_key(tmp_path: Path, change: tuple[str, str],
                                                               key: str, message: str) -> None:
    assert change[0] in VALID
    path = write(tmp_path, VALID.replace(change[0], change[1], 1))
    with pytest.raises(ConfigError, match=rf"waivers\.yaml: {key}: .*{message}"):
        waivers.load(path)


def test_a_waiver_file_that_is_not_a_list_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a list of waivers"):
        waivers.load(write(tmp_path, "id: x\n"))


def check(check_id: str, status: str, clauses: tuple[str, ...] = ("6-11",)) -> dict[str, Any]:
    return {"id": check_id, "status": status, "clauses": list(clauses), "message": ""}


def test_only_a_failed_check_is_waived_while_the_waiver_is_valid() -> None:
    valid = {"id": "W1", "check": "usb.a", "clause": None, "status": "valid", "justification": "j",
             "approved_by": "a", "expires": "2027-03-31", "file": "w.yaml"}
    lapsed = {**valid, "id": "W0", "check": None, "clause": "6-8", "status": "expired", "expires": "2026-03-31"}
    checks = [check("usb.a", "fail"), check("usb.a", "error"), check("usb.b", "fail"),
              check("patching.x", "fail", ("6-8",)), check("usb.a", "pass")]
    out = waivers.apply(checks, [valid, lapsed])
    assert [c["status"] for c in out] == ["waived", "error", "fail", "fail", "pass"]
    assert out[0]["waived_status"] == "fail" and out[0]["waiver"]["id"] == "W1"
    assert out[3]["waiver_expired"]["id"] == "W0"  # the check counts again, naming the lapsed waiver
    assert valid["used_by"] == ["usb.a"] and lapsed["used_by"] == []
    assert checks[0]["status"] == "fail"  # the input is not changed


def test_the_day_after_its_expiry_a_waiver_no_longer_covers_anything(tmp_path: Path,
                                                                     hosts: dict[str, Any]) -> None:
    path = write(tmp_path, VALID)
    host = hosts["pc-kokuho-001"]
    assert applying(host, path, dt.date(2027, 3, 31))[0]["status"] == "valid"
    assert applying(host, path, dt.date(2027, 4, 1))[0]["status"] == "expired"
    assert applying(host, path, dt.date(2026, 10, 31)) == []  # approved for a later date: not yet


def test_the_document_records_the_waiver_and_the_host_passes(tmp_path: Path, hosts: dict[str, Any]) -> None:
    """A run's document: the waived check keeps what it found, the waiver is listed with what it
    waived, the verdict counts it as accepted; expired, it fails the host again."""
    profile = Profiles().resolve("terminal", "high")
    host = hosts["pc-kokuho-001"]
    for today, verdict in ((TODAY, "pass"), (dt.date(2027, 4, 1), "fail")):
        applying_now = waivers.evaluate(profile, waivers.load(write(tmp_path, VALID)), name=host.name,
                                        host=host, today=today)
        plan = Plan(name=host.name, local=True, profile=profile, digest=profile.digest(), measures=[],
                    commands=observation_commands(profile, []), waivers=applying_now)
        doc = model.document(run_id="r", plan=plan, mode="ssh", started="s", finished="f", tool_version="t",
                             identity={}, checks=[check("usb.usbguard_service", "fail"), check("usb.x", "pass")],
                             observations=[])
        assert doc["verdict"] == verdict
        assert doc["summary"]["waived" if verdict == "pass" else "fail"] == 1
        assert doc["waivers"][0]["used_by"] == (["usb.usbguard_service"] if verdict == "pass" else [])


def test_the_fleet_sheet_names_the_waiver_and_has_a_row_per_attestation(tmp_path: Path) -> None:
    """The self-inspection sheet (fleet.csv): the waived check's row says waived with the waiver's
    id and expiry; each attestation item is a row of its own, with who, role, until when, and the
    person's date."""
    import json

    from hardening import attestations
    from hardening.evidence import fleet
    from tests.test_evidence_support import OBSERVATIONS
    from tests.test_evidence_support import check as support_check

    profile = Profiles().resolve("terminal", "high")
    records = tmp_path / "attestations.yaml"
    records.write_text("- {item: terminal-theft, applies_to: {hosts: [pc01]}, by: 鈴木 一郎, role: 保護担当者,"
                       " date: 2026-11-20, result: pass, note: ワイヤーロック確認}\n", encoding="utf-8")
    waiver = write(tmp_path, VALID.replace("groups: [terminals]", "hosts: [pc01]"))
    plan = Plan(name="pc01", profile=profile, digest=profile.digest(), measures=[], commands=[],
                attestations=attestations.evaluate(profile, attestations.load(records), name="pc01", host=None,
                                                   today=TODAY),
                waivers=waivers.evaluate(profile, waivers.load(waiver), name="pc01", host=None, today=TODAY))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    doc = model.document(run_id="r1", plan=plan, mode="ssh", started="2026-12-02T01:00:00+00:00",
                         finished="2026-12-02T01:00:00+00:00", tool_version="t", identity={},
                         checks=[{**support_check("usb.storage_blocked", "fail"), "id": "usb.usbguard_service"},
                                 support_check("auth.no_empty_passwords")],
                         observations=OBSERVATIONS)
    path = model.write(doc, run_dir)
    (run_dir / "index.json").write_text(json.dumps({"schema": "hardening.run/1", "run_id": "r1", "hosts": [
        {"name": "pc01", "verdict": doc["verdict"], "json": path.name, "summary": doc["summary"]}]}), encoding="utf-8")
    sheet = fleet.render_csv(fleet.host_rows(run_dir))
    waived = next(line for line in sheet.splitlines() if "usb.usbguard_service" in line)
    assert "免除 waived (W-2026-003, until 2027-03-31)" in waived
    theft = next(line for line in sheet.splitlines() if "terminal-theft" in line)
    assert "確認済 attested" in theft and "鈴木 一郎 (保護担当者)" in theft and "2026-11-20" in theft
    carry = next(line for line in sheet.splitlines() if "terminal-carry" in line)
    assert "未評価 not evaluated" in carry
    assert doc["verdict"] == "not_evaluated"  # the waived failure is accepted; terminal-carry is not attested
    page = (run_dir / "pc01.html").read_text(encoding="utf-8")
    assert "W-2026-003" in page and "保護担当者" in page and "未評価 not evaluated" in page


def test_the_example_inventory_waivers_load() -> None:
    assert [w.id for w in waivers.load(ROOT / "inventories" / "waivers.yaml")] == ["W-2026-003", "W-2026-001"]


def test_a_waiver_in_its_last_30_days_is_expiring_and_still_covers(tmp_path: Path, hosts: dict[str, Any]) -> None:
    """Lifecycle: valid, expiring (still waives, named), expired (no longer waives)."""
    path = write(tmp_path, VALID)
    host = hosts["pc-kokuho-001"]
    early, late, gone = (applying(host, path, day)[0] for day in
                         (dt.date(2027, 2, 28), dt.date(2027, 3, 1), dt.date(2027, 4, 1)))
    assert (early["status"], early["expiring"], early["expires_in_days"]) == ("valid", False, 31)
    assert (late["status"], late["expiring"], late["expires_in_days"]) == ("valid", True, 30)
    assert gone["status"] == "expired" and "expiring" not in gone
    failed = [{"id": "usb.usbguard_service", "status": "fail", "clauses": ["6-11"]}]
    assert waivers.apply(failed, [late])[0]["status"] == "waived"
    assert model.expiring({"attestations": [], "waivers": [late]}) == ["waiver W-2026-003 until 2027-03-31"]
