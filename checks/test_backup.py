"""backup (6-17): restic backups of the personal-data paths in two separate places.

Every repository is opened with the host's own restic, password and SSH key, as the scheduled
job opens it (hardening.measures.backup): its snapshots (``restic snapshots --json``), its
integrity (``restic check``) and a real restore of a sample of the personal-data files from its
latest snapshot, compared byte for byte. A repository that cannot be opened, checked or restored
fails, named. The job is read as systemd reads it (``systemctl cat``, ``systemctl show``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hardening.measures import backup as measure
from hardening.measures._systemd import show_units
from hardening.measures.encryption import data_source


def _settings(profile: Any, evidence: Any) -> tuple[measure.Settings, list[str]]:
    """The settings and the backed-up paths; "not configured" when either is missing."""
    settings: measure.Settings = profile.measure("backup")
    if not measure.configured(settings):
        evidence.not_configured(measure.NO_REPOSITORIES)
    paths = measure.data_paths(profile)
    if not paths:
        evidence.not_configured(measure.NO_PATHS)
    return settings, paths


@pytest.mark.clause("6-17")
def test_secrets(obs, profile, evidence):
    """The repository password and the SFTP keys are root's alone; each SFTP target's host keys are pinned"""
    settings, _ = _settings(profile, evidence)
    wanted = measure.secret_files(settings)
    stats = measure.parse_stats(obs.run(measure.stat_command(wanted)).stdout)
    problems = measure.secret_problems(stats, wanted)
    pinned: dict[str, Any] = {}
    for repo in (r for r in settings.repositories if r.sftp):
        out = obs.run(measure.known_hosts_command(repo))
        have = out.stdout if out.rc == 0 else None
        pinned[repo.name] = have.splitlines() if have is not None else "absent"
        if have != measure.known_hosts(repo):
            problems.append(f"{measure.known_hosts_path(repo)} does not pin exactly the profile's host keys of "
                            f"{repo.name}")
    evidence.record(expected={"owner root:root, no group or other bits": wanted,
                              "pinned host keys": {r.name: measure.known_hosts(r).splitlines()
                                                   for r in settings.repositories if r.sftp}},
                    observed={"files": stats, "pinned host keys": pinned})
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-17")
def test_job(obs, profile, evidence):
    """The backup job is the profile's: its paths, every repository, the retention (keep-*)"""
    settings, paths = _settings(profile, evidence)
    service = obs.run(measure.CAT_SERVICE)
    sections = measure.parse_cat(service.stdout, service.rc, measure.SERVICE)
    script = obs.run(measure.CAT_SCRIPT)
    problems = measure.unit_problems(sections, measure.SERVICE_PATH, measure.service_unit())
    problems += measure.script_problems(script.stdout, script.rc, settings, paths)
    evidence.record(expected={"paths": paths, "repositories": [str(r) for r in settings.repositories],
                              "retention": settings.keep.arguments(), "unit": measure.SERVICE_PATH,
                              "script": measure.SCRIPT},
                    observed={"unit files": [f for f, _ in sections], "script readable": script.rc == 0})
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-17")
def test_timer(obs, profile, evidence):
    """The backup runs on the profile's schedule: the timer enabled and waiting, the last run good"""
    settings, _ = _settings(profile, evidence)
    out = obs.run(measure.UNITS)
    try:
        units = show_units(out.stdout, out.rc, (measure.TIMER, measure.SERVICE), "systemctl show")
    except ValueError:
        evidence.record(expected="systemctl show readable", observed={"exit": out.rc, "stderr": out.stderr[:300]})
        raise
    cat = obs.run(measure.CAT_TIMER)
    sections = measure.parse_cat(cat.stdout, cat.rc, measure.TIMER)
    keys = ("LoadState", "ActiveState", "UnitFileState", "Result", "ExecMainStatus", "ExecMainStartTimestamp")
    evidence.record(expected={measure.TIMER: f"loaded, enabled, active; OnCalendar={settings.schedule}",
                              measure.SERVICE: "loaded, last run success"},
                    observed={u: {k: units[u].get(k, "") for k in keys} for u in (measure.TIMER, measure.SERVICE)}
                    | {"timer files": [f for f, _ in sections]})
    problems = measure.timer_problems(units)
    if units[measure.TIMER].get("LoadState") == "loaded":
        problems += measure.unit_problems(sections, measure.TIMER_PATH, measure.timer_unit(settings))
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-17")
def test_places(obs, profile, evidence):
    """The repositories are in at least two separate places, none on the disk of the data it backs up"""
    settings, paths = _settings(profile, evidence)
    devices: dict[str, str] = {}
    for path in [*paths, *(r.location for r in settings.repositories if not r.sftp)]:
        devices[path] = measure.parse_source(obs.run(data_source(path)).stdout)[1]
    places = {r.name: measure.place(r, None if r.sftp else devices[r.location]) for r in settings.repositories}
    evidence.record(expected="two or more places that fail on their own (another block device, another host); "
                             "no local repository on the device of the data",
                    observed={"data": {p: devices[p] for p in paths}, "repositories": places})
    problems = measure.separation_problems(settings, devices, paths)
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-17")
def test_snapshots(obs, profile, evidence):
    """Every repository opens and holds a snapshot of this host younger than the profile's max_age"""
    settings, _ = _settings(profile, evidence)
    now = datetime.now(UTC)
    observed: dict[str, Any] = {}
    problems = []
    for repo in settings.repositories:
        out = obs.run(measure.snapshots_command(repo))
        opened = measure.parse_snapshots(out.stdout, out.stderr, out.rc)
        newest = opened.newest
        observed[str(repo)] = {"state": opened.state, "snapshots": len(opened.snapshots),
                               "newest": newest.isoformat() if newest else None,
                               **({"error": opened.error} if opened.error else {})}
        problem = measure.freshness_problem(repo, opened, now, settings.max_age_seconds)
        if problem:
            problems.append(problem)
    evidence.record(expected=f"a snapshot younger than {settings.max_age} in each repository", observed=observed)
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-17")
def test_integrity(obs, profile, evidence):
    """restic check passes on every repository"""
    settings, paths = _settings(profile, evidence)
    observed: dict[str, Any] = {}
    problems = []
    for repo in settings.repositories:
        out = obs.run(measure.verify_command(repo, paths, settings.restore_sample))
        verified = measure.parse_verify(out.stdout, out.rc)
        observed[str(repo)] = {"restic check exit": verified.check_rc,
                               "output": verified.check_output.splitlines()[-6:]}
        problem = measure.check_problem(repo, verified)
        if problem:
            problems.append(problem)
    evidence.record(expected="restic check: no errors were found, in each repository", observed=observed)
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-17")
def test_restore(obs, profile, evidence):
    """A sample of the personal-data files restores from each repository's latest snapshot, byte for byte

    The oldest files of the paths by change time (the most likely unchanged since the snapshot)
    are restored from this host's latest snapshot into a scratch directory and compared with
    cmp; a file changed after the snapshot is recorded, not compared."""
    settings, paths = _settings(profile, evidence)
    observed: dict[str, Any] = {}
    problems: list[str] = []
    empty = True
    for repo in settings.repositories:
        out = obs.run(measure.verify_command(repo, paths, settings.restore_sample))
        verified = measure.parse_verify(out.stdout, out.rc)
        found, compared, changed = measure.restore_problems(repo, verified)
        problems += found
        empty = empty and verified.restore == "nothing"
        observed[str(repo)] = {
            "snapshot": verified.snapshot or None,
            "snapshot time": verified.snapshot_time.isoformat() if verified.snapshot_time else None,
            "restore": verified.restore,
            "compared byte for byte": [{"path": shown(f.path), "size": f.size,
                                        "same": f.cmp == 0} for f in compared],
            "changed after the snapshot (not compared)": [shown(f.path) for f in changed],
        }
    evidence.record(expected=f"up to {settings.restore_sample} files of {', '.join(paths)} restored from the latest "
                             "snapshot of each repository, identical to the files on disk", observed=observed)
    if empty and not problems:
        evidence.not_applicable(f"{', '.join(paths)} hold no file yet: there is nothing to restore")
    assert not problems, "; ".join(problems)


def shown(path: str) -> str:
    """A file name for a person: control characters escaped."""
    return path.encode("unicode_escape").decode("ascii") if not path.isprintable() else path
