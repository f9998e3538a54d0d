"""power (7-5): the host shuts itself down when its UPS runs out (upsmon, NUT's monitor).

Decides from the host's observation batch (hardening.measures.power, what the checks judge):

* no UPS known for the host (no room lists one, no ``measures.power.ups``): nothing changes;
* nut-client is installed when upsmon is missing;
* ``/etc/nut/upsmon.conf`` is written from the measure (a MONITOR line per UPS with the password
  read from the unit's ``password_file`` on this machine, SHUTDOWNCMD), root:nut 0640;
* ``MODE=netclient`` in ``/etc/nut/nut.conf`` only where NUT is off (``none`` or no MODE): a host
  that is itself a NUT server (standalone, netserver) keeps its mode;
* ``nut-monitor.service`` enabled, and restarted when the file or the mode changed or it is not
  running.

It never changes the NUT server, the UPS or the power supplies: those are hardware and the room's.
A unit without a readable password file refuses the host at the end, naming the unit and the file.
"""

from __future__ import annotations

from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from hardening.measures import power as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from ._support import refuse_at_end, supported


@deploy("power")
def apply(profile: Resolved, obs: Observations) -> None:
    """upsmon monitors the host's UPS units and shuts the host down on low battery."""
    settings: measure.Settings = profile.measure("power")
    if not settings.ups:
        return  # no UPS known for the host: the checks say "not configured" or "not applicable"
    if not supported("power"):
        return
    try:
        passwords = {u.ref: measure.read_password(u) for u in settings.ups}
    except ValueError as exc:
        refuse_at_end(f"power: upsmon not configured: {exc}")
        return
    if obs.run(measure.UPSMON_PRESENT).rc != 0:
        apt.update(name="Update the package lists (upsmon missing)", cache_time=3600)
        apt.packages(name="Install nut-client (upsmon, upsc)", packages=["nut-client"], present=True)
    conf = files.put(name=f"power: {measure.UPSMON_CONF}: MONITOR {', '.join(u.ref for u in settings.ups)}, "
                          f"SHUTDOWNCMD", src=StringIO(measure.upsmon_conf(settings, passwords)),
                     dest=measure.UPSMON_CONF, user="root", group="nut", mode="640")
    changes = [conf]
    mode = obs.run(measure.NUT_MODE)
    if mode.rc != 0 or mode.stdout.strip() in ("", "none"):
        changes.append(files.put(name=f"power: {measure.NUT_CONF}: MODE=netclient (NUT was off)",
                                 src=StringIO(measure.NUT_CONF_CLIENT), dest=measure.NUT_CONF, user="root",
                                 group="nut", mode="640"))
    state = measure.parse_show(obs.run(measure.MONITOR_STATE).stdout, obs.run(measure.MONITOR_STATE).rc)
    if state.get("UnitFileState") != "enabled":
        systemd.service(name=f"power: enable {measure.MONITOR_UNIT}", service=measure.MONITOR_UNIT, enabled=True)
    if state.get("ActiveState") != "active":
        systemd.service(name=f"power: start {measure.MONITOR_UNIT}", service=measure.MONITOR_UNIT, running=True)
    else:
        server.shell(name=f"power: restart {measure.MONITOR_UNIT} (its configuration changed)",
                     commands=[measure.RESTART_MONITOR], _if=any_changed(*changes))
