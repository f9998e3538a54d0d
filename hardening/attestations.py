"""Attestations: what only a person can see (locks, entry control, disaster measures).

The hardware profiles list the attestation *items* a host needs (``attestations:`` with id,
clauses, text and ``valid_days``). The person's *records* live in a YAML file beside the
inventory, ``attestations.yaml`` (or ``--attestations FILE``), written by hand or by
``hardening attest``::

    # 人による確認の記録 / attestations by a person
    - item: locks-alarms                    # an attestation id from the hardware profiles
      applies_to: {rooms: ["本庁舎B1 サーバ室"]}  # rooms (asset register), hosts or groups
      by: 山田 太郎                          # who checked
      role: 保護管理者 総務課                 # in what role
      date: 2026-11-01                      # when the person checked (not `on:`: YAML reads that as true)
      until: 2027-01-30                     # optional: default date + the item's valid_days
      result: pass                          # pass | fail
      note: 月次点検で施錠・警報装置の作動を確認
      files:                                # optional: what the person attached, with its SHA-256
        - {path: photos/b1-lock.jpg, sha256: 9f86d0...}

Each item of a host's profile gets one result in the evidence (hardening.results): ``attested``
(a passing record valid today), ``expired`` (the latest record's validity has ended), ``fail``
(the person recorded a failure, or an attached file that is present no longer has the recorded
SHA-256) or ``not_evaluated`` (no record applies to the host). The latest record (by ``date``)
wins. ``fail`` and ``expired`` make the host fail; ``not_evaluated`` makes it incomplete (exit 5).
Attached files are looked up relative to the attestation file; one that is absent is reported
(``present: false``) but does not change the result: the evidence carries its recorded hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from hardening.errors import ConfigError
from hardening.inventory import Host
from hardening.profiles import Attestation, Resolved
from hardening.results import expiring_fields

FILENAME = "attestations.yaml"


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: list[str] = []
    groups: list[str] = []
    rooms: list[str] = []

    @model_validator(mode="after")
    def _not_empty(self) -> Scope:
        if not (self.hosts or self.groups or self.rooms):
            raise ValueError("applies_to needs hosts, groups or rooms")
        return self


class Attached(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    item: str
    applies_to: Scope
    by: str = Field(min_length=1)
    role: str = Field(min_length=1)
    date: dt.date
    until: dt.date | None = None
    result: Literal["pass", "fail"]
    note: str = ""
    files: list[Attached] = []
    _base: Path | None = PrivateAttr(default=None)  # the attestation file's directory

    def covers(self, name: str, groups: list[str], room: str | None) -> bool:
        scope = self.applies_to
        return name in scope.hosts or bool(set(groups) & set(scope.groups)) or (
            room is not None and room in scope.rooms)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(path: Path) -> list[Record]:
    """Read and validate the records; errors name the file, the entry and the key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), f"cannot read attestations: {exc}") from None
    if not isinstance(data, list):
        raise ConfigError(str(path), "expected a list of attestation records")
    records = []
    for index, entry in enumerate(data):
        try:
            record = Record.model_validate(entry)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "entry"
            raise ConfigError(str(path), err["msg"], key=f"[{index}].{key}") from None
        record._base = path.resolve().parent
        records.append(record)
    return records


def evaluate(profile: Resolved, records: list[Record], *, name: str, host: Host | None,
             today: dt.date | None = None) -> list[dict[str, Any]]:
    """One result per attestation item of the host's profile."""
    today = today or dt.date.today()
    groups = host.groups if host else []
    room = host.asset.room if host else None
    return [_status(item, [r for r in records if r.item == item.id and r.covers(name, groups, room)],
                    today) for item in profile.attestations]


def _status(item: Attestation, matching: list[Record], today: dt.date) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item.id, "clauses": item.clauses, "ja": item.ja, "en": item.en,
                           "status": "not_evaluated", "by": None, "role": None, "date": None, "until": None,
                           "note": "", "files": []}
    if not matching:
        return out
    latest = max(matching, key=lambda r: r.date)
    until = latest.until or latest.date + dt.timedelta(days=item.valid_days)
    files = [_attached(f, latest._base) for f in latest.files]
    changed = [f["path"] for f in files if f["present"] and not f["intact"]]
    if latest.result == "fail" or changed:
        status = "fail"
    elif until < today:
        status = "expired"
    else:
        status = "attested"
    note = latest.note
    if changed:
        note = (note + " / " if note else "") + f"attached file changed since it was attested: {', '.join(changed)}"
    out.update(status=status, by=latest.by, role=latest.role, date=latest.date.isoformat(),
               until=until.isoformat(), note=note, files=files)
    if status == "attested":
        out.update(expiring_fields(until, today))
    return out



def _attached(attached: Attached, base: Path | None) -> dict[str, Any]:
    path = Path(attached.path)
    if not path.is_absolute() and base is not None:
        path = base / path
    present = path.is_file()
    return {"path": attached.path, "sha256": attached.sha256, "present": present,
            "intact": present and sha256(path) == attached.sha256}



def item_interval(profiles: Any, item_id: str) -> tuple[int, list[str]]:
    """(valid_days, profiles that define it) of an attestation item; the shortest interval wins
    when profiles disagree. Unknown item: a ConfigError listing the known ones."""
    found: dict[str, int] = {}
    known: set[str] = set()
    for name in profiles.names():
        for entry in profiles.file(name).data.get("attestations") or []:
            if not isinstance(entry, dict):
                continue
            known.add(str(entry.get("id")))
            if entry.get("id") == item_id:
                found[name] = int(entry.get("valid_days", 365))
    if not found:
        raise ConfigError("ITEM", f"no hardware profile defines the attestation item {item_id!r} "
                          f"(known: {', '.join(sorted(known)) or 'none'})")
    return min(found.values()), sorted(found)


def new_record(*, item: str, scope: Scope, by: str, role: str, date: dt.date, until: dt.date, result: str,
               note: str, files: list[Path], base: Path) -> dict[str, Any]:
    """A record as ``hardening attest`` appends it, each attached file with its SHA-256 (its path
    relative to the attestation file when it lies below it)."""
    attached = []
    for path in files:
        if not path.is_file():
            raise ConfigError(str(path), "attached file not found")
        resolved = path.resolve()
        shown = resolved.relative_to(base) if resolved.is_relative_to(base) else resolved
        attached.append({"path": str(shown), "sha256": sha256(resolved)})
    record: dict[str, Any] = {
        "item": item, "applies_to": scope.model_dump(exclude_defaults=True), "by": by, "role": role,
        "date": date, "until": until, "result": result}
    if note:
        record["note"] = note
    if attached:
        record["files"] = attached
    Record.model_validate(record)
    return record


def append(path: Path, record: dict[str, Any]) -> None:
    """Append one record to the file (its comments and earlier records kept as they are), then
    load the whole file again: a file that would no longer load is left unchanged."""
    before = path.read_text(encoding="utf-8") if path.exists() else (
        "# 人による確認の記録 / attestations by a person (hardening attest appends here)\n")
    if before and not before.endswith("\n"):
        before += "\n"
    text = before + yaml.safe_dump([record], allow_unicode=True, sort_keys=False, default_flow_style=False)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        load(tmp)
    except ConfigError as exc:
        tmp.unlink()
        raise ConfigError(str(path), f"nothing appended: the file would not load: {exc}") from None
    tmp.replace(path)
