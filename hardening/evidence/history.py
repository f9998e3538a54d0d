"""The hook the verify runner calls once per run: seal, index, report, and find regressions.

``after_run(run_dir)`` is called by ``hardening verify`` after it wrote ``<host>.json``,
``<host>.html``, ``index.json`` and ``index.html`` into ``<evidence_root>/<run_id>/``. It

1. compares each host with its own previous sealed run (the regressions it returns),
2. writes the fleet report (``fleet.html``, ``fleet.csv``) into the run directory,
3. seals the run (``seal.json``: sha256 of every file, chained to the previous run and to each
   host's previous run) and signs the seal with the Ed25519 key if there is one (``seal.sig``),
4. indexes the run in ``<evidence_root>/history.sqlite`` (one transaction).

It returns the regressions, one line each, and after them its notes (sealed and signed, or
UNSIGNED, store trouble), each starting with ``note:``; the runner shows notes and turns the other
lines into exit code 4.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hardening.errors import HardeningError
from hardening.evidence import chain, diff, fleet
from hardening.evidence import keys as keymod
from hardening.evidence.store import Store
from hardening.files import write_atomic

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
    with locked(root), chain.memo():
        if (run_dir / chain.SEAL).exists():
            raise HardeningError(f"{run_dir}: already sealed")
        problems: list[str] = []
        diffs, regressions = _compare(root, run_dir, problems)
        _report(run_dir, problems)
        key, why = signing_key(key_dir)
        seal = chain.build_seal(run_dir, chain.sealed_runs(root, exclude=run_dir), key)
        digest = chain.write_seal(run_dir, seal, key)
        outcome = Outcome(run_dir.name, digest, key is not None, key.fingerprint if key else None,
                          regressions, diffs)
        outcome.notes.append(_sealed_note(outcome, seal, why))
        outcome.notes.extend(problems)
        outcome.notes.extend(_index(root, run_dir))
    return outcome


def _compare(root: Path, run_dir: Path, problems: list[str]) -> tuple[list[diff.HostDiff], list[str]]:
    """Regressions against each host's previous run; a broken earlier document must not stop
    the seal, so trouble becomes a note."""
    try:
        return diff.regressions_since_previous(root, run_dir)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problems.append(f"WARNING: regressions not computed ({type(exc).__name__}: {exc})")
        return [], []


def _report(run_dir: Path, problems: list[str]) -> None:
    try:
        fleet.write(run_dir)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problems.append(f"WARNING: fleet report not written ({type(exc).__name__}: {exc}); "
                        "the run is sealed without it")


def _sealed_note(outcome: Outcome, seal: dict[str, object], why: str | None) -> str:
    files = len(seal.get("files", {}))  # type: ignore[arg-type]
    if outcome.signed:
        return (f"run {outcome.run_id} sealed ({files} files, #{seal['sequence']}, "
                f"{outcome.seal}) and signed by {outcome.fingerprint}")
    return (f"WARNING: run {outcome.run_id} sealed UNSIGNED ({files} files, {outcome.seal}): "
            f"{why}; `hardening evidence verify` will reject it")


def _index(root: Path, run_dir: Path) -> list[str]:
    """Index the run (and any sealed run the store missed); the seal stands even if this fails."""
    try:
        with Store(root) as store:
            store.index_run(chain.load_sealed(run_dir))
            missed = store.catch_up()
            store.checkpoint()
    except sqlite3.Error as exc:
        return [f"WARNING: history store {root / 'history.sqlite'} not updated ({exc}); "
                "the run is sealed and will be indexed by the next run"]
    return [f"indexed {len(missed)} earlier sealed run(s) the store had missed"] if missed else []


def after_run(run_dir: Path) -> Outcome:
    """Seal ``run_dir``, index it in the history store and write the fleet report; the outcome
    carries one human line per regression against each host's previous run and the notes."""
    return seal_run(Path(run_dir))


# -- retention ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PruneDecision:
    run_id: str
    prune: bool
    reason: str


def run_retention_days(sealed: chain.Sealed) -> int:
    """The longest retention among the run's hosts: from the seal and from the documents still there."""
    days = [int(sealed.seal.get("retention_days", chain.DEFAULT_RETENTION_DAYS))]
    for entry in sealed.seal.get("hosts", {}).values():
        days.append(int(entry.get("retention_days") or chain.DEFAULT_RETENTION_DAYS))
        name = entry.get("document")
        if name and (sealed.dir / name).exists():
            try:
                days.append(chain.retention_days(chain.read_json(sealed.dir / name)))
            except (OSError, ValueError):
                days.append(chain.DEFAULT_RETENTION_DAYS)
    return max(days)


def plan_prune(root: Path, keep: int, at: dt.datetime | None = None) -> list[PruneDecision]:
    """Which sealed runs beyond the newest ``keep`` may go: only those older than their retention."""
    at = at or chain.now()
    live = [s for s in chain.sealed_runs(root) if not s.pruned]
    candidates = live[: max(0, len(live) - max(1, keep))]
    out = []
    for sealed in candidates:
        started = sealed.started
        days = run_retention_days(sealed)
        age = (at - started).days if started else -1
        if started is not None and at - started >= dt.timedelta(days=days):
            out.append(PruneDecision(sealed.run_id, True, f"{age} days old, retention {days} days"))
        else:
            out.append(PruneDecision(sealed.run_id, False, f"kept: {age} days old, younger than its "
                                     f"retention period of {days} days"))
    return out


def prune(root: Path, keep: int, dry_run: bool = False) -> list[PruneDecision]:
    """Delete the documents of expired runs beyond the newest ``keep``; their seals stay (the chain
    stays verifiable) with a ``pruned.json`` note, and the store keeps their summary rows."""
    with locked(root):
        decisions = plan_prune(root, keep)
        if dry_run:
            return decisions
        for decision in decisions:
            if decision.prune:
                _prune_one(root / decision.run_id)
    return decisions


def _prune_one(run_dir: Path) -> None:
    at = chain.now().isoformat(timespec="seconds")
    files = sorted(p.name for p in run_dir.iterdir() if p.is_file() and p.name not in chain.UNSEALED_FILES)
    note = {"pruned_at": at, "by": "hardening evidence prune", "files": files}
    write_atomic(run_dir / chain.PRUNED, (json.dumps(note, indent=1) + "\n").encode())
    for name in files:
        (run_dir / name).unlink()
    try:
        with Store(run_dir.parent) as store:
            store.mark_pruned(run_dir.name, at)
    except sqlite3.Error:
        pass  # the files say it is pruned; the store catches up on reindex
