"""timeouts (6-15): idle sessions are logged off, verified the way each component reads it.

TMOUT in a login shell of an unprivileged account (what a user gets); sshd values with
``sshd -T`` (effective after drop-ins and first match) for the default connection and ``sshd -T -C`` for each
Match line (hardening.measures._sshd.connection_classes); logind values with ``systemd-analyze
cat-config systemd/logind.conf`` (the files in the order logind reads them) against the values the
running daemon uses (``busctl``): a difference fails as stale; the desktop lock with
``dconf read`` through the user profile and ``gsettings writable`` (locked keys are not writable),
and the profile file dconf reads (it must list ``system-db:local``).
"""

from __future__ import annotations

import re

import pytest

from hardening.measures import _sshd
from hardening.measures import timeouts as measure

READONLY = re.compile(r'^declare -(\w+) TMOUT="?(\d+)"?$', re.M)


@pytest.mark.clause("6-15")
def test_shell_tmout(obs, profile, evidence):
    """A login shell gets a readonly, exported TMOUT no longer than the profile's"""
    settings: measure.Settings = profile.measure("timeouts")
    out = obs.run(measure.TMOUT_SHELL)
    match = READONLY.search(out.stdout)
    flags, value = (match.group(1), int(match.group(2))) if match else ("", 0)
    evidence.record(expected={"flags": "rx", "TMOUT": f"1..{settings.shell_tmout}"},
                    observed={"flags": flags, "TMOUT": value} if match
                    else {"readonly TMOUT": "absent", "exit": out.rc})
    assert match, "no readonly TMOUT in a login shell"
    assert "r" in flags and "x" in flags, "TMOUT not readonly and exported"
    assert 0 < value <= settings.shell_tmout


@pytest.mark.clause("6-15")
def test_ssh_client_alive(obs, profile, evidence, request):
    """sshd closes unresponsive sessions: ClientAliveInterval and CountMax at most the profile's,
    for the default connection and every Match block (sshd -T, sshd -T -C per Match line; the
    latter through the host fixture, only when the configuration has Match lines)"""
    settings: measure.Settings = profile.measure("timeouts")
    classes = _sshd.connection_classes(obs, _sshd.host_runner(request))
    keys = ["clientaliveinterval", "clientalivecountmax"]
    observed, failing = _sshd.judge(classes, keys, lambda c: measure.client_alive_problem(settings, c.config or {}))
    evidence.record(expected={"clientaliveinterval": f"1..{settings.ssh_client_alive_interval}",
                              "clientalivecountmax": f"1..{settings.ssh_client_alive_count_max}",
                              "for": "the default and every Match block"},
                    observed=observed)
    _sshd.conclude(classes, failing)


@pytest.mark.clause("6-15")
def test_logind_idle_action(obs, profile, evidence):
    """systemd-logind acts on idle sessions: IdleAction, IdleActionSec at most the profile's, in
    its configuration (systemd-analyze cat-config) AND in the running daemon (busctl)"""
    settings: measure.Settings = profile.measure("timeouts")
    if settings.logind_idle_action == "ignore":
        evidence.not_applicable("the profile sets no idle action for this role (ignore)")
    out = obs.run(measure.LOGIND_CONFIG)
    live_out = obs.run(measure.LOGIND_LIVE)
    configured = measure.parse_logind(out.stdout) if out.rc == 0 else {}
    want = measure.logind_values(settings)
    seen = {k: configured.get(k, f"{v} (default)") for k, v in measure.LOGIND_DEFAULTS.items()}
    evidence.record(expected={"IdleAction": want["IdleAction"],
                              "IdleActionSec": f"at most {want['IdleActionSec']}",
                              "running": "the same as configured"},
                    observed={"configured": seen, "running": live_out.stdout.strip().splitlines()
                              if live_out.rc == 0 else f"busctl failed: {live_out.stderr.strip()}"})
    if out.rc != 0:
        raise RuntimeError(f"systemd-analyze cat-config failed (exit {out.rc}): {out.stderr.strip()}")
    if live_out.rc != 0:
        raise RuntimeError(f"busctl could not read systemd-logind (exit {live_out.rc}): {live_out.stderr.strip()}")
    problems = measure.logind_problems(settings, configured, measure.parse_logind_live(live_out.stdout))
    assert not problems, "; ".join(problems)


@pytest.mark.clause("6-15")
def test_screen_lock(obs, profile, evidence):
    """The desktop locks after at most the profile's delay and users cannot change it (dconf locks)

    The values and locks are read through the dconf profile user, which must list the system
    database local that holds them (a profile without it fails, named)."""
    settings: measure.Settings = profile.measure("timeouts")
    if obs.run(measure.DCONF_PRESENT).rc != 0:
        evidence.not_applicable("no desktop: dconf is not installed")
    want = measure.dconf_values(settings)
    seen: dict[str, dict[str, str]] = {}
    for path in want:
        value = obs.run(measure.dconf_read(path)).stdout.strip()
        writable = obs.run(measure.dconf_writable(path))
        seen[path] = {"value": value,
                      "writable": writable.stdout.strip() if writable.rc == 0 else "unknown"}
    listing = obs.run(measure.DCONF_PROFILE_READ)
    try:
        if listing.rc != 0:
            raise ValueError(f"exit {listing.rc}: {listing.stderr.strip()}")
        file, text = measure.read_dconf_profile(listing.stdout)
        unreadable = ""
    except ValueError as exc:
        file, text, unreadable = None, "", str(exc)
    sources = measure.dconf_sources(text if file else None)
    evidence.record(expected={"values (at most as long)": want, "writable": "false",
                              "profile user reads": measure.DCONF_OWN_DB},
                    observed={**seen, "profile user": {"unreadable": unreadable} if unreadable else
                              {"file": file or "none (dconf's default)", "reads": sources}})
    if unreadable:
        raise RuntimeError(f"cannot read the dconf profile user: {unreadable}")
    problems = measure.dconf_profile_problems(text if file else None)
    assert not problems, "; ".join(problems)
    wrong = [p for p in want if not measure.dconf_value_ok(settings, p, seen[p]["value"])]
    assert not wrong, f"screen lock values looser than the profile: {wrong}"
    assert all(s["writable"] == "false" for s in seen.values()), "screen lock keys not locked"
