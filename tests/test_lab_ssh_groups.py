"""SSH access through ssh-users, not the admin group, on one lab container (server profile),
through the real command line:

(a) a fresh host where a non-admin account (alice, an authorized_keys file) and a sudoer (sam,
    keys too) log in today: ``deploy -m terminal`` refuses, naming the host, the group and both
    accounts, exits non-zero, and leaves sshd's configuration and the groups as they were;
(b) once alice is in ssh-users the deploy applies: it adds its own account to the group, alice
    and the deploy account open NEW SSH sessions (no shared connection), the sudoer outside the
    group cannot; ``hardening verify`` judges AllowGroups a pass; a second deploy changes nothing;
(c) on a second container, a profile with ``ssh_allow_groups_confirmed: true`` applies although
    the only other account that logs in loses SSH.

The deploy and verify subprocesses import ``hardening`` the way ``python -m`` finds it: run from
a worktree with ``PYTHONPATH=<worktree>``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost
from tests.helpers import cli, lab_hosts

pytestmark = pytest.mark.lab

HOST = "ssh-groups"
SSHD_FILES = ("sudo sh -c 'for f in /etc/ssh/sshd_config /etc/ssh/sshd_config.d/*; do echo \"== $f\"; "
              "cat \"$f\"; done' | sha256sum")


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (HOST, "server", "medium"), kind="container") as started:
        yield started[HOST]


@pytest.fixture(scope="module")
def keys(host: LabHost, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """alice (no admin) and sam (a sudoer), each with a key of its own in authorized_keys."""
    directory = tmp_path_factory.mktemp("keys")
    out = {}
    for user, groups in (("alice", ""), ("sam", "-G sudo")):
        key = directory / user
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", user, "-f", str(key)], check=True)
        public = key.with_suffix(".pub").read_text().strip()
        host.run(f"sudo useradd -m -s /bin/bash {groups} {user} && "
                 f"sudo install -d -m 700 -o {user} -g {user} /home/{user}/.ssh && "
                 f"echo '{public}' | sudo install -m 600 -o {user} -g {user} /dev/stdin "
                 f"/home/{user}/.ssh/authorized_keys")
        out[user] = key
    return out


def deploy(inventory: Path, *args: str) -> tuple[int, str]:
    start = time.monotonic()
    proc = cli("deploy", inventory, "-l", HOST, "-m", "terminal", *args, timeout=900)
    print(f"deploy -m terminal {' '.join(args)}: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    return proc.returncode, proc.stdout + proc.stderr


def new_session(lab: Lab, host: LabHost, user: str, key: Path | None) -> subprocess.CompletedProcess[str]:
    """A NEW SSH connection as ``user`` (no ControlMaster: sshd judges this login afresh)."""
    identity = ["-i", str(key)] if key else []
    return subprocess.run(["ssh", "-F", str(lab.ssh_config()), "-o", "ControlMaster=no", "-o", "ControlPath=none",
                           *identity, "-l", user, host.name, "--", "id -un"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)


def verdict(inventory: Path, evidence: Path) -> str:
    proc = cli("verify", inventory, "-l", HOST, "-m", "terminal", "--evidence", evidence)
    docs = sorted(evidence.glob(f"*/{HOST}.json"), key=lambda p: p.stat().st_mtime)
    assert docs, f"verify wrote no evidence (exit {proc.returncode}): {proc.stdout}{proc.stderr}"
    doc = docs[-1]
    statuses = {c["id"]: c["status"] for c in json.loads(doc.read_text())["checks"]}
    assert "terminal.ssh_allow_groups" in statuses, proc.stdout + proc.stderr
    return str(statuses["terminal.ssh_allow_groups"])


def test_logins_work_before_the_deploy(lab: Lab, host: LabHost, keys: dict[str, Path]) -> None:
    for user in ("alice", "sam"):
        proc = new_session(lab, host, user, keys[user])
        assert proc.returncode == 0 and proc.stdout.strip() == user, proc.stderr


def test_refused_when_the_group_holds_none_of_those_who_log_in(lab: Lab, host: LabHost, inventory: Path,
                                                                keys: dict[str, Path], tmp_path: Path) -> None:
    assert verdict(inventory, tmp_path) == "fail"              # a fresh host: no AllowGroups at all
    before = host.run(SSHD_FILES).stdout
    code, output = deploy(inventory)
    assert code != 0, output
    refusal = next((line for line in output.splitlines() if "would shut out every account" in line), "")
    for word in (HOST, "AllowGroups ssh-users", "alice (groups alice;", "sam (groups sam sudo;",
                 "authorized keys /home/alice/.ssh/authorized_keys", "ssh_allow_groups_confirmed"):
        assert word in refusal, f"{word!r} not in the refusal:\n{output}"
    print(refusal)
    assert "hardening (groups" not in refusal                   # the deploy account is not counted
    assert host.run(SSHD_FILES).stdout == before, "sshd's configuration changed"
    assert host.run("getent group ssh-users", check=False).returncode == 2, "ssh-users was created"
    assert "ssh-users" not in host.run("id -Gn").stdout
    assert new_session(lab, host, "alice", keys["alice"]).returncode == 0


def test_applied_once_an_account_is_in_the_group(lab: Lab, host: LabHost, inventory: Path,
                                                 keys: dict[str, Path], tmp_path: Path) -> None:
    host.run("sudo groupadd --system ssh-users && sudo gpasswd -a alice ssh-users")
    code, output = deploy(inventory)
    assert code == 0, output
    assert "add the deploy account hardening to ssh-users" in output, output
    assert "shuts out accounts that log in over SSH today: sam" in output, output   # the warning
    assert "AllowGroups ssh-users" in host.run("cat /etc/ssh/sshd_config.d/10-hardening-terminal.conf").stdout
    assert host.run("sudo sshd -T | grep '^allowgroups'").stdout.split() == ["allowgroups", "ssh-users"]
    assert "ssh-users" in host.run("id -Gn hardening").stdout.split()
    for user, key in (("alice", keys["alice"]), ("hardening", None)):
        proc = new_session(lab, host, user, key)
        assert proc.returncode == 0 and proc.stdout.strip() == user, f"{user}: {proc.stderr}"
    proc = new_session(lab, host, "sam", keys["sam"])
    assert proc.returncode != 0 and "sam" not in proc.stdout, "a sudoer outside ssh-users still logs in"
    assert "sudo" in host.run("id -Gn sam").stdout.split()
    assert verdict(inventory, tmp_path) == "pass"


def test_second_deploy_changes_nothing(host: LabHost, inventory: Path) -> None:
    before = host.run(SSHD_FILES).stdout
    code, output = deploy(inventory)
    assert code == 0, output
    assert re.search(rf"^{HOST}\s+0\s+0\s+\d+$", output, re.M), output        # changed 0, failed 0
    # sam no longer logs in today (the running sshd shuts it out): nothing left to warn about
    assert "add the deploy account" not in output and "shuts out accounts" not in output, output
    assert host.run(SSHD_FILES).stdout == before


def test_confirmed_profile_applies_and_shuts_the_others_out(lab: Lab, lab_host: Any, tmp_path: Path) -> None:
    other = lab_host("ssh-groups-c", "server", "medium", kind="container")
    key = tmp_path / "alice"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", str(key)], check=True)
    other.run("sudo useradd -m -s /bin/bash alice && sudo install -d -m 700 -o alice -g alice /home/alice/.ssh && "
              f"echo '{key.with_suffix('.pub').read_text().strip()}' | "
              "sudo install -m 600 -o alice -g alice /dev/stdin /home/alice/.ssh/authorized_keys")
    profiles = tmp_path / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", profiles)
    text = (profiles / "server.yaml").read_text()
    (profiles / "server.yaml").write_text(
        text.replace("measures:\n", "measures:\n  terminal:\n    ssh_allow_groups_confirmed: true\n", 1))
    assert new_session(lab, other, "alice", key).returncode == 0
    inventory = lab.write_inventory(tmp_path / "lab.py")
    proc = cli("deploy", inventory, "-l", other.name, "-m", "terminal", "--profiles", profiles, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "shuts out accounts that log in over SSH today: alice" in output, output
    assert new_session(lab, other, "hardening", None).returncode == 0
    assert new_session(lab, other, "alice", key).returncode != 0
