"""admin (6-6): least administrator privilege."""

from __future__ import annotations

from typing import Literal

from hardening.measures._base import Strict


class Settings(Strict):
    admin_group: str = "sudo"
    # Accounts allowed NOPASSWD sudo, each an explicit, documented exception (the deploy account).
    nopasswd_exceptions: list[str] = []
    sudo_logfile: str = "/var/log/sudo.log"
    permit_root_login: Literal["no", "prohibit-password"] = "no"
    root_locked: bool = True
