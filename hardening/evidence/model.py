"""The evidence document (schema ``hardening.evidence/3``, documented in docs/evidence.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hardening.evidence.render import render_host
from hardening.observe import Observations
from hardening.plan import Plan
from hardening.results import ATTESTATION_COUNTS, CHECK_COUNTS, host_verdict
from hardening.waivers import apply as apply_waivers

SCHEMA = "hardening.evidence/4"
# Documents of earlier versions stay readable (the history and the chain read old runs).
# /3 has no waived checks, and its attestations are pass | fail | expired | missing and never
# change the verdict; /2 has no not_configured or advisory checks; /1 has per-check commands
# instead of observations.
SCHEMAS = ("hardening.evidence/1", "hardening.evidence/2", "hardening.evidence/3", SCHEMA)
# The check results in the order the pages count them (hardening.results holds their meaning).
STATUSES = CHECK_COUNTS
ATTESTATION_STATUSES = ATTESTATION_COUNTS

IDENTITY_COMMANDS = {
    "hostname": "hostname",
    "machine_id": "cat /etc/machine-id",
    "dmi_serial": "cat /sys/class/dmi/id/product_serial",
    "dmi_product": "cat /sys/class/dmi/id/product_name",
    "os": ". /etc/os-release && echo \"$PRETTY_NAME\"",
    "kernel": "uname -r",
    "macs": "cat /sys/class/net/*/address | grep -v '^00:00:00:00:00:00$' | sort -u | tr '\\n' ' '",
}


def identity(obs: Observations) -> dict[str, Any]:
    """Who the host says it is, from its observation batch; a value it cannot give is null."""
    out: dict[str, Any] = {}
    for key, command in IDENTITY_COMMANDS.items():
        result = obs.results.get(command)
        value = result.stdout.strip() if result is not None and result.rc == 0 else ""
        out[key] = value or None
    out["macs"] = out["macs"].split() if out.get("macs") else []
    return out


def _count(items: list[dict[str, Any]], statuses: tuple[str, ...]) -> dict[str, int]:
    counts = {status: 0 for status in statuses}
    for item in items:
        counts[item["status"]] += 1
    counts["total"] = len(items)
    return counts


def expiring(doc: dict[str, Any]) -> list[str]:
    """``attestation entry-control until 2026-12-20``, ``waiver W-1 until …``: what of a host's
    document is valid today but ends within results.EXPIRING_DAYS."""
    return ([f"attestation {a['id']} until {a['until']}" for a in doc.get("attestations", []) if a.get("expiring")]
            + [f"waiver {w['id']} until {w['expires']}" for w in doc.get("waivers", []) if w.get("expiring")])


def summarize(checks: list[dict[str, Any]]) -> dict[str, int]:
    return _count(checks, STATUSES)


def verdict(summary: dict[str, int], error: str | None = None,
            attestation_summary: dict[str, int] | None = None) -> str:
    """The host's verdict from its check and attestation counts (hardening.results.host_verdict)."""
    return host_verdict(summary, attestation_summary or {}, error)


def document(*, run_id: str, plan: Plan, mode: str, started: str, finished: str,
             tool_version: str, identity: dict[str, Any], checks: list[dict[str, Any]],
             observations: list[dict[str, Any]], observe_seconds: float = 0.0,
             error: str | None = None) -> dict[str, Any]:
    waivers = [dict(w) for w in plan.waivers]
    checks = apply_waivers(checks, waivers)
    summary = summarize(checks)
    profile = plan.profile
    attestations = plan.attestations
    attestation_summary = _count(attestations, ATTESTATION_STATUSES)
    return {
        "schema": SCHEMA,
        "run": {"id": run_id, "mode": mode, "started": started, "finished": finished,
                "tool_version": tool_version, "observe_seconds": observe_seconds},
        "host": {
            "name": plan.name,
            "identity": identity,
            "asset_register": plan.asset.model_dump() if plan.asset and not plan.local else None,
            "groups": plan.groups,
        },
        "profile": {
            "name": profile.name, "chain": profile.chain, "role": profile.role,
            "sensitivity": profile.sensitivity, "digest": plan.digest,
            "resolved": profile.canonical(),
        },
        "verdict": verdict(summary, error, attestation_summary),
        "error": error,
        "summary": summary,
        "checks": checks,
        "observations": observations,
        "attestations": attestations,
        "attestation_summary": attestation_summary,
        "waivers": waivers,
    }


def host_file(out: Path, host_name: str, suffix: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in host_name)
    return out / f"{safe}.{suffix}"


def write(doc: dict[str, Any], out: Path) -> Path:
    path = host_file(out, doc["host"]["name"], "json")
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    host_file(out, doc["host"]["name"], "html").write_text(render_host(doc), encoding="utf-8")
    return path


def read(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("schema") not in SCHEMAS:
        raise ValueError(f"{path}: not an evidence document (schemas: {', '.join(SCHEMAS)})")
    return doc


