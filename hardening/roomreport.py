"""The room report: one server room's members, UPS, RAID and attestations together, in Japanese or
English (markdown), written from the room's sealed document (hardening.rooms).

RAID results come from the members' own checks of the ``disks`` measure, picked by measure name
from the member documents; a run without that measure says so instead of showing nothing.
"""

from __future__ import annotations

from typing import Any

from hardening.results import BY_NAME

TEXT = {
    "title": ("サーバ室点検報告", "Server room report"),
    "run": ("実施", "Run"),
    "verdict": ("総合判定", "Verdict"),
    "file": ("部屋の定義", "Room file"),
    "members": ("設置サーバ", "Member servers"),
    "host": ("ホスト", "Host"),
    "result": ("結果", "Result"),
    "evidence": ("証跡 (SHA-256)", "Evidence (SHA-256)"),
    "ups": ("無停電電源装置 (UPS)", "UPS units"),
    "unit": ("UPS", "UPS"),
    "powers": ("給電先", "Powers"),
    "status": ("状態", "Status"),
    "charge": ("充電率 %", "Charge %"),
    "runtime": ("残り時間 s", "Runtime s"),
    "power": ("電源の点検 (7-5)", "Power checks (7-5)"),
    "raid": ("RAID の点検", "RAID checks"),
    "no_raid": ("RAID の点検結果はこの実施にありません (disks の点検が実施されていません)",
                "no RAID results in this run (the disks measure was not verified)"),
    "check": ("点検項目", "Check"),
    "note": ("所見", "Finding"),
    "room_items": ("部屋の技術的事項", "Room technical items"),
    "attest": ("人による確認", "Attestations"),
    "item": ("確認項目", "Item"),
    "clauses": ("条項", "Clauses"),
    "by": ("確認者", "Checked by"),
    "date": ("確認日", "Checked on"),
    "until": ("有効期限", "Valid until"),
    "files": ("添付 (SHA-256)", "Attached (SHA-256)"),
    "none": ("なし", "none"),
}
VERDICT = {"not_verified": ("未点検", "not verified"), "unreachable": ("接続不可", "unreachable"),
           "not_evaluated": ("未評価", "not evaluated")}


def t(key: str, lang: str) -> str:
    ja, en = TEXT[key]
    return ja if lang == "ja" else en


def result(name: str, lang: str) -> str:
    r = BY_NAME.get(name)
    if r is not None:
        return r.ja if lang == "ja" else r.en
    ja, en = VERDICT.get(name, (name, name.replace("_", " ")))
    return ja if lang == "ja" else en


def _cell(value: Any) -> str:
    return str(value if value not in (None, "") else "—").replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def markdown(doc: dict[str, Any], lang: str = "ja") -> str:
    if lang not in ("ja", "en"):
        raise ValueError(f"unknown language {lang!r} (ja or en)")
    room = doc["room"]
    lines = [f"# {t('title', lang)}: {room['name']}", ""]
    if room.get("description"):
        lines += [room["description"], ""]
    lines += [f"- {t('verdict', lang)}: **{result(doc['verdict'], lang)}** ({doc['verdict']})",
              f"- {t('run', lang)}: {doc['run']['id']} ({doc['run'].get('written', '')})",
              f"- {t('file', lang)}: {room.get('file') or '—'} ({room.get('file_sha256') or '—'})", ""]
    lines += [f"## {t('members', lang)}", ""]
    lines += _table([t("host", lang), t("result", lang), t("evidence", lang)],
                    [[m["name"], result(m["verdict"], lang), f"{m['document']} {m['sha256']}" if m.get("document")
                      else m.get("message")] for m in doc["members"]])
    lines += _ups(doc, lang) + _room_items(doc, lang)
    lines += _member_section(doc, lang, "power", t("power", lang), None)
    lines += _member_section(doc, lang, "disks", t("raid", lang), t("no_raid", lang))
    lines += _attestations(doc, lang)
    return "\n".join(lines)


def _ups(doc: dict[str, Any], lang: str) -> list[str]:
    lines = [f"## {t('ups', lang)}", ""]
    states = {c["id"].removeprefix("room.ups:"): c for c in doc["checks"] if c["id"].startswith("room.ups:")}
    rows = []
    for ups in doc["ups"]:
        check = states.get(ups["ref"], {})
        readings = (check.get("observed") or {}).get("upsc") or {}
        reading = next((r for r in readings.values() if isinstance(r, dict)), {})
        rows.append([ups["ref"], ", ".join(ups["powers"]), reading.get("ups.status"), reading.get("battery.charge"),
                     reading.get("battery.runtime"), result(check.get("status", "error"), lang),
                     check.get("message")])
    if not rows:
        return [*lines, t("none", lang), ""]
    return lines + _table([t("unit", lang), t("powers", lang), t("status", lang), t("charge", lang),
                           t("runtime", lang), t("result", lang), t("note", lang)], rows)


def _room_items(doc: dict[str, Any], lang: str) -> list[str]:
    lines = [f"## {t('room_items', lang)}", ""]
    return lines + _table([t("check", lang), t("result", lang), t("note", lang)],
                          [[f"{c['title']} ({c['id']})", result(c["status"], lang), c.get("message")]
                           for c in doc["checks"]])


def _member_section(doc: dict[str, Any], lang: str, measure: str, title: str, empty: str | None) -> list[str]:
    rows = [[host, f"{c['title']} ({c['id']})", result(c["status"], lang), c.get("message")]
            for host, checks in (doc.get("member_checks") or {}).items() for c in checks if c["measure"] == measure]
    lines = [f"## {title}", ""]
    if not rows:
        return [*lines, empty or t("none", lang), ""]
    return lines + _table([t("host", lang), t("check", lang), t("result", lang), t("note", lang)], rows)


def _attestations(doc: dict[str, Any], lang: str) -> list[str]:
    lines = [f"## {t('attest', lang)}", ""]
    rows = [[f"{a['ja'] if lang == 'ja' else a['en']} ({a['id']})", ", ".join(a.get("clauses", [])),
             result(a["status"], lang), f"{a['by']} ({a['role']})" if a.get("by") else None, a.get("date"),
             a.get("until"), a.get("note"),
             "; ".join(f"{f['path']} {f['sha256'][:12]}…" for f in a.get("files", []))]
            for a in doc["attestations"]]
    if not rows:
        return [*lines, t("none", lang), ""]
    return lines + _table([t("item", lang), t("clauses", lang), t("result", lang), t("by", lang), t("date", lang),
                           t("until", lang), t("note", lang), t("files", lang)], rows)
