"""The schedule on a real systemd (a lab host): installed, the timer fires, the service verifies the
host, seals a signed run, logs one summary line to the journal and exits with verify's code."""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.evidence import schedule
from hardening.lab import LabHost
from hardening.lab.fixtures import StartHost

pytestmark = pytest.mark.lab

HOST = "ev-sched1"
OPT = Path("/opt/hardening")
EVIDENCE = Path("/var/lib/hardening/evidence")
KEYS = Path("/etc/hardening/keys")
SITE = ROOT / ".venv" / "lib" / "python3.11" / "site-packages"
DEV_ONLY = re.compile(r"^(mypy|mypyc|ruff|pip|setuptools|pkg_resources|_distutils_hack|__editable__|"
                      r"hardening-|distutils-precedence|librt|ast_serialize|.*__mypyc)")


def _bundle() -> bytes:
    """The checkout's code (all of it: the registry needs checks and deploys side by side) and the
    venv's runtime packages, for a machine without network."""
    def skip(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if "__pycache__" in info.name or info.name.endswith(".pyc") else info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for part in ("hardening", "checks", "deploys", "hwprofiles", "docs"):
            tar.add(ROOT / part, f"src/{part}", filter=skip)
        for path in sorted(SITE.iterdir()):
            if not DEV_ONLY.match(path.name):
                tar.add(path, f"site/{path.name}", filter=skip)
    return buf.getvalue()


def _ssh(host: LabHost, command: str, data: bytes = b"", timeout: float = 300) -> str:
    proc = subprocess.run([*host.ssh_command(), "--", command], input=data, capture_output=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"{command}: {proc.stderr.decode(errors='replace')}"
    return proc.stdout.decode(errors="replace")


def test_timer_fires_on_a_lab_host_and_produces_a_signed_run(lab_host: StartHost, tmp_path: Path) -> None:
    host = lab_host(HOST, "terminal", "medium", kind="container")  # systemd timers and journald: no VM needed
    env = f"PYTHONPATH={OPT}/site:{OPT}/src"
    _ssh(host, f"sudo mkdir -p {OPT} && sudo tar -xzf - -C {OPT}", _bundle())
    _ssh(host, f"sudo env {env} python3 -m hardening keys init --dir {KEYS}")
    # The lab restores hosts from a snapshot, then gives each its own machine id: journald must
    # start again to write (and journalctl to read) the journal of that id.
    _ssh(host, "sudo systemctl restart systemd-journald")
    soon = int(_ssh(host, "date -u +%s")) + 30  # fires once: exactly one run to look at
    spec = schedule.Schedule(
        name="self", inventory=None, evidence=EVIDENCE, keep=5,
        on_calendar=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(soon)),
        key_dir=KEYS, profile="terminal", sensitivity="medium", python="/usr/bin/python3",
        workdir=OPT / "src", environment=(("PYTHONPATH", f"{OPT}/site:{OPT}/src"),), randomized_delay="0")
    units = tmp_path / "units"
    schedule.install(spec, units)
    for unit in sorted(units.iterdir()):
        _ssh(host, f"sudo tee /etc/systemd/system/{unit.name} >/dev/null", unit.read_bytes())
    _ssh(host, "sudo systemd-analyze verify /etc/systemd/system/hardening-verify-self.timer "
               "/etc/systemd/system/hardening-verify-self.service")
    _ssh(host, "sudo systemctl daemon-reload && sudo systemctl enable --now hardening-verify-self.timer")

    line = _wait_for_summary(host, timeout=300)
    code = int(re.search(r": exit (\d+) ", line).group(1))  # type: ignore[union-attr]
    assert re.fullmatch(r"hardening-verify-self: exit \d \([a-z]+\); run \S+: 1 hosts \(.*\); "
                        r"seal sha256:[0-9a-f]{64} signed; pruned 0", line), line
    assert code in (0, 1, 5), line  # a fresh host: compliant or not, but verified
    status = _ssh(host, "systemctl show -p ExecMainStatus -p Result hardening-verify-self.service")
    assert f"ExecMainStatus={code}" in status, status
    verified = _ssh(host, f"cd {OPT}/src && sudo env {env} python3 -m hardening evidence verify "
                          f"{EVIDENCE} --key-dir {KEYS}")
    assert "intact" in verified and "TAMPERED" not in verified, verified


def _wait_for_summary(host: LabHost, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    journal = ""
    while time.monotonic() < deadline:
        journal = _ssh(host, "sudo journalctl -u hardening-verify-self.service -o cat --no-pager")
        lines = [x for x in journal.splitlines() if x.startswith("hardening-verify-self: exit")]
        if lines:
            return lines[0]
        time.sleep(5)
    raise AssertionError(f"the timer produced no summary in {timeout:.0f} s; journal:\n{journal[-3000:]}")
