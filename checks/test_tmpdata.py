"""tmpdata (6-9): temporary copies deleted after their age, /tmp without devices, set-id or programs.

The ageing is read as systemd-tmpfiles reads it (``systemd-tmpfiles --cat-config``: every file in
its order, the first line for a path wins, boot-only lines left out as ``--clean`` leaves them), so a
line read before ours or an exclusion in any file is judged; /tmp's flags from the running mount
(``findmnt -J``), not fstab; the clean-up timer and its last run from ``systemctl show``. Old files
are listed by the same rule systemd-tmpfiles deletes by (atime, mtime and ctime all older than the
limit): those the last clean-up run should already have deleted fail the check, by name; those
that crossed the limit since, and those the host's own tmpfiles lines keep, are recorded.
"""

from __future__ import annotations

from typing import Any

import pytest

from hardening.measures import tmpdata as measure


def _config(obs: Any, host: measure.Host | None = None) -> measure.Config:
    out = obs.run(measure.CAT_CONFIG)
    if out.rc != 0:
        raise RuntimeError(f"systemd-tmpfiles --cat-config failed (exit {out.rc}): {out.stderr.strip()[:300]}")
    return measure.parse_config(out.stdout, host)


def _judge_ageing(obs: Any, evidence: Any, ages: dict[str, int]) -> None:
    config = _config(obs)
    observed: dict[str, Any] = {}
    problems: list[str] = []
    for path, limit in ages.items():
        ageing = measure.effective(config, path, limit)
        observed[path] = {
            "age": measure.span(ageing.age) if ageing.age is not None else "none",
            "lines in force": [str(line) for line in ageing.in_force],
            "ignored (a line read earlier wins)": [f"{line} (wins: {winner.where})"
                                                   for line, winner in ageing.overridden],
            "exemptions": [str(line) for line, _ in ageing.exemptions],
        }
        problems += ageing.problems
    evidence.record(expected={p: f"aged after at most {measure.span(a)}, no exemption of ordinary files"
                              for p, a in ages.items()},
                    observed=observed)
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-9")
def test_tmp_ageing(obs, profile, evidence):
    """/tmp and /var/tmp are cleaned of files older than the profile's ages (systemd-tmpfiles)"""
    settings: measure.Settings = profile.measure("tmpdata")
    ages = settings.ages
    _judge_ageing(obs, evidence, {measure.TMP: ages[measure.TMP], measure.VAR_TMP: ages[measure.VAR_TMP]})


@pytest.mark.clause("6-9")
def test_staging_ageing(obs, profile, evidence):
    """The profile's staging directories are cleaned of files older than their age"""
    settings: measure.Settings = profile.measure("tmpdata")
    if not settings.staging_paths:
        # Every shipped role holds personal information; where it is staged for processing only
        # the agency knows: an empty list is missing data, not a host without staging.
        evidence.not_configured("hwprofiles: measures.tmpdata.staging_paths (the directories where personal data "
                                "is staged for processing, e.g. [/srv/pii-staging]; their files are deleted after "
                                "staging_age)")
    ages = settings.ages
    _judge_ageing(obs, evidence, {p: ages[p] for p in settings.staging_paths})


@pytest.mark.clause("6-9")
def test_cleanup_timer(obs, evidence):
    """The daily clean-up runs: systemd-tmpfiles-clean.timer active, its service loaded, its last run good"""
    out = obs.run(measure.UNITS)
    try:
        units = measure.parse_units(out.stdout, out.rc)
    except ValueError:
        evidence.record(expected="systemctl show readable", observed={"exit": out.rc, "stderr": out.stderr[:300]})
        raise
    keys = ("LoadState", "ActiveState", "UnitFileState", "Result", "ExecMainStartTimestamp")
    evidence.record(expected={measure.CLEAN_TIMER: "loaded, active", measure.CLEAN_SERVICE: "loaded, last run success"},
                    observed={u: {k: units[u].get(k, "") for k in keys}
                              for u in (measure.CLEAN_TIMER, measure.CLEAN_SERVICE)})
    problems = measure.timer_problems(units)
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-9")
def test_tmp_mount_options(obs, profile, evidence):
    """/tmp is mounted with the profile's flags: nodev, nosuid and (where the role requires it) noexec"""
    settings: measure.Settings = profile.measure("tmpdata")
    out = obs.run(measure.FINDMNT_TMP)
    try:
        mount = measure.parse_findmnt(out.stdout, out.rc)
    except ValueError:
        evidence.record(expected={"target": "/tmp", "options": settings.mount_options},
                        observed={"exit": out.rc, "stdout": out.stdout[:300], "stderr": out.stderr[:300]})
        raise
    evidence.record(expected={"target": "/tmp", "options (at least)": settings.mount_options},
                    observed={"target": mount.target, "source": mount.source, "fstype": mount.fstype,
                              "options": list(mount.options)})
    problems = measure.mount_problems(settings, mount)
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-9")
def test_stale_files(obs, profile, evidence):
    """No file older than its age limit is left behind that the last clean-up should have deleted

    Listed per watched path (/tmp, /var/tmp, the staging directories): files the last run of
    systemd-tmpfiles-clean should already have deleted fail the check, named; files past the
    limit since that run (due at the next) and files the host's own tmpfiles lines keep are
    recorded. Before the first run since boot nothing can have been missed."""
    settings: measure.Settings = profile.measure("tmpdata")
    units_out = obs.run(measure.UNITS)
    try:
        last = measure.last_run(measure.parse_units(units_out.stdout, units_out.rc))
    except ValueError:
        evidence.record(expected="the last clean-up run (systemctl show)",
                        observed={"exit": units_out.rc, "stdout": units_out.stdout[:300]})
        raise
    observed: dict[str, Any] = {"last clean-up run": f"@{last}" if last is not None else "none since boot"}
    judged: list[measure.Judged] = []
    unreadable: list[str] = []
    for path, limit in settings.ages.items():
        out = obs.run(measure.stale_command(path, limit))
        try:
            listing = measure.parse_stale(out.stdout, out.rc)
            config = _config(obs, listing.host)
        except ValueError as exc:
            unreadable.append(f"{path}: {exc}")
            observed[path] = {"unreadable": str(exc), "stderr": out.stderr[:300]}
            continue
        result = measure.judge_stale(path, limit, listing, config, last)
        judged.append(result)
        observed[path] = {"absent": True} if result.absent else {
            "limit": measure.span(limit),
            "missed by the last clean-up": [measure.shown(s.path) for s in result.missed[:measure.SHOWN]],
            "due at the next clean-up": [measure.shown(s.path) for s in result.due[:measure.SHOWN]],
            "kept by the host's tmpfiles lines": [f"{measure.shown(s.path)} ({line})"
                                                  for s, line in result.kept[:measure.SHOWN]],
            "counts": {"missed": len(result.missed), "due": len(result.due), "kept": len(result.kept)},
            **({"listing cut at": measure.STALE_LIMIT} if result.cut else {}),
        }
    evidence.record(expected={p: f"nothing older than {measure.span(a)} at the last clean-up run left"
                              for p, a in settings.ages.items()},
                    observed=observed)
    if unreadable:
        raise RuntimeError("cannot list old files: " + "; ".join(unreadable))
    missed = [(j, s) for j in judged for s in j.missed]
    more = f" and {len(missed) - 10} more" if len(missed) > 10 else ""
    assert not missed, ("files older than their limit that the last clean-up left: "
                        + ", ".join(f"{measure.shown(s.path)} (limit {measure.span(j.limit)})" for j, s in missed[:10])
                        + more)
