"""timeouts (6-15): idle sessions logged off, enforced.

Writes the readonly TMOUT script, the sshd ClientAlive drop-in (validated; sshd reloaded and
confirmed, deploys/_sshd.py; a stricter value is kept, a Match block giving some connections a
looser one has that directive disabled), the logind drop-in and, where dconf is installed, the
locked screen-lock settings (``dconf update`` only when they changed). systemd-logind is not
restarted: it gets SIGHUP, on which systemd 252 re-reads logind.conf and its drop-ins in the same
process (journal: "Config file reloaded."; sessions stay), whenever the running values (busctl)
are not the configured ones; busctl then confirms them.

TMOUT converges on what a login shell really gets (the observation the check judges). The script
leaves an existing readonly TMOUT alone (assigning it would abort the login shell's profile), so
when a login shell's TMOUT is wrong the deploy asks a traced login shell which file made TMOUT
readonly: another file than ours makes it refuse, naming file and line (the tool never edits
files it does not own); otherwise it writes the script and confirms a login shell gets the value.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from hardening.measures import timeouts as measure
from hardening.observe import Observations, quote
from hardening.profiles import Resolved

from . import _sshd as sshd
from ._support import refuse, refuse_at_end, unsupported_reason

READONLY = re.compile(r'^declare -(\w+) TMOUT="?(\d+)"?$', re.M)
# A line of a traced login shell (PS4 '+${BASH_SOURCE}:${LINENO}: ', '+' repeated per level).
TRACED = re.compile(r"^\++(?P<file>[^:]*):(?P<line>\d+): (?P<command>.*)$")
MAKES_READONLY = re.compile(r"^(?:readonly|(?:declare|typeset)\s+-\w*r\w*)\s(?:.*\s)?TMOUT(?:=|\s|$)")


@deploy("timeouts")
def apply(profile: Resolved, obs: Observations) -> None:
    """TMOUT, sshd ClientAlive, logind idle action, desktop screen lock."""
    settings: measure.Settings = profile.measure("timeouts")
    reason = unsupported_reason()
    if reason:
        refuse(reason)
        return
    if not _shell_tmout(settings, obs):
        return
    dropin = sshd.sshd_dropin("timeouts", measure.sshd_dropin(settings), obs, measure.sshd_value_ok(settings))
    sshd.reload_sshd("timeouts", dropin)
    _logind(settings, obs)
    if obs.run(measure.DCONF_PRESENT).rc == 0:
        _desktop(settings, obs)


@dataclass(frozen=True)
class Traced:
    file: str
    line: int
    command: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.command}"


def shell_tmout(readonly_p: str) -> tuple[str, int] | None:
    """(flags, value) of TMOUT in ``readonly -p`` output, or None when it is not readonly."""
    match = READONLY.search(readonly_p)
    return (match.group(1), int(match.group(2))) if match else None


def tmout_ok(readonly_p: str, limit: int) -> bool:
    """The check's rule: readonly, exported, 0 < TMOUT <= the profile's."""
    found = shell_tmout(readonly_p)
    return found is not None and "r" in found[0] and "x" in found[0] and 0 < found[1] <= limit


def readonly_sources(trace: str, own: str) -> list[Traced]:
    """The commands of a traced login shell that make TMOUT readonly, from files other than
    ``own`` (our script)."""
    found = []
    for line in trace.splitlines():
        match = TRACED.match(line)
        if match and match["file"] and match["file"] != own and MAKES_READONLY.match(match["command"]):
            found.append(Traced(match["file"], int(match["line"]), match["command"]))
    return found


def confirm_tmout_script(seconds: int) -> str:
    """Shell that fails unless a login shell gets our readonly, exported TMOUT."""
    line = f'declare -rx TMOUT="{int(seconds)}"'
    return (f"out=$({measure.TMOUT_SHELL}); "
            f"printf '%s\\n' \"$out\" | grep -qxF {quote('%s', line)} || {{ "
            f"printf 'a login shell does not get {line}:\\n%s\\n' \"$(printf '%s\\n' \"$out\" | grep TMOUT)\" >&2; "
            f"{measure.TMOUT_TRACE} >&2; exit 1; }}")


def _shell_tmout(settings: measure.Settings, obs: Observations) -> bool:
    """The TMOUT script, or a refusal naming the file that holds TMOUT readonly (False)."""
    seen = obs.run(measure.TMOUT_SHELL).stdout
    wrong = not tmout_ok(seen, settings.shell_tmout)
    found = readonly_sources(host.get_fact(Command, command=measure.TMOUT_TRACE) or "",
                             measure.PROFILE_SCRIPT) if wrong else []
    if found:
        got = shell_tmout(seen)
        refuse(f"timeouts: {found[0]} makes TMOUT readonly (a login shell gets "
               f"{f'TMOUT={got[1]} (flags {got[0]})' if got else 'no readonly TMOUT'}, the profile wants "
               f"1..{settings.shell_tmout}) and {measure.PROFILE_SCRIPT} leaves an existing readonly TMOUT "
               "alone. The tool does not edit files it does not own: change or remove it")
        return False
    files.put(name="Readonly TMOUT for login shells", src=StringIO(measure.profile_script(settings)),
              dest=measure.PROFILE_SCRIPT, user="root", group="root", mode="644")
    if wrong:
        server.shell(name="Confirm a login shell gets the readonly TMOUT",
                     commands=[confirm_tmout_script(settings.shell_tmout)])
    return True


def logind_disable_script(overrides: list[tuple[str, int, str]]) -> str:
    """Shell commenting out the idle keys in the drop-ins that override ours (a backup of each
    file first, ``FILE.hardening-<time>.bak``, which logind does not read)."""
    out = ["s=$(date +%Y%m%dT%H%M%S)"]
    for file in sorted({f for f, _, _ in overrides}):
        f = shlex.quote(file)
        pattern = "s/^[[:space:]]*(IdleAction|IdleActionSec)[[:space:]]*=/# disabled by hardening (timeouts): &/"
        out.append(f"cp -a {f} {f}.hardening-\"$s\".bak && sed -i -E '{pattern}' {f}")
    return " && ".join(out)


def _logind(settings: measure.Settings, obs: Observations) -> None:
    """The logind drop-in; drop-ins read after it that make the configuration looser have their
    idle keys commented out (files under /usr are the package's: refused); then, when the running
    daemon does not use the resulting values, SIGHUP (systemd-logind 252 re-reads its files, the
    sessions stay) and confirm with busctl."""
    put = files.put(name="logind idle action", src=StringIO(measure.logind_dropin(settings)),
                    dest=measure.LOGIND_DROPIN, user="root", group="root", mode="644")
    conf = obs.run(measure.LOGIND_CONFIG)
    configured = measure.parse_logind(conf.stdout) if conf.rc == 0 else {}
    overrides = measure.logind_overrides(conf.stdout) if conf.rc == 0 else []
    conf_ok = measure.logind_config_ok(settings, configured)
    final = ({k: configured.get(k, v) for k, v in measure.LOGIND_DEFAULTS.items()} if conf_ok
             else measure.logind_values(settings))
    changed = []
    if overrides and not conf_ok:
        packaged = [f for f, _, _ in overrides if not f.startswith(("/etc/", "/run/"))]
        if packaged:
            refuse_at_end(f"timeouts: {', '.join(sorted(set(packaged)))} override the logind idle action "
                          "(a package's file: mask it with a file of the same name in /etc/systemd/logind.conf.d)")
        mine = [o for o in overrides if o[0] not in packaged]
        if mine:
            changed.append(server.shell(
                name="logind: disable idle settings of drop-ins read after ours: "
                     + ", ".join(sorted({f for f, _, _ in mine})),
                commands=[logind_disable_script(mine)]))
    live = obs.run(measure.LOGIND_LIVE)
    try:
        stale = live.rc != 0 or measure.parse_logind_live(live.stdout) != {
            "IdleAction": final["IdleAction"], "IdleActionSec": f"{measure.seconds(final['IdleActionSec'])}s"}
    except ValueError:
        stale = True
    server.shell(name="systemd-logind re-reads its configuration (SIGHUP; sessions stay), confirmed with busctl",
                 commands=[measure.logind_reload_script(final)],
                 _if=None if stale or changed else put.did_change)


def _desktop(settings: measure.Settings, obs: Observations) -> None:
    """The screen locks after the profile's delay; users cannot change it (dconf locks). The
    dconf profile ``user`` keeps the host's lines (other databases, a service-db): only what is
    missing is added (measure.merged_dconf_profile), decided from the profile dconf reads."""
    changed = [
        files.put(name="dconf screen lock settings", src=StringIO(measure.dconf_keyfile(settings)),
                  dest=measure.DCONF_KEYFILE, mode="644"),
        files.put(name="dconf locks on the screen lock settings", src=StringIO(measure.dconf_locks()),
                  dest=measure.DCONF_LOCKS, mode="644"),
    ]
    server.shell(name="Compile the dconf databases", commands=["dconf update"],
                 _if=lambda: any(op.did_change() for op in changed))
    seen = obs.run(measure.DCONF_PROFILE_READ)
    try:
        if seen.rc != 0:
            raise ValueError(f"exit {seen.rc}: {seen.stderr.strip()[:200]}")
        path, text = measure.read_dconf_profile(seen.stdout)
    except ValueError as exc:
        refuse_at_end(f"timeouts: cannot read the dconf profile user ({exc}), so it was not changed: "
                      f"make {measure.DCONF_PROFILE} readable by root, then deploy again")
        return
    additions = measure.dconf_profile_additions(text)
    if additions:  # else the host's profile (wherever dconf reads it) is left as it is
        source = "" if path in (None, measure.DCONF_PROFILE) else f" (from {path}, which it overrides)"
        files.put(name=f"dconf profile {measure.DCONF_PROFILE}{source}: add {', '.join(additions)}; "
                       "its other lines kept",
                  src=StringIO(measure.merged_dconf_profile(text)), dest=measure.DCONF_PROFILE, mode="644")
