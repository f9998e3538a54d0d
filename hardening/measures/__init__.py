"""The measure registry: one module per measure, each declaring ``MEASURE = Measure(...)``.

A measure is named the same everywhere: ``hardening/measures/NAME.py`` declares it (settings,
clauses, deploy order, observations) next to the plain functions that compute its desired state
from the resolved profile; ``deploys/NAME.py`` enforces it and ``checks/test_NAME.py`` judges
it, both calling those functions; ``measures.NAME`` configures it in the hardware profiles.

The registry is the single source: the catalogue's measure lists, the deploy order, the CLI's
``-m`` choices, ``hardening clauses`` and ``docs/measures.md`` are derived from it, and
:func:`validate` makes any disagreement (an unknown clause, a missing deploy or check, a check
marked with a clause its measure does not declare) a load error that names both sides.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from hardening.errors import ConfigError
from hardening.measures._base import Measure

__all__ = ["MEASURES", "Measure", "all_measures", "deploy_order", "get", "module", "settings_model"]


@cache
def _registry() -> dict[str, Measure]:
    found: dict[str, Measure] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        declared = getattr(mod, "MEASURE", None)
        where = str(Path(__path__[0]) / f"{info.name}.py")
        if not isinstance(declared, Measure):
            raise ConfigError(where, "a measure module must declare MEASURE = Measure(...)", key="MEASURE")
        if declared.name != info.name:
            raise ConfigError(where, f"MEASURE.name is {declared.name!r}, expected the module's name "
                              f"{info.name!r}", key="MEASURE.name")
        found[info.name] = declared
    return found


def all_measures() -> list[Measure]:
    """Every registered measure, in deploy order."""
    return sorted(_registry().values(), key=lambda m: (m.order, m.name))


MEASURES: tuple[str, ...] = tuple(m.name for m in all_measures())


def get(name: str) -> Measure:
    try:
        return _registry()[name]
    except KeyError:
        raise KeyError(name) from None


def deploy_order() -> list[str]:
    """The measures that have a deploy, in the order they run."""
    return [m.name for m in all_measures() if m.deployable]


def module(name: str) -> ModuleType:
    get(name)
    return importlib.import_module(f"{__name__}.{name}")


def settings_model(name: str) -> type[BaseModel]:
    return get(name).settings


def clauses_of(name: str) -> tuple[str, ...]:
    return get(name).clauses


def measures_for(clause_id: str) -> list[str]:
    """The registered measures that implement a clause (the catalogue's derived measure list)."""
    return [m.name for m in all_measures() if clause_id in m.clauses]


def observations(profile: Any, names: list[str] | tuple[str, ...]) -> list[str]:
    """The commands the given measures read on a host with this resolved profile, each once."""
    from hardening.observe import unique

    commands: list[str] = []
    for name in names:
        commands += get(name).observe(profile)
    return unique(commands)


def validate(root: Path, catalogue: Any, check_clauses: dict[str, dict[str, set[str]]]) -> None:
    """Registry against the tree and the catalogue; raises ConfigError naming both sides.

    ``check_clauses``: per measure with a check module, per test, its clause ids.
    """
    known = set(catalogue.ids())
    here = Path(__path__[0])
    for measure in all_measures():
        source = str(here / f"{measure.name}.py")
        for clause_id in measure.clauses:
            if clause_id not in known:
                raise ConfigError(source, f"unknown clause id {clause_id!r}; the catalogue "
                                  f"(hardening/data/clauses.yaml) has 6-1 … 6-18 and 7-1 … 7-5",
                                  key="MEASURE.clauses")
        deploy = root / "deploys" / f"{measure.name}.py"
        if measure.deployable and not deploy.is_file():
            raise ConfigError(source, f"measure {measure.name!r} is registered with a deploy, but "
                              f"{deploy} does not exist (declare no_deploy='why' if that is on purpose)",
                              key="MEASURE")
        if not measure.deployable and deploy.is_file():
            raise ConfigError(source, f"measure {measure.name!r} declares no_deploy, but {deploy} exists",
                              key="MEASURE.no_deploy")
        if measure.name not in check_clauses:
            raise ConfigError(source, f"measure {measure.name!r} is registered, but "
                              f"{root / 'checks' / f'test_{measure.name}.py'} does not exist", key="MEASURE")
        for test, ids in check_clauses[measure.name].items():
            stray = sorted(set(ids) - set(measure.clauses))
            if stray:
                raise ConfigError(str(root / "checks" / f"test_{measure.name}.py"),
                                  f"marked with clause {stray[0]}, which measure {measure.name!r} does not "
                                  f"declare in {source} (MEASURE.clauses = {list(measure.clauses)})", key=test)
    registered = {m.name for m in all_measures()}
    for name in sorted(set(check_clauses) - registered):
        raise ConfigError(str(root / "checks" / f"test_{name}.py"),
                          f"checks for measure {name!r}, which no module in {here} registers", key="module")
    for path in sorted((root / "deploys").glob("*.py")):
        if not path.name.startswith("_") and path.stem not in ("main", "__init__") and path.stem not in registered:
            raise ConfigError(str(path), f"deploy for measure {path.stem!r}, which no module in {here} "
                              "registers", key="module")
    for clause in catalogue.clauses:
        for name in clause.measures:
            if name not in registered:
                raise ConfigError("hardening/data/clauses.yaml", f"names measure {name!r}, which no module "
                                  f"in {here} registers", key=f"clauses.{clause.id}.measures")
            if clause.id not in get(name).clauses:
                raise ConfigError("hardening/data/clauses.yaml", f"names measure {name!r}, whose MEASURE "
                                  f"does not declare clause {clause.id} ({here / f'{name}.py'})",
                                  key=f"clauses.{clause.id}.measures")
