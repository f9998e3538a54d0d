"""audit (6-3, 6-4): access to personal data recorded, the records kept, protected and forwarded.

Read the way the system reads it: the loaded rules with ``auditctl -l`` and the audit state with
``auditctl -s`` (``enabled 2``: immutable), what loads at boot as augenrules merges
``/etc/audit/rules.d``, auditd.conf as auditd parses it, the log directory with ``find``, the
syslog plugin in the process list under auditd, rsyslog from ``systemctl show`` and ``rsyslogd
-N1``. An immutable host whose loaded rules differ from the profile fails until it is rebooted.
"""

from __future__ import annotations

from typing import Any

import pytest

from hardening.measures import audit as measure


def _status(obs: Any, evidence: Any) -> dict[str, str]:
    out = obs.run(measure.STATUS)
    reason = measure.no_audit(out.stdout, out.stderr)
    if reason:
        evidence.not_applicable(reason)
    try:
        return measure.parse_status(out.stdout, out.rc)
    except ValueError:
        evidence.record(expected="auditctl -s readable (the kernel's audit state)",
                        observed={"exit": out.rc, "stdout": out.stdout[:300], "stderr": out.stderr[:300]})
        raise


def _boot(obs: Any) -> measure.BootRules:
    out = obs.run(measure.BOOT)
    return measure.boot_rules(out.stdout, out.rc)


def _conf(obs: Any) -> dict[str, str]:
    out = obs.run(measure.CONF)
    if out.rc != 0:
        raise RuntimeError(f"cannot read {measure.AUDITD_CONF_PATH} (exit {out.rc}): {out.stderr.strip()[:200]}")
    return measure.parse_conf(out.stdout)


@pytest.mark.clause("6-3")
def test_auditd_running(obs, evidence):
    """auditd runs and is enabled at boot; the kernel's audit system is on"""
    status = _status(obs, evidence)
    out = obs.run(measure.UNITS)
    units = measure.parse_units(out.stdout, out.rc)
    unit = units[measure.AUDITD]
    evidence.record(expected={"auditd": "active, enabled", "enabled": "1 or 2", "pid": "auditd's"},
                    observed={"auditd": {k: unit.get(k, "") for k in ("ActiveState", "UnitFileState")},
                              "status": status})
    problems = []
    if unit.get("ActiveState") != "active":
        problems.append(f"auditd is {unit.get('ActiveState')}")
    if unit.get("UnitFileState") != "enabled":
        problems.append(f"auditd is {unit.get('UnitFileState')} at boot")
    if status["enabled"] == "0":
        problems.append("the kernel's audit system is off (enabled 0)")
    if status.get("pid", "0") == "0":
        problems.append("no audit daemon receives the records (pid 0)")
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-3")
def test_watch_rules(obs, profile, evidence):
    """Reads and changes of every personal-data path are recorded: loaded now and at boot"""
    _status(obs, evidence)
    paths = measure.watched(profile)
    if not paths:
        evidence.not_configured("hwprofiles: measures.auth.personal_data (the personal-data directories, e.g. "
                                "[{path: /srv/pii, group: pii, mode: '0750'}]) or measures.audit.paths")
    want = measure.watch_rules(paths)
    out = obs.run(measure.LIST)
    loaded = measure.parse_loaded(out.stdout, out.rc)
    boot = _boot(obs)
    status = _status(obs, evidence)
    ours = (measure.READ_KEY, measure.CHANGE_KEY)
    evidence.record(expected=[str(w) for w in want],
                    observed={"loaded (auditctl -l)": [str(w) for w in loaded if w.key in ours],
                              "at boot (rules.d via augenrules)": [str(w) for w in boot.watches if w.key in ours],
                              "rules files": boot.files, "enabled": status["enabled"]})
    problems = []
    for where, have in (("loaded", loaded), ("at boot", boot.watches)):
        missing = [str(w) for w in want if w not in have]
        extra = [str(w) for w in have if w.key in ours and w not in want]
        if missing:
            problems.append(f"{where}: missing {'; '.join(missing)}")
        if extra:
            problems.append(f"{where}: not in the profile {'; '.join(extra)}")
    if problems and status["enabled"] == "2" and any(p.startswith("loaded") for p in problems):
        problems.append("the loaded rules are immutable (-e 2): reboot the host to load the rules of rules.d")
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-4")
def test_rules_immutable(obs, profile, evidence):
    """The audit rules are immutable (-e 2) now and after the next boot"""
    settings: measure.Settings = profile.measure("audit")
    status = _status(obs, evidence)
    if not settings.immutable:
        evidence.not_configured("measures.audit.immutable is false: the profile lets root change the audit rules")
    boot = _boot(obs)
    evidence.record(expected={"enabled": "2", "last rule at boot": "-e 2"},
                    observed={"enabled": status["enabled"], "last rule at boot": boot.enable and f"-e {boot.enable}"})
    problems = []
    if status["enabled"] != "2":
        problems.append(f"auditctl -s: enabled {status['enabled']}, not 2: root can change or delete the rules")
    if boot.enable != "2":
        problems.append(f"{measure.RULES_DIR} ends with {'-e ' + boot.enable if boot.enable else 'no -e'}, "
                        "not -e 2: the rules are not immutable after the next boot")
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-3")
def test_log_retention(obs, profile, evidence):
    """auditd never deletes its logs (keep_logs) and suspends rather than losing records when the disk fills"""
    settings: measure.Settings = profile.measure("audit")
    _status(obs, evidence)
    values = _conf(obs)
    want = {k: v for k, v in measure.auditd_conf(settings).items() if k in measure.RETENTION_KEYS}
    evidence.record(expected=want, observed={k: values.get(k, "(unset)") for k in want})
    wrong = {k: v for k, v in measure.conf_problems(settings, values).items() if k in want}
    assert not wrong, "; ".join(f"{measure.AUDITD_CONF_PATH}: {k} = {v}, expected {want[k]}" for k, v in wrong.items())


@pytest.mark.clause("6-4")
def test_log_protection(obs, profile, evidence):
    """Only root (and log_group) reads the audit logs: owner root, no world bits, no group write"""
    settings: measure.Settings = profile.measure("audit")
    _status(obs, evidence)
    values = _conf(obs)
    out = obs.run(measure.LOG_STAT)
    entries = measure.parse_log_stat(out.stdout)
    problems = measure.log_problems(settings, entries)
    group = values.get("log_group", "root")
    if group != settings.log_group:
        problems.insert(0, f"{measure.AUDITD_CONF_PATH}: log_group = {group}, expected {settings.log_group} "
                           "(auditd gives that group read access to new logs)")
    evidence.record(expected={"log_group": settings.log_group, measure.LOG_DIR: "owner root, group root or "
                              f"{settings.log_group}, no world bits, no group write"},
                    observed={"log_group": group,
                              "entries": [f"{oct(e.mode)[2:]} {e.user}:{e.group} {e.path}" for e in entries[:50]]})
    assert not problems, "; ".join(problems[:10]) + (f" and {len(problems) - 10} more" if len(problems) > 10 else "")


@pytest.mark.clause("6-4")
def test_forwarding(obs, profile, evidence):
    """Every audit record goes to the separate log host (audispd syslog plugin, rsyslog over TCP)"""
    settings: measure.Settings = profile.measure("audit")
    _status(obs, evidence)
    if not settings.log_host:
        evidence.not_configured("hwprofiles: measures.audit.log_host (and log_port, default 514): the separate "
                                "log host that receives the audit records over TCP")
    plugin = obs.run(measure.PLUGIN)
    if plugin.rc != 0:
        raise RuntimeError(f"cannot read {measure.PLUGIN_PATH} (exit {plugin.rc}): {plugin.stderr.strip()[:200]}")
    running = obs.run(measure.PLUGIN_PS).stdout
    units_out = obs.run(measure.UNITS)
    units = measure.parse_units(units_out.stdout, units_out.rc)
    stat = obs.run(measure.RSYSLOG_STAT).stdout
    check = obs.run(measure.RSYSLOG_CHECK)
    connected = obs.run(measure.connections(settings)).stdout
    problems = measure.plugin_problems(measure.parse_plugin(plugin.stdout), running)
    problems += measure.rsyslog_problems(settings, units, stat, check.rc)
    evidence.record(
        expected={"plugin": f"active, LOG_{measure.FACILITY.upper()}, running",
                  "rsyslog": f"active, enabled, {measure.RSYSLOG_FILE} loaded",
                  "log host": f"{settings.log_host}:{settings.log_port}/tcp"},
        observed={"plugin": measure.parse_plugin(plugin.stdout), "running plugin": running.strip(),
                  "rsyslog": {k: units[measure.RSYSLOG].get(k, "") for k in ("ActiveState", "UnitFileState")},
                  "rsyslogd -N1": check.stdout.strip()[-300:],
                  "established connections (recorded, not judged)": connected.strip().splitlines()[:5]})
    assert not problems, "; ".join(problems)
