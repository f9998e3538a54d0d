"""terminal.expected_network (6-14: a terminal taken out and seen elsewhere) on one lab container,
through the real command line, with a profile that names the lab's container networks
(10.233.0.0/16: the container's address and its gateway).

1. As started: the address and the default gateway are inside: pass.
2. An IPv6 default route through a link-local router (fe80::1, as routers advertise themselves):
   still a pass, the gateway recorded as naming no network.
3. An address on another network (198.51.100.23, as a terminal plugged into another office's
   network; a container cannot make a second interface, so its own gets it): fail, naming it.
4. A global IPv6 address outside (2001:db8::5): fail, naming it too.
5. Both removed: pass again. The check is observe-only (no deploy changes where a host is).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hardening.lab import Lab, LabHost
from tests.helpers import lab_hosts, profiles_with, verified_checks

pytestmark = pytest.mark.lab

HOST, CHECK = "net-term", "terminal.expected_network"


@dataclass(frozen=True)
class Setup:
    host: LabHost
    inventory: Path  # this host alone
    profiles: Path  # the shipped ones, the terminal naming the lab's container networks

    def judged(self, evidence: Path) -> dict[str, Any]:
        return verified_checks(self.inventory, evidence, "-m", "terminal", "--profiles", self.profiles)[CHECK]


@pytest.fixture(scope="module")
def setup(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("net")
    with lab_hosts(lab, (HOST, "terminal", "medium"), kind="container") as started:
        yield Setup(started[HOST], lab.write_inventory(directory / "lab.py", names=[HOST]),
                    profiles_with(directory / "hwprofiles", "terminal",
                                  "  terminal:\n    expected_networks: [10.233.0.0/16]\n"))


def test_seen_outside_the_expected_networks_fails(setup: Setup, tmp_path: Path) -> None:
    host = setup.host
    first = setup.judged(tmp_path)
    assert first["status"] == "pass", first
    assert first["observed"]["addresses"][0].startswith("10.233."), first

    host.run("sudo sh -c 'sysctl -qw net.ipv6.conf.host0.disable_ipv6=0 2>/dev/null; "
             "ip -6 route add default via fe80::1 dev host0'")
    linked = setup.judged(tmp_path)
    assert linked["status"] == "pass", linked
    assert linked["observed"]["link-local gateways (valid on any link: name no network, not judged)"] == ["fe80::1"]

    host.run("sudo ip addr add 198.51.100.23/24 dev host0")
    away = setup.judged(tmp_path)
    assert away["status"] == "fail" and "198.51.100.23" in away["message"], away

    host.run("sudo sh -c 'ip addr del 198.51.100.23/24 dev host0 && ip addr add 2001:db8::5/64 dev host0 nodad'")
    away6 = setup.judged(tmp_path)
    assert away6["status"] == "fail" and "2001:db8::5" in away6["message"], away6

    host.run("sudo sh -c 'ip addr del 2001:db8::5/64 dev host0 && ip -6 route del default via fe80::1 dev host0'")
    back = setup.judged(tmp_path)
    assert back["status"] == "pass", back
