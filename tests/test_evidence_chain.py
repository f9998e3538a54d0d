"""Tamper evidence: one changed byte, a removed or inserted document, a removed or reordered run,
a forged signature are each detected and named; a clean signed history verifies."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from hardening.evidence import chain, history, keys
from hardening.evidence.store import Store
from tests.helpers import cli
from tests.test_evidence_support import all_pass, make_run, sealed_history


@pytest.fixture
def key_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "keys"
    monkeypatch.setenv("HARDENING_KEY_DIR", str(directory))
    keys.init(directory)
    return directory


@pytest.fixture
def root(tmp_path: Path, key_dir: Path) -> Path:
    root = tmp_path / "evidence"
    sealed_history(root, 3)
    return root


def verify(root: Path, **policy: object) -> chain.Report:
    with Store(root) as store:
        indexed = store.indexed()
    return chain.verify_tree(root, chain.Policy(trusted=keys.trusted(), **policy), indexed)  # type: ignore[arg-type]


def kinds(report: chain.Report) -> set[str]:
    return {f.kind for f in report.findings if f.fatal}


def test_clean_signed_history_verifies(root: Path) -> None:
    report = verify(root)
    assert report.ok, [f.line() for f in report.findings]
    assert report.runs == 3 and report.signed == 3
    assert report.files == 3 * 8  # 2 documents, 2 host pages, index.json/html, fleet.html/csv
    proc = cli("evidence", "verify", "--evidence", root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "intact" in proc.stdout


def test_one_changed_byte_is_detected_and_named(root: Path) -> None:
    doc = chain.run_dirs(root)[1] / "web01.json"
    data = bytearray(doc.read_bytes())
    at = data.index(b'"pass"', data.index(b'"checks"'))
    data[at + 1] = ord("P")  # "pass" -> "Pass": one byte
    doc.write_bytes(bytes(data))
    report = verify(root)
    assert kinds(report) == {"changed"}
    assert [f.where for f in report.findings] == [str(doc)]
    proc = cli("evidence", "verify", "--evidence", root)
    assert proc.returncode == 1
    assert f"TAMPERED [changed] {doc}" in proc.stdout and "TAMPERING FOUND: 1 problem" in proc.stdout


def test_removed_and_inserted_documents_are_detected(root: Path) -> None:
    run = chain.run_dirs(root)[0]
    (run / "pc01.json").unlink()
    shutil.copy(run / "web01.json", run / "web02.json")
    report = verify(root)
    found = {(f.kind, Path(f.where).name) for f in report.findings}
    assert found == {("removed", "pc01.json"), ("inserted", "web02.json")}


def test_removed_run_in_the_middle_is_detected(root: Path) -> None:
    runs = chain.run_dirs(root)
    shutil.rmtree(runs[1])
    report = verify(root)
    assert "run-removed" in kinds(report)
    lines = "\n".join(f.line() for f in report.findings)
    assert runs[1].name in lines and runs[2].name in lines


def test_removed_latest_run_is_detected_by_the_store(root: Path) -> None:
    latest = chain.run_dirs(root)[-1]
    shutil.rmtree(latest)
    report = verify(root)
    assert [(f.kind, f.where) for f in report.findings] == [("run-removed", str(latest))]


def test_reordered_runs_are_detected(root: Path) -> None:
    first, second, _ = chain.run_dirs(root)
    tmp = root / "swap"
    first.rename(tmp)
    second.rename(first)
    tmp.rename(second)
    report = verify(root)
    assert "reordered" in kinds(report)
    assert {f.where for f in report.findings if f.kind == "reordered"} >= {str(first), str(second)}


def test_forged_signature_is_detected(root: Path, tmp_path: Path) -> None:
    run = chain.run_dirs(root)[1]
    seal = json.loads((run / "seal.json").read_text())
    seal["hosts"]["web01"]["verdict"] = "pass"
    seal["sealed_at"] = "2026-11-21T10:00:01+00:00"  # any change to the seal breaks the signature
    (run / "seal.json").write_text(json.dumps(seal, indent=1, sort_keys=True) + "\n")
    report = verify(root)
    assert "forged-signature" in kinds(report)
    assert any(f.where == str(run / "seal.sig") for f in report.findings)


def test_seal_signed_by_another_key_is_rejected(root: Path, tmp_path: Path) -> None:
    run = chain.run_dirs(root)[2]
    mallory = keys.init(tmp_path / "mallory")
    seal = chain.load_sealed(run).seal
    (run / "web01.json").write_text((run / "web01.json").read_text().replace('"fail": 0', '"fail": 0 '))
    seal["files"]["web01.json"]["sha256"] = chain.sha256_file(run / "web01.json")
    seal["key"] = {"algorithm": "ed25519", "fingerprint": mallory.fingerprint,
                   "public": keys.public_b64(mallory.public)}
    chain.write_seal(run, seal, mallory)  # a consistent, validly signed seal: by the wrong key
    report = verify(root)
    assert "untrusted-key" in kinds(report)
    with_key = cli("evidence", "verify", "--evidence", root, "--key", tmp_path / "keys" / "signing.pub")
    assert with_key.returncode == 1 and "untrusted-key" in with_key.stdout


def test_removed_signature_is_detected(root: Path) -> None:
    run = chain.run_dirs(root)[0]
    (run / "seal.sig").unlink()
    assert kinds(verify(root)) == {"signature-removed"}


def test_unsigned_runs_fail_unless_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDENING_KEY_DIR", str(tmp_path / "no-keys"))
    root = tmp_path / "evidence"
    run = make_run(root, 20, {"web01": all_pass()})
    outcome = history.after_run(run)
    assert outcome.notes and not outcome.regressions
    assert "UNSIGNED" in outcome.notes[0]
    assert kinds(verify(root)) == {"unsigned"}
    assert verify(root, allow_unsigned=True).ok


def test_key_readable_by_others_is_refused(tmp_path: Path, key_dir: Path) -> None:
    os.chmod(key_dir / keys.PRIVATE, 0o644)
    with pytest.raises(keys.SigningKeyError, match="lets others read"):
        keys.load_private(key_dir)
    run = make_run(tmp_path / "evidence", 20, {"web01": all_pass()})
    outcome = history.seal_run(run)
    assert not outcome.signed and "refused" in outcome.notes[0]
    proc = cli("keys", "show", "--dir", key_dir)
    assert "REFUSED" in proc.stdout


def test_keys_init_makes_an_owner_only_key_and_keeps_retired_ones(tmp_path: Path) -> None:
    directory = tmp_path / "k"
    proc = cli("keys", "init", "--dir", directory)
    assert proc.returncode == 0 and "fingerprint: sha256:" in proc.stdout
    assert (directory / keys.PRIVATE).stat().st_mode & 0o777 == 0o600
    again = cli("keys", "init", "--dir", directory)
    assert again.returncode == 2 and "hardening: error:" in again.stderr and "--force" in again.stderr
    old = keys.trusted(directory)
    assert cli("keys", "init", "--dir", directory, "--force").returncode == 0
    assert set(old) < set(keys.trusted(directory))


def test_single_run_and_single_file_can_be_verified(root: Path) -> None:
    run = chain.run_dirs(root)[1]
    assert cli("evidence", "verify", run).returncode == 0
    (run / "index.json").write_text("{}")
    proc = cli("evidence", "verify", run / "index.json")
    assert proc.returncode == 1 and "index.json" in proc.stdout


def test_runs_sealed_out_of_start_order_still_verify(tmp_path: Path, key_dir: Path) -> None:
    """Two verify runs at once into one root: the later-started one may finish (and seal) first."""
    root = tmp_path / "evidence"
    late = make_run(root, 20, {"web01": all_pass()}, hour=11)
    early = make_run(root, 20, {"pc01": all_pass()}, hour=10)
    history.seal_run(late)
    history.seal_run(early)
    assert chain.load_sealed(early).sequence == 2
    report = verify(root)
    assert report.ok, [f.line() for f in report.findings]


def test_a_truncated_document_is_still_sealed(tmp_path: Path, key_dir: Path) -> None:
    """A host whose document was cut short (disk full, crash) must not stop the run's seal."""
    root = tmp_path / "evidence"
    history.seal_run(make_run(root, 20, {"web01": all_pass()}))
    run = make_run(root, 21, {"web01": all_pass(), "pc01": all_pass()})
    (run / "pc01.json").write_text((run / "pc01.json").read_text()[:500])
    outcome = history.seal_run(run)
    assert outcome.signed and not outcome.regressions
    assert chain.load_sealed(run).seal["files"]["pc01.json"]["kind"] == "document"
    assert verify(root).ok
