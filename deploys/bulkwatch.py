"""bulkwatch (6-5): the bulk-read monitor with the profile's paths, threshold and window.

Decides from the host's observation batch: the monitor program (shipped in hardening, copied
as it is), its JSON configuration and its unit written; auditd's af_unix dispatcher switched on
(auditd restarted to start it: a plugin change never touches the loaded rules, immutable or
not); the unit enabled, and (re)started when its files changed or it does not run. Without
watched paths nothing is written ("not configured" in the check).
"""

from __future__ import annotations

from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from hardening.measures import audit
from hardening.measures import bulkwatch as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from ._support import refuse_at_end, supported


@deploy("bulkwatch")
def apply(profile: Resolved, obs: Observations) -> None:
    """The monitor, its configuration, the af_unix dispatcher, the unit running."""
    if not supported("bulkwatch"):
        return
    status = obs.run(audit.STATUS)
    if audit.no_audit(status.stdout, status.stderr) or not audit.watched(profile):
        return
    try:
        seen = measure.parse_files(obs.run(measure.FILES).stdout)
        unit = measure.parse_units(obs.run(measure.UNITS).stdout, obs.run(measure.UNITS).rc)
    except ValueError as exc:
        refuse_at_end(f"bulkwatch: cannot read the monitor's state ({exc})")
        return
    files.directory(name="/usr/local/lib/hardening", path="/usr/local/lib/hardening", user="root", group="root",
                    mode="755")
    files.directory(name="/etc/hardening", path="/etc/hardening", user="root", group="root", mode="755")
    changed = [
        files.put(name=f"bulkwatch monitor ({measure.MONITOR_PATH})", src=StringIO(measure.monitor_text()),
                  dest=measure.MONITOR_PATH, user="root", group="root", mode="755"),
        files.put(name=f"bulkwatch configuration: {measure.config_summary(measure.config_text(profile))}",
                  src=StringIO(measure.config_text(profile)), dest=measure.CONFIG_PATH,
                  user="root", group="root", mode="644"),
        files.put(name=f"bulkwatch unit ({measure.UNIT_PATH})", src=StringIO(measure.unit_text()),
                  dest=measure.UNIT_PATH, user="root", group="root", mode="644"),
    ]
    plugin = audit.parse_plugin(seen[measure.AF_UNIX_PATH][1])
    plugin_off = plugin.get("active", "").lower() != "yes" or seen["socket"][0] != "socket"
    af_unix = files.put(name=f"auditd af_unix dispatcher on ({measure.AF_UNIX_PATH})",
                        src=StringIO(measure.af_unix_text()), dest=measure.AF_UNIX_PATH,
                        user="root", group="root", mode="640")
    server.shell(name="auditd: restart to start the af_unix dispatcher", commands=["systemctl restart auditd.service"],
                 _if=None if plugin_off else af_unix.did_change)
    server.shell(name="systemd reads the bulkwatch unit", commands=["systemctl daemon-reload"],
                 _if=changed[2].did_change)
    if unit.get("UnitFileState") != "enabled":
        server.shell(name=f"{measure.UNIT} enabled at boot", commands=[f"systemctl enable {measure.UNIT}"])
    stale = measure.problems(profile, seen, unit)
    server.shell(name=f"{measure.UNIT} (re)started with its configuration",
                 commands=[f"systemctl restart {measure.UNIT}"],
                 _if=None if stale or plugin_off else any_changed(*changed, af_unix))
