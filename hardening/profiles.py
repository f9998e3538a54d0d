"""Hardware profiles: YAML files in hwprofiles/, with `extends` and sensitivity levels.

A profile file::

    name: terminal            # must equal the file name without .yaml
    extends: base             # optional; chains are resolved root first, cycles are errors
    role: terminal            # terminal | server | server-room
    default_sensitivity: medium
    measures:                 # per measure, the keys of hardening.measures.NAME.Settings
      timeouts: {shell_tmout: 900}
    levels:                   # low | medium | high: overrides that win over every plain value
      high:
        measures:
          timeouts: {shell_tmout: 300}
    hardware: {tpm: expected, secure_boot: expected, ups: false, raid: false}
    evidence: {retention_days: 1825}
    deploy: {confirm_timeout: 120, run_allowance: 900}   # the rollback watchdog (deploys/_rollback.py)
    attestations:             # what only a person can see, attested with who/when/until when
      - {id: room-lock, clauses: ["7-4"], ja: "...", en: "...", valid_days: 90}

Attestations accumulate along the chain by id (a child may redefine one).
Resolution for a host: the plain `measures` of each file in the chain (root first), then the
`levels[<sensitivity>]` of each file in the chain, so a sensitivity level always wins.
Every error names the file, the key and what was expected.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from hardening import HWPROFILES
from hardening.errors import ConfigError
from hardening.measures import MEASURES, settings_model
from hardening.measures._base import Strict

Sensitivity = Literal["low", "medium", "high"]
SENSITIVITIES: tuple[str, ...] = get_args(Sensitivity)
TOP_KEYS = {
    "name", "extends", "description", "role", "default_sensitivity",
    "measures", "levels", "hardware", "evidence", "deploy", "attestations",
}
DEFAULT_DIR = HWPROFILES

Expectation = Literal["required", "expected", "ignore"]


class Hardware(Strict):
    tpm: Expectation = "ignore"
    secure_boot: Expectation = "ignore"
    ups: bool = False
    raid: bool = False
    redundant_psu: bool = False


class EvidenceSettings(Strict):
    retention_days: int = Field(default=1825, ge=1)


class DeploySettings(Strict):
    """The rollback watchdog of lockout-prone changes (sshd, PAM, sudoers, USB policy;
    deploys/_rollback.py). ``confirm_timeout``: seconds, counted from the end of the host's
    deploy, within which a NEW connection must confirm the host, else every watched change
    rolls back. ``run_allowance``: added while the host's deploy is still running (a watched
    change armed early must not roll back while later measures still install packages)."""

    confirm_timeout: int = Field(default=120, ge=5, le=3600)
    run_allowance: int = Field(default=900, ge=0, le=7200)


class Attestation(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    clauses: list[str]
    ja: str
    en: str
    valid_days: int = Field(default=365, ge=1)


Measures: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Measures",
    __config__=ConfigDict(extra="forbid", frozen=True),
    **{name: (settings_model(name), settings_model(name)()) for name in MEASURES},
)


class Resolved(Strict):
    name: str
    chain: list[str]
    role: Literal["terminal", "server", "server-room"]
    sensitivity: Sensitivity
    description: str = ""
    measures: Measures  # type: ignore[valid-type]
    hardware: Hardware = Hardware()
    evidence: EvidenceSettings = EvidenceSettings()
    deploy: DeploySettings = DeploySettings()
    attestations: list[Attestation] = []

    def measure(self, name: str) -> Any:
        """The settings of one measure, e.g. ``profile.measure("usb").storage``."""
        return getattr(self.measures, name)

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def digest(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ProfileFile:
    path: Path
    data: dict[str, Any]


@dataclass
class _Merged:
    values: dict[str, Any] = field(default_factory=dict)
    origin: dict[tuple[str, ...], Path] = field(default_factory=dict)

    def merge(self, data: dict[str, Any], path: Path, prefix: tuple[str, ...] = ()) -> None:
        _deep_merge(self.values, data, self.origin, path, prefix)

    def source_of(self, loc: tuple[str, ...]) -> Path | None:
        for cut in range(len(loc), 0, -1):
            if loc[:cut] in self.origin:
                return self.origin[loc[:cut]]
        return None


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """The layers merged as a profile chain merges its files: dicts key by key, lists and
    scalars replace (e.g. an agency's additions on a shipped profile's ``measures``)."""
    out = _Merged()
    for layer in layers:
        out.merge(layer, Path("-"))
    return out.values


def _deep_merge(
    into: dict[str, Any],
    data: dict[str, Any],
    origin: dict[tuple[str, ...], Path],
    path: Path,
    prefix: tuple[str, ...],
) -> None:
    """Dicts merge key by key; lists and scalars replace. Records which file set each key."""
    for key, value in data.items():
        loc = (*prefix, str(key))
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value, origin, path, loc)
        else:
            into[key] = _copy(value)
            origin[loc] = path
            if isinstance(value, dict):
                _mark_all(value, origin, path, loc)


def _mark_all(value: dict[str, Any], origin: dict[tuple[str, ...], Path], path: Path,
              prefix: tuple[str, ...]) -> None:
    for key, sub in value.items():
        origin[(*prefix, str(key))] = path
        if isinstance(sub, dict):
            _mark_all(sub, origin, path, (*prefix, str(key)))


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


class Profiles:
    """The profiles of a directory, loaded and checked lazily by name.

    An agency keeps its own profile directory outside the tool; its profiles may extend the
    shipped ones (``extends: terminal``): a name not found in the directory is looked up in the
    shipped hwprofiles/ after it. A profile in the agency's directory wins over a shipped one
    of the same name.
    """

    def __init__(self, directory: Path = DEFAULT_DIR) -> None:
        self.directory = directory
        self.search = [directory] if directory.resolve() == DEFAULT_DIR.resolve() else [directory, DEFAULT_DIR]
        self._files: dict[str, ProfileFile] = {}

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            raise ConfigError(str(self.directory), "profile directory not found")
        return sorted({p.stem for d in self.search if d.is_dir() for p in d.glob("*.yaml")})

    def path_of(self, name: str) -> Path:
        for directory in self.search:
            if (directory / f"{name}.yaml").is_file():
                return directory / f"{name}.yaml"
        return self.directory / f"{name}.yaml"

    def file(self, name: str) -> ProfileFile:
        if name not in self._files:
            self._files[name] = self._load(name)
        return self._files[name]

    def _load(self, name: str) -> ProfileFile:
        path = self.path_of(name)
        if not path.is_file():
            known = ", ".join(self.names()) or "none"
            raise ConfigError(str(path), f"unknown profile {name!r} (known: {known})")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark else "YAML"
            raise ConfigError(str(path), f"invalid YAML at {where}: {getattr(exc, 'problem', exc)}") from None
        if not isinstance(data, dict):
            raise ConfigError(str(path), "expected a mapping at the top level")
        _check_shape(path, name, data)
        return ProfileFile(path, data)

    def chain(self, name: str) -> list[ProfileFile]:
        """The files from the root of the `extends` chain down to `name`."""
        seen: list[str] = []
        current: str | None = name
        while current is not None:
            if current in seen:
                cycle = " -> ".join([*seen, current])
                raise ConfigError(str(self.file(seen[-1]).path), f"profile cycle: {cycle}", key="extends")
            seen.append(current)
            current = self.file(current).data.get("extends")
        return [self.file(n) for n in reversed(seen)]

    def resolve(self, name: str, sensitivity: str | None = None) -> Resolved:
        chain = self.chain(name)
        leaf = chain[-1]
        merged = _Merged()
        attestations: dict[str, Any] = {}
        for pf in chain:
            top = {k: v for k, v in pf.data.items()
                   if k not in {"levels", "extends", "name", "attestations"}}
            merged.merge(top, pf.path)
            for item in pf.data.get("attestations") or []:
                key = item.get("id") if isinstance(item, dict) else None
                attestations[str(key)] = item
                merged.origin[("attestations", str(len(attestations) - 1))] = pf.path
        level = sensitivity or merged.values.get("default_sensitivity") or "medium"
        if level not in SENSITIVITIES:
            raise ConfigError(str(leaf.path), f"unknown sensitivity {level!r}, expected one of "
                              f"{', '.join(SENSITIVITIES)}", key="sensitivity")
        for pf in chain:
            override = (pf.data.get("levels") or {}).get(level)
            if override:
                merged.merge(override, pf.path)
        values = dict(merged.values)
        values.pop("default_sensitivity", None)
        values["attestations"] = list(attestations.values())
        values.update(name=name, chain=[pf.path.stem for pf in chain], sensitivity=level)
        if "role" not in values:
            raise ConfigError(str(leaf.path), "no role in the profile or what it extends; expected "
                              "terminal, server or server-room", key="role")
        try:
            return Resolved.model_validate(values)
        except ValidationError as exc:
            raise _explain(exc, merged, leaf.path) from None


def _check_shape(path: Path, name: str, data: dict[str, Any]) -> None:
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise ConfigError(str(path), f"unknown key, expected one of {', '.join(sorted(TOP_KEYS))}",
                          key=unknown[0])
    if data.get("name") != name:
        raise ConfigError(str(path), f"expected name: {name} (the file name)", key="name")
    extends = data.get("extends")
    if extends is not None and not isinstance(extends, str):
        raise ConfigError(str(path), "expected the name of one profile", key="extends")
    levels = data.get("levels") or {}
    if not isinstance(levels, dict):
        raise ConfigError(str(path), "expected a mapping of sensitivity levels", key="levels")
    for level, body in levels.items():
        if level not in SENSITIVITIES:
            raise ConfigError(str(path), f"unknown sensitivity level, expected one of "
                              f"{', '.join(SENSITIVITIES)}", key=f"levels.{level}")
        if not isinstance(body, dict) or set(body) - {"measures", "hardware", "evidence", "deploy"}:
            raise ConfigError(str(path), "expected a mapping with measures, hardware, evidence or deploy",
                              key=f"levels.{level}")
    measures = data.get("measures") or {}
    if not isinstance(measures, dict):
        raise ConfigError(str(path), "expected a mapping of measures", key="measures")
    for level_body in [measures, *[(b or {}).get("measures") or {} for b in levels.values()]]:
        for measure in level_body:
            if measure not in MEASURES:
                raise ConfigError(str(path), f"unknown measure, expected one of {', '.join(MEASURES)}",
                                  key=f"measures.{measure}")


def _explain(exc: ValidationError, merged: _Merged, fallback: Path) -> ConfigError:
    err = exc.errors()[0]
    loc = tuple(str(part) for part in err["loc"])
    source = merged.source_of(loc) or fallback
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif "input" in err and not isinstance(err["input"], dict):
        message = f"{message} (got {err['input']!r})"
    return ConfigError(str(source), message, key=".".join(loc))


def validate_all(directory: Path = DEFAULT_DIR) -> list[str]:
    """Resolve every profile at every level; raises on the first broken one."""
    profiles = Profiles(directory)
    names = profiles.names()
    for name in names:
        if not any("role" in pf.data for pf in profiles.chain(name)):
            continue  # abstract: only extended by others, already shape-checked by chain()
        for level in SENSITIVITIES:
            profiles.resolve(name, level)
    return names
