"""One result vocabulary (hardening.results): every place that writes, counts or shows a result
uses it, and docs/results.md is generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardening import ROOT, results
from hardening.errors import Exit
from hardening.evidence import model
from hardening.evidence.fleet import SEVERITY
from hardening.evidence.render import STATUS_LABEL
from hardening.verify import HostResult, RunResult


def test_the_issue_vocabulary_is_exactly_the_registry() -> None:
    assert {r.name for r in results.RESULTS} == {
        "pass", "fail", "error", "not_applicable", "not_configured", "advisory", "waived", "attested", "expired",
        "not_evaluated"}


def test_documents_count_and_pages_label_every_result() -> None:
    assert set(model.STATUSES) == set(results.CHECK_RESULTS)
    assert set(model.ATTESTATION_STATUSES) == set(results.ATTESTATION_RESULTS)
    assert set(SEVERITY) == set(results.CHECK_RESULTS)
    for result in results.RESULTS:
        assert STATUS_LABEL[result.name] == f"{result.ja} {result.en}"


@pytest.mark.parametrize("result", results.RESULTS, ids=lambda r: r.name)
def test_each_result_alone_gives_the_exit_code_it_documents(result: results.Result, tmp_path: Path) -> None:
    checks = {result.name: 1} if "check" in result.of else {"pass": 1}
    attestations = {result.name: 1} if "attestation" in result.of and "check" not in result.of else {}
    verdict = results.host_verdict(checks, attestations)
    code = RunResult(tmp_path, [HostResult("h", "terminal", "high", verdict)]).exit_code
    assert code == Exit(results.EXIT_BY_EFFECT[result.effect]), (result.name, verdict)


def test_docs_results_md_is_generated() -> None:
    assert (ROOT / "docs" / "results.md").read_text(encoding="utf-8") == results.markdown(), (
        "run: hardening results --markdown > docs/results.md")
