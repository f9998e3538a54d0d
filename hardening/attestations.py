"""Attestations: what only a person can see (locks, entry control, disaster measures).

The hardware profiles list the attestation *items* a host needs (``attestations:`` with id,
clauses, text and ``valid_days``). The person's *records* live in a YAML file beside the
inventory, ``attestations.yaml`` (or ``--attestations FILE``)::

    # 人による確認の記録 / attestations by a person
    - item: locks-alarms                    # an attestation id from the hardware profiles
      applies_to: {rooms: ["本庁舎B1 サーバ室"]}  # rooms (asset register), hosts or groups
      by: 山田 太郎 (保護管理者 総務課)
      date: 2026-11-01                      # when the person checked (not `on:`: YAML reads that as true)
      until: 2027-01-30                     # optional: default date + the item's valid_days
      result: pass                          # pass | fail
      note: 月次点検で施錠・警報装置の作動を確認

Each item of a host's profile gets one status in the evidence: ``pass`` (a passing record valid
today), ``expired`` (the latest record's validity has ended), ``fail`` (the person recorded a
failure) or ``missing`` (no record applies to the host). The latest record (by ``date``) wins.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hardening.errors import ConfigError
from hardening.inventory import Host
from hardening.profiles import Attestation, Resolved

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


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    item: str
    applies_to: Scope
    by: str = Field(min_length=1)
    date: dt.date
    until: dt.date | None = None
    result: Literal["pass", "fail"]
    note: str = ""

    def covers(self, name: str, groups: list[str], room: str | None) -> bool:
        scope = self.applies_to
        return name in scope.hosts or bool(set(groups) & set(scope.groups)) or (
            room is not None and room in scope.rooms)


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
            records.append(Record.model_validate(entry))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "entry"
            raise ConfigError(str(path), err["msg"], key=f"[{index}].{key}") from None
    return records


def evaluate(profile: Resolved, records: list[Record], *, name: str, host: Host | None,
             today: dt.date | None = None) -> list[dict[str, Any]]:
    """One status per attestation item of the host's profile."""
    today = today or dt.date.today()
    groups = host.groups if host else []
    room = host.asset.room if host else None
    return [_status(item, [r for r in records if r.item == item.id and r.covers(name, groups, room)],
                    today) for item in profile.attestations]


def _status(item: Attestation, matching: list[Record], today: dt.date) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item.id, "clauses": item.clauses, "ja": item.ja, "en": item.en,
                           "status": "missing", "by": None, "date": None, "until": None, "note": ""}
    if not matching:
        return out
    latest = max(matching, key=lambda r: r.date)
    until = latest.until or latest.date + dt.timedelta(days=item.valid_days)
    if latest.result == "fail":
        status = "fail"
    elif until < today:
        status = "expired"
    else:
        status = "pass"
    out.update(status=status, by=latest.by, date=latest.date.isoformat(), until=until.isoformat(),
               note=latest.note)
    return out


def default_path(inventory: Path | None) -> Path | None:
    if inventory is None:
        return None
    candidate = inventory.parent / FILENAME
    return candidate if candidate.is_file() else None
