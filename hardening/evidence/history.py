"""The hook the verify runner calls once per run: seal, index, report, and find regressions.

``after_run(run_dir)`` is called by ``hardening verify`` after it wrote ``<host>.json``,
``<host>.html``, ``index.json`` and ``index.html`` into ``<evidence_root>/<run_id>/``. It

1. compares each host with its own previous sealed run (the regressions it returns),
2. writes the fleet report (``fleet.html``, ``fleet.csv``) into the run directory,
3. seals the run (``seal.json``: sha256 of every file, chained to the previous run and to each
   host's previous run) and signs the seal with the Ed25519 key if there is one (``seal.sig``),
4. indexes the run in ``<evidence_root>/history.sqlite`` (one transaction).

Notes (sealed, unsigned, store trouble) go to stderr; only regressions are returned, because the
runner turns a non-empty list into exit code 4.
"""

from __future__ import annotations

import fcntl
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hardening.errors import HardeningError
from hardening.evidence import chain, diff, fleet
from hardening.evidence import keys as keymod
from hardening.evidence.store import Store

LOCK = ".hardening-evidence.lock"


@dataclass
class Outcome:
    """What sealing a run did: for the runner's summary and for tests."""

    run_id: str
    seal: str
    signed: bool
    fingerprint: str | None
    regressions: list[str]
    diffs: list[diff.HostDiff] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """One sealer at a time per evidence root, so the chain cannot fork."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def signing_key(key_dir: Path | None = None) -> tuple[keymod.SigningKey | None, str | None]:
    """The key to sign with, or None and why not (the run is then sealed unsigned)."""
    try:
        key = keymod.load_private(key_dir)
    except keymod.SigningKeyError as exc:
        return None, f"signing key refused: {exc}"
    if key is None:
        where = (key_dir or keymod.default_dir()) / keymod.PRIVATE
        return None, f"no signing key at {where} (create one: hardening keys init)"
    return key, None


def seal_run(run_dir: Path, key_dir: Path | None = None) -> Outcome:
    """Compare, report, seal, sign and index one run directory; see the module docstring."""
    run_dir = run_dir.resolve()
    root = run_dir.parent
    if not (run_dir / chain.INDEX).exists():
        raise HardeningError(f"{run_dir}: no {chain.INDEX}; not a run directory")
    with locked(root):
        if (run_dir / chain.SEAL).exists():
            raise HardeningError(f"{run_dir}: already sealed")
        diffs, regressions = diff.regressions_since_previous(root, run_dir)
        fleet.write(run_dir)
        key, why = signing_key(key_dir)
        seal = chain.build_seal(run_dir, chain.sealed_runs(root, exclude=run_dir), key)
        digest = chain.write_seal(run_dir, seal, key)
        outcome = Outcome(run_dir.name, digest, key is not None, key.fingerprint if key else None,
                          regressions, diffs)
        outcome.notes.append(_sealed_note(outcome, seal, why))
        outcome.notes.extend(_index(root, run_dir))
    return outcome


def _sealed_note(outcome: Outcome, seal: dict[str, object], why: str | None) -> str:
    files = len(seal.get("files", {}))  # type: ignore[arg-type]
    if outcome.signed:
        return (f"evidence: run {outcome.run_id} sealed ({files} files, #{seal['sequence']}, "
                f"{outcome.seal}) and signed by {outcome.fingerprint}")
    return (f"evidence: WARNING run {outcome.run_id} sealed UNSIGNED ({files} files, {outcome.seal}): "
            f"{why}; `hardening evidence verify` will reject it")


def _index(root: Path, run_dir: Path) -> list[str]:
    """Index the run (and any sealed run the store missed); the seal stands even if this fails."""
    try:
        with Store(root) as store:
            store.index_run(chain.load_sealed(run_dir))
            missed = store.catch_up()
    except sqlite3.Error as exc:
        return [f"evidence: WARNING history store {root / 'history.sqlite'} not updated ({exc}); "
                "the run is sealed and will be indexed by the next run"]
    return [f"evidence: indexed {len(missed)} earlier sealed run(s) the store had missed"] if missed else []


def after_run(run_dir: Path) -> list[str]:
    """Seal ``run_dir``, index it in the history store, write the fleet report, and return one
    human line per regression against each host's previous run (empty list: no regression).

    Notes about the seal (signed or UNSIGNED, store trouble) are printed to stderr.
    """
    outcome = seal_run(Path(run_dir))
    for note in outcome.notes:
        print(note, file=sys.stderr)
    return outcome.regressions
