"""sshd drop-ins shared by the measures admin, timeouts, terminal and encryption (pure functions).

Each measure owns one drop-in, ``/etc/ssh/sshd_config.d/10-hardening-<measure>.conf``. Debian 12's
``/etc/ssh/sshd_config`` includes ``sshd_config.d/*.conf`` at its top and sshd keeps the FIRST
value it reads for a keyword, so a name starting with ``10-`` wins over later drop-ins such as
``50-cloud-init.conf`` and over the main file. A few keywords (AllowGroups, AllowUsers,
DenyGroups, DenyUsers) are not first-wins: sshd adds them up over every file.

The deploy side (``deploys/_sshd.py``) writes the text rendered here; the check side reads the
effective configuration with ``sshd -T`` and parses it with :func:`parse_effective`. Plain
``sshd -T`` (OpenSSH 9.2) prints the global values and does not evaluate ``Match`` blocks; our
drop-ins hold none. The root-login check also asks ``sshd -T -C user=root,...`` so that a
``Match User root`` elsewhere cannot hide.

Convergence (decided by the deploy from the observations :data:`OBSERVE`): :func:`expected` is
what ``sshd -T`` prints once a drop-in wins, :func:`differences` what it shows instead;
:func:`parse_trace` and :func:`conflicts` read ``sshd -ddd -T`` (every directive with its file and
line, in sshd's order) to name the file that wins instead; :func:`parse_loaded` and
:func:`reload_reason` tell whether the running daemon has read its files since they changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
    """A command's result: testinfra's, or an observation (hardening.observe.Observation)."""

    @property
    def rc(self) -> int: ...

    @property
    def stdout(self) -> str: ...

    @property
    def stderr(self) -> str: ...


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


# -- convergence: does sshd really use the drop-in? (deploys/_sshd.py decides with these) -------

# sshd keeps the FIRST value it reads for most keywords, but adds these up over every line of
# every file: a foreign ``AllowGroups wheel`` anywhere widens ours.
ACCUMULATING = frozenset({"allowgroups", "allowusers", "denygroups", "denyusers"})
# Values ``sshd -T`` prints under another name than the drop-in writes (keyword, written): printed.
PRINTED = {("permitrootlogin", "prohibit-password"): "without-password"}


def expected(text: str) -> dict[str, list[str]]:
    """What ``sshd -T`` prints for a drop-in's directives once it wins: keyword (lower case) ->
    values (one per accumulated item, e.g. one per AllowGroups group)."""
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        key = key.lower()
        values = value.split() if key in ACCUMULATING else [value.strip()]
        out.setdefault(key, []).extend(PRINTED.get((key, v), v) for v in values)
    return out


def differences(want: dict[str, list[str]],
                config: dict[str, list[str]]) -> dict[str, tuple[list[str], list[str]]]:
    """keyword -> (wanted, seen) for each keyword whose effective values differ (order aside)."""
    return {key: (values, config.get(key, [])) for key, values in want.items()
            if sorted(config.get(key, [])) != sorted(values)}


@dataclass(frozen=True)
class Setting:
    """One directive as sshd read it (``sshd -ddd -T``: ``debug3: FILE:LINE setting KEY VALUE``)."""

    file: str
    line: int
    keyword: str
    value: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} sets {self.keyword} {self.value}".rstrip()


SETTING = re.compile(r"^debug3: (?P<file>.+):(?P<line>\d+) setting (?P<keyword>[A-Za-z]+)[ \t]*(?P<value>.*)$")


def parse_trace(text: str) -> list[Setting]:
    """The directives in the order sshd reads them (Include expanded where it appears; lines in a
    Match block are not listed: sshd -T without -C does not apply them)."""
    out = []
    for line in text.splitlines():
        match = SETTING.match(line.strip())
        if match:
            out.append(Setting(match["file"], int(match["line"]), match["keyword"], match["value"].strip()))
    return out


def conflicts(trace: list[Setting], keywords: list[str], own: str) -> list[str]:
    """Why sshd would not take ``keywords`` from ``own``: for a first-value keyword the file read
    before it that sets the keyword; for an accumulating one every other file that sets it."""
    found: list[str] = []
    for key in keywords:
        setters = [s for s in trace if s.keyword.lower() == key]
        if not any(s.file == own for s in setters):
            found.append(f"sshd does not read {key} from {own} (is {DROPIN_DIR}/*.conf included?)")
        elif key in ACCUMULATING:
            found += [f"{s} (sshd adds up {s.keyword} from every file)" for s in setters if s.file != own]
        elif setters[0].file != own:
            found.append(f"{setters[0]}, read before {own} (sshd keeps the first value)")
    return found


# What the running daemon loaded: sshd rewrites its pid file each time it (re)reads its
# configuration (start, and the re-exec on SIGHUP), so a configuration file newer than the pid
# file has not been loaded yet (nor a drop-in added or removed: the directory is newer). Debian's
# ssh.service keeps the default /run/sshd.pid. The directives of the tool's own drop-ins come
# along (``Dropin=FILE:DIRECTIVE``), so that a deploy sees which of them sshd -T overrides before
# it reloads anything.
PIDFILE = "/run/sshd.pid"
CONFIG_FILES = f"/etc/ssh/sshd_config {DROPIN_DIR}"
SSHD_LOADED = (
    "systemctl show -p ActiveState -p MainPID ssh.service; "
    f'echo "PidFile=$(cat {PIDFILE} 2>/dev/null)"; '
    f"find {CONFIG_FILES} -maxdepth 1 \\( -name sshd_config -o -name sshd_config.d -o -name '*.conf' \\) "
    "! -name '.*' "
    f"-newer {PIDFILE} -printf 'Newer=%p\\n' 2>/dev/null; "
    f"grep -H '^[A-Za-z]' {DROPIN_DIR}/10-hardening-*.conf 2>/dev/null | sed 's/^/Dropin=/'; true"
)


@dataclass(frozen=True)
class Loaded:
    active: bool
    main_pid: str
    pid_file: str
    newer: tuple[str, ...] = ()
    dropins: tuple[tuple[str, str], ...] = ()  # (path, text) of the tool's drop-ins on the host


def parse_loaded(text: str) -> Loaded:
    """The output of :data:`SSHD_LOADED`."""
    values: dict[str, str] = {}
    newer: list[str] = []
    dropins: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        if key == "Newer":
            newer.append(value)
        elif key == "Dropin":
            path, _, directive = value.partition(":")
            dropins[path] = dropins.get(path, "") + directive + "\n"
        elif key:
            values[key] = value
    return Loaded(values.get("ActiveState") == "active", values.get("MainPID", ""),
                  values.get("PidFile", ""), tuple(sorted(newer)), tuple(sorted(dropins.items())))


def reload_reason(loaded: Loaded) -> str | None:
    """Why the running sshd may not use what its files say (so it must be reloaded), or None.

    Without an active ssh.service there is no daemon to reload (socket activation starts sshd
    per connection, with the files as they are)."""
    if not loaded.active:
        return None
    if not loaded.pid_file or loaded.pid_file != loaded.main_pid:
        return (f"{PIDFILE} ({loaded.pid_file or 'absent'}) does not name ssh.service's main process "
                f"({loaded.main_pid or 'unknown'}): when sshd last read its configuration is unknown")
    if loaded.newer:
        return f"{', '.join(loaded.newer)} changed after sshd last read its configuration"
    return None


def overridden(loaded: Loaded, config: dict[str, list[str]]) -> list[str]:
    """The tool's drop-ins on the host whose values ``sshd -T`` does not show (another file
    wins): reloading for staleness would make those other values live before the measure that
    owns the drop-in refuses them."""
    return [f"{path} ({', '.join(diff)})" for path, text in loaded.dropins
            if (diff := differences(expected(text), config))]


# What the sshd measures (admin, timeouts, terminal, encryption) observe: the checks judge sshd -T,
# the deploy also needs what the daemon loaded.
OBSERVE = [SSHD_T, SSHD_LOADED]
