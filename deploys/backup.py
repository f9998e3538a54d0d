"""backup (6-17): the restic job to every repository of the profile, its secrets, its timer.

Decides from the host's observation batch (``obs``, what the checks judge; see
hardening.measures.backup for the desired state and where the secrets come from):

1. Nothing at all when the profile names no repository (the checks say "not configured").
2. Secrets: ``/etc/hardening/backup`` (root, 0700); the repository password copied from the
   profile's ``password_file`` on the control machine (root, 0600); per SFTP repository its
   private key (``identity_file``, 0600) and a known_hosts file of the pinned host keys only.
   A control file that is missing or empty refuses the host, naming it. A host password that
   differs from the control machine's while a repository already opens with it is never
   overwritten (the host is refused: the repositories would become unreadable).
3. The job: the script, ``hardening-backup.service`` and ``hardening-backup.timer`` (enabled and
   started), drop-ins of those units removed.
4. Each repository that does not exist yet is initialized (``restic init``). Whether it exists
   is decided when the operation runs, after the credentials are in place (restic must say
   "Is there a repository ..." first; any other error fails the operation, naming the
   repository): an SFTP target that cannot be reached is never mistaken for an empty one. A
   local repository on the same block device as the data it backs up is refused, not created
   (mount the backup disk first: the deploy never formats or mounts disks). A repository that
   exists but cannot be opened (unreachable, wrong password) refuses the host, naming it.
5. A backup now (``systemctl start hardening-backup.service``, which waits for it) when a
   repository was just initialized, the job changed, or a repository holds no snapshot younger
   than ``max_age``: the checks can then pass right after the deploy.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import Sha256File
from pyinfra.operations import files, server

from hardening.measures import backup as measure
from hardening.measures._systemd import show_units
from hardening.observe import Observations
from hardening.profiles import Resolved

from ._support import refuse_at_end, supported


@deploy("backup")
def apply(profile: Resolved, obs: Observations) -> None:
    """Secrets, job, timer, repositories and a first backup, as the profile names them."""
    settings: measure.Settings = profile.measure("backup")
    if not measure.configured(settings):
        return  # no repository named: nothing to do, the checks say "not configured"
    paths = measure.data_paths(profile)
    if not paths:
        refuse_at_end(f"backup: repositories are named but nothing to back up: {measure.NO_PATHS}")
        return
    if not supported("backup"):
        return
    controls = _control_files(settings)
    if controls is None:
        return
    opened = {r.name: _opened(obs, r) for r in settings.repositories}
    creds_ready = _secrets(settings, controls, opened, obs)
    if creds_ready is None:
        return
    job_changed = _job(settings, paths, obs)
    devices = _devices(obs, settings, paths)
    ensured, refused = _repositories(settings, opened, creds_ready, devices, paths)
    stale = [r.name for r in settings.repositories if opened[r.name].state == "ok" and measure.freshness_problem(
        r, opened[r.name], datetime.now(UTC), settings.max_age_seconds)]
    why = [*(f"{n} created if it was missing" for n in ensured), *(["the job changed"] if job_changed else []),
           *(f"{n} holds no snapshot younger than {settings.max_age}" for n in stale)]
    if why and not refused:
        server.shell(name=f"backup: back up now ({'; '.join(why)})",
                     commands=[f"systemctl start {measure.SERVICE}"])


def _control_files(settings: measure.Settings) -> dict[str, Path] | None:
    """The password and SFTP keys on the control machine, by host path; None (refused) when one
    is missing, unreadable or empty."""
    wanted = {measure.PASSWORD: str(settings.password_file)}
    wanted |= {measure.key_path(r): str(r.identity_file) for r in settings.repositories if r.sftp}
    found: dict[str, Path] = {}
    problems = []
    for dest, name in wanted.items():
        path = Path(os.path.expanduser(name))
        try:
            if not path.read_bytes().strip():
                problems.append(f"{path} is empty")
        except OSError as exc:
            problems.append(f"{path} cannot be read on the control machine ({exc.strerror})")
        found[dest] = path
    if problems:
        refuse_at_end("backup: nothing was changed: " + "; ".join(problems)
                      + " (measures.backup.password_file / repositories[].identity_file)")
        return None
    return found


def _opened(obs: Observations, repo: measure.Repository) -> measure.Opened:
    out = obs.run(measure.snapshots_command(repo))
    try:
        return measure.parse_snapshots(out.stdout, out.stderr, out.rc)
    except ValueError as exc:
        return measure.Opened("error", error=str(exc))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _secrets(settings: measure.Settings, controls: dict[str, Path], opened: dict[str, measure.Opened],
             obs: Observations) -> dict[str, bool] | None:
    """Put the secrets that differ from the profile's; per repository, whether its credentials
    were already the profile's (so that the observation of it stands). None when the host's
    password must not be replaced."""
    stats = _stats(settings, obs)
    # Compared on the host with pyinfra's fact, not in the observation batch: a digest of the
    # password does not belong in the evidence.
    same = {dest: host.get_fact(Sha256File, path=dest) == _digest(src) for dest, src in controls.items()}
    if not same[measure.PASSWORD] and host.get_fact(Sha256File, path=measure.PASSWORD):
        opens = [n for n, o in opened.items() if o.state == "ok"]
        if opens:
            refuse_at_end(f"backup: {measure.PASSWORD} differs from {controls[measure.PASSWORD]} on the control "
                          f"machine, and it opens {', '.join(opens)}: replacing it would make them unreadable. "
                          "Add the new password with `restic key add` to every repository (or put the host's in "
                          "the control file), then deploy again; nothing else was changed")
            return None
    if _differs(stats, measure.DIRECTORY):
        files.directory(name=f"backup: {measure.DIRECTORY} (root only)", path=measure.DIRECTORY,
                        user="root", group="root", mode="700")
    for dest, src in controls.items():
        if not same[dest] or _differs(stats, dest):
            files.put(name=f"backup: {dest} from the control machine (root, 0600)", src=str(src), dest=dest,
                      user="root", group="root", mode="600")
    ready = {}
    for repo in settings.repositories:
        ok = same[measure.PASSWORD]
        if repo.sftp:
            out = obs.run(measure.known_hosts_command(repo))
            if out.rc != 0 or out.stdout != measure.known_hosts(repo):
                files.put(name=f"backup: pinned host keys of {repo.name}", src=StringIO(measure.known_hosts(repo)),
                          dest=measure.known_hosts_path(repo), user="root", group="root", mode="644")
                ok = False
            ok = ok and same[measure.key_path(repo)]
        ready[repo.name] = ok
    return ready


def _differs(stats: dict[str, dict[str, str]], path: str) -> bool:
    """The secret file (or directory) is absent, not root's alone, or was not observed."""
    try:
        return bool(measure.secret_problems(stats, [path]))
    except ValueError:
        return True


def _stats(settings: measure.Settings, obs: Observations) -> dict[str, dict[str, str]]:
    wanted = measure.secret_files(settings)
    try:
        return measure.parse_stats(obs.run(measure.stat_command(wanted)).stdout)
    except ValueError:
        return {}  # unreadable: every file is put again (see _differs)


def _job(settings: measure.Settings, paths: list[str], obs: Observations) -> bool:
    """Script, service and timer as the profile says (put where the observed ones differ), the
    timer enabled and waiting. True when the observed job differs from the profile's (a backup
    then runs now)."""
    service_out, timer_out = obs.run(measure.CAT_SERVICE), obs.run(measure.CAT_TIMER)
    service = measure.parse_cat(service_out.stdout, service_out.rc, measure.SERVICE)
    timer = measure.parse_cat(timer_out.stdout, timer_out.rc, measure.TIMER)
    script = obs.run(measure.CAT_SCRIPT)
    script_changed = bool(measure.script_problems(script.stdout, script.rc, settings, paths))
    service_changed = bool(measure.unit_problems(service[:1], measure.SERVICE_PATH, measure.service_unit()))
    timer_changed = bool(measure.unit_problems(timer[:1], measure.TIMER_PATH, measure.timer_unit(settings)))
    if script_changed:
        files.put(name=f"backup: {measure.SCRIPT}", src=StringIO(measure.script(settings, paths)),
                  dest=measure.SCRIPT, user="root", group="root", mode="755")
    if service_changed:
        files.put(name=f"backup: {measure.SERVICE}", src=StringIO(measure.service_unit()),
                  dest=measure.SERVICE_PATH, user="root", group="root", mode="644")
    if timer_changed:
        files.put(name=f"backup: {measure.TIMER} ({settings.schedule})", src=StringIO(measure.timer_unit(settings)),
                  dest=measure.TIMER_PATH, user="root", group="root", mode="644")
    dropins = [f for f, _ in service[1:] + timer[1:]]
    if dropins:
        server.shell(name=f"backup: remove drop-ins that change the job: {', '.join(dropins)}",
                     commands=[f"rm -f -- {' '.join(shlex.quote(f) for f in dropins)}"])
    if service_changed or timer_changed or dropins:
        server.shell(name="backup: systemd reads the changed units", commands=["systemctl daemon-reload"])
    out = obs.run(measure.UNITS)
    try:
        units = show_units(out.stdout, out.rc, (measure.TIMER, measure.SERVICE), "systemctl show")
    except ValueError:
        units = {measure.TIMER: {}, measure.SERVICE: {}}
    state = units[measure.TIMER]
    commands = [f"systemctl unmask {u}" for u in (measure.SERVICE, measure.TIMER)
                if units[u].get("LoadState") == "masked"]
    if commands or state.get("UnitFileState") != "enabled" or state.get("ActiveState") != "active":
        commands.append(f"systemctl enable --now {measure.TIMER}")
        server.shell(name=f"backup: {measure.TIMER} enabled and waiting", commands=commands)
    elif timer_changed or dropins:
        server.shell(name=f"backup: {measure.TIMER} follows the new schedule",
                     commands=[f"systemctl restart {measure.TIMER}"])
    return script_changed or service_changed or bool(dropins)


def _devices(obs: Observations, settings: measure.Settings, paths: list[str]) -> dict[str, str]:
    """Path -> device, for the data paths and the local repositories ("" when unreadable)."""
    from hardening.measures.encryption import data_source

    out: dict[str, str] = {}
    for path in [*paths, *(r.location for r in settings.repositories if not r.sftp)]:
        try:
            out[path] = measure.parse_source(obs.run(data_source(path)).stdout)[1]
        except ValueError:
            out[path] = ""
    return out


def _repositories(settings: measure.Settings, opened: dict[str, measure.Opened], ready: dict[str, bool],
                  devices: dict[str, str], paths: list[str]) -> tuple[list[str], list[str]]:
    """Initialize what does not exist; refuse what cannot be opened or is not a separate place.
    (names initialized-if-missing, names refused)."""
    ensured, refused = [], []
    for repo in settings.repositories:
        state = opened[repo.name]
        if not repo.sftp:
            here = devices.get(repo.location, "")
            shared = [p for p in paths if devices.get(p) and devices.get(p) == here]
            if not here or shared:
                why = (f"on {here}, the device that holds {', '.join(shared)}" if shared
                       else "on a device findmnt cannot name")
                refuse_at_end(f"backup: repository {repo} is {why}: mount the backup disk there (the deploy never "
                              "formats or mounts disks), then deploy again")
                refused.append(repo.name)
                continue
        if state.state == "ok":
            continue
        if state.state == "missing" or not ready[repo.name]:
            server.shell(name=f"backup: repository {repo}: restic init if it does not exist yet",
                         commands=[measure.ensure_script(repo)])
            ensured.append(repo.name)
        else:
            refuse_at_end(f"backup: repository {repo} cannot be opened: {state.error}")
            refused.append(repo.name)
    return ensured, refused
