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
previous file (see deploys/_rollback.py for the confirmation protocol; its snapshot and restore
are this table alone). A file that loads other tables than Debian's empty default
(:func:`boot_foreign_tables`) is not overwritten: the deploy refuses, naming it.

Judging (checks and deploy alike): the live ruleset is read whole from ``nft -j list ruleset``
(:func:`judge_inbound`, libnftables-json(5)): every accept reachable from every table's input
chains, through jump, goto and verdict maps, is reduced to what it lets in; keys outside the
grammar, statements it does not model, and queue/helper/tproxy anywhere at input count as
unexpected. What nftables.service loads at boot is read by loading /etc/nftables.conf into an
empty network namespace (:data:`NFT_BOOT`; ``nft -c`` prints nothing to compare on nft 1.0.6)
and compared with the live table (:func:`stale` says which one is stale); forwarding at boot is
read as systemd-sysctl merges sysctl.d (:data:`SYSCTL_CONFIG`, :func:`persisted`).

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

import fnmatch
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


# -- reading the ruleset as the kernel has it (nft -j list ruleset, libnftables-json(5)) ---------
#
# The judgement over-approximates what the input hook accepts: every accept reachable from a base
# chain hooked at input (through jump, goto and verdict maps) is reduced to the protocols, ports
# and source networks its conditions restrict it to; a condition it cannot read restricts
# nothing (so the accept only looks wider). Every key outside the JSON grammar, and every
# statement whose effect the judgement does not model, counts as unexpected, never as nothing.

Conditions = tuple[dict[str, Any], ...]

# Statements per libnftables-json(5) (nft 1.0.6), with their properties; "E" marks a property that
# holds an expression, "S" a statement, "*" a property of plain values.
_STATEMENTS: dict[str, dict[str, str] | None] = {
    "accept": None, "drop": None, "continue": None, "return": None,
    "jump": {"target": "*"}, "goto": {"target": "*"},
    "match": {"left": "E", "right": "E", "op": "*"},
    "counter": {"packets": "*", "bytes": "*"}, "quota": {"val": "*", "val_unit": "*", "used": "*",
                                                          "used_unit": "*", "inv": "*"},
    "limit": {"rate": "*", "rate_unit": "*", "per": "*", "burst": "*", "burst_unit": "*", "inv": "*"},
    "log": {"prefix": "*", "group": "*", "snaplen": "*", "queue-threshold": "*", "level": "*", "flags": "*"},
    "ct count": {"val": "*", "inv": "*"}, "last": {"used": "*"},
    "mangle": {"key": "E", "value": "E"}, "notrack": None,
    "fwd": {"dev": "E", "family": "*", "addr": "E"}, "dup": {"addr": "E", "dev": "E"},
    "snat": {"addr": "E", "family": "*", "port": "E", "flags": "*", "type_flags": "*"},
    "dnat": {"addr": "E", "family": "*", "port": "E", "flags": "*", "type_flags": "*"},
    "masquerade": {"port": "E", "flags": "*"}, "redirect": {"port": "E", "flags": "*"},
    "tproxy": {"family": "*", "addr": "E", "port": "E"},
    "reject": {"type": "*", "expr": "E"}, "set": {"op": "*", "elem": "E", "set": "*", "stmt": "S"},
    "flow": {"op": "*", "flowtable": "*"}, "reset": {},
    "map": {"op": "*", "elem": "E", "data": "E", "map": "*"},
    "ct helper": {}, "ct timeout": {}, "ct expectation": {}, "secmark": {}, "synproxy": {
        "mss": "*", "wscale": "*", "flags": "*"},
    "meter": {"name": "*", "key": "E", "stmt": "S", "size": "*"},
    "queue": {"num": "E", "flags": "*"}, "vmap": {"key": "E", "data": "E"},
    "xt": {"type": "*", "name": "*"},
}
_EXPRESSIONS: dict[str, dict[str, str] | str | None] = {
    "concat": "list", "set": "set", "map": {"key": "E", "data": "E"},
    "prefix": {"addr": "E", "len": "*"}, "range": "list", "elem": {"val": "E", "timeout": "*",
                                                                   "expires": "*", "comment": "*"},
    "payload": {"base": "*", "offset": "*", "len": "*", "protocol": "*", "field": "*"},
    "exthdr": {"name": "*", "field": "*", "offset": "*"}, "tcp option": {"name": "*", "field": "*"},
    "ip option": {"name": "*", "field": "*"}, "sctp chunk": {"name": "*", "field": "*"},
    "meta": {"key": "*"}, "rt": {"key": "*", "family": "*"}, "ct": {"key": "*", "family": "*", "dir": "*"},
    "numgen": {"mode": "*", "mod": "*", "offset": "*"},
    "jhash": {"mod": "*", "offset": "*", "expr": "E", "seed": "*"}, "symhash": {"mod": "*", "offset": "*"},
    "fib": {"result": "*", "flags": "*"}, "socket": {"key": "*", "level": "*"},
    "osf": {"key": "*", "ttl": "*"}, "ipsec": {"key": "*", "family": "*", "dir": "*", "spnum": "*"},
    "dccp option": {"type": "*"},
    "|": "list", "^": "list", "&": "list", "<<": "list", ">>": "list",
    "accept": None, "drop": None, "continue": None, "return": None,
    "jump": {"target": "*"}, "goto": {"target": "*"},
}
_OBJECTS = {"metainfo", "table", "chain", "rule", "set", "map", "element", "flowtable", "counter",
            "quota", "ct helper", "limit", "ct timeout", "ct expectation", "secmark", "synproxy"}
# Statements that neither decide nor change the packet: counting, logging, rate conditions.
_HARMLESS = {"match", "counter", "quota", "limit", "log", "ct count", "last"}
_VERDICTS = {"accept", "drop", "reject", "continue", "return", "jump", "goto", "queue", "vmap"}
# In ANY table's input chain these can let a packet past this table's drop: a queue program may
# answer NF_STOP (skip the rest of the hook), a helper or expectation makes connections "related"
# (which the essentials accept), tproxy hands a packet to another socket than its port's, and an
# iptables-nft (xt) statement can be any of these.
_HAZARDS = {"queue", "ct helper", "ct expectation", "tproxy", "xt"}
_TRANSLATIONS = {"dnat", "redirect"}
_L4 = ("tcp", "udp", "sctp", "dccp", "udplite")
_PROTO_NUMBERS = {6: "tcp", 17: "udp", 132: "sctp", 33: "dccp", 136: "udplite"}


def grammar_errors(value: Any, where: str = "statement") -> list[str]:
    """Keys of a rule's statements (or an expression) outside libnftables-json(5) ([] = all known).

    >>> grammar_errors({"match": {"left": {"meta": {"key": "iif"}}, "right": "lo", "op": "=="}})
    []
    >>> grammar_errors({"inner": {"type": 1}}, "expression")
    ["unknown expression 'inner'"]
    """
    if isinstance(value, list):
        return [e for v in value for e in grammar_errors(v, where)]
    if not isinstance(value, dict):
        return []
    table: Mapping[str, Any] = _STATEMENTS if where == "statement" else _EXPRESSIONS
    if len(value) != 1 or next(iter(value)) not in table:
        return [f"unknown {where} {', '.join(map(repr, value)) or '{}'}"]
    key, body = next(iter(value.items()))
    shape = table[key]
    if shape in ("list", "set"):
        return grammar_errors(body, "expression")
    if shape is None or not isinstance(body, dict) or not shape:
        return [] if shape is None or not isinstance(body, dict) else grammar_errors(body, "expression")
    errors = [f"unknown property {key}.{prop}" for prop in body if prop not in shape]
    for prop, kind in shape.items():
        if kind in ("E", "S") and prop in body:
            errors += grammar_errors(body[prop], "expression" if kind == "E" else "statement")
    return errors


@dataclass(frozen=True)
class ChainRef:
    family: str
    table: str
    name: str

    def __str__(self) -> str:
        return f"{self.family} {self.table} {self.name}"


@dataclass
class ChainDef:
    """A chain of the listing: base-chain properties (hook None for a regular chain) and rules."""

    ref: ChainRef
    hook: str | None = None
    type: str | None = None
    prio: int = 0
    policy: str | None = None
    rules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def families(self) -> set[int]:
        """The IP versions this chain sees (an inet table both, ip/ip6 one, others none)."""
        return {"inet": {4, 6}, "ip": {4}, "ip6": {6}}.get(self.ref.family, set())


@dataclass
class Accept:
    """An accept reachable from an input base chain, reduced to what its conditions let in.

    ``None`` means not restricted (any protocol, any port, from anywhere); ``()`` nothing."""

    text: str
    protos: frozenset[str] | None = None
    ports: frozenset[int] | None = None
    sources: tuple[str, ...] | None = None
    kind: str = "service"  # service | essential
    notes: list[str] = field(default_factory=list)

    @property
    def proto(self) -> str | None:
        return next(iter(self.protos)) if self.protos and len(self.protos) == 1 else None

    @property
    def port(self) -> int | None:
        return next(iter(self.ports)) if self.ports and len(self.ports) == 1 else None

    def describe(self) -> str:
        protos = "/".join(sorted(self.protos)) if self.protos is not None else "any protocol"
        ports = ",".join(map(str, sorted(self.ports)[:8])) if self.ports is not None else "any port"
        where = "anywhere" if self.sources is None else ", ".join(self.sources) or "nowhere"
        why = f"; {self.notes[0]}" if self.notes and (self.sources is None or self.ports is None) else ""
        return f"{protos} {ports} from {where} ({self.text}{why})"


@dataclass
class Chain:
    """A base chain hooked at input (or prerouting), with what is reachable from it."""

    ref: ChainRef
    hook: str | None
    policy: str | None
    prio: int = 0
    families: set[int] = field(default_factory=set)
    accepts: list[Accept] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # unexpected whatever the allow-list
    hazards: list[str] = field(default_factory=list)   # unexpected in any table (see _HAZARDS)
    translations: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.ref.name


class Ruleset:
    """``nft -j list ruleset`` read whole: chains with their rules in order, sets and maps."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.chains: dict[ChainRef, ChainDef] = {}
        self.sets: dict[ChainRef, dict[str, Any]] = {}
        self.unknown: list[str] = []
        items = document.get("nftables", [])
        for item in items:
            kind = next(iter(item), "") if len(item) == 1 else ""
            if kind not in _OBJECTS:
                body: Any = next(iter(item.values()), {}) if len(item) == 1 else {}
                owner = (f"{body.get('family')} {body.get('table')}: " if isinstance(body, dict)
                         and body.get("table") else "")
                self.unknown.append(f"{owner}unknown object {', '.join(map(repr, item))}")
            elif kind == "chain":
                self._chain(item["chain"])
            elif kind in ("set", "map"):
                body = item[kind]
                self.sets[ChainRef(body.get("family", ""), body.get("table", ""), body.get("name", ""))] = body
        for item in items:
            if "rule" in item:
                self._rule(item["rule"])

    def _chain(self, body: dict[str, Any]) -> None:
        ref = ChainRef(body.get("family", ""), body.get("table", ""), body.get("name", ""))
        self.chains[ref] = ChainDef(ref, body.get("hook"), body.get("type"), int(body.get("prio", 0)),
                                    body.get("policy"))

    def _rule(self, rule: dict[str, Any]) -> None:
        ref = ChainRef(rule.get("family", ""), rule.get("table", ""), rule.get("chain", ""))
        chain = self.chains.get(ref)
        if chain is None:
            self.unknown.append(f"rule handle {rule.get('handle')} of a chain not listed: {ref}")
            return
        chain.rules.append(rule)
        self.unknown += [f"{ref} handle {rule.get('handle')}: {e}"
                         for e in grammar_errors(rule.get("expr", []))]

    def base(self, hook: str) -> list[ChainDef]:
        return sorted((c for c in self.chains.values() if c.hook == hook), key=lambda c: c.prio)

    def elements(self, ref: ChainRef) -> list[Any] | None:
        """A named set's or map's elements; None when they are not fixed (absent, or filled at
        runtime: flags dynamic/timeout), so a match on it restricts nothing."""
        body = self.sets.get(ref)
        if body is None or {"dynamic", "timeout"} & set(body.get("flags", [])):
            return None
        elem = body.get("elem", [])
        return list(elem) if isinstance(elem, list) else [elem]


def _label(rule: dict[str, Any], via: str) -> str:
    comment = f' "{rule["comment"]}"' if rule.get("comment") else ""
    return (f"{rule.get('family')} {rule.get('table')} {rule.get('chain')} handle {rule.get('handle')}"
            f"{comment}{via}")


class _Walk:
    """Everything reachable from one base chain: accepts with their conditions, and findings."""

    def __init__(self, rs: Ruleset, base: ChainDef) -> None:
        self.rs, self.base = rs, base
        self.out = Chain(base.ref, base.hook, base.policy, base.prio, base.families)

    def chain(self, ref: ChainRef, conds: Conditions, stack: tuple[ChainRef, ...], via: str) -> None:
        target = self.rs.chains.get(ref)
        if target is None or ref in stack or len(stack) > 16:
            self.out.findings.append(f"{via.strip()}: jump/goto to {ref}: "
                                     + ("no such chain" if target is None else "a loop"))
            return
        self.rules(target.rules, conds, (*stack, ref), via)

    def rules(self, rules: list[dict[str, Any]], conds: Conditions, stack: tuple[ChainRef, ...], via: str) -> None:
        """A chain's rules in order, up to one that ends the chain for every packet."""
        for rule in rules:
            if self.rule(rule, conds, stack, via):
                return

    def rule(self, rule: dict[str, Any], conds: Conditions, stack: tuple[ChainRef, ...], via: str) -> bool:
        """Walk one rule; True when it ends the chain for every packet (no condition before an
        accept, drop, reject, return, goto or queue), so the rules after it are never reached."""
        label = _label(rule, via)
        conditional = False
        for stmt in rule.get("expr", []):
            key = next(iter(stmt), "") if isinstance(stmt, dict) and len(stmt) == 1 else ""
            if key == "match":
                conds, conditional = (*conds, stmt["match"]), True
            elif key in _HARMLESS:
                conditional = conditional or key not in ("counter", "log", "last")
            elif key in _VERDICTS:
                self.verdict(key, stmt[key], conds, stack, label, rule)
                return not conditional and key in ("accept", "drop", "reject", "return", "goto", "queue")
            else:
                self.statement(key or repr(stmt), conds, label)
        return False

    def statement(self, key: str, conds: Conditions, label: str) -> None:
        text = f"{label}: statement {key!r}"
        if key in _HAZARDS and (self.base.hook == "input" or key != "queue"):
            self.out.hazards.append(text + _hazard_why(key))
        elif key in _TRANSLATIONS:
            self.out.translations.append(text + " (" + ", ".join(_cond_text(c) for c in conds) + ")")
        else:
            self.out.findings.append(text + ": its effect is not modelled by this check")

    def verdict(self, key: str, body: Any, conds: Conditions, stack: tuple[ChainRef, ...],
                label: str, rule: dict[str, Any]) -> None:
        if key == "accept":
            self.out.accepts.append(reduce_accept(conds, label, self.rs, rule.get("family", ""),
                                                  rule.get("table", "")))
        elif key in ("jump", "goto"):
            ref = ChainRef(rule.get("family", ""), rule.get("table", ""), str(body.get("target")))
            self.chain(ref, conds, stack, f" via {key} from {label}")
        elif key == "queue":
            self.statement("queue", conds, label)
        elif key == "vmap":
            self.vmap(body, conds, stack, label, rule)
        # drop, reject: nothing gets in; continue, return: the packet goes on to later rules or
        # the caller, which this walk visits anyway (a return to a base chain meets its policy).

    def vmap(self, body: dict[str, Any], conds: Conditions, stack: tuple[ChainRef, ...],
             label: str, rule: dict[str, Any]) -> None:
        data = body.get("data")
        if isinstance(data, str) and data.startswith("@"):
            ref = ChainRef(rule.get("family", ""), rule.get("table", ""), data[1:])
            pairs = self.rs.elements(ref)
            if pairs is None:
                self.out.findings.append(f"{label}: verdict map {data}: its elements are not fixed")
                return
        elif isinstance(data, dict) and isinstance(data.get("set"), list):
            pairs = data["set"]
        else:
            self.out.findings.append(f"{label}: verdict map data not read: {json.dumps(data)[:120]}")
            return
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], dict) and len(pair[1]) == 1):
                self.out.findings.append(f"{label}: verdict map element not read: {json.dumps(pair)[:120]}")
                continue
            verdict = next(iter(pair[1]))
            entry = (*conds, *_key_conditions(body.get("key"), _elem_value(pair[0])))
            if verdict not in ("accept", "drop", "continue", "return", "jump", "goto"):
                self.out.findings.append(f"{label}: verdict map verdict {verdict!r}")
            else:
                self.verdict(verdict, pair[1][verdict], entry, stack, f"{label} (verdict map entry)", rule)


def _hazard_why(key: str) -> str:
    return {
        "queue": ": a userspace program decides (NF_STOP skips every later chain of the hook)",
        "ct helper": ": a conntrack helper makes connections 'related', which the essentials accept",
        "ct expectation": ": an expectation makes connections 'related', which the essentials accept",
        "tproxy": ": the packet goes to another socket than its destination port's",
        "xt": ": an iptables-nft statement nft cannot show (it may queue, tproxy or set a helper)",
    }.get(key, "")


def _elem_value(value: Any) -> Any:
    return value["elem"].get("val") if isinstance(value, dict) and isinstance(value.get("elem"), dict) else value


def _key_conditions(key: Any, value: Any) -> list[dict[str, Any]]:
    """The match conditions a verdict map entry stands for (a concatenation: one per part)."""
    if isinstance(key, dict) and "concat" in key and isinstance(value, dict) and "concat" in value:
        return [{"op": "==", "left": k, "right": v} for k, v in zip(key["concat"], value["concat"], strict=False)]
    return [{"op": "==", "left": key, "right": value}]


def _cond_text(cond: dict[str, Any]) -> str:
    return f"{json.dumps(cond.get('left'))} {cond.get('op')} {json.dumps(cond.get('right'))}"[:160]


def _values(right: Any, rs: Ruleset | None, family: str, table: str) -> list[Any] | None:
    """The values a match compares with; None when they are not known (a set filled at runtime)."""
    if isinstance(right, str) and right.startswith("@"):
        named = rs.elements(ChainRef(family, table, right[1:])) if rs else None
        return None if named is None else [_elem_value(v) for v in named]
    if isinstance(right, dict) and "set" in right:
        inner = right["set"]
        return [_elem_value(v) for v in (inner if isinstance(inner, list) else [inner])]
    return [_elem_value(v) for v in right] if isinstance(right, list) else [right]


def _network(value: Any) -> list[str]:
    if isinstance(value, dict) and "prefix" in value:
        return [f"{value['prefix']['addr']}/{value['prefix']['len']}"]
    if isinstance(value, dict) and "range" in value:
        low, high = (ipaddress.ip_address(v) for v in value["range"])
        return [str(n) for n in ipaddress.summarize_address_range(low, high)]
    return [str(ipaddress.ip_network(str(value), strict=False))]


def _ports(values: list[Any], proto: str) -> frozenset[int]:
    ports: set[int] = set()
    for value in values:
        if isinstance(value, dict) and "range" in value:
            low, high = (_port(v, proto) for v in value["range"])
            ports |= set(range(low, high + 1))
        else:
            ports.add(_port(value, proto))
    return frozenset(ports)


def _port(value: Any, proto: str) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    return socket.getservbyname(str(value), proto if proto in ("tcp", "udp") else "tcp")


def _essential(left: Any, values: list[Any]) -> bool:
    """ct state established/related, loopback, and the ICMP/ICMPv6 essentials."""
    if not isinstance(left, dict):
        return False
    payload, meta, ct = left.get("payload", {}), left.get("meta", {}), left.get("ct", {})
    icmp = {"icmp": ICMP_TYPES, "icmpv6": ICMPV6_TYPES}.get(payload.get("protocol", ""), ())
    return bool(
        (ct.get("key") == "state" and "dir" not in ct and set(values) <= {"established", "related"})
        or (meta.get("key") in ("iif", "iifname") and values == ["lo"])
        or (payload.get("field") == "type" and icmp and set(values) <= set(icmp))
    )


def reduce_accept(conds: Conditions, text: str, rs: Ruleset | None = None, family: str = "inet",
                  table: str = TABLE) -> Accept:
    """What an accept under these match conditions lets in (a condition not read restricts nothing)."""
    accept = Accept(text=text)
    for cond in conds:
        left, op = cond.get("left"), cond.get("op", "==")
        values = _values(cond.get("right"), rs, family, table)
        if op not in ("==", "in") or values is None or not isinstance(left, dict):
            accept.notes.append(f"not restricting: {_cond_text(cond)}")
            continue
        try:
            _restrict(accept, left, values)
        except (ValueError, TypeError, KeyError, OSError) as exc:
            accept.notes.append(f"not read ({exc}): {_cond_text(cond)}")
    return accept


def _restrict(accept: Accept, left: dict[str, Any], values: list[Any]) -> None:
    if isinstance(left.get("concat"), list):
        # ip saddr . tcp dport { a . p, ... }: each part restricted to its own values (a superset)
        parts = [v["concat"] for v in values if isinstance(v, dict) and isinstance(v.get("concat"), list)]
        if len(parts) != len(values):
            raise ValueError("concatenation against values that are not concatenations")
        for index, part in enumerate(left["concat"]):
            if isinstance(part, dict):
                _restrict(accept, part, [p[index] for p in parts])
        return
    payload, meta = left.get("payload", {}), left.get("meta", {})
    if _essential(left, values):
        accept.kind = "essential"
    elif payload.get("field") == "dport" and payload.get("protocol") in (*_L4, "th"):
        proto = payload["protocol"]
        if proto != "th":
            accept.protos = frozenset({proto}) & accept.protos if accept.protos is not None else frozenset({proto})
        accept.ports = _ports(values, proto)
    elif payload.get("field") == "saddr" and payload.get("protocol") in ("ip", "ip6"):
        accept.sources = tuple(n for v in values for n in _network(v))
    elif meta.get("key") == "l4proto" or payload.get("field") in ("protocol", "nexthdr"):
        protos = frozenset(_PROTO_NUMBERS.get(v, str(v)) for v in values)
        accept.protos = protos & accept.protos if accept.protos is not None else protos
    else:
        accept.notes.append(f"not restricting: {json.dumps(left)[:80]}")


def walk_chain(rs: Ruleset, base: ChainDef) -> Chain:
    """A base chain with every accept, finding and hazard reachable from it."""
    walk = _Walk(rs, base)
    walk.rules(base.rules, (), (base.ref,), "")
    if base.policy not in ("drop", "accept", None):
        walk.out.findings.append(f"{base.ref}: policy {base.policy!r}")
    return walk.out


def parse_nft_json(document: dict[str, Any], table: str = TABLE, family: str = "inet") -> dict[str, Chain]:
    """The base chains of one table (by name), each walked (see :func:`walk_chain`)."""
    rs = Ruleset(document)
    return {c.ref.name: walk_chain(rs, c) for c in rs.chains.values()
            if c.hook and c.ref.table == table and c.ref.family == family}


def covered_by(accept: Accept, service: Service) -> bool:
    """Whether an accept rule lets in no more than the service allows."""
    return accept.kind == "service" and allowed(accept, [service])


def allowed(accept: Accept, services: list[Service]) -> bool:
    """Whether everything the accept lets in is an essential or allowed by one of the services."""
    if accept.kind == "essential":
        return True
    if accept.protos is None or accept.ports is None:
        return False
    for proto in accept.protos:
        for port in accept.ports:
            matching = [s for s in services if (s.proto, s.port) == (proto, port)]
            if not matching:
                return False
            if any(not s.sources for s in matching):
                continue
            nets = [ipaddress.ip_network(n) for s in matching for n in s.sources]
            if accept.sources is None or not all(
                    any(_subnet(ipaddress.ip_network(src), a) for a in nets) for src in accept.sources):
                return False
    return True


def _subnet(net: Any, of: Any) -> bool:
    return bool(net.version == of.version and net.subnet_of(of))


def _meet(a: frozenset[Any] | None, b: frozenset[Any] | None) -> frozenset[Any] | None:
    return b if a is None else a if b is None else a & b


def _meet_networks(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if a is None or b is None:
        return b if a is None else a
    out = []
    for x in map(ipaddress.ip_network, a):
        for y in map(ipaddress.ip_network, b):
            if _subnet(x, y) or _subnet(y, x):
                out.append(str(x if _subnet(x, y) else y))
    return tuple(out)


def _meet_allowed(a: Accept, b: Accept, services: list[Service]) -> bool:
    """Whether what both accepts let in (a packet must pass both chains) is within the allow-list."""
    if "essential" in (a.kind, b.kind):
        return True
    both = Accept("", _meet(a.protos, b.protos), _meet(a.ports, b.ports), _meet_networks(a.sources, b.sources))
    return both.protos == frozenset() or both.ports == frozenset() or both.sources == () or allowed(both, services)


def unexpected_accepts(chain: Chain, settings: Settings) -> list[str]:
    """What the chain lets in (or does) that the allow-list does not account for."""
    services = inbound_services(settings)
    extra = [f"accepts {a.describe()}" for a in chain.accepts if not allowed(a, services)]
    return extra + chain.findings + chain.hazards


def service_present(chain: Chain, service: Service) -> bool:
    """Whether the input chain accepts the service from all of its sources (or from anywhere)."""
    rules = [a for a in chain.accepts if a.kind == "service" and covered_by(a, service)]
    if not service.sources:
        return any(a.sources is None for a in rules)
    seen = {s for a in rules for s in (a.sources or ())}
    return set(service.sources) <= seen


@dataclass
class Inbound:
    """The judgement of the whole ruleset for inbound traffic."""

    ours: Chain | None
    chains: list[Chain]
    unexpected: list[str]
    notes: list[str]
    # The part that counts whatever the input chains do: keys outside the grammar, hazards,
    # translations where forwarding is allowed.
    anyway: list[str] = field(default_factory=list)


def judge_inbound(document: dict[str, Any], settings: Settings, role: str) -> Inbound:
    """What the input hook lets in beyond the allow-list, over EVERY table.

    A packet gets in only if every base chain hooked at input accepts it, so an IP version is
    safe when at least one chain seeing it is tight (policy drop, every accept allowed, nothing
    unmodelled): another table's accept cannot undo that drop. Otherwise an accept beyond the
    allow-list is excused only where another chain with policy drop (and nothing unmodelled)
    accepts nothing beyond the allow-list of what it would let in. Hazards (:data:`_HAZARDS`) and
    keys outside the grammar count in any table; address translation counts where forwarding is
    allowed (it then exposes what it points at)."""
    rs = Ruleset(document)
    services = inbound_services(settings)
    chains = [walk_chain(rs, c) for c in rs.base("input") if c.families]
    mine = [c for c in chains if (c.ref.family, c.ref.table) == ("inet", TABLE)]
    ours = next((c for c in mine if c.ref.name == "input"), mine[0] if mine else None)
    unexpected = list(rs.unknown) + [h for c in chains for h in c.hazards]
    notes: list[str] = []
    for pre in (walk_chain(rs, c) for c in [*rs.base("prerouting"), *rs.base("input")]):
        unexpected += [h for h in pre.hazards if h not in unexpected]
        if forwarding_allowed(settings, role):
            unexpected += [f"{t}: forwarding is allowed, so it exposes what it points at" for t in pre.translations]
        else:
            notes += [f"{t}: not judged (the input chain judges the translated packet; forwarding is off)"
                      for t in pre.translations]
    anyway = list(unexpected)
    tight = {c.ref: c.policy == "drop" and not c.findings and not c.hazards
             and all(allowed(a, services) for a in c.accepts) for c in chains}
    for version in (4, 6):
        deciders = [c for c in chains if version in c.families]
        if any(tight[c.ref] for c in deciders):
            notes += [f"IPv{version}: {c.ref} decides (policy drop, nothing else accepted)"
                      for c in deciders if tight[c.ref]][:1]
            continue
        for chain in deciders:
            others = [c for c in deciders if c is not chain and c.policy == "drop" and not c.findings
                      and not c.hazards]
            found = [f"accepts {a.describe()}" for a in chain.accepts if not allowed(a, services)
                     and not any(all(_meet_allowed(a, b, services) for b in y.accepts) for y in others)]
            found += chain.findings + [h for h in chain.hazards if h not in unexpected]
            if chain.policy != "drop":
                found.append(f"policy {chain.policy}: IPv{version} is accepted unless dropped")
            unexpected += [f"{chain.ref}: {x}" for x in found if f"{chain.ref}: {x}" not in unexpected]
        if not deciders:
            unexpected.append(f"IPv{version}: no chain hooked at input, so everything is accepted")
    return Inbound(ours, chains, unexpected, notes, anyway)


def live_problems(document: dict[str, Any], settings: Settings, role: str) -> list[str]:
    """Differences between ``nft -j list ruleset`` and the desired ruleset ([] = as desired).

    >>> live_problems({"nftables": []}, Settings(), "terminal")
    ['no input chain in table inet hardening']
    """
    inbound = judge_inbound(document, settings, role)
    chain = inbound.ours
    if chain is None:
        return [f"no input chain in table inet {TABLE}"]
    problems = [] if chain.policy == "drop" else [f"input policy {chain.policy}"]
    problems += [f"missing {s.name}: {s.describe()}" for s in inbound_services(settings)
                 if not service_present(chain, s)]
    problems += [f"unexpected: {x}" for x in unexpected_accepts(chain, settings)]
    problems += [f"unexpected: {x}" for x in inbound.unexpected if x.startswith(f"inet {TABLE} ")
                 and not x.startswith(f"{chain.ref}: ") and f"unexpected: {x}" not in problems]
    forward = parse_nft_json(document).get("forward")
    want = "accept" if forwarding_allowed(settings, role) else "drop"
    if forward is None or forward.policy != want:
        problems.append(f"forward policy {forward.policy if forward else 'missing'}, want {want}")
    return problems


def table_objects(document: dict[str, Any], family: str = "inet", table: str = TABLE) -> list[str]:
    """One table's objects in listing order, without handles and counters' values: the form in
    which the live table and the one /etc/nftables.conf loads are compared."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("handle", "packets", "bytes", "used")}
        return [strip(v) for v in value] if isinstance(value, list) else value
    out = []
    for item in document.get("nftables", []):
        kind, body = next(iter(item.items())) if len(item) == 1 else ("", {})
        if not isinstance(body, dict) or kind == "metainfo":
            continue
        if body.get("family") == family and body.get("table", body.get("name")) == table:
            out.append(json.dumps({kind: strip(body)}, sort_keys=True))
    return out


# Who usually made a table, told by its name or its chains' (a hint for the operator, never a
# decision): (hint, table name prefixes, chain name prefixes).
_TABLE_OWNERS = (
    ("docker", ("docker",), ("DOCKER",)),
    ("fail2ban", ("f2b",), ("f2b-",)),
    ("libvirt", ("libvirt",), ("LIBVIRT_",)),
    ("kubernetes", ("kube-",), ("KUBE-",)),
    ("firewalld", ("firewalld",), ()),
    ("podman", ("netavark",), ("NETAVARK",)),
)


def foreign_tables(document: dict[str, Any]) -> list[str]:
    """The live tables other than ``inet hardening`` in a parsed ``nft -j list ruleset``, in
    listing order, each with a hint of the tool that usually makes it when its name or its
    chains' tell (``table ip nat (docker)``): the tables a deploy leaves alone.

    >>> foreign_tables({"nftables": [{"metainfo": {}}, {"table": {"family": "inet", "name": "hardening"}},
    ...     {"table": {"family": "ip", "name": "nat"}}, {"chain": {"family": "ip", "table": "nat", "name": "DOCKER"}},
    ...     {"table": {"family": "inet", "name": "mine"}}]})
    ['table ip nat (docker)', 'table inet mine']
    """
    tables: dict[tuple[str, str], list[str]] = {}
    for item in document.get("nftables", []):
        kind, body = next(iter(item.items())) if len(item) == 1 else ("", {})
        if kind not in ("table", "chain") or not isinstance(body, dict):
            continue
        key = (str(body.get("family")), str(body.get("table") if kind == "chain" else body.get("name")))
        chains = tables.setdefault(key, [])
        if kind == "chain":
            chains.append(str(body.get("name")))
    out = []
    for (family, name), chains in tables.items():
        if (family, name) == ("inet", TABLE):
            continue
        hint = next((owner for owner, names, prefixes in _TABLE_OWNERS
                     if name.startswith(names) or any(c.startswith(prefixes) for c in chains)), None)
        out.append(f"table {family} {name}" + (f" ({hint})" if hint else ""))
    return out


def table_difference(live: dict[str, Any], boot: dict[str, Any]) -> list[str]:
    """How table inet hardening differs between two listings ([] = the same), a few lines."""
    a, b = table_objects(live), table_objects(boot)
    only_live = [x for x in a if x not in b]
    only_boot = [x for x in b if x not in a]
    lines = [f"only live: {x[:200]}" for x in only_live[:3]] + [f"only at boot: {x[:200]}" for x in only_boot[:3]]
    if not lines and a != b:
        lines.append("same objects in another order")
    return lines


# -- what the checks and the deploy observe (one batch per host, hardening.observe) ----------------

NFT_PRESENT = "command -v nft"
NFT_LIST = "nft -j list ruleset"
NFTABLES_CONF_TEXT = quote("cat %s", NFTABLES_CONF)
NFTABLES_ENABLED = "systemctl is-enabled nftables.service"
NFTABLES_ACTIVE = "systemctl is-active nftables.service"
NFTABLES_EXEC = "systemctl show --property=ExecStart --value nftables.service"
# What nftables.service would load at boot, without touching the live ruleset: the file loaded
# into a fresh, empty network namespace and listed there (exit 3: the file does not load).
NFT_BOOT = (f"unshare --net sh -c 'nft -f {NFTABLES_CONF} || exit 3; nft -j list ruleset'")
BOOT_DOES_NOT_LOAD = 3
# The sysctl.d files systemd-sysctl applies at boot, in its order, each after a "# PATH" line.
SYSCTL_CONFIG = "systemd-analyze cat-config sysctl.d"
SYSCTL_DIRS = ("/etc/sysctl.d/", "/run/sysctl.d/", "/usr/local/lib/sysctl.d/", "/usr/lib/sysctl.d/",
               "/lib/sysctl.d/")


def exec_start_problem(shown: Observation) -> str | None:
    r"""Why nftables.service would not load /etc/nftables.conf at boot (None: it loads exactly that),
    from ``systemctl show --property=ExecStart --value``: one ``{ path=... ; argv[]=... ; ... }``
    per command.

    >>> exec_start_problem(Observation("o", "s", 0, "{ path=/usr/sbin/nft ; argv[]=/usr/sbin/nft -f "
    ...     "/etc/nftables.conf ; ignore_errors=no ; start_time=[n/a] }\n", "", 0.0)) is None
    True
    """
    commands = [part.split(" ; ")[0] for part in shown.stdout.split("argv[]=")[1:]]
    if shown.rc != 0 or len(commands) != 1:
        return f"nftables.service runs {commands or shown.stdout.strip()[:200] or 'nothing'}"
    argv = commands[0].split()
    if len(argv) != 3 or argv[0].rsplit("/", 1)[-1] != "nft" or argv[1:] != ["-f", NFTABLES_CONF]:
        return f"nftables.service runs {commands[0]!r}, not nft -f {NFTABLES_CONF}"
    return None


def sysctl_read(key: str) -> str:
    """The command that prints a sysctl's runtime value."""
    return quote("sysctl -n %s", key)


class Unreadable(ValueError):
    """Output the measure cannot read: an error of the check, never a pass."""


def read_nft_json(stdout: str) -> dict[str, Any]:
    """The document of ``nft -j list ruleset``; anything but ``{"nftables": [objects]}`` raises.

    >>> read_nft_json('{"nftables": []}')
    {'nftables': []}
    >>> read_nft_json('Error: syntax error')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hardening.measures.firewall.Unreadable: nft -j list ruleset: not JSON (...): 'Error: syntax error'
    """
    try:
        document = json.loads(stdout)
    except ValueError as exc:
        raise Unreadable(f"{NFT_LIST}: not JSON ({exc}): {stdout[:500]!r}") from None
    items = document.get("nftables") if isinstance(document, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise Unreadable(f"{NFT_LIST}: JSON without a list of objects under 'nftables': {stdout[:500]!r}")
    return document


def live_drift(live: Observation, settings: Settings, role: str) -> list[str]:
    """Why the live ruleset (the observation of ``nft -j list ruleset``) is not the profile's.

    A failed or unreadable listing is drift too: the deploy then re-applies the ruleset.
    """
    document = _listing(live)
    return [document] if isinstance(document, str) else live_problems(document, settings, role)


def _listing(live: Observation) -> dict[str, Any] | str:
    """The listing, or why it cannot be read."""
    if live.rc != 0:
        return f"{NFT_LIST} failed (exit {live.rc}): {live.stderr.strip()[:200]}"
    try:
        return read_nft_json(live.stdout)
    except Unreadable as exc:
        return str(exc)


def foreign_problems(document: dict[str, Any], settings: Settings, role: str) -> list[str]:
    """What lets traffic in from OTHER tables, whatever this tool's table does: hazards, keys
    outside the grammar, translations where forwarding is allowed (re-applying cannot fix these;
    another table's accepts are held by this tool's table once it is the profile's).
    """
    return [x for x in judge_inbound(document, settings, role).anyway if not x.startswith(f"inet {TABLE} ")]


def boot_listing(boot: Observation) -> dict[str, Any] | str:
    """What /etc/nftables.conf loads at boot (the listing), or why it loads nothing (a string).
    An observation that failed otherwise (e.g. no ``unshare``) raises: an error, never a pass."""
    if boot.rc == BOOT_DOES_NOT_LOAD:
        return f"nft -f {NFTABLES_CONF} fails, so the next boot loads no ruleset: {boot.stderr.strip()[:300]}"
    if boot.rc != 0:
        raise Unreadable(f"{NFT_BOOT} failed (exit {boot.rc}): {boot.stderr.strip()[:300]}")
    try:
        return read_nft_json(boot.stdout)
    except Unreadable as exc:
        raise Unreadable(f"{NFT_BOOT}: {exc}") from None


def _inert(kind: str, body: dict[str, Any]) -> bool:
    """A table or base chain that decides nothing: Debian's default /etc/nftables.conf."""
    return kind == "table" or (kind == "chain" and body.get("policy", "accept") == "accept")


def boot_foreign_tables(conf: Observation, boot: Observation) -> list[str]:
    """The tables other than inet hardening that /etc/nftables.conf loads today, when the file is
    not this tool's (``table ip nat``, ...; [] = none, or only tables with empty accepting chains
    like Debian's default, or a file that loads nothing): the commit writes the file whole.

    >>> boot_foreign_tables(Observation("o", "cat", 0, "flush ruleset\\n", "", 0.0), Observation(
    ...     "o", "b", 0, '{"nftables": [{"table": {"family": "ip", "name": "nat"}}, {"rule": '
    ...     '{"family": "ip", "table": "nat", "chain": "x", "expr": []}}]}', "", 0.0))
    ['table ip nat']
    """
    if conf.rc != 0 or HEADER in conf.stdout or boot.rc != 0:
        return []
    try:
        document = read_nft_json(boot.stdout)
    except Unreadable:
        return []
    out: list[str] = []
    for item in document["nftables"]:
        kind, body = next(iter(item.items())) if len(item) == 1 else ("", {})
        if kind == "metainfo" or not isinstance(body, dict):
            continue
        name = f"table {body.get('family')} {body.get('table', body.get('name'))}"
        if name != f"table inet {TABLE}" and not _inert(kind, body) and name not in out:
            out.append(name)
    return out


def stale(conf: Observation, live: dict[str, Any], boot: dict[str, Any] | str, settings: Settings,
          role: str) -> list[str]:
    """Whether the live table and the one /etc/nftables.conf loads at boot differ, and which is
    stale ([] = the file is the profile's ruleset and loads exactly the live table).

    >>> stale(Observation("o", "cat", 1, "", "", 0.0), {"nftables": []}, {"nftables": []}, Settings(), "server")
    ['/etc/nftables.conf is absent or unreadable: the next boot loads no ruleset of this tool']
    """
    if conf.rc != 0:
        return [f"{NFTABLES_CONF} is absent or unreadable: the next boot loads no ruleset of this tool"]
    current = conf.stdout == ruleset(settings, role)
    if isinstance(boot, str):
        return [boot]
    difference = table_difference(live, boot)
    at_boot = [f"at boot: {p}" for p in live_problems(boot, settings, role)]
    if not difference and not table_objects(boot):
        return [f"{NFTABLES_CONF} loads no table inet {TABLE} (nor is there one live)", *at_boot]
    if not difference:
        return [] if current else [f"{NFTABLES_CONF} is not the profile's ruleset (though it loads the live "
                                   "table)", *at_boot]
    if current:
        return [f"the live table inet {TABLE} drifted from {NFTABLES_CONF} (the file is the profile's; "
                "the live ruleset is the stale one)", *difference]
    if not live_problems(live, settings, role):
        return [f"{NFTABLES_CONF} is stale: the next boot would load another table inet {TABLE} than the "
                "live, compliant one", *at_boot, *difference]
    return [f"neither the live table nor {NFTABLES_CONF} is the profile's ruleset", *at_boot, *difference]


def reapply_reasons(conf: Observation, live: Observation, settings: Settings, role: str,
                    boot: Observation | None = None) -> list[str]:
    """Why the deploy must (re)apply the ruleset ([] = committed file and live ruleset as desired).

    ``conf`` is the observation of ``cat /etc/nftables.conf``, ``live`` that of ``nft -j list
    ruleset``, ``boot`` that of :data:`NFT_BOOT` (the table the file loads, compared with live).
    """
    reasons = []
    if conf.rc != 0:
        reasons.append(f"{NFTABLES_CONF} absent or unreadable")
    elif conf.stdout != ruleset(settings, role):
        reasons.append(f"{NFTABLES_CONF} is not the profile's ruleset")
    reasons += [f"live ruleset: {p}" for p in live_drift(live, settings, role)]
    document = _listing(live)
    if boot is not None and not reasons and not isinstance(document, str):
        try:
            loaded = boot_listing(boot)
        except Unreadable as exc:
            return [str(exc)]
        reasons += stale(conf, document, loaded, settings, role)
    return reasons


@dataclass(frozen=True)
class Assignment:
    """One ``key = value`` line of a sysctl.d file, as systemd-sysctl reads it."""

    key: str
    value: str
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def sysctl_assignments(text: str) -> list[Assignment]:
    r"""The assignments of ``systemd-analyze cat-config sysctl.d``, in the order systemd applies them.

    >>> sysctl_assignments("# /etc/sysctl.d/99-x.conf\n# c\n-net/ipv4/ip_forward=1\n")
    [Assignment(key='net.ipv4.ip_forward', value='1', path='/etc/sysctl.d/99-x.conf', line=2)]
    """
    out: list[Assignment] = []
    path, line = "", 0
    for raw in text.splitlines():
        header = raw[2:].strip() if raw.startswith("# /") else ""
        if header.startswith(SYSCTL_DIRS) and header.endswith(".conf") and " " not in header:
            path, line = header, 0
            continue
        line += 1
        text_line = raw.strip()
        if not path or not text_line or text_line[0] in "#;" or "=" not in text_line:
            continue
        key, value = (part.strip() for part in text_line.split("=", 1))
        out.append(Assignment(key.lstrip("-").replace("/", "."), value, path, line))
    return out


def persisted(assignments: list[Assignment], key: str) -> Assignment | None:
    """The assignment systemd-sysctl leaves in force at boot: the last explicit one, else the last
    glob that matches (an explicit key wins over a glob, sysctl.d(5))."""
    explicit = [a for a in assignments if a.key == key]
    if explicit:
        return explicit[-1]
    globs = [a for a in assignments if any(c in a.key for c in "*?[") and fnmatch.fnmatchcase(key, a.key)]
    return globs[-1] if globs else None


def forwarding_persist_repairs(assignments: list[Assignment], settings: Settings,
                               role: str) -> list[Assignment]:
    """The lines that would switch forwarding on at boot: every assignment of a forwarding key to
    another value than the profile's that systemd-sysctl applies after (or without) this tool's
    file. Empty when forwarding is allowed."""
    if forwarding_allowed(settings, role):
        return []
    out = []
    for key, want in FORWARD_SYSCTLS.items():
        for item in assignments:
            matches = item.key == key or (any(c in item.key for c in "*?[") and fnmatch.fnmatchcase(key, item.key))
            if matches and item.value != want and item.path != SYSCTL_CONF:
                out.append(item)
    return out


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
    commands = [NFT_PRESENT, NFT_LIST, NFTABLES_CONF_TEXT, NFTABLES_ENABLED, NFTABLES_ACTIVE,
                NFTABLES_EXEC, NFT_BOOT]
    if not forwarding_allowed(settings, profile.role):
        commands += [sysctl_read(key) for key in FORWARD_SYSCTLS] + [SYSCTL_CONFIG]
    return commands


MEASURE = Measure(
    name="firewall",
    title="default-deny inbound with the profile's allow-list, forwarding off on terminals",
    clauses=('6-7',),
    order=80,
    settings=Settings,
    observe=observe,
)
