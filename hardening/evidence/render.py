"""HTML pages a person reads, in Japanese and English, from evidence documents."""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from hardening import catalogue
from hardening.results import CHECK_COUNTS, RESULTS, label

_env = Environment(
    loader=PackageLoader("hardening.evidence", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

def _pretty(value: Any) -> str:
    """JSON as a person reads it; autoescape makes it safe (tojson would show < as \\u003c)."""
    return json.dumps(value, ensure_ascii=False, indent=1)


_env.filters["pretty"] = _pretty


def _shown(check: dict[str, Any], observations: dict[str, Any]) -> list[dict[str, Any]]:
    """What a check read: its observations from the batch, then any call of its own
    (``commands``: documents of schema 1)."""
    used = [observations[i] for i in check.get("observations") or [] if i in observations]
    return used + list(check.get("own_commands") or []) + list(check.get("commands") or [])


_env.filters["shown"] = _shown

# Labels of every result (hardening.results), of host verdicts and of documents before schema 4.
STATUS_LABEL = {
    **{r.name: label(r.name) for r in RESULTS},
    "unreachable": "接続不可 unreachable",
    "missing": "未確認 missing",  # an attestation nobody recorded, before schema 4
}


# The check statuses in the order the pages count them (the host verdict is one of the first four).
COUNTED = CHECK_COUNTS


def _headings() -> dict[str, str]:
    return {c.id: c.heading_ja for c in catalogue.load().clauses}


def render_host(doc: dict[str, Any]) -> str:
    return _env.get_template("host.html.j2").render(
        doc=doc, labels=STATUS_LABEL, headings=_headings(), counted=COUNTED,
        observations={o["id"]: o for o in doc.get("observations") or []})


def render_index(index: dict[str, Any]) -> str:
    return _env.get_template("index.html.j2").render(index=index, labels=STATUS_LABEL, counted=COUNTED)
