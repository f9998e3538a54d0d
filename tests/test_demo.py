"""The demo's agency profiles (hardening/demo.py): generated from the shipped ones, valid, and
configuring every measure that needs agency data, so that the demo's verify shows them judged."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hardening import demo
from hardening.errors import ConfigError
from hardening.profiles import Profiles
from tests.helpers import HARDENING, one_line_error


@pytest.fixture
def service(tmp_path: Path) -> demo.Service:
    return demo.Service("10.233.7.2", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1x", tmp_path / "password",
                        tmp_path / "sftp-key")


def test_profiles_resolve_with_the_agency_data(tmp_path: Path, service: demo.Service) -> None:
    directory = demo.write_profiles(tmp_path / "profiles", service)
    profiles = Profiles(directory)
    terminal = profiles.resolve("terminal", "high")
    server = profiles.resolve("server", "medium")
    for resolved in (terminal, server):
        assert [p.path for p in resolved.measure("auth").personal_data] == [demo.PII]
        assert resolved.measure("audit").log_host == "10.233.7.2"
        assert resolved.measure("encryption").data_disk.mount_point == demo.PII
        assert resolved.measure("tmpdata").staging_paths == ["/srv/pii-staging"]
        repositories = resolved.measure("backup").repositories
        assert len(repositories) == 2
    # the shipped values the agency did not touch are kept (a merge, not a replacement)
    assert terminal.measure("encryption").root == "required"
    assert [d.interface_class for d in terminal.measure("usb").allow] == ["03", "09", "0b"]
    assert server.measure("timeouts").logind_idle_action == "ignore"
    assert [p.path for p in terminal.measure("designdocs").paths] == ["/srv/design-documents"]
    assert [p.path for p in server.measure("designdocs").paths] == ["/srv/design-documents"]
    assert terminal.measure("terminal").expected_networks == server.measure("terminal").expected_networks \
        == ["10.0.2.0/24"]
    # each role backs up into its own off-site directory
    assert {str(r.location) for r in server.measure("backup").repositories} != \
        {str(r.location) for r in terminal.measure("backup").repositories}


def test_the_other_shipped_profiles_are_still_found(tmp_path: Path, service: demo.Service) -> None:
    profiles = Profiles(demo.write_profiles(tmp_path / "profiles", service))
    assert {"base", "server-room", "terminal", "server"} <= set(profiles.names())
    assert profiles.resolve("server-room").role == "server-room"


def test_a_broken_generation_is_an_error_at_once(tmp_path: Path, service: demo.Service) -> None:
    broken = demo.Service("not a host!", service.host_key, service.password_file, service.identity_file)
    with pytest.raises(ConfigError, match="log_host"):
        demo.write_profiles(tmp_path / "profiles", broken)


def test_sample_data_lies_under_the_personal_data_path() -> None:
    assert demo.SAMPLE and all(path.startswith(demo.PII + "/") for path in demo.SAMPLE)


def test_hosts_left_running_are_named_not_reused(tmp_path: Path) -> None:
    """Demo hosts an earlier ``--keep`` left running: one line naming them and exit 3, before any
    setup (nothing installed, built or stopped)."""
    lab = tmp_path / "lab"
    (lab / "hosts" / "demo-srv1").mkdir(parents=True)
    proc = subprocess.run([*HARDENING, "demo", "--evidence", str(tmp_path / "evidence")], capture_output=True,
                          text=True, env={**os.environ, "HARDENING_LAB_DIR": str(lab)}, timeout=60, check=False)
    assert proc.returncode == 3, proc.stderr
    assert one_line_error(proc) == (f"hardening: error: lab: demo-srv1 still running in {lab} (an earlier "
                                    "`hardening demo --keep`?): stop them with `hardening lab stop --all`, "
                                    "then run the demo again")
    assert sorted(p.name for p in lab.rglob("*")) == ["demo-srv1", "hosts"]
    assert not (tmp_path / "evidence").exists()
