"""patching (6-8): published vulnerabilities fixed, software kept up to date, known malware kept out.

Desired state (shared by ``deploys/patching.py`` and ``checks/test_patching.py``):

* unattended-upgrades installed; ``/etc/apt/apt.conf.d/20auto-upgrades`` (the file Debian's
  ``dpkg-reconfigure unattended-upgrades`` writes) with Update-Package-Lists "1" (daily) and
  Unattended-Upgrade "1", or "0" when the profile turns unattended upgrades off;
  apt-daily.timer and apt-daily-upgrade.timer enabled and running, their services not masked.
* The origins unattended-upgrades installs from follow the profile (``unattended_origins``,
  default: the Debian security origin only). APT lists are additive: Debian's conffile
  50unattended-upgrades keeps its own origins (the point release
  ``origin=Debian,codename=${distro_codename},label=Debian`` among them), so adding the security
  origin left the host installing every stable update unattended, outside change management.
  ``52hardening-unattended-upgrades`` (read after 50unattended-upgrades) therefore starts with
  ``#clear`` of Origins-Pattern and the legacy Allowed-Origins and then lists the profile's
  origins: the effective list (``apt-config dump``) is exactly the profile's. A ``#clear`` only
  clears what apt read before it: a foreign file read after the tool's (a later name in
  apt.conf.d, or /etc/apt/apt.conf, which apt reads last) that adds or clears origins has those
  statements commented out by the deploy, as for any foreign apt override.
* Unattended upgrades are off when the profile says ``unattended_upgrades: false`` or
  ``unattended_origins: []``. Then 20auto-upgrades says Unattended-Upgrade "0", which is what
  stops apt.systemd.daily from running unattended-upgrade at all (an empty origin list alone
  would still let it run daily and remove unused kernel packages, a change of its own), and the
  origins file holds the profile's list (with ``[]``: only the ``#clear``, so a run that someone
  turns back on installs nothing). The package lists are still refreshed daily (the pending
  count needs them). 6-8 then rests on a manual patch process: the check of unattended upgrades
  passes only when the host really runs none and the profile's attestation item for 6-8 is
  attested; with no such item it is "not configured", never a quiet pass.
* Judged as apt and its tools read them: ``apt-config dump`` (every apt.conf.d file, later
  files winning) with apt.systemd.daily's semantics (``APT::Periodic::Enable "0"`` switches
  everything off; an interval is "always", ``N`` days or ``N`` with a s/m/h/d unit, "0" = never;
  at most daily passes), and the origins with unattended-upgrade's own matcher (Origins-Pattern
  and the legacy Allowed-Origins, ``${distro_id}``/``${distro_codename}`` substituted, fnmatch
  per field) against the security package files ``apt-cache policy`` lists.
* A hold (dpkg selection ``hold``) hides a pending update from ``apt-get -s dist-upgrade`` ("kept
  back") and unattended-upgrades never installs a held package; a pin (apt preferences) does the
  same silently. The pending count simulates with ``APT::Ignore-Hold`` and without preferences,
  so held and pinned-away security updates are counted, and names them. A hold or pin on a
  package with nothing pending is not a finding. The deploy never releases a hold or removes a
  pin (an admin's decision it cannot see the reason for): it refuses, naming the packages.
* apt runs read-only and never writes its cache: the checks run apt as ``nobody`` (``setpriv``,
  no PAM session), which reads a valid /var/cache/apt/pkgcache.bin and builds a stale one in
  memory. As root, ``apt-get -s -o Debug::NoLocking=1`` (the observation before) rewrote a
  stale pkgcache.bin on lab hosts (new inode), outside apt's lock; emptying
  ``Dir::Cache::pkgcache`` also avoids that, but makes every run build the cache (38 s instead
  of 19 s for the simulation on an emulated lab VM).
* Pending security updates are applied by the deploy **only** when the profile says
  ``apply_security_updates: true``. Updating a production host is a change-management decision
  (a window, a restart of services, a reboot for a kernel): by default the deploy turns on the
  automatic mechanism and the check reports what is still pending. The deploy applies them with
  ``unattended-upgrade``, from the profile's origins (so ``apply_security_updates`` needs a
  non-empty ``unattended_origins``); the setting says nothing about the unattended runs.
* Checks are read-only, so they never run ``apt-get update``: they count pending security
  updates from the package lists the host already has, and report how old those lists are
  (the local fetch time of the security suite's Release file), failing when they are older
  than ``max_lists_age_days`` or absent, since then the count would be meaningless.
* Anti-malware is ``not-required`` by default on Linux servers: malware for Linux servers
  arrives through unpatched services and stolen credentials, which 6-1/6-6/6-7 and the updates
  above address, while signature scanners such as ClamAV mostly detect Windows and document
  malware. A profile can require ``clamav`` (e.g. a file or mail server that passes files to
  Windows terminals); the check then wants clamav installed, freshclam running and signatures
  no older than ``malware_signatures_max_age_days``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
import shlex
import string
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hardening.measures._base import Measure, Strict
from hardening.measures._systemd import show_units
from hardening.observe import Observation, quote

PARTS = "/etc/apt/apt.conf.d"
AUTO_UPGRADES = "/etc/apt/apt.conf.d/20auto-upgrades"
ORIGINS_CONF = "/etc/apt/apt.conf.d/52hardening-unattended-upgrades"
TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")
SERVICES = ("apt-daily.service", "apt-daily-upgrade.service")
ENABLE = "APT::Periodic::Enable"
INTERVALS = ("APT::Periodic::Update-Package-Lists", "APT::Periodic::Unattended-Upgrade")
ORIGINS_KEY = "Unattended-Upgrade::Origins-Pattern"
LEGACY_ORIGINS_KEY = "Unattended-Upgrade::Allowed-Origins"
BLACKLIST_KEY = "Unattended-Upgrade::Package-Blacklist"
WHITELIST_KEY = "Unattended-Upgrade::Package-Whitelist"
# config_problems' key for the package filters (the deploy names their files, never edits them).
FILTERS_KEY = "Unattended-Upgrade::Package-Blacklist/Whitelist"
# A blacklist entry matching all of these blocks every package (names of different shapes).
SAMPLE_PACKAGES = ("libc6", "openssl", "linux-image-amd64", "openssh-server", "sudo", "0ad", "g++", "zlib1g")
# apt.systemd.daily's interval units (no unit = days); the rule is "at most daily".
INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 86400}
MAX_INTERVAL_SECONDS = 86400
# apt run as nobody cannot write /var/cache/apt (nor take apt's locks): it uses a valid cache and
# builds a stale one in memory. setpriv (util-linux) changes the user without a PAM session.
AS_NOBODY = "setpriv --reuid=nobody --regid=nogroup --clear-groups --"
# apt's preferences (pins) and default release left out: what is available, whatever the pins.
NO_PINS = "-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null -o APT::Default-Release="
# How the deploy marks a foreign apt.conf.d line it switched off.
DISABLED_MARK = "// disabled by hardening (patching, 6-8; non-compliant): "
# ... and a foreign systemd file (drop-in, unit copy) it renamed aside (systemd reads *.conf, *.timer).
DISABLED_SUFFIX = ".disabled-by-hardening"
REBOOT_REQUIRED = "/run/reboot-required"
CLAMAV_PACKAGES = ("clamav", "clamav-freshclam")
FRESHCLAM_SERVICE = "clamav-freshclam.service"
CLAMAV_DB = "/var/lib/clamav"
LISTS = "/var/lib/apt/lists"
# The deploy refreshes the package lists when the security suite's are older than this (days).
LISTS_REFRESH_DAYS = 1.0
# A Release file belongs to a security suite when one of these lines is in it.
SECURITY_RELEASE_RE = r"^((Suite|Codename): [a-z-]*-security|Label: Debian-Security)$"
SECURITY_ORIGIN = "origin=Debian,codename=${distro_codename}-security,label=Debian-Security"


class Settings(Strict):
    # apt.systemd.daily runs unattended-upgrade (APT::Periodic::Unattended-Upgrade "1"); false
    # writes "0" and 6-8 then needs the profile's attestation of a manual patch process.
    unattended_upgrades: bool = True
    # The complete list of origins unattended-upgrade may install from (its Origins-Pattern, in
    # its syntax: ``field=glob`` tokens, ``${distro_codename}``); Debian's defaults are cleared.
    # [] turns unattended upgrades off like ``unattended_upgrades: false``.
    unattended_origins: list[str] = Field(default_factory=lambda: [SECURITY_ORIGIN])
    max_pending_security_updates: int = Field(default=0, ge=0)
    reboot_required_allowed: bool = False
    # The deploy installs pending security updates now only when true (change management).
    apply_security_updates: bool = False
    # The package lists the check counts from must be at most this old (apt-daily runs twice a day).
    max_lists_age_days: int = Field(default=2, ge=1)
    # Signature scanners mostly find Windows and document malware: require clamav on hosts that
    # pass files to Windows terminals (file, mail servers).
    anti_malware: Literal["not-required", "clamav"] = "not-required"
    malware_signatures_max_age_days: int = Field(default=2, ge=1)

    @field_validator("unattended_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            problem = origin_setting_problem(origin)
            if problem:
                raise ValueError(problem)
        if len(set(origins)) != len(origins):
            raise ValueError(f"an origin is listed twice: {origins}")
        return origins

    @model_validator(mode="after")
    def _apply_needs_origins(self) -> Settings:
        if self.apply_security_updates and not self.unattended_origins:
            raise ValueError("apply_security_updates installs with unattended-upgrade from unattended_origins, "
                             "which is empty: name the origins (e.g. the security origin) or set it false")
        return self

    @property
    def unattended_on(self) -> bool:
        """Whether apt.systemd.daily runs unattended-upgrade (off: false, or no origins)."""
        return self.unattended_upgrades and bool(self.unattended_origins)


def origin_setting_problem(origin: str) -> str | None:
    """Why a profile's origin cannot be written to apt's configuration, or would stop
    unattended-upgrade (an unknown ``${...}``, a token it does not know), or None."""
    if not origin.strip():
        return "an empty origin"
    if any(c == '"' or ord(c) < 32 for c in origin):
        return f"origin {origin!r}: a double quote or control character cannot be written into apt's configuration"
    try:
        pattern_matches(_substitute(origin, ("Debian", "bookworm")), Release())
    except (KeyError, ValueError) as error:
        return f"origin {origin!r}: unattended-upgrade would stop on it ({error})"
    return None


# -- desired state -------------------------------------------------------------------------------

def periodic_values(settings: Settings) -> dict[str, str]:
    """APT::Periodic values (days; "1" = daily, "0" = never) the deploy writes; the check wants
    the lists updated daily, and unattended-upgrade run daily or never as the profile says."""
    return {"APT::Periodic::Update-Package-Lists": "1",
            "APT::Periodic::Unattended-Upgrade": "1" if settings.unattended_on else "0"}


def auto_upgrades_conf(settings: Settings) -> str:
    body = "".join(f'{key} "{value}";\n' for key, value in periodic_values(settings).items())
    what = ("daily list updates and unattended upgrades" if settings.unattended_on
            else "daily list updates; unattended upgrades off (profile)")
    return f"// Managed by hardening (patching, 6-8): {what}.\n" + body


def origins_conf(settings: Settings) -> str:
    """The tool's origins file: apt's #clear of the origins read before it (50unattended-upgrades'
    defaults), then exactly the profile's origins."""
    text = ("// Managed by hardening (patching, 6-8): unattended-upgrades installs from these origins only\n"
            "// (the profile's unattended_origins); #clear drops those of the files read before this one.\n"
            f"#clear {ORIGINS_KEY};\n"
            f"#clear {LEGACY_ORIGINS_KEY};\n")
    if settings.unattended_origins:
        text += f"{ORIGINS_KEY} {{\n" + "".join(f'    "{o}";\n' for o in settings.unattended_origins) + "};\n"
    return text


def pending_command() -> str:
    """Simulated full upgrade: read-only, prints ``Inst`` lines, held and pinned packages included.

    As ``nobody`` (``AS_NOBODY``: no lock, no cache written), ``APT::Ignore-Hold`` so a held
    package is planned like any other (apt then names it under "The following held packages will
    be changed:"), and no preferences and
    no default release (``/dev/null`` is apt's own "none"), so a pin that keeps a security update
    out (``Pin-Priority: -1`` on Debian-Security, a package pinned to its old version) does not hide
    it either. The cost: a host that pins a third-party build above Debian's is judged against
    Debian's candidate.
    """
    return f"{AS_NOBODY} apt-get -s -o APT::Ignore-Hold=1 {NO_PINS} dist-upgrade"


def apply_command() -> str:
    """Installs pending updates from the security origins unattended-upgrades is configured for."""
    return "unattended-upgrade -v"


# -- parsing and evaluation ----------------------------------------------------------------------

def parse_apt_config(dump: str) -> dict[str, list[str]]:
    """`apt-config dump` lines `Key "value";` to key -> values (lists keep every entry)."""
    values: dict[str, list[str]] = {}
    for line in dump.splitlines():
        match = re.match(r'^(\S+) "(.*)";$', line.strip())
        if match:
            values.setdefault(match.group(1), []).append(match.group(2))
    return values


def read_apt_config(result: Observation) -> dict[str, list[str]]:
    """apt's effective configuration from ``APT_CONFIG``; apt-config failing (a file apt cannot
    parse, which stops apt.systemd.daily too) raises with its message."""
    if result.rc != 0 or "APT::Architecture" not in result.stdout:
        raise ValueError(f"{APT_CONFIG}: exit {result.rc}: {result.stderr.strip()[:300]} {result.stdout[:200]!r}")
    return parse_apt_config(result.stdout)


def interval_problem(key: str, value: str | None) -> str | None:
    """What is wrong with one APT::Periodic interval, read as apt.systemd.daily reads it, or None.

    >>> interval_problem("APT::Periodic::Unattended-Upgrade", "12h") is None
    True
    >>> interval_problem("APT::Periodic::Unattended-Upgrade", "7")
    "APT::Periodic::Unattended-Upgrade is '7' (604800 s), wanted at most daily ('1')"
    """
    if value == "always":
        return None
    match = re.fullmatch(r"(\d+)([smhd]?)", value or "")
    if not match:
        return f"{key} is {value!r}, wanted at most daily ('1')"
    seconds = int(match.group(1)) * INTERVAL_UNITS[match.group(2)]
    if seconds == 0:
        return f"{key} is {value!r}: never runs, wanted at most daily ('1')"
    if seconds > MAX_INTERVAL_SECONDS:
        return f"{key} is {value!r} ({seconds} s), wanted at most daily ('1')"
    return None


def enable_problem(value: str | None) -> str | None:
    """``APT::Periodic::Enable``: absent means on; "0" makes apt.systemd.daily exit at once."""
    if value is None or (re.fullmatch(r"\s*\+?\d+\s*", value) and int(value) != 0):
        return None
    return f"{ENABLE} is {value!r}: apt.systemd.daily does nothing (wanted absent or '1')"


def off_problem(key: str, value: str | None) -> str | None:
    """An interval the profile wants off: absent (apt.systemd.daily's default, 0) or 0 seconds."""
    match = re.fullmatch(r"(\d+)([smhd]?)", "0" if value is None else value)
    if match and int(match.group(1)) == 0:
        return None
    return f"{key} is {value!r}: apt.systemd.daily runs unattended-upgrade, the profile turns it off (wanted '0')"


UNATTENDED_KEY = "APT::Periodic::Unattended-Upgrade"


def value_problem(key: str, value: str | None, unattended: bool = True) -> str | None:
    """What is wrong with an APT::Periodic value; ``unattended``: the profile's unattended runs."""
    if key == ENABLE:
        return enable_problem(value)
    if key == UNATTENDED_KEY and not unattended:
        return off_problem(key, value)
    return interval_problem(key, value)


def periodic_problems(config: dict[str, list[str]], unattended: bool = True) -> dict[str, str]:
    """APT::Periodic key -> what is wrong with its effective value (the last one apt read)."""
    problems = {}
    for key in (ENABLE, *INTERVALS):
        problem = value_problem(key, config.get(key, [None])[-1], unattended)
        if problem:
            problems[key] = problem
    return problems


@dataclass(frozen=True)
class Release:
    """A package file's release, as ``apt-cache policy`` and unattended-upgrade see it."""

    origin: str = ""
    label: str = ""
    archive: str = ""
    codename: str = ""
    component: str = ""
    site: str = ""
    # The package file's priority (pins applied); not part of what the origins match.
    priority: int = field(default=500, compare=False)

    def __str__(self) -> str:
        return (f"o={self.origin},a={self.archive},n={self.codename},l={self.label},"
                f"c={self.component},site={self.site}")


def parse_policy(text: str) -> list[Release]:
    """The package files' releases from ``apt-cache policy`` (no package); dpkg's status left out.

    Raises ValueError on output that is not apt-cache policy's.
    """
    if "Package files:" not in text:
        raise ValueError(f"apt-cache policy: unreadable output {text[:300]!r}")
    releases: list[Release] = []
    fields = {"o": "origin", "l": "label", "a": "archive", "n": "codename", "c": "component"}
    priority = 500
    for line in text.split("Pinned packages:")[0].splitlines():
        words = line.split(maxsplit=1)
        if words[:1] == ["release"] and len(words) == 2:
            pairs = dict(p.split("=", 1) for p in words[1].split(",") if "=" in p)
            if pairs.get("a") != "now":
                releases.append(Release(**{fields[k]: v for k, v in pairs.items() if k in fields},
                                        priority=priority))
        elif words[:1] == ["origin"] and len(words) == 2 and releases and not releases[-1].site:
            last = releases[-1]
            releases[-1] = Release(last.origin, last.label, last.archive, last.codename, last.component, words[1],
                                   last.priority)
        elif re.fullmatch(r"-?\d+", words[0] if words else ""):
            priority = int(words[0])
    return releases


def pinned_packages(text: str) -> list[str]:
    """Packages with a pin of their own, from ``apt-cache policy``'s "Pinned packages:" section
    (``     tzdata -> 2026b-0+deb12u1 with priority 1001``)."""
    _, _, section = text.partition("Pinned packages:")
    return [m.group(1) for m in re.finditer(r"^\s+(\S+) -> \S+ with priority -?\d+$", section, re.MULTILINE)]


def pinned_security_updates(simulation: str, policy: str) -> list[str]:
    """Pending security updates the host's pins keep out: all of them when a security package file
    has a lower priority than another package file, else those of packages pinned by name."""
    releases = parse_policy(policy)
    security = [r for r in releases if is_security(r)]
    others = [r.priority for r in releases if r not in security]
    pending = security_updates(simulation)
    if security and others and min(r.priority for r in security) < max(others):
        return pending
    pinned = set(pinned_packages(policy))
    return [p for p in pending if p in pinned]


def is_security(release: Release) -> bool:
    return release.label == "Debian-Security" or (release.origin == "Debian" and release.codename.endswith("-security"))


def security_releases(releases: list[Release], codename: str) -> list[Release]:
    """The Debian security package files apt knows, or the one Debian publishes for ``codename``
    when the host has none (no lists fetched yet: then judged against the origin, label, codename)."""
    found = [r for r in releases if is_security(r)]
    return found or [Release("Debian", "Debian-Security", "", f"{codename}-security", "main", "")]


def parse_distro(result: Observation) -> tuple[str, str]:
    """(distro id, codename) from ``lsb_release -i -c -s``, as unattended-upgrade substitutes them."""
    words = result.stdout.split()
    if result.rc != 0 or len(words) != 2:
        raise ValueError(f"{DISTRO}: unreadable output {result.stdout[:120]!r} (exit {result.rc}) "
                         f"{result.stderr[:200]}")
    return words[0], words[1]


def origin_patterns(config: dict[str, list[str]], distro: tuple[str, str]) -> tuple[list[str], list[str]]:
    """(patterns, problems): unattended-upgrade's allowed origins (legacy Allowed-Origins turned
    into ``o=,a=`` the way it does, then Origins-Pattern), substituted; an entry it would stop on
    (an unknown ``${...}``, an Allowed-Origins entry without a separator) is a problem."""
    patterns, problems = [], []
    for entry in config.get(LEGACY_ORIGINS_KEY + "::", []):
        parts = re.split(r"(?<!\\):", entry) if re.search(r"(?<!\\):", entry) else entry.split()
        if len(parts) != 2:
            problems.append(f"{LEGACY_ORIGINS_KEY} entry {entry!r} stops unattended-upgrade (not 'origin:archive')")
            continue
        patterns.append(f"o={parts[0].replace(chr(92) + ':', ':')},a={parts[1]}")
    patterns += config.get(ORIGINS_KEY + "::", [])
    substituted = []
    for pattern in patterns:
        try:
            substituted.append(_substitute(pattern, distro))
        except (KeyError, ValueError):
            problems.append(f"origins pattern {pattern!r} stops unattended-upgrade (unknown substitution)")
    return substituted, problems


def wanted_origins(settings: Settings, distro: tuple[str, str]) -> list[str]:
    """The profile's origins as unattended-upgrade substitutes them on this host."""
    return [_substitute(o, distro) for o in settings.unattended_origins]


def _substitute(text: str, distro: tuple[str, str]) -> str:
    return string.Template(text).substitute({"distro_id": distro[0], "distro_codename": distro[1]})


def pattern_matches(pattern: str, release: Release) -> bool:
    """unattended-upgrade's ``match_whitelist_string``: every ``field=glob`` token must match.

    Raises ValueError for a token it would stop on (no ``=``, an unknown field).
    """
    pattern = pattern.strip()
    if not pattern:
        return False
    fields = {"o": "origin", "origin": "origin", "l": "label", "label": "label", "a": "archive",
              "suite": "archive", "archive": "archive", "c": "component", "component": "component",
              "site": "site", "n": "codename", "codename": "codename"}
    result = True
    for token in pattern.replace("\\,", "%2C").split(","):
        parts = [part.strip().replace("%2C", ",") for part in token.split("=")]
        if len(parts) != 2 or parts[0] not in fields:
            raise ValueError(f"origins pattern {pattern!r}: token {token!r} stops unattended-upgrade")
        result = result and fnmatch.fnmatch(getattr(release, fields[parts[0]]), parts[1])
    return result


def package_filter_problems(config: dict[str, list[str]]) -> list[str]:
    """unattended-upgrade's package filters that keep security updates out: a Package-Blacklist
    entry that matches every package (``re.match``, as it applies them: ``.*``, ``.``, an empty
    entry) or that it cannot compile (it stops), and any Package-Whitelist (then only the listed
    packages are upgraded)."""
    problems = []
    for entry in config.get(BLACKLIST_KEY + "::", []):
        try:
            if all(re.match(entry, name) for name in SAMPLE_PACKAGES):
                problems.append(f"{BLACKLIST_KEY} entry {entry!r} matches every package: nothing is upgraded")
        except re.error:
            problems.append(f"{BLACKLIST_KEY} entry {entry!r} is no regular expression: unattended-upgrade stops")
    whitelist = config.get(WHITELIST_KEY + "::", [])
    if whitelist:
        problems.append(f"{WHITELIST_KEY} {whitelist}: only these packages are upgraded")
    return problems


def origin_problems(config: dict[str, list[str]], releases: list[Release], distro: tuple[str, str],
                    wanted: list[str]) -> list[str]:
    """What differs between unattended-upgrade's effective origins and the profile's ``wanted``
    (both substituted): an origin the profile does not list (naming the package files it admits),
    one of the profile's missing, and, when the profile wants any, a Debian security package file
    no effective origin matches (unattended-upgrade's matcher)."""
    patterns, problems = origin_patterns(config, distro)
    want = [_substitute(p, distro) for p in wanted]
    for pattern in dict.fromkeys(p for p in patterns if p not in want):
        admits = [str(r) for r in releases if _matches(pattern, r)]
        problems.append(f"unattended-upgrades origin {pattern!r} is not in the profile's unattended_origins"
                        + (f" (admits {'; '.join(admits)})" if admits else ""))
    problems += [f"the profile's origin {p!r} is not among unattended-upgrades' origins"
                 for p in want if p not in patterns]
    if not wanted:
        return problems
    for release in security_releases(releases, distro[1]):
        matched = False
        for pattern in patterns:
            try:
                matched = matched or pattern_matches(pattern, release)
            except ValueError as error:
                if str(error) not in problems:
                    problems.append(str(error))
        if not matched:
            problems.append(f"no unattended-upgrades origin matches the security origin {release}")
    return problems


def _matches(pattern: str, release: Release) -> bool:
    try:
        return pattern_matches(pattern, release)
    except ValueError:
        return False


def security_updates(simulation: str) -> list[str]:
    """Packages whose candidate comes from a security suite, from `apt-get -s` `Inst` lines.

    An Inst line lists every origin of the candidate version, e.g.
    ``Inst libc6 [2.36-9+deb12u7] (2.36-9+deb12u10 Debian:12.11/stable, Debian-Security:12/stable-security [amd64])``.
    """
    found = []
    for line in simulation.splitlines():
        if not line.startswith("Inst "):
            continue
        origins = line[line.find("(") + 1:]
        if "Debian-Security:" in origins or re.search(r"/[a-z]+-security\b", origins):
            found.append(line.split()[1])
    return found


def held_changes(simulation: str) -> list[str]:
    """Held packages apt plans to change (``APT::Ignore-Hold``): its "held packages will be changed"
    list in ``apt-get -s`` output."""
    return _section(simulation, "The following held packages will be changed:")


def kept_back(simulation: str) -> list[str]:
    """Packages apt keeps back even with holds ignored (their update cannot be installed)."""
    return _section(simulation, "The following packages have been kept back:")


def _section(simulation: str, header: str) -> list[str]:
    names: list[str] = []
    inside = False
    for line in simulation.splitlines():
        if line == header:
            inside = True
        elif inside and line.startswith("  "):
            names += line.split()
        else:
            inside = False
    return names


def parse_holds(result: Observation) -> list[str]:
    """Held packages (dpkg selection ``hold``) from ``HOLDS``; unreadable output raises."""
    if result.rc != 0:
        raise ValueError(f"{HOLDS}: exit {result.rc}: {result.stderr[:300]}")
    return result.stdout.split()


def lists_age_days(stat_output: str, now: int) -> float | None:
    """Days since the newest security Release file was fetched; None when there is none.

    ``stat_output`` has ``<mtime epoch> <path>`` lines; the mtime is when apt last wrote the file.
    """
    times = [int(line.split()[0]) for line in stat_output.splitlines() if line.split()[:1]
             and line.split()[0].isdigit()]
    return round((now - max(times)) / 86400, 2) if times else None


def signature_age_days(sigtool_info: str, now: dt.datetime) -> float | None:
    """Age of a ClamAV database from `sigtool --info` ("Build time: 27 Nov 2026 04:25 -0500")."""
    match = re.search(r"^Build time: (.+)$", sigtool_info, re.MULTILINE)
    if not match:
        return None
    try:
        built = dt.datetime.strptime(match.group(1).strip(), "%d %b %Y %H:%M %z")
    except ValueError:
        return None
    return round((now - built).total_seconds() / 86400, 2)


def kernel_reboot_pending(running_release: str, running_version: str, installed: dict[str, str]) -> str | None:
    """Why the running kernel is not the installed one, or None.

    ``installed`` maps kernel release (linux-image-<release>) to package version; the running
    kernel's ``uname -v`` names its package version ("... Debian 6.1.94-1 (2024-06-21)").
    """
    if not installed:
        return None
    newest = max(installed, key=_version_key)
    if newest != running_release:
        return f"running {running_release}, newest installed {newest}"
    match = re.search(r"Debian (\S+)", running_version)
    want = installed.get(running_release)
    if match and want and match.group(1) != want:
        return f"running {running_release} build {match.group(1)}, installed package {want}"
    return None


def _version_key(release: str) -> list[int]:
    return [int(part) for part in re.findall(r"\d+", release)]


# -- what the checks and the deploy observe (one batch per host, hardening.observe) ----------------

NOW = "date +%s"
# `<mtime> <path>` of every Release file of a security suite the host has fetched.
SECURITY_LISTS = (f"grep -lE '{SECURITY_RELEASE_RE}' {LISTS}/*Release 2>/dev/null"
                  " | xargs -r stat -c '%Y %n'")
PENDING = pending_command()
APT_CONFIG = "apt-config dump"
# `file:number:line` of the apt configuration lines that may set these keys (to find a file that
# overrides the tool's; comments are left out when read, see conf_lines and origin_lines).
# A line opening a block ("... {" without "}", quoted strings and // comments left out) is
# followed by the block's lines up to the next "}" (the entries of a multi-line Origins-Pattern
# block, which the deploy switches off whole).
APT_CONFIG_LINES = (
    "find /etc/apt/apt.conf /etc/apt/apt.conf.d -maxdepth 1 -type f -print0 2>/dev/null | xargs -0r awk '"
    "FNR == 1 { block = 0 } "
    "{ key = ($0 ~ /Periodic|Unattended-Upgrade|Origins-Pattern|Allowed-Origins|#clear/); "
    "bare = $0; gsub(/\"[^\"]*\"/, \"\", bare); sub(/\\/\\/.*/, \"\", bare) } "
    "key || block { print FILENAME \":\" FNR \":\" $0 } "
    "key && bare ~ /[{]/ && bare !~ /[}]/ { block = 1; next } "
    "bare ~ /[}]/ { block = 0 }'")
POLICY = f"{AS_NOBODY} apt-cache policy"
DISTRO = "lsb_release -i -c -s"
HOLDS = "dpkg-query -W -f '${db:Status-Want} ${Package}\\n' | awk '$1 == \"hold\" {print $2}'"
UNITS = ("systemctl show --timestamp=unix --property=Id,LoadState,UnitFileState,ActiveState,TimersCalendar,"
         "FragmentPath,DropInPaths " + " ".join((*TIMERS, *SERVICES)))
AUTO_UPGRADES_TEXT = quote("cat %s", AUTO_UPGRADES)
ORIGINS_TEXT = quote("cat %s", ORIGINS_CONF)
REBOOT_FLAG = quote("test -e %s", REBOOT_REQUIRED)
REBOOT_PACKAGES = quote("cat %s", REBOOT_REQUIRED + ".pkgs")
KERNEL_RELEASE = "uname -r"
KERNEL_VERSION = "uname -v"
KERNELS = "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' 'linux-image-[0-9]*'"
FRESHCLAM_ACTIVE = quote("systemctl is-active %s", FRESHCLAM_SERVICE)
SIGNATURES = f"sigtool --info {CLAMAV_DB}/daily.cld || sigtool --info {CLAMAV_DB}/daily.cvd"


def package_status(package: str) -> str:
    return quote("dpkg-query -W -f '${db:Status-Abbrev}' %s", package)


def installed(result: Observation) -> bool:
    """From the observation of ``package_status(p)``: the package is installed (``ii``)."""
    return result.rc == 0 and result.stdout.startswith("ii")


def now_epoch(result: Observation) -> int:
    """The host's clock from ``date +%s``; anything else raises (a check error, never a pass)."""
    text = result.stdout.strip()
    if result.rc != 0 or not text.isdigit():
        raise ValueError(f"{NOW}: unreadable output {text[:80]!r} (exit {result.rc})")
    return int(text)


def lists_stale(age: float | None) -> bool:
    """Whether the deploy refreshes the package lists: the security suite's lists were never
    fetched or are older than a day (the check's ``max_lists_age_days`` is at least 1)."""
    return age is None or age > LISTS_REFRESH_DAYS


def parse_units(result: Observation) -> dict[str, dict[str, str]]:
    """Unit -> properties from ``UNITS`` (``systemctl show``: blocks of ``Key=value``, one per unit).

    Raises ValueError when the output is not that or a unit asked for is missing.
    """
    return show_units(result.stdout, result.rc, (*TIMERS, *SERVICES), UNITS)


def schedule_problem(timer: str, state: dict[str, str], now: int) -> str | None:
    """Why a running timer does not fire at least daily: its next calendar elapse (systemd's own,
    ``TimersCalendar``'s ``next_elapse=@epoch``) is more than a day away, or it has none."""
    if state.get("ActiveState") != "active":
        return None
    calendar = state.get("TimersCalendar", "")
    times = [int(t) for t in re.findall(r"next_elapse=@(\d+)", calendar)]
    when = ", ".join(re.findall(r"OnCalendar=([^;]+?) ;", calendar)) or "none"
    if not times:
        return f"{timer} has no calendar schedule (OnCalendar: {when})"
    if min(times) - now > MAX_INTERVAL_SECONDS:
        return (f"{timer} next fires in {round((min(times) - now) / 86400, 1)} days (OnCalendar: {when}), "
                "wanted at least daily")
    return None


def unit_problems(units: dict[str, dict[str, str]], now: int) -> list[str]:
    """What keeps the apt timers from running apt.systemd.daily: a timer not enabled (masked
    included), not running or scheduled less than daily, a service masked or missing."""
    problems = []
    for timer in TIMERS:
        state = units[timer]
        enabled = "masked" if state.get("LoadState") == "masked" else state.get("UnitFileState") or "absent"
        if enabled != "enabled":
            problems.append(f"{timer} is {enabled}, not enabled")
        if state.get("ActiveState") != "active":
            problems.append(f"{timer} is {state.get('ActiveState') or 'absent'}, not running (active)")
        schedule = schedule_problem(timer, state, now)
        if schedule:
            problems.append(schedule)
    for service in SERVICES:
        if units[service].get("LoadState") != "loaded":
            problems.append(f"{service} is {units[service].get('LoadState')}: its timer cannot start it")
    return problems


def unit_commands(units: dict[str, dict[str, str]]) -> list[str]:
    """systemctl commands that leave the services unmasked and the timers enabled and active."""
    commands = [f"systemctl unmask {s}" for s in SERVICES if units[s].get("LoadState") == "masked"]
    for timer in TIMERS:
        state = units[timer]
        enabled = "masked" if state.get("LoadState") == "masked" else state.get("UnitFileState", "")
        commands += timer_commands(timer, enabled, state.get("ActiveState", ""))
    return commands


def schedule_repairs(units: dict[str, dict[str, str]], now: int) -> tuple[list[str], list[str]]:
    """(commands, refusals) for a timer scheduled less than daily: the files in /etc that override
    the package's schedule (drop-ins, a copy of the unit) are renamed aside (systemd then ignores
    them), systemd reloaded and the timer restarted; with none in /etc the deploy refuses."""
    commands: list[str] = []
    refusals: list[str] = []
    for timer in TIMERS:
        problem = schedule_problem(timer, units[timer], now)
        if not problem:
            continue
        paths = [*units[timer].get("DropInPaths", "").split(), units[timer].get("FragmentPath", "")]
        local = [p for p in paths if p.startswith("/etc/")]
        if not local:
            refusals.append(f"patching: {problem}; set in {', '.join(p for p in paths if p) or 'an unknown file'}")
            continue
        commands += [f"mv {shlex.quote(p)} {shlex.quote(p + DISABLED_SUFFIX)}" for p in local]
        commands += ["systemctl daemon-reload", f"systemctl restart {timer}"]
    return commands, refusals


def timer_commands(timer: str, enabled: str, active: str) -> list[str]:
    """systemctl commands that leave a timer enabled and active, from its observed state.

    >>> timer_commands("apt-daily.timer", "masked", "inactive")
    ['systemctl unmask apt-daily.timer', 'systemctl enable --now apt-daily.timer']
    >>> timer_commands("apt-daily.timer", "enabled", "active")
    []
    """
    commands = [f"systemctl unmask {timer}"] if enabled == "masked" else []
    if enabled != "enabled":
        return [*commands, f"systemctl enable --now {timer}"]
    return [f"systemctl start {timer}"] if active != "active" else []


def config_problems(config: dict[str, list[str]], releases: list[Release], distro: tuple[str, str],
                    settings: Settings) -> dict[str, list[str]]:
    """apt key -> what the checks find wrong in apt's effective configuration (periodic runs as
    the profile says, the origins against the profile's under ``ORIGINS_KEY``, the package
    filters under ``FILTERS_KEY``)."""
    problems = {key: [text] for key, text in periodic_problems(config, settings.unattended_on).items()}
    for key, found in ((ORIGINS_KEY, origin_problems(config, releases, distro, settings.unattended_origins)),
                       (FILTERS_KEY, package_filter_problems(config))):
        if found:
            problems[key] = found
    return problems


@dataclass(frozen=True)
class ConfLine:
    """Lines of an apt configuration file, from ``APT_CONFIG_LINES`` (``file:number:text``): one
    line, or (``last``) the lines number..last of a block, ``text`` their text joined by newlines."""

    path: str
    number: int
    text: str
    last: int = 0

    def __str__(self) -> str:
        return f"{self.path}:{self.number}" + (f"-{self.last}" if self.last > self.number else "")


def _grep_lines(grep_lines: str, parts: str) -> list[tuple[str, int, str]]:
    """(path, number, text) of the lines of files apt reads, the tool's own files left out."""
    own = {f"{parts.rstrip('/')}/{path.rpartition('/')[2]}" for path in (AUTO_UPGRADES, ORIGINS_CONF)}
    found = []
    for line in grep_lines.splitlines():
        match = re.match(r"^([^:]+):(\d+):(.*)$", line)
        if match and match.group(1) not in own and apt_reads(match.group(1), parts):
            found.append((match.group(1), int(match.group(2)), match.group(3)))
    return found


def conf_lines(grep_lines: str, parts: str = PARTS) -> list[ConfLine]:
    """The lines apt reads (files it reads, comments and blank lines left out) that are not the tool's own."""
    found = []
    for path, number, text in _grep_lines(grep_lines, parts):
        stripped = text.strip()
        comment = stripped.startswith("//") or (stripped.startswith("#") and not stripped.startswith("#clear"))
        if not stripped or comment:
            continue
        found.append(ConfLine(path, number, text))
    return found


def read_after_ours(path: str, parts: str = PARTS) -> bool:
    """Whether apt reads ``path`` after the tool's origins file: a later name in apt.conf.d (apt
    reads the parts sorted bytewise), or /etc/apt/apt.conf (read after every part)."""
    if path == "/etc/apt/apt.conf":
        return True
    directory, _, name = path.rpartition("/")
    return directory == parts.rstrip("/") and name.encode() > ORIGINS_CONF.rpartition("/")[2].encode()


_ORIGIN_KEYS = r"Unattended-Upgrade::(Origins-Pattern|Allowed-Origins)"
_ENTRIES = r'(\s*"[^"]*"\s*;)*'
_TAIL = r"\s*(//.*)?"
ORIGIN_STATEMENT = re.compile(rf'{_ORIGIN_KEYS}(::)?\s+"[^"]*"\s*;{_TAIL}')
ORIGIN_ONE_LINE_BLOCK = re.compile(rf"{_ORIGIN_KEYS}\s*{{{_ENTRIES}\s*}}\s*;?{_TAIL}")
ORIGIN_OPENER = re.compile(rf"{_ORIGIN_KEYS}\s*{{{_ENTRIES}{_TAIL}")
ORIGIN_ENTRY = re.compile(rf"({_ENTRIES}{_TAIL}|/[*].*)")
ORIGIN_CLOSER = re.compile(rf"}}\s*;?{_TAIL}")
ORIGIN_CLEAR = re.compile(rf"#clear\s+Unattended-Upgrade(::(Origins-Pattern|Allowed-Origins))?\s*;?{_TAIL}")


def origin_lines(grep_lines: str, parts: str = PARTS) -> tuple[list[ConfLine], list[ConfLine]]:
    """(statements the deploy can switch off, lines a person must settle): what foreign files apt
    reads after the tool's origins file do to unattended-upgrade's origins (those read before are
    cleared by the tool's ``#clear``).

    Switched off: a one-line ``#clear`` of the origins, a one-line statement
    (``Unattended-Upgrade::Origins-Pattern:: "o=x";``), a block on one line, and a block over
    several lines (opener, quoted entries, comments, closer: one ``ConfLine`` for the range).
    Anything else naming the origins (a nested scope, a ``/* */`` comment in a block) is a person's.
    """
    rows = [r for r in _grep_lines(grep_lines, parts) if read_after_ours(r[0], parts)]
    simple: list[ConfLine] = []
    other: list[ConfLine] = []
    index = 0
    while index < len(rows):
        path, number, text = rows[index]
        stripped = text.strip()
        index += 1
        if stripped.startswith("//") or not re.search(r"Origins-Pattern|Allowed-Origins|#clear\s+Unattended", stripped):
            continue
        if ORIGIN_CLEAR.fullmatch(stripped) or ORIGIN_STATEMENT.fullmatch(stripped) \
                or ORIGIN_ONE_LINE_BLOCK.fullmatch(stripped):
            simple.append(ConfLine(path, number, text))
            continue
        if ORIGIN_OPENER.fullmatch(stripped):
            block = [text]
            while index < len(rows) and rows[index][0] == path and rows[index][1] == number + len(block):
                inner = rows[index][2].strip()
                if not ORIGIN_ENTRY.fullmatch(inner) and not ORIGIN_CLOSER.fullmatch(inner):
                    break
                block.append(rows[index][2])
                index += 1
                if ORIGIN_CLOSER.fullmatch(inner) or inner.startswith("/*"):
                    break
            if ORIGIN_CLOSER.fullmatch(block[-1].strip()) and not any(b.strip().startswith("/*") for b in block):
                simple.append(ConfLine(path, number, "\n".join(block), number + len(block) - 1))
                continue
        other.append(ConfLine(path, number, text))
    return simple, other


def apt_reads(path: str, parts: str = PARTS) -> bool:
    """Whether apt reads this file: /etc/apt/apt.conf, or a part in apt.conf.d whose name is
    letters, digits, ``_-.`` with no extension or ``.conf`` (apt skips the rest)."""
    if path == "/etc/apt/apt.conf":
        return True
    directory, _, name = path.rpartition("/")
    return (directory == parts.rstrip("/") and re.fullmatch(r"[A-Za-z0-9_.-]+", name) is not None
            and ("." not in name or name.endswith(".conf")))


def overriding_lines(key: str, lines: list[ConfLine], unattended: bool = True) -> tuple[list[ConfLine], list[ConfLine]]:
    """(lines the deploy can switch off, lines a person must settle) among foreign lines that set
    ``key`` to a value the profile does not want (``unattended``: its unattended runs on).

    Only a one-line statement of the full key (``APT::Periodic::Enable "0";``) is switched off;
    a nested scope (``APT { Periodic { ... }; };``) is named for a person. The origins are
    ``origin_lines``' (they depend on the order apt reads the files in).
    """
    simple, other = [], []
    for line in lines:
        text = line.text.strip()
        if key == FILTERS_KEY:
            if re.search(r"Package-(Black|White)list", text):
                other.append(line)
            continue
        full = re.fullmatch(rf'{re.escape(key)}\s+"([^"]*)"\s*;\s*(//.*)?', text)
        if full:
            if value_problem(key, full.group(1), unattended):
                simple.append(line)
            continue
        nested = re.search(rf'(^|[\s:{{;]){re.escape(key.rsplit("::", 1)[-1])}\s+"([^"]*)"', text)
        if nested and value_problem(key, nested.group(2), unattended):
            other.append(line)
    return simple, other


def disable_command(line: ConfLine) -> str:
    """Comments a foreign line (or each line of a block) out, only if it still reads as observed
    (else fails, naming it, and changes nothing)."""
    lines = f"{line.number},{line.last}" if line.last > line.number else str(line.number)
    script = f"{lines}s|^|{DISABLED_MARK}|"
    return (f"[ \"$(sed -n {lines}p {shlex.quote(line.path)})\" = {shlex.quote(line.text)} ]"
            f" && sed -i {shlex.quote(script)} {shlex.quote(line.path)}"
            f" || {{ echo {shlex.quote(f'{line} changed since it was observed')} >&2; exit 1; }}")


def repairs(problems: dict[str, list[str]], ours_in_place: bool, grep_lines: str,
            parts: str = PARTS, unattended: bool = True) -> tuple[list[ConfLine], list[str]]:
    """(foreign lines the deploy switches off, reasons it refuses) for apt's effective configuration.

    Writing the tool's files repairs a problem when they are not in place; foreign lines that set
    a key to a value the profile does not want (``unattended``: its unattended runs on) are
    switched off, and so are foreign statements read after the tool's origins file that add or
    clear origins; what is left (a nested scope, or nothing the tool can name while its files are
    in place) is refused, naming the file and line.
    """
    lines = conf_lines(grep_lines, parts)
    switch_off: list[ConfLine] = []
    refusals = []
    for key, texts in problems.items():
        if key == ORIGINS_KEY:
            simple, other = origin_lines(grep_lines, parts)
        else:
            simple, other = overriding_lines(key, lines, unattended)
        switch_off += [line for line in simple if line not in switch_off]
        where = ", ".join(map(str, other)) or "a file the tool cannot name"
        if key == FILTERS_KEY:
            refusals.append(f"patching: {'; '.join(texts)} (set in one of {where}; the deploy never edits "
                            "unattended-upgrades' package filters)")
        elif other:
            what = "a nested scope" + (" or a statement the tool cannot switch off" if key == ORIGINS_KEY else "")
            refusals.append(f"patching: {'; '.join(texts)} (set in {where}: {what})")
        elif ours_in_place and not simple:
            refusals.append(f"patching: {'; '.join(texts)} (set in {where}) although the tool's files are in place")
    return switch_off, refusals


def held_security_updates(simulation: str) -> list[str]:
    """Held packages with a pending security update (unattended-upgrades never installs them)."""
    held = set(held_changes(simulation))
    return [p for p in security_updates(simulation) if p in held]


MANUAL_CLAUSE = "6-8"


def manual_patching(attestations: list[dict[str, Any]]) -> tuple[str, str]:
    """(status, why) of 6-8 when the profile turns unattended upgrades off, from the host's
    evaluated attestation items (``Plan.attestations``): a manual patch process must take their
    place, and only a person can attest it.

    ``not_configured`` when the profile declares no attestation item for 6-8, ``fail`` when one
    is not attested (not evaluated, expired or a recorded failure), ``pass`` when all are.
    """
    items = [a for a in attestations if MANUAL_CLAUSE in a.get("clauses", [])]
    if not items:
        return ("not_configured", "the profile turns unattended security updates off and declares no attestation "
                "item for clause 6-8 (the manual patch process that replaces them): add one to the hardware "
                "profile's attestations and record it in attestations.yaml")
    open_items = [f"{a['id']} is {a['status']}" for a in items if a.get("status") != "attested"]
    if open_items:
        return ("fail", "unattended security updates are off (profile); the manual patch process is not attested: "
                + ", ".join(open_items))
    return ("pass", "unattended security updates are off (profile); manual patch process attested: "
            + ", ".join(f"{a['id']} by {a['by']} on {a['date']} (until {a['until']})" for a in items))


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch.

    Those of a check that the profile makes not applicable are left out (the apt timers when
    unattended upgrades are off, reboot, ClamAV), and so is what the deploy then does not touch.
    apt's configuration is read either way: off is a state the checks judge too.
    """
    settings: Settings = profile.measure("patching")
    commands = [NOW, SECURITY_LISTS, PENDING, HOLDS, POLICY, package_status("unattended-upgrades"),
                APT_CONFIG, APT_CONFIG_LINES, DISTRO, AUTO_UPGRADES_TEXT, ORIGINS_TEXT]
    if settings.unattended_on:
        commands.append(UNITS)
    if not settings.reboot_required_allowed:
        commands += [REBOOT_FLAG, REBOOT_PACKAGES, KERNEL_RELEASE, KERNEL_VERSION, KERNELS]
    if settings.anti_malware == "clamav":
        commands += [*(package_status(p) for p in CLAMAV_PACKAGES), FRESHCLAM_ACTIVE, SIGNATURES]
    return commands


MEASURE = Measure(
    name="patching",
    title="published vulnerabilities fixed, software kept up to date, known malware kept out",
    clauses=('6-8',),
    order=10,
    settings=Settings,
    observe=observe,
)
