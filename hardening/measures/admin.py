"""admin (6-6): least administrator privilege.

Desired state: sudo only for the profile's admin group, through ``/etc/sudoers.d/hardening-admin``
(root:root 0440, validated with ``visudo -cf`` before it goes live) holding ``Defaults use_pty``,
``Defaults logfile=...``, the admin group's rule and one NOPASSWD rule per documented exception
(the deploy account); root login over SSH per the profile (sshd drop-in); root's password locked.

How sudo's policy is read: ONE parse of the whole policy as sudo reads it, ``cvtsudoers -f json
/etc/sudoers`` (sudo's own parser: includes followed, files with a ``.`` or ``~`` in the name of an
include directory skipped, aliases kept), judged here with the accounts and groups from
``getent``. Two details of that JSON are handled on purpose:

* a ``Defaults:name`` (per user) and a ``Defaults>name`` (per run-as user) both come out as
  ``{"username": name}``; the same policy is converted a second time with ``-d runas`` (only the
  run-as Defaults) to tell them apart. An entry that stays ambiguous, or whose binding cannot be
  resolved (netgroups, non-Unix groups), counts the worse way: applied when it switches the
  logging off, ignored when it switches it on.
* sudo applies global, host, user and run-as Defaults in ONE pass, in the order it read them
  (the last matching entry wins; seen on the lab with logfile), then the per-command Defaults.
  sudoers(5) lists the types in an order that suggests otherwise; its code does not.

JSON this module does not understand raises :class:`PolicyError`: an error, never a pass.

Blanket rights are ALL commands as root, or ONE command that gives a root shell (a shell, an
editor, a pager, ``find``, ``env``...: :data:`ROOT_SHELLS`). The deploy never edits the content of
other sudoers files: a file of /etc/sudoers.d behind a rule that grants such rights outside the
admin group, a blanket NOPASSWD outside the exceptions, or a Defaults entry that switches the
logging off (use_pty, logfile, syslog, log_allowed) for an account with rights is set aside
(renamed with a dot, which sudo skips); the same in /etc/sudoers makes the deploy refuse.
"""

from __future__ import annotations

import base64
import fnmatch
import ipaddress
import json
import re
import shlex
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator

from hardening.measures import _sshd
from hardening.measures._base import Measure, Strict

SUDOERS = "/etc/sudoers"
SUDOERS_DIR = "/etc/sudoers.d"
SUDOERS_PATH = f"{SUDOERS_DIR}/hardening-admin"
NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
LOGFILE = re.compile(r"^/[A-Za-z0-9._/-]+$")


class Settings(Strict):
    admin_group: str = "sudo"
    # Accounts allowed NOPASSWD sudo, each an explicit, documented exception: the deploy and verify
    # account runs sudo with no terminal to type a password into (pyinfra, testinfra), so it keeps
    # a NOPASSWD rule, named here so that the check accepts it and an auditor sees it. `hardening`
    # is the lab's account: an agency's profile names its own deploy account instead.
    nopasswd_exceptions: list[str] = Field(default_factory=lambda: ["hardening"])
    sudo_logfile: str = "/var/log/sudo.log"
    permit_root_login: Literal["no", "prohibit-password"] = "no"
    root_locked: bool = True

    @field_validator("admin_group")
    @classmethod
    def _group(cls, value: str) -> str:
        return check_name(value)

    @field_validator("nopasswd_exceptions")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        return [check_name(v) for v in value]

    @field_validator("sudo_logfile")
    @classmethod
    def _logfile(cls, value: str) -> str:
        if not LOGFILE.fullmatch(value) or "/../" in value:
            raise ValueError(f"expected an absolute path without spaces or quotes, got {value!r}")
        return value


def check_name(value: str) -> str:
    """A user or group name as Debian's adduser accepts it (no spaces, no sudoers syntax)."""
    if not NAME.fullmatch(value):
        raise ValueError(f"not a plain user or group name: {value!r}")
    return value


def sudoers(settings: Settings) -> str:
    """The content of /etc/sudoers.d/hardening-admin."""
    lines = [
        "# Managed by hardening (admin, 6-6). Changes here are overwritten.",
        "# Allocate a pseudo-terminal so a command cannot keep running after sudo returns.",
        "Defaults use_pty",
        "# Every sudo command is logged here, besides syslog.",
        f'Defaults logfile="{settings.sudo_logfile}"',
        "# Administrators: the profile's admin group, with their password.",
        f"%{check_name(settings.admin_group)} ALL=(ALL:ALL) ALL",
    ]
    for user in settings.nopasswd_exceptions:
        lines.append("# Documented exception in the profile (admin.nopasswd_exceptions): deploy account.")
        lines.append(f"{check_name(user)} ALL=(ALL:ALL) NOPASSWD: ALL")
    return "\n".join(lines) + "\n"


def sshd_directives(settings: Settings) -> dict[str, str | list[str]]:
    """The sshd keywords this measure owns."""
    return {"PermitRootLogin": settings.permit_root_login}


def sshd_dropin(settings: Settings) -> str:
    """The text of /etc/ssh/sshd_config.d/10-hardening-admin.conf."""
    return _sshd.render("admin", ", ".join(MEASURE.clauses), sshd_directives(settings))


# What sshd -T prints for each PermitRootLogin value at least as strict as the profile's.
ROOT_LOGIN_AT_LEAST = {
    "no": {"no"},
    "prohibit-password": {"no", "without-password", "prohibit-password", "forced-commands-only"},
    "forced-commands-only": {"no", "forced-commands-only"},
    "yes": {"no", "without-password", "prohibit-password", "forced-commands-only", "yes"},
}


def root_login_problem(settings: Settings, values: list[str]) -> str | None:
    """Why a connection class's PermitRootLogin (as sshd -T prints it) is looser than the
    profile's, or None. ``no`` is the strictest; a stricter value than the profile's passes."""
    allowed = ROOT_LOGIN_AT_LEAST.get(settings.permit_root_login, {settings.permit_root_login})
    seen = " ".join(values) or "(not printed)"
    return None if seen in allowed else f"PermitRootLogin {seen} (the profile allows at most " \
                                        f"{settings.permit_root_login})"


def root_status(result: Any) -> str:
    """``passwd -S root`` -> the status letter (L locked, P usable password, NP none)."""
    fields = result.stdout.split()
    return fields[1] if len(fields) > 1 else (result.stderr.strip() or f"exit {result.rc}")


def lockout_reason(settings: Settings, connecting_user: str) -> str | None:
    """Why applying the settings would lock the deploy out, or None."""
    if connecting_user == "root" and settings.permit_root_login == "no":
        return ("the deploy connects as root and the profile sets permit_root_login: no; "
                "connect as the deploy account with sudo instead")
    return None


# -- observations ---------------------------------------------------------------------------------

RUNAS_MARK = "### runas-defaults"
NOT_INSTALLED = "sudo: not installed"
INCLUDES_MARK = "### sudoers.d-included:"
SAME_MARK = "### same-as-live"
GETENT_PASSWD = "getent passwd"
GETENT_GROUP = "getent group"
HOST_INFO = "uname -n; hostname -I 2>/dev/null || echo '?'"
# sudo reads only files unless nsswitch.conf names other sudoers sources (sss, ldap).
SUDOERS_SOURCES = "sed -n 's/^[[:space:]]*sudoers:[[:space:]]*//p' /etc/nsswitch.conf"
PASSWD_STATUS = "passwd -S root"
_CVT = "cvtsudoers -c /dev/null"  # -c /dev/null: a /etc/cvtsudoers.conf (match, suppress) must not filter
_NEED_CVT = (f'command -v sudo >/dev/null || {{ echo "{NOT_INSTALLED}"; exit 127; }}; '
             'command -v cvtsudoers >/dev/null || { echo "cvtsudoers: not found" >&2; exit 3; }; ')


def policy_command(path: str = SUDOERS) -> str:
    """The whole policy as sudo reads it, then its run-as Defaults alone (to tell them apart)."""
    p = shlex.quote(path)
    return (_NEED_CVT + f"{_CVT} -f json {p} && echo '{RUNAS_MARK}' && "
            f"{_CVT} -d runas -s aliases,privileges -f json {p}")


SUDO_POLICY = policy_command()


FILE_MARK = "_hardening_file_"
JSON_MARK = "### json"


def files_command(path: str = SUDOERS) -> str:
    """Which file each entry comes from, to name the file behind a finding: the files sudo reads
    (``visudo -c`` lists them in parse order) are joined, include lines left out, each after two
    marker lines (a Defaults entry and a rule of the made-up user ``_hardening_file_<n>``), and
    converted in ONE cvtsudoers run; the markers split the JSON per file again."""
    mark = f"Defaults:{FILE_MARK}%s !lecture\\n{FILE_MARK}%s ALL=(root) /nonexistent\\n"
    return (_NEED_CVT + 't=$(mktemp) || exit 1; trap \'rm -f "$t" "$t.l"\' EXIT; n=0; '
            f"visudo -c -f {shlex.quote(path)} 2>/dev/null | sed -n 's/: parsed OK$//p' > \"$t.l\"; "
            'while IFS= read -r f; do n=$((n+1)); printf \'### %s %s\\n\' "$n" "$f"; '
            f'printf \'{mark}\' "$n" "$n" >> "$t"; '
            "sed -E '/^[[:space:]]*[@#]include(dir)?[[:space:]]/d' \"$f\" >> \"$t\"; echo >> \"$t\"; "
            f'done < "$t.l"; echo \'{JSON_MARK}\'; {_CVT} -f json "$t"')


SUDO_FILES = files_command()


def policy_after_command(settings: Settings, sudoers_file: str = SUDOERS, directory: str = SUDOERS_DIR) -> str:
    """The policy as sudo would read it with the deploy's file in place (a copy under a temporary
    directory, the live files untouched): what the deploy decides from. When the live file already
    has that content it prints only :data:`SAME_MARK` (the live policy is the answer)."""
    payload = base64.b64encode(sudoers(settings).encode()).decode()
    name = SUDOERS_PATH.rsplit("/", 1)[1]
    src, main = shlex.quote(directory), shlex.quote(sudoers_file)
    return (_NEED_CVT + 'T=$(mktemp -d) || exit 1; trap \'rm -rf "$T"\' EXIT; '
            f'printf %s {payload} | base64 -d > "$T/new" || exit 1; '
            f"if grep -qE '^[@#]includedir[[:space:]]+{_ere(directory)}/?[[:space:]]*$' {main}; "
            f'then echo "{INCLUDES_MARK} yes"; else echo "{INCLUDES_MARK} no"; fi; '
            f'if cmp -s "$T/new" {src}/{name}; then echo "{SAME_MARK}"; exit 0; fi; '
            f'if [ -d {src} ]; then cp -a {src} "$T/d"; else mkdir "$T/d"; fi; '
            f'mv "$T/new" "$T/d/{name}" && chmod 0440 "$T/d/{name}" && '
            f"sed -E 's|^([@#]includedir[[:space:]]+){_ere(directory)}/?[[:space:]]*$|\\1'\"$T/d\"'|' "
            f'{main} > "$T/sudoers" && chmod 0440 "$T/sudoers" && '
            f'{_CVT} -f json "$T/sudoers" && echo \'{RUNAS_MARK}\' && '
            f'{_CVT} -d runas -s aliases,privileges -f json "$T/sudoers"')


def _ere(text: str) -> str:
    """``text`` as a literal in a POSIX extended regular expression."""
    return re.sub(r"([.\[\]*^$+?(){}|\\])", r"\\\1", text)


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch."""
    settings: Settings = profile.measure("admin")
    return [SUDO_POLICY, SUDO_FILES, policy_after_command(settings), SUDOERS_SOURCES, GETENT_PASSWD,
            GETENT_GROUP, HOST_INFO, *_sshd.OBSERVE, _sshd.SSHD_T_ROOT, PASSWD_STATUS]


# -- the sudoers policy (cvtsudoers -f json) --------------------------------------------------------

class PolicyError(ValueError):
    """cvtsudoers output this module does not understand, or could not get: never a pass."""


ALLOW, DENY, UNSPEC = "allow", "deny", "unspec"
Outcomes = frozenset[str]
_USER_KINDS = {"username", "userid", "usergroup", "usergid", "netgroup", "nonunixgroup", "nonunixgid"}
_MEMBER_KINDS = {*_USER_KINDS, "useralias", "runasalias", "hostname", "hostalias", "networkaddr",
                 "command", "cmndalias"}
_DIGESTS = {"sha224", "sha256", "sha384", "sha512"}
_TOP = {"Defaults", "User_Aliases", "Runas_Aliases", "Host_Aliases", "Command_Aliases", "User_Specs"}
_ALIAS_KEYS = {"User_Aliases": "user", "Runas_Aliases": "runas", "Host_Aliases": "host",
               "Command_Aliases": "cmnd"}
_SPEC_KEYS = {"runasusers", "runasgroups", "Options", "Commands", "SELinux_Spec", "AppArmor_Spec",
              "Solaris_Priv_Spec"}
_LIST_OPS = {"list_assign", "list_add", "list_remove"}
_PREFIX = {"usergroup": "%", "usergid": "%#", "userid": "#", "netgroup": "+", "nonunixgroup": "%:",
           "nonunixgid": "%:#"}


@dataclass(frozen=True)
class Member:
    """One entry of a user, run-as, host or command list (or a Defaults binding)."""

    kind: str
    value: str | int
    negated: bool = False

    def __str__(self) -> str:
        return ("!" if self.negated else "") + _PREFIX.get(self.kind, "") + str(self.value)


Option = tuple[str, Any]


@dataclass(frozen=True)
class DefaultsEntry:
    """A Defaults line; ``kinds`` are the binding types it may have (more than one: ambiguous)."""

    kinds: frozenset[str]
    binding: tuple[Member, ...]
    options: tuple[Option, ...]

    def __str__(self) -> str:
        marks = {"global": "", "host": "@", "user": ":", "runas": ">", "command": "!"}
        opts = ", ".join(_option_text(n, v) for n, v in self.options)
        bound = ",".join(map(str, self.binding))
        return " or ".join(f"Defaults{marks[k]}{bound} {opts}" for k in sorted(self.kinds))


@dataclass(frozen=True)
class CmndSpec:
    runasusers: tuple[Member, ...] | None
    runasgroups: tuple[Member, ...] | None
    options: tuple[Option, ...]
    commands: tuple[Member, ...]

    def option(self, name: str) -> Any:
        found = [v for n, v in self.options if n == name]
        return found[-1] if found else None

    def __str__(self) -> str:
        runas = ""
        if self.runasusers is not None or self.runasgroups is not None:
            users = ", ".join(map(str, self.runasusers or ()))
            groups = ", ".join(str(g).replace("%", "", 1) if g.kind == "usergroup" else str(g)
                               for g in self.runasgroups or ())
            runas = f"({users} : {groups}) " if self.runasgroups is not None else f"({users}) "
        tag = {False: "NOPASSWD: ", True: "PASSWD: ", None: ""}[self.option("authenticate")]
        return runas + tag + ", ".join(map(str, self.commands))


@dataclass(frozen=True)
class UserSpec:
    users: tuple[Member, ...]
    hosts: tuple[Member, ...]
    cmnds: tuple[CmndSpec, ...]


@dataclass(frozen=True)
class Policy:
    defaults: tuple[DefaultsEntry, ...] = ()
    aliases: dict[str, dict[str, tuple[Member, ...]]] = field(default_factory=dict)
    specs: tuple[UserSpec, ...] = ()

    def alias(self, kind: str, name: str) -> tuple[Member, ...]:
        return self.aliases.get(kind, {}).get(name, ())


def _option_text(name: str, value: Any) -> str:
    if value is True:
        return name
    if value is False:
        return f"!{name}"
    return f"{name}={value}"


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise PolicyError(f"cvtsudoers JSON not understood: {what}")


def _member(raw: Any) -> Member:
    _expect(isinstance(raw, dict), f"member {raw!r} is not an object")
    keys = set(raw) - {"negated"} - _DIGESTS
    _expect(len(keys) == 1 and keys <= _MEMBER_KINDS, f"member {raw!r}")
    kind = keys.pop()
    value, negated = raw[kind], raw.get("negated", False)
    _expect(isinstance(value, str | int) and not isinstance(value, bool), f"member value {raw!r}")
    _expect(isinstance(negated, bool), f"negated {raw!r}")
    _expect(not (set(raw) & _DIGESTS) or kind == "command", f"digest outside a command {raw!r}")
    return Member(kind, value, negated)


def _members(raw: Any, what: str) -> tuple[Member, ...]:
    _expect(isinstance(raw, list) and bool(raw), f"{what} is not a non-empty list")
    return tuple(_member(m) for m in raw)


def _options(raw: Any, what: str) -> tuple[Option, ...]:
    _expect(isinstance(raw, list), f"{what} is not a list")
    out: list[Option] = []
    for item in raw:
        _expect(isinstance(item, dict), f"{what} entry {item!r}")
        names = set(item) - {"operation"}
        _expect(len(names) == 1, f"{what} entry {item!r}")
        name = names.pop()
        value = item[name]
        if "operation" in item:
            _expect(item["operation"] in _LIST_OPS and isinstance(value, list), f"{what} list {item!r}")
            value = (item["operation"], tuple(value))
        else:
            _expect(isinstance(value, bool | str | int | float), f"{what} value {item!r}")
        out.append((name, value))
    return tuple(out)


def _binding_kinds(binding: tuple[Member, ...]) -> frozenset[str]:
    if not binding:
        return frozenset({"global"})
    kinds = {m.kind for m in binding}
    if kinds & {"command", "cmndalias"}:
        return frozenset({"command"})
    if kinds & {"hostname", "hostalias", "networkaddr"}:
        return frozenset({"host"})
    if "runasalias" in kinds:
        return frozenset({"runas"})
    if "useralias" in kinds:
        return frozenset({"user"})
    if kinds == {"netgroup"}:  # +name: a user, run-as or host netgroup, the JSON does not say
        return frozenset({"user", "runas", "host"})
    return frozenset({"user", "runas"})  # a name, id or group: Defaults:name or Defaults>name


def _defaults(raw: Any) -> list[DefaultsEntry]:
    _expect(isinstance(raw, list), "Defaults is not a list")
    out = []
    for item in raw:
        _expect(isinstance(item, dict) and set(item) <= {"Binding", "Options"} and "Options" in item,
                f"Defaults entry {item!r}")
        binding = _members(item["Binding"], "Binding") if "Binding" in item else ()
        out.append(DefaultsEntry(_binding_kinds(binding), binding, _options(item["Options"], "Options")))
    return out


def _spec(raw: Any) -> CmndSpec:
    _expect(isinstance(raw, dict) and set(raw) <= _SPEC_KEYS and "Commands" in raw, f"Cmnd_Spec {raw!r}")
    users = _members(raw["runasusers"], "runasusers") if "runasusers" in raw else None
    groups = _members(raw["runasgroups"], "runasgroups") if "runasgroups" in raw else None
    return CmndSpec(users, groups, _options(raw.get("Options", []), "Cmnd_Spec Options"),
                    _members(raw["Commands"], "Commands"))


def _user_spec(raw: Any) -> UserSpec:
    _expect(isinstance(raw, dict) and set(raw) == {"User_List", "Host_List", "Cmnd_Specs"}, f"User_Spec {raw!r}")
    _expect(isinstance(raw["Cmnd_Specs"], list) and bool(raw["Cmnd_Specs"]), "Cmnd_Specs")
    return UserSpec(_members(raw["User_List"], "User_List"), _members(raw["Host_List"], "Host_List"),
                    tuple(_spec(c) for c in raw["Cmnd_Specs"]))


def parse_json(text: str) -> Policy:
    """One ``cvtsudoers -f json`` document (empty output: an empty policy)."""
    if not text.strip():
        return Policy()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"cvtsudoers output is not JSON: {exc}") from None
    _expect(isinstance(doc, dict), "the document is not an object")
    _expect(set(doc) <= _TOP, f"top-level keys {sorted(set(doc) - _TOP)}")
    aliases: dict[str, dict[str, tuple[Member, ...]]] = {}
    for key, kind in _ALIAS_KEYS.items():
        raw = doc.get(key, {})
        _expect(isinstance(raw, dict), f"{key} is not an object")
        aliases[kind] = {name: _members(members, f"{key}.{name}") for name, members in raw.items()}
    specs = doc.get("User_Specs", [])
    _expect(isinstance(specs, list), "User_Specs is not a list")
    return Policy(tuple(_defaults(doc.get("Defaults", []))), aliases, tuple(_user_spec(s) for s in specs))


def _key(entry: DefaultsEntry) -> tuple[Any, ...]:
    return entry.binding, entry.options


def parse_policy(stdout: str) -> Policy:
    """The output of :func:`policy_command`: the whole policy, then its run-as Defaults alone,
    which tell ``Defaults>name`` from ``Defaults:name``."""
    lines = stdout.splitlines()
    if RUNAS_MARK not in lines:
        raise PolicyError("cvtsudoers output incomplete: the run-as Defaults part is missing")
    cut = lines.index(RUNAS_MARK)
    whole = parse_json("\n".join(lines[:cut]))
    runas = parse_json("\n".join(lines[cut + 1:]))
    _expect(not runas.specs and all(d.kinds & {"runas"} for d in runas.defaults), "the run-as Defaults part")
    in_runas = Counter(_key(d) for d in runas.defaults)
    in_whole = Counter(_key(d) for d in whole.defaults if "runas" in d.kinds)
    for key, count in in_runas.items():
        _expect(count <= in_whole[key], f"run-as Defaults {key!r} not in the whole policy")
    defaults = []
    for entry in whole.defaults:
        if "runas" in entry.kinds and len(entry.kinds) > 1:
            r, w = in_runas[_key(entry)], in_whole[_key(entry)]
            kinds = entry.kinds - {"runas"} if r == 0 else frozenset({"runas"}) if r == w else entry.kinds
            entry = DefaultsEntry(kinds, entry.binding, entry.options)
        defaults.append(entry)
    return Policy(tuple(defaults), whole.aliases, whole.specs)


def _output(result: Any) -> str | None:
    """Standard output of a cvtsudoers observation; None when sudo is not installed."""
    if result.rc == 127 and result.stdout.startswith(NOT_INSTALLED):
        return None
    if result.rc != 0:
        why = (result.stderr or result.stdout).strip().splitlines()
        raise PolicyError(f"cvtsudoers failed (exit {result.rc}): {why[-1] if why else 'no output'}")
    return str(result.stdout)


def read_policy(result: Any) -> Policy | None:
    """An observation of :func:`policy_command` -> the policy; None when sudo is not installed."""
    text = _output(result)
    return None if text is None else parse_policy(text)


def read_after(result: Any, live: Any) -> tuple[Policy | None, bool]:
    """Observations of :func:`policy_after_command` and :func:`policy_command` -> (the policy with
    the deploy's file in place, whether the main file reads the include directory); (None, True)
    when sudo is not installed (the deploy installs it)."""
    text = _output(result)
    if text is None:
        return None, True
    first, _, rest = text.partition("\n")
    if not first.startswith(INCLUDES_MARK):
        raise PolicyError(f"the simulated policy's output does not start with {INCLUDES_MARK!r}")
    included = first.strip() == f"{INCLUDES_MARK} yes"
    if rest.strip() == SAME_MARK:
        return read_policy(live), included
    return parse_policy(rest), included


def parse_files(stdout: str) -> dict[str, Policy | str]:
    """The output of :func:`files_command` -> per file sudo reads, its own entries (with the
    whole policy's aliases); a file converted alone cannot tell ``Defaults:name`` from
    ``Defaults>name``, so those keep both kinds. Output not understood: every file says why."""
    head, sep, body = stdout.partition(JSON_MARK + "\n")
    names = {}
    for line in head.splitlines():
        number, _, name = line.removeprefix("### ").partition(" ")
        names[f"{FILE_MARK}{number}"] = name
    try:
        if not sep:
            raise PolicyError("the marker line is missing")
        whole = parse_json(body)
    except PolicyError as exc:
        return dict.fromkeys(names.values(), f"not converted: {exc}")
    defaults: dict[str, list[DefaultsEntry]] = {n: [] for n in names.values()}
    specs: dict[str, list[UserSpec]] = {n: [] for n in names.values()}
    current: str | None = None
    for entry in whole.defaults:
        marker = _marker(entry.binding, names)
        current = marker or current
        if not marker and current is not None:
            defaults[current].append(entry)
    current = None
    for spec in whole.specs:
        marker = _marker(spec.users, names)
        current = marker or current
        if not marker and current is not None:
            specs[current].append(spec)
    return {n: Policy(tuple(defaults[n]), whole.aliases, tuple(specs[n])) for n in names.values()}


def _marker(members: tuple[Member, ...], names: dict[str, str]) -> str | None:
    if len(members) == 1 and members[0].kind == "username" and str(members[0].value) in names:
        return names[str(members[0].value)]
    return None


def sudoers_sources(text: str) -> list[str]:
    """The sudoers line of nsswitch.conf -> its sources (``files`` when there is none)."""
    words = [w for w in text.split() if not w.startswith("[")]
    return words or ["files"]


# -- accounts and the host, from getent and uname --------------------------------------------------

@dataclass(frozen=True)
class Accounts:
    """``getent passwd`` and ``getent group``: who exists and who is in which group."""

    users: dict[str, tuple[int, int]]                 # name -> (uid, primary gid)
    groups: dict[str, tuple[int, frozenset[str]]]     # name -> (gid, supplementary members)

    @classmethod
    def parse(cls, passwd: str, group: str) -> Accounts:
        users = {f[0]: (int(f[2]), int(f[3])) for f in _rows(passwd, 7)}
        groups = {f[0]: (int(f[2]), frozenset(m for m in f[3].split(",") if m)) for f in _rows(group, 4)}
        if "root" not in users:
            raise PolicyError("getent passwd has no root account: the account database was not read")
        return cls(users, groups)

    def gids(self, user: str) -> set[int]:
        """The user's primary and supplementary group ids."""
        primary = {self.users[user][1]} if user in self.users else set()
        return primary | {gid for gid, members in self.groups.values() if user in members}

    def gid(self, group: str) -> int | None:
        return self.groups[group][0] if group in self.groups else None

    def members(self, group: str) -> set[str]:
        """Members of a group, supplementary and primary."""
        gid = self.gid(group)
        if gid is None:
            return set()
        return set(self.groups[group][1]) | {u for u, (_, g) in self.users.items() if g == gid}


def _rows(text: str, width: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split(":")
        if len(fields) < width or not fields[2].isdigit() or (width == 7 and not fields[3].isdigit()):
            raise PolicyError(f"getent line not understood: {line[:120]!r}")
        rows.append(fields)
    return rows


@dataclass(frozen=True)
class HostInfo:
    """The host's name (``uname -n``) and addresses (``hostname -I``; None: unknown)."""

    name: str
    addresses: tuple[str, ...] | None

    @classmethod
    def parse(cls, text: str) -> HostInfo:
        lines = text.splitlines()
        if not lines or not lines[0].strip():
            raise PolicyError("uname -n gave no host name")
        addrs = lines[1].split() if len(lines) > 1 else ["?"]
        return cls(lines[0].strip(), None if addrs == ["?"] else tuple(addrs))


@dataclass(frozen=True)
class Context:
    policy: Policy
    accounts: Accounts
    host: HostInfo


# -- matching, the way sudo matches (the last matching entry of a list wins) ----------------------

_MAYBE: Outcomes = frozenset({ALLOW, UNSPEC})


def _one(value: bool) -> Outcomes:
    return frozenset({ALLOW if value else UNSPEC})


def list_outcomes(members: Iterable[Member], match: Callable[[Member], Outcomes]) -> Outcomes:
    """What a list can give: the last member that matches decides (negated: DENY). A member that
    may or may not match (a netgroup) makes the result a set of possibilities."""
    result: set[str] = set()
    for member in reversed(list(members)):
        outs = match(member)
        for out in outs - {UNSPEC}:
            result.add({ALLOW: DENY, DENY: ALLOW}[out] if member.negated else out)
        if UNSPEC not in outs:
            return frozenset(result)
    return frozenset(result | {UNSPEC})


def _alias(ctx: Context, kind: str, name: str, match: Callable[[Member], Outcomes], depth: int) -> Outcomes:
    if depth > 32:
        raise PolicyError(f"alias {name} nests too deep (a cycle?)")
    return list_outcomes(ctx.policy.alias(kind, name), match)


def user_outcomes(ctx: Context, members: Iterable[Member], user: str, depth: int = 0) -> Outcomes:
    """Does ``user`` match this user list (a User_List, a per-user Defaults binding)?"""
    def match(m: Member) -> Outcomes:
        if m.kind == "useralias":
            return _alias(ctx, "user", str(m.value), match, depth + 1)
        return _account_match(ctx, m, user)
    return list_outcomes(members, match)


def runas_outcomes(ctx: Context, members: Iterable[Member], target: str, invoker: str) -> Outcomes:
    """May ``invoker`` run commands as ``target`` through this run-as user list?"""
    def match(m: Member, depth: int = 0) -> Outcomes:
        if m.kind == "runasalias":
            return _alias(ctx, "runas", str(m.value), lambda a: match(a, depth + 1), depth + 1)
        if m.kind == "username" and m.value == "":
            return _one(target == invoker)  # an empty name: the invoking user
        return _account_match(ctx, m, target)
    return list_outcomes(members, match)


def _account_match(ctx: Context, m: Member, user: str) -> Outcomes:
    acc = ctx.accounts
    if m.kind == "username":
        return _one(m.value == "ALL" or m.value == user)
    if m.kind == "userid":
        return _one(user in acc.users and acc.users[user][0] == m.value)
    if m.kind == "usergroup":
        gid = acc.gid(str(m.value))
        return _one(m.value == "ALL" or (gid is not None and gid in acc.gids(user)))
    if m.kind == "usergid":
        return _one(m.value in acc.gids(user))
    if m.kind in ("netgroup", "nonunixgroup", "nonunixgid"):
        return _MAYBE  # not resolvable from getent: it may match
    raise PolicyError(f"a {m.kind} ({m}) where a user is expected")


def host_outcomes(ctx: Context, members: Iterable[Member], depth: int = 0) -> Outcomes:
    """Does this host match the list (Host_List, a per-host Defaults binding)?"""
    def match(m: Member) -> Outcomes:
        if m.kind == "hostalias":
            return _alias(ctx, "host", str(m.value), match, depth + 1)
        if m.kind == "hostname":
            return _hostname(ctx.host, str(m.value))
        if m.kind == "networkaddr":
            return _address(ctx.host, str(m.value))
        if m.kind == "netgroup":
            return _MAYBE
        raise PolicyError(f"a {m.kind} ({m}) where a host is expected")
    return list_outcomes(members, match)


def _hostname(host: HostInfo, pattern: str) -> Outcomes:
    if pattern == "ALL":
        return _one(True)
    name, short = host.name.lower(), host.name.split(".")[0].lower()
    if "." not in pattern:
        return _one(fnmatch.fnmatchcase(short, pattern.lower()))
    if "." in name:
        return _one(fnmatch.fnmatchcase(name, pattern.lower()))
    # A qualified pattern is compared with the host's FQDN, which uname does not give.
    return _MAYBE if fnmatch.fnmatchcase(short, pattern.split(".")[0].lower()) else _one(False)


def _address(host: HostInfo, value: str) -> Outcomes:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise PolicyError(f"network address {value!r} not understood") from None
    if host.addresses is None:
        return _MAYBE
    return _one(any(ipaddress.ip_address(a.split("%")[0]) in network for a in host.addresses
                    if _is_ip(a)))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%")[0])
        return True
    except ValueError:
        return False


# Commands that give whoever may run them as root a root shell: shells, interpreters, and programs
# with a documented shell escape (an editor's ``:!sh``, a pager's ``!sh``, ``find -exec``, ``env sh``;
# see GTFOBins' "sudo" entries). Not exhaustive: the common ones an admin hands out "just for this".
ROOT_SHELLS = frozenset({
    "sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "csh", "tcsh", "fish", "ash", "busybox", "rbash",
    "su", "sudo", "login", "runuser", "setpriv", "nsenter", "unshare", "chroot",
    "env", "nice", "ionice", "timeout", "stdbuf", "taskset", "xargs", "flock", "time", "strace", "ltrace",
    "script", "expect", "socat", "nohup", "watch", "start-stop-daemon", "systemd-run", "capsh",
    "python", "python3", "perl", "ruby", "lua", "php", "node", "tclsh", "wish", "gdb", "awk", "gawk",
    "mawk", "nawk", "sed", "find", "make", "git", "tar", "zip", "rsync", "scp", "ssh", "cpio", "dd",
    "cp", "mv", "tee", "install", "chmod", "chown", "ln", "crontab", "at", "journalctl", "systemctl",
    "dmesg", "apt", "apt-get", "dpkg", "pip", "pip3", "docker", "mount",
    "vi", "vim", "vim.basic", "vim.tiny", "view", "rvim", "nvim", "ex", "ed", "red", "nano", "rnano", "pico",
    "emacs", "joe", "mcedit", "editor", "sensible-editor", "less", "more", "most", "pg", "man", "pager",
    "sensible-pager", "visudo", "vipw", "vigr", "mc", "screen", "tmux",
})
# Programs whose escape is interactive (an editor, a pager): a root shell whatever their arguments.
# The others escape through arguments, so a rule that fixes their arguments (no wildcard) does not.
INTERACTIVE_SHELLS = frozenset({
    "vi", "vim", "vim.basic", "vim.tiny", "view", "rvim", "nvim", "ex", "ed", "red", "nano", "rnano", "pico",
    "emacs", "joe", "mcedit", "editor", "sensible-editor", "less", "more", "most", "pg", "man", "pager",
    "sensible-pager", "visudo", "vipw", "vigr", "mc", "screen", "tmux", "journalctl", "su", "sudo", "login",
})
_SHELL_DIRS = ("/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
_GLOB = re.compile(r"[*?\[]")


def root_shell(command: str) -> str | None:
    """Why a sudoers command (as cvtsudoers prints it: path, then its argument pattern) gives a
    root shell, or None: a shell or escape-capable program by name (its base name, ``python3.11``
    as ``python3``), or a path pattern (``/usr/bin/*``) that matches one."""
    if command in ("sudoedit",) or command.startswith("sudoedit "):
        return None  # sudoedit edits a copy as the invoking user: no shell escape (sudoers(5))
    path, _, args = command.partition(" ")
    names = [path.rsplit("/", 1)[-1]]
    if _GLOB.search(path):
        names = [n for n in ROOT_SHELLS for d in _SHELL_DIRS if fnmatch.fnmatchcase(f"{d}/{n}", path)]
        if names:
            return f"{path} matches {sorted(set(names))[0]}"
    name = re.sub(r"[0-9.]+$", "", names[0]) or names[0]
    for candidate in (names[0], name):
        if candidate in ROOT_SHELLS:
            fixed = args and not _GLOB.search(args)
            if candidate in INTERACTIVE_SHELLS or not fixed:
                return f"{command} is a root shell ({candidate})"
    return None


def shell_commands(ctx: Context, members: Iterable[Member], depth: int = 0) -> list[str]:
    """The commands of a list (aliases followed) that give a root shell, with why."""
    found: list[str] = []
    for m in members:
        if m.negated:
            continue
        if m.kind == "cmndalias":
            if depth > 32:
                raise PolicyError(f"alias {m.value} nests too deep (a cycle?)")
            found += shell_commands(ctx, ctx.policy.alias("cmnd", str(m.value)), depth + 1)
        elif m.kind == "command" and (why := root_shell(str(m.value))):
            found.append(why)
    return found


def command_outcomes(ctx: Context, members: Iterable[Member], depth: int = 0) -> Outcomes:
    """Does this command list allow ANY command (ALL, directly or through an alias)?"""
    def match(m: Member) -> Outcomes:
        if m.kind == "cmndalias":
            return _alias(ctx, "cmnd", str(m.value), match, depth + 1)
        if m.kind == "command":
            return _one(m.value == "ALL")
        raise PolicyError(f"a {m.kind} ({m}) where a command is expected")
    return list_outcomes(members, match)


# -- what an account may do --------------------------------------------------------------------------

def grants(ctx: Context, user: str) -> list[CmndSpec]:
    """The Cmnd_Specs that (may) apply to ``user`` on this host."""
    return [spec for us in ctx.policy.specs
            if ALLOW in user_outcomes(ctx, us.users, user) and ALLOW in host_outcomes(ctx, us.hosts)
            for spec in us.cmnds]


def as_root(ctx: Context, spec: CmndSpec, user: str) -> bool:
    """May the spec's commands run as root? No run-as list: root (runas_default)."""
    if spec.runasusers is None:
        return spec.runasgroups is None or user == "root"
    return ALLOW in runas_outcomes(ctx, spec.runasusers, "root", user)


def is_blanket(ctx: Context, spec: CmndSpec, user: str) -> bool:
    """ALL commands as root (a negated command after ALL does not narrow it: sudoers(5)), or one
    command that gives a root shell (:func:`root_shell`): the same rights in one more step."""
    if not as_root(ctx, spec, user):
        return False
    return ALLOW in command_outcomes(ctx, spec.commands) or bool(shell_commands(ctx, spec.commands))


def _describe(ctx: Context, spec: CmndSpec) -> str:
    shells = shell_commands(ctx, spec.commands)
    return f"{spec} (root shell: {'; '.join(shells)})" if shells and ALLOW not in command_outcomes(
        ctx, spec.commands) else str(spec)


def _applies(ctx: Context, entry: DefaultsEntry, user: str) -> Literal["yes", "maybe", "no"]:
    """Does a (non-command) Defaults entry apply to ``user`` running a command as root?"""
    per_kind = []
    for kind in entry.kinds:
        if kind == "global":
            per_kind.append(_one(True))
        elif kind == "host":
            per_kind.append(host_outcomes(ctx, entry.binding))
        elif kind == "user":
            per_kind.append(user_outcomes(ctx, entry.binding, user))
        elif kind == "runas":
            per_kind.append(runas_outcomes(ctx, entry.binding, "root", user))
    if all(o == {ALLOW} for o in per_kind):
        return "yes"
    return "maybe" if any(ALLOW in o for o in per_kind) else "no"


@dataclass
class Setting:
    """A Defaults value in effect for one account, and where it is not (run-as users, commands)."""

    value: Any
    not_for: list[str] = field(default_factory=list)


def setting(ctx: Context, user: str, name: str, initial: Any, good: Callable[[Any], bool]) -> Setting:
    """The value of Defaults ``name`` for ``user`` running commands as root, the worse way where
    the policy leaves it open; then the run-as users and commands for which it is not good."""
    result = Setting(initial)
    entries = [(e, v) for e in ctx.policy.defaults for n, v in e.options if n == name]
    for entry, value in entries:
        if "command" in entry.kinds:
            continue
        applies = _applies(ctx, entry, user)
        if applies == "yes" or (applies == "maybe" and not good(value)):
            result.value = value
        elif applies == "no" and "runas" in entry.kinds and not good(value) \
                and _may_run_as_bound(ctx, entry.binding, user):
            result.not_for.append(f"when running as {','.join(map(str, entry.binding))} ({entry})")
    for entry, value in entries:
        if "command" not in entry.kinds:
            continue
        if command_outcomes(ctx, entry.binding) == {ALLOW}:
            result.value = value
            result.not_for = [n for n in result.not_for if not n.startswith("for commands")]
        elif not good(value):
            result.not_for.append(f"for commands {','.join(map(str, entry.binding))} ({entry})")
    return result


def _may_run_as_bound(ctx: Context, binding: tuple[Member, ...], user: str) -> bool:
    """May ``user`` run some command as an account of a run-as Defaults binding?"""
    targets = [t for t in ctx.accounts.users if ALLOW in runas_outcomes(ctx, binding, t, user)]
    specs = [s for s in grants(ctx, user) if s.runasusers is not None]
    return any(ALLOW in runas_outcomes(ctx, s.runasusers or (), t, user) for s in specs for t in targets)


# -- the measure's verdicts -------------------------------------------------------------------------

def logging_defaults(settings: Settings) -> dict[str, str]:
    """The Defaults the accounts with rights must have in effect (as sudoers writes them)."""
    return {"use_pty": "use_pty", "logfile": f"logfile={settings.sudo_logfile}",
            "syslog": "syslog (not !syslog)", "log_allowed": "log_allowed (not !log_allowed)"}


def _logging(settings: Settings) -> dict[str, tuple[Any, Callable[[Any], bool]]]:
    # sudo 1.9.13 (Debian 12) has use_pty off and no log file unless sudoers sets them; it logs
    # to syslog (authpriv) and logs allowed commands unless ``!syslog`` / ``!log_allowed`` say not.
    return {"use_pty": (False, lambda v: v is True),
            "logfile": (False, lambda v: v == settings.sudo_logfile),
            "syslog": ("authpriv", lambda v: v is not False),
            "log_allowed": (True, lambda v: v is not False)}


def accounts_with_rights(ctx: Context) -> dict[str, list[str]]:
    """Each existing account that holds sudo rules on this host -> its rules, as sudoers writes them."""
    return {u: [str(s) for s in specs] for u in sorted(ctx.accounts.users) if (specs := grants(ctx, u))}


def violations(ctx: Context, settings: Settings) -> dict[str, list[str]]:
    """Per account, what breaks the measure: blanket rights (ALL commands as root) outside the
    admin group (root and the documented exceptions excepted); a blanket NOPASSWD, or Defaults
    ``!authenticate`` on any of its rules, outside the exceptions. Principals getent cannot
    resolve (netgroups, non-Unix groups) with blanket rights are violations by their own name."""
    admins = ctx.accounts.members(settings.admin_group)
    exceptions = set(settings.nopasswd_exceptions)
    out: dict[str, list[str]] = {}
    for user in sorted(ctx.accounts.users):
        specs = grants(ctx, user)
        if not specs:
            continue
        found = []
        authenticate = setting(ctx, user, "authenticate", True, lambda v: v is not False)
        for spec in (s for s in specs if is_blanket(ctx, s, user)):
            if user != "root" and user not in admins and user not in exceptions:
                found.append(f"ALL rights outside group {settings.admin_group}: {_describe(ctx, spec)}")
            passwordless = spec.option("authenticate") is False or (
                spec.option("authenticate") is None and authenticate.value is False)
            if passwordless and user not in exceptions:
                found.append(f"blanket NOPASSWD outside the exceptions: {_describe(ctx, spec)}")
        if authenticate.value is False and user not in exceptions:
            found.append("Defaults !authenticate: sudo asks no password")
        if found:
            out[user] = list(dict.fromkeys(found))
    out.update(_unresolved_principals(ctx))
    return out


def _unresolved_principals(ctx: Context) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for us in ctx.policy.specs:
        if ALLOW not in host_outcomes(ctx, us.hosts):
            continue
        for m in us.users:
            if m.kind in ("netgroup", "nonunixgroup", "nonunixgid") and not m.negated:
                blanket = [s for s in us.cmnds if (ALLOW in command_outcomes(ctx, s.commands)
                                                   or shell_commands(ctx, s.commands))
                           and (s.runasusers is None or ALLOW in runas_outcomes(ctx, s.runasusers, "root", ""))]
                out.update({str(m): [f"ALL rights for {m}, whose members getent cannot list: {s}"
                                     for s in blanket]} if blanket else {})
    return out


def missing_logging(ctx: Context, settings: Settings, users: list[str]) -> dict[str, list[str]]:
    """Per account, which logging Defaults are not in effect (and where not)."""
    missing: dict[str, list[str]] = {}
    for user in users:
        gaps = []
        for name, (initial, good) in _logging(settings).items():
            result = setting(ctx, user, name, initial, good)
            if not good(result.value):
                gaps.append(logging_defaults(settings)[name])
            gaps += [f"{logging_defaults(settings)[name]} not in effect {n}" for n in result.not_for]
        if gaps:
            missing[user] = gaps
    return missing


def effective_logging(ctx: Context, settings: Settings, user: str) -> dict[str, Any]:
    """What sudo uses for ``user`` (evidence)."""
    return {name: setting(ctx, user, name, initial, good).value
            for name, (initial, good) in _logging(settings).items()}


# -- naming the files behind a finding (the deploy's refusal, the check's evidence) ---------------

def files_behind(ctx: Context, files: dict[str, Policy | str], settings: Settings,
                 found: dict[str, list[str]], missing: dict[str, list[str]]) -> dict[str, list[str]]:
    """Which files (their own entries, with the whole policy's aliases) hold a rule behind a
    violation, or a Defaults entry behind a missing logging setting or a password not asked;
    files that did not convert alone are listed with why."""
    named: dict[str, list[str]] = {}
    for path, policy in files.items():
        if isinstance(policy, str):
            named[path] = [f"not converted alone: {policy}"]
            continue
        sub = Context(policy, ctx.accounts, ctx.host)
        why = [f"{u}: {v}" for u, vs in violations(sub, settings).items() if u in found
               for v in vs if v in found[u]]
        checks = {u: dict(_logging(settings)) for u in missing}
        for user, problems in found.items():
            if user in ctx.accounts.users and any("NOPASSWD" in p or "authenticate" in p for p in problems):
                checks.setdefault(user, {})["authenticate"] = (True, lambda v: v is not False)
        why += [f"{u}: {e}" for u, names in checks.items() for e in _harmful_entries(sub, u, names)]
        if why:
            named[path] = list(dict.fromkeys(why))
    return named


def _harmful_entries(ctx: Context, user: str, names: dict[str, tuple[Any, Callable[[Any], bool]]]) -> list[str]:
    """Defaults entries that set one of ``names`` to a bad value and may concern ``user``."""
    return [str(entry) for entry in ctx.policy.defaults for name, value in entry.options
            if name in names and not names[name][1](value)
            and (entry.kinds & {"command", "runas"} or _applies(ctx, entry, user) != "no")]


QUARANTINE_SUFFIX = ".hardening-quarantine"


@dataclass(frozen=True)
class SudoRepair:
    """What the deploy does about the sudoers policy beyond writing its own file: the files of the
    include directory it sets aside (renamed with a ``.``, which sudo skips), and what it cannot
    repair (a reason to refuse, naming the files)."""

    quarantine: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()


def deploy_plan(after: Context | None, included: bool, files: dict[str, Policy | str], settings: Settings,
                own: str = SUDOERS_PATH, directory: str = SUDOERS_DIR) -> SudoRepair:
    """What the sudoers policy would still get wrong with the deploy's file in place. A file of
    the include directory behind it (a rule, a Defaults entry) is set aside, kept under a name
    sudo skips (``<name>.hardening-quarantine``) for a person to read; a finding in the main file,
    or one no file can be named for, is a refusal. Never ``own``: the deploy writes it."""
    if after is None:
        return SudoRepair()
    if not included:
        return SudoRepair(conflicts=(f"{SUDOERS} does not read {SUDOERS_DIR} (no @includedir): "
                                     f"{own} would have no effect",))
    found = violations(after, settings)
    missing = missing_logging(after, settings, sorted(accounts_with_rights(after)) or ["root"])
    if not found and not missing:
        return SudoRepair()
    named = {p: w for p, w in files_behind(after, files, settings, found, missing).items() if p != own}
    movable = tuple(p for p in named if p.startswith(directory.rstrip("/") + "/") and "/" not in
                    p[len(directory.rstrip("/")) + 1:] and not isinstance(files.get(p), str))
    stay = {p: w for p, w in named.items() if p not in movable}
    if named and not stay:
        return SudoRepair(quarantine=movable)
    problems = [f"{u}: {'; '.join(v)}" for u, v in found.items()]
    problems += [f"{u}: not in effect: {', '.join(m)}" for u, m in missing.items()]
    where = "; ".join(f"{p} [{' | '.join(w)}]" for p, w in stay.items()) or "no single file (see the check)"
    return SudoRepair(movable, (f"the sudoers policy still breaks the measure with {own} in place: "
                                f"{' / '.join(problems)}. Caused by: {where}. The deploy sets aside files of "
                                f"{directory} only; fix these",))


def quarantine_command(paths: Iterable[str]) -> str:
    """Rename each file to a name sudo skips, then ``visudo -c``: when the policy no longer parses
    (an alias the file defined is used elsewhere) every file is put back and the command fails, in
    the same shell (a broken policy would stop sudo itself)."""
    pairs = [(shlex.quote(p), shlex.quote(p + QUARANTINE_SUFFIX)) for p in paths]
    move = " && ".join(f"mv -f {a} {b}" for a, b in pairs)
    back = "; ".join(f"if [ -e {b} ]; then mv -f {b} {a}; fi" for a, b in pairs)
    names = " ".join(a for a, _ in pairs)
    return (f"set -u; restore() {{ {back}; }}; "
            f"if ! {{ {move}; }}; then restore; echo 'refused: could not rename' {names} >&2; exit 1; fi; "
            "if ! out=$(visudo -c 2>&1); then restore; "
            'echo "refused: sudoers does not parse without the files, put back: $out" >&2; exit 1; fi; '
            f"echo 'set aside (sudo skips a name with a dot):' {names}")


MEASURE = Measure(
    name="admin",
    title="least administrator privilege",
    clauses=('6-6',),
    order=50,
    settings=Settings,
    observe=observe,
)
