"""firewall (6-7): default-deny inbound with the profile's allow-list, forwarding off on terminals.

The desired ruleset is one nftables table, ``inet hardening``, that the tool owns whole:

- ``input``: policy drop; accept ``ct state established,related``, drop ``ct state invalid``,
  accept loopback, the ICMP/ICMPv6 essentials (errors, path MTU, neighbour discovery, ping), SSH
  (``ssh_port``) only from ``management_networks``, and each ``allow`` rule;
- ``forward``: policy drop unless forwarding is allowed (never on a terminal);
- ``output``: policy accept.

File layout (the choice, and why): the ruleset is written as a whole to ``/etc/nftables.conf``,
the file Debian's ``nftables.service`` loads at boot (the tool enables the service). It replaces
only its own table (``table inet hardening`` / ``delete table inet hardening`` / the table,
in one transaction) and does not ``flush ruleset``, so loading it live or reloading the service
leaves other tools' tables (containers, fail2ban) alone; their ``accept`` cannot open what
this table drops, because a packet must pass every base chain of the hook. The file is written
only when the change is confirmed: until then the new ruleset is live but a reboot loads the
previous file (see deploys/_rollback.py for the confirmation protocol).

Examples::

    >>> s = Settings(management_networks=["10.1.0.0/16"])
    >>> [f"{x.proto}/{x.port}" for x in inbound_services(s)]
    ['tcp/22']
    >>> "policy drop" in ruleset(s)
    True
    >>> confirm_command()
    'sudo -n /usr/local/sbin/hardening-confirm'
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hardening.measures._base import Measure, Strict, check_cidrs
from hardening.observe import Observation, quote

TABLE = "hardening"
NFTABLES_CONF = "/etc/nftables.conf"
SYSCTL_CONF = "/etc/sysctl.d/90-hardening-firewall.conf"
# The lockout-safe change protocol (deploys/_rollback.py); paths on the target host.
CONFIRM_PATH = "/usr/local/sbin/hardening-confirm"
PENDING_DIR = "/run/hardening/pending"
HEADER = "# Managed by hardening (measure firewall, clause 6-7). Do not edit: changes are overwritten.\n"

ICMP_TYPES = ("echo-request", "destination-unreachable", "time-exceeded", "parameter-problem")
ICMPV6_TYPES = (
    "echo-request", "destination-unreachable", "packet-too-big", "time-exceeded",
    "parameter-problem", "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert",
    "mld-listener-query",
)
FORWARD_SYSCTLS = {"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0"}


class Rule(Strict):
    # Becomes an nftables comment: plain ASCII, short.
    name: str = Field(pattern=r"^[A-Za-z0-9 _.,:/()+-]{1,64}$")
    proto: Literal["tcp", "udp"] = "tcp"
    port: int = Field(ge=1, le=65535)
    # Empty means from anywhere; "management" stands for the profile's management networks.
    sources: list[str] = Field(default_factory=list)

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        return [v if v == "management" else str(ipaddress.ip_network(v, strict=False)) for v in value]


class Settings(Strict):
    enabled: bool = True
    input_policy: Literal["drop"] = "drop"
    # SSH only from the management network. These are the private ranges: narrow them in the
    # agency's profile to the real management network.
    management_networks: list[str] = Field(
        default_factory=lambda: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"])
    ssh_port: int = Field(default=22, ge=1, le=65535)
    allow: list[Rule] = Field(default_factory=list)
    forwarding: bool = False
    # Seconds between the ruleset going live and the automatic rollback unless the deploy runner
    # reconnects and confirms: covers the rest of the run on every host plus the reconnection.
    confirm_timeout: int = Field(default=120, ge=5, le=3600)

    @field_validator("management_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return check_cidrs(value)

    @model_validator(mode="after")
    def _ssh_reachable(self) -> Settings:
        if self.enabled and not self.management_networks:
            raise ValueError("management_networks is empty: SSH would be closed to everyone")
        return self


@dataclass(frozen=True)
class Service:
    """One inbound accept: protocol, port and the source networks (``()`` = from anywhere)."""

    name: str
    proto: str
    port: int
    sources: tuple[str, ...] = ()

    def describe(self) -> str:
        """``tcp/22 from 10.0.0.0/8`` or ``tcp/443 from anywhere``"""
        where = ", ".join(self.sources) if self.sources else "anywhere"
        return f"{self.proto}/{self.port} from {where}"


def confirm_command() -> str:
    """The command the deploy runner runs over a NEW ssh connection after pyinfra has finished,
    on each host where ``/run/hardening/pending/`` is not empty (see deploys/_rollback.py)."""
    return f"sudo -n {CONFIRM_PATH}"


def _networks(values: list[str] | tuple[str, ...]) -> list[str]:
    nets = [ipaddress.ip_network(v, strict=False) for v in values]
    return [str(n) for n in sorted(set(nets), key=lambda n: (n.version, n))]


def inbound_services(settings: Settings) -> list[Service]:
    """Everything accepted inbound besides the essentials: SSH first, then the allow rules.

    >>> s = Settings(management_networks=["10.0.0.0/8"],
    ...              allow=[Rule(name="web", port=443), Rule(name="nrpe", port=5666, sources=["management"])])
    >>> [x.describe() for x in inbound_services(s)]
    ['tcp/22 from 10.0.0.0/8', 'tcp/443 from anywhere', 'tcp/5666 from 10.0.0.0/8']
    """
    services = [Service("ssh", "tcp", settings.ssh_port, tuple(_networks(settings.management_networks)))]
    for rule in settings.allow:
        sources: list[str] = []
        for src in rule.sources:
            sources += settings.management_networks if src == "management" else [src]
        services.append(Service(rule.name, rule.proto, rule.port, tuple(_networks(sources))))
    return services


def forwarding_allowed(settings: Settings, role: str) -> bool:
    """Forwarding is never allowed on a terminal, elsewhere only if the profile says so."""
    return settings.forwarding and role != "terminal"


def _service_rules(service: Service) -> list[str]:
    match = f"{service.proto} dport {service.port}"
    comment = f'comment "{service.name}"'
    if not service.sources:
        return [f"{match} accept {comment}"]
    rules = []
    for family, version in (("ip", 4), ("ip6", 6)):
        nets = [n for n in service.sources if ipaddress.ip_network(n).version == version]
        if nets:
            rules.append(f"{family} saddr {{ {', '.join(nets)} }} {match} accept {comment}")
    return rules


def input_rules(settings: Settings) -> list[str]:
    """The rules of the input chain, in order."""
    rules = [
        "ct state established,related accept",
        "ct state invalid drop",
        'iif "lo" accept',
        f"icmp type {{ {', '.join(ICMP_TYPES)} }} accept",
        f"icmpv6 type {{ {', '.join(ICMPV6_TYPES)} }} accept",
    ]
    for service in inbound_services(settings):
        rules += _service_rules(service)
    return rules


def ruleset(settings: Settings, role: str = "server") -> str:
    """The whole nftables file: /etc/nftables.conf, loaded with ``nft -f`` (validate: ``nft -c -f``).

    >>> print(ruleset(Settings(management_networks=["10.0.0.0/8"]), "terminal").splitlines()[2])
    table inet hardening
    """
    forward = "accept" if forwarding_allowed(settings, role) else "drop"
    body = "".join(f"\t\t{rule}\n" for rule in input_rules(settings))
    return (
        "#!/usr/sbin/nft -f\n" + HEADER
        + f"table inet {TABLE}\ndelete table inet {TABLE}\n"
        + f"table inet {TABLE} {{\n"
        + "\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n"
        + body + "\t}\n"
        + f"\tchain forward {{\n\t\ttype filter hook forward priority filter; policy {forward};\n\t}}\n"
        + "\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t}\n"
        + "}\n"
    )


def sysctl_conf(settings: Settings, role: str) -> str:
    """/etc/sysctl.d/90-hardening-firewall.conf, or "" when forwarding is allowed (no file)."""
    if forwarding_allowed(settings, role):
        return ""
    return HEADER + "".join(f"{key} = {value}\n" for key, value in FORWARD_SYSCTLS.items())


# -- reading the ruleset as the kernel has it (nft -j list ruleset) -------------------------------

@dataclass
class Accept:
    """An accept rule of the input chain, reduced to what it lets in."""

    text: str
    proto: str | None = None
    port: int | None = None
    sources: tuple[str, ...] = ()
    kind: str = "service"  # service | essential | unknown
    notes: list[str] = field(default_factory=list)


@dataclass
class Chain:
    name: str
    hook: str | None
    policy: str | None
    accepts: list[Accept] = field(default_factory=list)
    jumps: list[str] = field(default_factory=list)


def parse_nft_json(document: dict[str, Any], table: str = TABLE, family: str = "inet") -> dict[str, Chain]:
    """The chains of one table from ``nft -j list ruleset``, each with its accept rules."""
    chains: dict[str, Chain] = {}
    for item in document.get("nftables", []):
        chain = item.get("chain")
        if chain and chain.get("table") == table and chain.get("family") == family:
            chains[chain["name"]] = Chain(chain["name"], chain.get("hook"), chain.get("policy"))
    for item in document.get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("table") != table or rule.get("family") != family:
            continue
        target = chains.get(rule.get("chain", ""))
        if target is not None:
            label = f"handle {rule.get('handle')}" + (f" \"{rule['comment']}\"" if rule.get("comment") else "")
            _add_rule(target, rule.get("expr", []), label)
    return chains


def _add_rule(chain: Chain, exprs: list[dict[str, Any]], label: str) -> None:
    verdicts = [key for e in exprs for key in e if key in ("accept", "jump", "goto")]
    if not verdicts:
        return
    if verdicts[0] in ("jump", "goto"):
        chain.jumps.append(f"{label}: {verdicts[0]} {json.dumps(exprs)[:200]}")
        return
    accept = Accept(text=label)
    for expr in exprs:
        if "match" in expr:
            _apply_match(accept, expr["match"])
        elif not ({"accept", "counter", "log", "limit"} & set(expr)):
            accept.kind, accept.notes = "unknown", [*accept.notes, f"statement {sorted(expr)}"]
    if accept.kind == "service" and accept.port is None:
        accept.kind = "unknown"
    chain.accepts.append(accept)


def _values(right: Any) -> list[Any]:
    if isinstance(right, dict) and "set" in right:
        return list(right["set"])
    return list(right) if isinstance(right, list) else [right]


def _network(value: Any) -> list[str]:
    if isinstance(value, dict) and "prefix" in value:
        return [f"{value['prefix']['addr']}/{value['prefix']['len']}"]
    if isinstance(value, dict) and "range" in value:
        low, high = (ipaddress.ip_address(v) for v in value["range"])
        return [str(n) for n in ipaddress.summarize_address_range(low, high)]
    return [str(ipaddress.ip_network(str(value), strict=False))]


def _port(value: Any, proto: str) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    return socket.getservbyname(str(value), proto)


def _essential(left: Any, values: list[Any]) -> bool:
    """ct state established/related, loopback, and the ICMP/ICMPv6 essentials."""
    if not isinstance(left, dict):
        return False
    payload, meta, ct = left.get("payload", {}), left.get("meta", {}), left.get("ct", {})
    icmp = {"icmp": ICMP_TYPES, "icmpv6": ICMPV6_TYPES}.get(payload.get("protocol", ""), ())
    return bool(
        (ct.get("key") == "state" and set(values) <= {"established", "related"})
        or (meta.get("key") in ("iif", "iifname") and values == ["lo"])
        or (payload.get("field") == "type" and icmp and set(values) <= set(icmp))
    )


def _apply_match(accept: Accept, match: dict[str, Any]) -> None:
    left, right, op = match.get("left", {}), match.get("right"), match.get("op", "==")
    payload = left.get("payload", {}) if isinstance(left, dict) else {}
    meta = left.get("meta", {}) if isinstance(left, dict) else {}
    values = _values(right)
    if op not in ("==", "in"):
        accept.kind, accept.notes = "unknown", [*accept.notes, f"operator {op}"]
    elif payload.get("field") == "dport" and payload.get("protocol") in ("tcp", "udp"):
        accept.proto = payload["protocol"]
        ports = [_port(v, payload["protocol"]) for v in values]
        accept.port = ports[0] if len(ports) == 1 else None
        if len(ports) != 1:
            accept.notes.append(f"ports {ports}")
    elif payload.get("field") == "saddr" and payload.get("protocol") in ("ip", "ip6"):
        accept.sources = tuple(n for v in values for n in _network(v))
    elif _essential(left, values):
        accept.kind = "essential"
    elif meta.get("key") in ("l4proto", "nfproto") or payload.get("field") in ("protocol", "nexthdr"):
        pass  # protocol dependency, e.g. meta l4proto tcp
    else:
        accept.kind, accept.notes = "unknown", [*accept.notes, f"match {left} {op} {right}"]


def covered_by(accept: Accept, service: Service) -> bool:
    """Whether an accept rule lets in no more than the service allows."""
    if accept.kind != "service" or (accept.proto, accept.port) != (service.proto, service.port):
        return False
    if not service.sources:
        return True
    if not accept.sources:
        return False
    allowed = [ipaddress.ip_network(s) for s in service.sources]
    return all(any(_subnet(ipaddress.ip_network(src), a) for a in allowed) for src in accept.sources)


def _subnet(net: Any, of: Any) -> bool:
    return bool(net.version == of.version and net.subnet_of(of))


def unexpected_accepts(chain: Chain, settings: Settings) -> list[str]:
    """Accept rules (and jumps) of the input chain that the allow-list does not account for."""
    services = inbound_services(settings)
    extra = [f"jump/goto: {j}" for j in chain.jumps]
    for accept in chain.accepts:
        if accept.kind == "essential":
            continue
        if not any(covered_by(accept, s) for s in services):
            where = ", ".join(accept.sources) or "anywhere"
            extra.append(f"{accept.proto}/{accept.port} from {where} ({accept.text}) {' '.join(accept.notes)}".strip())
    return extra


def live_problems(document: dict[str, Any], settings: Settings, role: str) -> list[str]:
    """Differences between ``nft -j list ruleset`` and the desired ruleset ([] = as desired).

    >>> live_problems({"nftables": []}, Settings(), "terminal")
    ['no input chain in table inet hardening']
    """
    chains = parse_nft_json(document)
    chain = next((c for c in chains.values() if c.hook == "input"), None)
    if chain is None:
        return [f"no input chain in table inet {TABLE}"]
    problems = [] if chain.policy == "drop" else [f"input policy {chain.policy}"]
    problems += [f"missing {s.name}: {s.describe()}" for s in inbound_services(settings)
                 if not service_present(chain, s)]
    problems += [f"unexpected accept: {x}" for x in unexpected_accepts(chain, settings)]
    forward = next((c for c in chains.values() if c.hook == "forward"), None)
    want = "accept" if forwarding_allowed(settings, role) else "drop"
    if forward is None or forward.policy != want:
        problems.append(f"forward policy {forward.policy if forward else 'missing'}, want {want}")
    return problems


def service_present(chain: Chain, service: Service) -> bool:
    """Whether the input chain accepts the service from all of its sources (or from anywhere)."""
    rules = [a for a in chain.accepts if covered_by(a, service)]
    if not service.sources:
        return any(not a.sources for a in rules)
    seen = {s for a in rules for s in a.sources}
    return set(service.sources) <= seen


# -- what the checks and the deploy observe (one batch per host, hardening.observe) ----------------

NFT_PRESENT = "command -v nft"
NFT_LIST = "nft -j list ruleset"
NFTABLES_CONF_TEXT = quote("cat %s", NFTABLES_CONF)
NFTABLES_ENABLED = "systemctl is-enabled nftables.service"
NFTABLES_ACTIVE = "systemctl is-active nftables.service"


def sysctl_read(key: str) -> str:
    """The command that prints a sysctl's runtime value."""
    return quote("sysctl -n %s", key)


class Unreadable(ValueError):
    """Output the measure cannot read: an error of the check, never a pass."""


def read_nft_json(stdout: str) -> dict[str, Any]:
    """The document of ``nft -j list ruleset``; anything but ``{"nftables": [objects]}`` raises.

    >>> read_nft_json('{"nftables": []}')
    {'nftables': []}
    >>> read_nft_json('Error: syntax error')
    Traceback (most recent call last):
    ...
    hardening.measures.firewall.Unreadable: nft -j list ruleset: not JSON (Expecting value: line 1 column 1 (char 0))
    """
    try:
        document = json.loads(stdout)
    except ValueError as exc:
        raise Unreadable(f"{NFT_LIST}: not JSON ({exc})") from None
    items = document.get("nftables") if isinstance(document, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise Unreadable(f"{NFT_LIST}: JSON without a list of objects under 'nftables': {stdout[:120]!r}")
    return document


def live_drift(live: Observation, settings: Settings, role: str) -> list[str]:
    """Why the live ruleset (the observation of ``nft -j list ruleset``) is not the profile's.

    A failed or unreadable listing is drift too: the deploy then re-applies the ruleset.
    """
    if live.rc != 0:
        return [f"{NFT_LIST} failed (exit {live.rc}): {live.stderr.strip()[:200]}"]
    try:
        document = read_nft_json(live.stdout)
    except Unreadable as exc:
        return [str(exc)]
    return live_problems(document, settings, role)


def reapply_reasons(conf: Observation, live: Observation, settings: Settings, role: str) -> list[str]:
    """Why the deploy must (re)apply the ruleset ([] = committed file and live ruleset as desired).

    ``conf`` is the observation of ``cat /etc/nftables.conf``, ``live`` that of ``nft -j list ruleset``.
    """
    reasons = []
    if conf.rc != 0:
        reasons.append(f"{NFTABLES_CONF} absent or unreadable")
    elif conf.stdout != ruleset(settings, role):
        reasons.append(f"{NFTABLES_CONF} is not the profile's ruleset")
    return reasons + [f"live ruleset: {p}" for p in live_drift(live, settings, role)]


def sysctl_value(result: Observation) -> str | None:
    """The runtime value ``sysctl -n`` printed, or None when it could not be read."""
    value = result.stdout.strip()
    return value if result.rc == 0 and value else None


def forwarding_repairs(runtime: Mapping[str, str | None], settings: Settings, role: str) -> dict[str, str]:
    """The measure's sysctls to set now (``sysctl -w``): key -> value, where the runtime value
    (None: unreadable) differs from the desired one. Nothing when forwarding is allowed.

    >>> forwarding_repairs({"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "0"}, Settings(), "server")
    {'net.ipv4.ip_forward': '0'}
    """
    if forwarding_allowed(settings, role):
        return {}
    return {key: want for key, want in FORWARD_SYSCTLS.items() if runtime.get(key) != want}


def service_commands(enabled: str, active: str, reapply: bool) -> list[str]:
    """systemctl commands that leave nftables.service enabled and active, from its observed state
    (``systemctl is-enabled`` / ``is-active`` output).

    It is started here only when the ruleset is NOT re-applied in this run: then
    /etc/nftables.conf already is the profile's ruleset, and starting the service (``nft -f
    /etc/nftables.conf``) loads what is live. When it is re-applied, the file is still the
    previous one until the confirmation, so the change's commit starts the service instead
    (see deploys/firewall.py), never the deploy before it.

    >>> service_commands("disabled", "inactive", reapply=True)
    ['systemctl enable nftables.service']
    >>> service_commands("enabled", "inactive", reapply=False)
    ['systemctl start nftables.service']
    """
    commands = [] if enabled == "enabled" else ["systemctl enable nftables.service"]
    if active != "active" and not reapply:
        commands.append("systemctl start nftables.service")
    return commands


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch."""
    settings: Settings = profile.measure("firewall")
    if not settings.enabled:
        return []
    commands = [NFT_PRESENT, NFT_LIST, NFTABLES_CONF_TEXT, NFTABLES_ENABLED, NFTABLES_ACTIVE]
    if not forwarding_allowed(settings, profile.role):
        commands += [sysctl_read(key) for key in FORWARD_SYSCTLS]
    return commands


MEASURE = Measure(
    name="firewall",
    title="default-deny inbound with the profile's allow-list, forwarding off on terminals",
    clauses=('6-7',),
    order=80,
    settings=Settings,
    observe=observe,
)
