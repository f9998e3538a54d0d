"""Server rooms (rooms.yaml): validation at load, the UPS a member learns, the room's sealed document,
its report in Japanese and English, the fleet report and sheet, and `hardening attest` for a room."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from hardening import ROOT, rooms
from hardening import attestations as attestations_mod
from hardening.errors import ConfigError
from hardening.evidence import chain, fleet, history, model
from hardening.inventory import load as load_inventory
from hardening.measures import power
from hardening.plan import Plan
from hardening.profiles import Profiles
from hardening.roomreport import markdown
from hardening.verify import HostResult, RunResult
from tests.helpers import cli, one_line_error

ROOM = "本庁舎B1 サーバ室"
DB = "db-juki-01.soumu.example.lg.jp"
FILE = "file-01.soumu.example.lg.jp"
PROFILES = ROOT / "inventories" / "profiles"
TODAY = dt.date(2026, 12, 2)


@pytest.fixture
def inventory_dir(tmp_path: Path) -> Path:
    """A copy of inventories/ (inventory, rooms, attestations, waivers, agency profiles)."""
    out = tmp_path / "inventories"
    shutil.copytree(ROOT / "inventories", out)
    return out


def write_rooms(directory: Path, text: str) -> Path:
    path = directory / "rooms.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_rooms_load_against_the_inventory_and_profiles() -> None:
    inv = load_inventory(ROOT / "inventories" / "example_agency.py")
    loaded = rooms.load(ROOT / "inventories" / "rooms.yaml", inv, Profiles(PROFILES))
    room = loaded.get(ROOM)
    assert room.members == [DB, FILE] and len(room.ups) == 2
    assert [u.ref for u in loaded.ups_for(DB)] == ["ups-b1-1@nut-b1.soumu.example.lg.jp",
                                                   "ups-b1-2@nut-b1.soumu.example.lg.jp"]
    assert [u.ref for u in loaded.ups_for(FILE)] == ["ups-b1-1@nut-b1.soumu.example.lg.jp"]
    assert loaded.ups_for("pc-kokuho-001.soumu.example.lg.jp") == []
    assert loaded.room_of(FILE) == ROOM
    assert room.attestations[0] == "entry-control"


@pytest.mark.parametrize(("text", "key", "message"), [
    ("r1: {members: []}", "r1.members", "at least 1 item"),
    ("r1: {members: [a], colour: red}", "r1.colour", "Extra inputs"),
    ("r1: {members: [a], ups: [{name: u1, server: 'x y', powers: [a]}]}", "r1.ups.0.server", "host or host:port"),
    ("r1: {members: [a], ups: [{name: u1, server: s, powers: [b]}]}", "r1.ups[0].powers", "not a member"),
    ("r1: {members: [a], ups: [{name: u1, server: s, powers: [a]}, {name: u1, server: s, powers: [a]}]}",
     "r1.ups[1]", "listed twice"),
    ("r1: {members: [a]}\nr2: {members: [a]}", "r2.members", "member of rooms 'r1' and 'r2'"),
    ("- a\n- b", None, "expected a mapping"),
])
def test_broken_rooms_name_file_and_key(tmp_path: Path, text: str, key: str | None, message: str) -> None:
    path = write_rooms(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        rooms.load(path)
    assert str(err.value).startswith(f"{path}: {key}: " if key else f"{path}: "), str(err.value)
    assert message in str(err.value)


def test_rooms_are_checked_against_the_inventory_and_the_profiles(inventory_dir: Path) -> None:
    inv = load_inventory(inventory_dir / "example_agency.py")
    path = write_rooms(inventory_dir, "r1: {members: [nobody.example]}")
    with pytest.raises(ConfigError, match=r"r1\.members: nobody\.example is not a host of"):
        rooms.load(path, inv)
    write_rooms(inventory_dir, f"r1: {{members: [{DB}]}}")
    with pytest.raises(ConfigError, match=f"r1.members: {DB} is in room '{ROOM}' in the asset register"):
        rooms.load(path, inv)
    write_rooms(inventory_dir, f"'{ROOM}': {{members: [{DB}], attestations: [no-such-item]}}")
    with pytest.raises(ConfigError, match=r"attestations: no hardware profile defines the attestation item "
                                          r"'no-such-item'"):
        rooms.load(path, inv, Profiles(PROFILES))


def test_a_member_gets_its_rooms_ups_in_its_plan(inventory_dir: Path) -> None:
    from hardening.verify import plans_from_inventory

    store = Profiles(PROFILES)
    inv = load_inventory(inventory_dir / "example_agency.py", store)
    loaded = rooms.load(inventory_dir / "rooms.yaml", inv, store)
    plans = {p.name: p for p in plans_from_inventory(inv, (), store, ["power"], rooms=loaded)}
    assert [u.ref for u in plans[DB].profile.measure("power").ups] == [
        "ups-b1-1@nut-b1.soumu.example.lg.jp", "ups-b1-2@nut-b1.soumu.example.lg.jp"]
    assert "upsc ups-b1-2@nut-b1.soumu.example.lg.jp" in plans[DB].commands
    assert plans["pc-kokuho-001.soumu.example.lg.jp"].profile.measure("power").ups == []
    # the password file's path is in the plan (the deploy reads it); the password itself never is
    assert "password_file" in plans[DB].model_dump_json()


# -- a verified run with a room ------------------------------------------------------------------

def _check(check_id: str, status: str, message: str = "") -> dict[str, Any]:
    measure = check_id.split(".", 1)[0]
    return {"id": check_id, "measure": measure, "clauses": ["7-5"], "title": check_id.replace(".", " "),
            "status": status, "expected": None, "observed": None, "message": message, "observations": [],
            "own_commands": [], "duration": 0.0}


UPSC = "battery.charge: 100\nbattery.runtime: 1800\nups.status: OL\n"


def make_room_run(root: Path, members: dict[str, dict[str, str] | None], store: Profiles) -> Path:
    """A run whose hosts ran the power (and disks) checks; None = unreachable."""
    run_dir = root / "20261202T010000Z-aaaa"
    run_dir.mkdir(parents=True)
    entries: list[dict[str, Any]] = []
    for name, statuses in members.items():
        if statuses is None:
            entries.append({"name": name, "profile": "soumu-server-room", "sensitivity": "high",
                            "verdict": "unreachable", "summary": {}, "json": None, "html": None,
                            "message": "ssh: connect to host port 22: No route to host"})
            continue
        profile = rooms.overlay(store.resolve("soumu-server-room", "high"),
                                [power.Ups(name="ups-b1-1", server="nut-b1.soumu.example.lg.jp")])
        plan = Plan(name=name, profile=profile, digest=profile.digest(), measures=["power"], commands=[])
        command = "upsc ups-b1-1@nut-b1.soumu.example.lg.jp"
        doc = model.document(run_id=run_dir.name, plan=plan, mode="ssh", started="2026-12-02T01:00:00+00:00",
                             finished="2026-12-02T01:00:05+00:00", tool_version="t", identity={},
                             checks=[_check(i, s, "" if s == "pass" else f"{i} found a problem")
                                     for i, s in statuses.items()],
                             observations=[{"id": "o0", "command": command, "exit_code": 0, "stdout": UPSC,
                                            "stderr": "", "duration": 0.01}])
        path = model.write(doc, run_dir)
        entries.append({"name": name, "profile": "soumu-server-room", "sensitivity": "high",
                        "verdict": doc["verdict"], "summary": doc["summary"], "json": path.name,
                        "html": path.with_suffix(".html").name, "message": ""})
    index = {"schema": "hardening.run/1", "run_id": run_dir.name, "started": "2026-12-02T01:00:00+00:00",
             "finished": "2026-12-02T01:00:05+00:00", "tool_version": "t", "inventory": None, "hosts": entries}
    (run_dir / "index.json").write_text(json.dumps(index, ensure_ascii=False), encoding="utf-8")
    return run_dir


def room_run(tmp_path: Path, inventory_dir: Path, members: dict[str, dict[str, str] | None]) -> RunResult:
    """Write the room's document the way `verify --room` does (the before_seal hook), then seal."""
    from hardening.verify import write_index

    store = Profiles(PROFILES)
    inv = load_inventory(inventory_dir / "example_agency.py", store)
    loaded = rooms.load(inventory_dir / "rooms.yaml", inv, store)
    run_dir = make_room_run(tmp_path / "evidence", members, store)
    index = json.loads((run_dir / "index.json").read_text(encoding="utf-8"))
    result = RunResult(run_dir, [HostResult(**{k: h[k] for k in ("name", "profile", "sensitivity", "verdict",
                                                                 "summary", "json", "html", "message")})
                                 for h in index["hosts"]])
    hook = rooms.before_seal(loaded, [ROOM], store, inventory_dir / "attestations.yaml", progress=lambda _: None)
    hook(result)
    write_index(result, run_id=run_dir.name, started=index["started"], inventory=None)
    history.seal_run(run_dir, key_dir=tmp_path / "no-keys")
    return result


GOOD = {"power.ups_online": "pass", "power.ups_battery": "pass", "power.shutdown_on_low_battery": "pass",
        "power.redundant_psu": "pass", "disks.raid_arrays": "pass"}


def test_the_room_document_links_members_by_digest_and_is_sealed(tmp_path: Path, inventory_dir: Path) -> None:
    result = room_run(tmp_path, inventory_dir, {DB: GOOD, FILE: {**GOOD, "disks.raid_arrays": "fail"}})
    [room] = result.rooms
    doc = rooms.read(result.run_dir / room.json)
    sealed = chain.load_sealed(result.run_dir).seal["files"]
    for member in doc["members"]:
        assert member["sha256"] == sealed[member["document"]]["sha256"]
    assert room.json in sealed and f"{rooms.safe_name(ROOM)}.ja.md" in sealed
    checks = {c["id"]: c for c in doc["checks"]}
    assert checks["room.members_powered"]["status"] == "pass"
    assert checks["room.ups:ups-b1-1@nut-b1.soumu.example.lg.jp"]["status"] == "pass"
    assert checks["room.ups:ups-b1-1@nut-b1.soumu.example.lg.jp"]["observed"]["upsc"][DB] == {
        "ups.status": "OL", "battery.charge": "100", "battery.runtime": "1800"}
    # ups-b1-2 powers the database server only
    assert checks["room.ups:ups-b1-2@nut-b1.soumu.example.lg.jp"]["observed"]["powers"] == [DB]
    assert "password_file" not in json.dumps(doc["ups"])
    # file-01's RAID failed: the member fails, and so does the room
    assert doc["verdict"] == "fail" and room.verdict == "fail" and result.exit_code == 1
    items = {a["id"]: a for a in doc["attestations"]}
    assert items["locks-alarms"]["by"] == "山田 太郎" and items["entrances"]["status"] == "not_evaluated"
    assert items["disaster-measures"]["status"] == "expired"  # attested 2025-10-01, valid 365 days


def test_an_unreachable_member_makes_the_room_an_error(tmp_path: Path, inventory_dir: Path) -> None:
    result = room_run(tmp_path, inventory_dir, {DB: GOOD, FILE: None})
    doc = rooms.read(result.run_dir / result.rooms[0].json)
    assert doc["verdict"] == "error"
    ups = next(c for c in doc["checks"] if c["id"] == "room.ups:ups-b1-1@nut-b1.soumu.example.lg.jp")
    assert ups["status"] == "error" and f"{FILE}: no evidence of its power checks" in ups["message"]


def test_a_ups_on_battery_fails_its_room_item(tmp_path: Path, inventory_dir: Path) -> None:
    result = room_run(tmp_path, inventory_dir, {DB: {**GOOD, "power.ups_online": "fail"}, FILE: GOOD})
    doc = rooms.read(result.run_dir / result.rooms[0].json)
    ups = next(c for c in doc["checks"] if c["id"] == "room.ups:ups-b1-1@nut-b1.soumu.example.lg.jp")
    assert ups["status"] == "fail" and "power.ups_online found a problem" in ups["message"]


def test_members_not_powered_fail(inventory_dir: Path) -> None:
    room = rooms.Room(members=["a", "b"], ups=[rooms.RoomUps(name="u", server="s", powers=["a"])])
    check = rooms.members_powered(room)
    assert check["status"] == "fail" and check["message"] == "not powered by a UPS of the room: b"
    assert rooms.finding("AssertionError: u: on battery (OB)\nassert not {'u': 'on battery (OB)'}") == (
        "u: on battery (OB)")


def test_room_report_in_japanese_and_english(tmp_path: Path, inventory_dir: Path) -> None:
    result = room_run(tmp_path, inventory_dir, {DB: GOOD, FILE: {**GOOD, "disks.raid_arrays": "fail"}})
    doc = rooms.read(result.run_dir / result.rooms[0].json)
    ja, en = markdown(doc, "ja"), markdown(doc, "en")
    assert ja.startswith(f"# サーバ室点検報告: {ROOM}") and "総合判定: **不適合** (fail)" in ja
    assert en.startswith(f"# Server room report: {ROOM}") and "Verdict: **fail** (fail)" in en
    for text in (ja, en):
        assert "ups-b1-1@nut-b1.soumu.example.lg.jp" in text and "| OL | 100 | 1800 |" in text
        assert "disks.raid_arrays" in text and DB in text
    assert "## RAID の点検" in ja and f"| {FILE} | disks raid_arrays (disks.raid_arrays) | 不適合 |" in ja
    locks = ("| 施錠装置、警報装置、監視設備を設置している (locks-alarms) | 7-4 | 確認済 | "
             "山田 太郎 (保護管理者 総務課) |")
    assert locks in ja
    assert "| Locks, alarms and monitoring equipment are installed and working (locks-alarms) | 7-4 | attested |" in en
    assert (result.run_dir / f"{rooms.safe_name(ROOM)}.en.md").read_text(encoding="utf-8") == en
    proc = cli("report", "--room", ROOM, "--lang", "en", "--evidence", tmp_path / "evidence")
    assert proc.returncode == 1 and proc.stdout.strip() == en.strip(), proc.stderr
    assert "RAID" in markdown({**doc, "member_checks": {}}, "en") and "the disks measure was not verified" in (
        markdown({**doc, "member_checks": {}}, "en"))
    missing = cli("report", "--room", "nowhere", "--evidence", tmp_path / "evidence")
    assert missing.returncode == 2 and "no document of room 'nowhere'" in one_line_error(missing)


def test_fleet_report_and_sheet_show_the_room(tmp_path: Path, inventory_dir: Path) -> None:
    result = room_run(tmp_path, inventory_dir, {DB: GOOD, FILE: GOOD})
    page = (result.run_dir / fleet.HTML).read_text(encoding="utf-8")
    assert f'<tr data-room="{ROOM}"' in page and "サーバ室 / Server rooms" in page
    with open(result.run_dir / fleet.CSV, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == fleet.HEADERS and rows[0][7:] == ["区分 kind", "確認者 checked by", "有効期限 valid until",
                                                         "部屋 room"]
    room_rows = [r for r in rows if r[10] == ROOM and r[5] == ""]
    kinds = {r[7] for r in room_rows}
    assert kinds == {fleet.KIND_ROOM, fleet.KIND_ATTESTATION}
    locks = next(r for r in room_rows if "(locks-alarms)" in r[1])
    assert locks[2] == "確認済 attested" and locks[4] == "2026-11-02" and locks[8] == "山田 太郎 (保護管理者 総務課)"
    assert locks[9] and locks[3].endswith(f"{rooms.safe_name(ROOM)}.json#attestation:locks-alarms")
    ups = next(r for r in room_rows if "room.ups:ups-b1-1" in r[1])
    assert ups[0].startswith("7-5 ") and ups[2] == "適合 pass"
    members = next(r for r in room_rows if r[1] == "設置サーバの点検結果 member servers")
    assert DB in members[3] and "sha256:" in members[3]
    host_row = next(r for r in rows if r[5] == DB and "power.ups_online" in r[1])
    assert host_row[7] == fleet.KIND_CHECK and host_row[10] == ROOM
    # regenerated from the sealed documents, the report is byte-identical (the seal still holds)
    html, text = fleet.render(result.run_dir)
    assert html == (result.run_dir / fleet.HTML).read_bytes() and text == (result.run_dir / fleet.CSV).read_bytes()


# -- hardening attest for a room -------------------------------------------------------------------

def test_attest_accepts_a_room_of_rooms_yaml_and_its_checklist(inventory_dir: Path, tmp_path: Path) -> None:
    (inventory_dir / "rooms.yaml").write_text(
        (inventory_dir / "rooms.yaml").read_text(encoding="utf-8").replace(ROOM, "別館サーバ室")
        .replace("file-01.soumu.example.lg.jp]", "]").replace(", ]", "]"), encoding="utf-8")
    inv = inventory_dir / "example_agency.py"
    # rooms.yaml names a room the asset register does not: the file is refused, naming the member
    proc = cli("attest", "entrances", "--room", "別館サーバ室", "--by", "佐藤 花子", "--role", "情報システム管理者",
               "--result", "pass", "-i", inv, "--profiles", PROFILES)
    assert proc.returncode == 2 and "is in room '本庁舎B1 サーバ室' in the asset register" in one_line_error(proc)
    shutil.copy(ROOT / "inventories" / "rooms.yaml", inventory_dir / "rooms.yaml")
    photo = inventory_dir / "b1-entrance.jpg"
    photo.write_bytes(b"\xff\xd8 door")
    proc = cli("attest", "entrances", "--room", ROOM, "--by", "佐藤 花子", "--role", "情報システム管理者",
               "--result", "pass", "--date", "2026-12-01", "--note", "出入口を1か所に限定、表示なし",
               "--file", photo, "-i", inv, "--profiles", PROFILES)
    assert proc.returncode == 0, proc.stderr
    assert "valid until 2027-12-01 (365 days" in proc.stdout
    [record] = [r for r in attestations_mod.load(inventory_dir / "attestations.yaml") if r.item == "entrances"]
    assert record.applies_to.rooms == [ROOM] and record.files[0].path == "b1-entrance.jpg"
    assert record.files[0].sha256 == attestations_mod.sha256(photo)
    loaded = rooms.load(inventory_dir / "rooms.yaml")
    items = rooms.evaluate_attestations(ROOM, loaded.get(ROOM), Profiles(PROFILES),
                                        attestations_mod.load(inventory_dir / "attestations.yaml"), TODAY)
    entrances = next(i for i in items if i["id"] == "entrances")
    assert entrances["status"] == "attested" and entrances["files"][0]["intact"]
    # an item that is not on the room's checklist is refused for that room
    text = (inventory_dir / "rooms.yaml").read_text(encoding="utf-8").replace(" entrances,", "")
    (inventory_dir / "rooms.yaml").write_text(text, encoding="utf-8")
    proc = cli("attest", "entrances", "--room", ROOM, "--by", "x", "--role", "y", "--result", "pass", "-i", inv,
               "--profiles", PROFILES)
    assert proc.returncode == 2 and "entrances is not on the checklist of room" in one_line_error(proc)


def test_verify_room_needs_a_rooms_file_and_a_known_room(inventory_dir: Path, tmp_path: Path) -> None:
    inv = inventory_dir / "example_agency.py"
    proc = cli("verify", inv, "--room", "nowhere", "--profiles", PROFILES, "--evidence", tmp_path / "ev")
    assert proc.returncode == 2 and "no room 'nowhere'" in one_line_error(proc)
    (inventory_dir / "rooms.yaml").unlink()
    proc = cli("verify", inv, "--room", ROOM, "--profiles", PROFILES, "--evidence", tmp_path / "ev")
    assert proc.returncode == 2 and "--room needs a rooms file" in one_line_error(proc)
    proc = cli("verify", "--local", "--room", ROOM, "--evidence", tmp_path / "ev")
    assert proc.returncode == 2 and "need an INVENTORY" in proc.stderr
