"""tmpdata (6-9): temporary copies deleted after their age, /tmp without devices, set-id or programs.

Decides from the host's observation batch (``obs``, what the checks judge):

1. Ageing: ``/etc/tmpfiles.d/00-hardening-tmpdata.conf`` (hardening.measures.tmpdata). The merged
   configuration as it will be with that file in place (the observed ``systemd-tmpfiles
   --cat-config``, our section put where systemd-tmpfiles reads it) is judged like the check
   judges it: a line of another file that would still win for /tmp, /var/tmp or a staging path (a
   file sorted before ours) or exempt ordinary files from the clean-up (``x /tmp/*``) is commented
   out in place when it is in /etc/tmpfiles.d (a copy of the file kept beside it,
   ``*.hardening-<time>.bak``, which systemd-tmpfiles does not read); in /usr/lib or /run (a
   package's or a program's file) the deploy refuses at the end, naming it: mask it with a file of
   the same name in /etc/tmpfiles.d.
2. The daily clean-up: ``systemd-tmpfiles-clean.timer`` and its service unmasked, the timer
   started, as far as ``systemctl show`` says they need it.
3. The deletion itself, now: ``systemctl start systemd-tmpfiles-clean.service`` when the ageing
   just changed (the new ages apply at once, not a day later) or when the observation lists files
   the last clean-up left although they were past their limit (what the check fails on).
4. ``/tmp``'s flags: the unit ``hardening-tmpdata-mount.service`` (bind-mounts /tmp on itself when
   it is a plain directory, then adds nodev, nosuid and, where the profile says so, noexec with
   ``mount -o remount,bind``), enabled for every boot, and (re)started when the running mount
   (``findmnt``) lacks a flag or the unit changed, confirmed with findmnt. In a container /tmp is
   the container manager's mount; the unit remounts it from inside the same way (systemd-nspawn's
   containers keep CAP_SYS_ADMIN in their own mount namespace: seen on the lab's containers); where
   the manager forbids it, the operation fails saying so.

Example::

    from deploys import tmpdata
    tmpdata.apply(profile, obs)      # inside a pyinfra deploy (deploys/main.py)
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from hardening.measures import tmpdata as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from ._support import refuse_at_end, supported


@deploy("tmpdata")
def apply(profile: Resolved, obs: Observations) -> None:
    """tmpfiles ageing of /tmp, /var/tmp and the staging paths, the clean-up timer, /tmp's flags."""
    settings: measure.Settings = profile.measure("tmpdata")
    if not supported("tmpdata"):
        return
    changed = _ageing(settings, obs)
    units = _units(obs)
    if units is not None:
        for command in measure.timer_commands(units):
            server.shell(name=f"tmpdata: the daily clean-up: {command}", commands=[command])
    missed = _missed(settings, obs, units)
    why = f"files the last clean-up left past their limit: {missed}" if missed else "the ageing changed"
    server.shell(name=f"Delete what is older than its age now (systemd-tmpfiles-clean.service): {why}",
                 commands=[measure.clean_script()],
                 _if=None if missed else any_changed(*changed))
    _mount(settings, obs, units)


def _ageing(settings: measure.Settings, obs: Observations) -> list[OperationMeta]:
    """Our tmpfiles.d file; lines of other files that would still win or exempt: switched off in
    /etc, refused elsewhere. The operations that change the ageing."""
    conf = files.put(name="tmpfiles.d ageing of /tmp, /var/tmp and the staging paths",
                     src=StringIO(measure.tmpfiles_conf(settings)), dest=measure.TMPFILES_CONF,
                     user="root", group="root", mode="644")
    changed = [conf]
    cat = obs.run(measure.CAT_CONFIG)
    try:
        if cat.rc != 0:
            raise ValueError(f"exit {cat.rc}: {cat.stderr.strip()[:200]}")
        config = measure.parse_config(measure.with_ours(cat.stdout, settings))
        foreign = measure.conflicts(config, settings)
    except ValueError as exc:
        refuse_at_end(f"tmpdata: cannot read the merged tmpfiles configuration ({exc}); only "
                      f"{measure.TMPFILES_CONF} was written: judge the other files by hand")
        return changed
    local = [line for line in foreign if line.file.startswith("/etc/")]
    other = [line for line in foreign if line not in local]
    if local:
        changed.append(server.shell(
            name="tmpdata: switch off tmpfiles lines that keep the ageing from applying: "
                 + "; ".join(map(str, local)),
            commands=[measure.disable_command(local)]))
    if other:
        refuse_at_end("tmpdata: " + "; ".join(map(str, other)) + " keep the ageing of the profile from applying "
                      "(a package's or a program's file: mask it with a file of the same name in /etc/tmpfiles.d "
                      "that keeps its other lines)")
    return changed


def _units(obs: Observations) -> dict[str, dict[str, str]] | None:
    out = obs.run(measure.UNITS)
    try:
        return measure.parse_units(out.stdout, out.rc)
    except ValueError as exc:
        refuse_at_end(f"tmpdata: cannot read the state of the clean-up timer ({exc})")
        return None


def _missed(settings: measure.Settings, obs: Observations, units: dict[str, dict[str, str]] | None) -> str:
    """The files the check fails on (left by the last clean-up past their limit), for a person."""
    if units is None:
        return ""
    try:
        last = measure.last_run(units)
        found: list[str] = []
        for path, limit in settings.ages.items():
            out = obs.run(measure.stale_command(path, limit))
            listing = measure.parse_stale(out.stdout, out.rc)
            config = measure.parse_config(obs.run(measure.CAT_CONFIG).stdout, listing.host)
            found += [measure.shown(s.path) for s in measure.judge_stale(path, limit, listing, config, last).missed]
    except ValueError:
        return ""  # the ageing decision above already reported an unreadable configuration
    return ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")


def confirm_mount_script(settings: measure.Settings) -> str:
    """Restart the mount unit, then fail unless findmnt shows /tmp as a mount of its own with the
    profile's flags (saying what it shows, and that a container's manager may forbid it)."""
    flags = " ".join(settings.mount_options)
    unit = measure.MOUNT_UNIT
    return (f"systemctl restart {unit} || {{ echo \"{unit} failed: $(journalctl -u {unit} -n 3 -o cat "
            "--no-pager 2>/dev/null | tr '\\n' ' ')\" >&2; "
            "c=$(systemd-detect-virt -c 2>/dev/null) && echo \"in a $c container /tmp is the container manager's "
            "mount: set its flags there\" >&2; exit 1; }; "
            "set -- $(findmnt -n -o TARGET,OPTIONS -T /tmp); "
            "[ \"$1\" = /tmp ] || { echo \"/tmp is still not a mount of its own (on $1)\" >&2; exit 1; }; "
            f"for f in {flags}; do case \",$2,\" in *\",$f,\"*) ;; "
            "*) echo \"/tmp is mounted $2: $f did not take\" >&2; exit 1 ;; esac; done")


def _mount(settings: measure.Settings, obs: Observations, units: dict[str, dict[str, str]] | None) -> None:
    """The unit that gives /tmp its flags at every boot, enabled; started now when the running
    mount lacks one (or the unit changed), confirmed with findmnt."""
    unit = files.put(name=f"/tmp mounted {','.join(settings.mount_options)} at boot ({measure.MOUNT_UNIT})",
                     src=StringIO(measure.mount_unit(settings)), dest=measure.MOUNT_UNIT_PATH,
                     user="root", group="root", mode="644")
    server.shell(name="systemd reads the changed unit", commands=["systemctl daemon-reload"], _if=unit.did_change)
    state = (units or {}).get(measure.MOUNT_UNIT, {})
    if state.get("UnitFileState") != "enabled":
        server.shell(name=f"Enable {measure.MOUNT_UNIT} (every boot)",
                     commands=[f"systemctl enable {shlex.quote(measure.MOUNT_UNIT)}"])
    out = obs.run(measure.FINDMNT_TMP)
    try:
        problems = measure.mount_problems(settings, measure.parse_findmnt(out.stdout, out.rc))
    except ValueError as exc:
        problems = [str(exc)]
    server.shell(name=f"/tmp gets {','.join(settings.mount_options)} now"
                      + (f" ({'; '.join(problems)})" if problems else " (the unit changed)"),
                 commands=[confirm_mount_script(settings)],
                 _if=None if problems or state.get("ActiveState") != "active" else unit.did_change)
