"""Periodic runs: unit files (written to a temp dir only, never to this machine's systemd), checked
with systemd-analyze; the service's command verifies, prunes, logs one line and keeps the exit code."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.errors import ConfigError
from hardening.evidence import chain, keys, schedule
from tests.helpers import cli

INVENTORY = ROOT / "inventories" / "example_agency.py"


@pytest.fixture(autouse=True)
def _never_systemctl(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test must not call systemctl on this machine")
    monkeypatch.setattr(schedule, "_systemctl", refuse)


def _analyze(*paths: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    proc = subprocess.run(["systemd-analyze", "verify", *map(str, paths)], capture_output=True,
                          text=True, timeout=60, check=False, cwd=paths[0].parent)
    mine = [line for line in proc.stderr.splitlines() if "hardening-verify" in line]
    assert proc.returncode == 0 and not mine, proc.stderr


def test_install_writes_units_that_systemd_accepts(tmp_path: Path) -> None:
    units, evidence = tmp_path / "units", tmp_path / "my evidence %"  # quoting: space and %
    proc = cli("schedule", "install", INVENTORY, "--evidence", evidence, "--every", "12h", "--keep", "7",
               "--unit-dir", units, "--key-dir", tmp_path / "keys", "--profiles", INVENTORY.parent / "profiles")
    assert proc.returncode == 0, proc.stderr
    assert "runs will be sealed UNSIGNED" in proc.stderr  # no key yet: said loudly
    service = units / "hardening-verify-example_agency.service"
    timer = units / "hardening-verify-example_agency.timer"
    _analyze(service, timer)
    text = service.read_text()
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart=").replace("%%", "%"))
    assert argv[:4] == [sys.executable, "-m", "hardening.evidence.schedule", "run"]
    assert argv[argv.index("--evidence") + 1] == str(evidence.resolve())
    assert argv[argv.index("--keep") + 1] == "7" and str(INVENTORY) in argv
    assert argv[argv.index("--profiles") + 1] == str(INVENTORY.parent / "profiles")  # the example's agency profiles
    assert f"HARDENING_KEY_DIR={tmp_path / 'keys'}" in text and "Type=oneshot" in text
    assert "OnUnitActiveSec=12h" in timer.read_text() and "WantedBy=timers.target" in timer.read_text()
    status = cli("schedule", "status", "--unit-dir", units)
    assert "hardening-verify-example_agency: 12h" in status.stdout and str(evidence.resolve()) in status.stdout
    removed = cli("schedule", "remove", "example_agency", "--unit-dir", units)
    assert removed.returncode == 0 and not list(units.iterdir())


def test_on_calendar_and_bad_interval(tmp_path: Path) -> None:
    spec = schedule.Schedule("nightly", INVENTORY, tmp_path / "ev", on_calendar="*-*-* 02:00:00", keep=3)
    schedule.install(spec, tmp_path / "units")
    timer = tmp_path / "units" / "hardening-verify-nightly.timer"
    assert "OnCalendar=*-*-* 02:00:00\nPersistent=true" in timer.read_text()
    _analyze(timer, timer.with_suffix(".service"))
    with pytest.raises(ConfigError, match="not a systemd time span"):
        schedule.check_every("daily please")
    proc = cli("schedule", "install", INVENTORY, "--every", "banana", "--unit-dir", tmp_path / "u")
    assert proc.returncode == 2 and proc.stderr.startswith("hardening: error: --every")
    if shutil.which("systemd-analyze"):
        proc = cli("schedule", "install", INVENTORY, "--on-calendar", "banana", "--unit-dir", tmp_path / "u")
        assert proc.returncode == 2 and "not a systemd calendar expression" in proc.stderr


# A stand-in for `hardening verify`: writes and seals one run, exits with the code given.
FAKE_VERIFY = textwrap.dedent("""
    import sys
    from pathlib import Path
    from hardening.evidence import history
    from tests.test_evidence_support import all_pass, make_run
    root, day, code = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    statuses = all_pass()
    if code == 4 or code == 1:
        statuses["firewall.default_deny_inbound"] = "fail"
    outcome = history.after_run(make_run(root, day, {"web01": statuses, "pc01": None}, retention_days=1))
    print("\\n".join([*outcome.regressions, *("note: " + n for n in outcome.notes)]))
    sys.exit(code)
""")


def test_service_command_verifies_prunes_and_logs_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDENING_KEY_DIR", str(tmp_path / "keys"))
    keys.init(tmp_path / "keys")
    root = tmp_path / "evidence"
    codes = []
    for day, code in ((20, 0), (21, 0), (22, 4)):
        fake = [sys.executable, "-c", FAKE_VERIFY, str(root), str(day), str(code)]
        monkeypatch.chdir(ROOT)
        codes.append(schedule.run("lab", INVENTORY, root, keep=2, command=fake))
    assert codes == [0, 0, 4]
    lines = [line for line in capfd.readouterr().out.splitlines() if line.startswith("<")]
    assert len(lines) == 3
    last = lines[-1]
    assert last.startswith("<4>hardening-verify-lab: exit 4 (regression); run 20261122T100000Z-2210: "
                           "2 hosts (0 pass, 0 not_configured, 1 fail, 0 error, 1 unreachable); seal sha256:")
    assert last.endswith("signed; pruned 1")
    assert lines[0].startswith("<6>") and "pruned 0" in lines[0]
    runs = chain.run_dirs(root)
    assert (runs[0] / "pruned.json").exists() and (runs[1] / "index.json").exists()
    with_store = chain.verify_tree(root, chain.Policy(trusted=keys.trusted()))
    assert with_store.ok, [f.line() for f in with_store.findings]


def test_missing_verify_run_is_reported(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code = schedule.run("lab", INVENTORY, tmp_path / "ev", keep=0, command=[sys.executable, "-c", "exit(2)"])
    assert code == 2
    assert "<3>hardening-verify-lab: exit 2 (config); no run was written" in capfd.readouterr().out


def test_local_schedule_packaged_for_another_machine(tmp_path: Path) -> None:
    units = tmp_path / "units"
    proc = cli("schedule", "install", "--local", "--profile", "server", "--sensitivity", "high",
               "--evidence", "/var/lib/hardening/evidence", "--python", "/usr/bin/python3",
               "--workdir", "/opt/hardening/src", "--env", "PYTHONPATH=/opt/hardening/site:/opt/hardening/src",
               "--key-dir", "/etc/hardening/keys", "--randomized-delay", "0", "--unit-dir", units)
    assert proc.returncode == 0, proc.stderr
    service = (units / "hardening-verify-local.service").read_text()
    assert ("ExecStart=/usr/bin/python3 -m hardening.evidence.schedule run --name local --evidence "
            "/var/lib/hardening/evidence --keep 30 --local --profile server --sensitivity high") in service
    assert "Environment=PYTHONPATH=/opt/hardening/site:/opt/hardening/src" in service
    assert "WorkingDirectory=/opt/hardening/src" in service
    assert "RandomizedDelaySec=0" in (units / "hardening-verify-local.timer").read_text()
    both = cli("schedule", "install", INVENTORY, "--local", "--unit-dir", units)
    assert both.returncode == 2 and "INVENTORY or --local" in both.stderr
    assert schedule.verify_command(None, Path("/e"), "server", "high")[3:] == [
        "verify", "--local", "--profile", "server", "--sensitivity", "high", "--evidence", "/e"]
    assert schedule.verify_command(INVENTORY, Path("/e"), profiles=Path("/etc/agency/hwprofiles"))[3:] == [
        "verify", str(INVENTORY), "--evidence", "/e", "--profiles", "/etc/agency/hwprofiles"]
