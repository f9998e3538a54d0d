"""Resolve once: a host's Plan, made by the parent process and handed to every child.

``hardening verify`` and ``hardening deploy`` resolve each selected host exactly once into a
:class:`Plan`: the resolved profile and its digest, the measures to run, the commands to
observe, the SSH data, the asset register entry and the evaluated attestation items. The plans
are written to one JSON file (``plans.json``) that the pytest child (checks) and the pyinfra
child (deploys) read with :func:`read`; neither resolves profiles or runs the inventory again.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from hardening import attestations as attestations_mod
from hardening import measures as registry
from hardening.inventory import Asset, Host
from hardening.observe import unique
from hardening.profiles import Resolved

SCHEMA: Literal["hardening.plans/1"] = "hardening.plans/1"


class SSH(BaseModel):
    """How to reach the host (pyinfra's own host data keys, read once)."""

    model_config = ConfigDict(frozen=True)

    hostname: str
    port: int = 22
    user: str | None = None
    key: str | None = None
    known_hosts: str | None = None


class Plan(BaseModel):
    """Everything a child process needs about one host, resolved once."""

    model_config = ConfigDict(frozen=True)

    name: str
    local: bool = False
    sudo: bool = False
    profile: Resolved
    digest: str
    measures: list[str]
    commands: list[str]
    ssh: SSH | None = None
    asset: Asset | None = None
    groups: list[str] = []
    attestations: list[dict[str, Any]] = []
    waivers: list[dict[str, Any]] = []  # the waivers that apply to the host (hardening.waivers)
    # Devices the operator allowed `hardening deploy --format-data-disk` to format on this host.
    format_devices: list[str] = []

    def measure(self, name: str) -> Any:
        return self.profile.measure(name)

    @property
    def retention_days(self) -> int:
        return self.profile.evidence.retention_days


class Plans(BaseModel):
    """The file a parent hands to its children (``plans.json``)."""

    format: Literal["hardening.plans/1"] = SCHEMA
    plans: list[Plan]


def observation_commands(profile: Resolved, measures: list[str]) -> list[str]:
    """Identity first (every run records who the host says it is), then the measures'."""
    from hardening.evidence.model import IDENTITY_COMMANDS

    return unique([*IDENTITY_COMMANDS.values(), *registry.observations(profile, measures)])


def for_host(host: Host, profile: Resolved, measures: list[str],
             records: list[attestations_mod.Record] | None = None,
             waivers: list[dict[str, Any]] | None = None) -> Plan:
    data = host.data
    user = data.get("ssh_user")
    known = data.get("ssh_known_hosts_file") or str(Path.home() / ".ssh" / "known_hosts")
    return Plan(
        name=host.name,
        sudo=user not in (None, "root") or bool(data.get("_sudo")),
        profile=profile,
        digest=profile.digest(),
        measures=measures,
        commands=observation_commands(profile, measures),
        ssh=SSH(hostname=str(data.get("ssh_hostname") or host.name), port=int(data.get("ssh_port") or 22),
                user=user, key=data.get("ssh_key"), known_hosts=str(known)),
        asset=host.asset,
        groups=host.groups,
        attestations=attestations_mod.evaluate(profile, records or [], name=host.name, host=host),
        waivers=waivers or [],
    )


def for_local(profile: Resolved, measures: list[str],
              records: list[attestations_mod.Record] | None = None,
              waivers: list[dict[str, Any]] | None = None) -> Plan:
    name = socket.gethostname()
    return Plan(name=name, local=True, sudo=os.geteuid() != 0, profile=profile, digest=profile.digest(),
                measures=measures, commands=observation_commands(profile, measures),
                attestations=attestations_mod.evaluate(profile, records or [], name=name, host=None),
                waivers=waivers or [])


def write(plans: list[Plan], path: Path) -> Path:
    path.write_text(Plans(plans=plans).model_dump_json(), encoding="utf-8")
    return path


def read(path: str | Path) -> dict[str, Plan]:
    """The plans a parent wrote, by host name."""
    loaded = Plans.model_validate_json(Path(path).read_text(encoding="utf-8"))
    return {p.name: p for p in loaded.plans}
