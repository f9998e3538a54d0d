"""terminal (6-12, 6-13, 6-14): limit the terminals that process personal data."""

from __future__ import annotations

from pydantic import field_validator

from hardening.measures._base import Strict, check_cidrs


class Settings(Strict):
    ssh_allow_groups: list[str] = ["sudo"]
    # Networks the host may appear on; a default route or address outside them is reported.
    expected_networks: list[str] = []
    match_asset_register: bool = True

    @field_validator("expected_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return check_cidrs(value)
