"""patching (6-8): automatic security updates, optional immediate update, optional ClamAV.

The deploy turns on Debian's own mechanism (unattended-upgrades run by apt-daily-upgrade.timer).
It decides from the host's observation batch, the same observations the checks judge
(``hardening.measures.patching.observe``):

* the package lists are refreshed when the security suite's lists were never fetched or are
  older than a day;
* unattended-upgrades is installed when it is not; the two apt.conf.d files are written (pyinfra
  compares them); if they already were in place and apt's effective configuration
  (``apt-config dump``) still differs, another file overrides them and the deploy refuses,
  naming the files that set those keys;
* each apt timer is unmasked, enabled and started as far as its observed state needs it;
* pending security updates are installed now only when the profile sets
  ``apply_security_updates: true`` (a change-management decision) and some are observed pending,
  or the lists were just refreshed (the observed count is then from the old lists);
* with ``anti_malware: clamav``: the packages when missing, freshclam started when inactive, and
  restarted (it fetches at start) when the observed signatures are missing or too old.

It never reboots: a pending reboot is reported by the check.
"""

from __future__ import annotations

import datetime as dt
from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import apt, files, server, systemd

from hardening.measures import patching as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from ._support import refuse, supported


@deploy("patching")
def apply(profile: Resolved, obs: Observations) -> None:
    """Enforce the patching measure from the host's resolved profile and observed state."""
    settings: measure.Settings = profile.measure("patching")
    if not supported("patching"):
        return
    refreshed = _lists(obs)
    wanted = settings.unattended_upgrades or settings.apply_security_updates
    if wanted and not measure.installed(obs.run(measure.package_status("unattended-upgrades"))):
        apt.packages(name="Install unattended-upgrades", packages=["unattended-upgrades"])
    if settings.unattended_upgrades:
        _unattended(obs)
    if settings.apply_security_updates:
        _security_updates(obs, refreshed)
    if settings.anti_malware == "clamav":
        _clamav(settings, obs)


def _lists(obs: Observations) -> bool:
    """apt-get update when the security suite's lists are missing or older than a day."""
    age = measure.lists_age_days(obs.run(measure.SECURITY_LISTS).stdout, measure.now_epoch(obs.run(measure.NOW)))
    if not measure.lists_stale(age):
        return False
    why = "never fetched" if age is None else f"{age} days old"
    apt.update(name=f"Refresh package lists (security suite's lists {why})")
    return True


def _unattended(obs: Observations) -> None:
    files.put(name="Daily list updates and unattended upgrades (20auto-upgrades)",
              src=StringIO(measure.auto_upgrades_conf()), dest=measure.AUTO_UPGRADES,
              user="root", group="root", mode="644")
    files.put(name="Security origin for unattended-upgrades", src=StringIO(measure.origins_conf()),
              dest=measure.ORIGINS_CONF, user="root", group="root", mode="644")
    for timer in measure.TIMERS:
        enabled = obs.run(measure.timer_enabled(timer)).stdout.strip()
        active = obs.run(measure.timer_active(timer)).stdout.strip()
        for command in measure.timer_commands(timer, enabled, active):
            server.shell(name=f"{timer} ({enabled or 'unknown'}, {active or 'unknown'}): {command}",
                         commands=[command])
    problems = measure.config_problems(measure.parse_apt_config(obs.run(measure.APT_CONFIG).stdout))
    ours = (obs.run(measure.AUTO_UPGRADES_TEXT).stdout == measure.auto_upgrades_conf()
            and obs.run(measure.ORIGINS_TEXT).stdout == measure.origins_conf())
    conflict = measure.config_conflict(problems, ours, obs.run(measure.APT_CONFIG_LINES).stdout)
    if conflict:
        refuse(conflict)


def _security_updates(obs: Observations, refreshed: bool) -> None:
    """Install pending security updates now (profile: apply_security_updates)."""
    pending = measure.security_updates(obs.run(measure.PENDING).stdout)
    if not pending and not refreshed:
        return
    seen = f"{len(pending)} observed pending" + (", lists refreshed in this run" if refreshed else "")
    server.shell(name=f"Install pending security updates now ({seen}; profile: apply_security_updates)",
                 commands=[measure.apply_command()])


def _clamav(settings: measure.Settings, obs: Observations) -> None:
    missing = [p for p in measure.CLAMAV_PACKAGES if not measure.installed(obs.run(measure.package_status(p)))]
    if missing:
        apt.packages(name="Install ClamAV and freshclam", packages=list(measure.CLAMAV_PACKAGES))
    if missing or obs.run(measure.FRESHCLAM_ACTIVE).stdout.strip() != "active":
        systemd.service(name="freshclam keeps signatures fresh", service=measure.FRESHCLAM_SERVICE,
                        running=True, enabled=True)
        return
    info = obs.run(measure.SIGNATURES)
    now = dt.datetime.fromtimestamp(measure.now_epoch(obs.run(measure.NOW)), dt.UTC)
    age = measure.signature_age_days(info.stdout, now) if info.rc == 0 else None
    if age is None or age > settings.malware_signatures_max_age_days:
        server.shell(name=f"Restart freshclam: signatures {'missing' if age is None else f'{age} days old'} "
                          "(it fetches when it starts)",
                     commands=[f"systemctl restart {measure.FRESHCLAM_SERVICE}"])
