"""The fleet report of one run: ``fleet.html`` (hosts × clauses) and ``fleet.csv`` (self-inspection sheet).

The CSV is UTF-8 with a BOM (Excel opens Japanese text correctly), CRLF line ends, one row per host
and check, bilingual headers: 条項 clause, 項目 item, 結果 result, 証跡 evidence (document, check id
and the document's sha256), 実施日 date (in JST, Asia/Tokyo, the agencies' calendar), ホスト host,
プロファイル profile, 区分 kind (自動点検 check, 人による確認 attestation, 部屋の点検 room check),
確認者 checked by and 有効期限 valid until (attestations: the person, in what role, and until when
the record holds), 部屋 room (the server room of rooms.yaml a host is in). A host without a
document (unreachable) gets one row saying so. A server room verified in the run (hardening.rooms)
adds its own rows, with an empty host column: one per room item (every member powered, each UPS),
one listing its members' verdicts and document digests, one per attestation item of its checklist
(attached files named with their SHA-256 in the evidence column).
Both files are written deterministically from the run's documents, so rewriting them from the same
documents gives the same bytes (and the seal, which covers them, still verifies).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardening import catalogue
from hardening.evidence import chain
from hardening.evidence.render import COUNTED, STATUS_LABEL, _env

JST = dt.timezone(dt.timedelta(hours=9), "JST")
HTML = "fleet.html"
CSV = "fleet.csv"
HEADERS = ["条項 clause", "項目 item", "結果 result", "証跡 evidence", "実施日 date", "ホスト host",
           "プロファイル profile", "区分 kind", "確認者 checked by", "有効期限 valid until", "部屋 room"]
# 区分: how the row was judged (the self-inspection sheet's 点検方法).
KIND_CHECK = "自動点検 check"
KIND_ATTESTATION = "人による確認 attestation"
KIND_ROOM = "部屋の点検 room check"
# Worst first: the status a clause cell shows when several checks cover the clause. Not
# configured is never shown as a pass; advisory is shown over pass (something expected is missing).
# A waived failure is shown over pass: the finding stands, accepted by a named approver.
SEVERITY = ("fail", "error", "not_configured", "advisory", "waived", "pass", "not_applicable")
HOST_VERDICTS = ("pass", "not_evaluated", "not_configured", "fail", "error", "unreachable")


@dataclass
class HostRow:
    name: str
    verdict: str
    profile: str
    document: str | None
    digest: str | None
    html: str | None
    message: str
    summary: dict[str, int]
    cells: dict[str, str] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    attestations: list[dict[str, Any]] = field(default_factory=list)
    started: str | None = None


def worst(statuses: list[str]) -> str:
    for status in SEVERITY:
        if status in statuses:
            return status
    return "none"


def _profile_label(doc: dict[str, Any] | None, listed: dict[str, Any]) -> str:
    profile = (doc or {}).get("profile") or {}
    name = profile.get("name") or listed.get("profile") or ""
    level = profile.get("sensitivity") or listed.get("sensitivity")
    return f"{name} ({level})" if name and level else name


def host_rows(run_dir: Path) -> list[HostRow]:
    """One row per host of the run, from index.json and the host documents."""
    index = chain.read_json(run_dir / chain.INDEX) if (run_dir / chain.INDEX).exists() else {}
    listed = {h["name"]: h for h in index.get("hosts", [])}
    rows = []
    for host, name in chain.host_documents(run_dir).items():
        path = run_dir / name if name else None
        doc = chain.load_document(run_dir, name)
        entry = listed.get(host, {})
        row = HostRow(
            name=host, verdict=(doc or {}).get("verdict") or entry.get("verdict") or "error",
            profile=_profile_label(doc, entry), document=name or None,
            digest=chain.sha256_file(path) if path and path.exists() else None,
            html=entry.get("html") or (name[:-5] + ".html" if name else None),
            message=(doc or {}).get("error") or entry.get("message") or "",
            summary=(doc or {}).get("summary") or entry.get("summary") or {},
            checks=(doc or {}).get("checks", []),
            attestations=(doc or {}).get("attestations") or [],
            started=((doc or {}).get("run") or {}).get("started") or index.get("started"))
        row.cells = _cells(row.checks)
        rows.append(row)
    return sorted(rows, key=lambda r: r.name)


def _cells(checks: list[dict[str, Any]]) -> dict[str, str]:
    by_clause: dict[str, list[str]] = {}
    for check in checks:
        for clause in check.get("clauses", []):
            by_clause.setdefault(clause, []).append(check["status"])
    return {clause: worst(statuses) for clause, statuses in by_clause.items()}


def jst_date(timestamp: str | None) -> str:
    when = chain.parse_time(timestamp)
    return when.astimezone(JST).date().isoformat() if when else ""


def counts(rows: list[HostRow]) -> dict[str, int]:
    """The numbers the page shows: hosts per verdict and checks per status."""
    out = {"hosts": len(rows)}
    for verdict in HOST_VERDICTS:
        out[f"host_{verdict}"] = sum(1 for r in rows if r.verdict == verdict)
    for status in COUNTED:
        out[f"check_{status}"] = sum(int(r.summary.get(status, 0) or 0) for r in rows)
    out["checks"] = sum(int(r.summary.get("total", 0) or 0) for r in rows)
    return out


def clause_counts(rows: list[HostRow], clause_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per clause, how many hosts show each status in their cell."""
    out = {c: dict.fromkeys(COUNTED, 0) for c in clause_ids}
    for row in rows:
        for clause, status in row.cells.items():
            if clause in out and status in out[clause]:
                out[clause][status] += 1
    return out


def render_html(run_dir: Path, rows: list[HostRow], rooms: list[RoomRow] | None = None) -> str:
    index = chain.read_json(run_dir / chain.INDEX) if (run_dir / chain.INDEX).exists() else {}
    clauses = catalogue.load().clauses
    return _env.get_template("fleet.html.j2").render(
        run_id=run_dir.name, index=index, rows=rows, rooms=rooms or [], clauses=clauses, labels=STATUS_LABEL,
        counts=counts(rows), by_clause=clause_counts(rows, [c.id for c in clauses]),
        counted=COUNTED, host_verdicts=HOST_VERDICTS,
        date=jst_date(index.get("started")))


def cell(value: str) -> str:
    """A CSV cell Excel shows as text: a leading =, +, -, @ (a formula) gets a quote in front,
    since messages can carry text from the host."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def render_csv(rows: list[HostRow], rooms: list[RoomRow] | None = None) -> str:
    """The self-inspection sheet as text (written with a BOM by :func:`write`)."""
    headings = {c.id: c.heading_ja for c in catalogue.load().clauses}
    buf = io.StringIO()
    writer = csv.writer(buf, dialect="excel", lineterminator="\r\n")
    writer.writerow(HEADERS)
    for line in _csv_rows(rows, headings, rooms):
        writer.writerow([cell(v) for v in line])
    return buf.getvalue()


def _csv_rows(rows: list[HostRow], headings: dict[str, str], rooms: list[RoomRow] | None = None) -> list[list[str]]:
    out = []
    room_of = {m: r.name for r in rooms or [] for m in r.members}
    for row in rows:
        date = jst_date(row.started)
        room = room_of.get(row.name, "")
        if not row.checks:
            out.append(["", row.message or "点検できず / not verified",
                        STATUS_LABEL.get(row.verdict, row.verdict),
                        f"{row.document} {row.digest}" if row.document else "",
                        date, row.name, row.profile, KIND_CHECK, "", "", room])
            continue
        for check in row.checks:
            clause = _clauses(check.get("clauses", []), headings)
            result = STATUS_LABEL.get(check["status"], check["status"])
            if check.get("waiver"):
                result += f" ({check['waiver']['id']}, until {check['waiver']['expires']})"
            out.append([clause, f"{check.get('title', '')} ({check['id']})", result,
                        f"{row.document}#{check['id']} {row.digest}", date, row.name, row.profile,
                        KIND_CHECK, "", "", room])
        out += [[*_attestation_row(a, row.document, row.name, row.profile, headings, date), room]
                for a in row.attestations]
    for room_row in rooms or []:
        out += _room_rows(room_row, headings)
    return out


def _clauses(ids: list[str], headings: dict[str, str]) -> str:
    return "; ".join(f"{c} {headings.get(c, '')}".strip() for c in ids)


def _room_rows(room: RoomRow, headings: dict[str, str]) -> list[list[str]]:
    """A room's own items (members powered, each UPS), its members' evidence and its attestations;
    the host column is empty: the subject is the room."""
    date = jst_date(room.written)
    out = []
    for check in room.checks:
        out.append([_clauses(check.get("clauses", []), headings), f"{check.get('title', '')} ({check['id']})",
                    STATUS_LABEL.get(check["status"], check["status"]),
                    f"{room.document}#{check['id']} {room.digest}; {check.get('message') or ''}".strip("; "),
                    date, "", "", KIND_ROOM, "", "", room.name])
    members = "; ".join(f"{m['name']} {STATUS_LABEL.get(m['verdict'], m['verdict'])} {m.get('sha256') or ''}".strip()
                        for m in room.members_detail)
    out.append(["", "設置サーバの点検結果 member servers", STATUS_LABEL.get(room.verdict, room.verdict),
                f"{room.document} {room.digest}; {members}", date, "", "", KIND_ROOM, "", "", room.name])
    out += [[*_attestation_row(a, room.document, "", "", headings, date), room.name] for a in room.attestations]
    return out


def _attestation_row(item: dict[str, Any], document: str | None, host: str, profile: str,
                     headings: dict[str, str], date: str) -> list[str]:
    """A manual item of the sheet: what was confirmed, by whom in what role, on which day, until when.
    The date column is the person's, not the run's: the sheet shows when it was really checked.
    Attached files are named with their SHA-256 (the 根拠 a person can re-check)."""
    clause = _clauses(item.get("clauses", []), headings)
    who = f"確認者 {item['by']} ({item.get('role') or '—'}), 有効期限 until {item['until']}" if item.get("by") else ""
    files = "; ".join(f"{f['path']} sha256:{f['sha256']}" for f in item.get("files") or [])
    evidence = "; ".join(x for x in (who, item.get("note") or "", files, f"{document}#attestation:{item['id']}")
                         if x)
    checker = f"{item['by']} ({item.get('role') or '—'})" if item.get("by") else ""
    return [clause, f"[人による確認 attestation] {item.get('ja', '')} ({item['id']})",
            STATUS_LABEL.get(item["status"], item["status"]), evidence, item.get("date") or date,
            host, profile, KIND_ATTESTATION, checker, item.get("until") or ""]


def write(run_dir: Path, out: Path | None = None) -> tuple[Path, Path]:
    """Write fleet.html and fleet.csv for the run (into the run directory unless ``out``)."""
    out = out or run_dir
    out.mkdir(parents=True, exist_ok=True)
    rows = host_rows(run_dir)
    html, text = render(run_dir, rows)
    chain.write_atomic(out / HTML, html)
    chain.write_atomic(out / CSV, text)
    return out / HTML, out / CSV


def render(run_dir: Path, rows: list[HostRow] | None = None) -> tuple[bytes, bytes]:
    """The bytes of fleet.html and fleet.csv (UTF-8, the CSV with a BOM)."""
    rows = host_rows(run_dir) if rows is None else rows
    rooms = room_rows(run_dir)
    return (render_html(run_dir, rows, rooms).encode("utf-8"),
            render_csv(rows, rooms).encode("utf-8-sig"))


@dataclass
class RoomRow:
    """A server room of the run (its document, hardening.rooms), beside the hosts."""

    name: str
    verdict: str
    document: str
    digest: str | None
    members: list[str]
    members_detail: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    attestations: list[dict[str, Any]]
    ups: list[dict[str, Any]]
    written: str | None


def room_rows(run_dir: Path) -> list[RoomRow]:
    """The rooms index.json lists, from their documents (a missing one still gets its row)."""
    index = chain.read_json(run_dir / chain.INDEX) if (run_dir / chain.INDEX).exists() else {}
    out = []
    for entry in index.get("rooms") or []:
        path = run_dir / str(entry.get("json") or "")
        doc = chain.load_document(run_dir, entry.get("json") or "") or {}
        out.append(RoomRow(
            name=str(entry["name"]), verdict=doc.get("verdict") or entry.get("verdict") or "error",
            document=path.name, digest=chain.sha256_file(path) if path.is_file() else None,
            members=list(entry.get("members") or []), members_detail=doc.get("members") or [],
            checks=doc.get("checks") or [], attestations=doc.get("attestations") or [],
            ups=doc.get("ups") or [], written=(doc.get("run") or {}).get("written") or index.get("started")))
    return sorted(out, key=lambda r: r.name)
