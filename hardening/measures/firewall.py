"""firewall (6-7): default-deny inbound with the profile's allow-list."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from hardening.measures._base import Strict, check_cidrs


class Rule(Strict):
    name: str
    proto: Literal["tcp", "udp"] = "tcp"
    port: int = Field(ge=1, le=65535)
    # Empty means from anywhere; "management" stands for the profile's management networks.
    sources: list[str] = []


class Settings(Strict):
    enabled: bool = True
    input_policy: Literal["drop"] = "drop"
    management_networks: list[str] = ["127.0.0.0/8"]
    ssh_port: int = Field(default=22, ge=1, le=65535)
    allow: list[Rule] = []
    forwarding: bool = False
    confirm_timeout: int = Field(default=60, ge=5, le=3600)

    @field_validator("management_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return check_cidrs(value)
