"""Waivers: a failure the agency has decided to accept for a while, with who asked, who approved
and until when.

The records live in a YAML file beside the inventory, ``waivers.yaml`` (or ``--waivers FILE``)::

    # 適用除外 / waivers
    - id: W-2026-003                        # the agency's reference, unique in the file
      applies_to: {groups: [terminals]}     # hosts, groups, rooms (asset register) or profiles
      check: usb.usbguard_service           # a check id, or `clause: "6-11"` (its every check)
      justification: 窓口のICカードリーダーの更新まで (until the card readers are replaced)
      requested_by: 鈴木 一郎 (保険年金課)
      approved_by: 山田 太郎 (保護管理者)
      approved: 2026-11-01
      expires: 2027-03-31

A waived check still runs. When it fails and a valid waiver covers it, its result is ``waived``
(hardening.results): the evidence keeps what the check found (``waived_status``) and the waiver's
reference. Only a ``fail`` can be waived: an ``error`` or ``not_configured`` was never judged.
From the day after ``expires`` the waiver no longer covers anything: the check counts again
(``fail``), and the evidence names the lapsed waiver. A waiver whose check passes is listed as
unused, so that it can be withdrawn.

Load errors name the file, the entry and the key: a missing justification, requester or
approver; ``expires`` not after ``approved`` (an expiry already past when it was approved);
an unknown check id or clause; both or neither of ``check`` and ``clause``; a duplicate id.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hardening import CHECKS, catalogue
from hardening.errors import ConfigError
from hardening.inventory import Host
from hardening.profiles import Resolved
from hardening.results import expiring_fields

FILENAME = "waivers.yaml"


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: list[str] = []
    groups: list[str] = []
    rooms: list[str] = []
    profiles: list[str] = []

    @model_validator(mode="after")
    def _not_empty(self) -> Scope:
        if not (self.hosts or self.groups or self.rooms or self.profiles):
            raise ValueError("applies_to needs hosts, groups, rooms or profiles")
        return self


class Waiver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    applies_to: Scope
    check: str | None = None
    clause: str | None = None
    justification: str
    requested_by: str
    approved_by: str
    approved: dt.date
    expires: dt.date

    @field_validator("justification", "requested_by", "approved_by")
    @classmethod
    def _said(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def covers_host(self, name: str, groups: list[str], room: str | None, profile_chain: list[str]) -> bool:
        scope = self.applies_to
        return (name in scope.hosts or bool(set(groups) & set(scope.groups))
                or (room is not None and room in scope.rooms) or bool(set(profile_chain) & set(scope.profiles)))

    def status(self, today: dt.date) -> str:
        """valid | expired | not_yet (approved for a later date)."""
        if today > self.expires:
            return "expired"
        return "not_yet" if today < self.approved else "valid"


@cache
def known_checks(checks_dir: Path = CHECKS) -> frozenset[str]:
    """Every check id (``measure.name``) of the checks/ tree."""
    ids: set[str] = set()
    for path in sorted(checks_dir.glob("test_*.py")):
        measure = path.stem.removeprefix("test_")
        ids.update(f"{measure}.{test.removeprefix('test_')}" for test in catalogue.check_clauses(path))
    return frozenset(ids)


def load(path: Path, checks_dir: Path = CHECKS) -> list[Waiver]:
    """Read and validate the waivers; errors name the file, the entry and the key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), f"cannot read waivers: {exc}") from None
    if not isinstance(data, list):
        raise ConfigError(str(path), "expected a list of waivers")
    waivers: list[Waiver] = []
    known = known_checks(checks_dir)
    for index, entry in enumerate(data):
        try:
            waiver = Waiver.model_validate(entry)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "entry"
            raise ConfigError(str(path), err["msg"].removeprefix("Value error, "), key=f"[{index}].{key}") from None
        where = f"[{index}]"
        if (waiver.check is None) == (waiver.clause is None):
            raise ConfigError(str(path), "give exactly one of check (a check id) and clause (a clause id)",
                              key=f"{where}.check")
        if waiver.expires <= waiver.approved:
            raise ConfigError(str(path), f"expires {waiver.expires} is not after approved {waiver.approved}: "
                              "the waiver was never valid", key=f"{where}.expires")
        if waiver.check is not None and waiver.check not in known:
            raise ConfigError(str(path), f"unknown check {waiver.check!r} (see `hardening clauses --json`)",
                              key=f"{where}.check")
        if waiver.clause is not None:
            catalogue.require_known([waiver.clause], str(path), key=f"{where}.clause")
        if any(w.id == waiver.id for w in waivers):
            raise ConfigError(str(path), f"duplicate waiver id {waiver.id!r}", key=f"{where}.id")
        waivers.append(waiver)
    return waivers


def evaluate(profile: Resolved, waivers: list[Waiver], *, name: str, host: Host | None,
             source: Path | None = None, today: dt.date | None = None) -> list[dict[str, Any]]:
    """The waivers that apply to this host, each with its status today (valid or expired)."""
    today = today or dt.date.today()
    groups = host.groups if host else []
    room = host.asset.room if host else None
    out = []
    for waiver in waivers:
        if not waiver.covers_host(name, groups, room, list(profile.chain)):
            continue
        status = waiver.status(today)
        if status == "not_yet":
            continue
        out.append({"id": waiver.id, "check": waiver.check, "clause": waiver.clause, "status": status,
                    "justification": waiver.justification, "requested_by": waiver.requested_by,
                    "approved_by": waiver.approved_by, "approved": waiver.approved.isoformat(),
                    "expires": waiver.expires.isoformat(), "file": str(source) if source else None,
                    **(expiring_fields(waiver.expires, today) if status == "valid" else {})})
    return out


def _covers(waiver: dict[str, Any], check: dict[str, Any]) -> bool:
    return waiver["check"] == check["id"] or (waiver["clause"] is not None
                                              and waiver["clause"] in check.get("clauses", []))


def apply(checks: list[dict[str, Any]], waivers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks with waivers applied (a new list; see the module doc), and each waiver's
    ``used_by`` filled with the checks it waived."""
    for waiver in waivers:
        waiver["used_by"] = []
    out = []
    for check in checks:
        check = dict(check)
        if check.get("status") == "fail":
            valid = [w for w in waivers if w["status"] == "valid" and _covers(w, check)]
            lapsed = [w for w in waivers if w["status"] == "expired" and _covers(w, check)]
            if valid:
                waiver = valid[0]
                waiver["used_by"].append(check["id"])
                check.update(status="waived", waived_status="fail", waiver=_reference(waiver))
            elif lapsed:
                check["waiver_expired"] = _reference(lapsed[0])
        out.append(check)
    return out


def _reference(waiver: dict[str, Any]) -> dict[str, Any]:
    return {k: waiver[k] for k in ("id", "justification", "approved_by", "expires", "file")}
