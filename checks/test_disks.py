"""disks (7-5, technical side): md RAID arrays healthy and required where the profile says so,
disks' SMART health where they report it, array failures alerted.

Read the way the system reads them: the kernel's ``/proc/mdstat``, ``mdadm --detail`` and
``--detail --export`` per array, ``smartctl --json``, the running ``mdadm --monitor`` and the
files it reads. Output that cannot be parsed is an error, never a pass. Decisions (a resync is
advisory, a recovery fails, a scrub passes) are explained in hardening/measures/disks.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from hardening.measures import disks as measure


def _in_container(obs: Any, evidence: Any) -> None:
    out = obs.run(measure.CONTAINER)
    if out.rc == 0 and out.stdout.strip() not in ("", "none"):
        evidence.not_applicable(f"a container ({out.stdout.strip()}): its disks and arrays are the machine's, "
                                "judged on the machine")


def _readable(evidence: Any, what: str, out: Any, parse: Any) -> Any:
    try:
        return parse()
    except ValueError as exc:
        evidence.record(expected=f"{what} readable",
                        observed={"error": str(exc), "exit": out.rc, "stdout": out.stdout[:600],
                                  "stderr": out.stderr[:300]})
        raise


def _disks(obs: Any, evidence: Any) -> list[measure.Disk]:
    out = obs.run(measure.LSBLK)
    return _readable(evidence, "lsblk", out, lambda: measure.parse_lsblk(out.stdout, out.rc))


@pytest.mark.clause("7-5")
def test_raid_arrays(obs, profile, evidence):
    """md RAID arrays are active and clean with every member in sync; hardware.raid: true requires one

    Degraded, failed, removed or rebuilding members fail, naming the array and the member; a resync
    or reshape in progress is advisory, a periodic check passes. No array where the profile does
    not require RAID is not applicable."""
    _in_container(obs, evidence)
    mdstat = obs.run(measure.MDSTAT)
    arrays = _readable(evidence, "/proc/mdstat", mdstat,
                       lambda: measure.parse_mdstat(mdstat.stdout, mdstat.rc, mdstat.stderr))
    details = obs.run(measure.MD_DETAILS)
    views = _readable(evidence, "mdadm --detail", details, lambda: measure.parse_details(details.stdout))
    examine = obs.run(measure.MD_EXAMINE)
    superblocks = measure.parse_examine(examine.stdout) if examine.rc == 0 else {}
    disks = _disks(obs, evidence)
    required = bool(profile.hardware.raid)
    expected = {"hardware.raid": required,
                "every array": "active, clean or active, every slot an active sync member, none faulty"}
    try:
        judged = measure.judge_arrays(arrays, views, disks, superblocks, required)
    except ValueError as exc:
        evidence.record(expected=expected, observed={"error": str(exc), "mdstat": mdstat.stdout[:600],
                                                     "mdadm": details.stdout[:1500]})
        raise
    evidence.record(expected=expected,
                    observed={"arrays": {r.name: {**r.observed, "problems": r.problems, "notes": r.notes}
                                         for r in judged.arrays} or "none (/proc/mdstat lists no array)"})
    if judged.verdict == "not_applicable":
        evidence.not_applicable(judged.message)
    if judged.verdict == "advisory":
        evidence.advisory(judged.message)
    assert judged.verdict == "pass", judged.message


@pytest.mark.clause("7-5")
def test_smart_health(obs, evidence):
    """Every disk that reports SMART reports its overall health PASSED; disks without SMART are named as such"""
    _in_container(obs, evidence)
    disks = _disks(obs, evidence)
    out = obs.run(measure.SMART)
    readings = _readable(evidence, "smartctl --json", out, lambda: measure.parse_smart(out.stdout))
    try:
        judged = measure.judge_smart(readings, disks)
    except ValueError as exc:
        evidence.record(expected="smartctl read for every disk", observed={"error": str(exc)})
        raise
    evidence.record(expected="SMART overall-health PASSED on every disk that has SMART",
                    observed={"disks": judged.disks,
                              **({"unreadable": judged.unreadable} if judged.unreadable else {})})
    if judged.verdict == "not_applicable":
        evidence.not_applicable(judged.message)
    if judged.verdict == "error":
        raise RuntimeError(judged.message)
    assert judged.verdict == "pass", judged.message


@pytest.mark.clause("7-5")
def test_raid_alerts(obs, evidence):
    """Where md arrays exist, mdadm --monitor runs and sends alerts somewhere (PROGRAM, or MAILADDR and a mailer)"""
    _in_container(obs, evidence)
    mdstat = obs.run(measure.MDSTAT)
    arrays = _readable(evidence, "/proc/mdstat", mdstat,
                       lambda: measure.parse_mdstat(mdstat.stdout, mdstat.rc, mdstat.stderr))
    if not arrays:
        evidence.not_applicable("no md RAID array on this host: nothing to alert about")
    monitor = obs.run(measure.MONITOR)
    monitors = _readable(evidence, "pgrep", monitor, lambda: measure.parse_monitor(monitor.stdout, monitor.rc))
    conf = obs.run(measure.MDADM_CONF)
    config = _readable(evidence, "the mdadm configuration", conf, lambda: measure.parse_mdadm_conf(conf.stdout))
    evidence.record(expected="mdadm --monitor running; PROGRAM executable, or MAILADDR and /usr/sbin/sendmail",
                    observed={"arrays": [f"/dev/{a.name}" for a in arrays], "monitors": monitors,
                              "files": list(config.files), "MAILADDR": list(config.mailaddr),
                              "PROGRAM": {p: "executable" if ok else "missing" for p, ok in config.programs.items()},
                              "sendmail": config.sendmail})
    problems = measure.judge_monitor(monitors, config)
    assert not problems, "; ".join(problems)
