"""encryption (6-10): disks holding personal data, swap, and SSH transport."""

from __future__ import annotations

from typing import Literal

from hardening.measures._base import Strict

Requirement = Literal["required", "optional"]


class Settings(Strict):
    root: Requirement = "optional"
    swap: Requirement = "optional"
    ssh_ciphers: list[str] = [
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
        "aes256-ctr",
        "aes192-ctr",
        "aes128-ctr",
    ]
    ssh_macs: list[str] = [
        "hmac-sha2-512-etm@openssh.com",
        "hmac-sha2-256-etm@openssh.com",
        "umac-128-etm@openssh.com",
    ]
