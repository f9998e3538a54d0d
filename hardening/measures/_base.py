from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Profile sections reject unknown keys so that a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_cidrs(values: list[str]) -> list[str]:
    for value in values:
        ipaddress.ip_network(value, strict=False)
    return values




@dataclass(frozen=True)
class Measure:
    """One measure, declared once in ``hardening/measures/NAME.py`` as ``MEASURE = Measure(...)``.

    Everything else is derived from these objects: the catalogue's measure lists, the deploy
    order, the CLI's choices, ``hardening clauses`` and ``docs/measures.md``.

    * ``name``: the one name of ``deploys/NAME.py``, ``checks/test_NAME.py``, ``measures.NAME``.
    * ``clauses``: the guideline clauses it implements (ids of the catalogue).
    * ``order``: its place in the deploy (lower first: packages before the changes that can
      lock the tool out, which go last so that their rollback leaves nothing half-applied).
    * ``settings``: its section of a hardware profile; the field defaults are the baseline.
    * ``observe``: the commands its checks and its deploy read, from the resolved profile; they
      run in one batch per host (hardening.observe).
    * ``no_deploy``: why it has no deploy, when that is on purpose (checks only).
    """

    name: str
    title: str
    clauses: tuple[str, ...]
    order: int
    settings: type[Strict]
    observe: Callable[[Any], list[str]]
    no_deploy: str = ""

    @property
    def deployable(self) -> bool:
        return not self.no_deploy
