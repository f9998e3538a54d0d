"""Confirmation for 4 hosts at once, with one host slowed down (issue 12), on lab containers.

Four containers get the firewall deploy at once. On the first of them (the one a host-after-host
confirmation would take first), every NEW SSH connection made while a guarded change is pending
waits SLOW seconds before its command runs (``/etc/ssh/sshrc``, run by sshd for every session;
pyinfra's own connection, already known before the change went live, is not slowed). All four
must be confirmed and none rolled back; the three others within seconds of going live, not after
the slow one; the whole confirmation about as long as the slow host's, not the sum.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening.lab import Lab, LabHost
from tests.helpers import cli

pytestmark = pytest.mark.lab

SLOW = 25
NAMES = ("cp1", "cp2", "cp3", "cp4")  # cp1 is slowed down and comes first in the inventory
KIND = os.environ.get("HARDENING_CONFIRM_HOSTS", "container")  # "vm": the same on four emulated machines
SSHRC = f"""\
# lab (tests/test_lab_confirm_parallel.py): a NEW connection waits {SLOW} s while a change is pending
port=${{SSH_CONNECTION#* }}; port=${{port%% *}}
if ls /run/hardening/pending/* >/dev/null 2>&1; then
    grep -qx "$port" /run/lab-seen-ports 2>/dev/null || sleep {SLOW}
else
    echo "$port" >> /run/lab-seen-ports
fi
"""


@pytest.fixture(scope="module")
def hosts(lab: Lab) -> Iterator[dict[str, LabHost]]:
    started = lab.start_many([(name, "server", "high") for name in NAMES], kind=KIND)
    try:
        yield {h.name: h for h in started}
    finally:
        for name in NAMES:
            if (lab.directory / "hosts" / name).exists():
                lab.stop(name)


def slow_down(host: LabHost) -> None:
    script = shlex.quote(SSHRC)
    host.run(f"sudo sh -c 'install -m 666 /dev/null /run/lab-seen-ports' && "
             f"printf %s {script} | sudo tee /etc/ssh/sshrc >/dev/null")


def test_four_hosts_confirmed_at_once_with_one_slow(lab: Lab, hosts: dict[str, LabHost], tmp_path: Path) -> None:
    slow_down(hosts["cp1"])
    inventory = lab.write_inventory(tmp_path / "lab.py")
    proc = cli("deploy", inventory, "-m", "firewall", "-p", "4", timeout=600)
    output = proc.stdout + proc.stderr
    print(output[output.find("--> Confirming"):])
    assert proc.returncode == 0, output
    after = {m.group(1): int(m.group(2)) for m in re.finditer(
        r"^\[\d/4\] (cp\d): CONFIRMED \(1 attempt, (\d+) s after going live\): confirmed: firewall$",
        proc.stderr, re.M)}
    assert set(after) == set(NAMES), output
    assert after["cp1"] >= SLOW
    assert all(after[n] < 10 for n in NAMES[1:]), after  # not held up behind the slow host
    order = re.findall(r"^\[\d/4\] (cp\d):", proc.stderr, re.M)
    assert order[-1] == "cp1", order  # each reported as it completes
    took = float(re.search(r"^--> Confirmation done in ([\d.]+) s: 4 confirmed, 0 rolled back",
                           proc.stderr, re.M).group(1))  # type: ignore[union-attr]
    assert SLOW <= took < SLOW + 10, took  # the slow host's time, not the sum
    assert "waiting for cp1" in proc.stderr  # never a silent wait
    for host in hosts.values():
        state = host.run("find /run/hardening/pending /run/hardening/rolled-back -type f; "
                         "systemctl is-active hardening-rollback-firewall.timer; "
                         "sudo nft list table inet hardening >/dev/null && echo live", check=False).stdout
        assert state.split() == ["inactive", "live"], (host.name, state)  # nothing pending or rolled back
