"""Where a verify run's time goes, read from its evidence documents (both shapes).

Before (729e44d) a document lists, per check, the ``commands`` the check ran on the host, each
with its duration; the check's ``duration`` includes them. After (the new shape) the host is
observed once before any check runs: ``run.observe_seconds`` is that batch as the control node
saw it (SSH, sudo, all commands), ``observations[*].duration`` is each command's time measured
on the host, a check's ``duration`` is only its judging plus any ``own_commands`` it made.

    python bench/timing.py EVIDENCE_RUN_DIR   # prints the summary of one run as JSON
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

LABEL = 100  # characters of a command kept as its label


def run_documents(run_dir: Path) -> list[dict[str, Any]]:
    """The host documents of one run, from its index."""
    index = json.loads((run_dir / "index.json").read_text(encoding="utf-8"))
    return [json.loads((run_dir / h["json"]).read_text(encoding="utf-8"))
            for h in index["hosts"] if h.get("json")]


def label(command: str) -> str:
    text = " ".join(command.split())
    return text if len(text) <= LABEL else text[:LABEL - 1] + "…"


def host_profile(doc: dict[str, Any]) -> dict[str, Any]:
    """One host's timings, the same keys for both shapes."""
    new = "observations" in doc
    checks = {c["id"]: float(c.get("duration") or 0) for c in doc["checks"]}
    commands: list[tuple[str, float]] = []
    own = 0
    for check in doc["checks"]:
        for cmd in check.get("own_commands" if new else "commands", []):
            commands.append((label(cmd["command"]), float(cmd.get("duration") or 0)))
            own += 1
    observed = [(label(o["command"]), float(o.get("duration") or 0)) for o in doc.get("observations", [])]
    commands += observed
    observe_seconds = float(doc["run"].get("observe_seconds") or 0) if new else None
    return {
        "shape": "new" if new else "old",
        "checks": checks,
        "check_count": len(checks),
        "commands": commands,
        "remote_commands": len(commands),
        "observations": len(doc.get("observations", [])),
        "own_commands": own if new else 0,
        "checks_with_own_commands": sum(1 for c in doc["checks"] if c.get("own_commands")) if new else 0,
        "observe_seconds": observe_seconds,
        # What the batch cost beyond its commands' own time: SSH, sudo and the framing of each
        # command (date, a subshell, base64) on the host.
        "batch_overhead_seconds": (round(observe_seconds - sum(d for _, d in observed), 4)
                                   if observe_seconds is not None else None),
        "checks_seconds": round(sum(checks.values()), 4),
        "commands_seconds": round(sum(d for _, d in commands), 4),
    }


def _median_of(groups: dict[str, list[float]], top: int) -> list[dict[str, Any]]:
    medians = sorted(((statistics.median(v), k, len(v)) for k, v in groups.items()), reverse=True)
    return [{"name": k, "median_s": round(m, 4), "n": n} for m, k, n in medians[:top]]


def summarize(profiles: list[dict[str, Any]], top: int = 8) -> dict[str, Any]:
    """Medians over hosts and repetitions; the `top` slowest checks and commands."""
    if not profiles:
        return {}
    checks: dict[str, list[float]] = defaultdict(list)
    commands: dict[str, list[float]] = defaultdict(list)
    for p in profiles:
        for name, seconds in p["checks"].items():
            checks[name].append(seconds)
        for name, seconds in p["commands"]:
            commands[name].append(seconds)

    def med(key: str) -> float | None:
        values = [p[key] for p in profiles if p[key] is not None]
        return round(statistics.median(values), 4) if values else None

    return {
        "shape": profiles[0]["shape"],
        "host_documents": len(profiles),
        "checks_per_host": med("check_count"),
        "remote_commands_per_host": med("remote_commands"),
        "observations_per_host": med("observations"),
        "own_commands_per_host": med("own_commands"),
        "checks_with_own_commands": med("checks_with_own_commands"),
        "observe_seconds": med("observe_seconds"),
        "batch_overhead_seconds": med("batch_overhead_seconds"),
        "checks_seconds": med("checks_seconds"),
        "commands_seconds": med("commands_seconds"),
        "top_checks": _median_of(checks, top),
        "top_commands": _median_of(commands, top),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    profiles = [host_profile(d) for d in run_documents(Path(argv[0]))]
    print(json.dumps(summarize(profiles), ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
