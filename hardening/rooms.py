"""Server rooms (情報システム室等, chapter 7): which servers a room holds, which UPS powers which,
and what a person must attest for the room.

The rooms live in a YAML file beside the inventory, ``rooms.yaml`` (or ``--rooms FILE``)::

    本庁舎B1 サーバ室:                        # the room's name, as attestations.yaml names it
      description: 住基・税務サーバ室
      members: [db-juki-01.soumu.example.lg.jp, file-01.soumu.example.lg.jp]   # inventory hosts
      ups:                                    # the UPS units of the room, as NUT names them
        - name: ups-b1-1                      # UPS name on the NUT server (upsc NAME@SERVER)
          server: nut-b1.soumu.example.lg.jp  # NUT server (host or host:port)
          powers: [db-juki-01.soumu.example.lg.jp, file-01.soumu.example.lg.jp]
          user: upsmon                        # NUT monitor account (upsd.users), default upsmon
          password_file: ~/.config/hardening/nut-b1.pass   # on the machine running the deploy
      attestations: [entry-control, media-control, entrances, entry-authentication,
                     locks-alarms, disaster-measures]       # items of the hardware profiles (7-1 … 7-5)

Validated at load (errors name the file and the key): every member is a host of the inventory, in
one room only, and its asset register entry (``asset.room``) names no other room; every powered
host is a member of the room; the attestation items exist in the hardware profiles.

A member's UPS units become ``measures.power.ups`` of its resolved profile (:func:`overlay`), so
its power checks, its deploy and its evidence name them. ``hardening verify --room ROOM``
verifies the members and writes the room's document (:func:`document`) into the run before the
run is sealed and signed: the members' documents by their SHA-256, the room's technical items
(every member powered by a listed UPS; each UPS's state as its members read it with upsc) and the
room's attestation items.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from hardening import attestations as attestations_mod
from hardening.errors import ConfigError
from hardening.measures import power
from hardening.measures._base import Strict
from hardening.profiles import Attestation, Profiles, Resolved
from hardening.results import ATTESTATION_COUNTS, CHECK_COUNTS, host_verdict

FILENAME = "rooms.yaml"
SCHEMA = "hardening.room/1"
PREFIX = "room-"
POWER_CHECKS = ("power.ups_online", "power.ups_battery")


class RoomUps(power.Ups):
    powers: list[str] = Field(min_length=1)


class Room(Strict):
    description: str = ""
    members: list[str] = Field(min_length=1)
    ups: list[RoomUps] = []
    attestations: list[str] = []


@dataclass
class Rooms:
    path: Path | None
    rooms: dict[str, Room]

    def get(self, name: str) -> Room:
        if name not in self.rooms:
            raise ConfigError(str(self.path or FILENAME), f"no room {name!r} (rooms: "
                              f"{', '.join(self.rooms) or 'none'})", key="--room")
        return self.rooms[name]

    def room_of(self, host: str) -> str | None:
        return next((name for name, room in self.rooms.items() if host in room.members), None)

    def ups_for(self, host: str) -> list[power.Ups]:
        """The UPS units that power ``host`` (as the power measure names them)."""
        return [power.Ups.model_validate(u.model_dump(exclude={"powers"}))
                for room in self.rooms.values() for u in room.ups if host in u.powers]


EMPTY = Rooms(None, {})


def load(path: Path, inventory: Any = None, profiles: Profiles | None = None) -> Rooms:
    """Read and validate the rooms file; with ``inventory`` and ``profiles``, against them too."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), f"cannot read rooms: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "expected a mapping of room name to room")
    rooms: dict[str, Room] = {}
    for name, body in data.items():
        try:
            rooms[str(name)] = Room.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(str(path), err["msg"], key=f"{name}.{loc}" if loc else str(name)) from None
    loaded = Rooms(path, rooms)
    _consistent(loaded)
    if inventory is not None:
        _against_inventory(loaded, inventory)
    if profiles is not None:
        _items_known(loaded, profiles)
    return loaded


def _consistent(rooms: Rooms) -> None:
    where = str(rooms.path)
    seen: dict[str, str] = {}
    for name, room in rooms.rooms.items():
        for member in room.members:
            if member in seen:
                raise ConfigError(where, f"{member} is a member of rooms {seen[member]!r} and {name!r}",
                                  key=f"{name}.members")
            seen[member] = name
        refs: set[str] = set()
        for index, ups in enumerate(room.ups):
            stray = [h for h in ups.powers if h not in room.members]
            if stray:
                raise ConfigError(where, f"powers {', '.join(stray)}, not a member of the room "
                                  f"(members: {', '.join(room.members)})", key=f"{name}.ups[{index}].powers")
            if ups.ref in refs:
                raise ConfigError(where, f"UPS {ups.ref} listed twice", key=f"{name}.ups[{index}]")
            refs.add(ups.ref)


def _against_inventory(rooms: Rooms, inventory: Any) -> None:
    hosts = {h.name: h for h in inventory.hosts}
    for name, room in rooms.rooms.items():
        for member in room.members:
            if member not in hosts:
                raise ConfigError(str(rooms.path), f"{member} is not a host of {inventory.path}",
                                  key=f"{name}.members")
            registered = hosts[member].asset.room
            if registered and registered != name:
                raise ConfigError(str(rooms.path), f"{member} is in room {registered!r} in the asset register "
                                  f"({inventory.path}: asset.room), not in {name!r}", key=f"{name}.members")


def _items_known(rooms: Rooms, profiles: Profiles) -> None:
    for name, room in rooms.rooms.items():
        for item in room.attestations:
            try:
                attestations_mod.item_interval(profiles, item)
            except ConfigError as exc:
                raise ConfigError(str(rooms.path), str(exc).removeprefix("ITEM: "),
                                  key=f"{name}.attestations") from None


def beside(inventory: Path | None, given: Path | None = None) -> Path | None:
    if given is not None:
        if not given.is_file():
            raise ConfigError(str(given), "rooms file not found")
        return given.resolve()
    if inventory is not None and (inventory.parent / FILENAME).is_file():
        return (inventory.parent / FILENAME).resolve()
    return None


def overlay(profile: Resolved, units: list[power.Ups]) -> Resolved:
    """The host's profile with the room's UPS units as ``measures.power.ups``."""
    if not units:
        return profile
    settings = profile.measure("power").model_copy(update={"ups": units})
    measures: Any = profile.measures
    measures = measures.model_copy(update={"power": settings})
    return profile.model_copy(update={"measures": measures})


def item_definition(profiles: Profiles, item_id: str) -> Attestation:
    """An attestation item as the profiles define it; the shortest interval where they differ."""
    valid_days, defined_in = attestations_mod.item_interval(profiles, item_id)
    for name in defined_in:
        for entry in profiles.file(name).data.get("attestations") or []:
            if isinstance(entry, dict) and entry.get("id") == item_id:
                return Attestation.model_validate({**entry, "valid_days": valid_days})
    raise ConfigError("ITEM", f"no definition of {item_id}")


# -- the room's document --------------------------------------------------------------------------

def safe_name(room: str) -> str:
    return PREFIX + "".join(c if c.isalnum() or c in "-_." else "_" for c in room)


def _check(check_id: str, title: str, status: str, message: str, observed: Any) -> dict[str, Any]:
    return {"id": check_id, "measure": "room", "clauses": ["7-5"], "title": title, "status": status,
            "message": message, "observed": observed}


def _worst(statuses: list[str]) -> str:
    for status in ("error", "fail", "not_configured", "pass"):
        if status in statuses:
            return status
    return "error"


def members_powered(room: Room) -> dict[str, Any]:
    powered = {m: [u.ref for u in room.ups if m in u.powers] for m in room.members}
    bare = [m for m, units in powered.items() if not units]
    message = f"not powered by a UPS of the room: {', '.join(bare)}" if bare else ""
    return _check("room.members_powered", "Every member is powered by a UPS of the room (rooms.yaml)",
                  "fail" if bare else "pass", message, {"powered by": powered})


def ups_state(ups: RoomUps, members: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """One UPS as its members read it (their power checks and their upsc observation)."""
    seen: dict[str, Any] = {}
    statuses: list[str] = []
    reasons: list[str] = []
    for host in ups.powers:
        doc = members.get(host)
        checks = {c["id"]: c for c in (doc or {}).get("checks", []) if c.get("id") in POWER_CHECKS}
        if not doc or not checks:
            statuses.append("error")
            reasons.append(f"{host}: no evidence of its power checks in this run")
            continue
        for check in checks.values():
            statuses.append("pass" if check["status"] in ("pass", "waived") else check["status"])
            if check["status"] not in ("pass", "waived") and check.get("message"):
                reasons.append(f"{host}: {finding(check['message'])}")
        seen[host] = _upsc_reading(doc, ups)
    status = _worst(statuses)
    return _check(f"room.ups:{ups.ref}", f"UPS {ups.ref}: on line with enough battery, as its members read it",
                  status, "; ".join(dict.fromkeys(reasons)), {"powers": ups.powers, "upsc": seen})


def finding(message: str) -> str:
    """A check's message as a person reads it: its first line, without pytest's exception name."""
    first = message.strip().split("\n", 1)[0]
    for prefix in ("AssertionError: ", "ValueError: ", "RuntimeError: "):
        first = first.removeprefix(prefix)
    return first


def _upsc_reading(doc: dict[str, Any], ups: RoomUps) -> dict[str, str] | str:
    command = power.upsc(ups)
    for observation in doc.get("observations", []):
        if observation.get("command") == command:
            try:
                values = power.parse_upsc(observation["exit_code"], observation["stdout"],
                                          observation.get("stderr", ""), ups.ref)
            except ValueError as exc:
                return str(exc)
            return {k: values[k] for k in ("ups.status", "battery.charge", "battery.runtime") if k in values}
    return "not observed"


def evaluate_attestations(room_name: str, room: Room, profiles: Profiles,
                          records: list[attestations_mod.Record], today: dt.date | None = None) -> list[dict[str, Any]]:
    today = today or dt.date.today()
    out = []
    for item_id in room.attestations:
        item = item_definition(profiles, item_id)
        matching = [r for r in records if r.item == item_id and room_name in r.applies_to.rooms]
        out.append(attestations_mod._status(item, matching, today))
    return out


def document(*, run_dir: Path, run_id: str, room_name: str, room: Room, source: Path | None,
             hosts: list[Any], profiles: Profiles, records: list[attestations_mod.Record],
             today: dt.date | None = None) -> dict[str, Any]:
    """The room's evidence document; ``hosts``: the run's HostResults of the members."""
    from hardening.evidence import chain

    by_name = {h.name: h for h in hosts}
    members: list[dict[str, Any]] = []
    docs: dict[str, dict[str, Any] | None] = {}
    for name in room.members:
        result = by_name.get(name)
        path = run_dir / result.json if result is not None and result.json else None
        doc = chain.load_document(run_dir, result.json) if path is not None and result is not None else None
        docs[name] = doc
        members.append({"name": name, "verdict": result.verdict if result else "not_verified",
                        "document": path.name if path and path.exists() else None,
                        "sha256": chain.sha256_file(path) if path and path.exists() else None,
                        "profile": result.profile if result else None, "message": result.message if result else
                        "not in this run"})
    checks = [members_powered(room), *(ups_state(u, docs) for u in room.ups)]
    items = evaluate_attestations(room_name, room, profiles, records, today)
    summary = _count([c["status"] for c in checks], CHECK_COUNTS)
    attestation_summary = _count([a["status"] for a in items], ATTESTATION_COUNTS)
    verdict = room_verdict([str(m["verdict"]) for m in members], summary, attestation_summary)
    return {
        "schema": SCHEMA, "run": {"id": run_id, "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
        "room": {"name": room_name, "description": room.description,
                 "file": str(source) if source else None,
                 "file_sha256": chain.sha256_file(source) if source and source.exists() else None},
        "verdict": verdict, "members": members,
        "ups": [{**u.model_dump(exclude={"password_file"}), "ref": u.ref} for u in room.ups],
        "checks": checks, "summary": summary,
        "attestations": items, "attestation_summary": attestation_summary,
        "member_checks": {name: _member_checks(doc) for name, doc in docs.items()},
    }


def _member_checks(doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every check of a member, by measure (the report picks power and disks generically)."""
    return [{"id": c["id"], "measure": c.get("measure") or c["id"].split(".", 1)[0], "title": c.get("title"),
             "status": c["status"], "message": finding(c.get("message") or "")} for c in (doc or {}).get("checks", [])]


def _count(statuses: list[str], names: tuple[str, ...]) -> dict[str, int]:
    out = dict.fromkeys(names, 0)
    for status in statuses:
        out[status] = out.get(status, 0) + 1
    out["total"] = len(statuses)
    return out


def room_verdict(member_verdicts: list[str], summary: dict[str, int], attestation_summary: dict[str, int]) -> str:
    """The worst of the members' verdicts, the room's own items and its attestations; a member not
    verified (unreachable, not in the run) makes the room an error: it was not judged whole."""
    if any(v in ("unreachable", "not_verified", "error") for v in member_verdicts):
        return "error"
    own = host_verdict(summary, attestation_summary)
    order = ("error", "fail", "not_configured", "not_evaluated", "pass")
    return next(v for v in order if v == own or v in member_verdicts)


def write(doc: dict[str, Any], run_dir: Path) -> Path:
    from hardening.roomreport import markdown

    base = safe_name(doc["room"]["name"])
    path = run_dir / f"{base}.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for lang in ("ja", "en"):
        (run_dir / f"{base}.{lang}.md").write_text(markdown(doc, lang), encoding="utf-8")
    return path


def read(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a room document ({SCHEMA})")
    return doc


def selected(rooms: Rooms, names: tuple[str, ...] | list[str], hosts: list[str]) -> list[str]:
    """The rooms to judge in a run: those named (--room), else every room whose members all ran."""
    if names:
        for name in names:
            rooms.get(name)
        return list(names)
    return [name for name, room in rooms.rooms.items() if set(room.members) <= set(hosts)]


def limit_for(rooms: Rooms, names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The members of the named rooms, as a --limit."""
    return tuple(dict.fromkeys(m for name in names for m in rooms.get(name).members))


def before_seal(rooms: Rooms, names: tuple[str, ...] | list[str], profiles: Profiles,
                records: Path | None, progress: Any = print) -> Any:
    """The hook ``hardening verify`` calls before sealing: each room's document into the run."""
    from hardening.verify import RoomResult

    def write_rooms(result: Any) -> None:
        loaded = attestations_mod.load(records) if records else []
        for name in selected(rooms, names, [h.name for h in result.hosts]):
            room = rooms.get(name)
            doc = document(run_dir=result.run_dir, run_id=result.run_dir.name, room_name=name, room=room,
                           source=rooms.path, hosts=result.hosts, profiles=profiles, records=loaded)
            path = write(doc, result.run_dir)
            result.rooms.append(RoomResult(name, doc["verdict"], path.name, doc["summary"],
                                           doc["attestation_summary"], list(room.members)))
            progress(f"  room {name}: {doc['verdict'].replace('_', ' ').upper()} — "
                     f"{len(room.members)} member(s), {len(room.ups)} UPS, "
                     f"{doc['attestation_summary'].get('attested', 0)}/{len(doc['attestations'])} attested")

    return write_rooms
