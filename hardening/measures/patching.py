"""patching (6-8): published vulnerabilities fixed, software kept up to date."""

from __future__ import annotations

from pydantic import Field

from hardening.measures._base import Strict


class Settings(Strict):
    unattended_upgrades: bool = True
    max_pending_security_updates: int = Field(default=0, ge=0)
    reboot_required_allowed: bool = False
