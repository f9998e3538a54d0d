"""auth (6-1, 6-2): authentication, password rules and access to personal-data paths."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hardening.measures._base import Strict


class PersonalDataPath(Strict):
    path: str = Field(pattern=r"^/")
    group: str
    mode: str = Field(default="0750", pattern=r"^0[0-7]{3}$")


class Settings(Strict):
    pass_min_len: int = Field(default=12, ge=8, le=128)
    pass_min_classes: int = Field(default=3, ge=1, le=4)
    pass_max_days: int = Field(default=365, ge=1)
    pass_min_days: int = Field(default=1, ge=0)
    pass_warn_age: int = Field(default=14, ge=0)
    faillock_deny: int = Field(default=5, ge=1)
    faillock_unlock_time: int = Field(default=900, ge=0)
    password_hash: Literal["yescrypt", "sha512"] = "yescrypt"
    personal_data: list[PersonalDataPath] = []
