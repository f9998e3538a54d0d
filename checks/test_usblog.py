"""usblog (6-11): every USB connection is logged with USBGuard's decision, as evidence that the USB
block works in daily use.

The service as systemd has it (``systemctl show``: loaded, enabled, running; the unit file, drop-ins,
ExecStart and start time it runs with), the program file (sha256 and mtime against this version's
monitor), and the journal (``journalctl -o json`` for the monitor's identifier over the profile's
``days``): the evidence lists the blocked attempts; a device the usb profile blocks that got
through fails. Output a check cannot read is an error, never a pass. Hosts without a USB bus
(``/sys/bus/usb`` absent) are not applicable.
"""

from __future__ import annotations

from typing import Any

import pytest

from hardening.evidence.plugin import Evidence
from hardening.measures import usblog as measure
from hardening.observe import ObservationError


def _applies(obs: Any, evidence: Evidence) -> None:
    out = obs.run(measure.USB_BUS)
    if not measure.usb_bus(out.stdout, out.rc):
        evidence.not_applicable("the host has no USB bus (/sys/bus/usb absent): nothing can be connected")


def _props(obs: Any, evidence: Evidence) -> dict[str, str]:
    out = obs.run(measure.SHOW)
    try:
        return measure.parse_show(out.stdout, out.rc)
    except ValueError as exc:
        evidence.record(expected="systemctl show readable", observed={"exit": out.rc, "stdout": out.stdout[:300],
                                                                      "stderr": out.stderr[:300]})
        raise ObservationError(str(exc)) from None


@pytest.mark.clause("6-11")
def test_monitor_service(obs, evidence):
    """The USB connection monitor runs and starts at boot (systemctl show hardening-usblog.service)"""
    _applies(obs, evidence)
    props = _props(obs, evidence)
    keys = ("LoadState", "UnitFileState", "ActiveState", "SubState", "MainPID")
    evidence.record(expected={"LoadState": "loaded", "UnitFileState": "enabled", "ActiveState": "active",
                              "SubState": "running"},
                    observed={k: props.get(k, "") for k in keys})
    problems = measure.service_problems(props)
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-11")
def test_monitor_program(obs, evidence):
    """The monitor runs this version's program as its unit says: the program file's sha256, the unit
    systemd loaded (no drop-in, no other file), its ExecStart, and a process started after the file changed"""
    _applies(obs, evidence)
    props = _props(obs, evidence)
    out = obs.run(measure.PROGRAM_STATE)
    try:
        state = measure.parse_program_state(out.stdout, out.rc)
    except ValueError as exc:
        raise ObservationError(f"{exc}: {out.stderr.strip()[:200]}") from None
    evidence.record(
        expected={"program sha256": measure.program_sha256(), "unit": measure.UNIT_PATH, "drop-ins": "",
                  "ExecStart": " ".join(measure.ARGV), "started": "after the program file last changed"},
        observed={"program sha256": state[1] if state else "absent", "program mtime": state[0] if state else None,
                  "unit": props.get("FragmentPath", ""), "drop-ins": props.get("DropInPaths", ""),
                  "ExecStart": " ".join(measure.parse_exec_start(props.get("ExecStart", ""))),
                  "started": props.get("ExecMainStartTimestamp", ""),
                  "NeedDaemonReload": props.get("NeedDaemonReload", "")})
    problems = measure.program_problems(props, state)
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-11")
def test_connection_log(obs, profile, evidence):
    """The journal's USB connection log of the last days lists the blocked attempts, and no device the
    usb profile blocks got through (allowed, or authorized with no policy) (journalctl -o json)"""
    _applies(obs, evidence)
    settings: measure.Settings = profile.measure("usblog")
    out = obs.run(measure.journal_command(settings.days))
    try:
        connections, other = measure.parse_journal(out.stdout, out.rc)
    except ValueError as exc:
        evidence.record(expected="the monitor's journal entries, readable",
                        observed={"exit": out.rc, "stdout": out.stdout[:300], "stderr": out.stderr[:300]})
        raise ObservationError(f"{exc}: {out.stderr.strip()[:200]}") from None
    blocked = [c for c in connections if c.decision == "blocked"]
    through = measure.let_through(connections, profile.measure("usb"))
    counts = {d: sum(1 for c in connections if c.decision == d) for d in ("allowed", "blocked", "no policy",
                                                                            "undecided")}
    evidence.record(
        expected={"devices the usb profile blocks that got through": []},
        observed={"days": settings.days, "connections": len(connections), "by decision": counts,
                  "blocked attempts": [c.shown() for c in blocked[-measure.LISTED:]],
                  "devices the usb profile blocks that got through": [c.shown() for c in through],
                  "other monitor messages": other[-20:],
                  **({"entries read (the newest)": measure.READ_LIMIT}
                     if len(connections) + len(other) >= measure.READ_LIMIT else {})})
    assert not through, "got through although the usb profile blocks them: " + "; ".join(
        f"{c.time} {c.id} \"{c.name}\" serial {c.serial or '(none)'} classes {' '.join(c.classes)}: {c.decision}"
        for c in through[:10])
