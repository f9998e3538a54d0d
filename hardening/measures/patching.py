"""patching (6-8): published vulnerabilities fixed, software kept up to date, known malware kept out.

Desired state (shared by ``deploys/patching.py`` and ``checks/test_patching.py``):

* unattended-upgrades installed; ``/etc/apt/apt.conf.d/20auto-upgrades`` (the file Debian's
  ``dpkg-reconfigure unattended-upgrades`` writes) with Update-Package-Lists and
  Unattended-Upgrade "1" (daily), ``52hardening-unattended-upgrades`` adding the security
  origin to Origins-Pattern (APT lists are additive, so the package's 50unattended-upgrades
  keeps its own); apt-daily.timer and apt-daily-upgrade.timer enabled.
* Pending security updates are applied by the deploy **only** when the profile says
  ``apply_security_updates: true``. Updating a production host is a change-management decision
  (a window, a restart of services, a reboot for a kernel): by default the deploy turns on the
  automatic mechanism and the check reports what is still pending.
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
import re
from typing import Any, Literal

from pydantic import Field

from hardening.measures._base import Measure, Strict
from hardening.observe import Observation, quote

AUTO_UPGRADES = "/etc/apt/apt.conf.d/20auto-upgrades"
ORIGINS_CONF = "/etc/apt/apt.conf.d/52hardening-unattended-upgrades"
TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")
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
    unattended_upgrades: bool = True
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


# -- desired state -------------------------------------------------------------------------------

def periodic_values() -> dict[str, str]:
    """APT::Periodic values (days; "1" = daily) the deploy writes and the check wants effective."""
    return {"APT::Periodic::Update-Package-Lists": "1", "APT::Periodic::Unattended-Upgrade": "1"}


def auto_upgrades_conf() -> str:
    body = "".join(f'{key} "{value}";\n' for key, value in periodic_values().items())
    return "// Managed by hardening (patching, 6-8): daily list updates and unattended security upgrades.\n" + body


def origins_conf() -> str:
    return ("// Managed by hardening (patching, 6-8): security updates are always among the origins.\n"
            "Unattended-Upgrade::Origins-Pattern {\n"
            f'    "{SECURITY_ORIGIN}";\n'
            "};\n")


def pending_command() -> str:
    """Simulated full upgrade without taking apt's lock: read-only, prints `Inst` lines."""
    return "apt-get -s -o Debug::NoLocking=1 dist-upgrade"


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


def periodic_problems(config: dict[str, list[str]]) -> list[str]:
    problems = []
    for key, want in periodic_values().items():
        seen = config.get(key, [None])[-1]
        if seen != want:
            problems.append(f"{key} is {seen!r}, wanted {want!r}")
    return problems


def security_origin_configured(config: dict[str, list[str]]) -> bool:
    """Unattended-Upgrade's Origins-Pattern (or the older Allowed-Origins) names a security suite."""
    entries = config.get("Unattended-Upgrade::Origins-Pattern::", []) + \
        config.get("Unattended-Upgrade::Allowed-Origins::", [])
    return any("security" in entry.lower() for entry in entries)


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
APT_CONFIG = "apt-config dump | grep -E 'APT::Periodic|Unattended-Upgrade::(Origins-Pattern|Allowed-Origins)'"
# `file:line` of the apt configuration lines that may set these keys (to name a file that overrides
# the tool's; comments are left out when read, see setting_files).
APT_CONFIG_LINES = ("grep -rHsE 'Update-Package-Lists|Unattended-Upgrade|Origins-Pattern|Allowed-Origins|#clear' "
                    "/etc/apt/apt.conf /etc/apt/apt.conf.d")
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


def timer_enabled(timer: str) -> str:
    return quote("systemctl is-enabled %s", timer)


def timer_active(timer: str) -> str:
    return quote("systemctl is-active %s", timer)


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


def config_problems(config: dict[str, list[str]]) -> list[str]:
    """What the check finds wrong in apt's effective configuration (periodic runs, security origin)."""
    problems = periodic_problems(config)
    if not security_origin_configured(config):
        problems.append("no security origin in Unattended-Upgrade::Origins-Pattern")
    return problems


def setting_files(problem: str, grep_lines: str) -> list[str]:
    """The files (not the tool's) whose uncommented lines may set the key of one problem of
    :func:`config_problems`, from ``APT_CONFIG_LINES`` output (``file:line``).

    A periodic value is set by ``...Key "value";``; a missing security origin means a later file
    cleared the list the tool's file adds to (``#clear``).
    """
    if problem.startswith("APT::Periodic::"):
        key = problem.split()[0].rsplit("::", 1)[-1]
        pattern = re.compile(rf'(^|[\s:{{;]){re.escape(key)}\s+"')
    else:
        pattern = re.compile(r"#clear")
    found: list[str] = []
    for line in grep_lines.splitlines():
        path, sep, text = line.partition(":")
        if sep and path not in (AUTO_UPGRADES, ORIGINS_CONF) and not text.strip().startswith("//") \
                and pattern.search(text) and path not in found:
            found.append(path)
    return found


def config_conflict(problems: list[str], ours_in_place: bool, grep_lines: str) -> str | None:
    """Why the deploy refuses: the tool's own files are already in place, yet apt's effective
    configuration still differs, so another file overrides them (writing ours again changes nothing).

    >>> lines = '/etc/apt/apt.conf.d/99local:APT::Periodic::Unattended-Upgrade "0";'
    >>> config_conflict(["APT::Periodic::Unattended-Upgrade is '0', wanted '1'"], True, lines)
    "patching: APT::Periodic::Unattended-Upgrade is '0', wanted '1' (set in /etc/apt/apt.conf.d/99local) \
although the tool's files are in place"
    >>> config_conflict(["APT::Periodic::Unattended-Upgrade is '0'"], False, lines)  # writing ours repairs it
    """
    if not problems or not ours_in_place:
        return None
    named = []
    for problem in problems:
        files = setting_files(problem, grep_lines)
        named.append(f"{problem} (set in {', '.join(files) if files else 'a file the tool cannot name'})")
    return f"patching: {'; '.join(named)} although the tool's files are in place"


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch.

    Those of a check that the profile makes not applicable are left out (unattended-upgrades,
    reboot, ClamAV), and so is what the deploy then does not touch.
    """
    settings: Settings = profile.measure("patching")
    commands = [NOW, SECURITY_LISTS, PENDING, package_status("unattended-upgrades")]
    if settings.unattended_upgrades:
        commands += [APT_CONFIG, APT_CONFIG_LINES, AUTO_UPGRADES_TEXT, ORIGINS_TEXT]
        commands += [c for t in TIMERS for c in (timer_enabled(t), timer_active(t))]
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
