"""Measures: one module per measure, named as everywhere else (deploys/NAME.py, checks/test_NAME.py).

Each module defines ``Settings`` (the measure's section of a hardware profile, a pydantic model
whose defaults are the baseline) and the plain functions that compute its desired state from
the resolved profile; the deploy and the check both call those functions.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from pydantic import BaseModel

MEASURES: tuple[str, ...] = (
    "auth",
    "admin",
    "firewall",
    "patching",
    "encryption",
    "usb",
    "terminal",
    "timeouts",
)


def module(name: str) -> ModuleType:
    if name not in MEASURES:
        raise KeyError(name)
    return importlib.import_module(f"hardening.measures.{name}")


def settings_model(name: str) -> type[BaseModel]:
    model: type[BaseModel] = module(name).Settings
    return model
