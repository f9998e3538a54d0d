"""The history store: a process killed mid-run loses nothing sealed before it, and the store is
only an index (rebuilt from the sealed files)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.evidence import chain, history, keys
from hardening.evidence.store import FILE, Store
from tests.test_evidence_support import all_pass, make_run, sealed_history

# Runs in a child process: seals a 300-host run and SIGKILLs itself at the given point.
CRASH = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from hardening.evidence import chain, history, store
    point, run_dir = sys.argv[1], Path(sys.argv[2])
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    calls = {"n": 0}
    original = store.Store.insert_results
    def insert_then_die(self, db, run_id, host, checks):
        calls["n"] += 1
        if calls["n"] == 150:   # half-way through the run's hosts, inside the transaction
            die()
        return original(self, db, run_id, host, checks)
    if point == "before-seal":
        chain.write_seal = die
    elif point == "after-seal":
        store.Store.index_run = die
    else:
        store.Store.insert_results = insert_then_die
    history.after_run(run_dir)
    print("not killed")
""")


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARDENING_KEY_DIR", str(tmp_path / "keys"))
    keys.init(tmp_path / "keys")
    root = tmp_path / "evidence"
    sealed_history(root, 2)
    return root


def _crash(root: Path, point: str) -> Path:
    hosts: dict[str, dict[str, str] | None] = {f"pc{i:03d}": all_pass() for i in range(300)}
    run_dir = make_run(root, 25, hosts, write_html=False)
    proc = subprocess.run([sys.executable, "-c", CRASH, point, str(run_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    return run_dir


def _earlier_runs_intact(root: Path) -> None:
    with Store(root) as store:
        assert store.integrity() == "ok"
        runs = [r["run_id"] for r in store.runs()]
        earlier = chain.run_dirs(root)[:2]
        assert runs[:2] == [r.name for r in earlier]
        assert store.results(earlier[0].name, "web01")["firewall.default_deny_inbound"] == "pass"
    policy = chain.Policy(trusted=keys.trusted())
    for run_dir in earlier:
        report = chain.verify_single(run_dir, policy)
        assert report.ok and report.signed == 1, [f.line() for f in report.findings]


@pytest.mark.parametrize("point", ["before-seal", "after-seal", "mid-transaction"])
def test_killed_run_loses_nothing_earlier(root: Path, point: str) -> None:
    crashed = _crash(root, point)
    _earlier_runs_intact(root)
    with Store(root) as store:
        assert crashed.name not in store.indexed()  # all or nothing: no half-indexed run
        assert not store.results(crashed.name, "pc000")
    policy = chain.Policy(trusted=keys.trusted())
    with Store(root) as store:
        report = chain.verify_tree(root, policy, store.indexed())
    if point == "before-seal":
        assert [(f.kind, f.where) for f in report.findings] == [("unsealed", str(crashed))]
    else:
        assert report.ok, [f.line() for f in report.findings]
    # The next run seals and chains on; a sealed crashed run is indexed by it.
    following = make_run(root, 26, {"web01": all_pass()})
    outcome = history.seal_run(following)
    with Store(root) as store:
        indexed = store.indexed()
    assert following.name in indexed
    assert (crashed.name in indexed) == (point != "before-seal")
    assert outcome.signed


def test_store_is_wal_and_rebuilds_from_files(root: Path) -> None:
    with Store(root) as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        before = store.indexed()
        history_rows = store.host_history("web01")
    assert len(history_rows) == 2 and [r["verdict"] for r in history_rows] == ["pass", "pass"]
    (root / FILE).unlink()
    for suffix in ("-wal", "-shm"):
        (root / (FILE + suffix)).unlink(missing_ok=True)
    with Store(root) as store:
        assert store.reindex() == 2
        assert store.indexed() == before
        store.index_run(chain.load_sealed(chain.run_dirs(root)[0]))  # indexing again replaces
        assert store.indexed() == before and len(store.host_history("web01")) == 2


def test_concurrent_reader_does_not_block_sealing(root: Path) -> None:
    reader = sqlite3.connect(root / FILE)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM results").fetchone()
    try:
        outcome = history.seal_run(make_run(root, 27, {"web01": all_pass()}))
    finally:
        reader.close()
    assert not any("not updated" in n for n in outcome.notes)
