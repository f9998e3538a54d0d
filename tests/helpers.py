"""Small helpers shared by the project's tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost

HARDENING = [sys.executable, "-m", "hardening"]
# The NAT table Docker makes through iptables-nft: a foreign table the firewall must leave alone.
DOCKER_NAT = (ROOT / "tests" / "data" / "docker-nat.nft").read_text()


def cli(*args: str | Path, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real command line as a user would, capturing its output."""
    return subprocess.run([*HARDENING, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The error a user sees: exactly one line, never a traceback."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("hardening: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def headless_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Debian's Chromium, headless, with no traffic of its own (skips the test where it is absent)."""
    binary = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'chromium'}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120,
                          check=False, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def lab_hosts(lab: Lab, *specs: tuple[str, str, str], kind: str = "vm") -> Iterator[dict[str, LabHost]]:
    """Hosts (name, profile, sensitivity) started together, stopped at the end whatever happened."""
    hosts = {host.name: host for host in lab.start_many(specs, kind=kind)}
    try:
        yield hosts
    finally:
        for name in hosts:
            if (lab.directory / "hosts" / name).exists():
                lab.stop(name)


# systemctl, systemd-run and logger for the rollback scripts (deploys/_rollback.py) run in a sandbox:
# they only log what they were asked.
ROLLBACK_FAKES = {
    "systemctl": 'echo "systemctl $*" >> "$HARDENING_LOG"',
    "systemd-run": 'echo "systemd-run $*" >> "$HARDENING_LOG"',
    "logger": 'echo "logger $*" >> "$HARDENING_LOG"',
}


def rollback_sandbox(tmp_path: Path, change: Any) -> dict[str, Any]:
    """The scripts of ``change`` (a deploys._rollback.Change) and hardening-confirm in a temporary
    directory, with fake systemctl/systemd-run/logger: keys env, dir, run, confirm, log."""
    from deploys import _rollback as rb

    if not (shutil.which("flock") and shutil.which("sh")):
        pytest.skip("flock or sh missing")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in ROLLBACK_FAKES.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HARDENING_RUN": str(tmp_path / "run"),
           "HARDENING_STATE": str(tmp_path / "state"), "HARDENING_LOG": str(tmp_path / "log")}
    directory = tmp_path / "state" / change.name
    directory.mkdir(parents=True)
    scripts = {"apply": rb.apply_script(change), "restore": rb.restore_script(change),
               "commit": rb.commit_script(change)}
    if change.probe:
        scripts["probe"] = rb.probe_script(change)
    for name, text in scripts.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o700)
    confirm = tmp_path / "hardening-confirm"
    confirm.write_text(rb.confirm_script())
    confirm.chmod(0o755)
    (tmp_path / "log").write_text("")
    return {"env": env, "dir": directory, "run": tmp_path / "run", "confirm": str(confirm), "log": tmp_path / "log"}


T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30) -> T:
    """``predicate()`` until it is truthy or ``timeout`` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def verified_checks(inventory: Path, evidence: Path, *args: str | Path,
                    codes: tuple[int, ...] = (0, 1, 4, 5)) -> dict[str, dict[str, Any]]:
    """``hardening verify INVENTORY --evidence EVIDENCE ARGS`` for ONE host, through the real
    command line; its checks from the run's document, by id. ``codes``: the exits the caller
    accepts (4: a regression since the last run; 5: attestations not evaluated)."""
    before = set(evidence.glob("*/index.json"))
    start = time.monotonic()
    proc = cli("verify", inventory, "--evidence", evidence, *args, timeout=900)
    print(f"verify {' '.join(map(str, args))}: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode in codes, proc.stdout + proc.stderr
    [index] = set(evidence.glob("*/index.json")) - before
    [entry] = json.loads(index.read_text())["hosts"]
    doc = json.loads((index.parent / entry["json"]).read_text())
    return {check["id"]: check for check in doc["checks"]}


def profiles_with(directory: Path, role: str, section: str) -> Path:
    """The shipped profiles copied to ``directory``, with ``section`` (YAML lines indented under
    ``measures:``) added at the top of ``role``'s measures, as an agency's profile would."""
    shutil.copytree(ROOT / "hwprofiles", directory)
    path = directory / f"{role}.yaml"
    text = path.read_text(encoding="utf-8")
    assert "\nmeasures:\n" in text, path
    path.write_text(text.replace("\nmeasures:\n", "\nmeasures:\n" + section, 1), encoding="utf-8")
    return directory
