"""The corpus of planted violations: one small script per non-compliant state.

Each ``tests/violations/<measure>/<slug>.sh`` breaks one thing the way a careless admin, a
package upgrade or an intruder would, on a deployed lab host, as root. Its header says what it
is and which checks must catch it::

    #!/bin/sh
    # what: a Match block re-enables root login for one network
    # by: admin | upgrade | intruder
    # fails: admin.root_login_ssh [more check ids]
    # host: container | vm
    # touches: sshd_config          (optional: never planted with another of the same tag)
    # order: last                   (optional: planted after the rest of its group, e.g. a state
    #                                that another planting's reload would undo)
    # needs: backup-target          (optional: profile data and lab hosts beyond the shipped
    #                                profiles' that the violation's checks need to be configured;
    #                                the corpus run on shipped profiles leaves these out, and the
    #                                measure's own lab test plants them where they are configured)
    set -eu
    ...

``tests/test_lab_violations.py`` plants them in groups (distinct target checks, distinct
``touches``), and asserts for each group: every named check fails, no other check changes its
verdict, and the next deploy repairs everything (a verify returns exactly the baseline).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

DIRECTORY = Path(__file__).parent
KEYS = ("what", "by", "fails", "host", "touches", "order", "needs")
REQUIRED = ("what", "by", "fails", "host")
BY = ("admin", "upgrade", "intruder")
HOSTS = ("container", "vm")
HEADER = re.compile(r"^#\s*([a-z]+):\s*(.*?)\s*$")
GROUP_SIZE = 8


class CorpusError(ValueError):
    """A violation file whose header is wrong: names the file and the key."""


@dataclass(frozen=True)
class Violation:
    id: str  # <measure>/<slug>
    path: Path
    what: str
    by: str
    fails: tuple[str, ...]
    host: str
    touches: str = ""
    last: bool = False
    needs: tuple[str, ...] = ()

    @property
    def measure(self) -> str:
        return self.id.split("/", 1)[0]

    def script(self) -> str:
        return self.path.read_text(encoding="utf-8")


def parse(path: Path, root: Path = DIRECTORY) -> Violation:
    """One violation file; a missing or wrong header key is a CorpusError naming file and key."""
    rel = path.relative_to(root)
    if len(rel.parts) != 2 or path.suffix != ".sh":
        raise CorpusError(f"{path}: expected tests/violations/<measure>/<slug>.sh")
    fields: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        if not line.startswith("#"):
            break
        match = HEADER.match(line)
        if match and match.group(1) in KEYS:
            if match.group(1) in fields:
                raise CorpusError(f"{path}: key {match.group(1)!r} given twice")
            fields[match.group(1)] = match.group(2)
    for key in REQUIRED:
        if not fields.get(key):
            raise CorpusError(f"{path}: header key {key!r} missing (expected '# {key}: ...')")
    if fields["by"] not in BY:
        raise CorpusError(f"{path}: key 'by' is {fields['by']!r}, expected one of {', '.join(BY)}")
    if fields["host"] not in HOSTS:
        raise CorpusError(f"{path}: key 'host' is {fields['host']!r}, expected one of {', '.join(HOSTS)}")
    if fields.get("order", "last") != "last":
        raise CorpusError(f"{path}: key 'order' is {fields['order']!r}, expected 'last'")
    fails = tuple(fields["fails"].split())
    for check in fails:
        if not re.fullmatch(r"[a-z_]+\.[a-z0-9_]+", check):
            raise CorpusError(f"{path}: key 'fails' names {check!r}, expected <measure>.<check>")
    return Violation(id=f"{rel.parts[0]}/{path.stem}", path=path, what=fields["what"], by=fields["by"],
                     fails=fails, host=fields["host"], touches=fields.get("touches", ""),
                     last="order" in fields, needs=tuple(fields.get("needs", "").split()))


def load(root: Path = DIRECTORY) -> list[Violation]:
    """Every violation of the corpus, sorted by id."""
    return sorted((parse(p, root) for p in root.glob("*/*.sh")), key=lambda v: v.id)


def select(violations: list[Violation], patterns: str) -> list[Violation]:
    """Those whose id matches one of the comma-separated glob patterns (all when empty)."""
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    if not wanted:
        return violations
    return [v for v in violations if any(fnmatch.fnmatchcase(v.id, p) for p in wanted)]


def groups(violations: list[Violation], alone: bool = False,
           size: int = GROUP_SIZE) -> list[tuple[str, list[Violation]]]:
    """Plantings per host kind, first fit: a group never holds two violations that target the
    same check or touch the same thing, so each changed verdict has one cause."""
    out: list[tuple[str, list[Violation]]] = []
    for kind in HOSTS:
        packed: list[list[Violation]] = []
        for violation in (v for v in violations if v.host == kind):
            home = None if alone else next((g for g in packed if len(g) < size and _fits(g, violation)), None)
            if home is None:
                packed.append([violation])
            else:
                home.append(violation)
        out += [(f"{kind}-{i + 1}", group) for i, group in enumerate(packed)]
    return out


def planting_order(group: list[Violation]) -> list[Violation]:
    """The group as it is planted: those marked ``order: last`` after the others."""
    return sorted(group, key=lambda v: v.last)


def _fits(group: list[Violation], violation: Violation) -> bool:
    checks = {c for v in group for c in v.fails}
    tags = {v.touches for v in group if v.touches}
    return not checks & set(violation.fails) and not (violation.touches and violation.touches in tags)
