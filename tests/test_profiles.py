"""Hardware profiles: inheritance, sensitivity levels, and errors that name file, key and expectation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.errors import ConfigError
from hardening.profiles import SENSITIVITIES, Profiles, validate_all


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    target = tmp_path / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", target)
    return target


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_profiles_resolve_at_every_level() -> None:
    names = validate_all(ROOT / "hwprofiles")
    assert {"base", "terminal", "server", "server-room"} <= set(names)


def test_chain_is_resolved_root_first() -> None:
    resolved = Profiles().resolve("server-room", "medium")
    assert resolved.chain == ["base", "server", "server-room"]
    assert resolved.role == "server-room"
    assert resolved.hardware.ups is True  # from server-room
    assert resolved.measure("timeouts").logind_idle_action == "ignore"  # from server
    assert resolved.measure("auth").pass_min_len == 12  # from base


def test_sensitivity_level_wins_over_plain_values() -> None:
    store = Profiles()
    low, medium, high = (store.resolve("terminal", s) for s in SENSITIVITIES)
    assert low.measure("timeouts").shell_tmout > medium.measure("timeouts").shell_tmout
    assert medium.measure("timeouts").shell_tmout > high.measure("timeouts").shell_tmout
    assert high.hardware.tpm == "required" and medium.hardware.tpm == "expected"
    assert len({low.digest(), medium.digest(), high.digest()}) == 3


def test_default_sensitivity_comes_from_the_profile() -> None:
    assert Profiles().resolve("server").sensitivity == "medium"


def test_attestations_accumulate_along_the_chain() -> None:
    ids = [a.id for a in Profiles().resolve("server-room").attestations]
    assert "input-verification" in ids and "locks-alarms" in ids


def test_child_value_overrides_parent(profiles_dir: Path) -> None:
    write(profiles_dir, "kiosk", "name: kiosk\nextends: terminal\nmeasures:\n  timeouts: {shell_tmout: 120}\n")
    resolved = Profiles(profiles_dir).resolve("kiosk", "medium")
    assert resolved.measure("timeouts").shell_tmout == 120
    assert resolved.role == "terminal"


@pytest.mark.parametrize(("text", "key", "expect"), [
    ("name: bad\nextends: terminal\nmeasures:\n  timeouts: {shell_tmout: soon}\n",
     "measures.timeouts.shell_tmout", "valid integer"),
    ("name: bad\nextends: terminal\nmeasures:\n  timeouts: {shell_tmuot: 60}\n",
     "measures.timeouts.shell_tmuot", "unknown key"),
    ("name: bad\nextends: terminal\nmeasures:\n  usbstick: {}\n", "measures.usbstick", "unknown measure"),
    ("name: bad\nextends: terminal\nlevels:\n  secret: {}\n", "levels.secret", "unknown sensitivity level"),
    ("name: bad\nextends: terminal\ncolour: red\n", "colour", "unknown key"),
    ("name: other\nextends: terminal\n", "name", "expected name: bad"),
    ("name: bad\nextends: terminal\nmeasures:\n  firewall: {management_networks: [10.0.0.300/8]}\n",
     "measures.firewall.management_networks", "does not appear to be an IPv4 or IPv6 network"),
])
def test_errors_name_file_key_and_expectation(profiles_dir: Path, text: str, key: str, expect: str) -> None:
    path = write(profiles_dir, "bad", text)
    with pytest.raises(ConfigError) as err:
        Profiles(profiles_dir).resolve("bad", "medium")
    message = str(err.value)
    assert str(path) in message and key in message and expect in message


def test_error_in_parent_names_the_parent_file(profiles_dir: Path) -> None:
    write(profiles_dir, "parent", "name: parent\nrole: server\nmeasures:\n  usb: {storage: maybe}\n")
    write(profiles_dir, "child", "name: child\nextends: parent\n")
    with pytest.raises(ConfigError, match=r"parent\.yaml: measures\.usb\.storage"):
        Profiles(profiles_dir).resolve("child")


def test_cycle_is_an_error(profiles_dir: Path) -> None:
    write(profiles_dir, "a", "name: a\nextends: b\n")
    write(profiles_dir, "b", "name: b\nextends: a\n")
    with pytest.raises(ConfigError, match="profile cycle: a -> b -> a"):
        Profiles(profiles_dir).resolve("a")


def test_unknown_profile_lists_the_known_ones(profiles_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown profile 'laptop' \(known: base, server"):
        Profiles(profiles_dir).resolve("laptop")


def test_unknown_parent_is_an_error(profiles_dir: Path) -> None:
    write(profiles_dir, "orphan", "name: orphan\nextends: nothing\nrole: server\n")
    with pytest.raises(ConfigError, match="unknown profile 'nothing'"):
        Profiles(profiles_dir).resolve("orphan")


def test_invalid_yaml_names_the_line(profiles_dir: Path) -> None:
    write(profiles_dir, "broken", "name: broken\nmeasures: [\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: invalid YAML at line"):
        Profiles(profiles_dir).resolve("broken")


def test_profile_without_role_is_abstract(profiles_dir: Path) -> None:
    with pytest.raises(ConfigError, match="no role"):
        Profiles(profiles_dir).resolve("base")


def test_shipped_profiles_state_each_value_once() -> None:
    """The baseline lives in the measures' Settings defaults; a shipped profile names only what
    differs from what it inherits (plain values; levels are overrides by design)."""
    from hardening import measures

    store = Profiles()
    for name in store.names():
        inherited: dict[str, dict[str, object]] = {m: measures.get(m).settings().model_dump(mode="json")
                                                   for m in measures.MEASURES}
        for pf in store.chain(name):
            for measure, values in (pf.data.get("measures") or {}).items():
                for key, value in (values or {}).items():
                    assert inherited[measure].get(key) != value, (
                        f"{pf.path}: measures.{measure}.{key} restates the value it inherits ({value!r})")
                    inherited[measure][key] = value
