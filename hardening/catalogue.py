"""The clause catalogue (hardening/data/clauses.yaml) and what covers each clause.

Coverage is read from the tree itself, so it cannot drift from the code:
- a clause's *measures* are the registered measures that declare it (hardening.measures);
- a clause has a *deploy* when one of those measures has one (``deploys/NAME.py``);
- a *check* when ``checks/test_NAME.py`` has a test marked ``@pytest.mark.clause("ID", ...)``;
- an *attestation* when a hardware profile defines an attestation item for the clause.
Any clause id named in a check, a deploy or a profile that is not in the catalogue is a load error.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hardening import CHECKS, DEPLOYS, HWPROFILES
from hardening.errors import ConfigError

CATALOGUE = Path(__file__).resolve().parent / "data" / "clauses.yaml"
Kind = Literal["tech", "ops", "manual"]


class Clause(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[67]-[0-9]{1,2}$")
    heading_ja: str
    text_ja: str
    summary_en: str
    kind: list[Kind] = Field(min_length=1)
    # Derived from the registry; a list given here must agree with it (a load error otherwise).
    measures: list[str] = []
    attestations: list[str] = []


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    guideline: str
    revision: str
    clauses: list[Clause]

    def ids(self) -> list[str]:
        return [c.id for c in self.clauses]

    def get(self, clause_id: str) -> Clause:
        for clause in self.clauses:
            if clause.id == clause_id:
                return clause
        raise KeyError(clause_id)


@cache
def load(path: Path = CATALOGUE) -> Catalogue:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), f"cannot read the catalogue: {exc}") from None
    try:
        catalogue = Catalogue.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(str(path), err["msg"], key=key) from None
    ids = catalogue.ids()
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(str(path), f"duplicate clause id {duplicates[0]}", key="clauses")
    return catalogue


def require_known(ids: list[str] | tuple[str, ...], source: str, key: str = "clause") -> None:
    known = set(load().ids())
    for clause_id in ids:
        if clause_id not in known:
            raise ConfigError(source, f"unknown clause id {clause_id!r}; the catalogue has 6-1 … 6-18 "
                              "and 7-1 … 7-5", key=key)


def check_clauses(path: Path) -> dict[str, set[str]]:
    """Per test function in a check module, the clause ids of its ``clause`` marks (read by AST)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            ids: set[str] = set()
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)
                        and deco.func.attr == "clause"):
                    for arg in deco.args:
                        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                            raise ConfigError(str(path), "clause ids must be string literals",
                                              key=f"line {deco.lineno}")
                        ids.add(arg.value)
            out[node.name] = ids
    return out


@dataclass
class Coverage:
    clause: Clause
    measures: list[str] = field(default_factory=list)
    deploys: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    attestations: list[str] = field(default_factory=list)


def coverage(root: Path | None = None, profiles_dir: Path | None = None) -> list[Coverage]:
    """Per clause, the deploys, checks and attestation items that cover it; validates every id.

    ``root`` holds ``checks/`` and ``deploys/`` (default: the shipped ones). Measures and their
    clauses come from the registry (hardening.measures), which is validated against the tree.
    """
    from hardening import measures
    from hardening.profiles import Profiles

    checks_dir = root / "checks" if root else CHECKS
    deploys_root = root if root else DEPLOYS.parent
    catalogue = load()
    rows = {c.id: Coverage(c) for c in catalogue.clauses}
    per_measure: dict[str, dict[str, set[str]]] = {}
    for path in sorted(checks_dir.glob("test_*.py")):
        tests = check_clauses(path)
        per_measure[path.stem.removeprefix("test_")] = tests
        for test, ids in tests.items():
            require_known(sorted(ids), str(path), key=test)
            for clause_id in ids:
                rows[clause_id].checks.append(f"{path.stem.removeprefix('test_')}.{test.removeprefix('test_')}")
    measures.validate(_tree(deploys_root, checks_dir), catalogue, per_measure)
    for measure in measures.all_measures():
        for clause_id in measure.clauses:
            rows[clause_id].measures.append(measure.name)
            if measure.deployable:
                rows[clause_id].deploys.append(measure.name)
    profiles = Profiles(profiles_dir or HWPROFILES)
    for name in profiles.names():
        for item in profiles.file(name).data.get("attestations") or []:
            ids = item.get("clauses", []) if isinstance(item, dict) else []
            require_known(ids, str(profiles.file(name).path), key=f"attestations.{item.get('id')}")
            for clause_id in ids:
                if item["id"] not in rows[clause_id].attestations:
                    rows[clause_id].attestations.append(item["id"])
    return list(rows.values())


def _tree(deploys_root: Path, checks_dir: Path) -> Path:
    """The directory whose deploys/ and checks/ the registry is validated against."""
    if checks_dir.parent != deploys_root:
        raise ConfigError(str(checks_dir), "checks/ and deploys/ must sit side by side")
    return deploys_root
