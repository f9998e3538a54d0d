"""firewall (6-7): inbound default-deny with the profile's allow-list, read as the kernel has it.

The live ruleset with ``nft -j list ruleset`` (what the kernel enforces now, not the file), each
accept rule of the input chain reduced to protocol, port and source networks and compared with
the profile's allow-list; the boot state with ``systemctl is-enabled nftables.service`` and
``/etc/nftables.conf`` (what the service loads at boot); forwarding with ``sysctl`` (the value
the kernel uses) and the forward chain. Every command is in the measure's observation batch
(``hardening.measures.firewall.observe``); a listing that is not nft's JSON is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from hardening.evidence.plugin import Evidence
from hardening.measures import firewall as measure
from hardening.observe import Observations


def _settings(profile: Any, evidence: Evidence) -> measure.Settings:
    settings: measure.Settings = profile.measure("firewall")
    if not settings.enabled:
        evidence.not_applicable("the profile disables the firewall measure")
    return settings


@dataclass
class _Live:
    """The live ruleset as the checks read it: table inet hardening's chains, or why not."""

    chains: dict[str, measure.Chain]
    why: str = ""
    unreadable: bool = False

    @property
    def chain(self) -> measure.Chain | None:
        """The input chain."""
        return next((c for c in self.chains.values() if c.hook == "input"), None)

    @property
    def forward(self) -> measure.Chain | None:
        return next((c for c in self.chains.values() if c.hook == "forward"), None)

    def require(self) -> measure.Chain:
        """The input chain; an unreadable listing raises (an error, never a pass), a missing one fails."""
        if self.unreadable:
            raise measure.Unreadable(self.why)
        assert self.chain is not None, self.why
        return self.chain


def _live(obs: Observations) -> _Live:
    out = obs.run(measure.NFT_LIST)
    if out.rc != 0:
        return _Live({}, f"{measure.NFT_LIST} failed (exit {out.rc}): {out.stderr.strip()[:200]}")
    try:
        chains = measure.parse_nft_json(measure.read_nft_json(out.stdout))
    except measure.Unreadable as exc:
        return _Live({}, str(exc), unreadable=True)
    live = _Live(chains)
    if live.chain is None:
        live.why = f"no table inet {measure.TABLE} with an input chain in the live ruleset"
    return live


def _describe(chain: measure.Chain) -> list[str]:
    return [f"{a.kind}: {a.proto or '-'}/{a.port or '-'} from {', '.join(a.sources) or 'anywhere'} ({a.text})"
            for a in chain.accepts]


@pytest.mark.clause("6-7")
def test_input_policy_drop(obs, profile, evidence):
    """Inbound traffic is dropped unless a rule accepts it (input chain policy drop, live)"""
    _settings(profile, evidence)
    live = _live(obs)
    evidence.record(expected={"table": f"inet {measure.TABLE}", "input policy": "drop"},
                    observed={"table": f"inet {measure.TABLE}", "input policy": live.chain.policy} if live.chain
                    else {"error": live.why})
    chain = live.require()
    assert chain.policy == "drop", f"input policy is {chain.policy}"


@pytest.mark.clause("6-7")
def test_ssh_management_only(obs, profile, evidence):
    """SSH is accepted only from the management networks (live ruleset)"""
    settings = _settings(profile, evidence)
    ssh = measure.inbound_services(settings)[0]
    live = _live(obs)
    rules = [a for a in (live.chain.accepts if live.chain else []) if (a.proto, a.port) == (ssh.proto, ssh.port)]
    seen = [{"sources": list(a.sources) or "anywhere", "rule": a.text} for a in rules]
    evidence.record(expected={"tcp port": ssh.port, "sources": list(ssh.sources)},
                    observed={"rules": seen} if live.chain else {"error": live.why})
    chain = live.require()
    wider = [a for a in rules if not measure.covered_by(a, ssh)]
    assert not wider, "SSH accepted beyond the management networks: " + "; ".join(
        ", ".join(a.sources) or "anywhere" for a in wider)
    assert measure.service_present(chain, ssh), "no rule accepts SSH from the management networks"


@pytest.mark.clause("6-7")
def test_allow_rules_present(obs, profile, evidence):
    """Each service the profile allows is accepted from its sources (live ruleset)"""
    settings = _settings(profile, evidence)
    services = measure.inbound_services(settings)[1:]
    if not services:
        evidence.not_applicable("the profile allows no inbound service besides SSH")
    live = _live(obs)
    seen = {s.name: (measure.service_present(live.chain, s) if live.chain else live.why) for s in services}
    evidence.record(expected={s.name: s.describe() for s in services}, observed=seen)
    live.require()
    missing = [s.name for s in services if seen[s.name] is not True]
    assert not missing, f"not accepted: {', '.join(missing)}"


@pytest.mark.clause("6-7")
def test_nothing_else_accepted(obs, profile, evidence):
    """Nothing is accepted inbound beyond the allow-list and the essentials (live ruleset)"""
    settings = _settings(profile, evidence)
    live = _live(obs)
    extra = measure.unexpected_accepts(live.chain, settings) if live.chain else []
    evidence.record(
        expected={"essentials": "established/related, loopback, ICMP errors, ping, neighbour discovery",
                  "services": [s.describe() for s in measure.inbound_services(settings)],
                  "unexpected": []},
        observed={"accepts": _describe(live.chain), "unexpected": extra} if live.chain else {"error": live.why},
    )
    chain = live.require()
    assert chain.policy == "drop", f"input policy is {chain.policy}: everything is accepted"
    assert not extra, "accepted beyond the allow-list: " + "; ".join(extra)


@pytest.mark.clause("6-7")
def test_nftables_enabled(obs, profile, evidence):
    """The ruleset survives a reboot: nftables.service enabled, /etc/nftables.conf is the profile's"""
    settings = _settings(profile, evidence)
    enabled = obs.run(measure.NFTABLES_ENABLED)
    active = obs.run(measure.NFTABLES_ACTIVE)
    conf = obs.run(measure.NFTABLES_CONF_TEXT)
    want = measure.ruleset(settings, profile.role)
    same = conf.rc == 0 and conf.stdout == want
    state = enabled.stdout.strip() or enabled.stderr.strip()[:200] or f"exit {enabled.rc}"
    evidence.record(
        expected={"nftables.service": "enabled", measure.NFTABLES_CONF: "the profile's ruleset"},
        observed={"nftables.service": state,
                  measure.NFTABLES_CONF: "the profile's ruleset" if same
                  else ("absent" if conf.rc != 0 else "differs (an unconfirmed or older ruleset)"),
                  "nftables.service now (not judged)": active.stdout.strip() or f"exit {active.rc}"},
    )
    assert state == "enabled", f"nftables.service is {state}"
    assert same, f"{measure.NFTABLES_CONF} is not the profile's ruleset"


@pytest.mark.clause("6-7")
def test_forwarding_off(obs, profile, evidence):
    """The host does not route: ip_forward 0 (sysctl) and the forward chain drops"""
    settings = _settings(profile, evidence)
    if measure.forwarding_allowed(settings, profile.role):
        evidence.not_applicable("the profile allows forwarding on this role")
    seen: dict[str, Any] = {}
    for key in measure.FORWARD_SYSCTLS:
        out = obs.run(measure.sysctl_read(key))
        seen[key] = out.stdout.strip() if out.rc == 0 else f"(exit {out.rc}) {out.stderr.strip()[:100]}"
    live = _live(obs)
    seen["forward chain policy"] = live.forward.policy if live.forward else (live.why or "no forward chain")
    want = {**measure.FORWARD_SYSCTLS, "forward chain policy": "drop"}
    evidence.record(expected=want, observed=seen)
    if live.unreadable:
        raise measure.Unreadable(live.why)
    differ = [k for k in want if seen[k] != want[k]]
    assert not differ, "differs: " + ", ".join(f"{k}={seen[k]}" for k in differ)
