"""Fault injection: every change that can lock the tool out ends with the host reachable, in its
previous state or the new one and never half of each, and the failure reported (issue 12).

One lab host (a VM by default: HARDENING_FAULTS_HOST=container for a quicker run on a container,
which cannot be power-cycled and has no USB: those two tests then skip). It first gets a clean deploy of every
lockout-prone measure; then each test injects one fault INTO the tool's own change
(``HARDENING_LAB_FAULT``, deploys/_rollback.py FAULTS: honoured only on hosts whose inventory
says ``lab_host``), or kills the host or its connection while the change is live, and checks:

* the deploy's exit code and its report for that host (rolled back, what and why);
* the host answers a NEW ssh connection as the deploy account, with sudo;
* the state of sshd, PAM, sudoers and the firewall is exactly the one before the deploy;
* nothing is left pending.

Each test records a row (fault, outcome, time to recover) in HARDENING_FAULTS_REPORT when set
(the table of the closing note). Windows are shortened by the profile: deploy.confirm_timeout 30 s,
run_allowance 60 s, firewall.confirm_timeout 30 s.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost
from tests.helpers import lab_hosts

pytestmark = pytest.mark.lab

KIND = os.environ.get("HARDENING_FAULTS_HOST", "vm")
NAME = "flt"
MEASURES = ("auth", "admin", "timeouts", "terminal", "firewall")
# Short windows for the faults (one measure each: a short run); the baseline deploy of every
# measure keeps the default run_allowance (an emulated host under load needs minutes).
WINDOWS = "deploy: {{confirm_timeout: 30, run_allowance: {allowance}}}\n"
# What the faults can touch, in one digest: the files of sshd, PAM and sudoers, what sshd runs
# with, the tool's nftables table, and what is pending or was rolled back.
STATE = ("sudo sh -c 'cat /etc/ssh/sshd_config /etc/ssh/sshd_config.d/* /etc/pam.d/common-* "
         "/etc/sudoers /etc/sudoers.d/* | sha256sum; sshd -T | sort | sha256sum; "
         "nft list table inet hardening | sha256sum; ls /run/hardening/pending'")


def profiles(tmp: Path, extra: str = "", allowance: int = 60) -> Path:
    """A profile directory whose ``server`` is the shipped one with short windows (and ``extra``)."""
    directory = tmp / "hwprofiles"
    directory.mkdir(exist_ok=True)
    text = (ROOT / "hwprofiles" / "server.yaml").read_text()
    text = text.replace("measures:\n", "measures:\n  firewall:\n    confirm_timeout: 30\n", 1)
    (directory / "server.yaml").write_text(text + WINDOWS.format(allowance=allowance) + extra)
    return directory


def deploy(inventory: Path, profile_dir: Path, *measures: str, fault: str = "",
           timeout: float = 900) -> subprocess.Popen[str]:
    env = {**os.environ, "HARDENING_LAB_FAULT": fault}
    args = [a for m in measures for a in ("-m", m)]
    return subprocess.Popen([sys.executable, "-m", "hardening", "deploy", str(inventory), *args,
                             "--profiles", str(profile_dir)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def finish(proc: subprocess.Popen[str], timeout: float = 900) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def state(host: LabHost) -> str:
    return host.run(STATE, timeout=60).stdout


def reachable_with_sudo(host: LabHost) -> bool:
    """A NEW connection (no ControlMaster) as the deploy account, with sudo."""
    cmd = [*host.ssh_command()[:-1], "-o", "ControlPath=none", "-o", "ConnectTimeout=10", host.name,
           "sudo -n true && echo ok"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    return proc.stdout.strip() == "ok"


def record(fault: str, outcome: str, seconds: float, code: int) -> None:
    report = os.environ.get("HARDENING_FAULTS_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as out:
            out.write(json.dumps({"fault": fault, "host": KIND, "outcome": outcome,
                                  "recovered_s": round(seconds, 1), "exit": code}) + "\n")


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (NAME, "server", "high"), kind=KIND) as started:
        yield started[NAME]


@pytest.fixture(scope="module")
def baseline(host: LabHost, inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A clean deploy of every lockout-prone measure: all four watched changes confirmed."""
    code, output = finish(deploy(inventory, profiles(tmp_path_factory.mktemp("p"), allowance=900), *MEASURES))
    assert code == 0, output
    for name in ("firewall", "pam", "sshd", "sudoers"):
        assert f"confirmed: {name}" in output, output
    return state(host)


def assert_previous_state(host: LabHost, before: str) -> None:
    assert reachable_with_sudo(host)
    assert state(host) == before


def test_pam_change_refusing_every_password_login(host: LabHost, inventory: Path, baseline: str,
                                                  tmp_path: Path) -> None:
    """pam_deny at the top of common-auth: key logins and NOPASSWD sudo still work, so only the
    fresh authentication (the probe) can see it; the host restores PAM at once."""
    started = time.monotonic()
    code, output = finish(deploy(inventory, profiles(tmp_path), "auth", fault="pam:deny-auth"))
    took = time.monotonic() - started
    assert code == 1, output
    assert re.search(rf"{NAME}: FAILED: a change rolled back before it could be confirmed: rolled back at "
                     r"confirmation: pam \(.* restored the previous state \(its probe failed: a fresh PAM "
                     r"authentication failed", output), output
    assert_previous_state(host, baseline)
    record("PAM change that refuses every password login (pam_deny in common-auth)",
           "probe failed at confirmation; PAM restored at once", took, code)


def test_pam_change_refusing_every_login(host: LabHost, inventory: Path, baseline: str, tmp_path: Path) -> None:
    """pam_deny in common-account: the run's own sudo breaks, no new SSH login gets in; the
    host's timer restores PAM and the deploy reaches it again."""
    started = time.monotonic()
    code, output = finish(deploy(inventory, profiles(tmp_path), "auth", fault="pam:deny-account"))
    took = time.monotonic() - started
    assert code == 1, output
    assert f"{NAME}: its deploy failed part-way" in output
    assert "its watchdog restored the previous state, reachable again" in output, output
    assert "rolled back before confirmation: pam" in output
    assert_previous_state(host, baseline)
    record("PAM change that refuses every login (pam_deny in common-account)",
           "run failed, host unreachable; timer restored PAM, reached again", took, code)


def test_sshd_config_that_passes_sshd_t_but_refuses_the_deploy_account(host: LabHost, inventory: Path,
                                                                        baseline: str, tmp_path: Path) -> None:
    started = time.monotonic()
    code, output = finish(deploy(inventory, profiles(tmp_path), "terminal", fault="sshd:deny-deploy"))
    took = time.monotonic() - started
    assert code == 1, output
    assert "SSH login refused" in output
    assert f"{NAME}: FAILED: a change rolled back before it could be confirmed: not confirmed in time" in output
    assert "rolled back before confirmation: sshd" in output
    assert_previous_state(host, baseline)
    record("sshd config that passes sshd -t but refuses the deploy account (DenyUsers)",
           "login refused until the timer restored sshd; reached again", took, code)


def test_sshd_allowusers_that_shuts_everyone_out(host: LabHost, inventory: Path, baseline: str,
                                                 tmp_path: Path) -> None:
    started = time.monotonic()
    code, output = finish(deploy(inventory, profiles(tmp_path), "timeouts", fault="sshd:allowusers-nobody"))
    took = time.monotonic() - started
    assert code == 1, output
    assert "rolled back before confirmation: sshd" in output, output
    assert_previous_state(host, baseline)
    record("sshd config that passes sshd -t, AllowUsers nobody", "timer restored sshd; reached again", took, code)


def test_sudoers_change_that_removes_the_deploy_accounts_rights(host: LabHost, inventory: Path, baseline: str,
                                                                tmp_path: Path) -> None:
    started = time.monotonic()
    code, output = finish(deploy(inventory, profiles(tmp_path), "admin", fault="sudoers:revoke-deploy"))
    took = time.monotonic() - started
    assert code == 1, output
    assert "sudo refused" in output and f"{NAME}: its deploy failed part-way" in output
    assert "rolled back before confirmation: sudoers" in output, output
    assert_previous_state(host, baseline)
    record("sudoers change that removes the deploy account's rights (!ALL)",
           "run failed at the next sudo; timer restored sudoers; reached again", took, code)


def test_firewall_that_drops_the_management_network(host: LabHost, inventory: Path, baseline: str,
                                                    tmp_path: Path) -> None:
    # 192.0.2.0/24 (TEST-NET-1) only: the lab's management address is not in it.
    directory = profiles(tmp_path)
    text = (directory / "server.yaml").read_text()
    (directory / "server.yaml").write_text(text.replace(
        "  firewall:\n    confirm_timeout: 30\n",
        "  firewall:\n    confirm_timeout: 30\n    management_networks: [192.0.2.0/24]\n", 1))
    started = time.monotonic()
    code, output = finish(deploy(inventory, directory, "firewall"))
    took = time.monotonic() - started
    assert code == 1, output
    assert "rolled back before confirmation: firewall" in output, output
    assert_previous_state(host, baseline)
    record("firewall that drops the management network", "timer restored the table; reached again", took, code)


USB_STATE = ("sudo sh -c 'ls /etc/modprobe.d; cat /etc/usbguard/* 2>/dev/null | sha256sum; "
             "sha256sum /boot/initrd.img-$(uname -r); systemctl is-active usbguard; systemctl is-enabled usbguard; "
             "cat /sys/bus/usb/devices/*/authorized'")


@pytest.mark.skipif(KIND != "vm", reason="the usb measure refuses in a container (no kernel modules)")
def test_usb_policy_whose_run_fails_after_it_went_live(host: LabHost, inventory: Path, baseline: str,
                                                       tmp_path: Path) -> None:
    """The block file, the rebuilt initramfs and USBGuard are live when the run fails: every part
    of the USB policy is restored at once (the initramfs too), nothing half applied."""
    before = host.run(USB_STATE, check=False, timeout=60).stdout
    started = time.monotonic()
    # The initramfs rebuild and USBGuard's restart took over 90 s on CI's loaded host: with the
    # short run allowance the host's own timer restored it before the fault (right, but not this
    # test's case). The fault, not the timer, must be what ends the run here.
    code, output = finish(deploy(inventory, profiles(tmp_path, allowance=600), "usb", fault="usb:fail"))
    took = time.monotonic() - started
    assert code == 1, output
    assert "Update the initramfs" in output and "Restart usbguard" in output  # it had gone live
    assert "every pending change restored: rolled back: usb" in output, output
    assert host.run(USB_STATE, check=False, timeout=60).stdout == before
    assert_previous_state(host, baseline)
    record("USB policy live (block file, initramfs, USBGuard), then the run fails",
           "restored at once over a new connection (--abort), initramfs included", took, code)


def hang_then(host: LabHost, inventory: Path, tmp_path: Path, action: str) -> tuple[int, str, float]:
    """A real sshd change (ClientAliveInterval 90 instead of 120) goes live, then the run hangs in
    the region (fault sshd:hang); ``action`` happens while it is live. Returns (exit, output,
    seconds from the action until the host is back in its previous state)."""
    extra = "levels:\n  high:\n    measures:\n      timeouts: {ssh_client_alive_interval: 90}\n"
    host.run("sudo rm -f /run/hardening/lab-fault-hang", timeout=30)  # left by an earlier hang
    proc = deploy(inventory, profiles(tmp_path, extra), "timeouts", fault="sshd:hang")
    deadline = time.monotonic() + 600
    while host.run("test -f /run/hardening/lab-fault-hang", check=False, timeout=30).returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, finish(proc)
        time.sleep(1)
    assert "clientaliveinterval 90" in host.run("sudo sshd -T", timeout=30).stdout  # live now
    acted = time.monotonic()
    if action == "cut":
        host.run("sudo pkill -KILL -f 'sshd: hardening' ; true", check=False, timeout=30)
    else:
        host.monitor("system_reset")  # power cycle: no shutdown, nothing flushed by the guest
    code, output = finish(proc)
    if action == "kill":
        host.wait_ssh(300)
        host._after_boot()
    while not reachable_with_sudo(host):
        assert time.monotonic() < acted + 300, "not back"
        time.sleep(2)
    return code, output, time.monotonic() - acted


def test_ssh_connection_cut_while_the_change_is_live(host: LabHost, inventory: Path, baseline: str,
                                                     tmp_path: Path) -> None:
    code, output, took = hang_then(host, inventory, tmp_path, "cut")
    assert code == 1, output
    assert f"{NAME}: FAILED: its deploy failed part-way" in output
    assert "every pending change restored: rolled back: sshd" in output, output
    assert_previous_state(host, baseline)
    host.run("sudo pkill -x sleep; true", check=False)
    record("SSH connection cut while the change is live", "restored at once over a new connection (--abort)",
           took, code)


@pytest.mark.skipif(KIND != "vm", reason="a container cannot be power-cycled (nspawn exits)")
def test_host_killed_in_the_middle_of_a_deploy_and_started_again(host: LabHost, inventory: Path, baseline: str,
                                                                  tmp_path: Path) -> None:
    """QEMU's system_reset while the sshd change is live: nothing flushed, no shutdown. The host
    restores sshd at boot, before sshd starts; the deploy notices the dead connection (SSH
    keepalives, deploys/_support.bound_connection) instead of waiting on it, reaches the host
    again and reports it rolled back, saying the host restarted."""
    code, output, took = hang_then(host, inventory, tmp_path, "kill")
    assert code == 1, output
    assert f"{NAME}: FAILED: its deploy failed part-way" in output, output
    assert "rolled back before confirmation: sshd" in output, output
    assert "the host restarted before the change was confirmed" in output, output
    assert_previous_state(host, baseline)  # restored at boot, before sshd started
    journal = host.run("sudo journalctl -b -t hardening --no-pager", timeout=60).stdout
    assert "rollback sshd: the host restarted before the change was confirmed, restored the previous state" \
        in journal, journal
    record("host killed (power cycle) in the middle of a deploy and started again",
           "restored at boot by hardening-rollback-boot.service", took, code)


def test_report_lists_every_fault() -> None:
    """Keeps the list of faults and this series in step (deploys/_rollback.py FAULTS)."""
    from deploys import _rollback as rb

    source = Path(__file__).read_text()
    missing = [fault for fault in rb.FAULTS if f'"{fault}"' not in source and fault != "sshd:hang"]
    assert missing == [] and 'fault="sshd:hang"' in source
