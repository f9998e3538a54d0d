"""timeouts (6-15): idle sessions are logged off, verified the way each component reads it.

TMOUT in a login shell of an unprivileged account (what a user gets); sshd values with
``sshd -T`` (effective after drop-ins and first match); logind values with ``systemd-analyze
cat-config systemd/logind.conf`` (the files in the order logind reads them; logind applies them
when it starts, so the value it runs with now is recorded beside them); the desktop lock with
``dconf read`` through the user profile and ``gsettings writable`` (locked keys are not writable).
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
def test_ssh_client_alive(obs, profile, evidence):
    """sshd closes unresponsive sessions: ClientAliveInterval and CountMax (sshd -T)"""
    settings: measure.Settings = profile.measure("timeouts")
    config, why = _sshd.effective(obs.run(_sshd.SSHD_T))
    want = {k.lower(): v for k, v in measure.sshd_directives(settings).items()}
    seen = {k: (config or {}).get(k, [why])[0] for k in want}
    evidence.record(expected=want, observed=seen)
    assert config is not None, why
    assert seen == want


@pytest.mark.clause("6-15")
def test_logind_idle_action(obs, profile, evidence):
    """systemd-logind acts on idle sessions (IdleAction, IdleActionSec as logind reads them)"""
    settings: measure.Settings = profile.measure("timeouts")
    if settings.logind_idle_action == "ignore":
        evidence.not_applicable("the profile sets no idle action for this role (ignore)")
    out = obs.run(measure.LOGIND_CONFIG)
    values = measure.parse_logind(out.stdout) if out.rc == 0 else {}
    live = obs.run(measure.LOGIND_LIVE)
    want = measure.logind_values(settings)
    seen = {"IdleAction": values.get("IdleAction", "ignore (default)"),
            "IdleActionSec": values.get("IdleActionSec", "30min (default)")}
    evidence.record(expected=want, observed={**seen, "logind now (applies at its next start)":
                                             live.stdout.split("\n") if live.rc == 0 else "unknown"})
    assert out.rc == 0, f"systemd-analyze cat-config failed: {out.stderr.strip() or out.rc}"
    assert seen["IdleAction"] == want["IdleAction"]
    assert measure.seconds(seen["IdleActionSec"]) == settings.logind_idle_action_sec


@pytest.mark.clause("6-15")
def test_screen_lock(obs, profile, evidence):
    """The desktop locks after the profile's delay and users cannot change it (dconf locks)"""
    settings: measure.Settings = profile.measure("timeouts")
    if obs.run(measure.DCONF_PRESENT).rc != 0:
        evidence.not_applicable("no desktop: dconf is not installed")
    want = measure.dconf_values(settings)
    seen: dict[str, dict[str, str]] = {}
    for path, _value in want.items():
        value = obs.run(measure.dconf_read(path)).stdout.strip()
        writable = obs.run(measure.dconf_writable(path))
        seen[path] = {"value": value,
                      "writable": writable.stdout.strip() if writable.rc == 0 else "unknown"}
    evidence.record(expected={p: {"value": v, "writable": "false"} for p, v in want.items()},
                    observed=seen)
    assert all(seen[p]["value"] == v for p, v in want.items()), "screen lock values differ"
    assert all(s["writable"] == "false" for s in seen.values()), "screen lock keys not locked"
