"""timeouts (6-15): log off idle sessions so third parties cannot read the screen.

Desired state, values from the profile's sensitivity level:

* shell: ``/etc/profile.d/hardening-timeouts.sh`` makes ``TMOUT`` readonly and exported in every
  login shell (bash, ksh and zsh log an idle interactive shell out; dash ignores TMOUT).
* sshd: ``ClientAliveInterval`` / ``ClientAliveCountMax`` in the measure's drop-in: a session whose
  client stops answering is closed after about interval x max seconds (CountMax 0 would disable
  the probes' effect, so the profile refuses it).
* logind: ``IdleAction`` / ``IdleActionSec`` in ``/etc/systemd/logind.conf.d/hardening-timeouts.conf``.
  systemd-logind reads it when it starts: the deploy does NOT restart systemd-logind (a restart
  can end running sessions); the setting takes effect at the next boot, or when an operator
  restarts systemd-logind in a maintenance window. The check reads the configuration as logind
  will read it (``systemd-analyze cat-config``) and records the value logind runs with now.
* desktop: where dconf is installed, the GNOME idle delay and screen lock in the system database
  ``local`` with the keys locked (``/etc/dconf/db/local.d/`` and ``locks/``, then ``dconf update``);
  without dconf there is no desktop to lock and the check is not applicable.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from hardening.measures import _sshd
from hardening.measures._base import Measure, Strict
from hardening.observe import quote

PROFILE_SCRIPT = "/etc/profile.d/hardening-timeouts.sh"
LOGIND_DROPIN = "/etc/systemd/logind.conf.d/hardening-timeouts.conf"
DCONF_PROFILE = "/etc/dconf/profile/user"
DCONF_KEYFILE = "/etc/dconf/db/local.d/00-hardening-timeouts"
DCONF_LOCKS = "/etc/dconf/db/local.d/locks/hardening-timeouts"


class Settings(Strict):
    shell_tmout: int = Field(default=900, ge=60)
    ssh_client_alive_interval: int = Field(default=300, ge=1)
    ssh_client_alive_count_max: int = Field(default=1, ge=1)
    logind_idle_action: Literal["lock", "suspend", "poweroff", "ignore"] = "lock"
    logind_idle_action_sec: int = Field(default=900, ge=60)
    # Seconds of desktop inactivity before the screen locks (0 would mean never: refused).
    screen_lock_delay: int = Field(default=600, ge=60)


def profile_script(settings: Settings) -> str:
    """/etc/profile.d/hardening-timeouts.sh: readonly TMOUT, harmless when sourced twice."""
    seconds = int(settings.shell_tmout)
    return (
        "# Managed by hardening (timeouts, 6-15). Changes here are overwritten.\n"
        "# Idle interactive shells log out; readonly so a user cannot lift it.\n"
        'case "$(readonly -p 2>/dev/null)" in\n'
        '  *" TMOUT="*) ;;\n'
        f"  *) TMOUT={seconds}; readonly TMOUT; export TMOUT ;;\n"
        "esac\n"
    )


def sshd_directives(settings: Settings) -> dict[str, str | list[str]]:
    """The sshd keywords this measure owns."""
    return {
        "ClientAliveInterval": str(int(settings.ssh_client_alive_interval)),
        "ClientAliveCountMax": str(int(settings.ssh_client_alive_count_max)),
    }


def sshd_dropin(settings: Settings) -> str:
    """The text of /etc/ssh/sshd_config.d/10-hardening-timeouts.conf."""
    return _sshd.render("timeouts", ", ".join(MEASURE.clauses), sshd_directives(settings))


def logind_values(settings: Settings) -> dict[str, str]:
    """The logind.conf keys this measure owns, as logind writes them."""
    return {"IdleAction": settings.logind_idle_action,
            "IdleActionSec": f"{int(settings.logind_idle_action_sec)}s"}


def logind_dropin(settings: Settings) -> str:
    """The text of /etc/systemd/logind.conf.d/hardening-timeouts.conf."""
    body = "".join(f"{k}={v}\n" for k, v in logind_values(settings).items())
    return ("# Managed by hardening (timeouts, 6-15). Read by systemd-logind when it starts:\n"
            "# the deploy does not restart it (that can end sessions); next boot applies it.\n"
            "[Login]\n" + body)


def parse_logind(text: str) -> dict[str, str]:
    """``systemd-analyze cat-config systemd/logind.conf`` -> the value logind ends up with per
    key of [Login] (later files win, as logind reads them)."""
    values: dict[str, str] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Login" and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def seconds(value: str) -> int | None:
    """A systemd time span like ``900``, ``900s``, ``15min`` or ``1h 30min`` in seconds."""
    units = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}
    total = 0
    for part in value.split():
        number = part.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = part[len(number):] or "s"
        if not number.isdigit() or unit not in units:
            return None
        total += int(number) * units[unit]
    return total if value.strip() else None


DCONF_KEYS = {
    "/org/gnome/desktop/session/idle-delay": "uint32 {delay}",
    "/org/gnome/desktop/screensaver/lock-enabled": "true",
    "/org/gnome/desktop/screensaver/lock-delay": "uint32 0",
}


def dconf_values(settings: Settings) -> dict[str, str]:
    """Key path -> value as ``dconf read`` prints it."""
    return {k: v.format(delay=int(settings.screen_lock_delay)) for k, v in DCONF_KEYS.items()}


def dconf_profile() -> str:
    """/etc/dconf/profile/user: the user's database, then the system database ``local``."""
    return "user-db:user\nsystem-db:local\n"


def dconf_keyfile(settings: Settings) -> str:
    """/etc/dconf/db/local.d/00-hardening-timeouts: the screen locks after the idle delay."""
    groups: dict[str, list[str]] = {}
    for path, value in dconf_values(settings).items():
        directory, _, key = path.rpartition("/")
        groups.setdefault(directory.lstrip("/"), []).append(f"{key}={value}")
    body = "".join(f"[{d}]\n" + "\n".join(lines) + "\n\n" for d, lines in groups.items())
    return "# Managed by hardening (timeouts, 6-15).\n" + body.rstrip("\n") + "\n"


def dconf_locks() -> str:
    """/etc/dconf/db/local.d/locks/hardening-timeouts: users cannot change these keys."""
    return "".join(f"{path}\n" for path in DCONF_KEYS)


# A login shell of an unprivileged account: what a user gets (runuser needs root: the batch has it).
TMOUT_SHELL = ("if command -v runuser >/dev/null; then runuser -u nobody -- bash -lc 'readonly -p'; "
               "else bash -lc 'readonly -p'; fi")
LOGIND_CONFIG = "systemd-analyze cat-config systemd/logind.conf"
LOGIND_LIVE = ("busctl get-property org.freedesktop.login1 /org/freedesktop/login1 "
               "org.freedesktop.login1.Manager IdleAction IdleActionUSec")
DCONF_PRESENT = "command -v dconf"
# For the deploy, when a login shell's TMOUT is wrong: the same login shell traced, each command
# with the file and line it comes from (``+FILE:LINE: command``), only the lines naming TMOUT.
TMOUT_TRACE = ("if command -v runuser >/dev/null; then "
               "runuser -u nobody -- env PS4='+${BASH_SOURCE}:${LINENO}: ' bash -xlc 'readonly -p'; "
               "else env PS4='+${BASH_SOURCE}:${LINENO}: ' bash -xlc 'readonly -p'; fi 2>&1 >/dev/null "
               "| grep TMOUT; true")


def dconf_read(path: str) -> str:
    return quote("env DCONF_PROFILE=user dconf read %s", path)


def dconf_writable(path: str) -> str:
    directory, _, key = path.rpartition("/")
    return quote("env DCONF_PROFILE=user gsettings writable %s %s", directory.strip("/").replace("/", "."), key)


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch."""
    dconf = [c for path in DCONF_KEYS for c in (dconf_read(path), dconf_writable(path))]
    return [TMOUT_SHELL, *_sshd.OBSERVE, LOGIND_CONFIG, LOGIND_LIVE, DCONF_PRESENT, *dconf]


MEASURE = Measure(
    name="timeouts",
    title="log off idle sessions so third parties cannot read the screen",
    clauses=('6-15',),
    order=40,
    settings=Settings,
    observe=observe,
)
