"""The fleet report: the CSV round-trips Japanese text; the HTML, rendered by headless Chromium,
shows the right counts."""

from __future__ import annotations

import csv
import html.parser
import json
from pathlib import Path

import pytest

from hardening.evidence import chain, fleet, history
from tests.helpers import cli, headless_chromium
from tests.test_evidence_support import all_pass, make_run


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Five hosts: one passing, one failing 6-7, one with an error on 6-11, one with a check not
    configured on 6-6 and an advisory one on 6-11, one unreachable."""
    monkeypatch.setenv("HARDENING_KEY_DIR", str(tmp_path / "keys"))
    failing = all_pass() | {"firewall.default_deny_inbound": "fail"}
    erroring = all_pass() | {"usb.storage_blocked": "error", "timeouts.shell_tmout": "not_applicable"}
    unset = all_pass() | {"admin.root_login_disabled": "not_configured", "usb.storage_blocked": "advisory"}
    run_dir = make_run(tmp_path / "evidence", 28, {"pc01": all_pass(), "web01": failing,
                                                   "db01": erroring, "pc03": unset, "pc02": None})
    history.after_run(run_dir)
    return run_dir


def test_csv_round_trips_japanese_with_bom_and_bilingual_headers(run: Path) -> None:
    raw = (run / fleet.CSV).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    with open(run / fleet.CSV, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["条項 clause", "項目 item", "結果 result", "証跡 evidence", "実施日 date",
                       "ホスト host", "プロファイル profile", "区分 kind", "確認者 checked by",
                       "有効期限 valid until", "部屋 room"]
    assert len(rows) == 1 + 4 * 5 + 1  # header, four hosts × five checks, one unreachable host
    fail = next(r for r in rows if r[5] == "web01" and "firewall" in r[1])
    assert fail[0] == "6-7 外部からの不正アクセスの防止"
    assert fail[1] == "受信は既定で拒否 Inbound default deny (firewall.default_deny_inbound)"
    assert fail[2] == "不適合 fail" and fail[4] == "2026-11-28" and fail[6] == "terminal (high)"
    document, digest = fail[3].split(" ")
    assert document == "web01.json#firewall.default_deny_inbound"
    assert digest == chain.load_sealed(run).seal["files"]["web01.json"]["sha256"]
    auth = next(r for r in rows if r[5] == "pc01" and "auth" in r[1])
    assert auth[0] == "6-1 アクセス制御; 6-2 パスワード等の管理"
    unreachable = next(r for r in rows if r[5] == "pc02")
    assert unreachable[2] == "接続不可 unreachable" and "No route to host" in unreachable[1]
    unset = {r[1].rsplit("(", 1)[1].rstrip(")"): r[2] for r in rows if r[5] == "pc03"}
    assert unset["admin.root_login_disabled"] == "未設定 not configured"
    assert unset["usb.storage_blocked"] == "推奨 advisory" and unset["auth.no_empty_passwords"] == "適合 pass"


def test_report_is_sealed_and_regenerates_byte_identical(run: Path, tmp_path: Path) -> None:
    sealed = chain.load_sealed(run).seal["files"]
    assert sealed[fleet.HTML]["kind"] == "report" and sealed[fleet.CSV]["kind"] == "report"
    proc = cli("evidence", "report", run)
    assert proc.returncode == 0, proc.stderr
    assert chain.sha256_file(run / fleet.CSV) == sealed[fleet.CSV]["sha256"]
    out = tmp_path / "copy"
    assert cli("evidence", "report", run.name, "--evidence", run.parent, "--out", out).returncode == 0
    assert (out / fleet.CSV).read_bytes() == (run / fleet.CSV).read_bytes()


class _Counts(html.parser.HTMLParser):
    """Reads the id="count-*" cells and the data-status cells of a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, str] = {}
        self.cells: list[tuple[str, str, str]] = []
        self._current: str | None = None
        self._host = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("data-host"):
            self._host = a["data-host"] or ""
        if (a.get("id") or "").startswith("count-"):
            self._current = a["id"]
        if a.get("data-status"):
            self.cells.append((self._host, a.get("data-clause") or "", a["data-status"] or ""))

    def handle_data(self, data: str) -> None:
        if self._current:
            self.counts[self._current] = self.counts.get(self._current, "") + data.strip()

    def handle_endtag(self, tag: str) -> None:
        self._current = None


@pytest.mark.slow
def test_fleet_html_renders_in_chromium_with_the_right_counts(run: Path, tmp_path: Path) -> None:
    url = (run / fleet.HTML).as_uri()
    shot = tmp_path / "fleet.png"
    proc = headless_chromium(tmp_path, "--window-size=1600,1000", f"--screenshot={shot}", url)
    assert shot.exists() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = headless_chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _Counts()
    parsed.feed(dom.stdout)
    assert parsed.counts == {
        "count-hosts": "5", "count-host-pass": "1", "count-host-not_configured": "1", "count-host-fail": "1",
        "count-host-error": "1", "count-host-unreachable": "1", "count-checks": "20", "count-check-pass": "15",
        "count-check-fail": "1", "count-check-error": "1", "count-check-not_applicable": "1",
        "count-check-not_configured": "1", "count-check-advisory": "1", "count-check-waived": "0",
        "count-host-not_evaluated": "0"}
    assert ("pc03", "6-6", "not_configured") in parsed.cells and ("pc03", "6-11", "advisory") in parsed.cells
    assert ("web01", "6-7", "fail") in parsed.cells and ("db01", "6-11", "error") in parsed.cells
    assert ("db01", "6-15", "not_applicable") in parsed.cells and ("pc01", "6-7", "pass") in parsed.cells
    assert "pc02" not in {host for host, _, _ in parsed.cells}  # unreachable: one spanning cell
    assert 'href="web01.html"' in dom.stdout and "外部からの不正アクセスの防止" in dom.stdout


def test_csv_cells_cannot_become_excel_formulas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDENING_KEY_DIR", str(tmp_path / "keys"))
    run_dir = make_run(tmp_path / "evidence", 28, {"pc09": None})
    index = json.loads((run_dir / "index.json").read_text())
    index["hosts"][0]["message"] = '=HYPERLINK("http://example.invalid","click")'
    (run_dir / "index.json").write_text(json.dumps(index, ensure_ascii=False))
    history.after_run(run_dir)
    with open(run_dir / fleet.CSV, encoding="utf-8-sig", newline="") as fh:
        row = list(csv.reader(fh))[1]
    assert row[1] == "'=HYPERLINK(\"http://example.invalid\",\"click\")"
