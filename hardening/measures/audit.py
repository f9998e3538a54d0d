"""audit (6-3, 6-4): access to personal data recorded, the records kept, protected and sent away.

6-3 asks that access to personal information be recorded and the records kept for a set period;
6-4 that the records be protected from tampering, theft and deletion. On Debian 12 the kernel's
audit system records, auditd writes, and the audispd syslog plugin with rsyslog sends a copy to
a separate log host. Desired state, values from the profile (``measures.audit``):

* Watch rules (:func:`watch_rules`): every personal-data path (``paths``, by default the
  directories of ``measures.auth.personal_data``) watched for reads (key
  :data:`READ_KEY`) and for writes and attribute changes (key :data:`CHANGE_KEY`). A record of
  such an event carries the user (``uid=``/``auid=``, with ``log_format = ENRICHED`` also their
  names) and, in its PATH record, the file. The rules live in :data:`RULES_FILE`; augenrules
  loads them at boot (auditd.service's ``ExecStartPost``).
* Immutable rules: :data:`IMMUTABLE_FILE` holds ``-e 2``, which augenrules moves to the end of
  the loaded rules. Once the kernel has it, no rule can be added or removed until reboot, not
  even by root: this is the point (an intruder cannot switch recording off unseen) and the
  deploy's limit. The check therefore compares both the running rules (``auditctl -l``) and
  what will load at boot (``/etc/audit/rules.d`` merged as augenrules merges it, see
  :func:`boot_rules`); the deploy, finding loaded rules it cannot change, writes the boot rules
  and fails the host with "reboot to load them", never "no change".
* Retention: auditd deletes records only by count (``max_log_file_action = ROTATE`` with
  ``num_logs``), which cannot promise any period. :data:`AUDITD_CONF` keys set
  ``max_log_file_action = keep_logs`` (auditd never deletes a log; it rotates and keeps every
  file) and, when the disk fills, ``suspend`` rather than anything that deletes or overwrites
  (:func:`auditd_conf`). Deleting records after the period is the log host's and the operator's
  business; the host never deletes them before.
* Protection: ``log_group = root`` (auditd creates its logs 0600 for root only), the log
  directory and every file in it owned by root, no world bits, no group write, group root or
  ``log_group`` (:func:`log_problems`); auditd.conf as auditd parses it (``key = value``, last
  one wins, action names case-insensitive).
* Forwarding (only with ``log_host``): the audispd syslog plugin (``/etc/audit/plugins.d/
  syslog.conf``, ``active = yes``, facility :data:`FACILITY`) running under auditd, rsyslog
  enabled and running with :data:`RSYSLOG_FILE` loaded, which sends that facility over TCP to
  ``log_host:log_port`` through a disk-assisted queue (records wait while the log host is away)
  and keeps it out of the host's own syslog files. Without a log host the check says "not
  configured" and the deploy leaves the plugin and rsyslog as they are.

Append-only files (``chattr +a``) are not used: auditd rotates by renaming, which the flag forbids.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from hardening.measures._base import Measure, Strict
from hardening.measures._systemd import show_units
from hardening.measures.encryption import personal_data_paths

READ_KEY = "hardening-pii-read"
CHANGE_KEY = "hardening-pii-change"
RULES_DIR = "/etc/audit/rules.d"
RULES_FILE = f"{RULES_DIR}/60-hardening-audit.rules"
IMMUTABLE_FILE = f"{RULES_DIR}/99-zz-hardening-immutable.rules"
AUDITD_CONF_PATH = "/etc/audit/auditd.conf"
LOG_DIR = "/var/log/audit"
PLUGIN_PATH = "/etc/audit/plugins.d/syslog.conf"
PLUGIN_BINARY = "/sbin/audisp-syslog"
FACILITY = "local6"
RSYSLOG_FILE = "/etc/rsyslog.d/60-hardening-audit.conf"
AUDITD = "auditd.service"
RSYSLOG = "rsyslog.service"
HEADER = "# Managed by hardening (audit, 6-3/6-4). Changes here are overwritten.\n"

_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$|^[0-9a-fA-F:]+$")


class Settings(Strict):
    # Directories (or files) whose access is recorded. None: the directories of
    # measures.auth.personal_data. An empty list or no personal data: "not configured".
    paths: list[str] | None = None
    # Group that may read the audit logs besides root (auditd.conf log_group).
    log_group: str = "root"
    # -e 2: the rules cannot change until reboot.
    immutable: bool = True
    # The separate log host that receives a copy of every audit record (rsyslog, TCP). Empty:
    # forwarding is "not configured".
    log_host: str = ""
    log_port: int = Field(default=514, ge=1, le=65535)

    @field_validator("paths")
    @classmethod
    def _paths(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        for value in values:
            if not value.startswith("/") or value == "/" or re.search(r"[\s\"'\\*?\[\]]", value):
                raise ValueError(f"{value!r}: a watched path is an absolute path other than /, without spaces, "
                                 "quotes or glob characters")
        return [v.rstrip("/") for v in values]

    @field_validator("log_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if value and not _HOST.match(value):
            raise ValueError(f"{value!r} is not a host name or an IP address")
        return value

    @field_validator("log_group")
    @classmethod
    def _group(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
            raise ValueError(f"{value!r} is not a group name")
        return value


def watched(profile: Any) -> list[str]:
    """The paths whose access is recorded: ``measures.audit.paths`` or the personal-data
    directories of ``measures.auth.personal_data``."""
    settings: Settings = profile.measure("audit")
    paths = settings.paths if settings.paths is not None else personal_data_paths(profile)
    return list(dict.fromkeys(p.rstrip("/") or "/" for p in paths))


# -- desired state -------------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Watch:
    """A file-system watch as the kernel holds it: path, permissions (a subset of ``rwxa``), key."""

    path: str
    perms: str
    key: str

    def __str__(self) -> str:
        return f"-w {self.path} -p {self.perms} -k {self.key}"


def watch_rules(paths: list[str]) -> list[Watch]:
    """Per path: reads under :data:`READ_KEY`, writes and attribute changes under :data:`CHANGE_KEY`."""
    return [w for p in paths for w in (Watch(p, "r", READ_KEY), Watch(p, "wa", CHANGE_KEY))]


def rules_text(paths: list[str]) -> str:
    """The text of :data:`RULES_FILE`."""
    return HEADER + "".join(f"{w}\n" for w in watch_rules(paths))


def immutable_text() -> str:
    """The text of :data:`IMMUTABLE_FILE` (augenrules puts the last ``-e`` it reads last)."""
    return HEADER + "-e 2\n"


# auditd.conf keys and the values auditd must use. Action names are read case-insensitively.
def auditd_conf(settings: Settings) -> dict[str, str]:
    return {
        "log_file": f"{LOG_DIR}/audit.log",
        "write_logs": "yes",
        "log_format": "ENRICHED",
        "log_group": settings.log_group,
        "max_log_file_action": "keep_logs",
        "space_left_action": "syslog",
        "admin_space_left_action": "suspend",
        "disk_full_action": "suspend",
        "disk_error_action": "suspend",
    }


CASE_SENSITIVE = frozenset({"log_file", "log_group"})


def plugin_text() -> str:
    """The text of :data:`PLUGIN_PATH`: the syslog plugin on, records at info on :data:`FACILITY`."""
    return (HEADER + "active = yes\n"
            "direction = out\n"
            f"path = {PLUGIN_BINARY}\n"
            "type = always\n"
            f"args = LOG_INFO LOG_{FACILITY.upper()}\n"
            "format = string\n")


def rsyslog_text(settings: Settings) -> str:
    """The text of :data:`RSYSLOG_FILE`: :data:`FACILITY` to the log host over TCP, through a
    disk-assisted queue that retries forever, and not into the host's own syslog files."""
    return (HEADER
            + f"# Audit records (audispd syslog plugin, facility {FACILITY}) to the log host.\n"
            + f'{FACILITY}.* action(type="omfwd" target="{settings.log_host}" port="{settings.log_port}" '
              'protocol="tcp" queue.type="LinkedList" queue.filename="hardening-audit" '
              'queue.maxDiskSpace="512m" queue.saveOnShutdown="on" action.resumeRetryCount="-1")\n'
            + "& stop\n")


# The log host: a Debian host with rsyslog (nothing else), e.g. this file as
# /etc/rsyslog.d/10-hardening-receiver.conf and `systemctl enable --now rsyslog`. It keeps each
# sender's records in a file of its own, outside the sender's reach; its retention is the log
# host's (logrotate there: at least the agency's period).
RECEIVER_FILE = "/etc/rsyslog.d/10-hardening-receiver.conf"
RECEIVED = "/var/log/remote"


def receiver_text(port: int = 514) -> str:
    """rsyslog on the log host: TCP on ``port``, one file per sending host under :data:`RECEIVED`."""
    return ('module(load="imtcp")\n'
            f'template(name="HardeningRemote" type="string" string="{RECEIVED}/%HOSTNAME%.log")\n'
            'ruleset(name="hardening-remote") { action(type="omfile" dynaFile="HardeningRemote" '
            'dirCreateMode="0700" fileCreateMode="0600") }\n'
            f'input(type="imtcp" port="{port}" ruleset="hardening-remote")\n')


# -- reading the host ----------------------------------------------------------------------------

STATUS = "auditctl -s"
LIST = "auditctl -l"
BOOT = (f"cd {RULES_DIR} && for f in $(ls -1v . | grep '\\.rules$'); do printf '### %s\\n' \"$f\"; "
        "cat -- \"$f\"; echo; done; echo '### END'")
CONF = f"cat {AUDITD_CONF_PATH}"
LOG_STAT = f"find {LOG_DIR} -maxdepth 1 -printf '%m %u %g %y %p\\n'; echo END $?"
PLUGIN = f"cat {PLUGIN_PATH}"
PLUGIN_PS = "ps -C audisp-syslog -o args= || true"
UNITS = ("systemctl show --timestamp=unix -p Id,LoadState,ActiveState,UnitFileState,ActiveEnterTimestamp "
         f"{AUDITD} {RSYSLOG}")
RSYSLOG_STAT = f"stat -c %Y {RSYSLOG_FILE} 2>/dev/null; cat {RSYSLOG_FILE} 2>/dev/null; true"
RSYSLOG_CHECK = "rsyslogd -N1 2>&1"


def path_stat(path: str) -> str:
    return f"stat -c '%F' {shlex.quote(path)} 2>/dev/null || echo absent"


def connections(settings: Settings) -> str:
    return f"ss -Htn state established '( dport = :{settings.log_port} )' || true"


NO_AUDIT = ("audit support not in kernel", "Cannot open netlink audit socket")


def no_audit(stdout: str, stderr: str) -> str:
    """Why the host has no kernel audit of its own ('' when it has one): a container sharing its
    machine's kernel (systemd-nspawn, where auditctl says "audit support not in kernel"). Its
    records, if any, are the machine's to keep."""
    text = stdout + stderr
    found = next((m for m in NO_AUDIT if m in text), "")
    return f"the kernel gives this host no audit system of its own (auditctl -s: {found})" if found else ""


def parse_status(stdout: str, rc: int = 0) -> dict[str, str]:
    """``auditctl -s`` -> key -> value; ValueError without ``enabled``."""
    status = {}
    for line in stdout.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            status[key] = value.strip()
    if rc != 0 or not re.fullmatch(r"[012]", status.get("enabled", "")):
        raise ValueError(f"auditctl -s (exit {rc}) shows no 'enabled 0|1|2': {stdout[:300]!r}")
    return status


def parse_rule(line: str) -> Watch | None:
    """One rule line (``auditctl -l`` or a rules file) -> the watch it is, None for other rules.

    Both spellings the kernel treats alike: ``-w PATH -p PERMS -k KEY`` and ``-a always,exit
    [-S all] -F dir=PATH|path=PATH -F perm=PERMS -F key=KEY``."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:
        raise ValueError(f"cannot read the audit rule {line!r} ({exc})") from None
    path, perms, key, action = "", "rwxa", "", ""
    i = 0
    while i < len(words):
        word, value = words[i], words[i + 1] if i + 1 < len(words) else ""
        if word == "-w":
            path = value
        elif word == "-p":
            perms = value
        elif word == "-k":
            key = value
        elif word == "-a":
            action = value
        elif word == "-F":
            name, _, field_value = value.partition("=")
            if name in ("dir", "path"):
                path = field_value
            elif name == "perm":
                perms = field_value
            elif name == "key":
                key = field_value
        i += 2 if word.startswith("-") and word not in ("-D",) else 1
    if not path or (action and action not in ("always,exit", "exit,always")):
        return None
    return Watch(path.rstrip("/") or "/", "".join(c for c in "rwxa" if c in perms), key)


def parse_loaded(stdout: str, rc: int = 0) -> list[Watch]:
    """``auditctl -l`` -> the loaded watches."""
    if rc != 0:
        raise ValueError(f"auditctl -l failed (exit {rc})")
    if stdout.strip() == "No rules":
        return []
    return [w for line in stdout.splitlines() if line.strip() for w in [parse_rule(line)] if w]


@dataclass
class BootRules:
    """What augenrules loads at boot from /etc/audit/rules.d."""

    lines: list[str]
    files: list[str]

    @property
    def watches(self) -> list[Watch]:
        return [w for line in self.lines for w in [parse_rule(line)] if w]

    @property
    def enable(self) -> str:
        """The ``-e`` value that ends the loaded rules ('' when none)."""
        last = self.lines[-1] if self.lines else ""
        match = re.fullmatch(r"\s*-e\s+(\d)\s*", last)
        return match.group(1) if match else ""


def boot_rules(stdout: str, rc: int = 0) -> BootRules:
    """:data:`BOOT` (each rules file in ``ls -1v`` order after a ``### NAME`` line) -> the rules as
    augenrules merges them: comments and blank lines dropped; the last ``-D``, ``-b``, ``-f``
    first; the last ``-e`` last."""
    if rc != 0 or not stdout.rstrip().endswith("### END"):
        raise ValueError(f"cannot read {RULES_DIR} (exit {rc}): {stdout[-300:]!r}")
    rest: list[str] = []
    special = {"-e": "", "-D": "", "-f": "", "-b": ""}
    files = []
    for line in stdout.splitlines():
        if line.startswith("### "):
            if line != "### END":
                files.append(line[4:])
            continue
        if not line.strip() or re.match(r"^\s*#", line):
            continue
        head = line.split()[0]
        if head in ("-e", "-f", "-b") or (head == "-D" and not line.split()[1:]):
            special[head] = line
            continue
        rest.append(line)
    lines = [special[k] for k in ("-D", "-b", "-f") if special[k]] + rest
    if special["-e"]:
        lines.append(special["-e"])
    return BootRules(lines, files)


def parse_conf(text: str) -> dict[str, str]:
    """auditd.conf as auditd reads it: ``key = value`` lines, ``#`` comments; the last one wins."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*", line)
        if not match:
            raise ValueError(f"{AUDITD_CONF_PATH}:{number}: auditd cannot read {line[:200]!r}")
        values[match.group(1).lower()] = match.group(2)
    return values


def conf_problems(settings: Settings, values: dict[str, str]) -> dict[str, str]:
    """auditd.conf key -> what it is, for every key that differs from :func:`auditd_conf`."""
    out = {}
    for key, want in auditd_conf(settings).items():
        have = values.get(key)
        same = have == want if key in CASE_SENSITIVE else (have or "").lower() == want.lower()
        if not same:
            out[key] = have if have is not None else "(unset)"
    return out


RETENTION_KEYS = ("max_log_file_action", "space_left_action", "admin_space_left_action", "disk_full_action",
                  "disk_error_action", "write_logs", "log_file", "log_format")
PROTECTION_KEYS = ("log_group",)


@dataclass(frozen=True)
class Entry:
    mode: int
    user: str
    group: str
    kind: str  # find's %y: d, f, l, ...
    path: str


def parse_log_stat(stdout: str) -> list[Entry]:
    """:data:`LOG_STAT` -> the log directory and its files; ValueError when unreadable."""
    lines = stdout.splitlines()
    if not lines or lines[-1] != "END 0":
        raise ValueError(f"cannot list {LOG_DIR}: {stdout[-300:]!r}")
    entries = []
    for line in lines[:-1]:
        parts = line.split(" ", 4)
        if len(parts) != 5 or not re.fullmatch(r"[0-7]{1,4}", parts[0]):
            raise ValueError(f"unreadable line listing {LOG_DIR}: {line[:200]!r}")
        entries.append(Entry(int(parts[0], 8), parts[1], parts[2], parts[3], parts[4]))
    if not entries or entries[0].path != LOG_DIR:
        raise ValueError(f"{LOG_DIR} is missing")
    return entries


def entry_problem(settings: Settings, entry: Entry) -> str:
    """Why one entry of the log directory exposes the records ('' when it does not)."""
    faults = []
    if entry.user != "root":
        faults.append(f"owner {entry.user}")
    if entry.group not in ("root", settings.log_group):
        faults.append(f"group {entry.group}")
    if entry.mode & 0o007:
        faults.append("world access")
    if entry.mode & 0o020:
        faults.append("group write")
    if entry.kind not in ("d", "f"):
        faults.append(f"not a regular file (type {entry.kind})")
    return f"{entry.path} ({oct(entry.mode)[2:]} {entry.user}:{entry.group}): {', '.join(faults)}" if faults else ""


def log_problems(settings: Settings, entries: list[Entry]) -> list[str]:
    return [p for e in entries for p in [entry_problem(settings, e)] if p]


def protect_command(settings: Settings) -> str:
    """Shell that gives the log directory and its files their owner, group and mode."""
    group = shlex.quote(settings.log_group)
    return (f"chown root:{group} {LOG_DIR} && chmod 0750 {LOG_DIR} && "
            f"find {LOG_DIR} -mindepth 1 -maxdepth 1 -type f -exec chown root:{group} {{}} + "
            f"-exec chmod u-x,g-wx,o-rwx {{}} +")


def parse_plugin(text: str) -> dict[str, str]:
    """plugins.d/syslog.conf as auditd reads it (``key = value``)."""
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


def plugin_problems(plugin: dict[str, str], running: str) -> list[str]:
    """What keeps the syslog plugin from handing every record to syslog on :data:`FACILITY`."""
    problems = []
    if plugin.get("active", "").lower() != "yes":
        problems.append(f"{PLUGIN_PATH}: active = {plugin.get('active', '(unset)')}, not yes")
    if f"LOG_{FACILITY.upper()}" not in plugin.get("args", "").split():
        problems.append(f"{PLUGIN_PATH}: args = {plugin.get('args', '(unset)')} lacks LOG_{FACILITY.upper()}")
    if f"LOG_{FACILITY.upper()}" not in running.split():
        problems.append("audisp-syslog is not running under auditd with LOG_" + FACILITY.upper()
                        + (f" (running: {running.strip()})" if running.strip() else ""))
    return problems


def parse_units(stdout: str, rc: int = 0) -> dict[str, dict[str, str]]:
    return show_units(stdout, rc, (AUDITD, RSYSLOG), "systemctl show")


def rsyslog_problems(settings: Settings, units: dict[str, dict[str, str]], stat: str, check_rc: int) -> list[str]:
    """What keeps rsyslog from sending :data:`FACILITY` to the log host: not running or not
    enabled, our file absent, different, newer than the running daemon, or a configuration
    rsyslogd -N1 rejects."""
    problems = []
    unit = units[RSYSLOG]
    if unit.get("ActiveState") != "active":
        problems.append(f"rsyslog is {unit.get('ActiveState')}, not active")
    if unit.get("UnitFileState") != "enabled":
        problems.append(f"rsyslog is {unit.get('UnitFileState')}, not enabled at boot")
    mtime, _, text = stat.partition("\n")
    if text != rsyslog_text(settings):
        problems.append(f"{RSYSLOG_FILE} is {'absent' if not mtime else 'not the profile’s'} "
                        f"(forward {FACILITY} to {settings.log_host}:{settings.log_port} over TCP)")
    else:
        started = unit.get("ActiveEnterTimestamp", "").lstrip("@")
        if started.isdigit() and mtime.isdigit() and int(mtime) > int(started):
            problems.append(f"{RSYSLOG_FILE} changed after rsyslog started: the running rsyslog does not use it")
    if check_rc != 0:
        problems.append(f"rsyslogd -N1 rejects the configuration (exit {check_rc})")
    return problems


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch."""
    settings: Settings = profile.measure("audit")
    commands = [STATUS, LIST, BOOT, CONF, LOG_STAT, UNITS, *(path_stat(p) for p in watched(profile))]
    if settings.log_host:
        commands += [PLUGIN, PLUGIN_PS, RSYSLOG_STAT, RSYSLOG_CHECK, connections(settings)]
    return commands


MEASURE = Measure(
    name="audit",
    title="access to personal data recorded by auditd, rules immutable, logs protected and forwarded",
    clauses=("6-3", "6-4"),
    order=35,
    settings=Settings,
    observe=observe,
)
