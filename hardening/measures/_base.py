from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Profile sections reject unknown keys so that a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_cidrs(values: list[str]) -> list[str]:
    for value in values:
        ipaddress.ip_network(value, strict=False)
    return values


