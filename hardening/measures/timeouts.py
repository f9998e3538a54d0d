"""timeouts (6-15): log off idle sessions so third parties cannot read the screen.

Desired state, values from the profile's sensitivity level:

* shell: ``/etc/profile.d/hardening-timeouts.sh`` makes ``TMOUT`` readonly and exported in every
  login shell (bash, ksh and zsh log an idle interactive shell out; dash ignores TMOUT).
* sshd: ``ClientAliveInterval`` / ``ClientAliveCountMax`` in the measure's drop-in: a session whose
  client stops answering is closed after about interval x max seconds (CountMax 0 would disable
  the probes' effect, so the profile refuses it).
* logind: ``IdleAction`` / ``IdleActionSec`` in ``/etc/systemd/logind.conf.d/hardening-timeouts.conf``.
  systemd-logind (252, Debian 12) re-reads its configuration on SIGHUP without ending sessions
  (:data:`LOGIND_RELOAD`): the deploy signals it when the running values differ from the profile.
  The check reads the configuration as logind reads it (``systemd-analyze cat-config``) AND the
  values the running daemon uses (``busctl``): where they differ it fails, naming the running
  value as stale. At least as strict: a shorter IdleActionSec passes.
* desktop: where dconf is installed, the GNOME idle delay and screen lock in the system database
  ``local`` with the keys locked (``/etc/dconf/db/local.d/`` and ``locks/``, then ``dconf update``);
  without dconf there is no desktop to lock and the check is not applicable. The dconf profile
  ``user`` is the host's (a GNOME desktop or another tool may list its own databases): the deploy
  keeps its lines and only adds what is missing (:func:`merged_dconf_profile`, from the profile
  file dconf reads, :data:`DCONF_PROFILE_READ`); the check fails when it does not read ``local``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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


def client_alive_problem(settings: Settings, config: dict[str, list[str]]) -> str | None:
    """Why one connection class's ClientAlive values are looser than the profile, or None.

    At least as strict: an interval of 1..profile seconds and a CountMax of 1..profile pass;
    an interval of 0 (no probes) or a CountMax of 0 (probes never end the session) fail."""
    problems = []
    for key, limit in (("clientaliveinterval", settings.ssh_client_alive_interval),
                       ("clientalivecountmax", settings.ssh_client_alive_count_max)):
        values = config.get(key, [])
        value = values[0] if len(values) == 1 else " ".join(values)
        if not value.isdigit():
            raise ValueError(f"sshd -T prints {key} {value!r}: not a number")
        if not 0 < int(value) <= limit:
            problems.append(f"{key} {value} (wanted 1..{limit})")
    return ", ".join(problems) or None


def sshd_value_ok(settings: Settings) -> Callable[[str, list[str]], bool]:
    """For the deploy: a value sshd -T shows for an owned keyword that needs no repair."""
    limits = {"clientaliveinterval": settings.ssh_client_alive_interval,
              "clientalivecountmax": settings.ssh_client_alive_count_max}

    def ok(key: str, values: list[str]) -> bool:
        return (key in limits and len(values) == 1 and values[0].isdigit()
                and 0 < int(values[0]) <= limits[key])
    return ok


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
    return ("# Managed by hardening (timeouts, 6-15). Read by systemd-logind when it starts\n"
            "# and on SIGHUP, which the deploy sends (sessions stay).\n"
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


LOGIND_DEFAULTS = {"IdleAction": "ignore", "IdleActionSec": "30min"}


def parse_logind_live(text: str) -> dict[str, str]:
    """``busctl get-property ... IdleAction IdleActionUSec`` (``s "lock"`` then ``t 900000000``) ->
    {"IdleAction": "lock", "IdleActionSec": "900s"}; ValueError for anything else."""
    lines = [line.strip() for line in text.strip().splitlines()]
    action = re.fullmatch(r's "([a-z-]+)"', lines[0]) if len(lines) == 2 else None
    usec = re.fullmatch(r"t (\d+)", lines[1]) if len(lines) == 2 else None
    if not action or not usec:
        raise ValueError(f"cannot read what systemd-logind runs with (busctl): {text!r}")
    return {"IdleAction": action.group(1), "IdleActionSec": f"{int(usec.group(1)) // 1_000_000}s"}


def logind_problems(settings: Settings, configured: dict[str, str], live: dict[str, str]) -> list[str]:
    """What is wrong with logind's idle action: the configuration against the profile (the same
    action; IdleActionSec at most the profile's), then the running daemon against its
    configuration (a difference means the files changed and logind has not re-read them)."""
    want = {"IdleAction": settings.logind_idle_action}
    conf = {k: configured.get(k, v) for k, v in LOGIND_DEFAULTS.items()}
    problems = []
    if conf["IdleAction"] != want["IdleAction"]:
        problems.append(f"configured IdleAction={conf['IdleAction']}, wanted {want['IdleAction']}")
    conf_sec = seconds(conf["IdleActionSec"])
    if conf_sec is None:
        raise ValueError(f"IdleActionSec={conf['IdleActionSec']!r} is not a time span logind reads")
    if not 0 < conf_sec <= settings.logind_idle_action_sec:
        problems.append(f"configured IdleActionSec={conf['IdleActionSec']}, wanted at most "
                        f"{settings.logind_idle_action_sec}s")
    if live["IdleAction"] != conf["IdleAction"] or seconds(live["IdleActionSec"]) != conf_sec:
        problems.append(f"systemd-logind runs with IdleAction={live['IdleAction']} "
                        f"IdleActionSec={live['IdleActionSec']} but its configuration says "
                        f"IdleAction={conf['IdleAction']} IdleActionSec={conf['IdleActionSec']}: the running "
                        "value is stale (configuration changed, logind not reloaded)")
    return problems


LOGIND_KEYS = ("IdleAction", "IdleActionSec")


def logind_overrides(text: str, own: str = LOGIND_DROPIN) -> list[tuple[str, int, str]]:
    """(file, line in the cat-config output's file, key) of the idle keys set by drop-ins logind
    reads after ours (systemd orders drop-ins by file name; a later one wins). The line number is
    within that file, counted from the ``# /path`` header cat-config prints before it."""
    found: list[tuple[str, int, str]] = []
    current, number, section = "", 0, ""
    own_name = own.rsplit("/", 1)[-1]
    for raw in text.splitlines():
        if raw.startswith("# /"):
            current, number, section = raw[2:].strip(), 0, ""
            continue
        number += 1
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Login" and "=" in line and not line.startswith(("#", ";")):
            key = line.partition("=")[0].strip()
            later = "/logind.conf.d/" in current and current.rsplit("/", 1)[-1] > own_name
            if key in LOGIND_KEYS and later and current != own:
                found.append((current, number, key))
    return found


def logind_config_ok(settings: Settings, configured: dict[str, str]) -> bool:
    """The configuration alone (not the running daemon) is at least as strict as the profile."""
    conf = {k: configured.get(k, v) for k, v in LOGIND_DEFAULTS.items()}
    sec = seconds(conf["IdleActionSec"])
    return (conf["IdleAction"] == settings.logind_idle_action and sec is not None
            and 0 < sec <= settings.logind_idle_action_sec)


def logind_reload_script(want: dict[str, str], tries: int = 25) -> str:
    """SIGHUP to systemd-logind, then wait (``tries`` x 0.2 s) until busctl shows ``want``
    (IdleAction, IdleActionSec in seconds), else fail saying what it runs with."""
    usec = (seconds(want["IdleActionSec"]) or 0) * 1_000_000
    expect = f's "{want["IdleAction"]}"\\nt {usec}'
    return (f"{LOGIND_RELOAD} || exit 1; n=0; while :; do got=$({LOGIND_LIVE}); "
            f'[ "$got" = "$(printf {quote("%s", expect)})" ] && break; n=$((n+1)); '
            f"if [ $n -ge {tries} ]; then printf 'systemd-logind did not take the configuration: it runs "
            "with\\n%s\\n' \"$got\" >&2; exit 1; fi; sleep 0.2; done")


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


def dconf_value_ok(settings: Settings, path: str, value: str) -> bool:
    """At least as strict: an idle delay of 1..profile seconds (0 would never lock), the lock
    enabled, a lock delay no longer than the profile's (0)."""
    want = dconf_values(settings)[path]
    if path.endswith("/idle-delay") or path.endswith("/lock-delay"):
        limit, got = int(want.split()[-1]), value.split()
        if len(got) != 2 or got[0] != "uint32" or not got[1].isdigit():
            return False
        return (0 < int(got[1]) <= limit) if path.endswith("/idle-delay") else int(got[1]) <= limit
    return value == want


# Where dconf looks for the profile ``user`` (dconf-engine-profile.c): /etc first, then
# XDG_DATA_DIRS (unset for the batch: GLib's /usr/local/share, /usr/share); the first file that
# exists is the one read. None at all: dconf acts as if it held the line ``user-db:user``.
DCONF_PROFILE_PATHS = (DCONF_PROFILE, "/usr/local/share/dconf/profile/user", "/usr/share/dconf/profile/user")
DCONF_OWN_DB = "system-db:local"
DCONF_USER_DB = "user-db:user"
# The profile file dconf reads: ``### PATH`` then its text; nothing when there is none; a file
# that exists but cannot be read fails (an error, never "absent").
DCONF_PROFILE_READ = ("for f in " + " ".join(DCONF_PROFILE_PATHS) + "; do "
                      'if [ -e "$f" ]; then printf \'### %s\\n\' "$f"; exec cat "$f"; fi; done')


def read_dconf_profile(stdout: str) -> tuple[str | None, str]:
    """:data:`DCONF_PROFILE_READ`'s output -> (the file dconf reads or None, its text).

    >>> read_dconf_profile("### /etc/dconf/profile/user\\nuser-db:user\\n")
    ('/etc/dconf/profile/user', 'user-db:user\\n')
    >>> read_dconf_profile("")
    (None, '')
    """
    if not stdout:
        return None, ""
    header, _, text = stdout.partition("\n")
    if not header.startswith("### /"):
        raise ValueError(f"cannot read the dconf profile listing: {stdout[:200]!r}")
    return header[4:], text


def dconf_source(line: str) -> str:
    """The database a profile line names, as dconf reads it ("" for a comment or blank line):
    whitespace stripped, everything from ``#`` on ignored."""
    return line.split("#", 1)[0].strip()


def dconf_sources(text: str | None) -> list[str]:
    """The databases a profile lists, in order; no profile file (None) is dconf's default."""
    if text is None:
        return [DCONF_USER_DB]
    return [s for s in map(dconf_source, text.splitlines()) if s]


def dconf_profile_additions(text: str) -> list[str]:
    """What :func:`merged_dconf_profile` adds to the profile text ([] = leaves it as it is)."""
    sources = dconf_sources(text)
    out = []
    if not sources or not sources[0].startswith(("user-db:", "service-db:")):
        out.append(f"{DCONF_USER_DB} first")
    if DCONF_OWN_DB not in sources:
        out.append(DCONF_OWN_DB)
    return out


def merged_dconf_profile(text: str) -> str:
    """The profile ``user`` from the one the host has (``text``; "" when there is none): its
    lines kept, in their order, plus what the screen lock needs.

    * The user's own, writable database first. dconf writes to the first database only when it
      is a ``user-db:`` or a ``service-db:`` (e.g. ``service-db:keyfile/user`` for homes on
      NFS), so such a first line is the host's choice and kept; otherwise ``user-db:user`` is
      put before the first database (moved there when the profile lists it further down).
    * ``system-db:local`` present; when missing it is appended LAST: dconf takes a locked key's
      value from the lowest database that locks it, so the tool's locks win over a database
      listed after it, and the host's other databases keep their priority among themselves.

    A profile that already has both is returned unchanged, byte for byte (duplicates and
    comments included): the deploy then writes nothing.
    """
    additions = dconf_profile_additions(text)
    if not additions:
        return text
    lines = text.splitlines()
    if f"{DCONF_USER_DB} first" in additions:
        lines = [line for line in lines if dconf_source(line) != DCONF_USER_DB]
        first = next((i for i, line in enumerate(lines) if dconf_source(line)), len(lines))
        lines.insert(first, DCONF_USER_DB)
    if DCONF_OWN_DB in additions:
        lines.append(DCONF_OWN_DB)
    return "\n".join(lines) + "\n"


def dconf_profile_problems(text: str | None) -> list[str]:
    """What the check finds wrong with the profile dconf reads (text None: no profile file)."""
    sources = dconf_sources(text)
    if DCONF_OWN_DB in sources:
        return []
    return [f"the dconf profile user does not read {DCONF_OWN_DB} (it reads {', '.join(sources) or 'nothing'}): "
            "the screen lock settings and their locks are not in force"]


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
# systemd-logind (252) re-reads its configuration on SIGHUP ("Config file reloaded."), same
# process, sessions untouched; only the main process: signalling the unit's auxiliary processes fails.
LOGIND_RELOAD = "systemctl kill --kill-whom=main -s HUP systemd-logind.service"
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
    return [TMOUT_SHELL, *_sshd.OBSERVE, LOGIND_CONFIG, LOGIND_LIVE, DCONF_PRESENT, DCONF_PROFILE_READ, *dconf]


MEASURE = Measure(
    name="timeouts",
    title="log off idle sessions so third parties cannot read the screen",
    clauses=('6-15',),
    order=40,
    settings=Settings,
    observe=observe,
)
