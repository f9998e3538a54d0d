"""admin (6-6): least administrator privilege.

Desired state: sudo only for the profile's admin group, through ``/etc/sudoers.d/hardening-admin``
(root:root 0440, validated with ``visudo -cf`` before it goes live) holding ``Defaults use_pty``,
``Defaults logfile=...``, the admin group's rule and one NOPASSWD rule per documented exception
(the deploy account); root login over SSH per the profile (sshd drop-in); root's password locked.

The deploy never edits other sudoers files: a rule elsewhere that grants ALL outside the admin
group, or a blanket NOPASSWD outside the exceptions, is reported by the check for a person to
remove.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from hardening.measures import _sshd
from hardening.measures._base import Measure, Strict

SUDOERS_PATH = "/etc/sudoers.d/hardening-admin"
NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
LOGFILE = re.compile(r"^/[A-Za-z0-9._/-]+$")


class Settings(Strict):
    admin_group: str = "sudo"
    # Accounts allowed NOPASSWD sudo, each an explicit, documented exception (the deploy account).
    nopasswd_exceptions: list[str] = Field(default_factory=list)
    sudo_logfile: str = "/var/log/sudo.log"
    permit_root_login: Literal["no", "prohibit-password"] = "no"
    root_locked: bool = True

    @field_validator("admin_group")
    @classmethod
    def _group(cls, value: str) -> str:
        return check_name(value)

    @field_validator("nopasswd_exceptions")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        return [check_name(v) for v in value]

    @field_validator("sudo_logfile")
    @classmethod
    def _logfile(cls, value: str) -> str:
        if not LOGFILE.fullmatch(value) or "/../" in value:
            raise ValueError(f"expected an absolute path without spaces or quotes, got {value!r}")
        return value


def check_name(value: str) -> str:
    """A user or group name as Debian's adduser accepts it (no spaces, no sudoers syntax)."""
    if not NAME.fullmatch(value):
        raise ValueError(f"not a plain user or group name: {value!r}")
    return value


def sudoers(settings: Settings) -> str:
    """The content of /etc/sudoers.d/hardening-admin."""
    lines = [
        "# Managed by hardening (admin, 6-6). Changes here are overwritten.",
        "# Allocate a pseudo-terminal so a command cannot keep running after sudo returns.",
        "Defaults use_pty",
        "# Every sudo command is logged here, besides syslog.",
        f'Defaults logfile="{settings.sudo_logfile}"',
        "# Administrators: the profile's admin group, with their password.",
        f"%{check_name(settings.admin_group)} ALL=(ALL:ALL) ALL",
    ]
    for user in settings.nopasswd_exceptions:
        lines.append("# Documented exception in the profile (admin.nopasswd_exceptions): deploy account.")
        lines.append(f"{check_name(user)} ALL=(ALL:ALL) NOPASSWD: ALL")
    return "\n".join(lines) + "\n"


def sshd_directives(settings: Settings) -> dict[str, str | list[str]]:
    """The sshd keywords this measure owns."""
    return {"PermitRootLogin": settings.permit_root_login}


def sshd_dropin(settings: Settings) -> str:
    """The text of /etc/ssh/sshd_config.d/10-hardening-admin.conf."""
    return _sshd.render("admin", ", ".join(MEASURE.clauses), sshd_directives(settings))


def lockout_reason(settings: Settings, connecting_user: str) -> str | None:
    """Why applying the settings would lock the deploy out, or None."""
    if connecting_user == "root" and settings.permit_root_login == "no":
        return ("the deploy connects as root and the profile sets permit_root_login: no; "
                "connect as the deploy account with sudo instead")
    return None


# -- reading sudo's own view (checks) -----------------------------------------------------------

def parse_sudo_list(text: str) -> dict[str, list[str]]:
    """``sudo -l -U user`` output -> {"defaults": [...], "rules": [...]}.

    Defaults are the "Matching Defaults entries" (comma separated, may span lines); rules are the
    indented lines after "may run the following commands", e.g. ``(ALL : ALL) NOPASSWD: ALL``.
    """
    defaults: list[str] = []
    rules: list[str] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Matching Defaults entries"):
            section = "defaults"
        elif "may run the following commands" in line:
            section = "rules"
        elif not line:
            continue
        elif not raw[:1].isspace():
            section = ""
        elif section == "defaults":
            defaults.extend(_split_defaults(line))
        elif section == "rules":
            rules.append(line)
    return {"defaults": defaults, "rules": rules}


def _split_defaults(line: str) -> list[str]:
    parts: list[str] = []
    current = ""
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def is_blanket(rule: str) -> bool:
    """A rule whose command list is ALL (any command as the run-as user)."""
    commands = rule.split(")", 1)[-1]
    commands = re.sub(r"\b[A-Z_]+:", "", commands)  # tags: NOPASSWD:, SETENV: ...
    return any(c.strip() == "ALL" for c in commands.split(","))


def is_nopasswd_blanket(rule: str) -> bool:
    """A blanket rule that asks no password."""
    return "NOPASSWD:" in rule and is_blanket(rule)


def violations(users: dict[str, dict[str, list[str]]], admins: set[str],
               settings: Settings) -> dict[str, list[str]]:
    """Per user, what breaks the measure: blanket rights outside the admin group (root and the
    documented exceptions excepted), blanket NOPASSWD or ``!authenticate`` outside the
    exceptions."""
    out: dict[str, list[str]] = {}
    exceptions = set(settings.nopasswd_exceptions)
    for user, listing in sorted(users.items()):
        found: list[str] = []
        allowed = user == "root" or user in admins or user in exceptions
        for rule in listing["rules"]:
            if is_blanket(rule) and not allowed:
                found.append(f"ALL rights outside group {settings.admin_group}: {rule}")
            if is_nopasswd_blanket(rule) and user not in exceptions:
                found.append(f"blanket NOPASSWD outside the exceptions: {rule}")
        if "!authenticate" in listing["defaults"] and listing["rules"] and user not in exceptions:
            found.append("Defaults !authenticate: sudo asks no password")
        if found:
            out[user] = found
    return out


def logging_defaults(settings: Settings) -> dict[str, str]:
    """The Defaults a user's ``sudo -l`` must show (as sudo prints them)."""
    return {"use_pty": "use_pty", "logfile": f"logfile={settings.sudo_logfile}"}


def missing_defaults(defaults: list[str], settings: Settings) -> list[str]:
    """Which of the required Defaults are not in effect (the last setting of a flag wins)."""
    missing: list[str] = []
    pty = [d for d in defaults if d.lstrip("!") == "use_pty"]
    if not pty or pty[-1] != "use_pty":
        missing.append("use_pty")
    logs = [d.replace('"', "") for d in defaults if d.lstrip("!").startswith("logfile")]
    if not logs or logs[-1] != f"logfile={settings.sudo_logfile}":
        missing.append(f"logfile={settings.sudo_logfile}")
    return missing


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch."""
    return []


MEASURE = Measure(
    name="admin",
    title="least administrator privilege",
    clauses=('6-6',),
    order=50,
    settings=Settings,
    observe=observe,
)
