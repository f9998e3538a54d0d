"""Attestations by a person: records matched to a host's profile items, with validity."""

from __future__ import annotations

import datetime as dt
import hashlib
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
    assert got["locks-alarms"]["status"] == "attested"
    assert got["locks-alarms"]["by"].startswith("山田") and got["locks-alarms"]["role"] == "保護管理者 総務課"
    assert got["locks-alarms"]["until"] == "2027-01-31"  # on + valid_days 90
    assert got["disaster-measures"]["status"] == "expired"  # 2025-10-01 + 365 days
    assert got["entrances"]["status"] == "not_evaluated"


def test_group_records_apply_to_terminals(hosts: dict) -> None:
    got = statuses(hosts["pc-kokuho-001"], load(ROOT / "inventories" / "attestations.yaml"))
    assert got["terminal-theft"]["status"] == "attested"
    assert got["terminal-carry"]["status"] == "not_evaluated"
    assert "locks-alarms" not in got  # not an item of the terminal profile


def test_latest_record_wins_and_a_recorded_failure_fails(hosts: dict, tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(
        "- {item: terminal-theft, applies_to: {hosts: [pc-kokuho-001.soumu.example.lg.jp]}, by: A, role: R,"
        " date: 2026-11-01, result: pass}\n"
        "- {item: terminal-theft, applies_to: {hosts: [pc-kokuho-001.soumu.example.lg.jp]}, by: B, role: R,"
        " date: 2026-11-20, result: fail, note: ワイヤーロック未装着}\n")
    got = statuses(hosts["pc-kokuho-001"], load(path))["terminal-theft"]
    assert (got["status"], got["by"], got["note"]) == ("fail", "B", "ワイヤーロック未装着")


@pytest.mark.parametrize(("text", "expect"), [
    ("- {item: x, applies_to: {hosts: [a]}, role: R, date: 2026-01-01, result: pass}\n", r"\[0\]\.by: Field required"),
    ("- {item: x, applies_to: {hosts: [a]}, by: A, date: 2026-01-01, result: pass}\n", r"\[0\]\.role: Field required"),
    ("- {item: x, applies_to: {}, by: A, role: R, date: 2026-01-01, result: pass}\n", r"\[0\]\.applies_to"),
    ("- {item: x, applies_to: {hosts: [a]}, by: A, role: R, date: yesterday, result: pass}\n", r"\[0\]\.date"),
    ("- {item: x, applies_to: {hosts: [a]}, by: A, role: R, date: 2026-01-01, result: maybe}\n", r"\[0\]\.result"),
    ("- {item: x, applies_to: {hosts: [a]}, by: A, role: R, date: 2026-01-01, result: pass,"
     " files: [{path: a.jpg, sha256: abc}]}\n", r"\[0\]\.files\.0\.sha256"),
    ("item: x\n", "expected a list"),
])
def test_broken_records_name_file_entry_and_key(tmp_path: Path, text: str, expect: str) -> None:
    path = tmp_path / "attestations.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expect):
        load(path)


def test_an_attached_file_changed_after_the_attestation_fails_it(hosts: dict, tmp_path: Path) -> None:
    """The record carries each attached file's SHA-256; a file that is present with other bytes
    fails the item (naming it); an absent one is reported, the result unchanged."""
    photo = tmp_path / "photos" / "lock.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"photo of the wire lock")
    from hardening.attestations import sha256
    path = tmp_path / "attestations.yaml"
    path.write_text(
        "- {item: terminal-theft, applies_to: {groups: [terminals]}, by: A, role: R, date: 2026-11-01,"
        f" result: pass, files: [{{path: photos/lock.jpg, sha256: {sha256(photo)}}},"
        f" {{path: sheet.pdf, sha256: {'f' * 64}}}]}}\n")
    got = statuses(hosts["pc-kokuho-001"], load(path))["terminal-theft"]
    assert got["status"] == "attested"
    assert [(f["path"], f["present"], f["intact"]) for f in got["files"]] == [
        ("photos/lock.jpg", True, True), ("sheet.pdf", False, False)]
    photo.write_bytes(b"another photo")
    got = statuses(hosts["pc-kokuho-001"], load(path))["terminal-theft"]
    assert got["status"] == "fail" and "attached file changed since it was attested: photos/lock.jpg" in got["note"]


def test_attest_appends_a_record_that_verify_reads(tmp_path: Path, hosts: dict) -> None:
    """`hardening attest`: one record appended (earlier records and comments kept), valid for the
    item's valid_days from --date, the attached file hashed; bad input is one line, exit 2."""
    import shutil

    from tests.helpers import cli, one_line_error

    inv_dir = tmp_path / "inv"
    shutil.copytree(ROOT / "inventories", inv_dir)
    (inv_dir / "photos").mkdir()
    (inv_dir / "photos" / "b1.jpg").write_bytes(b"door photo")
    before = (inv_dir / "attestations.yaml").read_text(encoding="utf-8")
    args: list[str | Path] = ["attest", "entrances", "--room", "本庁舎B1 サーバ室", "--by", "田中 次郎",
            "--role", "情報システム管理者",
            "--result", "pass", "--date", "2026-11-20", "--note", "出入口の特定",
            "--file", inv_dir / "photos" / "b1.jpg",
            "-i", inv_dir / "example_agency.py", "--profiles", inv_dir / "profiles"]
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "valid until" in proc.stdout and "1 file(s) hashed" in proc.stdout
    text = (inv_dir / "attestations.yaml").read_text(encoding="utf-8")
    assert text.startswith(before)
    got = statuses(hosts["db-juki-01"], load(inv_dir / "attestations.yaml"))["entrances"]
    assert (got["status"], got["by"], got["role"], got["date"]) == ("attested", "田中 次郎", "情報システム管理者",
                                                                    "2026-11-20")
    assert got["files"] == [{"path": "photos/b1.jpg", "sha256": hashlib.sha256(b"door photo").hexdigest(),
                             "present": True, "intact": True}]

    def without(option: str) -> list[str | Path]:
        at = args.index(option)
        return [*args[:at], *args[at + 2:]]

    cases: list[tuple[list[str | Path], str]] = [
        (["--room", "B9"], "unknown room B9"), (["--date", "2099-01-01"], "is in the future"),
        (["--file", tmp_path / "none.jpg"], "attached file not found")]
    for bad, message in cases:
        proc = cli(*without(str(bad[0])), *bad)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert (inv_dir / "attestations.yaml").read_text(encoding="utf-8") == text  # nothing appended
        if bad[0] != "--date":
            assert message in one_line_error(proc)


def test_an_attestation_in_its_last_30_days_is_expiring_and_still_attested(hosts: dict, tmp_path: Path) -> None:
    """Lifecycle: attested, expiring (still attested, named), expired (fails the host)."""
    path = tmp_path / "a.yaml"
    path.write_text("- {item: terminal-theft, applies_to: {groups: [terminals]}, by: A, role: R,"
                    " date: 2026-10-01, until: 2026-12-20, result: pass}\n")
    host = hosts["pc-kokuho-001"]
    profile = host.resolve(Profiles(ROOT / "inventories" / "profiles"))

    def on(day: dt.date) -> dict:
        items = evaluate(profile, load(path), name=host.name, host=host, today=day)
        return {a["id"]: a for a in items}["terminal-theft"]

    assert (on(dt.date(2026, 11, 19))["expiring"], on(dt.date(2026, 11, 19))["expires_in_days"]) == (False, 31)
    assert (on(TODAY)["status"], on(TODAY)["expiring"], on(TODAY)["expires_in_days"]) == ("attested", True, 22)
    assert on(dt.date(2026, 12, 21))["status"] == "expired" and "expiring" not in on(dt.date(2026, 12, 21))
