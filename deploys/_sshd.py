"""Shared deploy helpers: validated files (sshd drop-ins, sudoers) that never go live broken.

Each measure owns one sshd drop-in, ``/etc/ssh/sshd_config.d/10-hardening-<measure>.conf``
(text from ``hardening.measures.<measure>.sshd_dropin``). :func:`sshd_dropin` installs it with
:func:`validated_file`:

1. nothing happens when the live file already has the wanted content, owner and mode (a second
   deploy reports 0 changes; ``--dry`` lists only real changes, ``--diff`` shows them);
2. otherwise the text is uploaded beside the target under a name no include matches
   (``.<name>.hardening-new``: sshd includes ``*.conf``, sudo skips names with a dot);
3. the candidate is validated: for sshd, a copy of the whole ``/etc/ssh`` tree gets the candidate
   under its final name and ``sshd -t -f <copy>/sshd_config`` must pass (so the first-match order
   of all drop-ins and the main file is what is tested); for sudoers, ``visudo -cf``;
4. only then it is renamed over the target (same directory: atomic). A candidate that fails is
   removed and the operation fails with the validator's message: the live file is untouched.

Convergence: the drop-in in place is not enough, sshd must really use it. :func:`sshd_dropin`
decides from the host's observations (``sshd -T``, what the daemon loaded):

* when ``sshd -T`` already shows the measure's values, only the file is kept in shape;
* otherwise sshd is asked where it would take each differing keyword from with the candidate in
  place (``sshd -ddd -T`` on a copy of ``/etc/ssh``: every directive with its file and line, in
  the order sshd reads them). A file read before ours that sets the keyword (sshd keeps the FIRST
  value), or any other file adding to an accumulating keyword (AllowGroups ...), has that line
  commented out in place (:func:`disable_directives`: a backup ``FILE.hardening-<time>.bak``
  first, then ``sshd -t``, else every file restored);
* every Match line is a connection class (hardening.measures._sshd.connection_classes:
  ``sshd -T -C`` for a connection derived from it, asked only when there are Match lines); a
  directive inside a matching block that gives the class a value the measure refuses is
  commented out the same way, so the global value (the drop-in's) applies. A class that cannot be
  evaluated, or a value no directive of a block set, is refused at the end of the host's run;
* :func:`reload_sshd` reloads when the drop-in changed, when ``sshd -T`` differed, or when a
  configuration file is newer than what the daemon last loaded (its pid file, rewritten at each
  start and SIGHUP re-exec). It then CONFIRMS: the daemon re-read its files, and ``sshd -T``
  shows the measure's values; otherwise the operation fails with what sshd uses and which file
  sets it. A reload is never assumed. A reload does not end open sessions.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
import shlex
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from io import StringIO

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import File, FileContents, Sha256File
from pyinfra.facts.server import Command
from pyinfra.operations import server
from pyinfra.operations.util.files import generate_color_diff

from hardening.measures import _sshd
from hardening.observe import Observations

from ._observed import Observed
from ._rollback import SSHD, Region, watch
from ._support import refuse, refuse_at_end

SUFFIX = ".hardening-new"


def candidate_path(dest: str) -> str:
    """Where the new text waits for validation: same directory, a name no include matches."""
    directory, name = posixpath.split(dest)
    return posixpath.join(directory, f".{name}{SUFFIX}")


def _copy_tree(place: str, dest: str, root: str) -> str:
    """Shell: ``$T/ssh`` becomes a copy of ``root`` (/etc/ssh) whose Include lines point into the
    copy, and ``place <path>`` writes the candidate where ``dest`` is in the copy."""
    rel = shlex.quote(posixpath.relpath(dest, root))
    return (
        f'T=$(mktemp -d) && trap \'rm -rf "$T"\' EXIT && cp -a {shlex.quote(root)} "$T/ssh" && '
        f'{place} "$T/ssh/"{rel} && '
        f"sed -i -E 's#^([[:space:]]*[Ii]nclude[[:space:]]+){root}/#\\1'\"$T\"'/ssh/#' "
        '"$T/ssh/sshd_config" "$T"/ssh/sshd_config.d/*.conf'
    )


def sshd_validate_script(candidate: str, dest: str, root: str = "/etc/ssh") -> str:
    """Shell that exits 0 when sshd accepts a copy of ``root`` (/etc/ssh) with the candidate in
    place as ``dest``; Include lines pointing into ``root`` are pointed into the copy."""
    return (
        _copy_tree(f"cp {shlex.quote(candidate)}", dest, root) + " && "
        # Without an absolute Include of sshd_config.d the candidate would not be read: refuse.
        'if ! grep -qE "^[[:space:]]*[Ii]nclude[[:space:]]+$T/ssh/sshd_config.d/" "$T/ssh/sshd_config"; '
        f'then echo "{root}/sshd_config does not Include {root}/sshd_config.d/*.conf" >&2; false; fi && '
        "install -d -m 0755 /run/sshd && "
        'sshd -t -f "$T/ssh/sshd_config"'
    )


def sshd_trace_script(text: str, dest: str, root: str = "/etc/ssh") -> str:
    """Shell printing the directives sshd would read with ``text`` in place as ``dest``, in its
    order (``sshd -ddd -T`` on a copy of ``root``, paths mapped back), then ``RC=<exit of sshd>``.
    Read-only on the host, and exits 0 (it runs as a fact)."""
    payload = base64.b64encode(text.encode()).decode()
    copy = _copy_tree(f"printf %s {payload} | base64 -d >", dest, root)
    return (
        f"( {copy} || exit 1; "
        'out=$(sshd -ddd -T -f "$T/ssh/sshd_config" 2>&1 >/dev/null); rc=$?; '
        "printf '%s\\n' \"$out\" | grep '^debug3: .* setting ' | "
        f'sed "s#$T/ssh/#{root}/#g"; echo "RC=$rc" ); true'
    )


def confirm_script(want: dict[str, list[str]], config: str = "/etc/ssh/sshd_config") -> str:
    """Shell that fails unless ``sshd -T`` shows ``want`` (keyword -> values, as
    hardening.measures._sshd.expected gives them), printing otherwise what sshd uses and the
    directives that set those keywords (file:line, in sshd's order)."""
    keys = "|".join(sorted(want))
    lines = "\n".join(sorted(f"{key} {value}" for key, values in want.items() for value in values))
    cfg = shlex.quote(config)
    return (
        f"t=$(sshd -T -f {cfg}) || {{ echo 'sshd -T failed' >&2; exit 1; }}; "
        f"got=$(printf '%s\\n' \"$t\" | grep -E '^({keys}) ' | LC_ALL=C sort); want={shlex.quote(lines)}; "
        'if [ "$got" != "$want" ]; then '
        "printf 'sshd does not use the drop-in. sshd -T shows:\\n%s\\nthe drop-in says:\\n%s\\nset by:\\n' "
        '"$got" "$want" >&2; '
        f"sshd -ddd -T -f {cfg} 2>&1 >/dev/null | grep -iE '^debug3: .* setting ({keys})([[:space:]]|$)' >&2; "
        "exit 1; fi"
    )


def loaded_wait_script(tries: int = 50) -> str:
    """Shell that waits (``tries`` x 0.2 s) until the running sshd has read every configuration
    file (its pid file is newer and names ssh.service's main process), else fails; without an
    active ssh.service there is nothing to wait for (socket activation reads the files anew)."""
    value_of = "printf '%s\\n' \"$s\" | sed -n 's/^{}=//p'"
    return (
        f"n=0; while :; do s=$({_sshd.SSHD_LOADED}); "
        "printf '%s\\n' \"$s\" | grep -qx 'ActiveState=active' || break; "
        f"m=$({value_of.format('MainPID')}); p=$({value_of.format('PidFile')}); "
        "if [ -n \"$p\" ] && [ \"$p\" = \"$m\" ] && ! printf '%s\\n' \"$s\" | grep -q '^Newer='; then break; fi; "
        f"n=$((n+1)); if [ $n -ge {tries} ]; then "
        "printf 'sshd did not confirm the reload (its pid file is older than its configuration):\\n%s\\n' "
        '"$s" >&2; exit 1; fi; sleep 0.2; done'
    )


def reload_script(want: dict[str, list[str]]) -> str:
    """Reload sshd, wait until it has re-read its files, confirm it uses the drop-in's values."""
    return (f"systemctl try-reload-or-restart ssh.service || exit 1\n{loaded_wait_script()}\n"
            f"{confirm_script(want)}")


def sudoers_validate_script(candidate: str, dest: str) -> str:
    """Shell that exits 0 when visudo accepts the candidate."""
    return f"visudo -cf {shlex.quote(candidate)}"


def install_script(candidate: str, dest: str, validate: str) -> str:
    """Validate in a subshell; on success rename over ``dest``, else remove the candidate."""
    cand, target = shlex.quote(candidate), shlex.quote(dest)
    return (f"( {validate} ) || {{ rc=$?; rm -f {cand}; "
            f"echo \"refused {dest}: the validator failed (exit $rc), live file unchanged\" >&2; "
            f"exit 1; }}; mv -f {cand} {target}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _show_diff(dest: str, text: str, exists: bool) -> None:
    current = [line + "\n" for line in (host.get_fact(FileContents, path=dest) or [])] if exists else []
    host.log(f"Will {'modify' if exists else 'create'} {dest}", logger.info)
    for line in generate_color_diff(current, text.splitlines(keepends=True)):
        logger.info("  %s", line)


@operation()
def validated_file(text: str, dest: str, kind: str, mode: str = "644",
                   user: str = "root", group: str = "root") -> Generator[object, None, None]:
    """Install ``text`` at ``dest`` only after the validator for ``kind`` (sshd | sudoers)
    accepts it; no change when the live file already matches (content, owner, mode)."""
    validators = {"sshd": sshd_validate_script, "sudoers": sudoers_validate_script}
    live = host.get_fact(File, path=dest)
    same = bool(live) and host.get_fact(Sha256File, path=dest) == _digest(text)
    if same and live and live["user"] == user and live["group"] == group \
            and live["mode"] == int(mode):
        return
    if state.config.DIFF:
        _show_diff(dest, text, bool(live))
    candidate = candidate_path(dest)
    yield FileUploadCommand(StringIO(text), candidate,
                            remote_temp_filename=host.get_temp_filename(candidate))
    yield StringCommand(f"chown {user}:{group} {shlex.quote(candidate)} && "
                        f"chmod {mode} {shlex.quote(candidate)}")
    yield StringCommand(install_script(candidate, dest, validators[kind](candidate, dest)))


@dataclass
class DropIn:
    """What :func:`sshd_dropin` decided for one measure, for :func:`reload_sshd`."""

    measure: str
    op: OperationMeta | None  # None: refused (the host's run stops at the refusal)
    want: dict[str, list[str]] = field(default_factory=dict)
    reason: str = ""  # why reload and confirm even when the file does not change
    region: Region | None = None  # the sshd watchdog (deploys/_rollback.py), closed by reload_sshd

    def did_change(self) -> bool:
        return self.op is not None and self.op.did_change()


# Hosts whose observed "daemon older than its files" has been answered by a reload already.
_stale_answered: set[str] = set()


Acceptable = Callable[[str, list[str]], bool]  # (keyword, values sshd -T shows): needs no repair


def sshd_dropin(measure: str, text: str, obs: Observations | None = None,
                ok: Acceptable | None = None) -> DropIn:
    """Install the measure's sshd drop-in (validated with ``sshd -t``) and make sshd use it for
    every connection; decides from ``obs`` (hardening.measures._sshd.OBSERVE).

    ``ok(keyword, values)`` says which values need no repair (default: exactly the drop-in's;
    a measure whose rule is "at least as strict" passes its own). Another file that would keep
    sshd from using the drop-in (read before it, or adding to an accumulating keyword), and a
    directive inside a Match block that gives some connections a value ``ok`` refuses, are
    disabled in place (:func:`disable_directives`: backup, comment, ``sshd -t`` or restore).
    What cannot be repaired so is refused at the end of the host's run, naming it.

    Without ``obs`` (a deploy not yet handing its observations on) the commands are read here,
    as one fact: one more command on the host.
    """
    dest = _sshd.dropin_path(measure)
    if obs is None:
        obs = host.get_fact(Observed, commands=_sshd.OBSERVE)
    result = obs.run(_sshd.SSHD_T)
    config, why = _sshd.effective(result)
    if config is None and "not in connection test specification" not in result.stderr:
        refuse(f"{measure}: {why}")
        return DropIn(measure, None)
    want = _sshd.expected(text)
    accept = ok or (lambda key, values: sorted(values) == sorted(want.get(key, [])))
    seen = config or {}
    diff = {k: v for k, v in _sshd.differences(want, seen).items() if not accept(k, v[1])}
    # a stricter value another file gives is kept: the reload confirms only the other keywords
    stricter = [k for k in want if k in seen and k not in diff and sorted(seen[k]) != sorted(want[k])]
    found, unfixable = _conflicts(dest, text, list(diff)) if diff else ([], [])
    in_blocks, block_problems = _sshd.class_repairs(_sshd.connection_classes(obs, _fact_runner), want, accept)
    if unfixable + block_problems:
        refuse_at_end(f"{measure}: {'; '.join(unfixable + block_problems)}")
    region = watch(SSHD)
    disabled = disable_directives(measure, found + in_blocks)
    op = validated_file(name=f"sshd drop-in {dest} (validated with sshd -t)",
                        text=text, dest=dest, kind="sshd", mode="644")
    reason = _stale(obs, seen) or _describe(diff)
    if disabled is not None:
        reason = "; ".join(filter(None, [reason, "disabled " + ", ".join(str(s) for s in found + in_blocks)]))
    return DropIn(measure, op, {k: v for k, v in want.items() if k not in stricter}, reason, region)


def _fact_runner(command: str) -> str:
    return str(host.get_fact(Command, command=command) or "")


def _conflicts(dest: str, text: str, keywords: list[str]) -> tuple[list[_sshd.Setting], list[str]]:
    """Asks sshd on the host where it would take ``keywords`` from with ``text`` in place:
    (directives of other files to disable, what disabling cannot repair)."""
    out = host.get_fact(Command, command=sshd_trace_script(text, dest)) or ""
    if "RC=0" not in out.splitlines():
        return [], []  # sshd -T fails with the candidate: the validator refuses it, saying why
    return _sshd.overriding(_sshd.parse_trace(out), keywords, dest)


def disable_script(measure: str, settings: list[_sshd.Setting],
                   validate: str = "install -d -m 0755 /run/sshd && sshd -t") -> str:
    """Shell that comments out each directive (file, line, keyword) in place, after a backup of
    each file (``FILE.hardening-<time>.bak``: no sshd Include pattern ``*.conf`` matches it), then
    ``sshd -t``; when a line is no longer what sshd read, or sshd -t fails, every file is restored
    and it fails."""
    by_file: dict[str, list[_sshd.Setting]] = {}
    for setting in settings:
        if not re.fullmatch(r"[A-Za-z0-9]+", setting.keyword):
            raise ValueError(f"not an sshd keyword: {setting.keyword!r}")
        by_file.setdefault(setting.file, []).append(setting)
    tag = f"# disabled by hardening ({measure}): "
    lines = ['s=$(date +%Y%m%dT%H%M%S); backups=""',
             'restore() { for b in $backups; do cp -a "$b" "${b%.hardening-*.bak}"; done; }']
    for file, items in sorted(by_file.items()):
        f = shlex.quote(file)
        edits = " ".join(f"-e '{s.line}s/^([[:space:]]*)({s.keyword}[[:space:]=])/\\1{tag}\\2/I'" for s in items)
        checks = " && ".join(f"sed -n '{s.line}p' {f} | grep -qF {shlex.quote(tag)}" for s in items)
        lines.append(f'b={f}.hardening-"$s".bak; cp -a {f} "$b" || exit 1; backups="$backups $b"; '
                     f"sed -i -E {edits} {f} && {checks} || {{ "
                     f"echo {shlex.quote(file + ': the line to disable is no longer what sshd read')} >&2; "
                     "restore; exit 1; }")
    lines.append(f'{validate} || {{ echo "sshd -t failed: files restored" >&2; '
                 "restore; exit 1; }")
    return "\n".join(lines)


def disable_directives(measure: str, settings: list[_sshd.Setting]) -> OperationMeta | None:
    """One operation disabling ``settings`` (see :func:`disable_script`), or None for none."""
    if not settings:
        return None
    return server.shell(name=f"{measure}: disable sshd directives that override the profile: "
                             + ", ".join(str(s) for s in settings),
                        commands=[disable_script(measure, settings)])


def _stale(obs: Observations, config: dict[str, list[str]]) -> str:
    """Why the running sshd may not use its files, answered once per host and deploy; nothing
    while one of the tool's drop-ins is overridden by another file (a reload would make that
    file's values live: the measure owning the drop-in refuses, naming it)."""
    if host.name in _stale_answered:
        return ""
    loaded = _sshd.parse_loaded(obs.run(_sshd.SSHD_LOADED).stdout)
    reason = _sshd.reload_reason(loaded) or ""
    blocked = _sshd.overridden(loaded, config)
    if reason and blocked:
        host.log(f"sshd not reloaded although {reason}: sshd -T overrides {'; '.join(blocked)}", logger.warning)
        return ""
    if reason:
        _stale_answered.add(host.name)
    return reason


def _describe(diff: dict[str, tuple[list[str], list[str]]]) -> str:
    return "; ".join(f"sshd -T shows {key} {' '.join(seen) or '(unset)'}, wanted {' '.join(want)}"
                     for key, (want, seen) in diff.items())


def reload_sshd(measure: str, dropin: DropIn) -> OperationMeta | None:
    """Reload sshd and confirm it uses the drop-in: when the drop-in changed, or unconditionally
    when the observations said sshd did not use its files or the measure's values."""
    if dropin.op is None:
        return None
    why = f"echo {shlex.quote('why: ' + dropin.reason)}\n" if dropin.reason else ""
    op = server.shell(name=f"Reload sshd and confirm it uses the {measure} drop-in",
                      commands=[why + reload_script(dropin.want)],
                      _if=None if dropin.reason else dropin.op.did_change)
    if dropin.region is not None:
        dropin.region.close()
    return op


def connecting_user() -> tuple[str, list[str]]:
    """The account the deploy connects as (before sudo) and its groups."""
    out = host.get_fact(Command, 'u="${SUDO_USER:-$(id -un)}"; echo "$u"; id -Gn "$u"') or ""
    lines = out.splitlines()
    user = lines[0].strip() if lines else ""
    groups = lines[1].split() if len(lines) > 1 else []
    return user, groups
