"""Drift between two runs: per host and clause, what became worse, better, new or gone.

A check is *good* when it passed, was not applicable, ended advisory (expected, not required) or
was waived (a failure a valid waiver accepts),
*bad* when it failed or errored, and *unjudged* when it was not configured (the profile or the
inventory lacks data it needs).

- ``worse`` (a regression: ``hardening verify`` exits 4): anything not bad → bad, and good →
  not configured. A check that stops being judged is flagged like one that fails: removing
  ``expected_networks`` from a profile must not go unnoticed.
- ``better``: bad or not configured → good.
- ``changed``: any other change of status (fail ↔ error, pass ↔ not applicable ↔ advisory, and
  fail → not configured, which hides a finding rather than fixing it).
- ``new`` and ``gone``: a check (or host) present in only one of the two runs.

Documents before schema 3 had no "not configured": a missing setting ended as not applicable. So
not applicable (schema 1 or 2) → not configured is ``changed``, not a regression: the first run
after an upgrade shows what was never judged without claiming the host got worse.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hardening.evidence import chain

# waived: a failure accepted by a valid waiver (its expiry makes it fail again: worse).
GOOD = {"pass", "not_applicable", "advisory", "waived"}
BAD = {"fail", "error"}
UNJUDGED = {"not_configured"}
# Schemas whose "not_applicable" may have meant "not configured" (no such status before schema 3).
BEFORE_NOT_CONFIGURED = {"hardening.evidence/1", "hardening.evidence/2"}
KINDS = ("worse", "better", "changed", "new", "gone")


@dataclass(frozen=True)
class Change:
    kind: str
    check: str
    clauses: tuple[str, ...]
    title: str
    before: str | None
    after: str | None
    message: str = ""


@dataclass
class HostDiff:
    host: str
    before_run: str | None
    after_run: str | None
    before_verdict: str | None
    after_verdict: str | None
    changes: list[Change] = field(default_factory=list)
    profile_change: str | None = None  # "name level digest → name level digest" when it changed

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]


@dataclass
class RunView:
    """One run as diff sees it: per host its verdict and its document (None when there is none)."""

    run_id: str
    dir: Path
    verdicts: dict[str, str | None]
    documents: dict[str, dict[str, Any] | None]


def load_run(run_dir: Path) -> RunView:
    verdicts: dict[str, str | None] = {}
    documents: dict[str, dict[str, Any] | None] = {}
    index = chain.read_json(run_dir / chain.INDEX) if (run_dir / chain.INDEX).exists() else {}
    listed = {h["name"]: h for h in index.get("hosts", [])}
    for host, name in chain.host_documents(run_dir).items():
        doc = _read(run_dir / name) if name else None
        documents[host] = doc
        verdicts[host] = (doc or {}).get("verdict") or listed.get(host, {}).get("verdict")
    return RunView(run_dir.name, run_dir, verdicts, documents)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = chain.read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def classify(before: str | None, after: str | None, *, old_schema: bool = False) -> str | None:
    """The kind of change from status ``before`` to ``after`` (None: unchanged); ``old_schema``
    when ``before`` comes from a document written before "not configured" existed."""
    if old_schema and before == "not_applicable" and after in UNJUDGED:
        return "changed"
    if before == after:
        return None
    if before is None:
        return "new"
    if after is None:
        return "gone"
    if (before not in BAD and after in BAD) or (before in GOOD and after in UNJUDGED):
        return "worse"
    if before in BAD | UNJUDGED and after in GOOD:
        return "better"
    return "changed"


def compare_documents(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[Change]:
    """The changes of each check between two evidence documents of one host."""
    old = {c["id"]: c for c in (before or {}).get("checks", [])}
    new = {c["id"]: c for c in (after or {}).get("checks", [])}
    old_schema = (before or {}).get("schema") in BEFORE_NOT_CONFIGURED
    changes = []
    for check_id in sorted(old.keys() | new.keys()):
        a, b = old.get(check_id), new.get(check_id)
        kind = classify(a["status"] if a else None, b["status"] if b else None, old_schema=old_schema)
        if kind is None:
            continue
        ref = b or a or {}
        changes.append(Change(kind, check_id, tuple(ref.get("clauses", [])), ref.get("title", check_id),
                              a["status"] if a else None, b["status"] if b else None,
                              (b or {}).get("message", "")))
    return changes


def compare_host(host: str, before: RunView | None, after: RunView | None) -> HostDiff:
    a_doc = before.documents.get(host) if before else None
    b_doc = after.documents.get(host) if after else None
    return HostDiff(
        host,
        before.run_id if before and host in before.verdicts else None,
        after.run_id if after and host in after.verdicts else None,
        before.verdicts.get(host) if before else None,
        after.verdicts.get(host) if after else None,
        compare_documents(a_doc, b_doc) if a_doc is not None and b_doc is not None else [],
        _profile_change(a_doc, b_doc),
    )


def _profile_label(doc: dict[str, Any] | None) -> str | None:
    profile = (doc or {}).get("profile")
    if not profile:
        return None
    digest = str(profile.get("digest", "")).removeprefix("sha256:")[:12]
    return f"{profile.get('name')} ({profile.get('sensitivity')}, {digest})"


def _profile_change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str | None:
    """A changed profile (name, sensitivity or any setting: the digest) explains changed results."""
    a, b = _profile_label(before), _profile_label(after)
    return f"{a} → {b}" if a and b and a != b else None


def compare_runs(before: RunView, after: RunView) -> list[HostDiff]:
    """Every host of either run: its verdicts and the changes of its checks."""
    hosts = sorted(before.verdicts.keys() | after.verdicts.keys())
    return [compare_host(h, before, after) for h in hosts]


def regression_lines(diffs: list[HostDiff]) -> list[str]:
    """One line per check that went from good to bad."""
    lines = []
    for diff in diffs:
        for change in diff.of("worse"):
            lines.append(f"regression {diff.host}: {', '.join(change.clauses) or '-'} {change.check} "
                         f"{change.before} → {change.after} since run {diff.before_run}"
                         + (f" — {_one_line(change.message)}" if change.message else ""))
    return lines


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clause_key(clause: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in clause.split("-"))
    except ValueError:
        return (99, 99)


def render_text(diffs: list[HostDiff], before: str, after: str) -> str:
    """Per host, then per clause, the changes; hosts without change are counted, not listed."""
    out = [f"hardening diff {before} → {after}"]
    quiet = 0
    for diff in diffs:
        host_lines = _host_text(diff)
        if host_lines:
            out.extend(host_lines)
        else:
            quiet += 1
    totals = {k: sum(len(d.of(k)) for d in diffs) for k in KINDS}
    out.append(", ".join(f"{n} {k}" for k, n in totals.items()) + f"; {quiet} host(s) unchanged")
    return "\n".join(out) + "\n"


def _host_text(diff: HostDiff) -> list[str]:
    lines = []
    if diff.before_run is None:
        lines.append("  new host (not in the earlier run)")
    elif diff.after_run is None:
        lines.append("  gone (not in the later run)")
    elif diff.before_verdict != diff.after_verdict:
        lines.append(f"  verdict {diff.before_verdict} → {diff.after_verdict}")
    if diff.profile_change:
        lines.append(f"  profile {diff.profile_change}")
    by_clause: dict[str, list[Change]] = {}
    for change in diff.changes:
        for clause in change.clauses or ("-",):
            by_clause.setdefault(clause, []).append(change)
    for clause in sorted(by_clause, key=clause_key):
        lines.append(f"  {clause}")
        for c in by_clause[clause]:
            lines.append(f"    {c.kind:<7} {c.check}  {c.before or '—'} → {c.after or '—'}"
                         + (f"  ({_one_line(c.message, 100)})" if c.message and c.kind == "worse" else ""))
    return [diff.host + ":", *lines] if lines else []


def to_json(diffs: list[HostDiff], before: str, after: str) -> str:
    return json.dumps({"schema": "hardening.diff/1", "before": before, "after": after,
                       "hosts": [asdict(d) for d in diffs]}, ensure_ascii=False, indent=1)


def previous_views(root: Path, run_dir: Path, hosts: list[str]) -> dict[str, RunView]:
    """For each host, the latest earlier sealed run that still has its document."""
    out: dict[str, RunView] = {}
    cache: dict[Path, RunView] = {}
    for sealed in reversed(chain.sealed_runs(root, exclude=run_dir)):
        wanted = [h for h in hosts if h not in out and h in sealed.seal.get("hosts", {})]
        if not wanted or sealed.pruned:
            continue
        view = cache.setdefault(sealed.dir, load_run(sealed.dir))
        for host in wanted:
            if view.documents.get(host) is not None:
                out[host] = view
        if len(out) == len(hosts):
            break
    return out


def regressions_since_previous(root: Path, run_dir: Path) -> tuple[list[HostDiff], list[str]]:
    """Each host of ``run_dir`` against its own previous run: the diffs and the regression lines."""
    current = load_run(run_dir)
    hosts = [h for h, d in current.documents.items() if d is not None]
    previous = previous_views(root, run_dir, hosts)
    diffs = [compare_host(h, previous[h], current) for h in hosts if h in previous]
    return diffs, regression_lines(diffs)
