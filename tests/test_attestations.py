"""Attestations by a person: records matched to a host's profile items, with validity."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.attestations import evaluate, load
from hardening.errors import ConfigError
from hardening.inventory import load as load_inventory
from hardening.profiles import Profiles

TODAY = dt.date(2026, 11, 28)


@pytest.fixture(scope="module")
def hosts() -> dict:
    inv = load_inventory(ROOT / "inventories" / "example_agency.py")
    return {h.name.split(".")[0]: h for h in inv.hosts}


def statuses(host, records) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    profile = host.resolve(Profiles(ROOT / "inventories" / "profiles"))
    return {a["id"]: a for a in evaluate(profile, records, name=host.name, host=host, today=TODAY)}


def test_room_records_apply_to_servers_in_that_room(hosts: dict) -> None:
    records = load(ROOT / "inventories" / "attestations.yaml")
    got = statuses(hosts["db-juki-01"], records)
    assert got["locks-alarms"]["status"] == "pass"
    assert got["locks-alarms"]["by"].startswith("山田")
    assert got["locks-alarms"]["until"] == "2027-01-31"  # on + valid_days 90
    assert got["disaster-measures"]["status"] == "expired"  # 2025-10-01 + 365 days
    assert got["entrances"]["status"] == "missing"


def test_group_records_apply_to_terminals(hosts: dict) -> None:
    got = statuses(hosts["pc-kokuho-001"], load(ROOT / "inventories" / "attestations.yaml"))
    assert got["terminal-theft"]["status"] == "pass"
    assert got["terminal-carry"]["status"] == "missing"
    assert "locks-alarms" not in got  # not an item of the terminal profile


def test_latest_record_wins_and_a_recorded_failure_fails(hosts: dict, tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(
        "- {item: terminal-theft, applies_to: {hosts: [pc-kokuho-001.soumu.example.lg.jp]}, by: A,"
        " date: 2026-11-01, result: pass}\n"
        "- {item: terminal-theft, applies_to: {hosts: [pc-kokuho-001.soumu.example.lg.jp]}, by: B,"
        " date: 2026-11-20, result: fail, note: ワイヤーロック未装着}\n")
    got = statuses(hosts["pc-kokuho-001"], load(path))["terminal-theft"]
    assert (got["status"], got["by"], got["note"]) == ("fail", "B", "ワイヤーロック未装着")


@pytest.mark.parametrize(("text", "expect"), [
    ("- {item: x, applies_to: {hosts: [a]}, date: 2026-01-01, result: pass}\n", r"\[0\]\.by: Field required"),
    ("- {item: x, applies_to: {}, by: A, date: 2026-01-01, result: pass}\n", r"\[0\]\.applies_to"),
    ("- {item: x, applies_to: {hosts: [a]}, by: A, date: yesterday, result: pass}\n", r"\[0\]\.date"),
    ("- {item: x, applies_to: {hosts: [a]}, by: A, date: 2026-01-01, result: maybe}\n", r"\[0\]\.result"),
    ("item: x\n", "expected a list"),
])
def test_broken_records_name_file_entry_and_key(tmp_path: Path, text: str, expect: str) -> None:
    path = tmp_path / "attestations.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expect):
        load(path)
