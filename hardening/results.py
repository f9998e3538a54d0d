"""One result vocabulary for checks, attestations and waivers (docs/results.md is generated from it).

Every item of the evidence ends with exactly one of these results. Each result has one effect
on its host's verdict, and so on the exit code of ``hardening verify``:

* ``ok``: counts as met (exit 0);
* ``failing``: the host is not compliant (exit 1);
* ``incomplete``: nothing failed, but something could not be judged: data a profile, an
  inventory or a person must supply is missing (exit 5, never counted as passed).

Use :data:`RESULTS` (ordered worst first within each kind) rather than spelling the names again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Result:
    name: str  # as written in the evidence documents
    ja: str
    en: str
    of: tuple[str, ...]  # "check", "attestation"
    effect: str  # ok | failing | incomplete
    meaning: str


RESULTS: tuple[Result, ...] = (
    Result("fail", "不適合", "fail", ("check", "attestation"), "failing",
           "The host does not meet the requirement (a check found it), or a person recorded that it "
           "does not (an attestation)."),
    Result("error", "エラー", "error", ("check",), "failing",
           "The check could not judge: output it could not parse, a command that failed. Never a pass."),
    Result("expired", "期限切れ", "expired", ("attestation",), "failing",
           "The latest attestation's validity has ended: the person must check again."),
    Result("not_configured", "未設定", "not configured", ("check",), "incomplete",
           "The profile or the inventory lacks data the check needs (the key to fill is named)."),
    Result("not_evaluated", "未評価", "not evaluated", ("attestation",), "incomplete",
           "No attestation applies to the host: nobody has recorded the manual item yet."),
    Result("advisory", "推奨", "advisory", ("check",), "ok",
           "Something the profile expects but does not require is missing; shown, not a failure."),
    Result("waived", "免除", "waived", ("check",), "ok",
           "The check ran and failed, and a valid waiver (justified, approved, not expired) covers "
           "it; the evidence keeps the failure and the waiver's reference. An expired waiver no "
           "longer covers it: the check fails again."),
    Result("not_applicable", "対象外", "n/a", ("check",), "ok",
           "The host's role or hardware truly lacks the thing the check is about."),
    Result("attested", "確認済", "attested", ("attestation",), "ok",
           "A person recorded that the item is met, and the record is valid today."),
    Result("pass", "適合", "pass", ("check",), "ok",
           "The check read the host's running state and it meets the requirement."),
)

BY_NAME = {r.name: r for r in RESULTS}
# The order the documents and pages count results in (summary keys of the evidence).
CHECK_COUNTS = ("pass", "fail", "error", "not_applicable", "not_configured", "advisory", "waived")
ATTESTATION_COUNTS = ("attested", "fail", "expired", "not_evaluated")
CHECK_RESULTS = tuple(r.name for r in RESULTS if "check" in r.of)
ATTESTATION_RESULTS = tuple(r.name for r in RESULTS if "attestation" in r.of)

# An attestation or a waiver that is valid today but ends within this many days is marked
# "expiring" (``expiring: true``, ``expires_in_days``) in the evidence and named by verify: it still
# counts (attested, waived), so the person can renew it before it fails the host.
EXPIRING_DAYS = 30


def expiring_fields(until: dt.date, today: dt.date) -> dict[str, Any]:
    """``expires_in_days`` and ``expiring`` of an attestation or waiver that is valid today.

    >>> expiring_fields(dt.date(2026, 12, 31), dt.date(2026, 12, 1))
    {'expires_in_days': 30, 'expiring': True}
    """
    days = (until - today).days
    return {"expires_in_days": days, "expiring": days <= EXPIRING_DAYS}

# A host's verdict, worst first; an unreachable host has no document and so no verdict of its own.
HOST_VERDICTS = ("error", "fail", "not_configured", "not_evaluated", "pass")
EXIT_BY_EFFECT = {"ok": 0, "failing": 1, "incomplete": 5}


def label(name: str) -> str:
    """``適合 pass``: how a page or a sheet shows a result."""
    result = BY_NAME.get(name)
    return f"{result.ja} {result.en}" if result else name


def host_verdict(checks: dict[str, int], attestations: dict[str, int], error: str | None = None) -> str:
    """error > fail (a failed check, a negative or expired attestation) > not_configured >
    not_evaluated (an attestation nobody recorded) > pass."""
    if error or checks.get("error"):
        return "error"
    if checks.get("fail") or attestations.get("fail") or attestations.get("expired"):
        return "fail"
    if checks.get("not_configured"):
        return "not_configured"
    if attestations.get("not_evaluated"):
        return "not_evaluated"
    return "pass"


def markdown() -> str:
    """docs/results.md: the table of results and what each does to the exit code."""
    lines = [
        "# Results: one vocabulary for checks, attestations and waivers",
        "",
        "Generated from `hardening/results.py` (`hardening results --markdown`); do not edit by hand.",
        "",
        "Every check and every attestation item of a host ends with one result. A host's verdict is",
        "the worst of them: error, fail, not configured, not evaluated, pass. `hardening verify`",
        "exits with the worst verdict's code over all hosts (and 3 for an unreachable host, 4 for a",
        "regression, 2 for a usage error: see `hardening verify --help`).",
        "",
        f"An attestation or a waiver that is valid today but ends within {EXPIRING_DAYS} days is marked",
        "*expiring* (期限間近) in the evidence and named by `hardening verify`: it still counts as",
        "attested or waived until it ends; from the day after, it is `expired` (an attestation) or no",
        "longer covers its check (a waiver).",
        "",
        "| result | 表示 | of | effect | exit | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for r in RESULTS:
        lines.append(f"| `{r.name}` | {r.ja} | {', '.join(r.of)} | {r.effect} | {EXIT_BY_EFFECT[r.effect]} | "
                     f"{r.meaning} |")
    return "\n".join(lines) + "\n"
