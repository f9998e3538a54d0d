"""patching (6-8): automatic security updates, optional immediate update, optional ClamAV.

The deploy turns on Debian's own mechanism (unattended-upgrades run by apt-daily-upgrade.timer).
It decides from the host's observation batch, the same observations the checks judge
(``hardening.measures.patching.observe``):

* the package lists are refreshed when the security suite's lists were never fetched or are
  older than a day;
* unattended-upgrades is installed when it is not (and the profile runs it, or applies updates
  with it); the two apt.conf.d files are written as the profile says, on or off (pyinfra
  compares them): 20auto-upgrades' Unattended-Upgrade "1" or "0", and the origins file's
  ``#clear`` followed by exactly the profile's ``unattended_origins``; where apt's effective
  configuration (``apt-config dump``, judged as the check judges it) is still wrong because a
  foreign file sets a key to a value the profile does not want in a one-line statement
  (``APT::Periodic::Enable "0";``), or a foreign file read after the tool's origins file adds
  or clears origins (a statement, or an ``Origins-Pattern { ... };`` block, one line or
  several), those lines are commented out in place, marked ``measure.DISABLED_MARK`` (the file
  and its other settings stay; a block only as a whole, and only if every line still reads as
  observed); a nested scope, or an override the tool cannot name, is refused at the end,
  naming file and line;
* with unattended upgrades on, the apt services are unmasked, each apt timer unmasked, enabled
  and started, as far as its observed state (``systemctl show``) needs it; a timer that fires
  less than daily has the files in /etc that override its schedule (drop-ins, a unit copy)
  renamed aside (``measure.DISABLED_SUFFIX``) and is restarted; with no such file the deploy
  refuses;
* held packages with a pending security update (unattended-upgrades never installs them), and
  pending security updates that apt preferences pin away, are refused at the end, naming them:
  a hold or pin is an admin's decision whose reason the tool cannot see, so it never releases
  one; a hold or pin with nothing pending is left alone;
* pending security updates are installed now (``unattended-upgrade``, from the profile's
  origins) only when the profile sets
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

from ._support import refuse_at_end, supported


@deploy("patching")
def apply(profile: Resolved, obs: Observations) -> None:
    """Enforce the patching measure from the host's resolved profile and observed state."""
    settings: measure.Settings = profile.measure("patching")
    if not supported("patching"):
        return
    refreshed = _lists(obs)
    wanted = settings.unattended_on or settings.apply_security_updates
    if wanted and not measure.installed(obs.run(measure.package_status("unattended-upgrades"))):
        apt.packages(name="Install unattended-upgrades", packages=["unattended-upgrades"])
    _unattended(settings, obs)
    _holds(obs)
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


def _unattended(settings: measure.Settings, obs: Observations) -> None:
    """The two apt.conf.d files as the profile says (on or off, its origins), the apt timers when
    on, and foreign apt settings that still override them switched off (or refused)."""
    on = settings.unattended_on
    files.put(name=f"Daily list updates, unattended upgrades {'on' if on else 'off (profile)'} (20auto-upgrades)",
              src=StringIO(measure.auto_upgrades_conf(settings)), dest=measure.AUTO_UPGRADES,
              user="root", group="root", mode="644")
    files.put(name=f"unattended-upgrades origins: exactly the profile's ({len(settings.unattended_origins)})",
              src=StringIO(measure.origins_conf(settings)), dest=measure.ORIGINS_CONF,
              user="root", group="root", mode="644")
    if on:
        units = measure.parse_units(obs.run(measure.UNITS))
        for command in measure.unit_commands(units):
            server.shell(name=f"apt timers and services: {command}", commands=[command])
        commands, refusals = measure.schedule_repairs(units, measure.now_epoch(obs.run(measure.NOW)))
        if commands:
            server.shell(name=f"apt timer scheduled less than daily: {'; '.join(commands)}", commands=commands)
        for reason in refusals:
            refuse_at_end(reason)
    config = measure.read_apt_config(obs.run(measure.APT_CONFIG))
    releases = measure.parse_policy(obs.run(measure.POLICY).stdout)
    distro = measure.parse_distro(obs.run(measure.DISTRO))
    problems = measure.config_problems(config, releases, distro, settings)
    ours = (obs.run(measure.AUTO_UPGRADES_TEXT).stdout == measure.auto_upgrades_conf(settings)
            and obs.run(measure.ORIGINS_TEXT).stdout == measure.origins_conf(settings))
    switch_off, refusals = measure.repairs(problems, ours, obs.run(measure.APT_CONFIG_LINES).stdout,
                                           unattended=on)
    for line in switch_off:
        server.shell(name=f"Switch off a non-compliant apt setting: {line} {' '.join(line.text.split())}",
                     commands=[measure.disable_command(line)])
    for reason in refusals:
        refuse_at_end(reason)


def _holds(obs: Observations) -> None:
    """Refuse (at the end) held or pinned packages whose pending security update is kept out."""
    simulation = obs.run(measure.PENDING).stdout
    held = measure.held_security_updates(simulation)
    if held:
        refuse_at_end(f"patching: held packages with a pending security update: {', '.join(held)} "
                      "(unattended-upgrades never installs a held package; release with "
                      f"'apt-mark unhold {' '.join(held)}' when the reason for the hold is settled)")
    pinned = measure.pinned_security_updates(simulation, obs.run(measure.POLICY).stdout)
    if pinned:
        refuse_at_end(f"patching: apt preferences keep pending security updates out: {', '.join(pinned)} "
                      "(see /etc/apt/preferences and /etc/apt/preferences.d; apt-cache policy shows the pins)")


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
