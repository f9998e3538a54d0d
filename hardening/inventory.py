"""Inventories: pyinfra inventory files, read the way pyinfra reads them.

An inventory is a Python file whose module-level lists (or ``(hosts, data)`` tuples) are
groups of hosts, each host a name or a ``(name, data)`` tuple; ``group_data/<group>.py`` beside
it adds data per group (``all.py`` for every host). Precedence: host > group > all. The same
file feeds ``pyinfra`` for deploys and ``hardening verify`` for checks.

Our keys in host data (validated at load)::

    profile: "terminal"                  # a profile in hwprofiles/
    sensitivity: "high"                  # low | medium | high (default: the profile's)
    asset: {serial: "...", machine_id: "...", mac: "52:54:00:..", room: "3F-301", register_id: ".."}

pyinfra's own keys (``ssh_hostname``, ``ssh_port``, ``ssh_user``, ``ssh_key``,
``ssh_known_hosts_file``, ``_sudo`` ...) are passed through; verify reads the ssh ones too.

We do not import pyinfra_cli to do this: importing it monkey-patches the standard library
with gevent for the whole process.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from hardening.errors import ConfigError
from hardening.measures._base import Strict
from hardening.profiles import SENSITIVITIES, Profiles, Resolved


class Asset(Strict):
    serial: str | None = None
    machine_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    mac: str | None = Field(default=None, pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
    room: str | None = None
    register_id: str | None = None


@dataclass
class Host:
    name: str
    groups: list[str]
    data: dict[str, Any]
    source: Path

    @property
    def profile_name(self) -> str:
        return str(self.data["profile"])

    @property
    def sensitivity(self) -> str | None:
        value = self.data.get("sensitivity")
        return str(value) if value is not None else None

    @property
    def asset(self) -> Asset:
        return Asset.model_validate(self.data.get("asset") or {})

    def resolve(self, profiles: Profiles) -> Resolved:
        try:
            return profiles.resolve(self.profile_name, self.sensitivity)
        except ConfigError as exc:
            raise ConfigError(str(self.source), f"{exc}", key=f"host {self.name}") from None


@dataclass
class Inventory:
    path: Path
    hosts: list[Host] = field(default_factory=list)

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for host in self.hosts:
            for group in host.groups:
                out.setdefault(group, []).append(host.name)
        return out

    def select(self, limit: tuple[str, ...] | list[str] = ()) -> list[Host]:
        """Hosts matching --limit (host or group names); all hosts when limit is empty."""
        if not limit:
            return list(self.hosts)
        groups = self.groups()
        names = {h.name for h in self.hosts}
        chosen: set[str] = set()
        for item in limit:
            if item in names:
                chosen.add(item)
            elif item in groups:
                chosen.update(groups[item])
            else:
                raise ConfigError(str(self.path), f"--limit {item!r} is neither a host nor a group "
                                  f"(groups: {', '.join(sorted(groups))})")
        return [h for h in self.hosts if h.name in chosen]


def _exec(path: Path) -> dict[str, Any]:
    try:
        code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    except SyntaxError as exc:
        raise ConfigError(str(path), f"Python syntax error at line {exc.lineno}: {exc.msg}") from None
    namespace: dict[str, Any] = {"__file__": str(path), "__name__": "inventory"}
    try:
        exec(code, namespace)
    except Exception as exc:  # the user's code: any error becomes one line naming the file
        line = next((f.lineno for f in reversed(traceback.extract_tb(exc.__traceback__))
                     if f.filename == str(path)), None)
        where = f" at line {line}" if line else ""
        raise ConfigError(str(path), f"Python error{where}: {type(exc).__name__}: {exc}") from None
    return namespace


def _entries(path: Path, group: str, value: Any) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    data: dict[str, Any] = {}
    if isinstance(value, tuple):
        if len(value) != 2 or not isinstance(value[1], dict):
            raise ConfigError(str(path), "a group tuple must be (hosts, data)", key=group)
        value, data = value
    hosts: list[tuple[str, dict[str, Any]]] = []
    for item in value:
        if isinstance(item, str):
            hosts.append((item, {}))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], dict):
            hosts.append((item[0], item[1]))
        else:
            raise ConfigError(str(path), f"expected a host name or (name, data), got {item!r}", key=group)
    return hosts, data


def _group_data(directory: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if directory.is_dir():
        for file in sorted(directory.glob("*.py")):
            ns = _exec(file)
            out[file.stem] = {k: v for k, v in ns.items()
                              if not k.startswith("_") and not callable(v) and type(v).__name__ != "module"}
    return out


def load(path: str | Path, profiles: Profiles | None = None) -> Inventory:
    """Load and validate an inventory; with `profiles`, also resolve every host's profile."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), "inventory file not found")
    namespace = _exec(path)
    groups: dict[str, tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]] = {}
    for key, value in namespace.items():
        if key.startswith("_") or not isinstance(value, list | tuple):
            continue
        groups[key] = _entries(path, key, value)
    group_data = _group_data(path.parent / "group_data")
    all_data = {**group_data.get("all", {}), **(groups.pop("all", ([], {}))[1])}

    order: list[str] = []
    host_data: dict[str, dict[str, Any]] = {}
    host_groups: dict[str, list[str]] = {}
    merged_group: dict[str, dict[str, Any]] = {}
    for group, (hosts, gdata) in groups.items():
        merged_group[group] = {**group_data.get(group, {}), **gdata}
        for name, data in hosts:
            if name not in host_data:
                order.append(name)
                host_data[name] = {}
                host_groups[name] = []
            host_data[name].update(data)
            host_groups[name].append(group)
    if not order:
        raise ConfigError(str(path), "no hosts: expected module-level lists of host names or (name, data)")

    inventory = Inventory(path)
    for name in order:
        data = dict(all_data)
        for group in host_groups[name]:
            data.update(merged_group[group])
        data.update(host_data[name])
        host = Host(name, [*host_groups[name], path.stem], data, path)
        _validate(host)
        if profiles is not None:
            host.resolve(profiles)
        inventory.hosts.append(host)
    return inventory


def _validate(host: Host) -> None:
    where = str(host.source)
    if not isinstance(host.data.get("profile"), str):
        raise ConfigError(where, "expected profile: <name of a profile in hwprofiles/>",
                          key=f"host {host.name}: profile")
    if host.sensitivity is not None and host.sensitivity not in SENSITIVITIES:
        raise ConfigError(where, f"expected one of {', '.join(SENSITIVITIES)}, got {host.sensitivity!r}",
                          key=f"host {host.name}: sensitivity")
    try:
        host.asset  # noqa: B018 - validates
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(where, err["msg"], key=f"host {host.name}: asset.{loc}") from None
