"""sshd drop-ins shared by the measures admin, timeouts, terminal and encryption (pure functions).

Each measure owns one drop-in, ``/etc/ssh/sshd_config.d/10-hardening-<measure>.conf``. Debian 12's
``/etc/ssh/sshd_config`` includes ``sshd_config.d/*.conf`` at its top and sshd keeps the FIRST
value it reads for a keyword, so a name starting with ``10-`` wins over later drop-ins such as
``50-cloud-init.conf`` and over the main file. A few keywords (AllowGroups, AllowUsers,
DenyGroups, DenyUsers) are not first-wins: sshd adds them up over every file.

The deploy side (``deploys/_sshd.py``) writes the text rendered here; the check side reads the
effective configuration with ``sshd -T`` and parses it with :func:`parse_effective`. Plain
``sshd -T`` (OpenSSH 9.2) evaluates ``Match`` blocks for a connection without user, host or
address, so no conditional block applies: :func:`connection_classes` adds one class per Match
line (``sshd -T -C`` for a connection derived from it, sshd's debug output confirming the block
applied), and the checks judge every class. Our drop-ins hold no Match block.

Convergence (decided by the deploy from the observations :data:`OBSERVE`): :func:`expected` is
what ``sshd -T`` prints once a drop-in wins, :func:`differences` what it shows instead;
:func:`parse_trace` and :func:`conflicts` read ``sshd -ddd -T`` (every directive with its file and
line, in sshd's order) to name the file that wins instead; :func:`parse_loaded` and
:func:`reload_reason` tell whether the running daemon has read its files since they changed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

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


SETTING = re.compile(r"^debug3: (?P<file>.+):(?P<line>\d+) setting (?P<keyword>[A-Za-z0-9]+)[ \t]*(?P<value>.*)$")


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


def overriding(trace: list[Setting], keywords: list[str], own: str) -> tuple[list[Setting], list[str]]:
    """(the directives of other files that keep sshd from taking ``keywords`` from ``own``: for a
    first-value keyword every setter read before ``own``, for an accumulating one every other
    setter; what cannot be repaired by disabling lines, e.g. ``own`` not read at all)."""
    found: list[Setting] = []
    unfixable: list[str] = []
    for key in keywords:
        setters = [s for s in trace if s.keyword.lower() == key]
        mine = [i for i, s in enumerate(setters) if s.file == own]
        if not mine:
            unfixable.append(f"sshd does not read {key} from {own} (is {DROPIN_DIR}/*.conf included?)")
        elif key in ACCUMULATING:
            found += [s for s in setters if s.file != own]
        else:
            found += setters[:mine[0]]
    return found, unfixable


def class_repairs(classes: list[ConnectionClass], want: dict[str, list[str]],
                  ok: Callable[[str, list[str]], bool]) -> tuple[list[Setting], list[str]]:
    """(the directives inside Match blocks that give a class a value ``ok`` refuses for a keyword
    in ``want``: disabling them lets the global value, the drop-in's, apply; what cannot be
    repaired so: a class that could not be evaluated, or a bad value no Match directive set while
    the global value is right). A class that only inherits a bad global value (a Match block that
    does not set the keyword) is repaired with the global value, by the drop-in."""
    found: list[Setting] = []
    unfixable: list[str] = []
    default = next((c for c in classes if c.name == "default" and c.config is not None), None)
    for cls in classes:
        if cls.name == "default":
            continue
        if cls.config is None:
            unfixable.append(f"{cls.name}: {cls.error}")
            continue
        for key in want:
            if ok(key, cls.value(key)):
                continue
            setters = [s for s in cls.applied if s.keyword.lower() == key]
            if not setters and default is not None and not ok(key, default.value(key)):
                continue  # inherited from the global value, which the drop-in repairs
            if not setters:
                unfixable.append(f"{cls.name} gives {key} {' '.join(cls.value(key))} and sets no {key} itself")
            found += [s for s in setters if s not in found]
    return found, unfixable


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




# -- Match blocks: the effective configuration of every connection class ------------------------
#
# ``sshd -T`` alone evaluates the Match blocks for a connection with no user, host or address, so
# no conditional block applies (and a ``Match LocalPort`` makes it fail). Each Match line is a
# connection class: :func:`connection_spec` derives a connection that satisfies it, and
# ``sshd -ddd -T -C SPEC`` (:func:`class_command`) prints that connection's configuration; its
# debug output says whether the block really matched (sshd's own parser is the judge) and which
# directives of which file:line it applied. OpenSSH 9.2 needs a -C field only for the criteria
# the configuration uses (``'Match LocalPort' in configuration but 'lport' not in connection test
# specification``); every class gives user, host, addr, laddr and lport.

MAIN_CONFIG = "/etc/ssh/sshd_config"
# The Match lines as sshd reads them (``checking syntax for 'Match ...'``, in its order, Include
# expanded), the files it includes and where (to place each line), each file's Match lines with
# their numbers, and the accounts (only when a Match line names a group: sshd matches Group
# against a real account's groups).
SSHD_MATCHES = (
    "out=$(sshd -ddd -T 2>&1 >/dev/null | tr -d '\\r'); "
    "printf '%s\\n' \"$out\" | grep -E \"^debug2: .* line [0-9]+: including |^debug3: checking syntax for 'Match \"; "
    f"{{ echo {MAIN_CONFIG}; printf '%s\\n' \"$out\" | sed -n 's/^debug2: .* line [0-9]*: including //p'; }} | "
    "while IFS= read -r f; do awk -v f=\"$f\" '{l=$0; sub(/^[ \\t]+/, \"\", l); "
    "if (tolower(l) ~ /^match([ \\t=]|$)/) print \"MATCHLINE \" f \":\" FNR \":\" l}' \"$f\"; done; "
    "if printf '%s\\n' \"$out\" | grep -qiE \"^debug3: checking syntax for 'Match .*group\"; then "
    "getent passwd | sed 's/^/PASSWD /'; getent group | sed 's/^/GROUP /'; fi; true"
)
INCLUDING = re.compile(r"^debug2: (?P<parent>.+) line (?P<line>\d+): including (?P<child>.+)$")
SYNTAX = re.compile(r"^debug3: checking syntax for 'Match (?P<criteria>.*)'$")
MATCHLINE = re.compile(r"^MATCHLINE (?P<file>.+?):(?P<line>\d+):(?P<text>.*)$")
# (sshd's debug lines end in CR LF.)
# A connection no conditional block is written for: a user that does not exist, TEST-NET addresses.
DEFAULT_SPEC = {"user": "hardening-probe", "host": "hardening-probe.invalid", "addr": "192.0.2.1",
                "laddr": "192.0.2.2", "lport": "22"}


class MatchError(ValueError):
    """A Match line that cannot be parsed or satisfied: the check errors, it never passes."""


@dataclass(frozen=True)
class MatchLine:
    """One ``Match`` line as sshd reads it, with where it is."""

    file: str
    line: int
    criteria: str  # the text after ``Match``, as sshd prints it

    def __str__(self) -> str:
        return f"Match {self.criteria} (line {self.line} of {self.file})"


@dataclass(frozen=True)
class Accounts:
    """The host's accounts (``getent passwd`` / ``getent group``), for ``Match Group``."""

    primary: dict[str, str]  # user -> primary gid
    groups: dict[str, tuple[str, tuple[str, ...]]]  # group -> (gid, members)

    def groups_of(self, user: str) -> set[str]:
        gid = self.primary.get(user)
        return {g for g, (g_gid, members) in self.groups.items() if user in members or g_gid == gid}


@dataclass(frozen=True)
class Matches:
    lines: tuple[MatchLine, ...]
    accounts: Accounts


def _tokens(text: str) -> list[str]:
    """Split like sshd's strdelim: whitespace or one '=', double quotes group."""
    return [t.strip('"') for t in re.findall(r'"[^"]*"|[^\s="]+', text)]


def _criteria_text(line: str) -> str:
    """``Match User bob`` / ``match=User bob`` -> ``User bob``."""
    return re.sub(r"^[Mm][Aa][Tt][Cc][Hh][\s=]+", "", line.strip(), count=1).strip()


def _file_keys(includes: list[tuple[str, int, str]], main: str) -> dict[str, tuple[tuple[int, int], ...]]:
    """Per file, the position of its first line in sshd's reading order (nested includes)."""
    keys: dict[str, tuple[tuple[int, int], ...]] = {main: ()}
    seen: dict[tuple[str, int], int] = {}
    for parent, line, child in includes:
        if parent not in keys:
            raise MatchError(f"sshd includes {child} from {parent}, which it was not seen reading")
        index = seen.get((parent, line), 0)
        seen[(parent, line)] = index + 1
        keys.setdefault(child, keys[parent] + ((line, index),))
    return keys


def parse_matches(text: str, main: str = MAIN_CONFIG) -> Matches:
    """:data:`SSHD_MATCHES` output -> the Match lines in sshd's order with file and line.

    sshd's list (``checking syntax``) is the authority; the file positions come from the files it
    includes. The two must agree line for line, else MatchError with the raw output."""
    includes, syntax, found = [], [], []
    primary: dict[str, str] = {}
    groups: dict[str, tuple[str, tuple[str, ...]]] = {}
    for raw in text.splitlines():
        line = raw.rstrip("\r\n")
        if (m := INCLUDING.match(line)):
            includes.append((m["parent"], int(m["line"]), m["child"]))
        elif (m := SYNTAX.match(line)):
            syntax.append(m["criteria"])
        elif (m := MATCHLINE.match(line)):
            found.append((m["file"], int(m["line"]), _criteria_text(m["text"])))
        elif line.startswith("PASSWD "):
            fields = line[7:].split(":")
            if len(fields) >= 4:
                primary[fields[0]] = fields[3]
        elif line.startswith("GROUP "):
            fields = line[6:].split(":")
            if len(fields) >= 4:
                groups[fields[0]] = (fields[2], tuple(m for m in fields[3].split(",") if m))
    keys = _file_keys(includes, main)
    found.sort(key=lambda f: (*keys.get(f[0], ((1 << 30, 0),)), (f[1], -1)))
    placed = tuple(MatchLine(file, number, criteria) for file, number, criteria in found)
    if [" ".join(_tokens(m.criteria)) for m in placed] != [" ".join(_tokens(s)) for s in syntax]:
        raise MatchError("the Match lines sshd reads do not agree with those found in its files:\n"
                         + text[-3000:])
    return Matches(tuple(MatchLine(m.file, m.line, s) for m, s in zip(placed, syntax, strict=True)),
                   Accounts(primary, groups))


def _glob(pattern: str, value: str, fold: bool = False) -> bool:
    """sshd's match_pattern: ``*`` and ``?`` only."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if fold else 0) is not None


def _split(arg: str) -> tuple[list[str], list[str]]:
    items = [i for i in arg.split(",") if i]
    return [i for i in items if not i.startswith("!")], [i[1:] for i in items if i.startswith("!")]


def _listed(value: str, arg: str, fold: bool = False) -> bool:
    """sshd's pattern lists: a negated hit refuses, otherwise one positive hit is needed (a list of
    negations alone never matches)."""
    pos, neg = _split(arg)
    if any(_glob(n, value, fold) for n in neg):
        return False
    return any(_glob(p, value, fold) for p in pos)


def _name_for(arg: str, fold: bool = False) -> str:
    for pattern in _split(arg)[0]:
        for cand in (pattern.replace("*", "").replace("?", "x"), pattern.replace("*", "x").replace("?", "x"),
                     pattern.replace("*", "hardening").replace("?", "h")):
            if cand and _listed(cand, arg, fold):
                return cand
    raise MatchError(f"no name matches {arg!r}")


def _addr_in(addr: str, pattern: str) -> bool:
    if "/" in pattern:
        try:
            return ipaddress.ip_address(addr) in ipaddress.ip_network(pattern, strict=False)
        except (TypeError, ValueError):
            return False
    return _glob(pattern, addr, fold=True)


def _addr_ok(addr: str, arg: str) -> bool:
    pos, neg = _split(arg)
    return not any(_addr_in(addr, n) for n in neg) and any(_addr_in(addr, p) for p in pos)


def _addr_candidates(pattern: str, negated: list[str]) -> list[str]:
    if "/" not in pattern:
        return [pattern.replace("*", "1").replace("?", "1")]
    try:
        net = ipaddress.ip_network(pattern, strict=False)
    except ValueError as exc:
        raise MatchError(f"not an address/prefix sshd could match: {pattern!r} ({exc})") from None
    out = [net.network_address + 1, net.broadcast_address - 1, net.network_address, net.broadcast_address]
    for neg in negated:
        try:
            other = ipaddress.ip_network(neg, strict=False)
        except ValueError:
            continue
        if other.version == net.version:
            out += [a for a in (other.network_address - 1, other.broadcast_address + 1) if a in net]
    return [str(a) for a in out]


def _addr_for(arg: str) -> str:
    pos, neg = _split(arg)
    for pattern in pos:
        for cand in _addr_candidates(pattern, neg):
            if _addr_ok(cand, arg):
                return cand
    raise MatchError(f"no address matches {arg!r}")


def _user_in_groups(criteria: dict[str, str], accounts: Accounts) -> str:
    """An account whose groups satisfy the Group list (and the User list, when there is one)."""
    arg = criteria["group"]
    users = sorted(set(accounts.primary) | {m for _, members in accounts.groups.values() for m in members})
    for user in users:
        mine = accounts.groups_of(user)
        pos, neg = _split(arg)
        if any(_glob(n, g) for n in neg for g in mine) or not any(_glob(p, g) for p in pos for g in mine):
            continue
        if "user" not in criteria or _listed(user, criteria["user"]):
            return user
    raise MatchError(f"no account on the host is in a group matching {arg!r}"
                     + (f" with a name matching {criteria['user']!r}" if "user" in criteria else ""))


FIELDS = {"user": "user", "host": "host", "address": "addr", "localaddress": "laddr",
          "localport": "lport", "rdomain": "rdomain"}


def parse_criteria(match: MatchLine) -> dict[str, str]:
    """``User ad*,!admin Group staff`` -> {"user": "ad*,!admin", "group": "staff"}; {} for
    ``all``. MatchError for what sshd 9.2 would not accept or this cannot evaluate."""
    tokens = _tokens(match.criteria)
    if [t.lower() for t in tokens] == ["all"]:
        return {}
    if not tokens or len(tokens) % 2:
        raise MatchError(f"{match}: criteria are not attribute/value pairs")
    out: dict[str, str] = {}
    for attrib, arg in zip(tokens[::2], tokens[1::2], strict=True):
        key = attrib.lower()
        if key not in FIELDS and key != "group":
            raise MatchError(f"{match}: unsupported criterion {attrib!r}")
        out[key] = arg
    return out


def connection_spec(match: MatchLine, accounts: Accounts) -> dict[str, str] | None:
    """A connection (``sshd -C`` fields) the Match line applies to; None when it applies to no
    connection at all (a list of negated patterns alone never matches, ssh_config(5) PATTERNS).
    MatchError when it cannot be satisfied or read: never a pass."""
    criteria = parse_criteria(match)
    spec = dict(DEFAULT_SPEC)
    try:
        for key, arg in criteria.items():
            if key in ("user", "group", "host", "address", "localaddress", "rdomain") and not _split(arg)[0]:
                return None
        if "group" in criteria:
            spec["user"] = _user_in_groups(criteria, accounts)
        elif "user" in criteria:
            spec["user"] = _name_for(criteria["user"])
        if "host" in criteria:
            spec["host"] = _name_for(criteria["host"], fold=True)
        for key, field in (("address", "addr"), ("localaddress", "laddr")):
            if key in criteria:
                spec[field] = _addr_for(criteria[key])
        if "localport" in criteria:
            if not criteria["localport"].isdigit():
                raise MatchError(f"LocalPort {criteria['localport']!r} is not a port number")
            spec["lport"] = criteria["localport"]
        if "rdomain" in criteria:
            spec["rdomain"] = _name_for(criteria["rdomain"])
    except MatchError as exc:
        raise MatchError(f"{match}: {exc}") from None
    return spec


def spec_text(spec: dict[str, str]) -> str:
    """The ``-C`` argument: ``user=...,host=...,addr=...``."""
    return ",".join(f"{k}={v}" for k, v in spec.items())


CLASS_STDERR = "HARDENING-SSHD-STDERR"


def class_command(spec: dict[str, str]) -> str:
    """sshd's configuration for one connection, its debug output after a marker line, then
    ``RC=<exit>``: one command for the check (testinfra) and the deploy (a pyinfra fact)."""
    arg = spec_text(spec)
    for value in spec.values():
        check_token(value)
    return (f'e=$(mktemp) && {{ sshd -ddd -T -C {arg} 2>"$e"; rc=$?; echo {CLASS_STDERR}; '
            f'cat "$e"; rm -f "$e"; echo "RC=$rc"; }}')


@dataclass(frozen=True)
class ClassOutput:
    rc: int
    stdout: str
    stderr: str


def parse_class_output(text: str) -> ClassOutput:
    """:func:`class_command` output -> (exit of sshd, configuration, debug output)."""
    config, marker, rest = text.partition(CLASS_STDERR + "\n")
    lines = rest.rstrip("\n").splitlines()
    if not marker or not lines or not lines[-1].startswith("RC=") or not lines[-1][3:].isdigit():
        raise MatchError(f"cannot read the output of sshd -T -C: {text[-2000:]!r}")
    return ClassOutput(int(lines[-1][3:]), config, "\n".join(lines[:-1]))


CHECKING = re.compile(r"^debug3: checking match for '(?P<criteria>.*)' user ")


def matched_blocks(debug: str) -> list[tuple[str, bool, list[Setting]]]:
    """Per Match line in sshd's order: (criteria, matched, directives it applied with file:line;
    sshd names the main file ``reprocess config``)."""
    out: list[tuple[str, bool, list[Setting]]] = []
    for raw in debug.splitlines():
        line = raw.strip()
        if (m := CHECKING.match(line)):
            # sshd prints no "match found" for ``Match all``
            out.append((m["criteria"], m["criteria"].strip().lower() == "all", []))
        elif out and line == "debug3: match not found":
            out[-1] = (out[-1][0], False, out[-1][2])
        elif out and line == "debug3: match found":
            out[-1] = (out[-1][0], True, out[-1][2])
        elif out and out[-1][1] and (s := SETTING.match(line)):
            file = MAIN_CONFIG if s["file"] == "reprocess config" else s["file"]
            out[-1][2].append(Setting(file, int(s["line"]), s["keyword"], s["value"].strip()))
    return out


@dataclass(frozen=True)
class ConnectionClass:
    """The effective configuration for one kind of connection."""

    name: str  # "default" or the Match line (with file and line)
    spec: str = ""  # the -C argument ("" for plain sshd -T)
    config: dict[str, list[str]] | None = None
    error: str = ""  # why it could not be evaluated (an error, never a pass)
    applied: tuple[Setting, ...] = ()  # directives of the matching Match blocks

    def value(self, key: str) -> list[str]:
        return (self.config or {}).get(key, [])


Runner = Callable[[str], str]  # runs a command as root on the host, returns its output


def _default(obs: Any, run: Runner) -> ConnectionClass:
    result = obs.run(SSHD_T)
    config, why = effective(result)
    if config is None and "not in connection test specification" in result.stderr:
        # plain sshd -T cannot evaluate a Match LocalPort: ask for an ordinary connection instead
        return _evaluate("default", DEFAULT_SPEC, None, run)
    return ConnectionClass("default", "", config, why)


def _evaluate(name: str, spec: dict[str, str], index: int | None, run: Runner) -> ConnectionClass:
    text = spec_text(spec)
    try:
        out = parse_class_output(run(class_command(spec)))
    except MatchError as exc:
        return ConnectionClass(name, text, None, str(exc))
    if out.rc != 0:
        why = out.stderr.strip().splitlines()
        return ConnectionClass(name, text, None, f"sshd -T -C {text} failed (exit {out.rc}): "
                               f"{why[-1] if why else 'no output'}")
    blocks = matched_blocks(out.stderr)
    if index is not None and (index >= len(blocks) or not blocks[index][1]):
        return ConnectionClass(name, text, None, f"sshd does not apply {name} to the connection "
                               f"{text} derived from it: cannot evaluate it")
    applied = tuple(s for _, hit, settings in blocks if hit for s in settings)
    return ConnectionClass(name, text, parse_effective(out.stdout), "", applied)


def connection_classes(obs: Any, run: Runner) -> list[ConnectionClass]:
    """The default configuration (``sshd -T`` from the observations) and one class per Match line
    (``sshd -T -C`` through ``run``: called only when there are Match lines, so a host without
    them costs nothing more). A class that cannot be evaluated carries ``error``."""
    result = obs.run(SSHD_MATCHES)
    try:
        matches = parse_matches(result.stdout)
    except MatchError as exc:
        return [ConnectionClass("Match blocks", "", None, str(exc))]
    classes = [_default(obs, run)]
    for index, match in enumerate(matches.lines):
        try:
            spec = connection_spec(match, matches.accounts)
        except MatchError as exc:
            classes.append(ConnectionClass(str(match), "", None, str(exc)))
            continue
        if spec is not None:
            classes.append(_evaluate(str(match), spec, index, run))
    return classes


def host_runner(request: Any) -> Runner:
    """For a check: runs a command through the ``host`` fixture (testinfra, recorded as the
    check's own command), which is set up only when a command is really run."""
    return lambda command: str(request.getfixturevalue("host").run(command).stdout)


Verdict = Callable[[ConnectionClass], str | None]  # why the class fails, or None


def judge(classes: list[ConnectionClass], keys: list[str],
          verdict: Verdict) -> tuple[dict[str, Any], list[str]]:
    """(observed per class: the ``keys`` or the error, the failing classes with why)."""
    observed: dict[str, Any] = {}
    failing: list[str] = []
    for cls in classes:
        if cls.config is None:
            observed[cls.name] = {"error": cls.error}
            continue
        observed[cls.name] = {k: " ".join(cls.value(k)) or "(unset)" for k in keys}
        if cls.applied:
            observed[cls.name]["set by"] = [str(s) for s in cls.applied
                                             if s.keyword.lower() in keys]
        why = verdict(cls)
        if why:
            failing.append(f"{cls.name}: {why}")
    return observed, failing


def unreadable(classes: list[ConnectionClass]) -> str:
    """The classes that could not be evaluated, for an error (raise) after recording evidence."""
    return "; ".join(f"{c.name}: {c.error}" for c in classes if c.config is None)


def conclude(classes: list[ConnectionClass], failing: list[str]) -> None:
    """Ends an sshd check once its evidence is recorded: a class that could not be evaluated is
    an error (MatchError), never a pass; a failing class is the check's failure (AssertionError)."""
    if unreadable(classes):
        raise MatchError(unreadable(classes))
    if failing:
        raise AssertionError("; ".join(failing))


# What the sshd measures (admin, timeouts, terminal, encryption) observe: the checks judge sshd -T
# and the Match lines (one class each), the deploy also needs what the daemon loaded.
OBSERVE = [SSHD_T, SSHD_LOADED, SSHD_MATCHES]
