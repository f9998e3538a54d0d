"""firewall (6-7): inbound default-deny with the profile's allow-list, read as the kernel has it.

The live ruleset with ``nft -j list ruleset`` (what the kernel enforces now, not the file), read
whole against libnftables-json(5): every accept reachable from a base chain hooked at input, in
ANY table (through jump, goto and verdict maps), reduced to protocol, port and source networks
and compared with the profile's allow-list; every statement or key the judgement does not model
counts as unexpected. A packet gets in only if every input chain accepts it, so another table's
accept cannot undo this tool's drop, while a queue, helper or tproxy anywhere can.

The boot state: ``nftables.service`` enabled, active and loading ``/etc/nftables.conf``, and that
file loaded into an empty network namespace (``unshare --net``) compared with the live table;
forwarding both at runtime (``sysctl``) and as systemd-sysctl would set it at boot
(``systemd-analyze cat-config sysctl.d``). Where runtime and boot configuration differ, the
check fails and says which one is stale. Every command is in the measure's observation batch
(``hardening.measures.firewall.observe``); output that is not what the command prints is an error.
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
    """The live ruleset as the checks read it: the listing and its judgement, or why not."""

    document: dict[str, Any] | None
    inbound: measure.Inbound | None
    why: str = ""
    unreadable: bool = False

    @property
    def chain(self) -> measure.Chain | None:
        """This tool's input chain (table inet hardening), walked."""
        return self.inbound.ours if self.inbound else None

    @property
    def forward(self) -> measure.Chain | None:
        return measure.parse_nft_json(self.document).get("forward") if self.document else None

    def require(self) -> measure.Chain:
        """The input chain; an unreadable listing raises (an error, never a pass), a missing one fails."""
        if self.unreadable:
            raise measure.Unreadable(self.why)
        if self.chain is None:
            raise AssertionError(self.why)  # a failed check, told plainly
        return self.chain


def _live(obs: Observations, settings: measure.Settings, role: str) -> _Live:
    out = obs.run(measure.NFT_LIST)
    if out.rc != 0:
        return _Live(None, None, f"{measure.NFT_LIST} failed (exit {out.rc}): {out.stderr.strip()[:200]}")
    try:
        document = measure.read_nft_json(out.stdout)
    except measure.Unreadable as exc:
        return _Live(None, None, str(exc), unreadable=True)
    live = _Live(document, measure.judge_inbound(document, settings, role))
    if live.chain is None:
        live.why = f"no table inet {measure.TABLE} with an input chain in the live ruleset"
    return live


def _describe(chain: measure.Chain) -> list[str]:
    return [f"{a.kind}: {a.describe()}" for a in chain.accepts]


def _reaches(accept: measure.Accept, proto: str, port: int) -> bool:
    return (accept.kind != "essential" and (accept.protos is None or proto in accept.protos)
            and (accept.ports is None or port in accept.ports))


@pytest.mark.clause("6-7")
def test_input_policy_drop(obs, profile, evidence):
    """Inbound traffic is dropped unless a rule accepts it (input chain policy drop, live)"""
    live = _live(obs, _settings(profile, evidence), profile.role)
    evidence.record(expected={"table": f"inet {measure.TABLE}", "input policy": "drop"},
                    observed={"table": f"inet {measure.TABLE}", "input policy": live.chain.policy} if live.chain
                    else {"error": live.why})
    chain = live.require()
    assert chain.policy == "drop", f"input policy is {chain.policy}"


@pytest.mark.clause("6-7")
def test_ssh_management_only(obs, profile, evidence):
    """SSH is accepted only from the management networks (live ruleset, every path to an accept)"""
    settings = _settings(profile, evidence)
    ssh = measure.inbound_services(settings)[0]
    live = _live(obs, settings, profile.role)
    rules = [a for a in (live.chain.accepts if live.chain else []) if _reaches(a, ssh.proto, ssh.port)]
    wider = [a for a in rules if not measure.allowed(
        measure.Accept(a.text, frozenset({ssh.proto}), frozenset({ssh.port}), a.sources), [ssh])]
    evidence.record(expected={"tcp port": ssh.port, "sources": list(ssh.sources)},
                    observed={"rules": [a.describe() for a in rules]} if live.chain else {"error": live.why})
    chain = live.require()
    assert not wider, "SSH accepted beyond the management networks: " + "; ".join(a.describe() for a in wider)
    assert measure.service_present(chain, ssh), "no rule accepts SSH from the management networks"


@pytest.mark.clause("6-7")
def test_allow_rules_present(obs, profile, evidence):
    """Each service the profile allows is accepted from its sources (live ruleset)"""
    settings = _settings(profile, evidence)
    services = measure.inbound_services(settings)[1:]
    if not services:
        evidence.not_applicable("the profile allows no inbound service besides SSH")
    live = _live(obs, settings, profile.role)
    seen = {s.name: (measure.service_present(live.chain, s) if live.chain else live.why) for s in services}
    evidence.record(expected={s.name: s.describe() for s in services}, observed=seen)
    live.require()
    missing = [s.name for s in services if seen[s.name] is not True]
    assert not missing, f"not accepted: {', '.join(missing)}"


@pytest.mark.clause("6-7")
def test_nothing_else_accepted(obs, profile, evidence):
    """Nothing is accepted inbound beyond the allow-list and the essentials, over every table's
    input chains (live ruleset); what the check cannot model counts as accepted"""
    settings = _settings(profile, evidence)
    live = _live(obs, settings, profile.role)
    inbound = live.inbound
    evidence.record(
        expected={"essentials": "established/related, loopback, ICMP errors, ping, neighbour discovery",
                  "services": [s.describe() for s in measure.inbound_services(settings)],
                  "unexpected": []},
        observed={"input chains": {str(c.ref): {"prio": c.prio, "policy": c.policy, "accepts": _describe(c)}
                                   for c in inbound.chains},
                  "unexpected": inbound.unexpected, "notes": inbound.notes} if inbound else {"error": live.why},
    )
    if live.unreadable or inbound is None:
        live.require()
    assert inbound is not None
    assert not inbound.unexpected, "accepted beyond the allow-list: " + "; ".join(inbound.unexpected)


@pytest.mark.clause("6-7")
def test_nftables_enabled(obs, profile, evidence):
    """The ruleset is loaded at boot: nftables.service enabled, active, and loading /etc/nftables.conf"""
    _settings(profile, evidence)
    enabled, active = obs.run(measure.NFTABLES_ENABLED), obs.run(measure.NFTABLES_ACTIVE)
    problem = measure.exec_start_problem(obs.run(measure.NFTABLES_EXEC))
    state = enabled.stdout.strip() or enabled.stderr.strip()[:200] or f"exit {enabled.rc}"
    running = active.stdout.strip() or active.stderr.strip()[:200] or f"exit {active.rc}"
    evidence.record(
        expected={"nftables.service": "enabled", "now": "active", "loads": measure.NFTABLES_CONF},
        observed={"nftables.service": state, "now": running, "loads": problem or measure.NFTABLES_CONF},
    )
    assert state == "enabled", f"nftables.service is {state}: the ruleset is not loaded at boot"
    assert running == "active", f"nftables.service is {running}"
    assert problem is None, problem


@pytest.mark.clause("6-7")
def test_boot_ruleset_current(obs, profile, evidence):
    """/etc/nftables.conf is the profile's ruleset and loads exactly the live table (else: which is stale)"""
    settings = _settings(profile, evidence)
    live = _live(obs, settings, profile.role)
    conf = obs.run(measure.NFTABLES_CONF_TEXT)
    boot = measure.boot_listing(obs.run(measure.NFT_BOOT))
    document = live.document
    problems = measure.stale(conf, document, boot, settings, profile.role) if document is not None else []
    evidence.record(
        expected={measure.NFTABLES_CONF: "the profile's ruleset", "live table": "the table the file loads"},
        observed={"problems": problems} if document is not None else {"error": live.why},
    )
    if live.unreadable:
        raise measure.Unreadable(live.why)
    assert document is not None, live.why
    assert not problems, "; ".join(problems)


def _forwarding(obs: Observations, profile: Any, evidence: Evidence) -> measure.Settings:
    settings = _settings(profile, evidence)
    if measure.forwarding_allowed(settings, profile.role):
        evidence.not_applicable("the profile allows forwarding on this role")
    return settings


@pytest.mark.clause("6-7")
def test_forwarding_off(obs, profile, evidence):
    """The host does not route now: ip_forward 0 (the kernel's value) and the forward chain drops"""
    settings = _forwarding(obs, profile, evidence)
    seen: dict[str, Any] = {}
    for key in measure.FORWARD_SYSCTLS:
        out = obs.run(measure.sysctl_read(key))
        seen[key] = out.stdout.strip() if out.rc == 0 else f"(exit {out.rc}) {out.stderr.strip()[:100]}"
    live = _live(obs, settings, profile.role)
    seen["forward chain policy"] = live.forward.policy if live.forward else (live.why or "no forward chain")
    want = {**measure.FORWARD_SYSCTLS, "forward chain policy": "drop"}
    evidence.record(expected=want, observed=seen)
    if live.unreadable:
        raise measure.Unreadable(live.why)
    differ = [k for k in want if seen[k] != want[k]]
    assert not differ, "differs: " + ", ".join(f"{k}={seen[k]}" for k in differ)


@pytest.mark.clause("6-7")
def test_forwarding_off_at_boot(obs, profile, evidence):
    """The host would not route after a reboot: what systemd-sysctl sets from sysctl.d is 0, as the runtime"""
    settings = _forwarding(obs, profile, evidence)
    config = obs.run(measure.SYSCTL_CONFIG)
    if config.rc != 0 or not config.stdout.strip():
        raise measure.Unreadable(f"{measure.SYSCTL_CONFIG} failed (exit {config.rc}): {config.stderr[:300]!r}")
    assignments = measure.sysctl_assignments(config.stdout)
    seen: dict[str, Any] = {}
    problems = []
    for key, want in measure.FORWARD_SYSCTLS.items():
        boot = measure.persisted(assignments, key)
        runtime = measure.sysctl_value(obs.run(measure.sysctl_read(key)))
        seen[key] = {"at boot": f"{boot.value} ({boot.where})" if boot else "not set (kernel default 0)",
                     "now": runtime}
        if boot is not None and boot.value != want:
            stale = "the boot configuration is stale" if runtime == want else "runtime and boot both differ"
            problems.append(f"{key} = {boot.value} at boot ({boot.where}), {runtime} now: {stale}")
    lines = measure.forwarding_persist_repairs(assignments, settings, profile.role)
    seen["other lines switching it on"] = [f"{a.key} = {a.value} ({a.where})" for a in lines]
    evidence.record(expected={k: {"at boot": v} for k, v in measure.FORWARD_SYSCTLS.items()}, observed=seen)
    assert not problems, "; ".join(problems)
