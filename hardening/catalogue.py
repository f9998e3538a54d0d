"""The clause catalogue (hardening/data/clauses.yaml) and what covers each clause.

Coverage is read from the tree itself, so it cannot drift from the code:
- a clause has a *deploy* when one of its measures has ``deploys/NAME.py`` declaring the clause in
  ``CLAUSES = (...)``;
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

from hardening import ROOT
from hardening.errors import ConfigError

CATALOGUE = ROOT / "hardening" / "data" / "clauses.yaml"
Kind = Literal["tech", "ops", "manual"]


class Clause(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[67]-[0-9]{1,2}$")
    heading_ja: str
    text_ja: str
    summary_en: str
    kind: list[Kind] = Field(min_length=1)
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


def deploy_clauses(path: Path) -> tuple[str, ...]:
    """The ``CLAUSES`` tuple a deploy module declares (read by AST, without importing pyinfra)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CLAUSES"
                                                 for t in node.targets)):
            value = ast.literal_eval(node.value)
            if isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
                return tuple(value)
            break
    raise ConfigError(str(path), "a deploy module must declare CLAUSES = (\"6-x\", ...)", key="CLAUSES")


@dataclass
class Coverage:
    clause: Clause
    deploys: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    attestations: list[str] = field(default_factory=list)


def coverage(root: Path = ROOT, profiles_dir: Path | None = None) -> list[Coverage]:
    """Per clause, the deploys, checks and attestation items that cover it; validates every id."""
    from hardening.profiles import Profiles

    catalogue = load()
    rows = {c.id: Coverage(c) for c in catalogue.clauses}
    for path in sorted((root / "deploys").glob("*.py")):
        if path.name.startswith("_") or path.stem == "main":
            continue
        declared = deploy_clauses(path)
        require_known(declared, str(path), key="CLAUSES")
        for clause_id in declared:
            rows[clause_id].deploys.append(path.stem)
    for path in sorted((root / "checks").glob("test_*.py")):
        for test, ids in check_clauses(path).items():
            require_known(sorted(ids), str(path), key=test)
            for clause_id in ids:
                rows[clause_id].checks.append(f"{path.stem.removeprefix('test_')}.{test.removeprefix('test_')}")
    profiles = Profiles(profiles_dir or root / "hwprofiles")
    for name in profiles.names():
        for item in profiles.file(name).data.get("attestations") or []:
            ids = item.get("clauses", []) if isinstance(item, dict) else []
            require_known(ids, str(profiles.file(name).path), key=f"attestations.{item.get('id')}")
            for clause_id in ids:
                if item["id"] not in rows[clause_id].attestations:
                    rows[clause_id].attestations.append(item["id"])
    return list(rows.values())
