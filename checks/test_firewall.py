"""firewall (6-7): inbound default-deny with the profile's allow-list, read as the kernel has it.

The live ruleset with ``nft -j list ruleset`` (what the kernel enforces now, not the file), each
accept rule of the input chain reduced to protocol, port and source networks and compared with
the profile's allow-list; the boot state with ``systemctl is-enabled nftables.service`` and
``/etc/nftables.conf`` (what the service loads at boot); forwarding with ``sysctl`` (the value
the kernel uses) and the forward chain.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hardening.evidence.plugin import Evidence
from hardening.measures import firewall as measure

NFT_LIST = "nft -j list ruleset"


def _settings(profile: Any, evidence: Evidence) -> measure.Settings:
    settings: measure.Settings = profile.measure("firewall")
    if not settings.enabled:
        evidence.not_applicable("the profile disables the firewall measure")
    return settings


def _input_chain(host: Any) -> tuple[measure.Chain | None, dict[str, measure.Chain], str]:
    """The input chain of table inet hardening, all its chains, and why it is missing."""
    out = host.run(NFT_LIST)
    if out.rc != 0:
        return None, {}, f"{NFT_LIST} failed (exit {out.rc}): {out.stderr.strip()[:200]}"
    try:
        chains = measure.parse_nft_json(json.loads(out.stdout))
    except ValueError as exc:
        return None, {}, f"{NFT_LIST}: unreadable JSON ({exc})"
    chain = next((c for c in chains.values() if c.hook == "input"), None)
    why = "" if chain else f"no table inet {measure.TABLE} with an input chain in the live ruleset"
    return chain, chains, why


def _describe(chain: measure.Chain) -> list[str]:
    return [f"{a.kind}: {a.proto or '-'}/{a.port or '-'} from {', '.join(a.sources) or 'anywhere'} ({a.text})"
            for a in chain.accepts]


@pytest.mark.clause("6-7")
def test_input_policy_drop(host, profile, evidence):
    """Inbound traffic is dropped unless a rule accepts it (input chain policy drop, live)"""
    _settings(profile, evidence)
    chain, _, why = _input_chain(host)
    evidence.record(expected={"table": f"inet {measure.TABLE}", "input policy": "drop"},
                    observed={"table": f"inet {measure.TABLE}", "input policy": chain.policy} if chain
                    else {"error": why})
    assert chain is not None, why
    assert chain.policy == "drop", f"input policy is {chain.policy}"


@pytest.mark.clause("6-7")
def test_ssh_management_only(host, profile, evidence):
    """SSH is accepted only from the management networks (live ruleset)"""
    settings = _settings(profile, evidence)
    ssh = measure.inbound_services(settings)[0]
    chain, _, why = _input_chain(host)
    rules = [a for a in (chain.accepts if chain else []) if (a.proto, a.port) == (ssh.proto, ssh.port)]
    seen = [{"sources": list(a.sources) or "anywhere", "rule": a.text} for a in rules]
    evidence.record(expected={"tcp port": ssh.port, "sources": list(ssh.sources)},
                    observed={"rules": seen} if chain else {"error": why})
    assert chain is not None, why
    wider = [a for a in rules if not measure.covered_by(a, ssh)]
    assert not wider, "SSH accepted beyond the management networks: " + "; ".join(
        ", ".join(a.sources) or "anywhere" for a in wider)
    assert measure.service_present(chain, ssh), "no rule accepts SSH from the management networks"


@pytest.mark.clause("6-7")
def test_allow_rules_present(host, profile, evidence):
    """Each service the profile allows is accepted from its sources (live ruleset)"""
    settings = _settings(profile, evidence)
    services = measure.inbound_services(settings)[1:]
    if not services:
        evidence.not_applicable("the profile allows no inbound service besides SSH")
    chain, _, why = _input_chain(host)
    seen = {s.name: (measure.service_present(chain, s) if chain else why) for s in services}
    evidence.record(expected={s.name: s.describe() for s in services}, observed=seen)
    assert chain is not None, why
    missing = [s.name for s in services if seen[s.name] is not True]
    assert not missing, f"not accepted: {', '.join(missing)}"


@pytest.mark.clause("6-7")
def test_nothing_else_accepted(host, profile, evidence):
    """Nothing is accepted inbound beyond the allow-list and the essentials (live ruleset)"""
    settings = _settings(profile, evidence)
    chain, _, why = _input_chain(host)
    extra = measure.unexpected_accepts(chain, settings) if chain else []
    evidence.record(
        expected={"essentials": "established/related, loopback, ICMP errors, ping, neighbour discovery",
                  "services": [s.describe() for s in measure.inbound_services(settings)],
                  "unexpected": []},
        observed={"accepts": _describe(chain), "unexpected": extra} if chain else {"error": why},
    )
    assert chain is not None, why
    assert chain.policy == "drop", f"input policy is {chain.policy}: everything is accepted"
    assert not extra, "accepted beyond the allow-list: " + "; ".join(extra)


@pytest.mark.clause("6-7")
def test_nftables_enabled(host, profile, evidence):
    """The ruleset survives a reboot: nftables.service enabled, /etc/nftables.conf is the profile's"""
    settings = _settings(profile, evidence)
    enabled = host.run("systemctl is-enabled nftables.service")
    conf = host.file(measure.NFTABLES_CONF)
    want = measure.ruleset(settings, profile.role)
    same = conf.exists and conf.content_string == want
    state = enabled.stdout.strip() or enabled.stderr.strip()[:200] or f"exit {enabled.rc}"
    evidence.record(
        expected={"nftables.service": "enabled", measure.NFTABLES_CONF: "the profile's ruleset"},
        observed={"nftables.service": state,
                  measure.NFTABLES_CONF: "the profile's ruleset" if same
                  else ("absent" if not conf.exists else "differs (an unconfirmed or older ruleset)")},
    )
    assert state == "enabled", f"nftables.service is {state}"
    assert same, f"{measure.NFTABLES_CONF} is not the profile's ruleset"


@pytest.mark.clause("6-7")
def test_forwarding_off(host, profile, evidence):
    """The host does not route: ip_forward 0 (sysctl) and the forward chain drops"""
    settings = _settings(profile, evidence)
    if measure.forwarding_allowed(settings, profile.role):
        evidence.not_applicable("the profile allows forwarding on this role")
    seen: dict[str, Any] = {}
    for key in measure.FORWARD_SYSCTLS:
        out = host.run("sysctl -n %s", key)
        seen[key] = out.stdout.strip() if out.rc == 0 else f"(exit {out.rc}) {out.stderr.strip()[:100]}"
    _, chains, why = _input_chain(host)
    forward = next((c for c in chains.values() if c.hook == "forward"), None)
    seen["forward chain policy"] = forward.policy if forward else (why or "no forward chain")
    want = {**measure.FORWARD_SYSCTLS, "forward chain policy": "drop"}
    evidence.record(expected=want, observed=seen)
    differ = [k for k in want if seen[k] != want[k]]
    assert not differ, "differs: " + ", ".join(f"{k}={seen[k]}" for k in differ)
