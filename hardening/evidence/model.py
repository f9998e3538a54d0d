"""The evidence document (schema ``hardening.evidence/1``, documented in docs/evidence.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hardening.evidence.render import render_host
from hardening.inventory import Host
from hardening.profiles import Resolved

SCHEMA = "hardening.evidence/1"
STATUSES = ("pass", "fail", "error", "not_applicable")
ATTESTATION_STATUSES = ("pass", "fail", "expired", "missing")

_IDENTITY_COMMANDS = {
    "hostname": "hostname",
    "machine_id": "cat /etc/machine-id",
    "dmi_serial": "cat /sys/class/dmi/id/product_serial",
    "dmi_product": "cat /sys/class/dmi/id/product_name",
    "os": ". /etc/os-release && echo \"$PRETTY_NAME\"",
    "kernel": "uname -r",
    "macs": "cat /sys/class/net/*/address | grep -v '^00:00:00:00:00:00$' | sort -u | tr '\\n' ' '",
}


def identity(host: Any) -> dict[str, Any]:
    """Who the host says it is; a value it cannot give is null, never a guess."""
    out: dict[str, Any] = {}
    for key, command in _IDENTITY_COMMANDS.items():
        result = host.run("sh -c %s", command)
        value = result.stdout.strip() if result.rc == 0 else ""
        out[key] = value or None
    out["macs"] = out["macs"].split() if out.get("macs") else []
    return out


def _count(items: list[dict[str, Any]], statuses: tuple[str, ...]) -> dict[str, int]:
    counts = {status: 0 for status in statuses}
    for item in items:
        counts[item["status"]] += 1
    counts["total"] = len(items)
    return counts


def summarize(checks: list[dict[str, Any]]) -> dict[str, int]:
    return _count(checks, STATUSES)


def verdict(summary: dict[str, int], error: str | None = None) -> str:
    if error or summary.get("error"):
        return "error"
    if summary.get("fail"):
        return "fail"
    return "pass"


def document(*, run_id: str, host_name: str, mode: str, started: str, finished: str,
             tool_version: str, identity: dict[str, Any], profile: Resolved | None,
             inventory_host: Host | None, checks: list[dict[str, Any]],
             error: str | None = None, attestations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    summary = summarize(checks)
    return {
        "schema": SCHEMA,
        "run": {"id": run_id, "mode": mode, "started": started, "finished": finished,
                "tool_version": tool_version},
        "host": {
            "name": host_name,
            "identity": identity,
            "asset_register": inventory_host.asset.model_dump() if inventory_host else None,
            "groups": inventory_host.groups if inventory_host else [],
        },
        "profile": None if profile is None else {
            "name": profile.name, "chain": profile.chain, "role": profile.role,
            "sensitivity": profile.sensitivity, "digest": profile.digest(),
            "resolved": profile.canonical(),
        },
        "verdict": verdict(summary, error),
        "error": error,
        "summary": summary,
        "checks": checks,
        "attestations": attestations or [],
        "attestation_summary": _count(attestations or [], ATTESTATION_STATUSES),
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
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a {SCHEMA} document")
    return doc


