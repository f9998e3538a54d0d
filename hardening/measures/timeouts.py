"""timeouts (6-15): log off idle sessions so third parties cannot read the screen."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hardening.measures._base import Strict


class Settings(Strict):
    shell_tmout: int = Field(default=900, ge=60)
    ssh_client_alive_interval: int = Field(default=300, ge=1)
    ssh_client_alive_count_max: int = Field(default=1, ge=0)
    logind_idle_action: Literal["lock", "suspend", "poweroff", "ignore"] = "lock"
    logind_idle_action_sec: int = Field(default=900, ge=60)
    screen_lock_delay: int = Field(default=300, ge=0)
