"""terminal (6-12, 6-13, 6-14): limit the terminals that process personal data.

Desired state: SSH only for members of the profile's ``ssh_allow_groups`` (``AllowGroups`` in the
measure's sshd drop-in).

The default group is ``ssh-users`` (:data:`SSH_GROUP`), a group whose only meaning is "may log in
over SSH", and NOT the administrators' group (``sudo``): with ``AllowGroups sudo`` every SSH or
SFTP user would have to be a full sudoer, the opposite of least administrator privilege (6-6), and
every other account that logs in today would be shut out. Who may log in and who may administer
stay two decisions. The deploy creates ``ssh-users`` (a system group) when the profile allows it
and it is missing, and adds the account the deploy connects as (it needs SSH to work at all; it
has sudo already, so this grants nothing new). A profile that names other groups keeps them: the
deploy then adds no one anywhere.

Two refusals, both before sshd is touched:

* :func:`lockout_reason`: the groups would exclude the account the deploy connects as (counting
  the ``ssh-users`` membership the deploy itself adds), so it cannot lock itself out;
* :func:`access_refusal`: the groups contain NONE of the accounts that log in over SSH today
  (other than the deploy account), read from the host (:func:`logins_today`): every one of them
  would lose SSH at once. A profile that means it says so with ``ssh_allow_groups_confirmed:
  true``. Readings that cannot be parsed are a refusal, never a pass.

Observed only (checks): the host's identity against the inventory's asset register
(machine-id, DMI serial, MAC; 6-12/6-13) and, on a list of expected networks, the default route
and addresses (a terminal taken out and seen elsewhere, 6-14).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from hardening.measures import _sshd
from hardening.measures._base import Measure, Strict, check_cidrs
from hardening.observe import json_output

# The group whose only meaning is SSH access (see the module's docstring): the default of
# ssh_allow_groups, created by the deploy, with the deploy account in it.
SSH_GROUP = "ssh-users"


class Settings(Strict):
    ssh_allow_groups: list[str] = Field(default_factory=lambda: [SSH_GROUP])
    # True: apply ssh_allow_groups even when they contain none of the accounts that log in over
    # SSH today (they all lose SSH); the operator has checked it. Default: refuse, naming them.
    ssh_allow_groups_confirmed: bool = False
    # Networks the host may appear on; a default route or address outside them is reported.
    expected_networks: list[str] = Field(default_factory=list)
    match_asset_register: bool = True

    @field_validator("expected_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return check_cidrs(value)

    @field_validator("ssh_allow_groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one group: an empty AllowGroups is not written and would "
                             "leave SSH open to every account")
        return [_sshd.check_token(v) for v in value]


def sshd_directives(settings: Settings) -> dict[str, str | list[str]]:
    """The sshd keywords this measure owns."""
    return {"AllowGroups": list(settings.ssh_allow_groups)}


def sshd_dropin(settings: Settings) -> str:
    """The text of /etc/ssh/sshd_config.d/10-hardening-terminal.conf."""
    return _sshd.render("terminal", ", ".join(MEASURE.clauses), sshd_directives(settings))


def allow_groups_problem(settings: Settings, groups: list[str]) -> str | None:
    """Why one connection class's AllowGroups (sshd -T) is wider than the profile's, or None:
    none at all lets every account in; a group outside the profile widens it; fewer is stricter."""
    if not groups:
        return "no AllowGroups: every account may log in"
    extra = sorted(set(groups) - set(settings.ssh_allow_groups))
    return f"AllowGroups {' '.join(groups)} adds {', '.join(extra)}" if extra else None


def membership_to_add(settings: Settings, groups: list[str]) -> str | None:
    """The group the deploy adds its own account to (:data:`SSH_GROUP`, only when the profile
    allows it and the account is not in it yet), or None."""
    if SSH_GROUP in settings.ssh_allow_groups and SSH_GROUP not in groups:
        return SSH_GROUP
    return None


def group_exists(getent_group: str, group: str) -> bool:
    """Whether ``getent group`` lists ``group``."""
    return any(line.split(":", 1)[0] == group for line in getent_group.splitlines())


def lockout_reason(settings: Settings, user: str, groups: list[str]) -> str | None:
    """Why AllowGroups would shut the deploy account out, or None.

    ``groups`` are the account's groups today; the :data:`SSH_GROUP` membership the deploy adds
    itself (:func:`membership_to_add`) counts. sshd matches AllowGroups against the user's primary
    and supplementary groups; patterns (``*``, ``?``) are not evaluated here, so a profile relying
    on them must name the deploy account's group literally too.
    """
    if not user:
        return "could not tell which account the deploy connects as"
    added = membership_to_add(settings, groups)
    if set(settings.ssh_allow_groups) & set(groups + ([added] if added else [])):
        return None
    return (f"ssh_allow_groups {settings.ssh_allow_groups} would shut out the deploy account "
            f"{user!r} (groups: {', '.join(groups) or 'none'}); add it to one of them")


# -- who logs in over SSH today (the deploy's refusal, access_refusal) -----------------------------
#
# Read the way the system reads it: the account database (getent), password status (passwd -S,
# which reads shadow: no hash leaves the host), the authorized keys files where sshd looks for
# them (its own AuthorizedKeysFile from sshd -T, %h %u %U expanded, relative to the home), the
# recorded logins (lastlog, and wtmp through last), and the access lists of the RUNNING
# configuration (sshd -T: AllowUsers, DenyUsers, AllowGroups, DenyGroups, PermitRootLogin).

GETENT_PASSWD = "getent passwd"
GETENT_GROUP = "getent group"
# Only the names and what they tell (no dates, no addresses): these readings are in every
# verify's evidence too, with the rest of the host's batch.
PASSWORD_STATUS = "out=$(LC_ALL=C passwd -S -a) && printf '%s\\n' \"$out\" | awk 'NF {print $1, $2}'"
AUTHORIZED_KEYS = (
    "set -f; f=$(sshd -T 2>/dev/null | sed -n 's/^authorizedkeysfile //p'); "
    "[ -n \"$f\" ] || { echo 'sshd -T printed no authorizedkeysfile' >&2; exit 1; }; "
    "getent passwd | { while IFS=: read -r u _ uid _ _ home _; do for p in $f; do "
    "[ \"$p\" = none ] && continue; k=${p//%h/$home}; k=${k//%u/$u}; k=${k//%U/$uid}; "
    "case $k in /*) ;; *) k=$home/$k;; esac; "
    "[ -s \"$k\" ] && printf 'KEYS %s %s\\n' \"$u\" \"$k\"; done; done; echo DONE; }"
)
# The header's first word, then every account with a recorded login.
LASTLOG = ("out=$(LC_ALL=C lastlog) && printf '%s\\n' \"$out\" | "
           "awk 'NR == 1 {print $1; next} NF && !/[*][*]Never logged in[*][*]$/ {print $1}'")
# The names in wtmp, once each (``wtmp begins`` says it was read).
LAST = "out=$(LC_ALL=C last -w) && printf '%s\\n' \"$out\" | awk 'NF {print $1}' | LC_ALL=C sort -u"
LOGINS = [GETENT_PASSWD, GETENT_GROUP, PASSWORD_STATUS, AUTHORIZED_KEYS, LASTLOG, LAST]

NO_LOGIN_SHELLS = ("nologin", "false")


class ReadingError(ValueError):
    """An observation of the accounts that cannot be read: a refusal, never a pass."""


@dataclass(frozen=True)
class Login:
    """An account that logs in over SSH today: its groups and why it counts."""

    name: str
    groups: tuple[str, ...]
    why: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name} (groups {' '.join(self.groups) or 'none'}; {', '.join(self.why)})"


def _rows(text: str, width: int, what: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split(":")
        if len(fields) != width or not fields[0] or not fields[2].isdigit():
            raise ReadingError(f"{what}: line not understood: {line[:120]!r}")
        rows.append(fields)
    return rows


def parse_accounts(passwd: str, group: str) -> tuple[dict[str, tuple[str, str, str]], _sshd.Accounts]:
    """``getent passwd`` / ``getent group`` -> (name -> (uid, home, shell), the accounts' groups)."""
    users = {f[0]: (f[2], f[5], f[6]) for f in _rows(passwd, 7, GETENT_PASSWD)}
    if "root" not in users:
        raise ReadingError("getent passwd has no root account: the account database was not read")
    primary = {f[0]: f[3] for f in _rows(passwd, 7, GETENT_PASSWD)}
    groups = {f[0]: (f[2], tuple(m for m in f[3].split(",") if m)) for f in _rows(group, 4, GETENT_GROUP)}
    if not groups:
        raise ReadingError("getent group printed no group")
    return users, _sshd.Accounts(primary, groups)


def parse_password_status(text: str) -> dict[str, str]:
    """``passwd -S -a`` -> name -> P (usable password), L (locked) or NP (none)."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2 or fields[1] not in ("P", "L", "NP"):
            raise ReadingError(f"passwd -S: line not understood: {line[:120]!r}")
        out[fields[0]] = fields[1]
    if "root" not in out:
        raise ReadingError("passwd -S -a named no root account: the password database was not read")
    return out


def parse_authorized_keys(text: str) -> dict[str, list[str]]:
    """:data:`AUTHORIZED_KEYS` -> name -> its non-empty authorized keys files."""
    lines = text.splitlines()
    if not lines or lines[-1] != "DONE":
        raise ReadingError(f"the authorized keys files were not all read: {text[-200:]!r}")
    out: dict[str, list[str]] = {}
    for line in lines[:-1]:
        tag, _, rest = line.partition(" ")
        user, _, path = rest.partition(" ")
        if tag != "KEYS" or not user or not path:
            raise ReadingError(f"authorized keys: line not understood: {line[:120]!r}")
        out.setdefault(user, []).append(path)
    return out


def parse_lastlog(text: str) -> set[str]:
    """:data:`LASTLOG` -> the accounts lastlog has a login for."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("Username"):
        raise ReadingError(f"lastlog printed no header: {text[:200]!r}")
    return {line.split()[0] for line in lines[1:] if line.strip()}


def parse_last(text: str) -> set[str]:
    """:data:`LAST` -> the accounts wtmp has a session of (``reboot`` is not an account)."""
    names = set(text.split())
    if "wtmp" not in names:
        raise ReadingError(f"last printed no 'wtmp begins': {text[:200]!r}")
    return names - {"wtmp", "reboot", "shutdown"}


def login_shell(shell: str) -> bool:
    """False for nologin and false (no shell: /bin/sh, which logs in)."""
    return shell.rsplit("/", 1)[-1] not in NO_LOGIN_SHELLS


def _user_listed(patterns: list[str], user: str) -> bool:
    """sshd's AllowUsers/DenyUsers: USER or USER@HOST patterns (``*``, ``?``). A USER@HOST
    pattern counts for the user (it applies to some connection)."""
    return any(_sshd._glob(p.split("@", 1)[0], user) for p in patterns)


def sshd_lets_in(config: dict[str, list[str]], user: str, groups: set[str]) -> bool:
    """Whether the running configuration (``sshd -T``) admits ``user`` at all, in sshd's order:
    PermitRootLogin for root, DenyUsers, AllowUsers, DenyGroups, AllowGroups. A DenyUsers
    USER@HOST denies only from that host, so it does not shut the user out."""
    if user == "root" and config.get("permitrootlogin", ["yes"]) == ["no"]:
        return False
    if any("@" not in p and _sshd._glob(p, user) for p in config.get("denyusers", [])):
        return False
    allow = config.get("allowusers", [])
    if allow and not _user_listed(allow, user):
        return False
    if any(_sshd._glob(p, g) for p in config.get("denygroups", []) for g in groups):
        return False
    allow_groups = config.get("allowgroups", [])
    return not allow_groups or any(_sshd._glob(p, g) for p in allow_groups for g in groups)


Run = Callable[[str], _sshd.RunResult]


def _output(run: Run, command: str, what: str) -> str:
    result = run(command)
    if result.rc != 0:
        why = (result.stderr or result.stdout).strip().splitlines()
        raise ReadingError(f"{what} failed (exit {result.rc}): {why[-1] if why else 'no output'}")
    return result.stdout


def logins_today(run: Run) -> list[Login]:
    """The accounts that log in over SSH today, from the observations (``run``: ``obs.run``):
    a login shell, an authorized keys file or a usable password or a recorded login, and the
    running sshd admits them. ReadingError when any reading cannot be read."""
    config, error = _sshd.effective(run(_sshd.SSHD_T))
    if config is None:
        raise ReadingError(error)
    users, accounts = parse_accounts(_output(run, GETENT_PASSWD, "getent passwd"),
                                     _output(run, GETENT_GROUP, "getent group"))
    passwords = parse_password_status(_output(run, PASSWORD_STATUS, "passwd -S -a"))
    keys = parse_authorized_keys(_output(run, AUTHORIZED_KEYS, "reading the authorized keys files"))
    lastlog = parse_lastlog(_output(run, LASTLOG, "lastlog"))
    wtmp = parse_last(_output(run, LAST, "last"))
    out = []
    for name, (_, _, shell) in users.items():
        if not login_shell(shell):
            continue
        why = [f"authorized keys {path}" for path in keys.get(name, [])]
        why += ["a usable password"] if passwords.get(name) == "P" else []
        why += ["a login in lastlog"] if name in lastlog else []
        why += ["a session in wtmp"] if name in wtmp else []
        groups = accounts.groups_of(name)
        if why and sshd_lets_in(config, name, groups):
            out.append(Login(name, tuple(sorted(groups)), tuple(why)))
    return out


def allowed(settings: Settings, login: Login) -> bool:
    """Whether the profile's AllowGroups admit the account (sshd's patterns, ``*`` and ``?``)."""
    return any(_sshd._glob(p, g) for p in settings.ssh_allow_groups for g in login.groups)


def shut_out(settings: Settings, logins: list[Login], deploy_user: str) -> list[Login]:
    """The accounts that log in today and would lose SSH (the deploy account aside)."""
    return [login for login in logins if login.name != deploy_user and not allowed(settings, login)]


def access_refusal(settings: Settings, host: str, deploy_user: str, logins: list[Login]) -> str | None:
    """Why the deploy refuses to write AllowGroups, or None: the profile's groups contain none of
    the accounts that log in over SSH today, other than the deploy account (they would all lose
    SSH at once), and the profile does not say ``ssh_allow_groups_confirmed: true``."""
    others = [login for login in logins if login.name != deploy_user]
    lost = shut_out(settings, logins, deploy_user)
    if settings.ssh_allow_groups_confirmed or not others or len(lost) < len(others):
        return None
    groups = " ".join(settings.ssh_allow_groups)
    first = settings.ssh_allow_groups[0]
    create = f"groupadd --system {first} when missing, then " if first == SSH_GROUP else ""
    return (f"{host}: AllowGroups {groups} would shut out every account that logs in over SSH "
            f"today, other than the deploy account {deploy_user}: {'; '.join(map(str, lost))}. "
            f"Add the accounts that keep SSH to {first} ({create}gpasswd -a ACCOUNT {first}), or name "
            "their group in measures.terminal.ssh_allow_groups, or set measures.terminal."
            "ssh_allow_groups_confirmed: true to shut them out")


def unreadable_refusal(host: str, error: Exception) -> str:
    """The refusal when who logs in today cannot be read."""
    return (f"{host}: cannot tell which accounts log in over SSH today, so AllowGroups is not "
            f"written: {error}. Repair the reading, or set measures.terminal."
            "ssh_allow_groups_confirmed: true to write it regardless")


# -- observed state (checks) -------------------------------------------------------------------

def asset_fields(asset: Any, settings: Settings) -> dict[str, str]:
    """The register's values to compare (fields without a value are not compared)."""
    if not settings.match_asset_register or asset is None:
        return {}
    return {k: str(getattr(asset, k)).lower() for k in ("machine_id", "serial", "mac")
            if getattr(asset, k, None)}


def parse_macs(ip_link_json: list[dict[str, Any]]) -> list[str]:
    """MAC addresses of the non-loopback interfaces from ``ip -j link``."""
    return sorted({str(link.get("address", "")).lower() for link in ip_link_json
                   if link.get("link_type") != "loopback" and link.get("address")})


def parse_addresses(ip_addr_json: list[dict[str, Any]]) -> list[str]:
    """Global-scope addresses (IPv4 and IPv6) from ``ip -j addr``."""
    out: list[str] = []
    for link in ip_addr_json:
        for info in link.get("addr_info", []):
            if info.get("scope") == "global" and info.get("local"):
                out.append(str(info["local"]))
    return out


def parse_gateways(ip_route_json: list[dict[str, Any]]) -> list[str]:
    """Gateways of the default routes from ``ip -j route show default`` (both families)."""
    return [str(r["gateway"]) for r in ip_route_json if r.get("gateway")]


def link_local(address: str) -> bool:
    """A link-local address (fe80::/10, 169.254.0.0/16). An IPv6 default gateway is nearly always
    one (routers advertise themselves by it): it is valid on any link, so it names no network
    and cannot say where a host is. The host's global addresses do."""
    return ipaddress.ip_address(address).is_link_local


def outside(addresses: list[str], networks: list[str]) -> list[str]:
    """The addresses that belong to none of the expected networks."""
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    return [a for a in addresses
            if not any(ipaddress.ip_address(a) in n for n in nets
                       if n.version == ipaddress.ip_address(a).version)]


MACHINE_ID = "cat /etc/machine-id"
DMI_SERIAL = "cat /sys/class/dmi/id/product_serial"
IP_LINK = "ip -j link"
IP_ADDR = "ip -j addr"
IP_ROUTES = ("ip -j route show default", "ip -j -6 route show default")


def parse_ip_json(rc: int, stdout: str, command: str) -> list[dict[str, Any]]:
    """The list ``ip -j`` prints; ValueError when it failed or printed something else (a check
    that cannot read the network must not pass or fail as if it had)."""
    data = json_output(rc, stdout, command)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError(f"{command} printed JSON that is not a list of objects: {stdout[:200]!r}")
    return data


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch.

    The asset register's values and the network are read only where the profile asks for them.
    """
    settings: Settings = profile.measure("terminal")
    commands = list(_sshd.OBSERVE) + LOGINS
    if settings.match_asset_register:
        commands += [MACHINE_ID, DMI_SERIAL, IP_LINK]
    if settings.expected_networks:
        commands += [IP_ADDR, *IP_ROUTES]
    return commands


MEASURE = Measure(
    name="terminal",
    title="limit the terminals that process personal data",
    clauses=('6-12', '6-13', '6-14'),
    order=60,
    settings=Settings,
    observe=observe,
)
