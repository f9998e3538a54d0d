"""audit (6-3, 6-4): watch rules, immutable rules, retention, log protection, forwarding.

Decides from the host's observation batch (``obs``, what the checks judge):

1. auditd.conf: each key of hardening.measures.audit.auditd_conf that auditd reads differently is
   rewritten in place (every line of the key; appended when absent); auditd is restarted to use
   them (it reads its configuration at start).
2. The log directory and its files: owner, group and mode, when the listing shows a fault.
3. Rules: the watch rules and ``-e 2`` written to rules.d. When the kernel's rules are not
   immutable and what is loaded (or what would load at boot) differs, ``augenrules --load``
   loads them now (and with them ``-e 2``). When they are immutable (``enabled 2``) and the
   loaded rules differ, nothing can load them before a reboot: the deploy writes the files and
   fails the host, saying so (never "no change" while the check fails).
4. Forwarding, only with ``log_host``: the syslog plugin's file, our rsyslog file; rsyslog
   enabled and (re)started when its file changed or it runs without it; auditd restarted when
   the plugin changed or does not run.

A watched path that does not exist (and is not a personal-data directory the auth measure
creates earlier in this deploy) is refused: auditctl would stop loading at that rule, before
``-e 2``.
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import files, server

from hardening.measures import audit as measure
from hardening.measures.encryption import personal_data_paths
from hardening.observe import Observations
from hardening.profiles import Resolved

from ._support import refuse_at_end, supported


@deploy("audit")
def apply(profile: Resolved, obs: Observations) -> None:
    """auditd.conf, log protection, watch rules with -e 2, forwarding to the log host."""
    settings: measure.Settings = profile.measure("audit")
    if not supported("audit"):
        return
    status = obs.run(measure.STATUS)
    if measure.no_audit(status.stdout, status.stderr):
        return  # a container: the machine's kernel records, nothing here to configure
    _running(obs)
    restart = _conf(settings, obs)
    _protect(settings, obs)
    restart = _forwarding(settings, obs) or restart
    if restart:
        server.shell(name="auditd: restart to read its configuration and plugins",
                     commands=["systemctl restart auditd.service"])
    _rules(profile, settings, obs)


def _running(obs: Observations) -> None:
    """auditd enabled at boot and running."""
    try:
        unit = measure.parse_units(obs.run(measure.UNITS).stdout, obs.run(measure.UNITS).rc)[measure.AUDITD]
    except ValueError as exc:
        refuse_at_end(f"audit: cannot read the state of auditd ({exc})")
        return
    if unit.get("LoadState") == "masked":
        server.shell(name="auditd unmasked", commands=["systemctl unmask auditd.service"])
    if unit.get("UnitFileState") != "enabled":
        server.shell(name="auditd enabled at boot", commands=["systemctl enable auditd.service"])
    if unit.get("ActiveState") != "active":
        server.shell(name="auditd started", commands=["systemctl start auditd.service"])


def _conf(settings: measure.Settings, obs: Observations) -> bool:
    out = obs.run(measure.CONF)
    try:
        if out.rc != 0:
            raise ValueError(f"exit {out.rc}: {out.stderr.strip()[:200]}")
        wrong = measure.conf_problems(settings, measure.parse_conf(out.stdout))
    except ValueError as exc:
        refuse_at_end(f"audit: cannot read {measure.AUDITD_CONF_PATH} ({exc}); it was left as it is")
        return False
    if not wrong:
        return False
    want = measure.auditd_conf(settings)
    server.shell(name=f"auditd.conf: {', '.join(f'{k} = {want[k]} (was {v})' for k, v in wrong.items())}",
                 commands=[conf_command({k: want[k] for k in wrong})])
    return True


def conf_command(values: dict[str, str]) -> str:
    """Shell that sets each key in auditd.conf: every line of the key replaced, or appended."""
    path = measure.AUDITD_CONF_PATH
    parts = []
    for key, value in values.items():
        line = shlex.quote(f"{key} = {value}")
        parts.append(f"if grep -qiE '^[[:space:]]*{key}[[:space:]]*=' {path}; then "
                     f"sed -i -E 's|^[[:space:]]*{key}[[:space:]]*=.*|{key} = {value}|I' {path}; "
                     f"else printf '%s\\n' {line} >> {path}; fi")
    return " && ".join(f"{{ {p}; }}" for p in parts)


def _protect(settings: measure.Settings, obs: Observations) -> None:
    out = obs.run(measure.LOG_STAT)
    try:
        problems = measure.log_problems(settings, measure.parse_log_stat(out.stdout))
    except ValueError as exc:
        problems = [str(exc)]
    if problems:
        server.shell(name=f"{measure.LOG_DIR}: root:{settings.log_group}, no world bits, no group write "
                          f"({'; '.join(problems[:3])})",
                     commands=[f"mkdir -p {measure.LOG_DIR} && " + measure.protect_command(settings)])


def _rules(profile: Resolved, settings: measure.Settings, obs: Observations) -> None:
    paths = measure.watched(profile)
    created = set(personal_data_paths(profile))
    missing = [p for p in paths if p not in created and obs.run(measure.path_stat(p)).stdout.strip() == "absent"]
    if missing:
        refuse_at_end(f"audit: the watched paths {', '.join(missing)} do not exist: create them (or correct "
                      "measures.audit.paths); the audit rules were not changed")
        return
    rules = files.put(name=f"audit watch rules for {', '.join(paths) or 'no path'} ({measure.RULES_FILE})",
                      src=StringIO(measure.rules_text(paths)), dest=measure.RULES_FILE,
                      user="root", group="root", mode="640")
    if settings.immutable:
        final = files.put(name=f"audit rules immutable at boot: -e 2 ({measure.IMMUTABLE_FILE})",
                          src=StringIO(measure.immutable_text()), dest=measure.IMMUTABLE_FILE,
                          user="root", group="root", mode="640")
    else:
        final = files.file(name=f"no -e 2 of ours ({measure.IMMUTABLE_FILE})", path=measure.IMMUTABLE_FILE,
                           present=False)
    try:
        status = measure.parse_status(obs.run(measure.STATUS).stdout, obs.run(measure.STATUS).rc)
        listed = obs.run(measure.LIST)
        loaded = measure.parse_loaded(listed.stdout, listed.rc)
    except ValueError as exc:
        refuse_at_end(f"audit: cannot read the loaded audit rules ({exc}); rules.d was written, nothing loaded")
        return
    want = measure.watch_rules(paths)
    ours = (measure.READ_KEY, measure.CHANGE_KEY)
    differs = sorted(w for w in loaded if w.key in ours) != sorted(want)
    immutable_now = status["enabled"] == "2"
    if immutable_now:
        if differs:
            refuse_at_end("audit: the loaded audit rules are immutable (-e 2) and differ from the profile; "
                          f"{measure.RULES_DIR} now holds the profile's rules: reboot the host to load them")
        return
    load_now = differs or (settings.immutable and status["enabled"] != "2")
    server.shell(name="audit rules loaded now (augenrules --load"
                      + (", then immutable until reboot)" if settings.immutable else ")"),
                 commands=["augenrules --load >/dev/null && auditctl -l >/dev/null"],
                 _if=None if load_now else (lambda: rules.did_change() or final.did_change()))


def _forwarding(settings: measure.Settings, obs: Observations) -> bool:
    """The plugin and rsyslog; True when auditd must restart for the plugin."""
    if not settings.log_host:
        return False
    files.put(name=f"audispd syslog plugin on, facility {measure.FACILITY} ({measure.PLUGIN_PATH})",
                       src=StringIO(measure.plugin_text()), dest=measure.PLUGIN_PATH,
                       user="root", group="root", mode="640")
    conf = files.put(name=f"rsyslog: {measure.FACILITY} to {settings.log_host}:{settings.log_port}/tcp "
                          f"({measure.RSYSLOG_FILE})",
                     src=StringIO(measure.rsyslog_text(settings)), dest=measure.RSYSLOG_FILE,
                     user="root", group="root", mode="644")
    units_out = obs.run(measure.UNITS)
    try:
        units = measure.parse_units(units_out.stdout, units_out.rc)
    except ValueError as exc:
        refuse_at_end(f"audit: cannot read the state of rsyslog and auditd ({exc})")
        return False
    rsyslog = units[measure.RSYSLOG]
    if rsyslog.get("UnitFileState") != "enabled":
        server.shell(name="rsyslog enabled at boot", commands=["systemctl enable rsyslog.service"])
    stale = measure.rsyslog_problems(settings, units, obs.run(measure.RSYSLOG_STAT).stdout, 0)
    server.shell(name="rsyslog (re)started with the forwarding", commands=["systemctl restart rsyslog.service"],
                 _if=None if stale else conf.did_change)
    running = obs.run(measure.PLUGIN_PS).stdout
    # A plugin file auditd reads as it should, with the plugin running: a rewrite (comments) needs no restart.
    return bool(measure.plugin_problems(measure.parse_plugin(obs.run(measure.PLUGIN).stdout), running))
