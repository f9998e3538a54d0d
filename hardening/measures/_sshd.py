"""sshd drop-ins shared by the measures admin, timeouts, terminal and encryption (pure functions).

Each measure owns one drop-in, ``/etc/ssh/sshd_config.d/10-hardening-<measure>.conf``. Debian 12's
``/etc/ssh/sshd_config`` includes ``sshd_config.d/*.conf`` at its top and sshd keeps the FIRST
value it reads for a keyword, so a name starting with ``10-`` wins over later drop-ins such as
``50-cloud-init.conf`` and over the main file.

The deploy side (``deploys/_sshd.py``) writes the text rendered here; the check side reads the
effective configuration with ``sshd -T`` and parses it with :func:`parse_effective`. Plain
``sshd -T`` (OpenSSH 9.2) prints the global values and does not evaluate ``Match`` blocks; our
drop-ins hold none. The root-login check also asks ``sshd -T -C user=root,...`` so that a
``Match User root`` elsewhere cannot hide.
"""

from __future__ import annotations

import re
from typing import Protocol

DROPIN_DIR = "/etc/ssh/sshd_config.d"
# A keyword and its values may hold no whitespace, quotes, '#' or newlines: a value with a newline
# could smuggle another directive into the drop-in.
KEYWORD = re.compile(r"^[A-Za-z]+$")
TOKEN = re.compile(r"^[A-Za-z0-9@._+:*?!/-]+$")


def dropin_path(measure: str) -> str:
    """Where the measure's sshd drop-in lives."""
    return f"{DROPIN_DIR}/10-hardening-{measure}.conf"


def check_token(value: str) -> str:
    """Refuse a value that is not one plain sshd token (ValueError)."""
    if not TOKEN.fullmatch(value):
        raise ValueError(f"not a plain sshd_config token: {value!r}")
    return value


def render(measure: str, clauses: str, directives: dict[str, str | list[str]]) -> str:
    """The drop-in text; list values are joined as sshd expects (``Ciphers`` with commas,
    ``AllowGroups`` with spaces: pass them already joined where order matters)."""
    lines = [f"# Managed by hardening ({measure}, {clauses}). Changes here are overwritten.",
             "# First match wins in sshd: this file sorts before the other drop-ins."]
    for key, value in directives.items():
        if not KEYWORD.fullmatch(key):
            raise ValueError(f"not an sshd_config keyword: {key!r}")
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ValueError(f"{key}: empty value")
        for item in values:
            for token in item.split(","):
                check_token(token)
        lines.append(f"{key} {' '.join(values)}")
    return "\n".join(lines) + "\n"


def parse_effective(text: str) -> dict[str, list[str]]:
    """``sshd -T`` output as keyword (lower case) -> values; repeated keywords accumulate
    (sshd -T prints one ``allowgroups`` line per group)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            out.setdefault(key.lower(), []).append(value.strip())
    return out


class RunResult(Protocol):
    rc: int
    stdout: str
    stderr: str


SSHD_T = "sshd -T"
# With -C, sshd also evaluates Match blocks for that connection (here: root from the host itself).
SSHD_T_ROOT = "sshd -T -C user=root,host=localhost,addr=127.0.0.1"


def effective(result: RunResult) -> tuple[dict[str, list[str]] | None, str]:
    """The parsed result of ``sshd -T``, or None and why it could not be read."""
    if result.rc == 127:
        return None, "sshd is not installed (sshd -T: command not found)"
    if result.rc != 0:
        why = (result.stderr or result.stdout).strip().splitlines()
        return None, f"sshd -T failed (exit {result.rc}): {why[-1] if why else 'no output'}"
    return parse_effective(result.stdout), ""
