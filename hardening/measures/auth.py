"""auth (6-1, 6-2): authentication, password rules and access to personal-data paths.

Desired state (shared by ``deploys/auth.py`` and ``checks/test_auth.py``):

* **faillock** (6-1): Debian 12's libpam-modules 1.5.2 ships ``pam_faillock.so`` and
  ``/etc/security/faillock.conf`` but no pam-auth-update profile for it. pam-auth-update writes
  the Auth lines of one profile next to each other, ordered by priority, so one profile cannot
  put ``preauth`` before pam_unix and ``authfail`` after it: two profiles do it,
  ``hardening-faillock-preauth`` (priority 1024, above pam_unix's 256: preauth, and the account
  line that resets the counter after a successful login) and ``hardening-faillock`` (priority 0,
  after pam_unix: authfail). pam_unix's ``[success=end]`` jumps past the Primary block, so an
  ``authsucc`` line inside it would never run; pam_faillock's account phase resets the records
  instead (pam_faillock(8)). Root is not locked (no ``even_deny_root``): root's console login
  stays possible. Values live in faillock.conf; arguments on the module lines would win over it.
* **pwquality** (6-2): ``/etc/security/pwquality.conf.d/hardening.conf``. libpwquality reads
  the ``pwquality.conf.d/*.conf`` files first (ASCII order), then ``pwquality.conf``, the last
  value winning (pwquality.conf(5)); arguments of ``pam_pwquality.so`` win over both.
* **ageing and hash** (6-2): ``/etc/login.defs``. shadow-utils' getdef.c stores every
  ``KEY value`` line it reads over the previous one, so the **last** occurrence of a key wins;
  quotes around the value are stripped. ``ENCRYPT_METHOD`` is what chpasswd/newusers use;
  ``passwd`` on Debian hashes through PAM, so pam_unix's option in common-password counts too.
* **shadow files** (6-2): /etc/shadow and /etc/gshadow owned by root, group shadow (or root),
  no bits beyond 0640.
* **personal data** (6-1): each path a directory owned by root and the named group, with the
  profile's mode, which never has world bits.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from hardening.measures._base import Measure, Strict
from hardening.observe import quote

PAM_CONFIGS = "/usr/share/pam-configs"
FAILLOCK_CONF = "/etc/security/faillock.conf"
PWQUALITY_CONF = "/etc/security/pwquality.conf"
PWQUALITY_DIR = "/etc/security/pwquality.conf.d"
PWQUALITY_DROPIN = f"{PWQUALITY_DIR}/hardening.conf"
LOGIN_DEFS = "/etc/login.defs"
SHADOW_FILES = ("/etc/shadow", "/etc/gshadow")
LIB_DIR = "/usr/local/lib/hardening"
STACK_CHECK = f"{LIB_DIR}/pam-stack-check.awk"
ENABLE_SCRIPT = f"{LIB_DIR}/faillock-enable.sh"
BACKUP_DIR = "/var/backups/hardening-auth"
PACKAGES = ("libpam-modules", "libpam-runtime", "libpam-pwquality")
# libpam-pwquality's pam-auth-update profile: enabled with ours, so that a stack where someone
# disabled it gets pam_pwquality back (the package's own postinst enables it on install).
PWQUALITY_PROFILE = "pwquality"

# pam_faillock's built-in defaults (pam_faillock(8)), used when nothing sets a value.
FAILLOCK_DEFAULTS = {"deny": "3", "unlock_time": "600", "fail_interval": "900"}
# libpwquality's built-in defaults (pwquality.conf(5)).
PWQUALITY_DEFAULTS = {"minlen": "8", "minclass": "0"}
# Hash prefixes accepted as strong in /etc/shadow: yescrypt, gost-yescrypt, scrypt, bcrypt, sha512.
STRONG_HASH_PREFIXES = ("$y$", "$gy$", "$7$", "$2b$", "$2y$", "$6$")
HASH_STRENGTH = {"yescrypt": 2, "sha512": 1}


class PersonalDataPath(Strict):
    path: str = Field(pattern=r"^/")
    group: str = Field(pattern=r"^[a-z_][a-z0-9_-]*$")
    mode: str = Field(default="0750", pattern=r"^0[0-7]{3}$")

    @field_validator("mode")
    @classmethod
    def _no_world_bits(cls, value: str) -> str:
        if int(value, 8) & 0o007:
            raise ValueError("personal-data directories may not have world (other) bits")
        return value


class Settings(Strict):
    pass_min_len: int = Field(default=12, ge=8, le=128)
    pass_min_classes: int = Field(default=3, ge=1, le=4)
    pass_max_days: int = Field(default=365, ge=1)
    pass_min_days: int = Field(default=1, ge=0)
    pass_warn_age: int = Field(default=14, ge=0)
    faillock_deny: int = Field(default=5, ge=1)
    # 0 means a locked account stays locked until an administrator runs `faillock --reset`.
    faillock_unlock_time: int = Field(default=900, ge=0)
    faillock_fail_interval: int = Field(default=900, ge=1)
    password_hash: Literal["yescrypt", "sha512"] = "yescrypt"
    # Directories holding personal information: owner root, this group, no world bits. An agency's
    # profile names them, e.g. [{path: /srv/pii, group: pii, mode: "0750"}].
    personal_data: list[PersonalDataPath] = Field(default_factory=list)


# -- desired state -------------------------------------------------------------------------------

_PREAUTH_PROFILE = """\
Name: hardening: refuse accounts locked by pam_faillock, reset its count after a login
Default: no
Priority: 1024
Auth-Type: Primary
Auth:
\trequisite\t\t\tpam_faillock.so preauth
Account-Type: Primary
Account:
\trequired\t\t\tpam_faillock.so
"""

_AUTHFAIL_PROFILE = """\
Name: hardening: count failed logins with pam_faillock (lock after deny)
Default: no
Priority: 0
Auth-Type: Primary
Auth:
\t[default=die]\t\t\tpam_faillock.so authfail
"""


def pam_profiles() -> dict[str, str]:
    """pam-auth-update profiles (file name in /usr/share/pam-configs -> content)."""
    return {"hardening-faillock-preauth": _PREAUTH_PROFILE, "hardening-faillock": _AUTHFAIL_PROFILE}


def faillock_values(settings: Settings) -> dict[str, str]:
    """The faillock.conf keys this measure sets."""
    return {
        "deny": str(settings.faillock_deny),
        "unlock_time": str(settings.faillock_unlock_time),
        "fail_interval": str(settings.faillock_fail_interval),
    }


def pwquality_values(settings: Settings) -> dict[str, str]:
    return {"minlen": str(settings.pass_min_len), "minclass": str(settings.pass_min_classes)}


def pwquality_conf(settings: Settings) -> str:
    body = "".join(f"{k} = {v}\n" for k, v in pwquality_values(settings).items())
    return "# Managed by hardening (auth, 6-2): password quality from the host's profile.\n" + body


def login_defs_values(settings: Settings) -> dict[str, str]:
    """login.defs keys and values (the deploy replaces each key's line, the check reads them)."""
    return {
        "PASS_MAX_DAYS": str(settings.pass_max_days),
        "PASS_MIN_DAYS": str(settings.pass_min_days),
        "PASS_WARN_AGE": str(settings.pass_warn_age),
        "ENCRYPT_METHOD": settings.password_hash.upper(),
    }


def login_defs_regex(key: str) -> str:
    """grep/sed basic regex matching every active line of `key` in login.defs."""
    return f"^[[:space:]]*{key}[[:space:]]"


def kv_conf_regex(key: str) -> str:
    """grep/sed basic regex matching every active `key = value` line (faillock.conf style)."""
    return f"^[[:space:]]*{key}[[:space:]]*="


# -- parsing, the way the programs read their files ------------------------------------------------

def parse_login_defs(text: str) -> dict[str, str]:
    """login.defs as shadow-utils' getdef.c reads it: the last occurrence of a key wins."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, *value = line.split(None, 1)
        values[key] = (value[0] if value else "").strip().strip('"')
    return values


def parse_kv_conf(text: str) -> dict[str, str]:
    """faillock.conf / pwquality.conf: `name = value` or a bare flag, `#` comments, last wins."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class PamLine:
    control: str
    module: str
    args: tuple[str, ...]


def parse_pam_stack(text: str, stack: str) -> list[PamLine]:
    """The lines of one type (auth, account, password) of a PAM file, modules by base name."""
    lines: list[PamLine] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        kind, *tail = line.split(None, 1) or [""]
        if kind != stack or not tail:
            continue
        rest = tail[0]
        if rest.startswith("["):
            end = rest.find("]") + 1
            control, rest = rest[:end], rest[end:].strip()
        else:
            control, *more = rest.split(None, 1)
            rest = more[0] if more else ""
        words = rest.split()
        if words:
            lines.append(PamLine(control, words[0].rsplit("/", 1)[-1], tuple(words[1:])))
    return lines


def module_args(lines: list[PamLine], module: str) -> dict[str, str]:
    """`name=value` arguments of every line of `module` (later lines win)."""
    args: dict[str, str] = {}
    for line in lines:
        if line.module == module:
            for arg in line.args:
                name, _, value = arg.partition("=")
                args[name] = value
    return args


# -- validation of the PAM stack (same rules as pam-stack-check.awk, see the tests) ----------------

def _jump(control: str) -> int:
    match = re.search(r"success=([0-9]+)", control)
    return int(match.group(1)) if match else -1


def _first(lines: list[PamLine], module: str, arg: str | None = None, after: int = 0) -> int:
    for i, line in enumerate(lines, start=1):
        if i > after and line.module == module and (arg is None or arg in line.args):
            return i
    return 0


def stack_problems(text: str, stack: Literal["auth", "account"]) -> list[str]:
    """What is wrong with common-auth/common-account for faillock; empty when sound."""
    lines = parse_pam_stack(text, stack)
    problems: list[str] = []
    unix, deny = _first(lines, "pam_unix.so"), _first(lines, "pam_deny.so")
    permit = _first(lines, "pam_permit.so", after=deny) if deny else 0
    if not unix:
        problems.append("no pam_unix.so line")
    if not deny:
        problems.append("no pam_deny.so line")
    elif not permit:
        problems.append("no pam_permit.so after pam_deny.so")
    for i, line in enumerate(lines[: max(deny - 1, 0)], start=1):
        jump = _jump(line.control)
        if jump >= 0 and (i + jump + 1 <= deny or i + jump + 1 > len(lines)):
            problems.append(f"line {i} ({line.module}) success={jump} does not land after pam_deny.so")
    problems += _auth_problems(lines, unix, deny) if stack == "auth" else _account_problems(lines)
    return problems


def _auth_problems(lines: list[PamLine], unix: int, deny: int) -> list[str]:
    problems: list[str] = []
    pre = _first(lines, "pam_faillock.so", "preauth")
    fail = _first(lines, "pam_faillock.so", "authfail")
    if not pre:
        problems.append("no pam_faillock.so preauth line")
    else:
        if unix and pre > unix:
            problems.append("pam_faillock.so preauth comes after pam_unix.so")
        if lines[pre - 1].control not in ("requisite", "required"):
            problems.append("pam_faillock.so preauth is not requisite or required")
    if not fail:
        problems.append("no pam_faillock.so authfail line")
    else:
        if unix and fail < unix:
            problems.append("pam_faillock.so authfail comes before pam_unix.so")
        if deny and fail > deny:
            problems.append("pam_faillock.so authfail comes after pam_deny.so")
        if "default=die" not in lines[fail - 1].control:
            problems.append("pam_faillock.so authfail is not [default=die]")
    return problems


def _account_problems(lines: list[PamLine]) -> list[str]:
    plain = [ln for ln in lines if ln.module == "pam_faillock.so"
             and "preauth" not in ln.args and "authfail" not in ln.args]
    return [] if plain else ["no pam_faillock.so line in the account stack"]


STACK_CHECK_AWK = r"""# Managed by hardening (auth, 6-1): checks common-auth/common-account for faillock.
# Usage: awk -v stack=auth -f pam-stack-check.awk /etc/pam.d/common-auth
# Prints one line per problem and nothing when the stack is sound (same rules as
# hardening.measures.auth.stack_problems).
function jump(ctl) {
    if (match(ctl, /success=[0-9]+/)) return substr(ctl, RSTART + 8, RLENGTH - 8) + 0
    return -1
}
function has(i, word) { return index(" " A[i] " ", " " word " ") > 0 }
{
    sub(/#.*/, "")
    if ($1 != stack) next
    rest = $0
    sub(/^[ \t]*[^ \t]+[ \t]+/, "", rest)
    if (substr(rest, 1, 1) == "[") {
        e = index(rest, "]"); ctl = substr(rest, 1, e); rest = substr(rest, e + 1)
    }
    else { ctl = rest; sub(/[ \t].*/, "", ctl); rest = substr(rest, length(ctl) + 1) }
    sub(/^[ \t]+/, "", rest)
    if (rest == "") next
    mod = rest; sub(/[ \t].*/, "", mod); args = substr(rest, length(mod) + 1)
    gsub(/^[ \t]+|[ \t]+$/, "", args); gsub(/[ \t]+/, " ", args)
    sub(/.*\//, "", mod)
    n++; C[n] = ctl; M[n] = mod; A[n] = args
}
END {
    for (i = 1; i <= n; i++) {
        if (M[i] == "pam_unix.so" && !unix) unix = i
        if (M[i] == "pam_deny.so" && !deny) deny = i
        if (M[i] == "pam_permit.so" && deny && i > deny && !permit) permit = i
        if (M[i] == "pam_faillock.so" && has(i, "preauth") && !pre) pre = i
        if (M[i] == "pam_faillock.so" && has(i, "authfail") && !fail) fail = i
        if (M[i] == "pam_faillock.so" && !has(i, "preauth") && !has(i, "authfail")) acct = i
    }
    if (!unix) print "no pam_unix.so line"
    if (!deny) print "no pam_deny.so line"
    else if (!permit) print "no pam_permit.so after pam_deny.so"
    for (i = 1; i < deny; i++) {
        j = jump(C[i])
        if (j >= 0 && (i + j + 1 <= deny || i + j + 1 > n))
            print "line " i " (" M[i] ") success=" j " does not land after pam_deny.so"
    }
    if (stack == "auth") {
        if (!pre) print "no pam_faillock.so preauth line"
        else {
            if (unix && pre > unix) print "pam_faillock.so preauth comes after pam_unix.so"
            if (C[pre] != "requisite" && C[pre] != "required")
                print "pam_faillock.so preauth is not requisite or required"
        }
        if (!fail) print "no pam_faillock.so authfail line"
        else {
            if (unix && fail < unix) print "pam_faillock.so authfail comes before pam_unix.so"
            if (deny && fail > deny) print "pam_faillock.so authfail comes after pam_deny.so"
            if (index(C[fail], "default=die") == 0) print "pam_faillock.so authfail is not [default=die]"
        }
    } else if (!acct) print "no pam_faillock.so line in the account stack"
}
"""


def enable_script() -> str:
    """Shell script that enables the faillock profiles and refuses a stack that fails validation.

    It saves the PAM files and pam-auth-update's state, runs pam-auth-update, validates the
    resulting common-auth and common-account with pam-stack-check.awk, and on any problem
    restores what it saved, removes the profiles (so that no later pam-auth-update run enables
    them) and exits 1 with the problems. Everything runs in one privileged shell: a broken
    account stack would stop sudo itself, so the restore cannot be a later, separate command.
    """
    names = " ".join([*pam_profiles(), PWQUALITY_PROFILE])
    profiles = " ".join(f"{PAM_CONFIGS}/{n}" for n in pam_profiles())
    return f"""#!/bin/sh
# Managed by hardening (auth, 6-1): enable pam_faillock through pam-auth-update, validated.
set -u
B={BACKUP_DIR}
umask 077
rm -rf "$B/pam.d" "$B/var-lib-pam"
mkdir -p "$B/pam.d" || exit 1
cp -p /etc/pam.d/common-* "$B/pam.d/" || exit 1
cp -a /var/lib/pam "$B/var-lib-pam" || exit 1
restore() {{
    cp -p "$B"/pam.d/common-* /etc/pam.d/
    rm -rf /var/lib/pam && cp -a "$B/var-lib-pam" /var/lib/pam
    rm -f {profiles}
}}
out=$(DEBIAN_FRONTEND=noninteractive pam-auth-update --package --enable {names} 2>&1)
rc=$?
problems=$(awk -v stack=auth -f {STACK_CHECK} /etc/pam.d/common-auth;
           awk -v stack=account -f {STACK_CHECK} /etc/pam.d/common-account)
if [ "$rc" -ne 0 ] || [ -n "$problems" ]; then
    restore
    echo "refused: the PAM stack after pam-auth-update (exit $rc) is not sound; restored the previous" >&2
    echo "problems: $problems" >&2
    echo "pam-auth-update said: $out" >&2
    exit 1
fi
echo "pam_faillock enabled: {names}"
"""


def enable_command() -> str:
    return f"sh {shlex.quote(ENABLE_SCRIPT)}"


# -- evaluation against the profile ----------------------------------------------------------------

def effective_faillock(conf_text: str, auth_text: str) -> dict[str, str]:
    """deny/unlock_time/fail_interval as pam_faillock uses them: defaults, faillock.conf, then
    the arguments of its lines in common-auth (which win)."""
    values = dict(FAILLOCK_DEFAULTS)
    values.update({k: v for k, v in parse_kv_conf(conf_text).items() if k in FAILLOCK_DEFAULTS})
    args = module_args(parse_pam_stack(auth_text, "auth"), "pam_faillock.so")
    values.update({k: v for k, v in args.items() if k in FAILLOCK_DEFAULTS})
    return values


def faillock_problems(values: dict[str, str], settings: Settings) -> list[str]:
    """At least as strict as the profile: deny no higher, unlock_time no shorter (0 = never)."""
    problems = []
    if not (0 < _int(values["deny"]) <= settings.faillock_deny):
        problems.append(f"deny={values['deny']}, the profile wants 1..{settings.faillock_deny}")
    unlock = _int(values["unlock_time"])
    if unlock != 0 and unlock < settings.faillock_unlock_time:
        problems.append(f"unlock_time={values['unlock_time']}, the profile wants >= "
                        f"{settings.faillock_unlock_time} (or 0)")
    if _int(values["fail_interval"]) < settings.faillock_fail_interval:
        problems.append(f"fail_interval={values['fail_interval']}, the profile wants >= "
                        f"{settings.faillock_fail_interval}")
    return problems


def effective_pwquality(dropins: list[tuple[str, str]], main_text: str, password_text: str) -> dict[str, str]:
    """minlen/minclass as pam_pwquality uses them: pwquality.conf.d/*.conf in ASCII order, then
    pwquality.conf, then pam_pwquality.so's arguments in common-password."""
    values = dict(PWQUALITY_DEFAULTS)
    for _, text in sorted(dropins):
        values.update({k: v for k, v in parse_kv_conf(text).items() if k in PWQUALITY_DEFAULTS})
    values.update({k: v for k, v in parse_kv_conf(main_text).items() if k in PWQUALITY_DEFAULTS})
    args = module_args(parse_pam_stack(password_text, "password"), "pam_pwquality.so")
    values.update({k: v for k, v in args.items() if k in PWQUALITY_DEFAULTS})
    return values


def pwquality_problems(values: dict[str, str], settings: Settings) -> list[str]:
    problems = []
    if _int(values["minlen"]) < settings.pass_min_len:
        problems.append(f"minlen={values['minlen']}, the profile wants >= {settings.pass_min_len}")
    if _int(values["minclass"]) < settings.pass_min_classes:
        problems.append(f"minclass={values['minclass']}, the profile wants >= {settings.pass_min_classes}")
    return problems


def ageing_problems(defs: dict[str, str], settings: Settings) -> list[str]:
    """PASS_MAX_DAYS no longer, PASS_MIN_DAYS and PASS_WARN_AGE no shorter than the profile."""
    want = login_defs_values(settings)
    problems = []
    if not (0 < _int(defs.get("PASS_MAX_DAYS", "-1")) <= settings.pass_max_days):
        problems.append(f"PASS_MAX_DAYS={defs.get('PASS_MAX_DAYS')}, "
                        f"the profile wants <= {want['PASS_MAX_DAYS']}")
    for key in ("PASS_MIN_DAYS", "PASS_WARN_AGE"):
        if _int(defs.get(key, "-1")) < int(want[key]):
            problems.append(f"{key}={defs.get(key)}, the profile wants >= {want[key]}")
    return problems


def hash_ok(method: str | None, settings: Settings) -> bool:
    """A hash method (ENCRYPT_METHOD value or pam_unix option) at least as strong as the profile's."""
    strength = HASH_STRENGTH.get((method or "").lower(), 0)
    return strength >= HASH_STRENGTH[settings.password_hash]


def pam_unix_hash(password_text: str) -> str | None:
    """The hash option of pam_unix.so in common-password (None: pam_unix's default, md5 in 1.5)."""
    for line in parse_pam_stack(password_text, "password"):
        if line.module == "pam_unix.so":
            found = [a for a in line.args if a.lower() in {"yescrypt", "sha512", "sha256", "md5",
                                                           "bigcrypt", "blowfish", "gost_yescrypt"}]
            return found[-1] if found else None
    return None


def shadow_entries(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line.count(":") >= 8]


def empty_password_accounts(shadow_text: str) -> list[str]:
    return [f[0] for f in shadow_entries(shadow_text) if f[1] == ""]


def uid0_accounts(passwd_text: str) -> list[str]:
    return [f[0] for f in (ln.split(":") for ln in passwd_text.splitlines()) if len(f) > 3 and f[2] == "0"]


def usable_password(field: str) -> bool:
    """A hash someone can log in with: not empty, not locked (! or *)."""
    return bool(field) and not field.startswith(("!", "*"))


def weak_hash_accounts(shadow_text: str) -> list[str]:
    return [f[0] for f in shadow_entries(shadow_text)
            if usable_password(f[1]) and not f[1].startswith(STRONG_HASH_PREFIXES)]


def ageing_exceeding(shadow_text: str, settings: Settings) -> dict[str, str]:
    """Accounts with a usable password whose maximum age (chage -M) exceeds the profile."""
    found = {}
    for f in shadow_entries(shadow_text):
        if usable_password(f[1]) and not (f[4].isdigit() and 0 < int(f[4]) <= settings.pass_max_days):
            found[f[0]] = f[4] or "(none)"
    return found


def shadow_mode_problems(path: str, mode: int, user: str, group: str) -> list[str]:
    """/etc/shadow-like file: root-owned, group shadow or root, no bits beyond 0640."""
    problems = []
    if user != "root":
        problems.append(f"{path} owned by {user}, not root")
    if group not in ("shadow", "root"):
        problems.append(f"{path} group {group}, not shadow or root")
    if mode & ~0o640:
        problems.append(f"{path} mode {mode:04o} has bits beyond 0640")
    return problems


def personal_data_problems(entry: PersonalDataPath, stat: dict[str, str] | None,
                           group_exists: bool) -> list[str]:
    """Directory state from `stat -c '%F %U %G %a'` and `ls -ld` (ACL marker) against the profile."""
    problems = [] if group_exists else [f"group {entry.group} does not exist"]
    if stat is None:
        return [*problems, f"{entry.path} does not exist"]
    if stat["type"] != "directory":
        problems.append(f"{entry.path} is a {stat['type']}, not a directory")
    if stat["user"] != "root" or stat["group"] != entry.group:
        problems.append(f"{entry.path} owned by {stat['user']}:{stat['group']}, not root:{entry.group}")
    if int(stat["mode"], 8) != int(entry.mode, 8):
        problems.append(f"{entry.path} mode {int(stat['mode'], 8):04o}, not {entry.mode}")
    if int(stat["mode"], 8) & 0o007:
        problems.append(f"{entry.path} has world (other) bits")
    if stat.get("acl") == "+":
        problems.append(f"{entry.path} has extended ACL entries (getfacl) beyond owner/group/mode")
    return problems


def _int(value: str | None) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        return -1


# -- observations (one batch per host; the check and the deploy read the same) ----------------------

GETENT_SHADOW = "getent shadow"
GETENT_PASSWD = "getent passwd"
PAM_AUTH = "cat /etc/pam.d/common-auth"
PAM_ACCOUNT = "cat /etc/pam.d/common-account"
PAM_PASSWORD = "cat /etc/pam.d/common-password"
FAILLOCK_TEXT = quote("cat %s", FAILLOCK_CONF)
PWQUALITY_TEXT = quote("cat %s", PWQUALITY_CONF)
LOGIN_DEFS_TEXT = quote("cat %s", LOGIN_DEFS)
PWQUALITY_DROPINS = quote('for f in %s/*.conf; do [ -f "$f" ] && echo "### $f" && cat "$f"; done; true', PWQUALITY_DIR)


def shadow_stat(path: str) -> str:
    return quote("stat -c '%%a %%U %%G' %s", path)


def dir_stat(path: str) -> str:
    return quote("stat -c '%%F|%%U|%%G|%%a' %s", path)


def dir_listing(path: str) -> str:
    """``ls -ld``: its 11th character is ``+`` when the directory has ACL entries."""
    return quote("ls -ld %s", path)


def group_entry(group: str) -> str:
    return quote("getent group %s", group)


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch."""
    settings: Settings = profile.measure("auth")
    data = [c for e in settings.personal_data for c in (dir_stat(e.path), dir_listing(e.path), group_entry(e.group))]
    return [GETENT_SHADOW, GETENT_PASSWD, PAM_AUTH, PAM_ACCOUNT, PAM_PASSWORD, FAILLOCK_TEXT, PWQUALITY_TEXT,
            PWQUALITY_DROPINS, LOGIN_DEFS_TEXT, *(shadow_stat(p) for p in SHADOW_FILES), *data]


def parse_dropins(text: str) -> list[tuple[str, str]]:
    """The output of PWQUALITY_DROPINS -> (path, text) per drop-in."""
    found = []
    for chunk in text.split("### ")[1:]:
        name, _, body = chunk.partition("\n")
        found.append((name.strip(), body))
    return found


def parse_stat(text: str) -> dict[str, str]:
    """``stat -c '%F|%U|%G|%a'`` then the ACL marker of ``ls -ld`` -> the fields."""
    kind, user, group, mode = text.strip().split("|")
    return {"type": kind, "user": user, "group": group, "mode": mode}


def acl_marker(listing: str) -> str:
    return listing[10:11]


# -- what a deploy cannot repair (it refuses, naming it) ---------------------------------------------

def pam_in_stack(password_text: str, module: str) -> bool:
    return any(ln.module == module for ln in parse_pam_stack(password_text, "password"))


def account_findings(shadow_text: str, passwd_text: str, settings: Settings) -> list[str]:
    """Account problems only a person can solve (the deploy never changes accounts)."""
    found = []
    if empty := empty_password_accounts(shadow_text):
        found.append(f"empty password: {', '.join(empty)} (set one or lock the account: passwd -l)")
    if (uid0 := uid0_accounts(passwd_text)) != ["root"]:
        found.append(f"UID 0 besides root: {', '.join(u for u in uid0 if u != 'root') or 'no root'}")
    if weak := weak_hash_accounts(shadow_text):
        found.append(f"weak stored hash: {', '.join(weak)} (the account sets its password again: passwd)")
    if ageing := ageing_exceeding(shadow_text, settings):
        found.append(f"password never expires or too late: {', '.join(ageing)} "
                     f"(chage -M {settings.pass_max_days} ACCOUNT)")
    return found


def config_findings(settings: Settings, auth_text: str, password_text: str,
                    dropins: list[tuple[str, str]]) -> list[str]:
    """What would still be wrong after the deploy wrote its files: values the deploy's files
    cannot win over (module arguments in the PAM files, a pwquality drop-in read after its own)."""
    found = []
    desired_conf = "".join(f"{k} = {v}\n" for k, v in faillock_values(settings).items())
    if problems := faillock_problems(effective_faillock(desired_conf, auth_text), settings):
        found.append(f"/etc/pam.d/common-auth: pam_faillock.so arguments win over {FAILLOCK_CONF}: "
                     + "; ".join(problems))
    others = [(p, t) for p, t in dropins if p != PWQUALITY_DROPIN]
    after = effective_pwquality([*others, (PWQUALITY_DROPIN, pwquality_conf(settings))], "", password_text)
    if problems := pwquality_problems(after, settings):
        args = module_args(parse_pam_stack(password_text, "password"), "pam_pwquality.so")
        later = [p for p, t in sorted(others) if p > PWQUALITY_DROPIN and set(parse_kv_conf(t)) & set(after)]
        where = ["/etc/pam.d/common-password (pam_pwquality.so arguments)"] if set(args) & set(after) else later
        found.append(f"{', '.join(where) or 'pwquality'}: {'; '.join(problems)}")
    pam_hash = pam_unix_hash(password_text)
    if not hash_ok(pam_hash, settings):
        found.append(f"/etc/pam.d/common-password: pam_unix.so hashes with {pam_hash or 'its default (md5)'}, "
                     f"weaker than {settings.password_hash}")
    return found


MEASURE = Measure(
    name="auth",
    title="authentication, password rules and access to personal-data paths",
    clauses=('6-1', '6-2'),
    order=20,
    settings=Settings,
    observe=observe,
)
