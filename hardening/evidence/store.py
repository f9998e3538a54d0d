"""The history store: an SQLite index of runs, hosts and check results (``history.sqlite``).

It lives next to the evidence (``<evidence_root>/history.sqlite``), in WAL mode, and each run is
indexed in one transaction: a process killed mid-run leaves the runs indexed before it intact and
the half-written one absent. The store is an index, not the source of truth: the sealed files are.
``Store.reindex`` rebuilds it from them, and sealed runs the store lacks (a crash between the seal
and the commit) are indexed the next time a run is sealed.

Store versions: 1 counted pass, fail, error and not applicable per host and run; 2 (evidence
schema 3) adds ``not_configured`` and ``advisory``. Opening a version 1 store adds the two
columns (NULL for the runs indexed before: their documents had no such status) and records
version 2; nothing else changes, so an old store keeps every row. 3 (evidence schema 4) adds
``waived`` the same way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hardening.evidence import chain

FILE = "history.sqlite"
SCHEMA_VERSION = 3
# Columns of host_runs added after version 1, in the order they are appended.
ADDED_COLUMNS = {"not_configured": "INTEGER", "advisory": "INTEGER", "waived": "INTEGER"}
HOST_RUN_COLUMNS = ("run_id", "host", "profile", "sensitivity", "verdict", "document", "document_sha256",
                    "pass", "fail", "error", "not_applicable", "total", "retention_days", "message",
                    *ADDED_COLUMNS)

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL,
    started TEXT, finished TEXT, sealed_at TEXT, tool_version TEXT, inventory TEXT,
    seal_sha256 TEXT NOT NULL,
    key_fingerprint TEXT,
    retention_days INTEGER NOT NULL,
    pruned_at TEXT
);
CREATE TABLE IF NOT EXISTS hosts (
    name TEXT PRIMARY KEY,
    first_run TEXT NOT NULL,
    last_run TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS host_runs (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    host TEXT NOT NULL REFERENCES hosts(name),
    profile TEXT, sensitivity TEXT, verdict TEXT,
    document TEXT, document_sha256 TEXT,
    pass INTEGER, fail INTEGER, error INTEGER, not_applicable INTEGER, total INTEGER,
    retention_days INTEGER,
    message TEXT,
    not_configured INTEGER, advisory INTEGER, waived INTEGER,
    PRIMARY KEY (run_id, host)
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL, host TEXT NOT NULL, check_id TEXT NOT NULL,
    measure TEXT, title TEXT, status TEXT NOT NULL, message TEXT,
    PRIMARY KEY (run_id, host, check_id),
    FOREIGN KEY (run_id, host) REFERENCES host_runs(run_id, host)
);
CREATE TABLE IF NOT EXISTS result_clauses (
    run_id TEXT NOT NULL, host TEXT NOT NULL, check_id TEXT NOT NULL, clause TEXT NOT NULL,
    PRIMARY KEY (run_id, host, check_id, clause)
);
CREATE INDEX IF NOT EXISTS results_by_host ON results(host, check_id);
CREATE INDEX IF NOT EXISTS clauses_by_clause ON result_clauses(clause, host);
"""

_INSERT_HOST_RUN = (f"INSERT INTO host_runs ({', '.join(HOST_RUN_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in HOST_RUN_COLUMNS)})")


class Store:
    """One connection to ``<root>/history.sqlite``; use as a context manager."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / FILE
        root.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(f"BEGIN IMMEDIATE;{_DDL}"
                              f"INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');"
                              "COMMIT;")
        self._migrate()

    def _migrate(self) -> None:
        """Bring an older store up to SCHEMA_VERSION (adds columns; keeps every row)."""
        with self.transaction() as db:
            have = {r["name"] for r in db.execute("PRAGMA table_info(host_runs)")}
            for column, kind in ADDED_COLUMNS.items():
                if column not in have:
                    db.execute(f"ALTER TABLE host_runs ADD COLUMN {column} {kind}")
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version' AND CAST(value AS INTEGER) < ?",
                       (str(SCHEMA_VERSION), SCHEMA_VERSION))

    def version(self) -> int:
        """The store's schema version (meta.schema_version)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    def checkpoint(self) -> None:
        """Move the WAL into the database file, so a plain copy of the evidence root is complete."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error (and nothing on a kill)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- writing -----------------------------------------------------------------------------
    def index_run(self, sealed: chain.Sealed) -> None:
        """Index one sealed run (all or nothing); indexing it again replaces it."""
        seal = sealed.seal
        index = _read_index(sealed.dir)
        with self.transaction() as db:
            self._delete(db, sealed.run_id)
            db.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (sealed.run_id, sealed.sequence, seal.get("started"), seal.get("finished"),
                 seal.get("sealed_at"), seal.get("tool_version"), index.get("inventory"),
                 sealed.digest, (seal.get("key") or {}).get("fingerprint"),
                 seal.get("retention_days", chain.DEFAULT_RETENTION_DAYS),
                 _pruned_at(sealed)))
            entries = {h.get("name"): h for h in index.get("hosts", [])}
            for host, entry in sorted(seal.get("hosts", {}).items()):
                self._index_host(db, sealed, host, entry, entries.get(host, {}))

    def _index_host(self, db: sqlite3.Connection, sealed: chain.Sealed, host: str,
                    entry: dict[str, Any], listed: dict[str, Any]) -> None:
        run_id = sealed.run_id
        db.execute("INSERT INTO hosts VALUES (?,?,?) ON CONFLICT(name) DO UPDATE SET "
                   "last_run = max(last_run, excluded.last_run), "
                   "first_run = min(first_run, excluded.first_run)", (host, run_id, run_id))
        doc = _read_doc(sealed.dir, entry.get("document"))
        summary = (doc or {}).get("summary") or listed.get("summary") or {}
        profile = (doc or {}).get("profile") or {}
        db.execute(_INSERT_HOST_RUN, (
            run_id, host, profile.get("name") or listed.get("profile"),
            profile.get("sensitivity") or listed.get("sensitivity"), entry.get("verdict"),
            entry.get("document"), entry.get("sha256"),
            summary.get("pass"), summary.get("fail"), summary.get("error"),
            summary.get("not_applicable"), summary.get("total"), entry.get("retention_days"),
            (doc or {}).get("error") or listed.get("message"),
            summary.get("not_configured"), summary.get("advisory"), summary.get("waived")))
        self.insert_results(db, run_id, host, (doc or {}).get("checks", []))

    def insert_results(self, db: sqlite3.Connection, run_id: str, host: str,
                       checks: list[dict[str, Any]]) -> None:
        for check in checks:
            db.execute("INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?)", (
                run_id, host, check["id"], check.get("measure"), check.get("title"),
                check["status"], check.get("message")))
            db.executemany("INSERT OR IGNORE INTO result_clauses VALUES (?,?,?,?)",
                           [(run_id, host, check["id"], c) for c in check.get("clauses", [])])

    @staticmethod
    def _delete(db: sqlite3.Connection, run_id: str) -> None:
        for table in ("result_clauses", "results", "host_runs", "runs"):
            db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))

    def mark_pruned(self, run_id: str, pruned_at: str) -> None:
        """A pruned run keeps its row and per-host summary; its check results go."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET pruned_at = ? WHERE run_id = ?", (pruned_at, run_id))
            db.execute("DELETE FROM result_clauses WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM results WHERE run_id = ?", (run_id,))

    def catch_up(self) -> list[str]:
        """Index sealed runs on disk that the store lacks; returns their run ids."""
        known = self.indexed()
        added = []
        for sealed in chain.sealed_runs(self.root):
            if sealed.run_id not in known:
                self.index_run(sealed)
                added.append(sealed.run_id)
        return added

    def reindex(self) -> int:
        """Rebuild the whole index from the sealed files."""
        with self.transaction() as db:
            for table in ("result_clauses", "results", "host_runs", "hosts", "runs"):
                db.execute(f"DELETE FROM {table}")
        runs = chain.sealed_runs(self.root)
        for sealed in runs:
            self.index_run(sealed)
        return len(runs)

    # -- reading -----------------------------------------------------------------------------
    def indexed(self) -> dict[str, str]:
        """run_id -> sha256 of its seal, for every run the store has seen."""
        rows = self.db.execute("SELECT run_id, seal_sha256 FROM runs")
        return {r["run_id"]: r["seal_sha256"] for r in rows}

    def runs(self) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM runs ORDER BY sequence"))

    def host_history(self, host: str) -> list[sqlite3.Row]:
        return list(self.db.execute(
            "SELECT hr.*, r.started FROM host_runs hr JOIN runs r USING (run_id) "
            "WHERE host = ? ORDER BY r.sequence", (host,)))

    def results(self, run_id: str, host: str) -> dict[str, str]:
        return {r["check_id"]: r["status"] for r in self.db.execute(
            "SELECT check_id, status FROM results WHERE run_id = ? AND host = ?", (run_id, host))}

    def integrity(self) -> str:
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])


def _read_index(run_dir: Path) -> dict[str, Any]:
    path = run_dir / chain.INDEX
    if not path.exists():
        return {}
    data = chain.read_json(path)
    return data if isinstance(data, dict) else {}


def _read_doc(run_dir: Path, name: str | None) -> dict[str, Any] | None:
    if not name or not (run_dir / name).exists():
        return None
    try:
        data = chain.read_json(run_dir / name)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _pruned_at(sealed: chain.Sealed) -> str | None:
    if not sealed.pruned:
        return None
    try:
        return str(chain.read_json(sealed.dir / chain.PRUNED).get("pruned_at"))
    except (ValueError, OSError):
        return None


def read_index(root: Path) -> dict[str, str] | None:
    """run_id -> seal sha256 from ``history.sqlite``, read-only (evidence may sit on read-only
    media); None when there is no store or it cannot be read."""
    path = root / FILE
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            return {r[0]: r[1] for r in db.execute("SELECT run_id, seal_sha256 FROM runs")}
        finally:
            db.close()
    except sqlite3.Error:
        return None
