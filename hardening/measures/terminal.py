"""terminal (6-12, 6-13, 6-14): limit the terminals that process personal data.

Desired state: SSH only for members of the profile's ``ssh_allow_groups`` (``AllowGroups`` in the
measure's sshd drop-in). The deploy refuses a profile that would exclude the account it connects
as (:func:`lockout_reason`), so it cannot lock itself out.

Observed only (checks): the host's identity against the inventory's asset register
(machine-id, DMI serial, MAC; 6-12/6-13) and, on a list of expected networks, the default route
and addresses (a terminal taken out and seen elsewhere, 6-14).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import Field, field_validator

from hardening.measures import _sshd
from hardening.measures._base import Measure, Strict, check_cidrs
from hardening.observe import json_output


class Settings(Strict):
    ssh_allow_groups: list[str] = Field(default_factory=lambda: ["sudo"])
    # Networks the host may appear on; a default route or address outside them is reported.
    expected_networks: list[str] = Field(default_factory=list)
    match_asset_register: bool = True

    @field_validator("expected_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return check_cidrs(value)

    @field_validator("ssh_allow_groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one group: an empty AllowGroups is not written and would "
                             "leave SSH open to every account")
        return [_sshd.check_token(v) for v in value]


def sshd_directives(settings: Settings) -> dict[str, str | list[str]]:
    """The sshd keywords this measure owns."""
    return {"AllowGroups": list(settings.ssh_allow_groups)}


def sshd_dropin(settings: Settings) -> str:
    """The text of /etc/ssh/sshd_config.d/10-hardening-terminal.conf."""
    return _sshd.render("terminal", ", ".join(MEASURE.clauses), sshd_directives(settings))


def allow_groups_problem(settings: Settings, groups: list[str]) -> str | None:
    """Why one connection class's AllowGroups (sshd -T) is wider than the profile's, or None:
    none at all lets every account in; a group outside the profile widens it; fewer is stricter."""
    if not groups:
        return "no AllowGroups: every account may log in"
    extra = sorted(set(groups) - set(settings.ssh_allow_groups))
    return f"AllowGroups {' '.join(groups)} adds {', '.join(extra)}" if extra else None


def lockout_reason(settings: Settings, user: str, groups: list[str]) -> str | None:
    """Why AllowGroups would shut the deploy account out, or None.

    sshd matches AllowGroups against the user's primary and supplementary groups; patterns
    (``*``, ``?``) are not evaluated here, so a profile relying on them must name the deploy
    account's group literally too.
    """
    if not user:
        return "could not tell which account the deploy connects as"
    if set(settings.ssh_allow_groups) & set(groups):
        return None
    return (f"ssh_allow_groups {settings.ssh_allow_groups} would shut out the deploy account "
            f"{user!r} (groups: {', '.join(groups) or 'none'})")


# -- observed state (checks) -------------------------------------------------------------------

def asset_fields(asset: Any, settings: Settings) -> dict[str, str]:
    """The register's values to compare (fields without a value are not compared)."""
    if not settings.match_asset_register or asset is None:
        return {}
    return {k: str(getattr(asset, k)).lower() for k in ("machine_id", "serial", "mac")
            if getattr(asset, k, None)}


def parse_macs(ip_link_json: list[dict[str, Any]]) -> list[str]:
    """MAC addresses of the non-loopback interfaces from ``ip -j link``."""
    return sorted({str(link.get("address", "")).lower() for link in ip_link_json
                   if link.get("link_type") != "loopback" and link.get("address")})


def parse_addresses(ip_addr_json: list[dict[str, Any]]) -> list[str]:
    """Global-scope addresses (IPv4 and IPv6) from ``ip -j addr``."""
    out: list[str] = []
    for link in ip_addr_json:
        for info in link.get("addr_info", []):
            if info.get("scope") == "global" and info.get("local"):
                out.append(str(info["local"]))
    return out


def parse_gateways(ip_route_json: list[dict[str, Any]]) -> list[str]:
    """Gateways of the default routes from ``ip -j route show default`` (both families)."""
    return [str(r["gateway"]) for r in ip_route_json if r.get("gateway")]


def outside(addresses: list[str], networks: list[str]) -> list[str]:
    """The addresses that belong to none of the expected networks."""
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    return [a for a in addresses
            if not any(ipaddress.ip_address(a) in n for n in nets
                       if n.version == ipaddress.ip_address(a).version)]


MACHINE_ID = "cat /etc/machine-id"
DMI_SERIAL = "cat /sys/class/dmi/id/product_serial"
IP_LINK = "ip -j link"
IP_ADDR = "ip -j addr"
IP_ROUTES = ("ip -j route show default", "ip -j -6 route show default")


def parse_ip_json(rc: int, stdout: str, command: str) -> list[dict[str, Any]]:
    """The list ``ip -j`` prints; ValueError when it failed or printed something else (a check
    that cannot read the network must not pass or fail as if it had)."""
    data = json_output(rc, stdout, command)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError(f"{command} printed JSON that is not a list of objects: {stdout[:200]!r}")
    return data


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch.

    The asset register's values and the network are read only where the profile asks for them.
    """
    settings: Settings = profile.measure("terminal")
    commands = list(_sshd.OBSERVE)
    if settings.match_asset_register:
        commands += [MACHINE_ID, DMI_SERIAL, IP_LINK]
    if settings.expected_networks:
        commands += [IP_ADDR, *IP_ROUTES]
    return commands


MEASURE = Measure(
    name="terminal",
    title="limit the terminals that process personal data",
    clauses=('6-12', '6-13', '6-14'),
    order=60,
    settings=Settings,
    observe=observe,
)
