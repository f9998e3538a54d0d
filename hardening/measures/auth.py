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
* **pwquality** (6-2): ``minlen``, ``minclass`` and ``enforcing = 1`` in
  ``/etc/security/pwquality.conf``, line by line. libpwquality reads the ``pwquality.conf.d/*.conf``
  files first (ASCII order), then ``pwquality.conf``, the last value winning
  (``pwquality_read_config``), so no drop-in can loosen them; arguments of ``pam_pwquality.so``
  win over both (and are drift in common-password, see below).
* **PAM** (6-1, 6-2): read as libpam reads it (the "PAM as libpam reads it" section): every file
  of /etc/pam.d with ``@include``, ``include``/``substack``, bracketed controls, ``-`` lines and
  continuations, and each service's stack walked through every result its modules can give
  (:func:`pam_outcomes`, libpam's ``_pam_dispatch_aux``). pam_faillock preauth and pam_pwquality
  must stop the stack when they refuse and lie on every way to success; authfail runs after every
  pam_unix failure; no pam_unix line has ``nullok``. Drift in the common-* files is repaired by
  ``pam-auth-update --force`` after dropping its saved state (which would merge hand-made options
  back); ``nullok`` through ``hardening-unix``, Debian's unix profile without it, replacing ``unix``.
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from hardening.measures._base import Measure, Strict
from hardening.measures._paths import GETENT_PASSWD as GETENT_PASSWD
from hardening.measures._paths import GroupPath
from hardening.measures._paths import acl_marker as acl_marker
from hardening.measures._paths import dir_listing as dir_listing
from hardening.measures._paths import dir_stat as dir_stat
from hardening.measures._paths import group_entry as group_entry
from hardening.measures._paths import parse_stat as parse_stat
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
# Options that exempt accounts from locking: members of admin_group are treated like root, which is
# never locked unless even_deny_root is set (pam_faillock(8)).
FAILLOCK_EXEMPTIONS = ("admin_group", "even_deny_root")
# libpwquality's built-in defaults (pwquality.conf(5)).
# enforcing: nonzero refuses a password that fails the checks, 0 only warns (pam_pwquality(8)).
PWQUALITY_DEFAULTS = {"minlen": "8", "minclass": "0", "enforcing": "1"}
# Hash prefixes accepted as strong in /etc/shadow: yescrypt, gost-yescrypt, scrypt, bcrypt, sha512.
STRONG_HASH_PREFIXES = ("$y$", "$gy$", "$7$", "$2b$", "$2y$", "$6$")
HASH_STRENGTH = {"yescrypt": 2, "sha512": 1}


class PersonalDataPath(GroupPath):
    """A personal-data directory: owned by root and ``group``, with exactly ``mode``."""


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
    """The keys the deploy sets in pwquality.conf, which libpwquality reads after every drop-in."""
    return {"minlen": str(settings.pass_min_len), "minclass": str(settings.pass_min_classes), "enforcing": "1"}


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
    profiles = " ".join(f"{PAM_CONFIGS}/{n}" for n in [*pam_profiles(), UNIX_OWN])
    return f"""#!/bin/sh
# Managed by hardening (auth, 6-1): enable pam_faillock through pam-auth-update, validated.
# --force: the common-* files were edited by hand (drift); pam-auth-update rewrites them from the
# profiles instead of keeping the local modifications (controls, lines and module options).
# With {UNIX_OWN} present (Debian's unix profile without nullok), it replaces the unix profile.
set -u
FORCE=""
[ "${{1:-}}" = "--force" ] && FORCE=--force
UNIX=""
[ -f {PAM_CONFIGS}/{UNIX_OWN} ] && UNIX="{UNIX_OWN} --disable unix"
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
# pam-auth-update merges option changes made by hand (its saved state in /var/lib/pam against the
# files) even with --force: without the saved state it writes the profiles' lines as they are.
if [ -n "$FORCE" ]; then
    (cd /var/lib/pam && rm -f auth account password session session-noninteractive) || {{ restore; exit 1; }}
fi
out=$(DEBIAN_FRONTEND=noninteractive pam-auth-update --package $FORCE --enable {names} $UNIX 2>&1)
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


def enable_command(force: bool = False) -> str:
    return f"sh {shlex.quote(ENABLE_SCRIPT)}" + (" --force" if force else "")


# -- PAM as libpam reads it: files, @include, include/substack, controls, dispatch ------------------
#
# Grammar (Linux-PAM 1.5.2 with Debian's patches, pam.d(5), libpam/pam_handlers.c): a physical
# line loses everything from ``#``; a trailing backslash joins it with the next one. A logical line
# is ``[-]type control module [args]`` or ``@include file`` (Debian: every line of the file, same
# stack level, the caller's type filter). ``type`` is auth, account, password or session, case
# insensitive; ``-`` only silences the log when the module is missing. ``control`` is a keyword
# (required, requisite, sufficient, optional, include, substack) or ``[value=action ...]``; an
# argument in ``[...]`` may hold spaces. ``include FILE`` takes the lines of that type from FILE at
# the same level; ``substack FILE`` one level deeper (done/die end only the substack, a jump cannot
# leave it). A module that cannot be loaded returns PAM_MODULE_UNKNOWN and its control decides.

PAM_DIR = "/etc/pam.d"
PAM_TYPES = ("auth", "account", "password", "session")
PAM_ACTIONS = {"ignore", "bad", "die", "ok", "done", "reset"}
# Return values a control may name (_pam_token_returns in pam_handlers.c).
PAM_RETURNS = (
    "success", "open_err", "symbol_err", "service_err", "system_err", "buf_err", "perm_denied", "auth_err",
    "cred_insufficient", "authinfo_unavail", "user_unknown", "maxtries", "new_authtok_reqd", "acct_expired",
    "session_err", "cred_unavail", "cred_expired", "cred_err", "no_module_data", "conv_err", "authtok_err",
    "authtok_recover_err", "authtok_lock_busy", "authtok_disable_aging", "try_again", "ignore", "abort",
    "authtok_expired", "module_unknown", "bad_item", "conv_again", "incomplete")
_KEYWORDS = {
    "required": {"success": "ok", "new_authtok_reqd": "ok", "ignore": "ignore", "default": "bad"},
    "requisite": {"success": "ok", "new_authtok_reqd": "ok", "ignore": "ignore", "default": "die"},
    "optional": {"success": "ok", "new_authtok_reqd": "ok", "default": "ignore"},
    "sufficient": {"success": "done", "new_authtok_reqd": "done", "default": "ignore"},
}
# Services a person authenticates to with a password (judged for faillock and nullok), and the one
# that changes passwords (judged for pam_pwquality), when their files exist.
AUTH_SERVICES = ("sshd", "login", "sudo", "sudo-i", "su", "su-l")
PASSWORD_SERVICES = ("passwd",)
_MAX_DEPTH = 16


class PamError(ValueError):
    """PAM configuration this module cannot read: an error, never a pass."""


@dataclass(frozen=True)
class PamEntry:
    """One line of a service's expanded stack: a module, or the marker of a substack."""

    where: str                      # file:line
    level: int                      # substack depth
    actions: tuple[tuple[str, str], ...]
    module: str                     # base name (pam_unix.so); "" for a substack marker
    args: tuple[str, ...] = ()
    control: str = ""

    def action(self, value: str) -> str:
        table = dict(self.actions)
        return table.get(value, table.get("default", "bad"))

    def __str__(self) -> str:
        return f"{self.where}: {self.control} {self.module} {' '.join(self.args)}".rstrip()


def pam_logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each logical line: comments cut, continuations joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.strip():
            out.append((start, line.strip()))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def pam_tokens(line: str) -> list[str]:
    """Whitespace-separated words; a word opened by ``[`` runs to the ``]`` that closes it (``\\]``
    escapes one) and keeps its brackets."""
    words: list[str] = []
    i = 0
    while i < len(line):
        if line[i].isspace():
            i += 1
            continue
        if line[i] == "[":
            j = i + 1
            while j < len(line) and not (line[j] == "]" and line[j - 1] != "\\"):
                j += 1
            if j >= len(line):
                raise PamError(f"unclosed [ in {line!r}")
            words.append(line[i:j + 1])
            i = j + 1
        else:
            j = i
            while j < len(line) and not line[j].isspace():
                j += 1
            words.append(line[i:j])
            i = j
    return words


def pam_control(word: str) -> tuple[tuple[str, str], ...]:
    """A control keyword or ``[value=action ...]`` -> (value, action) pairs, ``default`` last."""
    if word.lower() in _KEYWORDS:
        return tuple(_KEYWORDS[word.lower()].items())
    if not (word.startswith("[") and word.endswith("]")):
        raise PamError(f"control {word!r} is neither a keyword nor [value=action ...]")
    pairs: dict[str, str] = {}
    for item in word[1:-1].split():
        value, sep, action = item.partition("=")
        value, action = value.lower(), action.lower()
        if not sep or (value not in PAM_RETURNS and value != "default"):
            raise PamError(f"control {word!r}: {item!r} names no PAM return value")
        if action not in PAM_ACTIONS and not (action.isdigit() and int(action) > 0):
            raise PamError(f"control {word!r}: {item!r} has no known action")
        pairs[value] = action
    pairs.setdefault("default", "bad")  # pam_handlers.c: what a bracket leaves open is a failure
    return tuple(sorted(pairs.items(), key=lambda kv: kv[0] == "default"))


def parse_pam_tree(text: str) -> dict[str, str]:
    """The output of :data:`PAM_TREE` -> path -> text (``### path`` before each file)."""
    files: dict[str, str] = {}
    for chunk in ("\n" + text).split("\n### ")[1:]:
        name, _, body = chunk.partition("\n")
        files[name.strip()] = body
    return files


def pam_stack(files: dict[str, str], service: str, kind: str) -> list[PamEntry]:
    """The ``kind`` stack of ``service`` as libpam builds it (includes and substacks expanded).
    A file that cannot be read or a line libpam would not accept raises :class:`PamError`."""
    out: list[PamEntry] = []
    _load(files, service, kind, 0, 0, out)
    return out


def _load(files: dict[str, str], name: str, kind: str, level: int, depth: int, out: list[PamEntry]) -> None:
    path = name if name.startswith("/") else f"{PAM_DIR}/{name}"
    if depth > _MAX_DEPTH:
        raise PamError(f"{path}: includes nest deeper than {_MAX_DEPTH} (a cycle?)")
    if path not in files:
        raise PamError(f"{path} is not there or not readable: libpam refuses the whole service")
    for number, line in pam_logical_lines(files[path]):
        where = f"{path}:{number}"
        words = pam_tokens(line)
        if words[0] == "@include":
            if len(words) < 2:
                raise PamError(f"{where}: @include without a file")
            _load(files, words[1], kind, level, depth + 1, out)
            continue
        if len(words) < 3:
            raise PamError(f"{where}: {line!r} is not 'type control module'")
        if words[0].lstrip("-").lower() not in PAM_TYPES:
            raise PamError(f"{where}: unknown module type {words[0]!r}")
        if words[0].lstrip("-").lower() != kind:
            continue
        control = words[1].lower()
        if control in ("include", "substack"):
            if control == "substack":
                out.append(PamEntry(where, level, (("default", "ignore"),), "", (), "substack"))
            _load(files, words[2], kind, level + (control == "substack"), depth + 1, out)
            continue
        try:
            actions = pam_control(words[1])
        except PamError as exc:
            raise PamError(f"{where}: {exc}") from None
        args = tuple(w[1:-1].replace("\\]", "]") if w.startswith("[") else w for w in words[3:])
        out.append(PamEntry(where, level, actions, words[2].rsplit("/", 1)[-1], args, words[1]))


# -- the dispatch (libpam/pam_dispatch.c, _pam_dispatch_aux), over every possible module result ----

_FAILURE = {"auth": "auth_err", "account": "auth_err", "password": "authtok_err", "session": "session_err"}


Facts = frozenset[str]
Track = Callable[[int, str, Facts], Facts]


def pam_outcomes(stack: list[PamEntry], kind: str, track: Track, modules: set[str] | None = None,
                 fixed: dict[str, tuple[str, ...]] | None = None) -> set[tuple[bool, Facts]]:
    """Every (success?, facts) the stack can end with, each module returning any value that makes
    a difference (success, ignore, the type's usual failure, each value some control names, one value no
    control names);
    ``track`` folds each (entry index, result) into the facts a caller follows. ``fixed`` narrows
    modules by name (pam_deny fails, pam_permit succeeds); a module missing from ``modules`` (the
    host's module directory) returns module_unknown."""
    named = {v for e in stack for v, _ in e.actions if v != "default"} | {"success", "ignore", _FAILURE[kind]}
    generic = (*sorted(named), "__other__")
    known = {"pam_deny.so": (_FAILURE[kind],), "pam_permit.so": ("success",), **(fixed or {})}
    ends: set[tuple[bool, Facts]] = set()
    seen: set[tuple[Any, ...]] = set()
    todo: list[tuple[int, str, str, tuple[tuple[str, str], ...], int, Facts]] = [
        (0, "undef", "__must_fail__", (), 0, frozenset())]
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        i, impression, status, subs, prev, facts = state
        if i >= len(stack):
            ends.add((status == "success" and impression == "positive", facts))
            continue
        entry = stack[i]
        if prev < entry.level:  # entering a substack: remember the state
            subs = _remember(subs, entry.level, impression, status)
        if not entry.module:  # the substack's own handler: skipped
            todo.append((i + 1, impression, status, subs, entry.level, facts))
            continue
        values = ("module_unknown",) if modules is not None and entry.module not in modules else \
            known.get(entry.module, generic)
        for value in values:
            nxt, imp, st = _step(stack, i, value, impression, status, subs)
            todo.append((nxt, imp, st, subs, entry.level, track(i, value, facts)))
    return ends


def _remember(subs: tuple[tuple[str, str], ...], level: int, impression: str, status: str
              ) -> tuple[tuple[str, str], ...]:
    padded = list(subs) + [("undef", "__must_fail__")] * (level + 1 - len(subs))
    padded[level] = (impression, status)
    return tuple(padded)


def _skip_to_end(stack: list[PamEntry], i: int) -> int:
    """decision_made: past every following entry at this level or deeper."""
    level, j = stack[i].level, i
    while j + 1 < len(stack) and stack[j + 1].level >= level:
        j += 1
    return j + 1


def _jump_target(stack: list[PamEntry], i: int, count: int) -> int | None:
    """Skip ``count`` entries of this level (a substack counts as one); None: off the end."""
    level, j = stack[i].level, i
    while j + 1 < len(stack) and stack[j + 1].level >= level and count > 0:
        j += 1
        while j + 1 < len(stack) and stack[j + 1].level > level:
            j += 1
        count -= 1
    return None if count else j + 1


def _step(stack: list[PamEntry], i: int, value: str, impression: str, status: str,
          subs: tuple[tuple[str, str], ...]) -> tuple[int, str, str]:
    """One module's result through its control: (next entry, impression, status)."""
    entry = stack[i]
    action = entry.action(value)
    nxt = i + 1
    if action == "reset":
        impression, status = subs[entry.level] if entry.level < len(subs) else ("undef", "__must_fail__")
    elif action in ("ok", "done"):
        if impression == "undef" or (impression == "positive" and status == "success"):
            impression, status = "positive", value
        if impression == "positive" and action == "done":
            nxt = _skip_to_end(stack, i)
    elif action in ("bad", "die"):
        if impression != "negative":
            impression = "negative"
            status = "__must_fail__" if value == "ignore" else value
        if action == "die":
            nxt = _skip_to_end(stack, i)
    elif action.isdigit():
        target = _jump_target(stack, i, int(action))
        if target is None:  # "bad jump in stack": libpam has already walked to the end
            impression, status, nxt = "negative", "__must_fail__", _skip_to_end(stack, i)
        else:
            nxt = target
    return nxt, impression, status


# -- what the measure asks of the stacks -----------------------------------------------------------

def _is(entry: PamEntry, module: str, arg: str | None = None, without: tuple[str, ...] = ()) -> bool:
    return entry.module == module and (arg is None or arg in entry.args) and not set(without) & set(entry.args)


# Results some modules can give, narrower than "anything" (judged for a person who is not root:
# pam_rootok fails; pam_faillock succeeds or refuses, pam_faillock(8)).
_KNOWN_RESULTS = {kind: {"pam_rootok.so": (_FAILURE[kind],), "pam_faillock.so": ("success", "auth_err")}
                  for kind in PAM_TYPES}


def gate_problems(stack: list[PamEntry], kind: str, module: str, arg: str | None, failure: str | None,
                  what: str, without: tuple[str, ...] = (), modules: set[str] | None = None) -> list[str]:
    """A module that must stop the stack when it fails: every way to success passes it, and no
    way where it failed ends in success (an ``optional`` control, a ``[...=ignore]``, a jump or
    a later ``sufficient`` cannot take its failure back)."""
    at = {i for i, e in enumerate(stack) if _is(e, module, arg, without)}
    if not at:
        return [f"no {what} in the {kind} stack"]

    def track(i: int, value: str, facts: Facts) -> Facts:
        if i not in at:
            return facts
        return facts | {"ran"} | ({f"failed:{i}"} if value == failure else set())

    ends = pam_outcomes(stack, kind, track, modules, _KNOWN_RESULTS[kind])
    problems = []
    if any(ok and "ran" not in facts for ok, facts in ends):
        first = min(at)
        skippers = [str(e) for e in stack[:first] if any(a.isdigit() or a == "done" for _, a in e.actions)]
        problems.append(f"{what} is skipped on a way to success (by {'; '.join(skippers) or 'the stack'})")
    for i in sorted(at):
        if any(ok and f"failed:{i}" in facts for ok, facts in ends):
            problems.append(f"{what} failing does not fail the stack ({stack[i]})")
    return problems


def reached_problems(stack: list[PamEntry], kind: str, before: tuple[str, str], module: str, arg: str,
                     what: str, modules: set[str] | None = None) -> list[str]:
    """After ``before`` (module, result), ``module arg`` runs on every way that ends in a failure,
    unless another module (pam_sss, pam_krb5) authenticated the user after it: faillock counts
    every failed password."""
    at = {i for i, e in enumerate(stack) if _is(e, module, arg)}
    if not at:
        return [f"no {what} in the {kind} stack"]

    def track(i: int, value: str, facts: Facts) -> Facts:
        if stack[i].module == before[0] and value == before[1] and not facts:
            return frozenset({"pending"})
        if "pending" in facts and i in at:
            return frozenset({"counted"})
        if "pending" in facts and value == "success" and stack[i].module != "pam_permit.so":
            return frozenset({"authenticated by another module"})
        return facts

    ends = pam_outcomes(stack, kind, track, modules, _KNOWN_RESULTS[kind])
    if any("pending" in facts and not ok for ok, facts in ends):
        return [f"{what} does not always run after {before[0]} returned {before[1]}"]
    return []


def faillock_stack_problems(stack: list[PamEntry], kind: Literal["auth", "account"],
                            modules: set[str] | None = None) -> list[str]:
    """pam_faillock as the measure needs it in one service's stack. auth: ``preauth`` gates (a
    locked account never reaches pam_unix's success), ``authfail`` runs after every pam_unix
    failure. account: pam_faillock (which resets the count) runs on every way to success."""
    if kind == "account":
        return gate_problems(stack, kind, "pam_faillock.so", None, None, "pam_faillock.so",
                             ("preauth", "authfail"), modules)
    problems = gate_problems(stack, kind, "pam_faillock.so", "preauth", "auth_err", "pam_faillock.so preauth",
                             modules=modules)
    if not any(e.module == "pam_unix.so" for e in stack):
        return [*problems, "no pam_unix.so in the auth stack"]
    return problems + reached_problems(stack, kind, ("pam_unix.so", "auth_err"), "pam_faillock.so", "authfail",
                                       "pam_faillock.so authfail", modules)


def pwquality_stack_problems(stack: list[PamEntry], modules: set[str] | None = None) -> list[str]:
    """pam_pwquality gates the password stack: a password it refuses is never set."""
    return gate_problems(stack, "password", "pam_pwquality.so", None, "authtok_err", "pam_pwquality.so",
                         modules=modules)


def nullok_lines(stack: list[PamEntry]) -> list[str]:
    """pam_unix lines that accept an empty password (``nullok``)."""
    return [str(e) for e in stack if e.module == "pam_unix.so" and "nullok" in e.args]


def stack_args(stack: list[PamEntry], module: str) -> dict[str, str]:
    """``name=value`` (or bare flag) arguments of every line of ``module`` (later lines win)."""
    args: dict[str, str] = {}
    for entry in stack:
        if entry.module == module:
            for arg in entry.args:
                name, _, value = arg.partition("=")
                args[name] = value
    return args


# -- evaluation against the profile ----------------------------------------------------------------

def effective_faillock(conf_text: str, args: dict[str, str]) -> dict[str, str]:
    """deny/unlock_time/fail_interval as pam_faillock uses them: defaults, faillock.conf, then
    the arguments of its lines in the service's auth stack (which win, :func:`stack_args`)."""
    keys = {*FAILLOCK_DEFAULTS, *FAILLOCK_EXEMPTIONS}
    values = dict(FAILLOCK_DEFAULTS)
    values.update({k: v for k, v in parse_kv_conf(conf_text).items() if k in keys})
    values.update({k: v for k, v in args.items() if k in keys})
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
    if values.get("admin_group") and "even_deny_root" not in values:
        problems.append(f"admin_group={values['admin_group']}: its members are never locked (like root)")
    return problems


def effective_pwquality(dropins: list[tuple[str, str]], main_text: str, args: dict[str, str]) -> dict[str, str]:
    """minlen/minclass/enforcing as pam_pwquality uses them: pwquality.conf.d/*.conf in ASCII
    order, then pwquality.conf (libpwquality's pwquality_read_config), then pam_pwquality.so's
    arguments in the password stack (:func:`stack_args`)."""
    values = dict(PWQUALITY_DEFAULTS)
    for _, text in sorted(dropins):
        values.update({k: v for k, v in parse_kv_conf(text).items() if k in PWQUALITY_DEFAULTS})
    values.update({k: v for k, v in parse_kv_conf(main_text).items() if k in PWQUALITY_DEFAULTS})
    values.update({k: v for k, v in args.items() if k in PWQUALITY_DEFAULTS})
    return values


def pwquality_problems(values: dict[str, str], settings: Settings) -> list[str]:
    problems = []
    if _int(values["minlen"]) < settings.pass_min_len:
        problems.append(f"minlen={values['minlen']}, the profile wants >= {settings.pass_min_len}")
    if _int(values["minclass"]) < settings.pass_min_classes:
        problems.append(f"minclass={values['minclass']}, the profile wants >= {settings.pass_min_classes}")
    if not re.fullmatch(r"-?[0-9]+", values["enforcing"].strip()) or _int(values["enforcing"]) == 0:
        problems.append(f"enforcing={values['enforcing']}: pam_pwquality only warns, the profile wants it to refuse")
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
PAM_AUTH = "cat /etc/pam.d/common-auth"
PAM_ACCOUNT = "cat /etc/pam.d/common-account"
PAM_PASSWORD = "cat /etc/pam.d/common-password"
FAILLOCK_TEXT = quote("cat %s", FAILLOCK_CONF)
PWQUALITY_TEXT = quote("cat %s", PWQUALITY_CONF)
LOGIN_DEFS_TEXT = quote("cat %s", LOGIN_DEFS)
PAMTESTER = "command -v pamtester"  # the rollback watchdog's fresh authentication (deploys/_rollback.py)
PWQUALITY_DROPINS = quote('for f in %s/*.conf; do [ -f "$f" ] && echo "### $f" && cat "$f"; done; true', PWQUALITY_DIR)


def shadow_stat(path: str) -> str:
    return quote("stat -c '%%a %%U %%G' %s", path)


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch."""
    settings: Settings = profile.measure("auth")
    data = [c for e in settings.personal_data for c in (dir_stat(e.path), dir_listing(e.path), group_entry(e.group))]
    return [GETENT_SHADOW, GETENT_PASSWD, PAM_AUTH, PAM_ACCOUNT, PAM_PASSWORD, FAILLOCK_TEXT, PWQUALITY_TEXT,
            PWQUALITY_DROPINS, LOGIN_DEFS_TEXT, *(shadow_stat(p) for p in SHADOW_FILES), PAM_TREE, PAM_MODULES,
            UNIX_PROFILE, PAMTESTER, *data]


def parse_dropins(text: str) -> list[tuple[str, str]]:
    """The output of PWQUALITY_DROPINS -> (path, text) per drop-in."""
    found = []
    for chunk in text.split("### ")[1:]:
        name, _, body = chunk.partition("\n")
        found.append((name.strip(), body))
    return found


# -- what a deploy cannot repair (it refuses, naming it) ---------------------------------------------

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


# -- the PAM stacks of the host, judged (the checks) and what the deploy makes of them -----------------

PAM_TREE = (f'for f in {PAM_DIR}/*; do [ -f "$f" ] || continue; printf \'### %s\\n\' "$f"; cat "$f" || exit 1; '
            "echo; done")
PAM_MODULES = ('for d in /lib/*/security /usr/lib/*/security /lib/security /usr/lib/security; do '
               '[ -d "$d" ] && ls -1 "$d"; done | sort -u')
UNIX_PROFILE = f"cat {PAM_CONFIGS}/unix"
COMMON = {"auth": "common-auth", "account": "common-account", "password": "common-password"}
UNIX_OWN = "hardening-unix"


@dataclass(frozen=True)
class PamView:
    """The host's /etc/pam.d and its module directory, read once."""

    files: dict[str, str]
    modules: frozenset[str] | None

    def stack(self, service: str, kind: str) -> list[PamEntry]:
        return pam_stack(self.files, service, kind)

    def services(self, names: tuple[str, ...]) -> list[str]:
        return [n for n in names if f"{PAM_DIR}/{n}" in self.files]


def read_pam(tree: Any, modules: Any) -> PamView:
    """Observations of :data:`PAM_TREE` and :data:`PAM_MODULES` -> the view (PamError if unreadable)."""
    if tree.rc != 0 or not tree.stdout.strip():
        raise PamError(f"{PAM_DIR} could not be read (exit {tree.rc}): {(tree.stderr or tree.stdout)[-300:]!r}")
    names = frozenset(modules.stdout.split()) if modules.rc == 0 and modules.stdout.strip() else None
    return PamView(parse_pam_tree(tree.stdout), names)


def faillock_stacks(view: PamView) -> dict[str, list[str]]:
    """Per common file and per password service that exists: what pam_faillock lacks there."""
    out: dict[str, list[str]] = {}
    mods = set(view.modules) if view.modules is not None else None
    for kind in ("auth", "account"):
        for name in [COMMON[kind], *view.services(AUTH_SERVICES)]:
            out[f"{name} ({kind})"] = faillock_stack_problems(view.stack(name, kind), kind, mods)
    return {k: v for k, v in out.items() if v}


def faillock_args(view: PamView) -> dict[str, dict[str, str]]:
    """pam_faillock.so arguments per auth stack (common-auth and each service)."""
    return {name: stack_args(view.stack(name, "auth"), "pam_faillock.so")
            for name in [COMMON["auth"], *view.services(AUTH_SERVICES)]}


def pwquality_stacks(view: PamView) -> dict[str, list[str]]:
    mods = set(view.modules) if view.modules is not None else None
    out = {f"{name} (password)": pwquality_stack_problems(view.stack(name, "password"), mods)
           for name in [COMMON["password"], *view.services(PASSWORD_SERVICES)]}
    return {k: v for k, v in out.items() if v}


def pwquality_args(view: PamView) -> dict[str, dict[str, str]]:
    return {name: stack_args(view.stack(name, "password"), "pam_pwquality.so")
            for name in [COMMON["password"], *view.services(PASSWORD_SERVICES)]}


def nullok_stacks(view: PamView) -> dict[str, list[str]]:
    """Auth stacks with a pam_unix line that accepts an empty password."""
    out = {name: nullok_lines(view.stack(name, "auth")) for name in [COMMON["auth"], *view.services(AUTH_SERVICES)]}
    return {k: v for k, v in out.items() if v}


def unix_without_nullok(unix_profile: str) -> str | None:
    """Debian's pam_unix profile (/usr/share/pam-configs/unix) without ``nullok``, as the
    deploy's own profile :data:`UNIX_OWN` that replaces it; None when it has no ``nullok``."""
    if not re.search(r"^[ \t].*\bnullok\b", unix_profile, flags=re.M):
        return None
    text = re.sub(r"[ \t]+nullok\b(?=[ \t]|$)", "", unix_profile, flags=re.M)
    text = re.sub(r"^Name:.*$", "Name: Unix authentication without empty passwords (hardening, 6-1)",
                  text, count=1, flags=re.M)
    return text


def common_drift(view: PamView, settings: Settings) -> list[str]:
    """What is wrong in the common-* files pam-auth-update writes: the deploy rewrites them from
    the profiles (``pam-auth-update --force``) when any of this is found."""
    found: list[str] = []
    mods = set(view.modules) if view.modules is not None else None
    for kind in ("auth", "account"):
        found += [f"{COMMON[kind]}: {p}" for p in
                  faillock_stack_problems(view.stack(COMMON[kind], kind), kind, mods)]
    password = view.stack(COMMON["password"], "password")
    found += [f"{COMMON['password']}: {p}" for p in pwquality_stack_problems(password, mods)]
    desired_conf = "".join(f"{k} = {v}\n" for k, v in faillock_values(settings).items())
    args = stack_args(view.stack(COMMON["auth"], "auth"), "pam_faillock.so")
    found += [f"{COMMON['auth']}: pam_faillock.so arguments: {p}"
              for p in faillock_problems(effective_faillock(desired_conf, args), settings)]
    after = {k: v for k, v in pwquality_values(settings).items()}
    pw_args = stack_args(password, "pam_pwquality.so")
    found += [f"{COMMON['password']}: pam_pwquality.so arguments: {p}"
              for p in pwquality_problems(effective_pwquality([], "", {**after, **pw_args}), settings)]
    found += [f"{COMMON['auth']}: {line}" for line in nullok_lines(view.stack(COMMON["auth"], "auth"))]
    hashes = [a for e in password if e.module == "pam_unix.so" for a in e.args if a.lower() in _HASHES]
    if not hash_ok(hashes[-1] if hashes else None, settings):
        found.append(f"{COMMON['password']}: pam_unix.so hashes with {hashes[-1] if hashes else 'its default'}")
    return found


_HASHES = {"yescrypt", "sha512", "sha256", "md5", "bigcrypt", "blowfish", "gost_yescrypt"}


def service_conflicts(view: PamView, settings: Settings) -> list[str]:
    """Problems outside the common-* files (a service's own lines), which pam-auth-update does
    not write: the deploy refuses, naming the service file, for a person to fix."""
    if common_drift(view, settings):
        return []  # judged again once the common files are rewritten
    found = []
    for where, problems in {**faillock_stacks(view), **pwquality_stacks(view)}.items():
        found.append(f"{PAM_DIR}/{where.split(' ')[0]}: {'; '.join(problems)}")
    desired_conf = "".join(f"{k} = {v}\n" for k, v in faillock_values(settings).items())
    for name, args in faillock_args(view).items():
        if problems := faillock_problems(effective_faillock(desired_conf, args), settings):
            found.append(f"{PAM_DIR}/{name}: pam_faillock.so arguments: {'; '.join(problems)}")
    for name, args in pwquality_args(view).items():
        merged = {**pwquality_values(settings), **args}
        if problems := pwquality_problems(effective_pwquality([], "", merged), settings):
            found.append(f"{PAM_DIR}/{name}: pam_pwquality.so arguments: {'; '.join(problems)}")
    found += [f"{PAM_DIR}/{name}: {'; '.join(lines)}" for name, lines in nullok_stacks(view).items()]
    return found


MEASURE = Measure(
    name="auth",
    title="authentication, password rules and access to personal-data paths",
    clauses=('6-1', '6-2'),
    order=20,
    settings=Settings,
    observe=observe,
)
