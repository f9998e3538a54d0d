"""Builders for evidence tests: run directories as ``hardening verify`` writes them, without hosts."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hardening.evidence import model
from hardening.evidence.render import render_index
from hardening.plan import Plan
from hardening.profiles import Profiles

CHECKS = [
    ("firewall.default_deny_inbound", "firewall", ["6-7"], "受信は既定で拒否 Inbound default deny"),
    ("auth.no_empty_passwords", "auth", ["6-1", "6-2"], "空パスワードなし No empty passwords"),
    ("admin.root_login_disabled", "admin", ["6-6"], "root の SSH ログイン禁止 Root SSH login disabled"),
    ("usb.storage_blocked", "usb", ["6-11"], "USB ストレージ禁止 USB storage blocked"),
    ("timeouts.shell_tmout", "timeouts", ["6-15"], "シェルの自動ログオフ Shell auto logoff"),
]


def check(check_id: str, status: str = "pass") -> dict[str, Any]:
    measure, clauses, title = next((m, c, t) for i, m, c, t in CHECKS if i == check_id)
    return {"id": check_id, "measure": measure, "clauses": clauses, "title": title, "status": status,
            "expected": {"policy": "drop"}, "observed": {"policy": "drop" if status == "pass" else "accept"},
            "message": "" if status == "pass" else "期待値と異なる: policy accept",
            "observations": ["o0"], "own_commands": [], "duration": 0.02}


OBSERVATIONS = [{"id": "o0", "command": "nft -j list ruleset", "exit_code": 0, "stdout": "{\"nftables\": []}",
                 "stderr": "", "duration": 0.01}]


def stamp(day: int, hour: int = 10) -> tuple[str, str]:
    start = dt.datetime(2026, 11, day, hour, 0, tzinfo=dt.UTC)
    return start.strftime("%Y%m%dT%H%M%SZ"), start.isoformat(timespec="seconds")


def make_run(root: Path, day: int, hosts: Mapping[str, Mapping[str, str] | None], *,
             profile: str = "terminal", retention_days: int | None = None, hour: int = 10,
             write_html: bool = True) -> Path:
    """A run directory: hosts maps name -> {check_id: status} (None = unreachable)."""
    prefix, started = stamp(day, hour)
    run_id = f"{prefix}-{day:02d}{hour:02d}"
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    resolved = Profiles().resolve(profile, "high")
    if retention_days is not None:
        resolved = resolved.model_copy(update={"evidence": resolved.evidence.model_copy(
            update={"retention_days": retention_days})})
    entries: list[dict[str, Any]] = []
    for name, statuses in hosts.items():
        if statuses is None:
            entries.append({"name": name, "profile": profile, "sensitivity": "high", "verdict": "unreachable",
                            "summary": {}, "json": None, "html": None,
                            "message": "ssh: connect to host port 22: No route to host"})
            continue
        plan = Plan(name=name, profile=resolved, digest=resolved.digest(), measures=[], commands=[])
        doc = model.document(run_id=run_id, plan=plan, mode="ssh", started=started, finished=started,
                             tool_version="0.1.0", identity={"hostname": name},
                             checks=[check(i, s) for i, s in statuses.items()], observations=OBSERVATIONS)
        if write_html:
            path = model.write(doc, run_dir)
        else:
            path = model.host_file(run_dir, name, "json")
            path.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        entries.append({"name": name, "profile": profile, "sensitivity": "high", "verdict": doc["verdict"],
                        "summary": doc["summary"], "json": path.name,
                        "html": path.with_suffix(".html").name if write_html else None, "message": ""})
    index = {"schema": "hardening.run/1", "run_id": run_id, "started": started, "finished": started,
             "tool_version": "0.1.0", "inventory": "inventories/lab.py", "hosts": entries}
    text = json.dumps(index, ensure_ascii=False, indent=2) + "\n"
    (run_dir / "index.json").write_text(text, encoding="utf-8")
    if write_html:
        (run_dir / "index.html").write_text(render_index(index), encoding="utf-8")
    return run_dir


def all_pass() -> dict[str, str]:
    return {i: "pass" for i, *_ in CHECKS}


def sealed_history(root: Path, days: int = 3) -> list[Path]:
    """``days`` sealed runs of two hosts (all passing), one a day from 2026-11-20."""
    from hardening.evidence import history

    runs = []
    for day in range(20, 20 + days):
        run_dir = make_run(root, day, {"web01": all_pass(), "pc01": all_pass()})
        history.seal_run(run_dir)
        runs.append(run_dir)
    return runs
