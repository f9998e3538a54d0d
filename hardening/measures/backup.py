"""backup (6-17): restic backups of the personal-data paths in at least two separate places.

The clause asks for backups made according to the importance of the information, kept in
separate places. What a host can show: a scheduled job that backs its personal-data paths up
to every repository the profile names, each repository holding a recent snapshot that passes
``restic check`` and from which a sample of those files really restores, byte for byte; the
repositories in places that do not fail together (a local repository on another block device
than the data, or another host over SFTP).

Desired state, values from the profile (``measures.backup``):

* ``repositories``: each a ``name`` and a ``location``: a local directory (``/srv/backup/restic``,
  on a disk the operator formats and mounts: the deploy never formats disks) or
  ``sftp:USER@HOST:/PATH`` with the target's pinned ``host_keys`` (never an unknown host key:
  ``StrictHostKeyChecking yes`` against a known_hosts file of those keys only) and the private
  key the host logs in with (``identity_file``, on the control machine). None by default:
  every check says "not configured" and the deploy does nothing.
* ``paths``: what is backed up; empty means the personal-data directories of
  ``measures.auth.personal_data``.
* ``schedule`` (systemd OnCalendar), ``keep`` (``restic forget --prune --keep-*``), ``max_age``
  (how old the newest snapshot of each repository may be), ``restore_sample`` (how many files
  the restore test compares per repository).

Where the repository password comes from (``password_file``): a file on the control machine,
named by the profile, that the deploy copies to :data:`PASSWORD` (root, 0600). A password
generated on the host would live only there: when the host dies, its backups die with it. The
control machine's copy is the escrow; the agency keeps it (and a copy in its safe) as it keeps
any key, which is why the profile names it instead of the tool inventing one. The deploy never
overwrites a host's password that differs from that file once a repository exists: the old one
is what opens the repositories (changing it is ``restic key add`` / ``key remove``, by hand).
The SFTP private key (``identity_file``) is handled the same way: its public half goes into the
backup account's ``authorized_keys`` on the target, which is the target's administration.

What the host gets: :data:`SCRIPT` (every repository in turn: ``restic backup`` of the paths,
tagged :data:`TAG`, then ``restic forget --prune`` with the profile's keep-* for this host's
snapshots; a repository that fails does not stop the others, the run then fails naming it),
:data:`SERVICE` running it, :data:`TIMER` scheduling it, the secrets in :data:`DIRECTORY`.

The observation batch opens every repository with the host's own restic and credentials, as
the job does: ``restic snapshots --json`` (does it exist, is it reachable, how old is the newest
snapshot of this host), then ``restic check`` and, only when that passed, ``restic restore`` of
the latest snapshot limited to a sample of the paths' files (the oldest by change time, the most
likely unchanged since), each compared with ``cmp`` against the file on disk. A repository that
cannot be opened or checked fails, named; never a pass. Note on restic 0.14: a missing pack that
holds trees makes ``restic check`` retry for about 95 s before it reports the error.
"""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator, model_validator

from hardening.measures import _systemd
from hardening.measures._base import Measure, Strict
from hardening.measures.encryption import data_source, personal_data_paths
from hardening.measures.tmpdata import profile_seconds, span
from hardening.observe import json_output

DIRECTORY = "/etc/hardening/backup"
PASSWORD = f"{DIRECTORY}/password"
SCRIPT = "/usr/local/sbin/hardening-backup"
SERVICE = "hardening-backup.service"
TIMER = "hardening-backup.timer"
SERVICE_PATH = f"/etc/systemd/system/{SERVICE}"
TIMER_PATH = f"/etc/systemd/system/{TIMER}"
TAG = "hardening"
# Bounds on one restic run in the observation batch: a hung target must not stall the host's run.
OBSERVE_TIMEOUT = 600
CONNECT_TIMEOUT = 15
MISSING_REPOSITORY = "Is there a repository at the following location?"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_SFTP = re.compile(r"^sftp:(?P<user>[a-z_][a-z0-9_.-]*)@(?P<host>[A-Za-z0-9.-]+|\[[0-9a-fA-F:.]+\])"
                   r":(?P<path>/[^\s'\"\\]*)$")
_LOCAL = re.compile(r"^/[^\s'\"\\]*$")
_HOST_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa|sk-ssh-ed25519@openssh.com) "
                       r"[A-Za-z0-9+/]+={0,3}$")
_CALENDAR = re.compile(r"^[A-Za-z0-9*:,./~ -]+$")
_CONTROL_PATH = re.compile(r"^(/|~/)[^\n\0]*$")


# -- the profile ------------------------------------------------------------------------------

class Keep(Strict):
    """``restic forget --keep-*``: how many of the latest, daily, ... snapshots stay."""

    last: int = Field(default=0, ge=0)
    daily: int = Field(default=7, ge=0)
    weekly: int = Field(default=4, ge=0)
    monthly: int = Field(default=12, ge=0)
    yearly: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _something(self) -> Keep:
        if not any((self.last, self.daily, self.weekly, self.monthly, self.yearly)):
            raise ValueError("keep keeps nothing: restic forget would remove every snapshot")
        return self

    def arguments(self) -> list[str]:
        return [f"--keep-{k}={v}" for k, v in (("last", self.last), ("daily", self.daily), ("weekly", self.weekly),
                                               ("monthly", self.monthly), ("yearly", self.yearly)) if v]


class Repository(Strict):
    """One place the backups go."""

    name: str
    location: str
    # SFTP only: the target's host keys ("ssh-ed25519 AAAA..."), pinned; the private key on the
    # control machine whose public half the target's backup account authorizes; the port; and
    # key-exchange algorithms when OpenSSH's default must be narrowed (empty: OpenSSH's default).
    host_keys: list[str] = Field(default_factory=list)
    identity_file: str | None = None
    port: int = Field(default=22, ge=1, le=65535)
    kex_algorithms: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r}: a repository name is lower-case letters, digits and '-' "
                             "(a file name on the host)")
        return value

    @field_validator("host_keys")
    @classmethod
    def _keys(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _HOST_KEY.match(value.strip()):
                raise ValueError(f"{value[:60]!r} is not a public host key such as 'ssh-ed25519 AAAA...' "
                                 "(the target's /etc/ssh/ssh_host_*_key.pub without the comment)")
        return [v.strip() for v in values]

    @field_validator("identity_file")
    @classmethod
    def _identity(cls, value: str | None) -> str | None:
        if value is not None and not _CONTROL_PATH.match(value):
            raise ValueError(f"{value!r}: expected an absolute path (or ~/...) on the control machine")
        return value

    @field_validator("kex_algorithms")
    @classmethod
    def _kex(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"[a-z0-9@.+-]+", value):
                raise ValueError(f"{value!r} is not an OpenSSH algorithm name")
        return values

    @model_validator(mode="after")
    def _kind(self) -> Repository:
        if self.location.startswith("sftp:"):
            if not _SFTP.match(self.location):
                raise ValueError(f"location {self.location!r}: expected sftp:USER@HOST:/ABSOLUTE/PATH")
            if not self.host_keys:
                raise ValueError(f"repository {self.name}: an SFTP repository needs host_keys (the target's pinned "
                                 "public host keys): an unknown host key is never accepted")
            if not self.identity_file:
                raise ValueError(f"repository {self.name}: an SFTP repository needs identity_file (the private key "
                                 "on the control machine that the target's backup account authorizes)")
        elif _LOCAL.match(self.location):
            if self.host_keys or self.identity_file or self.kex_algorithms or self.port != 22:
                raise ValueError(f"repository {self.name}: host_keys, identity_file, port and kex_algorithms are "
                                 "for SFTP repositories only")
            if self.location.rstrip("/") in ("", "/tmp", "/var/tmp", "/root", "/etc"):
                raise ValueError(f"location {self.location!r} is not a place for a repository")
        else:
            raise ValueError(f"location {self.location!r}: expected an absolute directory (a local repository) or "
                             "sftp:USER@HOST:/PATH")
        return self

    @property
    def sftp(self) -> bool:
        return self.location.startswith("sftp:")

    @property
    def target(self) -> tuple[str, str, str]:
        """(user, host, path) of an SFTP location."""
        match = _SFTP.match(self.location)
        assert match is not None
        return match.group("user"), match.group("host").strip("[]"), match.group("path")

    def __str__(self) -> str:
        return f"{self.name} ({self.location})"


class Settings(Strict):
    # Where the backups go (see the module's docstring). None: every check is "not configured".
    repositories: list[Repository] = Field(default_factory=list)
    # The repository password, a file on the control machine copied to the host (the escrow).
    password_file: str | None = None
    # What is backed up; empty: the personal-data paths of measures.auth.personal_data.
    paths: list[str] = Field(default_factory=list)
    schedule: str = "daily"
    # The newest snapshot in each repository must be younger than this (s, min, h, d, w).
    max_age: str = "26h"
    keep: Keep = Keep()
    restore_sample: int = Field(default=3, ge=1, le=20)

    @field_validator("password_file")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        if value is not None and not _CONTROL_PATH.match(value):
            raise ValueError(f"{value!r}: expected an absolute path (or ~/...) on the control machine")
        return value

    @field_validator("paths")
    @classmethod
    def _paths(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _LOCAL.match(value) or value.rstrip("/") == "":
                raise ValueError(f"{value!r}: expected an absolute path without spaces or quotes")
        return values

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if not _CALENDAR.match(value):
            raise ValueError(f"{value!r} is not a systemd OnCalendar expression such as daily or '*-*-* 02:30'")
        return value

    @field_validator("max_age")
    @classmethod
    def _age(cls, value: str) -> str:
        if profile_seconds(value) < 60:
            raise ValueError(f"{value!r} is shorter than a minute")
        return value

    @model_validator(mode="after")
    def _repositories(self) -> Settings:
        names = [r.name for r in self.repositories]
        if len(set(names)) != len(names):
            raise ValueError("a repository name is used twice")
        if self.repositories and not self.password_file:
            raise ValueError("repositories need password_file: the repository password, a file on the control "
                             "machine that the deploy copies to the host (kept there as the escrow)")
        return self

    @property
    def max_age_seconds(self) -> int:
        return profile_seconds(self.max_age)


def configured(settings: Settings) -> bool:
    return bool(settings.repositories)


NO_PATHS = ("hwprofiles: measures.backup.paths or measures.auth.personal_data (what is backed up: the "
            "personal-data directories)")
NO_REPOSITORIES = ("hwprofiles: measures.backup.repositories (at least two places, e.g. a local repository on a "
                   "second disk and sftp:USER@HOST:/PATH on another host) and measures.backup.password_file")


def data_paths(profile: Any) -> list[str]:
    """What is backed up: ``measures.backup.paths``, else the personal-data paths."""
    settings: Settings = profile.measure("backup")
    return list(settings.paths) or personal_data_paths(profile)


# -- the desired state ------------------------------------------------------------------------

def key_path(repo: Repository) -> str:
    return f"{DIRECTORY}/{repo.name}.key"


def known_hosts_path(repo: Repository) -> str:
    return f"{DIRECTORY}/{repo.name}.known_hosts"


def known_hosts(repo: Repository) -> str:
    """The pinned keys of an SFTP target as ssh reads them (``[host]:port`` off port 22)."""
    _, host, _ = repo.target
    name = host if repo.port == 22 else f"[{host}]:{repo.port}"
    return "".join(f"{name} {key}\n" for key in repo.host_keys)


def ssh_command(repo: Repository) -> str:
    """The ssh restic runs for an SFTP repository: the pinned keys only, never a prompt."""
    user, host, _ = repo.target
    options = [f"-i {key_path(repo)}", "-o IdentitiesOnly=yes", f"-o UserKnownHostsFile={known_hosts_path(repo)}",
               "-o GlobalKnownHostsFile=/dev/null", "-o StrictHostKeyChecking=yes", "-o BatchMode=yes",
               f"-o ConnectTimeout={CONNECT_TIMEOUT}", "-o ServerAliveInterval=15", "-F /dev/null"]
    if repo.kex_algorithms:
        options.append(f"-o KexAlgorithms={','.join(repo.kex_algorithms)}")
    return f"ssh {' '.join(options)} -p {repo.port} {user}@{host} -s sftp"


def restic_args(repo: Repository) -> str:
    """``-r LOCATION`` (and the ssh of an SFTP repository), shell-quoted."""
    args = f"-r {shlex.quote(repo.location)}"
    if repo.sftp:
        args += " -o " + shlex.quote(f"sftp.command={ssh_command(repo)}")
    return args


def restic(repo: Repository, subcommand: str, timeout: int | None = None) -> str:
    """A restic command line with the host's password file, as the job runs it."""
    prefix = f"timeout {timeout} " if timeout else ""
    return f"env RESTIC_PASSWORD_FILE={PASSWORD} {prefix}restic {restic_args(repo)} {subcommand}"


def script(settings: Settings, paths: list[str]) -> str:
    """The text of :data:`SCRIPT`: every repository in turn, failures named at the end."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    keep = " ".join(settings.keep.arguments())
    lines = [
        "#!/bin/sh",
        "# Managed by hardening (backup, 6-17). Changes here are overwritten by the next deploy.",
        "# Backs the personal-data paths up to every repository, then applies the profile's retention.",
        "set -u",
        f"export RESTIC_PASSWORD_FILE={PASSWORD}",
        'host=$(hostname)',
        'failed=""',
        "to() {",
        '    name=$1; shift',
        f'    if restic "$@" backup --tag {TAG} --host "$host" -- {quoted} &&',
        f'       restic "$@" forget --prune --tag {TAG} --host "$host" {keep}; then',
        '        echo "backup to $name: done"',
        "    else",
        '        echo "backup to $name: FAILED" >&2; failed="$failed $name"',
        "    fi",
        "}",
    ]
    lines += [f"to {r.name} {restic_args(r)}" for r in settings.repositories]
    lines += ['[ -z "$failed" ] || { echo "backup failed for:$failed" >&2; exit 1; }', ""]
    return "\n".join(lines)


def service_unit() -> str:
    return ("# Managed by hardening (backup, 6-17). Changes here are overwritten.\n"
            "[Unit]\n"
            "Description=Backup of the personal-data paths to every repository (hardening backup, 6-17)\n"
            "Wants=network-online.target\n"
            "After=network-online.target local-fs.target\n"
            "\n[Service]\n"
            "Type=oneshot\n"
            f"ExecStart={SCRIPT}\n"
            "Nice=10\n"
            "IOSchedulingClass=idle\n")


def timer_unit(settings: Settings) -> str:
    return ("# Managed by hardening (backup, 6-17). Changes here are overwritten.\n"
            "[Unit]\n"
            "Description=Scheduled backup of the personal-data paths (hardening backup, 6-17)\n"
            "\n[Timer]\n"
            f"OnCalendar={settings.schedule}\n"
            "Persistent=true\n"
            "RandomizedDelaySec=10min\n"
            "\n[Install]\n"
            "WantedBy=timers.target\n")


def ensure_script(repo: Repository) -> str:
    """Shell that initializes ``repo`` when restic says there is none, and fails (naming it) when
    it cannot be opened for another reason: decided when it runs, after the credentials are in."""
    return (f"out=$({restic(repo, 'cat config', OBSERVE_TIMEOUT)} 2>&1 >/dev/null) && exit 0; "
            f'case "$out" in *{shlex.quote(MISSING_REPOSITORY)}*) exec {restic(repo, "init")} ;; esac; '
            f"echo {shlex.quote(f'backup repository {repo}: cannot be opened:')} \"$out\" >&2; exit 1")


# -- the observations -------------------------------------------------------------------------

UNITS = ("systemctl show --timestamp=unix -p Id,LoadState,ActiveState,UnitFileState,Result,"
         f"ExecMainStartTimestamp,ExecMainStatus {TIMER} {SERVICE}")
CAT_SERVICE = f"systemctl cat {SERVICE}"
CAT_TIMER = f"systemctl cat {TIMER}"
CAT_SCRIPT = f"cat {SCRIPT}"


def stat_command(paths: list[str]) -> str:
    """``path|type|owner|group|mode`` per path, ``path|absent`` for a missing one."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    return (f"for f in {quoted}; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then stat -c '%n|%F|%U|%G|%a' \"$f\"; "
            "else echo \"$f|absent\"; fi; done")


def secret_files(settings: Settings) -> list[str]:
    """The host's secret files: the directory, the password, each SFTP key."""
    return [DIRECTORY, PASSWORD, *(key_path(r) for r in settings.repositories if r.sftp)]


def known_hosts_command(repo: Repository) -> str:
    return f"cat {known_hosts_path(repo)}"


def snapshots_command(repo: Repository) -> str:
    """This host's snapshots of the job (JSON); restic's error when it cannot open the repository."""
    return restic(repo, f'snapshots --json --no-lock --tag {TAG} --host "$(hostname)"', OBSERVE_TIMEOUT)


def verify_command(repo: Repository, paths: list[str], sample: int) -> str:
    """``restic check``, then (only when it passed) the restore test: the ``sample`` oldest files
    (by change time) of the paths restored from this host's latest snapshot into a scratch
    directory and compared with ``cmp``. Markers (see :func:`parse_verify`)::

        CHECK <exit>
        RESTORE <exit> | RESTORE skipped | RESTORE nothing
        FILE <cmp exit> <ctime> <size> <path in base64>
    """
    quoted = " ".join(shlex.quote(p) for p in paths)
    latest = f'restore latest --tag {TAG} --host "$(hostname)" --target "$t/r"'
    return (
        f"{restic(repo, 'check', OBSERVE_TIMEOUT)} 2>&1; rc=$?; echo \"CHECK $rc\"; "
        'if [ "$rc" != 0 ]; then echo "RESTORE skipped"; exit 0; fi; '
        't=$(mktemp -d) || exit 1; trap \'rm -rf "$t"\' EXIT; '
        f"find {quoted} -xdev -type f ! -name '*[[*?\\\\]*' -printf '%C@ %p\\0' 2>/dev/null | sort -zn "
        f"| head -zn {int(sample)} | cut -zd' ' -f2- > \"$t/list\"; "
        'if [ ! -s "$t/list" ]; then echo "RESTORE nothing"; exit 0; fi; '
        'set --; while IFS= read -r -d "" f; do set -- "$@" --include "$f"; done < "$t/list"; '
        f'{restic(repo, latest, OBSERVE_TIMEOUT)} "$@" 2>&1; echo "RESTORE $?"; '
        'while IFS= read -r -d "" f; do cmp -s -- "$f" "$t/r$f"; c=$?; '
        'printf \'FILE %s %s %s\\n\' "$c" "$(stat -c \'%Z %s\' -- "$f")" "$(printf %s "$f" | base64 -w0)"; '
        'done < "$t/list"'
    )


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch;
    nothing at all when the profile names no repository."""
    settings: Settings = profile.measure("backup")
    paths = data_paths(profile)
    if not configured(settings) or not paths:
        return []
    local = [r.location for r in settings.repositories if not r.sftp]
    commands = [UNITS, CAT_SERVICE, CAT_TIMER, CAT_SCRIPT, stat_command(secret_files(settings))]
    commands += [known_hosts_command(r) for r in settings.repositories if r.sftp]
    commands += [data_source(p) for p in [*paths, *local]]
    commands += [snapshots_command(r) for r in settings.repositories]
    commands += [verify_command(r, paths, settings.restore_sample) for r in settings.repositories]
    return commands


# -- reading the observations -----------------------------------------------------------------

@dataclass(frozen=True)
class Opened:
    """What ``restic snapshots`` said about one repository."""

    state: str  # "ok" | "missing" | "error"
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""

    @property
    def newest(self) -> datetime | None:
        times = [parse_time(str(s.get("time", ""))) for s in self.snapshots]
        return max(times) if times else None


def restic_error(stderr: str, rc: int) -> str:
    """restic's own words for a failure: its ``Fatal:`` line (and what follows), else the last lines."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fatal = next((i for i, line in enumerate(lines) if line.startswith("Fatal:")), None)
    chosen = lines[fatal:fatal + 2] if fatal is not None else lines[-3:]
    text = " ".join(chosen)[:400]
    if rc == 124:
        return f"timed out after {OBSERVE_TIMEOUT} s" + (f" ({text})" if text else "")
    return text or f"exit {rc} without a message"


def parse_snapshots(stdout: str, stderr: str, rc: int) -> Opened:
    """:func:`snapshots_command` -> Opened; ValueError when restic said it worked but printed no
    list of snapshots (never read as "no snapshots")."""
    if rc != 0:
        if MISSING_REPOSITORY in stderr:
            return Opened("missing", error=restic_error(stderr, rc))
        return Opened("error", error=restic_error(stderr, rc))
    data = json_output(rc, stdout, "restic snapshots")
    if not isinstance(data, list) or not all(isinstance(s, dict) and "time" in s for s in data):
        raise ValueError(f"restic snapshots printed no list of snapshots: {stdout[:200]!r}")
    for snapshot in data:
        parse_time(str(snapshot["time"]))
    return Opened("ok", snapshots=data)


def parse_time(value: str) -> datetime:
    """restic's RFC 3339 time with nanoseconds (``2026-12-02T05:21:43.308106408Z``)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", value)
    if not match:
        raise ValueError(f"unreadable snapshot time {value!r}")
    fraction = (match.group(2) or ".0")[:7]
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(match.group(1) + fraction + zone)


@dataclass(frozen=True)
class Compared:
    path: str
    cmp: int      # 0 same, 1 differs, 2 missing from the restore (or unreadable)
    ctime: float
    size: int


@dataclass
class Verified:
    """What :func:`verify_command` showed for one repository."""

    check_rc: int
    check_output: str
    restore: str               # "skipped" | "nothing" | "<exit code>"
    restore_output: str = ""
    snapshot: str = ""         # the restored snapshot's short id
    snapshot_time: datetime | None = None
    files: list[Compared] = field(default_factory=list)


_RESTORING = re.compile(r"restoring <Snapshot ([0-9a-f]+) of \[.*\] at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)? "
                        r"([+-]\d{4})")


def parse_verify(stdout: str, rc: int) -> Verified:
    """:func:`verify_command` output -> Verified; ValueError when a marker is missing or garbled."""
    check = re.search(r"^CHECK (\d+)$", stdout, re.M)
    restore = re.search(r"^RESTORE (skipped|nothing|\d+)$", stdout, re.M)
    if rc != 0 or not check or not restore:
        raise ValueError(f"the check and restore test of the repository did not finish (exit {rc}): "
                         f"{stdout[-300:]!r}")
    result = Verified(int(check.group(1)), stdout[:check.start()].strip(), restore.group(1),
                      stdout[check.end():restore.start()].strip())
    found = _RESTORING.search(result.restore_output)
    if found:
        result.snapshot = found.group(1)
        stamp = found.group(2) + (found.group(3) or ".0")[:7] + found.group(4)
        result.snapshot_time = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f%z")
    for line in stdout[restore.end():].splitlines():
        if not line.strip():
            continue
        parts = line.split(" ")
        try:
            if parts[0] != "FILE" or len(parts) != 5:
                raise ValueError
            path = base64.b64decode(parts[4], validate=True).decode("utf-8", errors="surrogateescape")
            result.files.append(Compared(path, int(parts[1]), float(parts[2]), int(parts[3])))
        except (ValueError, IndexError):
            raise ValueError(f"unreadable line of the restore test: {line[:200]!r}") from None
    return result


def check_problem(repo: Repository, verified: Verified) -> str | None:
    """Why ``restic check`` did not pass for ``repo``, or None."""
    if verified.check_rc == 0:
        return None
    text = restic_error(verified.check_output, verified.check_rc)
    errors = [line.strip() for line in verified.check_output.splitlines()
              if re.match(r"\s*(pack \S+: does not exist|error for tree|Fatal:|Load\(|unable|.*: no such file)", line)]
    detail = "; ".join(dict.fromkeys(errors))[:400] or text
    return f"repository {repo}: restic check failed (exit {verified.check_rc}): {detail}"


def restore_problems(repo: Repository, verified: Verified) -> tuple[list[str], list[Compared], list[Compared]]:
    """(problems, compared files, files changed since the snapshot) of the restore test."""
    if verified.restore == "skipped":
        return [f"repository {repo}: no restore test: restic check failed"], [], []
    if verified.restore == "nothing":
        return [], [], []
    if verified.restore != "0" or verified.snapshot_time is None:
        why = restic_error(verified.restore_output, int(verified.restore)) if verified.restore.isdigit() else ""
        return [f"repository {repo}: restic restore of the latest snapshot failed (exit {verified.restore}): "
                f"{why}"], [], []
    taken = verified.snapshot_time.timestamp()
    compared = [f for f in verified.files if f.ctime < taken]
    changed = [f for f in verified.files if f.ctime >= taken]
    problems = [f"repository {repo}: {f.path} restored from snapshot {verified.snapshot} "
                + ("differs from the file on disk" if f.cmp == 1 else "is missing from the restore")
                for f in compared if f.cmp != 0]
    if not compared:
        problems.append(f"repository {repo}: every sampled file changed after the latest snapshot "
                        f"{verified.snapshot} ({verified.snapshot_time.isoformat()}): nothing could be compared")
    return problems, compared, changed


def freshness_problem(repo: Repository, opened: Opened, now: datetime, limit: int) -> str | None:
    """Why ``repo`` holds no snapshot of this host younger than ``limit`` seconds, or None."""
    if opened.state == "missing":
        return f"repository {repo} does not exist (restic: {opened.error})"
    if opened.state == "error":
        return f"repository {repo} cannot be opened: {opened.error}"
    newest = opened.newest
    if newest is None:
        return f"repository {repo} holds no snapshot of this host"
    age = (now - newest).total_seconds()
    if age > limit:
        return (f"repository {repo}: the newest snapshot is {span(age)} old ({newest.isoformat()}), "
                f"older than {span(limit)}")
    return None


def parse_stats(stdout: str) -> dict[str, dict[str, str]]:
    """:func:`stat_command` -> path -> {type, owner, group, mode} ({} for an absent path)."""
    out: dict[str, dict[str, str]] = {}
    for line in stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 2 and parts[1] == "absent":
            out[parts[0]] = {}
        elif len(parts) == 5 and re.fullmatch(r"[0-7]{1,4}", parts[4]):
            out[parts[0]] = {"type": parts[1], "owner": parts[2], "group": parts[3], "mode": parts[4]}
        else:
            raise ValueError(f"unreadable stat line {line[:200]!r}")
    return out


def secret_problems(stats: dict[str, dict[str, str]], wanted: list[str]) -> list[str]:
    """Each secret file (and their directory) present, owned by root:root, nothing for group or others."""
    problems = []
    for path in wanted:
        entry = stats.get(path)
        if entry is None:
            raise ValueError(f"{path} missing from the stat listing")
        if not entry:
            problems.append(f"{path} does not exist")
            continue
        kind = "directory" if path == DIRECTORY else "regular file"
        if entry["type"] != kind and not (kind == "regular file" and entry["type"] == "regular empty file"):
            problems.append(f"{path} is a {entry['type']}, not a {kind}")
        if (entry["owner"], entry["group"]) != ("root", "root"):
            problems.append(f"{path} is owned by {entry['owner']}:{entry['group']}, not root:root")
        if int(entry["mode"], 8) & 0o077:
            problems.append(f"{path} has mode {int(entry['mode'], 8):04o}: readable beyond root")
    return problems


def parse_cat(stdout: str, rc: int, unit: str) -> list[tuple[str, str]]:
    """``systemctl cat UNIT`` -> [(file, text)], the unit file first, then its drop-ins;
    [] when systemctl knows no such unit."""
    if rc != 0:
        return []
    sections: list[tuple[str, list[str]]] = []
    for line in stdout.splitlines():
        header = re.fullmatch(r"# (/\S+)", line)
        if header and (not sections or not sections[-1][1] or sections[-1][1][-1] == ""):
            sections.append((header.group(1), []))
        elif sections:
            sections[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"systemctl cat {unit}: unreadable output {stdout[:200]!r}")
    return [(f, "\n".join(lines).strip("\n") + "\n") for f, lines in sections]


def unit_problems(sections: list[tuple[str, str]], path: str, text: str) -> list[str]:
    """The unit systemd loads is exactly ours: our file with our text, no drop-in."""
    if not sections:
        return [f"{path} is not loaded (systemctl cat knows no such unit)"]
    problems = []
    first, body = sections[0]
    if first != path:
        problems.append(f"systemd loads {first}, not {path}")
    elif body.strip("\n") != text.strip("\n"):
        problems.append(f"{path} differs from the profile's ({_first_difference(body, text)})")
    problems += [f"the drop-in {f} changes the unit" for f, _ in sections[1:]]
    return problems


def script_problems(stdout: str, rc: int, settings: Settings, paths: list[str]) -> list[str]:
    if rc != 0:
        return [f"{SCRIPT} cannot be read (exit {rc})"]
    wanted = script(settings, paths)
    if stdout != wanted:
        return [f"{SCRIPT} differs from the profile's ({_first_difference(stdout, wanted)})"]
    return []


def _first_difference(have: str, want: str) -> str:
    for number, (a, b) in enumerate(zip(have.splitlines(), want.splitlines(), strict=False), start=1):
        if a != b:
            return f"line {number}: {a.strip()[:120]!r} instead of {b.strip()[:120]!r}"
    return f"{len(have.splitlines())} lines instead of {len(want.splitlines())}"


def timer_problems(units: dict[str, dict[str, str]]) -> list[str]:
    """The timer enabled and waiting, its service loaded and its last run good."""
    return _systemd.timer_problems(units, TIMER, SERVICE, "backup", enabled=True)


def device(source: str) -> str:
    """findmnt's SOURCE without a bind mount's ``[/subdir]``."""
    return source.split("[", 1)[0].strip()


def parse_source(stdout: str) -> tuple[str, str]:
    """:func:`encryption.data_source` -> (path, device); ValueError when findmnt named none."""
    path, _, source = stdout.strip().partition("\t")
    if not path or not source.strip():
        raise ValueError(f"no file system found for {path or stdout[:100]!r}")
    return path, device(source)


def place(repo: Repository, local_device: str | None) -> str:
    """Where a repository is, as a place that fails on its own: a block device or a host."""
    if repo.sftp:
        return f"host {repo.target[1]}"
    return f"device {local_device}"


def separation_problems(settings: Settings, devices: dict[str, str], paths: list[str]) -> list[str]:
    """At least two separate places; no local repository on the device of the data it backs up.
    ``devices``: path -> device holding it, for the data paths and the local repositories."""
    problems = []
    places: dict[str, list[str]] = {}
    for repo in settings.repositories:
        where = place(repo, None if repo.sftp else devices[repo.location])
        places.setdefault(where, []).append(repo.name)
        if not repo.sftp:
            shared = [p for p in paths if devices[p] == devices[repo.location]]
            if shared:
                problems.append(f"repository {repo} is on {devices[repo.location]}, the device that holds "
                                f"{', '.join(shared)}: one disk failure loses the data and this copy")
    if len(places) < 2:
        problems.append("the backups are not in two separate places: "
                        + "; ".join(f"{', '.join(names)} on {where}" for where, names in places.items()))
    return problems


MEASURE = Measure(
    name="backup",
    title="restic backups of the personal-data paths in two separate places, checked and restored",
    clauses=("6-17",),
    order=35,
    settings=Settings,
    observe=observe,
)
