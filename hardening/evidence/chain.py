"""The seal of a run and the chain of seals: what makes evidence tamper-evident from files alone.

A sealed run directory holds ``seal.json`` (schema ``hardening.seal/1``) and, when a signing key
exists, ``seal.sig``. The seal lists the sha256 of every file of the run (the exact bytes on disk),
a run ``sequence`` number, the hash of the previous run's ``seal.json`` (the run chain), and per
host the hash of the seal of that host's previous run (the host chain). ``seal.sig`` is an Ed25519
signature over the exact bytes of ``seal.json``. A pruned run keeps its seal and gets a
``pruned.json`` note, so the chain stays verifiable after its documents are deleted.

The SQLite store is an index: everything here is checked from files; the store is only compared.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hardening.evidence import keys as keymod
from hardening.evidence.model import SCHEMAS
from hardening.files import write_atomic

SEAL_SCHEMA = "hardening.seal/1"
SEAL = "seal.json"
SIG = "seal.sig"
PRUNED = "pruned.json"
INDEX = "index.json"
UNSEALED_FILES = {SEAL, SIG, PRUNED}
DEFAULT_RETENTION_DAYS = 1825


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# -- reading runs -------------------------------------------------------------------------------

def is_run_dir(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".") and (
        (path / INDEX).exists() or (path / SEAL).exists())


def run_dirs(root: Path) -> list[Path]:
    """Run directories under an evidence root, by name (run ids sort by time)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if is_run_dir(p))


_memo: dict[tuple[str, int, int], Any] | None = None


@contextmanager
def memo() -> Iterator[None]:
    """Within the block, each unchanged JSON file is parsed once (sealing reads every document
    for the diff, the report, the seal and the store). Callers must not modify what they get."""
    global _memo
    outer, _memo = _memo, _memo if _memo is not None else {}
    try:
        yield
    finally:
        _memo = outer


def read_json(path: Path) -> Any:
    if _memo is None:
        return json.loads(path.read_text(encoding="utf-8"))
    info = path.stat()
    key = (str(path.resolve()), info.st_mtime_ns, info.st_size)
    if key not in _memo:
        _memo[key] = json.loads(path.read_text(encoding="utf-8"))
    return _memo[key]


def host_documents(run_dir: Path) -> dict[str, str]:
    """Host name -> document file name, from index.json (or the documents themselves)."""
    out: dict[str, str] = {}
    if (run_dir / INDEX).exists():
        for host in read_json(run_dir / INDEX).get("hosts", []):
            out[str(host["name"])] = host.get("json") or ""
        return out
    for path in sorted(run_dir.glob("*.json")):
        if path.name in UNSEALED_FILES:
            continue
        doc = read_json(path)
        if isinstance(doc, dict) and doc.get("schema") in SCHEMAS:
            out[str(doc["host"]["name"])] = path.name
    return out


def retention_days(doc: dict[str, Any] | None) -> int:
    """The retention period a host document asks for (profile.resolved.evidence.retention_days)."""
    try:
        return int(doc["profile"]["resolved"]["evidence"]["retention_days"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return DEFAULT_RETENTION_DAYS


def file_kind(name: str, documents: Iterable[str]) -> str:
    if name == INDEX:
        return "index"
    if name in set(documents):
        return "document"
    if name.startswith("fleet."):
        return "report"
    if name.endswith(".html"):
        return "page"
    return "file"


# -- sealed runs --------------------------------------------------------------------------------

@dataclass
class Sealed:
    """A run directory with a readable seal."""

    dir: Path
    seal: dict[str, Any]
    digest: str  # sha256 of seal.json's bytes

    @property
    def run_id(self) -> str:
        return str(self.seal.get("run_id"))

    @property
    def sequence(self) -> int:
        return int(self.seal.get("sequence", 0))

    @property
    def started(self) -> dt.datetime | None:
        return parse_time(self.seal.get("started")) or parse_time(self.seal.get("sealed_at"))

    @property
    def pruned(self) -> bool:
        return (self.dir / PRUNED).exists()


def load_sealed(run_dir: Path) -> Sealed:
    data = (run_dir / SEAL).read_bytes()
    return Sealed(run_dir, json.loads(data), sha256_bytes(data))


def sealed_runs(root: Path, exclude: Path | None = None) -> list[Sealed]:
    """Every readable seal under root, in chain order (sequence)."""
    out = []
    for run_dir in run_dirs(root):
        if exclude is not None and run_dir.resolve() == exclude.resolve():
            continue
        if (run_dir / SEAL).exists():
            try:
                out.append(load_sealed(run_dir))
            except (ValueError, OSError):
                continue
    return sorted(out, key=lambda s: (s.sequence, s.run_id))


def build_seal(run_dir: Path, previous: list[Sealed], key: keymod.SigningKey | None) -> dict[str, Any]:
    """The seal of ``run_dir``, chained to the ``previous`` seals (in chain order)."""
    documents = host_documents(run_dir)
    index = read_json(run_dir / INDEX) if (run_dir / INDEX).exists() else {}
    files = {}
    for path in sorted(run_dir.iterdir()):
        if path.is_file() and path.name not in UNSEALED_FILES and not path.name.startswith("."):
            files[path.name] = {"sha256": sha256_file(path), "size": path.stat().st_size,
                                "kind": file_kind(path.name, documents.values())}
    head = previous[-1] if previous else None
    docs = {name: load_document(run_dir, doc_name) for name, doc_name in documents.items()}
    by_profile = _retention_by_profile(docs)
    hosts: dict[str, dict[str, Any]] = {}
    for name, doc_name in sorted(documents.items()):
        doc = docs[name]
        last = next((s for s in reversed(previous) if name in s.seal.get("hosts", {})), None)
        listed = _index_entry(index, name)
        hosts[name] = {
            "document": doc_name or None,
            "sha256": files[doc_name]["sha256"] if doc_name in files else None,
            "verdict": doc.get("verdict") if doc else listed.get("verdict"),
            "retention_days": retention_days(doc) if doc else int(listed.get("retention_days") or by_profile.get(
                str(listed.get("profile")), DEFAULT_RETENTION_DAYS)),
            "previous": {"run_id": last.run_id, "seal": last.digest} if last else None,
        }
    return {
        "schema": SEAL_SCHEMA,
        "run_id": run_dir.name,
        "sequence": head.sequence + 1 if head else 1,
        "sealed_at": now().isoformat(timespec="seconds"),
        "started": index.get("started"),
        "finished": index.get("finished"),
        "tool_version": index.get("tool_version"),
        "previous": {"run_id": head.run_id, "sequence": head.sequence, "seal": head.digest} if head else None,
        "retention_days": max((int(h["retention_days"]) for h in hosts.values()),
                              default=DEFAULT_RETENTION_DAYS),
        "files": files,
        "hosts": hosts,
        "key": None if key is None else {"algorithm": keymod.ALGORITHM, "fingerprint": key.fingerprint,
                                         "public": keymod.public_b64(key.public)},
    }


def load_document(run_dir: Path, name: str) -> dict[str, Any] | None:
    """A host document, or None when it is missing or unreadable (its bytes are sealed anyway)."""
    if not name or not (run_dir / name).exists():
        return None
    try:
        doc = read_json(run_dir / name)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _index_entry(index: dict[str, Any], name: str) -> dict[str, Any]:
    return next((h for h in index.get("hosts", []) if h.get("name") == name), {})


def _retention_by_profile(docs: dict[str, dict[str, Any] | None]) -> dict[str, int]:
    """Profile name -> longest retention among this run's documents of that profile: for runs
    written before plans, whose index did not carry a host's retention, a host without a
    document takes its profile's peers' retention."""
    out: dict[str, int] = {}
    for doc in docs.values():
        name = ((doc or {}).get("profile") or {}).get("name")
        if name:
            out[name] = max(out.get(name, 0), retention_days(doc))
    return out


def write_seal(run_dir: Path, seal: dict[str, Any], key: keymod.SigningKey | None) -> str:
    """Write seal.sig (if signing) then seal.json; returns the seal's digest."""
    data = (json.dumps(seal, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode()
    if key is not None:
        sig = {"algorithm": keymod.ALGORITHM, "fingerprint": key.fingerprint,
               "public": keymod.public_b64(key.public), "signature": key.sign(data),
               "signed": SEAL}
        write_atomic(run_dir / SIG, (json.dumps(sig, indent=1) + "\n").encode())
    write_atomic(run_dir / SEAL, data)
    return sha256_bytes(data)


# -- verification -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """One thing wrong with the evidence: ``kind`` says what, ``where`` says which file or run."""

    kind: str
    where: str
    detail: str
    fatal: bool = True

    def line(self) -> str:
        label = "TAMPERED" if self.fatal else "warning"
        return f"{label} [{self.kind}] {self.where}: {self.detail}"


@dataclass
class Report:
    runs: int = 0
    files: int = 0
    signed: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.fatal for f in self.findings)

    def add(self, kind: str, where: Path | str, detail: str, fatal: bool = True) -> None:
        self.findings.append(Finding(kind, str(where), detail, fatal))


@dataclass
class Policy:
    trusted: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    allow_unsigned: bool = False
    at: dt.datetime = field(default_factory=now)


def verify_files(sealed: Sealed, report: Report) -> None:
    """Every sealed file present with its exact bytes, and nothing added."""
    listed: dict[str, Any] = sealed.seal.get("files", {})
    pruned = sealed.pruned
    for name, entry in sorted(listed.items()):
        path = sealed.dir / name
        if not path.exists():
            if not pruned:
                report.add("removed", path, f"sealed {entry.get('kind', 'file')} is missing "
                           f"(was {entry.get('sha256')})")
            continue
        report.files += 1
        actual = sha256_file(path)
        if actual != entry.get("sha256"):
            report.add("changed", path, f"content differs from the seal: sealed {entry.get('sha256')}, "
                       f"found {actual} ({path.stat().st_size} bytes, sealed {entry.get('size')})")
    for path in sorted(sealed.dir.iterdir()):
        if path.name in UNSEALED_FILES or path.name.startswith(".") or path.name in listed:
            continue
        report.add("inserted", path, "file not in the seal (added after the run was sealed)")


def verify_signature(sealed: Sealed, report: Report, policy: Policy) -> None:
    where = sealed.dir / SEAL
    declared = sealed.seal.get("key")
    sig_path = sealed.dir / SIG
    if not declared:
        report.add("unsigned", where, "run sealed without a signature: its hashes prove integrity only "
                   "against accidents, not against someone who can rewrite the seal "
                   "(make a key: hardening keys init)", fatal=not policy.allow_unsigned)
        return
    if not sig_path.exists():
        report.add("signature-removed", sig_path, f"seal declares key {declared.get('fingerprint')} "
                   "but seal.sig is missing")
        return
    try:
        sig = read_json(sig_path)
        embedded = keymod.public_from_b64(str(declared.get("public")))
    except (ValueError, OSError) as exc:
        report.add("signature", sig_path, f"unreadable signature or key: {exc}")
        return
    fp = str(declared.get("fingerprint"))
    if keymod.fingerprint(embedded) != fp or sig.get("fingerprint") != fp:
        report.add("signature", sig_path, "key fingerprint in seal.sig/seal.json does not match the key")
        return
    if policy.trusted and fp not in policy.trusted:
        report.add("untrusted-key", sig_path, f"signed by {fp}, which is not a trusted key "
                   f"(trusted: {', '.join(sorted(policy.trusted))})")
        return
    public = policy.trusted.get(fp, embedded)
    data = (sealed.dir / SEAL).read_bytes()
    if not keymod.verify_signature(public, data, str(sig.get("signature", ""))):
        report.add("forged-signature", sig_path, f"Ed25519 signature by {fp} does not match seal.json: "
                   "the seal was changed or the signature forged")
        return
    report.signed += 1
    if not policy.trusted and not any(f.kind == "no-trusted-key" for f in report.findings):
        report.add("no-trusted-key", sig_path, f"signatures checked with the key in each seal ({fp} …) "
                   "but no trusted key was given to compare it with (--key or the key directory)",
                   fatal=False)


def verify_run(sealed: Sealed, report: Report, policy: Policy) -> None:
    """One run on its own: its name, its signature, its files, its retention if pruned."""
    report.runs += 1
    if sealed.seal.get("schema") != SEAL_SCHEMA:
        report.add("seal", sealed.dir / SEAL, f"not a {SEAL_SCHEMA} seal")
        return
    if sealed.run_id != sealed.dir.name:
        report.add("reordered", sealed.dir, f"directory holds the seal of run {sealed.run_id}: runs were "
                   "renamed or moved")
    verify_signature(sealed, report, policy)
    verify_files(sealed, report)
    if sealed.pruned:
        verify_pruned(sealed, report, policy)


def verify_pruned(sealed: Sealed, report: Report, policy: Policy) -> None:
    started = sealed.started
    try:
        note = read_json(sealed.dir / PRUNED)
        pruned_at = parse_time(note.get("pruned_at"))
    except (ValueError, OSError):
        pruned_at = None
    days = int(sealed.seal.get("retention_days", DEFAULT_RETENTION_DAYS))
    if started is None or pruned_at is None or pruned_at > policy.at:
        report.add("removed", sealed.dir / PRUNED, "run marked pruned without a valid pruning date")
    elif pruned_at - started < dt.timedelta(days=days):
        report.add("removed", sealed.dir, f"documents deleted {(pruned_at - started).days} days after the "
                   f"run, before its retention period of {days} days")


def verify_chain(seals: list[Sealed], report: Report) -> None:
    """The run chain (sequence, previous seal) and each host's chain, in sequence order."""
    last_of_host: dict[str, Sealed] = {}
    previous: Sealed | None = None
    for sealed in seals:
        linked = _link(previous, sealed, report)
        for host, entry in sorted(sealed.seal.get("hosts", {}).items()):
            if linked:  # a broken run link already explains a broken host link
                _host_link(host, last_of_host.get(host), entry.get("previous"), sealed, report)
            last_of_host[host] = sealed
        previous = sealed


def _link(previous: Sealed | None, sealed: Sealed, report: Report) -> bool:
    """Check the run link from ``previous`` to ``sealed``; False when it is broken."""
    declared = sealed.seal.get("previous")
    where = sealed.dir / SEAL
    before = len(report.findings)
    if previous is None:
        if declared is not None or sealed.sequence != 1:
            report.add("run-removed", where, f"first run found is #{sealed.sequence}; it follows run "
                       f"{(declared or {}).get('run_id')}, which is missing")
    elif sealed.sequence == previous.sequence:
        report.add("inserted", where, f"run #{sealed.sequence} appears twice ({previous.dir.name}, "
                   f"{sealed.dir.name}): a run was copied or inserted")
    elif declared is None:
        report.add("inserted", where, "seal starts a new chain in the middle of the history")
    elif sealed.sequence != previous.sequence + 1:
        gap = range(previous.sequence + 1, sealed.sequence)
        which = f"run #{gap[0]} is" if len(gap) == 1 else f"runs #{gap[0]}…#{gap[-1]} are"
        report.add("run-removed", where, f"{which} missing between {previous.run_id} and "
                   f"{sealed.run_id} (this run's previous run was {declared.get('run_id')})")
    elif declared.get("seal") != previous.digest:
        report.add("chain-broken", where, f"previous seal should be {declared.get('run_id')} "
                   f"{declared.get('seal')}, found {previous.run_id} {previous.digest}")
    else:
        _order(previous, sealed, report)
    return len(report.findings) == before


def _order(previous: Sealed, sealed: Sealed, report: Report) -> None:
    """Seals are made one at a time, so their times only go forward along the chain. (Run ids may
    not: two runs started at once are sealed in the order they finish.) A signed seal's time cannot
    be changed, so going backwards means the clock did: a warning."""
    a, b = (parse_time(s.seal.get("sealed_at")) for s in (previous, sealed))
    if a and b and b < a:
        report.add("clock", sealed.dir / SEAL, f"run #{sealed.sequence} was sealed at {b.isoformat()}, "
                   f"before run #{previous.sequence} ({a.isoformat()}): did the clock go back?", fatal=False)


def _host_link(host: str, last: Sealed | None, declared: dict[str, Any] | None, sealed: Sealed,
               report: Report) -> None:
    where = f"{sealed.dir / SEAL} host {host}"
    if last is None and declared is not None:
        report.add("run-removed", where, f"previous run {declared.get('run_id')} of this host is missing")
    elif last is not None and declared is None:
        report.add("chain-broken", where, f"host chain restarts although run {last.run_id} has this host")
    elif last is not None and declared is not None and (
            declared.get("seal") != last.digest or declared.get("run_id") != last.run_id):
        report.add("chain-broken", where, f"host's previous run should be {declared.get('run_id')} "
                   f"({declared.get('seal')}), found {last.run_id} ({last.digest})")


def verify_tree(root: Path, policy: Policy, indexed: dict[str, str] | None = None) -> Report:
    """Verify every run under an evidence root, the chains, and (if given) the store's index."""
    report = Report()
    seals = []
    for run_dir in run_dirs(root):
        if not (run_dir / SEAL).exists():
            report.add("unsealed", run_dir, "run has no seal: a run that crashed before sealing, or "
                       "one inserted by hand")
            continue
        try:
            seals.append(load_sealed(run_dir))
        except (ValueError, OSError) as exc:
            report.add("seal", run_dir / SEAL, f"unreadable seal: {exc}")
    seals.sort(key=lambda s: (s.sequence, s.run_id))
    for sealed in seals:
        verify_run(sealed, report, policy)
    verify_chain(seals, report)
    if indexed is not None:
        compare_index(seals, indexed, report, root)
    return report


def compare_index(seals: list[Sealed], indexed: dict[str, str], report: Report, root: Path) -> None:
    """The store knows every sealed run: a run it indexed but the files lack was removed."""
    on_disk = {s.run_id: s.digest for s in seals}
    for run_id, digest in sorted(indexed.items()):
        if run_id not in on_disk:
            report.add("run-removed", root / run_id, "run is in history.sqlite but its directory "
                       "and seal are gone")
        elif on_disk[run_id] != digest:
            report.add("chain-broken", root / run_id / SEAL, f"seal differs from the one indexed "
                       f"when the run was sealed ({digest})")


def verify_single(run_dir: Path, policy: Policy) -> Report:
    """One run and its link to the run before it (if that one is beside it)."""
    report = Report()
    if not (run_dir / SEAL).exists():
        report.add("unsealed", run_dir, "run has no seal")
        return report
    sealed = load_sealed(run_dir)
    verify_run(sealed, report, policy)
    declared = sealed.seal.get("previous")
    if declared:
        prev_dir = run_dir.parent / str(declared.get("run_id"))
        if not (prev_dir / SEAL).exists():
            report.add("run-removed", prev_dir, f"previous run of {sealed.run_id} is missing")
        elif load_sealed(prev_dir).digest != declared.get("seal"):
            report.add("chain-broken", prev_dir / SEAL, f"seal differs from the one {sealed.run_id} "
                       "was chained to")
    return report
