"""The watchdog of watched regions (deploys/_rollback.py), its scripts run for real in a temporary
directory: real files saved and restored, fake systemctl/systemd-run/logger that only log.

A watched region (sshd, PAM, sudoers, USB) is changed by the measure's own operations after
``apply`` saved its paths and armed the timer; ``restore`` must bring back exactly what was there
(content, mode, files added or removed), ``hardening-confirm`` must run the probe before it
commits, and ``--rearm``, ``--abort`` and ``--boot`` do what the runner and the boot unit need.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from deploys import _rollback as rb
from tests.helpers import rollback_sandbox


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and directory under root: relative path -> (content or 'dir', mode)."""
    found: dict[str, tuple[str, int]] = {}
    for path in sorted(root.rglob("*")):
        kind = "dir" if path.is_dir() else path.read_text()
        found[str(path.relative_to(root))] = (kind, path.stat().st_mode & 0o7777)
    return found


@pytest.fixture
def sb(tmp_path: Path) -> dict[str, Any]:
    etc = tmp_path / "etc"
    (etc / "app.d").mkdir(parents=True)
    (etc / "app.conf").write_text("Setting old\n")
    (etc / "app.conf").chmod(0o640)
    (etc / "app.d" / "10-theirs.conf").write_text("Other yes\n")
    probe_ok = tmp_path / "probe-ok"
    probe_ok.write_text("")
    watched = rb.Watched(name="demo", paths=(str(etc / "app.conf"), str(etc / "app.d"), str(etc / "new.conf")),
                         reload='echo "reload" >> "$HARDENING_LOG"',
                         probe=f'[ -f {probe_ok} ] || {{ echo "login refused" >&2; exit 1; }}')
    return {**rollback_sandbox(tmp_path, watched.change(30, 600)), "etc": etc, "probe_ok": probe_ok}


def run(sb: dict[str, Any], what: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = sb["confirm"] if what == "confirm" else str(sb["dir"] / what)
    return subprocess.run([path, *args], env={**sb["env"], **env}, capture_output=True, text=True,
                          check=False, timeout=30)


def change_everything(etc: Path) -> None:
    """What a region's operations do: rewrite a file, add a drop-in, disable one, add a new file."""
    (etc / "app.conf").write_text("Setting new\n")
    (etc / "app.conf").chmod(0o644)
    (etc / "app.d" / "00-ours.conf").write_text("Setting mine\n")
    (etc / "app.d" / "10-theirs.conf").write_text("# disabled: Other yes\n")
    (etc / "new.conf").write_text("created\n")


def test_scripts_are_valid_sh() -> None:
    change = rb.SSHD.change(120, 900)
    usb = rb.USB.change(120, 900)
    for text in (rb.apply_script(change), rb.restore_script(change), rb.commit_script(change),
                 rb.apply_script(usb), rb.restore_script(usb),
                 rb.confirm_script(), rb.probe_script(rb.pam(("/etc/pam.d/common-auth",)).change(120, 0))):
        assert subprocess.run(["sh", "-n", "-c", text], check=False).returncode == 0


def test_restore_brings_back_exactly_the_saved_files(sb: dict[str, Any]) -> None:
    before = tree(sb["etc"])
    out = run(sb, "apply")
    assert out.returncode == 0, out.stderr
    assert "--on-active=630s" in sb["log"].read_text()  # timeout + allowance while the run goes on
    assert (sb["dir"] / "pending-at-boot").is_file()  # on disk before the confirmation
    change_everything(sb["etc"])
    restored = run(sb, "restore")  # what the timer starts
    assert restored.returncode == 0, restored.stderr
    assert tree(sb["etc"]) == before  # content, modes, the added drop-in and the new file gone
    assert "reload" in sb["log"].read_text().splitlines()
    assert not (sb["run"] / "pending" / "demo").exists() and not (sb["dir"] / "pending-at-boot").exists()
    record = (sb["run"] / "rolled-back" / "demo").read_text()
    assert record.endswith(" restored the previous state\n")


def test_confirm_runs_the_probe_then_commits(sb: dict[str, Any]) -> None:
    assert run(sb, "apply").returncode == 0
    change_everything(sb["etc"])
    after = tree(sb["etc"])
    out = run(sb, "confirm")
    assert (out.returncode, out.stdout) == (0, "confirmed: demo\n"), out.stderr
    assert tree(sb["etc"]) == after
    assert not (sb["dir"] / "pending-at-boot").exists() and not (sb["dir"] / "saved").exists()
    assert "systemctl stop hardening-rollback-demo.timer" in sb["log"].read_text()


def test_a_failing_probe_restores_at_once(sb: dict[str, Any]) -> None:
    before = tree(sb["etc"])
    assert run(sb, "apply").returncode == 0
    change_everything(sb["etc"])
    sb["probe_ok"].unlink()
    out = run(sb, "confirm")
    assert out.returncode == 2
    assert out.stdout.startswith("rolled back at confirmation: demo (")
    assert "its probe failed: login refused" in out.stdout
    assert tree(sb["etc"]) == before
    assert not (sb["run"] / "pending" / "demo").exists()
    assert run(sb, "confirm").stdout == "nothing pending\n"  # reported once, by that confirmation


def test_rearm_counts_the_window_from_the_end_of_the_run(sb: dict[str, Any]) -> None:
    assert run(sb, "apply").returncode == 0
    out = run(sb, "confirm", "--rearm")
    assert (out.returncode, out.stdout) == (0, "re-armed: demo, rollback in 30 s unless confirmed\n")
    log = sb["log"].read_text().splitlines()
    assert log[-1].startswith("systemd-run --quiet --unit=hardening-rollback-demo --on-active=30s")
    assert (sb["run"] / "pending" / "demo").is_file()  # still pending: only a new connection confirms


def test_abort_restores_every_pending_change(sb: dict[str, Any]) -> None:
    before = tree(sb["etc"])
    assert run(sb, "apply").returncode == 0
    change_everything(sb["etc"])
    out = run(sb, "confirm", "--abort", "failed: Reload sshd")
    assert out.returncode == 2
    assert out.stdout.startswith("rolled back: demo (")
    assert "the deploy failed on this host before it was confirmed: failed: Reload sshd" in out.stdout
    assert tree(sb["etc"]) == before


def test_a_restart_before_the_confirmation_restores_at_boot(sb: dict[str, Any]) -> None:
    before = tree(sb["etc"])
    assert run(sb, "apply").returncode == 0
    change_everything(sb["etc"])
    shutil.rmtree(sb["run"])  # /run is gone with the restart, and the transient timer with it
    sb["log"].write_text("")
    out = run(sb, "confirm", "--boot")
    assert out.returncode == 0, out.stderr
    assert tree(sb["etc"]) == before
    assert "reload" not in sb["log"].read_text()  # at boot nothing runs yet: no reload
    record = (sb["run"] / "rolled-back" / "demo").read_text()
    assert "(the host restarted before the change was confirmed)" in record
    late = run(sb, "confirm")  # the deploy's reconnection after the restart
    assert late.returncode == 2 and "rolled back before confirmation: demo" in late.stdout


def test_boot_leaves_confirmed_changes_alone(sb: dict[str, Any]) -> None:
    assert run(sb, "apply").returncode == 0
    change_everything(sb["etc"])
    assert run(sb, "confirm").returncode == 0
    after = tree(sb["etc"])
    shutil.rmtree(sb["run"])
    assert run(sb, "confirm", "--boot").returncode == 0
    assert tree(sb["etc"]) == after


def test_a_second_region_keeps_the_first_saved_state(sb: dict[str, Any]) -> None:
    """Two measures change sshd in one run: the rollback restores what was there before both."""
    before = tree(sb["etc"])
    assert run(sb, "apply").returncode == 0
    (sb["etc"] / "app.conf").write_text("Setting first measure\n")
    assert run(sb, "apply").returncode == 0
    change_everything(sb["etc"])
    assert run(sb, "restore").returncode == 0
    assert tree(sb["etc"]) == before


def test_watched_paths_are_the_measures_own() -> None:
    from deploys import auth
    from hardening.measures import auth as auth_measure
    from hardening.measures import usb as usb_measure

    assert rb.USB.paths[0] == usb_measure.MODPROBE_CONF
    assert {p.rsplit("/", 1)[0] for p in (usb_measure.USBGUARD_RULES, usb_measure.USBGUARD_DAEMON_CONF)} == {
        rb.USB.paths[1]}
    assert auth_measure.FAILLOCK_CONF in auth.PAM_WATCHED


def test_faults_exist_for_the_series() -> None:
    assert {"sshd:deny-deploy", "sudoers:revoke-deploy", "pam:deny-auth", "sshd:hang"} <= set(rb.FAULTS)


def test_an_incomplete_saved_state_is_never_restored(sb: dict[str, Any]) -> None:
    """A power cut while the state was being saved: the boot restore must not write half of it."""
    assert run(sb, "apply").returncode == 0
    change_everything(sb["etc"])
    after = tree(sb["etc"])
    (sb["dir"] / "saved" / "complete").unlink()
    out = run(sb, "restore")
    assert out.returncode == 1
    assert "RESTORE FAILED: the saved state is incomplete" in (sb["run"] / "rolled-back" / "demo").read_text()
    assert tree(sb["etc"]) == after
