"""timeouts (6-15): desired state without a host, and the validated sshd drop-in install."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from deploys import _sshd as deploy_sshd
from hardening.measures import _sshd
from hardening.measures import timeouts as measure
from hardening.profiles import Profiles


def test_levels_give_the_values() -> None:
    high = Profiles().resolve("terminal", "high").measure("timeouts")
    assert (high.shell_tmout, high.ssh_client_alive_interval, high.screen_lock_delay) == (300, 120, 180)
    assert Profiles().resolve("server").measure("timeouts").logind_idle_action == "ignore"


@pytest.mark.parametrize("bad", [{"shell_tmout": 0}, {"ssh_client_alive_count_max": 0},
                                 {"screen_lock_delay": 0}, {"logind_idle_action": "lock\nKillUserProcesses=yes"}])
def test_invalid_values_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        measure.Settings(**bad)  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_profile_script_readonly_and_safe_to_source_twice(tmp_path: Path) -> None:
    script = tmp_path / "t.sh"
    script.write_text(measure.profile_script(measure.Settings(shell_tmout=600)))
    out = subprocess.run(["bash", "-c", f". {script}; . {script}; readonly -p; TMOUT=0"],
                         capture_output=True, text=True)
    assert 'declare -rx TMOUT="600"' in out.stdout
    assert out.stderr.count("readonly variable") == 1  # only our TMOUT=0 at the end
    dash = subprocess.run(["sh", "-c", f". {script}; . {script}; echo $TMOUT"], capture_output=True, text=True)
    assert dash.stdout.strip() == "600" and dash.returncode == 0


def test_sshd_dropin() -> None:
    text = measure.sshd_dropin(measure.Settings(ssh_client_alive_interval=120))
    assert text.endswith("ClientAliveInterval 120\nClientAliveCountMax 1\n")
    assert _sshd.dropin_path("timeouts") == "/etc/ssh/sshd_config.d/10-hardening-timeouts.conf"


def test_logind_dropin_and_reading() -> None:
    text = measure.logind_dropin(measure.Settings(logind_idle_action_sec=900))
    assert "[Login]\nIdleAction=lock\nIdleActionSec=900s\n" in text
    cat_config = ("# /etc/systemd/logind.conf\n[Login]\n#IdleAction=ignore\nIdleAction=suspend\n\n"
                  "# /etc/systemd/logind.conf.d/hardening-timeouts.conf\n" + text)
    values = measure.parse_logind(cat_config)
    assert values == {"IdleAction": "lock", "IdleActionSec": "900s"}
    assert [measure.seconds(v) for v in ("900", "900s", "15min", "1h 30min", "", "x")] == [
        900, 900, 900, 5400, None, None]


def test_dconf_files() -> None:
    keyfile = measure.dconf_keyfile(measure.Settings(screen_lock_delay=180))
    assert "[org/gnome/desktop/session]\nidle-delay=uint32 180\n" in keyfile
    assert "[org/gnome/desktop/screensaver]\nlock-enabled=true\nlock-delay=uint32 0\n" in keyfile
    assert measure.dconf_locks().splitlines() == list(measure.DCONF_KEYS)
    assert "system-db:local" in measure.dconf_profile()


# -- the validated install of an sshd drop-in (needs a working sshd -t here) ---------------------

@pytest.fixture
def ssh_tree(tmp_path: Path) -> Path:
    if shutil.which("sshd") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("sshd is not installed here")
    root = tmp_path / "ssh"
    (root / "sshd_config.d").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "hk")], check=True)
    (root / "sshd_config").write_text(f"Include {root}/sshd_config.d/*.conf\nHostKey {root}/hk\n"
                                      "PermitRootLogin yes\n")
    (root / "sshd_config.d" / "50-cloud-init.conf").write_text("ClientAliveInterval 9999\n")
    if subprocess.run(["sshd", "-t", "-f", str(root / "sshd_config")], capture_output=True).returncode:
        pytest.skip("sshd -t does not run here (no privilege separation user or /run/sshd)")
    return root


def _install(root: Path, text: str) -> subprocess.CompletedProcess[str]:
    dest = f"{root}/sshd_config.d/10-hardening-timeouts.conf"
    candidate = deploy_sshd.candidate_path(dest)
    Path(candidate).write_text(text)
    script = deploy_sshd.install_script(candidate, dest,
                                        deploy_sshd.sshd_validate_script(candidate, dest, str(root)))
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True)


def test_broken_dropin_never_goes_live(ssh_tree: Path) -> None:
    live = ssh_tree / "sshd_config.d" / "10-hardening-timeouts.conf"
    good = measure.sshd_dropin(measure.Settings())
    assert _install(ssh_tree, good).returncode == 0
    assert live.read_text() == good
    effective = subprocess.run(["sshd", "-T", "-f", str(ssh_tree / "sshd_config")],
                               capture_output=True, text=True).stdout
    assert _sshd.parse_effective(effective)["clientaliveinterval"] == ["300"]  # first match wins

    broken = good.replace("ClientAliveCountMax 1", "ClientAliveCountMax lots")
    result = _install(ssh_tree, broken)
    assert result.returncode == 1 and "refused" in result.stderr
    assert live.read_text() == good                                   # live file untouched
    assert not Path(deploy_sshd.candidate_path(str(live))).exists()   # candidate removed


def test_all_measure_dropins_accepted_and_effective(ssh_tree: Path) -> None:
    from hardening.measures import admin, encryption, terminal
    texts = {"admin": admin.sshd_dropin(admin.Settings()),
             "timeouts": measure.sshd_dropin(measure.Settings()),
             "terminal": terminal.sshd_dropin(terminal.Settings(ssh_allow_groups=["sudo", "staff"])),
             "encryption": encryption.sshd_dropin(encryption.Settings())}
    for name, text in texts.items():
        (ssh_tree / "sshd_config.d" / f"10-hardening-{name}.conf").write_text(text)
    out = subprocess.run(["sshd", "-T", "-f", str(ssh_tree / "sshd_config")], capture_output=True, text=True)
    effective = _sshd.parse_effective(out.stdout)
    assert effective["permitrootlogin"] == ["no"]          # the drop-in beats the main file's yes
    assert effective["clientaliveinterval"] == ["300"]     # and 50-cloud-init.conf's 9999
    assert effective["allowgroups"] == ["sudo", "staff"]
    assert effective["ciphers"] == [",".join(encryption.DEFAULT_CIPHERS)]


def test_refused_when_the_main_config_would_not_read_the_dropin(ssh_tree: Path) -> None:
    main = ssh_tree / "sshd_config"
    main.write_text(main.read_text().replace(f"Include {ssh_tree}/", "Include "))
    result = _install(ssh_tree, measure.sshd_dropin(measure.Settings()))
    assert result.returncode == 1 and "does not Include" in result.stderr
    assert not (ssh_tree / "sshd_config.d" / "10-hardening-timeouts.conf").exists()
