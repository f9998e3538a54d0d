"""terminal (6-12, 6-13, 6-14): which terminals may process personal data, verified.

SSH groups with ``sshd -T`` (effective after drop-ins and first match) and ``sshd -T -C`` for each
Match line; the host's identity from
the sources the kernel and systemd give (``/etc/machine-id``, the DMI serial, ``ip -j link``)
against the inventory's asset register; where the host is on the network from ``ip -j addr`` and
``ip -j route`` against the profile's expected networks. Every reading comes from the host's
observation batch (hardening.measures.terminal.observe); ``ip -j`` output that is not JSON is an
error, never an empty network.
"""

from __future__ import annotations

from typing import Any

import pytest

from hardening.measures import _sshd
from hardening.measures import terminal as measure


def _register(profile: Any, inventory_host: Any, evidence: Any, field: str) -> str:
    """The register's value for ``field``; not applicable without an inventory (--local) or when
    the profile does not match hosts against the register; not configured when the register
    entry lacks the field (the inventory must fill it)."""
    settings: measure.Settings = profile.measure("terminal")
    if not settings.match_asset_register:
        evidence.not_applicable("the profile does not match hosts against the asset register")
    if inventory_host is None:
        evidence.not_applicable("no inventory entry (verify --local): no asset register to match")
    value = measure.asset_fields(inventory_host.asset, settings).get(field)
    if not value:
        evidence.not_configured(f"inventory: asset.{field} (the asset register entry of this host has "
                                f"no {field}; the profile matches hosts against the register)")
    return str(value)


def _json(obs: Any, command: str) -> list[dict[str, Any]]:
    out = obs.run(command)
    return measure.parse_ip_json(out.rc, out.stdout, command)


@pytest.mark.clause("6-12")
def test_ssh_allow_groups(obs, profile, evidence, request):
    """SSH accepts only the profile's groups (AllowGroups) for the default connection and every
    Match block (sshd -T; sshd -T -C per Match line through the host fixture, only when there are
    Match lines). A narrower non-empty list passes; a wider one, or none (every account), fails"""
    settings: measure.Settings = profile.measure("terminal")
    classes = _sshd.connection_classes(obs, _sshd.host_runner(request))
    observed, failing = _sshd.judge(classes, ["allowgroups"],
                                    lambda c: measure.allow_groups_problem(settings, c.value("allowgroups")))
    evidence.record(expected={"allowgroups": f"within {sorted(settings.ssh_allow_groups)}",
                              "for": "the default and every Match block"}, observed=observed)
    _sshd.conclude(classes, failing)


@pytest.mark.clause("6-12")
def test_sshd_running_current(obs, evidence):
    """The running sshd has read the configuration the checks judge: no configuration file or
    drop-in is newer than its pid file (sshd rewrites it at each start and reload); a change left
    unloaded means the daemon still runs the old settings, whatever sshd -T says"""
    out = obs.run(_sshd.SSHD_LOADED)
    loaded = _sshd.parse_loaded(out.stdout)
    reason = _sshd.reload_reason(loaded)
    evidence.record(expected={"ssh.service": "active", "files newer than its last load": []},
                    observed={"ssh.service": "active" if loaded.active else "not active (no daemon: "
                              "socket activation or stopped)", "main pid": loaded.main_pid,
                              "pid file": loaded.pid_file or "absent", "files newer than its last load":
                              list(loaded.newer), "stale": reason or "no"})
    if not loaded.main_pid and out.rc != 0:
        raise RuntimeError(f"cannot read sshd's state (exit {out.rc}): {out.stdout.strip()} {out.stderr.strip()}")
    assert reason is None, f"the running sshd is stale: {reason} (reload ssh.service)"


@pytest.mark.clause("6-12", "6-13")
def test_asset_machine_id(obs, profile, inventory_host, evidence):
    """The machine-id is the one in the asset register"""
    want = _register(profile, inventory_host, evidence, "machine_id")
    seen = obs.run(measure.MACHINE_ID).stdout.strip().lower()
    evidence.record(expected={"machine_id": want}, observed={"machine_id": seen})
    assert seen == want


@pytest.mark.clause("6-12", "6-13")
def test_asset_serial(obs, profile, inventory_host, evidence):
    """The DMI serial number is the one in the asset register"""
    want = _register(profile, inventory_host, evidence, "serial")
    out = obs.run(measure.DMI_SERIAL)
    seen = out.stdout.strip().lower() if out.rc == 0 else f"unreadable: {out.stderr.strip()}"
    evidence.record(expected={"serial": want}, observed={"serial": seen})
    assert seen == want


@pytest.mark.clause("6-12", "6-13")
def test_asset_mac(obs, profile, inventory_host, evidence):
    """A network interface has the MAC address in the asset register"""
    want = _register(profile, inventory_host, evidence, "mac")
    seen = measure.parse_macs(_json(obs, measure.IP_LINK))
    evidence.record(expected={"mac": want}, observed={"macs": seen})
    assert want in seen


@pytest.mark.clause("6-14")
def test_expected_network(obs, profile, evidence):
    """The host's addresses and default gateways are inside the profile's expected networks"""
    settings: measure.Settings = profile.measure("terminal")
    if not settings.expected_networks:
        evidence.not_configured("hwprofiles: measures.terminal.expected_networks (the networks this "
                                "host may appear on; none listed, so where it is cannot be judged)")
    addresses = measure.parse_addresses(_json(obs, measure.IP_ADDR))
    gateways = measure.parse_gateways([r for command in measure.IP_ROUTES for r in _json(obs, command)])
    judged = [g for g in gateways if not measure.link_local(g)]
    stray = measure.outside(addresses + judged, settings.expected_networks)
    evidence.record(expected={"inside": settings.expected_networks, "outside": []},
                    observed={"addresses": addresses, "default gateways": judged, "outside": stray,
                              "link-local gateways (valid on any link: name no network, not judged)":
                                  [g for g in gateways if g not in judged]})
    assert addresses or judged, "no global address, nor a default gateway that names a network, could be read (ip -j)"
    assert not stray, f"seen outside the expected networks: {stray}"
