"""Small helpers shared by the project's tests."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost

HARDENING = [sys.executable, "-m", "hardening"]


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
def lab_hosts(lab: Lab, *specs: tuple[str, str, str]) -> Iterator[dict[str, LabHost]]:
    """Hosts (name, profile, sensitivity) started together, stopped at the end whatever happened."""
    hosts = {host.name: host for host in lab.start_many(specs)}
    try:
        yield hosts
    finally:
        for name in hosts:
            if (lab.directory / "hosts" / name).exists():
                lab.stop(name)
