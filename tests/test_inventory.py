"""Inventories: pyinfra's format, group data precedence, and errors that name file and host."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardening import ROOT
from hardening.errors import ConfigError
from hardening.inventory import load
from hardening.profiles import Profiles


def write(tmp_path: Path, text: str, name: str = "agency.py") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


AGENCY_PROFILES = ROOT / "inventories" / "profiles"


def test_example_inventory_loads_and_resolves() -> None:
    profiles = Profiles(AGENCY_PROFILES)
    inv = load(ROOT / "inventories" / "example_agency.py", profiles)
    groups = inv.groups()
    assert len(groups["terminals"]) == 2 and len(groups["servers"]) == 2
    assert set(groups["example_agency"]) == {h.name for h in inv.hosts}  # file-name group, like pyinfra
    db = next(h for h in inv.hosts if h.name.startswith("db-juki"))
    resolved = db.resolve(profiles)
    assert resolved.sensitivity == "high" and resolved.chain == ["base", "server", "server-room", "soumu-server-room"]
    assert resolved.role == "server-room" and {a.id for a in resolved.attestations} >= {"locks-alarms", "entrances"}
    assert db.asset.room == "本庁舎B1 サーバ室"


def test_example_fills_what_checks_report_as_not_configured() -> None:
    """Every host has the asset register fields the terminal checks match, and its profile names
    the networks it may appear on and its personal-data directories."""
    from hardening.measures import terminal

    profiles = Profiles(AGENCY_PROFILES)
    inv = load(ROOT / "inventories" / "example_agency.py", profiles)
    for host in inv.hosts:
        resolved = host.resolve(profiles)
        settings = resolved.measure("terminal")
        assert set(terminal.asset_fields(host.asset, settings)) == {"machine_id", "serial", "mac"}, host.name
        assert settings.expected_networks, host.name
        assert resolved.measure("auth").personal_data, host.name
        assert resolved.chain[-2] in ("terminal", "server", "server-room")  # extends a shipped profile


def test_example_needs_its_agency_profiles() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'soumu-terminal'"):
        load(ROOT / "inventories" / "example_agency.py", Profiles())


def test_precedence_host_over_group_over_all(tmp_path: Path) -> None:
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "all.py").write_text("sensitivity = 'low'\nssh_port = 2222\n")
    (tmp_path / "group_data" / "servers.py").write_text("sensitivity = 'medium'\n")
    path = write(tmp_path, "servers = [('a', {'profile': 'server'}), ('b', {'profile': 'server', "
                           "'sensitivity': 'high'})]\nterminals = [('t', {'profile': 'terminal'})]\n")
    hosts = {h.name: h for h in load(path).hosts}
    assert hosts["a"].sensitivity == "medium" and hosts["a"].data["ssh_port"] == 2222
    assert hosts["b"].sensitivity == "high"
    assert hosts["t"].sensitivity == "low"


def test_group_tuple_with_data(tmp_path: Path) -> None:
    path = write(tmp_path, "servers = (['a', 'b'], {'profile': 'server'})\n")
    assert [h.profile_name for h in load(path).hosts] == ["server", "server"]


def test_limit_by_host_and_group(tmp_path: Path) -> None:
    path = write(tmp_path, "servers = [('a', {'profile': 'server'})]\nterminals = [('t', {'profile': 'terminal'})]\n")
    inv = load(path)
    assert [h.name for h in inv.select(("terminals",))] == ["t"]
    assert [h.name for h in inv.select(("a", "t"))] == ["a", "t"]
    with pytest.raises(ConfigError, match="--limit 'x' is neither a host nor a group"):
        inv.select(("x",))


@pytest.mark.parametrize(("text", "expect"), [
    ("servers = [('a', {'profile': 'server'})\n", r"Python syntax error at line 1"),
    ("x = 1\nservers = [('a', {'profile': 'server'})]\nraise ValueError('oops')\n",
     r"Python error at line 3: ValueError: oops"),
    ("servers = [('a', {})]\n", r"host a: profile: expected profile"),
    ("servers = [('a', {'profile': 'server', 'sensitivity': 'secret'})]\n",
     r"host a: sensitivity: expected one of low, medium, high"),
    ("servers = [('a', {'profile': 'server', 'asset': {'mac': 'nope'}})]\n", r"host a: asset.mac"),
    ("servers = [('a', {'profile': 'server', 'asset': {'colour': 'red'}})]\n", r"host a: asset.colour"),
    ("servers = [42]\n", r"servers: expected a host name or \(name, data\)"),
    ("nothing = 1\n", r"no hosts"),
])
def test_broken_inventory_names_file_and_problem(tmp_path: Path, text: str, expect: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expect) as err:
        load(path)
    assert str(path) in str(err.value)


def test_unknown_profile_names_the_host(tmp_path: Path) -> None:
    path = write(tmp_path, "servers = [('a', {'profile': 'mainframe'})]\n")
    with pytest.raises(ConfigError, match=r"host a.*unknown profile 'mainframe'"):
        load(path, Profiles())


def test_missing_inventory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inventory file not found"):
        load(tmp_path / "none.py")
