"""tmpdata (6-9): temporary copies of personal information do not outlive their use.

The clause asks staff to keep temporary copies to the minimum and to delete them promptly after
processing, and the protection manager to check, according to sensitivity, that it is done. A
host cannot know when processing ends; what it can do is delete what is left behind in the
places temporary copies go, after an age set per sensitivity level, and show what is still
there. Desired state, values from the profile:

* ageing: ``systemd-tmpfiles`` deletes files older than ``tmp_age`` under ``/tmp``,
  ``var_tmp_age`` under ``/var/tmp`` and ``staging_age`` under each of ``staging_paths`` (the
  agency's own directories where personal data is staged for processing; none by default, which
  the check reports as not configured). The lines are in :data:`TMPFILES_CONF`, named to sort
  first: systemd-tmpfiles applies, per path, the FIRST line it reads (files in the order of their
  names, whatever the directory) and ignores later conflicting ones as duplicates, so Debian's
  ``tmp.conf`` (``D /tmp 1777 root root -``, no ageing) yields to it. ``systemd-tmpfiles-clean.timer``
  (Debian's, daily) runs the deletion; it must be active.
* ``/tmp`` mounted ``nodev,nosuid`` and, where ``tmp_noexec`` says so, ``noexec`` (files dropped
  in the shared temporary directory are neither devices, nor set-id programs, nor programs at
  all). :data:`MOUNT_UNIT` applies it at boot and at deploy time: when ``/tmp`` is not a mount of
  its own (Debian 12's default: a directory on the root file system), it bind-mounts ``/tmp`` on
  itself; then it adds the flags with ``mount -o remount,bind`` (per-mount flags only: a tmpfs
  keeps its size, a partition its file system options, and a flag the profile does not ask for is
  left as it is: at least as strict passes). In a systemd-nspawn container ``/tmp`` is the
  container manager's tmpfs (``nosuid,nodev``), remounted the same way from inside.

The check reads what the system reads: ``systemd-tmpfiles --cat-config`` (every file in the
order and with the precedence systemd-tmpfiles uses, so a line read before ours or an exclusion
in a later file is seen; see :func:`parse_config` and :func:`effective`), ``findmnt -J`` for the
running mount, ``systemctl show`` for the timer and its last run. It lists the files older than
the limit (:func:`stale_files`): those the last clean-up run should have deleted fail the check;
those that passed the limit since the last run (due at the next), and those the host's own
tmpfiles lines keep (systemd's private service directories, a package's own entry), are recorded.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator

from hardening.measures import _systemd
from hardening.measures._base import Measure, Strict
from hardening.measures._systemd import show_units

TMP = "/tmp"
VAR_TMP = "/var/tmp"
TMPFILES_CONF = "/etc/tmpfiles.d/00-hardening-tmpdata.conf"
MOUNT_UNIT = "hardening-tmpdata-mount.service"
MOUNT_UNIT_PATH = f"/etc/systemd/system/{MOUNT_UNIT}"
CLEAN_TIMER = "systemd-tmpfiles-clean.timer"
CLEAN_SERVICE = "systemd-tmpfiles-clean.service"
DISABLED_MARK = "# disabled by hardening (tmpdata): "

# Directories a staging path may not be: ageing them would delete the system's own files.
SYSTEM_DIRS = frozenset({"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc",
                         "/root", "/run", "/sbin", "/srv", "/sys", "/usr", "/var", "/var/lib", "/var/log",
                         "/var/cache", "/var/spool", "/var/mail", "/var/backups", TMP, VAR_TMP})

# -- time spans -------------------------------------------------------------------------------

# What a profile may write: whole numbers with s, min, h, d or w ("3d", "36h", "90min", "1d 12h").
_PROFILE_SPAN = re.compile(r"\s*(\d+)\s*(s|min|h|d|w)\s*")
_PROFILE_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800}
# systemd's parse_sec(), for the ages of lines the host has (a number alone is seconds).
_SYSTEMD_UNITS = {
    "us": 1e-6, "usec": 1e-6, "µs": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "": 1, "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400, "w": 604800, "week": 604800, "weeks": 604800,
    "M": 2629800, "month": 2629800, "months": 2629800, "y": 31557600, "year": 31557600, "years": 31557600,
}
_SYSTEMD_SPAN = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Zµ]*)")


def profile_seconds(value: str) -> int:
    """A profile's age (``3d``, ``36h``, ``1d 12h``) in seconds; ValueError for anything else.

    >>> profile_seconds("1d 12h")
    129600
    """
    text, total = value.strip(), 0
    if not text:
        raise ValueError("an age is empty")
    pos = 0
    while pos < len(text):
        match = _PROFILE_SPAN.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"{value!r} is not an age such as 3d, 36h, 90min or 1d 12h")
        total += int(match.group(1)) * _PROFILE_UNITS[match.group(2)]
        pos = match.end()
    return total


def systemd_seconds(value: str) -> float:
    """An age as systemd-tmpfiles reads it (systemd's time span syntax) in seconds."""
    text, total, pos = value.strip(), 0.0, 0
    if not text:
        raise ValueError("empty time span")
    while pos < len(text):
        match = _SYSTEMD_SPAN.match(text, pos)
        if not match or match.end() == pos or match.group(2) not in _SYSTEMD_UNITS:
            raise ValueError(f"{value!r} is not a systemd time span")
        total += float(match.group(1)) * _SYSTEMD_UNITS[match.group(2)]
        pos = match.end()
    return total


def span(seconds: float) -> str:
    """Seconds written as systemd-tmpfiles reads them, one unit, no space (a space would split
    the line's fields): ``3d``, ``36h``, ``90min``, ``45s``."""
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


class Settings(Strict):
    # Ages after which systemd-tmpfiles deletes a file (atime, mtime and ctime all older): systemd
    # time spans with s, min, h, d or w. Sensitivity levels shorten them (hwprofiles/base.yaml).
    tmp_age: str = "3d"
    var_tmp_age: str = "14d"
    # The agency's staging directories for personal data in processing (absolute paths); their
    # files are deleted after staging_age. None by default: the check says "not configured".
    staging_paths: list[str] = Field(default_factory=list)
    staging_age: str = "3d"
    # noexec on /tmp besides nodev,nosuid (see hwprofiles/server.yaml for the servers' default).
    tmp_noexec: bool = True

    @field_validator("tmp_age", "var_tmp_age", "staging_age")
    @classmethod
    def _age(cls, value: str) -> str:
        if profile_seconds(value) < 60:
            raise ValueError(f"{value!r} is shorter than a minute")
        return value

    @field_validator("staging_paths")
    @classmethod
    def _paths(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            path = normalize(value)
            if not value.startswith("/") or re.search(r"[\s\"'\\%*?\[\]]", value):
                raise ValueError(f"{value!r}: a staging path is an absolute directory path without spaces, "
                                 "quotes, %, or glob characters")
            if path in SYSTEM_DIRS:
                raise ValueError(f"{value!r} is a system directory (or /tmp, /var/tmp, which have their own "
                                 "ages): ageing it would delete files that are not temporary")
            out.append(path)
        if len(set(out)) != len(out):
            raise ValueError("a staging path is listed twice")
        return out

    @property
    def ages(self) -> dict[str, int]:
        """Watched path -> age limit in seconds, /tmp and /var/tmp first."""
        return {TMP: profile_seconds(self.tmp_age), VAR_TMP: profile_seconds(self.var_tmp_age),
                **{p: profile_seconds(self.staging_age) for p in self.staging_paths}}

    @property
    def mount_options(self) -> list[str]:
        """The flags /tmp must be mounted with."""
        return ["nodev", "nosuid", *(["noexec"] if self.tmp_noexec else [])]


def normalize(path: str) -> str:
    """A path as systemd-tmpfiles keys it (path_simplify): repeated and trailing slashes gone."""
    parts = [p for p in path.split("/") if p and p != "."]
    return "/" + "/".join(parts)


# -- the desired state ------------------------------------------------------------------------

def tmpfiles_lines(settings: Settings) -> list[str]:
    """Our lines: /tmp keeps Debian's boot-time emptying (D) and gains an age; /var/tmp survives
    reboots (d); a staging directory is only aged, never created or re-owned (e)."""
    lines = [f"D {TMP} 1777 root root {span(profile_seconds(settings.tmp_age))}",
             f"d {VAR_TMP} 1777 root root {span(profile_seconds(settings.var_tmp_age))}"]
    lines += [f"e {p} - - - {span(profile_seconds(settings.staging_age))}" for p in settings.staging_paths]
    return lines


def tmpfiles_conf(settings: Settings) -> str:
    """The text of :data:`TMPFILES_CONF`."""
    return ("# Managed by hardening (tmpdata, 6-9). Changes here are overwritten.\n"
            "# systemd-tmpfiles applies the first line it reads for a path (files sorted by name: this one\n"
            "# first); systemd-tmpfiles-clean.timer deletes what is older than the age (atime, mtime, ctime).\n"
            + "".join(line + "\n" for line in tmpfiles_lines(settings)))


def mount_script(settings: Settings) -> str:
    """Shell run by :data:`MOUNT_UNIT`: /tmp a mount of its own (a bind mount of itself when it is
    a plain directory), then the profile's flags added to it (other flags kept)."""
    flags = ",".join(settings.mount_options)
    return f"mountpoint -q {TMP} || mount --bind {TMP} {TMP}; exec mount -o remount,bind,{flags} {TMP}"


def mount_unit(settings: Settings) -> str:
    """The text of :data:`MOUNT_UNIT_PATH`: early in boot, after the local file systems (so after
    an fstab /tmp or tmp.mount), before the services of sysinit.target and later."""
    return ("# Managed by hardening (tmpdata, 6-9). Changes here are overwritten.\n"
            "[Unit]\n"
            f"Description=/tmp mounted {','.join(settings.mount_options)} (hardening tmpdata, 6-9)\n"
            "DefaultDependencies=no\n"
            "After=local-fs.target\n"
            "Before=sysinit.target shutdown.target\n"
            "Conflicts=shutdown.target\n"
            "\n[Service]\n"
            "Type=oneshot\n"
            "RemainAfterExit=yes\n"
            f"ExecStart=/bin/sh -c {shlex.quote(mount_script(settings))}\n"
            "\n[Install]\n"
            "WantedBy=sysinit.target\n")


# -- reading the merged tmpfiles configuration -------------------------------------------------

# Types systemd-tmpfiles keeps in its glob table (tmpfiles.c needs_glob); the others are keyed by
# their literal path.
GLOB_TYPES = frozenset("weTtAaHhXxRrZzm")
# Types that "take ownership" of a path: of two such lines for one path, the first read wins and
# a later one that differs is ignored as a duplicate (tmpfiles.c takes_ownership, item_compatible).
OWNING_TYPES = frozenset("fFdDvqQpLcbCweXxRr")
# Types whose age makes systemd-tmpfiles --clean delete old entries under the path (clean_item).
CLEANING_TYPES = frozenset("dDvqQCeXx")
_HEADER = re.compile(r"^# (/\S*/tmpfiles\.d/\S+\.conf)$")


@dataclass(frozen=True)
class Line:
    """One line of the merged configuration, as systemd-tmpfiles --clean parses it."""

    file: str
    number: int  # within its file
    text: str
    type: str
    path: str    # specifiers replaced, simplified (a glob pattern for GLOB_TYPES)
    mode: str
    user: str
    group: str
    age: str     # the raw field ("-" when unset)
    argument: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.number}"

    def __str__(self) -> str:
        return f"{self.where}: {' '.join(self.text.split())}"

    @property
    def glob(self) -> bool:
        return self.type in GLOB_TYPES

    def same(self, other: Line) -> bool:
        """systemd-tmpfiles' item_compatible: may both apply to one path?"""
        if self.type not in OWNING_TYPES or other.type not in OWNING_TYPES:
            return True
        return (self.mode, self.user, self.group, self.age, self.argument) == (
            other.mode, other.user, other.group, other.age, other.argument)

    def age_seconds(self) -> float | None:
        """Seconds of this line's age, None when it has none. ValueError when systemd could not
        read it either (then it would ignore the line; we do not guess)."""
        if self.age in ("", "-"):
            return None
        return systemd_seconds(_age_parts(self.age)[2])

    @property
    def keeps_first_level(self) -> bool:
        return self.age not in ("", "-") and _age_parts(self.age)[0]


def _age_parts(age: str) -> tuple[bool, str, str]:
    """(keep the first level "~", age-by letters, the span) of an age field."""
    keep = age.startswith("~")
    rest = age[1:] if keep else age
    by, sep, value = rest.partition(":")
    if not sep:
        by, value = "", rest
    elif not re.fullmatch(r"[abcmABCM]+", by):
        raise ValueError(f"age {age!r}: unknown age-by {by!r}")
    return keep, by, value


@dataclass
class Config:
    """The merged configuration as one ``systemd-tmpfiles --clean`` run reads it."""

    lines: list[Line] = field(default_factory=list)
    # Per table (items: literal paths, globs: patterns) and key, the lines in force, in order.
    items: dict[str, list[Line]] = field(default_factory=dict)
    globs: dict[str, list[Line]] = field(default_factory=dict)
    # Lines systemd-tmpfiles ignores: (the line, the line read earlier that wins).
    ignored: list[tuple[Line, Line]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Host:
    """What specifiers expand to on the host (from the stale-file listing's first line)."""

    boot_id: str = ""
    machine_id: str = ""
    hostname: str = ""

    def specifiers(self) -> dict[str, str]:
        return {"b": self.boot_id.replace("-", ""), "m": self.machine_id, "H": self.hostname,
                "l": self.hostname.split(".")[0], "T": TMP, "V": VAR_TMP, "t": "/run", "S": "/var/lib",
                "C": "/var/cache", "L": "/var/log", "h": "/root", "u": "root", "U": "0", "g": "root",
                "G": "0", "%": "%"}


def expand(path: str, host: Host) -> str:
    """Specifiers replaced (``%b`` boot id, ``%T`` /tmp, ...); one we cannot know (``%v``,
    ``%a``, an id not observed) becomes a character no file name has, so it matches nothing."""
    table = host.specifiers()

    def one(match: re.Match[str]) -> str:
        value = table.get(match.group(1), "")
        return value if value else "\x00"
    return re.sub(r"%(.)", one, path)


def parse_config(text: str, host: Host | None = None) -> Config:
    """``systemd-tmpfiles --cat-config`` -> the lines a ``--clean`` run uses.

    cat-config prints every file systemd-tmpfiles reads, in its order (sorted by file name; of
    files with one name, only the one in the directory that wins, /etc first), each after a
    ``# /path`` line. Lines with ``!`` (boot only) are not read by --clean. Of lines for one path
    the first read wins; a later differing one is ignored (recorded in ``ignored``). Raises
    ValueError when the text is not that listing, or when a line we must judge cannot be read.
    """
    host = host or Host()
    config = Config()
    current, number, previous_blank = "", 0, True
    for raw in text.splitlines():
        header = _HEADER.match(raw)
        if header and previous_blank:
            current, number = header.group(1), 0
            config.files.append(current)
            previous_blank = False
            continue
        number += 1
        previous_blank = not raw.strip()
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not current:
            raise ValueError(f"systemd-tmpfiles --cat-config: a line before any file header: {raw[:200]!r}")
        try:
            words = shlex.split(stripped, posix=True)
        except ValueError as exc:
            raise ValueError(f"{current}:{number}: cannot read {stripped[:200]!r} ({exc})") from None
        if len(words) < 2:
            continue  # systemd-tmpfiles rejects it ("Syntax error") and goes on
        action = words[0]
        if "!" in action[1:]:
            continue
        words += ["-"] * (7 - len(words))
        kind = action[0]
        path = normalize(expand(words[1], host)) if words[1].startswith(("/", "%")) else words[1]
        line = Line(current, number, stripped, kind, path, words[2], words[3], words[4], words[5],
                    " ".join(words[6:]))
        config.lines.append(line)
        table = config.globs if line.glob else config.items
        existing = table.setdefault(path, [])
        winner = next((e for e in existing if not e.same(line)), None)
        if winner is not None:
            config.ignored.append((line, winner))
            continue
        existing.append(line)
    if not config.files:
        raise ValueError(f"not a systemd-tmpfiles --cat-config listing (no '# /…/tmpfiles.d/….conf' line): "
                         f"{text[:200]!r}")
    return config


def fnmatch_path(pattern: str, path: str) -> bool:
    """fnmatch(3) with FNM_PATHNAME|FNM_PERIOD, as systemd-tmpfiles matches its globs: ``*`` and
    ``?`` never match ``/``, and a name starting with ``.`` needs a literal ``.``."""
    return re.fullmatch(_glob_regex(pattern), path) is not None


def _glob_regex(pattern: str) -> str:
    out, i, start = [], 0, True
    while i < len(pattern):
        c = pattern[i]
        guard = r"(?!\.)" if start else ""
        if c == "*":
            out.append(guard + "[^/]*")
        elif c == "?":
            out.append(guard + "[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                body = body.replace("\\", "\\\\").replace("^", "\\^")
                out.append(guard + ("[^/" if negate else "[") + body + "]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        start = c == "/"
        i += 1
    return "".join(out)


def lines_for(config: Config, path: str) -> list[Line]:
    """The lines in force that apply to ``path`` itself (literal key, or a glob matching it)."""
    found = list(config.items.get(path, []))
    found += [line for pattern, lines in config.globs.items() if fnmatch_path(pattern, path) for line in lines]
    return sorted(found, key=lambda line: config.lines.index(line))


# Names a temporary copy typically has: a line matching one of them under a watched path exempts
# ordinary files from the clean-up (``x /tmp/*``), not one program's own entry.
PROBES = ("report.csv", "tmp.Ab12Cd34Ef", "export-2024.xlsx", "work/report.csv")


@dataclass
class Ageing:
    """How systemd-tmpfiles --clean ages one watched path."""

    path: str
    limit: int
    in_force: list[Line]                  # every line in force for the path itself
    cleaning: list[Line]                  # those whose age cleans the path
    age: float | None                     # the shortest of their ages (None: no ageing)
    overridden: list[tuple[Line, Line]]   # (a line for the path that is ignored, the one that wins)
    exemptions: list[tuple[Line, str]]    # (a line exempting ordinary files from the clean-up, probe)

    @property
    def problems(self) -> list[str]:
        out = []
        if self.age is None:
            text = f"{self.path} is not aged: no line in force gives it an age"
            if self.in_force:
                text += f" (in force: {'; '.join(map(str, self.in_force))})"
            for line, winner in self.overridden:
                text += f"; {line} is ignored: {winner} is read first and wins"
            out.append(text)
        elif self.age > self.limit:
            out.append(f"{self.path} is aged after {span(self.age)} ({'; '.join(map(str, self.cleaning))}), "
                       f"longer than the profile's {span(self.limit)}")
        for line, probe in self.exemptions:
            out.append(f"{line} exempts ordinary files such as {self.path}/{probe} from the clean-up")
        return out


def effective(config: Config, path: str, limit: int) -> Ageing:
    """How ``path`` is aged by the merged configuration.

    Every line in force for the path whose type cleans (d, D, v, q, Q, C; e, x, X by glob) and
    that has an age deletes its old entries; the shortest age is the one that counts. A line
    with ``~`` spares the first level (the files right under the path): it does not count.
    Exemptions: any line in force whose path is a glob matching an ordinary name under the path
    (systemd-tmpfiles skips an entry that has a line of its own)."""
    cleaning = [line for line in lines_for(config, path)
                if line.type in CLEANING_TYPES and line.age_seconds() is not None and not line.keeps_first_level]
    ages = [line.age_seconds() for line in cleaning]
    age = min((a for a in ages if a is not None), default=None)
    overridden = [(line, winner) for line, winner in config.ignored
                  if (line.path == path and not line.glob) or (line.glob and fnmatch_path(line.path, path))]
    exemptions = []
    for pattern, lines in config.globs.items():
        probe = next((p for p in PROBES if fnmatch_path(pattern, f"{path}/{p}")), None)
        if probe and lines:
            exemptions.append((lines[0], probe))
    return Ageing(path, limit, lines_for(config, path), cleaning, age, overridden, exemptions)


def keeper(config: Config, root: str, file: str) -> Line | None:
    """The line in force that keeps ``file`` (under the watched ``root``) out of root's clean-up:
    systemd-tmpfiles does not descend into, nor delete, an entry that has a line of its own."""
    rel = file[len(root):].strip("/").split("/")
    for depth in range(1, len(rel) + 1):
        sub = root.rstrip("/") + "/" + "/".join(rel[:depth])
        if config.items.get(sub):
            return config.items[sub][0]
        for pattern, lines in config.globs.items():
            if lines and fnmatch_path(pattern, sub):
                return lines[0]
    return None


# -- the observations ------------------------------------------------------------------------

CAT_CONFIG = "systemd-tmpfiles --cat-config"
FINDMNT_TMP = "findmnt -J -T /tmp -o TARGET,SOURCE,FSTYPE,OPTIONS"
UNITS = ("systemctl show --timestamp=unix -p Id,LoadState,ActiveState,UnitFileState,Result,"
         f"ExecMainStartTimestamp {CLEAN_TIMER} {CLEAN_SERVICE} {MOUNT_UNIT}")
STALE_LIMIT = 1000
# Each file at most this many characters in the evidence list.
SHOWN = 50


def stale_command(path: str, age: int) -> str:
    """Regular files under ``path`` older than ``age`` seconds by atime, mtime AND ctime (the rule
    of systemd-tmpfiles for files; birth time is never later than ctime), not sticky (tmpfiles
    skips those), on the path's file system. First line: the host's time and ids; then
    ``atime mtime ctime path`` records, NUL-terminated (any file name survives), at most
    :data:`STALE_LIMIT`, then ``END <find's exit code>`` (missing when cut)."""
    p = shlex.quote(path)
    return (f"now=$(date +%s); c=$((now - {int(age)})); printf 'now=%s boot=%s machine=%s host=%s\\n' \"$now\" "
            "\"$(cat /proc/sys/kernel/random/boot_id)\" \"$(cat /etc/machine-id)\" \"$(hostname)\"; "
            f"if [ ! -d {p} ]; then echo absent; exit 0; fi; "
            f"{{ find {p} -ignore_readdir_race -xdev -mindepth 1 -type f ! -perm -1000 ! -newerat \"@$c\" "
            "! -newermt \"@$c\" ! -newerct \"@$c\" -printf '%A@ %T@ %C@ %p\\0'; printf 'END %s\\0' $?; } "
            f"| head -z -n {STALE_LIMIT + 1}")


@dataclass(frozen=True)
class Stale:
    """A file older than its limit: the newest of its atime, mtime and ctime, and its path."""

    path: str
    newest: float


@dataclass
class Listing:
    """One :func:`stale_command` result."""

    now: int
    host: Host
    absent: bool = False
    files: list[Stale] = field(default_factory=list)
    cut: bool = False


def parse_stale(stdout: str, rc: int = 0) -> Listing:
    """A :func:`stale_command` output -> Listing; ValueError for anything else (an unreadable
    listing is an error, never "no old files")."""
    head, sep, rest = stdout.partition("\n")
    match = re.fullmatch(r"now=(\d+) boot=([0-9a-f-]*) machine=([0-9a-f]*) host=(\S*)", head)
    if rc != 0 or not sep or not match:
        raise ValueError(f"cannot read the listing of old files (exit {rc}): {stdout[:200]!r}")
    listing = Listing(int(match.group(1)), Host(match.group(2), match.group(3), match.group(4)))
    if rest == "absent\n":
        listing.absent = True
        return listing
    records = rest.split("\0")
    if records and records[-1] == "":
        records.pop()
    end = records[-1] if records else ""
    if end.startswith("END "):
        records.pop()
        if end != "END 0":
            raise ValueError(f"find failed listing old files ({end[4:]}): see its errors")
    elif len(records) > STALE_LIMIT:
        listing.cut = True
        records = records[:STALE_LIMIT]
    else:
        raise ValueError(f"the listing of old files ends without find's exit code: {rest[-200:]!r}")
    for record in records:
        parts = record.split(" ", 3)
        try:
            times = [float(t) for t in parts[:3]]
        except ValueError:
            times = []
        if len(parts) != 4 or len(times) != 3 or not parts[3].startswith("/"):
            raise ValueError(f"unreadable record in the listing of old files: {record[:200]!r}")
        listing.files.append(Stale(parts[3], max(times)))
    return listing


@dataclass
class Judged:
    """The old files under one watched path, sorted out."""

    path: str
    limit: int
    absent: bool = False
    missed: list[Stale] = field(default_factory=list)   # the last clean-up should have deleted them
    due: list[Stale] = field(default_factory=list)      # past the limit since the last clean-up
    kept: list[tuple[Stale, Line]] = field(default_factory=list)  # kept by the host's own lines
    cut: bool = False


def judge_stale(path: str, limit: int, listing: Listing, config: Config, last_run: int | None) -> Judged:
    """Sort a path's old files: kept by a line of the host's own (systemd-tmpfiles leaves them to
    that line), missed (older than the limit already when the last clean-up run started: it should
    have deleted them) or due (crossed the limit since; the next run deletes them). With no run
    since boot, nothing can have been missed."""
    judged = Judged(path, limit, absent=listing.absent, cut=listing.cut)
    for stale in listing.files:
        line = keeper(config, path, stale.path)
        if line is not None:
            judged.kept.append((stale, line))
        elif last_run is not None and stale.newest < last_run - limit:
            judged.missed.append(stale)
        else:
            judged.due.append(stale)
    return judged


def shown(path: str) -> str:
    """A file name for a person: control characters escaped."""
    return path.encode("unicode_escape").decode("ascii") if not path.isprintable() else path


def parse_units(stdout: str, rc: int = 0) -> dict[str, dict[str, str]]:
    """:data:`UNITS` -> unit -> properties; ValueError when a unit's block is missing."""
    return show_units(stdout, rc, (CLEAN_TIMER, CLEAN_SERVICE, MOUNT_UNIT), "systemctl show")


def last_run(units: dict[str, dict[str, str]]) -> int | None:
    """When the last clean-up run started (unix seconds), None when it has not run since boot."""
    value = units[CLEAN_SERVICE].get("ExecMainStartTimestamp", "")
    if not value:
        return None
    if not re.fullmatch(r"@\d+", value):
        raise ValueError(f"{CLEAN_SERVICE}: ExecMainStartTimestamp={value!r} is not @<unix seconds>")
    return int(value[1:])


def timer_problems(units: dict[str, dict[str, str]]) -> list[str]:
    """What keeps the daily clean-up from running."""
    return _systemd.timer_problems(units, CLEAN_TIMER, CLEAN_SERVICE, "clean-up")


def timer_commands(units: dict[str, dict[str, str]]) -> list[str]:
    """systemctl commands that leave the timer and its service unmasked and the timer active."""
    timer, service = units[CLEAN_TIMER], units[CLEAN_SERVICE]
    commands = [f"systemctl unmask {u}" for u, s in ((CLEAN_SERVICE, service), (CLEAN_TIMER, timer))
                if s.get("LoadState") == "masked"]
    if commands or timer.get("ActiveState") != "active":
        commands.append(f"systemctl start {CLEAN_TIMER}")
    return commands


@dataclass(frozen=True)
class Mount:
    target: str
    source: str
    fstype: str
    options: tuple[str, ...]


def parse_findmnt(stdout: str, rc: int = 0) -> Mount:
    """``findmnt -J -T /tmp`` -> the mount /tmp is on; ValueError for anything else."""
    if rc != 0:
        raise ValueError(f"findmnt failed (exit {rc})")
    try:
        doc = json.loads(stdout)
        [entry] = doc["filesystems"]
        return Mount(str(entry["target"]), str(entry["source"]), str(entry["fstype"]),
                     tuple(str(entry["options"]).split(",")))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"findmnt printed no single file system in JSON ({exc}): {stdout[:200]!r}") from None


def mount_problems(settings: Settings, mount: Mount) -> list[str]:
    """/tmp must be a mount of its own with the profile's flags (more flags are fine)."""
    if mount.target != TMP:
        return [f"/tmp is not a mount of its own: it is a directory on {mount.target} ({mount.source}, "
                f"{','.join(mount.options)}), which cannot have /tmp's flags"]
    missing = [o for o in settings.mount_options if o not in mount.options]
    return [f"/tmp ({mount.fstype}, {','.join(mount.options)}) lacks {','.join(missing)}"] if missing else []


# -- the deploy's decisions ------------------------------------------------------------------

def with_ours(text: str, settings: Settings) -> str:
    """The cat-config listing as it will be once :data:`TMPFILES_CONF` has our text: our section
    replaced (or inserted where its name sorts), any same-named file elsewhere dropped (ours in
    /etc masks it)."""
    name = TMPFILES_CONF.rsplit("/", 1)[1]
    sections: list[tuple[str, str]] = []
    current, body = "", list[str]()
    previous_blank = True
    for raw in text.splitlines(keepends=True):
        header = _HEADER.match(raw.rstrip("\n"))
        if header and previous_blank:
            if current:
                sections.append((current, "".join(body)))
            current, body = header.group(1), []
            previous_blank = False
            continue
        body.append(raw)
        previous_blank = not raw.strip()
    if current:
        sections.append((current, "".join(body)))
    sections = [(f, b) for f, b in sections if f.rsplit("/", 1)[1] != name]
    ours = (TMPFILES_CONF, tmpfiles_conf(settings))
    index = next((i for i, (f, _) in enumerate(sections) if f.rsplit("/", 1)[1] > name), len(sections))
    sections.insert(index, ours)
    out = []
    for file, content in sections:
        content = content.rstrip("\n") + "\n"
        out.append(f"# {file}\n{content}")
    return "\n".join(out)


def conflicts(config: Config, settings: Settings) -> list[Line]:
    """Lines of other files that keep our ageing from applying once our file is in place: a line
    read before ours that wins for a watched path, a glob exempting ordinary files."""
    found: list[Line] = []
    for path, limit in settings.ages.items():
        ageing = effective(config, path, limit)
        if ageing.problems:
            found += [winner for line, winner in ageing.overridden if line.file == TMPFILES_CONF]
            found += [line for line, _ in ageing.exemptions]
    return list(dict.fromkeys(line for line in found if line.file != TMPFILES_CONF))


def disable_command(lines: list[Line]) -> str:
    """Shell commenting out ``lines`` in their files (a copy of each file first,
    ``FILE.hardening-<time>.bak``: systemd-tmpfiles reads only ``*.conf``)."""
    out = ["s=$(date +%Y%m%dT%H%M%S)"]
    for file in sorted({line.file for line in lines}):
        numbers = sorted({line.number for line in lines if line.file == file})
        f = shlex.quote(file)
        script = ";".join(f"{n}s/^/{DISABLED_MARK.replace('/', chr(92) + '/')}/" for n in numbers)
        out.append(f"cp -a {f} {f}.hardening-\"$s\".bak && sed -i {shlex.quote(script)} {f}")
    return " && ".join(out)


def clean_script() -> str:
    """Run the clean-up now, as the timer does (recorded as the service's last run)."""
    return f"systemctl start {CLEAN_SERVICE}"


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch."""
    settings: Settings = profile.measure("tmpdata")
    return [CAT_CONFIG, FINDMNT_TMP, UNITS, *(stale_command(p, a) for p, a in settings.ages.items())]


MEASURE = Measure(
    name="tmpdata",
    title="temporary copies deleted after their age; /tmp without devices, set-id or programs",
    clauses=("6-9",),
    order=15,
    settings=Settings,
    observe=observe,
)
