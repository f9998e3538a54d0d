"""terminal (6-12, 6-13, 6-14): desired state, lockout refusal and the readings, without a host."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hardening.inventory import Asset
from hardening.measures import _sshd
from hardening.measures import terminal as measure

IP_ADDR = [
    {"ifname": "lo", "addr_info": [{"local": "127.0.0.1", "scope": "host"}]},
    {"ifname": "eth0", "addr_info": [{"local": "10.1.2.3", "scope": "global"},
                                     {"local": "fe80::1", "scope": "link"},
                                     {"local": "2001:db8::5", "scope": "global"}]},
]


def test_sshd_dropin_allow_groups() -> None:
    text = measure.sshd_dropin(measure.Settings(ssh_allow_groups=["sudo", "staff"]))
    assert text.endswith("AllowGroups sudo staff\n")
    assert text.startswith("# Managed by hardening (terminal")


@pytest.mark.parametrize("groups", [[], ["sudo\nPermitRootLogin yes"], ["sudo staff"], ["a#b"]])
def test_invalid_groups_refused(groups: list[str]) -> None:
    with pytest.raises(ValidationError):
        measure.Settings(ssh_allow_groups=groups)


def test_render_refuses_injection_even_without_the_model() -> None:
    with pytest.raises(ValueError):
        _sshd.render("terminal", "6-12", {"AllowGroups": ["sudo\nPermitRootLogin yes"]})
    with pytest.raises(ValueError):
        _sshd.render("terminal", "6-12", {"Allow Groups": "sudo"})


def test_lockout_refused() -> None:
    settings = measure.Settings(ssh_allow_groups=["admins"])
    reason = measure.lockout_reason(settings, "hardening", ["hardening", "sudo"])
    assert reason and "hardening" in reason
    assert measure.lockout_reason(settings, "hardening", ["admins"]) is None
    assert measure.lockout_reason(settings, "", []) is not None


def test_parse_effective_accumulates_allowgroups() -> None:
    parsed = _sshd.parse_effective("port 22\nallowgroups sudo\nallowgroups staff\nciphers a,b\n")
    assert parsed["allowgroups"] == ["sudo", "staff"]
    assert parsed["ciphers"] == ["a,b"]


def test_asset_fields_only_those_in_the_register() -> None:
    asset = Asset(machine_id="0" * 32, mac="52:54:00:12:34:56")
    assert measure.asset_fields(asset, measure.Settings()) == {
        "machine_id": "0" * 32, "mac": "52:54:00:12:34:56"}
    assert measure.asset_fields(asset, measure.Settings(match_asset_register=False)) == {}
    assert measure.asset_fields(None, measure.Settings()) == {}


def test_network_readings() -> None:
    assert measure.parse_addresses(IP_ADDR) == ["10.1.2.3", "2001:db8::5"]
    links = [{"ifname": "lo", "link_type": "loopback", "address": "00:00:00:00:00:00"},
             {"ifname": "eth0", "link_type": "ether", "address": "52:54:00:AA:BB:CC"}]
    assert measure.parse_macs(links) == ["52:54:00:aa:bb:cc"]
    assert measure.parse_gateways([{"dst": "default", "gateway": "10.1.2.1"}, {"dst": "default"}]) == ["10.1.2.1"]
    assert measure.outside(["10.1.2.3", "2001:db8::5", "192.0.2.9"], ["10.0.0.0/8", "2001:db8::/32"]) == [
        "192.0.2.9"]


def test_expected_networks_validated() -> None:
    with pytest.raises(ValidationError):
        measure.Settings(expected_networks=["10.0.0.0/33"])


def test_ip_json_unreadable_is_an_error() -> None:
    """ip -j output that is not a JSON list is an error, never an empty network (it was [])."""
    assert measure.parse_ip_json(0, '[{"ifname": "lo"}]', "ip -j link") == [{"ifname": "lo"}]
    assert measure.parse_ip_json(0, "[]", "ip -j route show default") == []
    for rc, out in ((0, ""), (0, "Object \"link\" is unknown"), (0, '{"ifname": "lo"}'), (0, "[1, 2]"),
                    (255, "[]")):
        with pytest.raises(ValueError):
            measure.parse_ip_json(rc, out, "ip -j link")


def test_ip_json_of_this_machine() -> None:
    import shutil
    import subprocess
    if shutil.which("ip") is None:
        pytest.skip("no iproute2 here")
    for command in (measure.IP_LINK, measure.IP_ADDR, *measure.IP_ROUTES):
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
        assert isinstance(measure.parse_ip_json(out.returncode, out.stdout, command), list)


def test_observe_follows_the_profile() -> None:
    from hardening.profiles import Profiles
    profile = Profiles().resolve("terminal")
    commands = measure.observe(profile)
    assert commands[:len(_sshd.OBSERVE)] == _sshd.OBSERVE
    assert measure.MACHINE_ID in commands and measure.IP_LINK in commands
    assert measure.IP_ADDR not in commands                       # no expected networks in the profile
    settings = measure.Settings(expected_networks=["10.0.0.0/8"], match_asset_register=False)

    class Narrowed:
        def measure(self, name: str) -> measure.Settings:
            return settings

    commands = measure.observe(Narrowed())
    assert measure.IP_LINK not in commands and [measure.IP_ADDR, *measure.IP_ROUTES] == commands[-3:]


def test_defaults_are_the_base_profile() -> None:
    from hardening.profiles import Profiles
    assert Profiles().resolve("terminal").measure("terminal") == measure.Settings()
