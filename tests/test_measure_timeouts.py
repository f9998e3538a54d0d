"""timeouts (6-15): desired state without a host, and the validated sshd drop-in install."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

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


# -- the dconf profile user: the host's lines kept, only what the screen lock needs added ----------

FEDORA = "user-db:user\nsystem-db:local\nsystem-db:site\nsystem-db:distro\n"  # GNOME admin guide's
GDM = "user-db:user\nsystem-db:gdm\nfile-db:/usr/share/gdm/greeter-dconf-defaults\n"


@pytest.mark.parametrize(("before", "after"), [
    # Debian 12 ships no profile: dconf then reads user-db:user alone.
    ("", "user-db:user\nsystem-db:local\n"),
    # A profile that already reads local is the host's, byte for byte (no newline at the end, a comment).
    (FEDORA, FEDORA),
    ("# site\nuser-db:user\nsystem-db:local  # screen lock", "# site\nuser-db:user\nsystem-db:local  # screen lock"),
    # A foreign system-db, a file-db: kept, in their order; local appended last (its locks win).
    (GDM, GDM + "system-db:local\n"),
    ("user-db:user\nsystem-db:agency\n", "user-db:user\nsystem-db:agency\nsystem-db:local\n"),
    # A writable service-db first (homes on NFS) is the host's choice of user storage: kept first.
    ("service-db:keyfile/user\nsystem-db:site\n", "service-db:keyfile/user\nsystem-db:site\nsystem-db:local\n"),
    # No writable database first: user-db:user goes before the first database, after the comments.
    ("# managed by puppet\nsystem-db:site\n", "# managed by puppet\nuser-db:user\nsystem-db:site\nsystem-db:local\n"),
    # ... and is moved there when it was listed further down (not listed twice).
    ("system-db:site\nuser-db:user\n", "user-db:user\nsystem-db:site\nsystem-db:local\n"),
    # Duplicates are the host's: local listed twice is present (nothing added, nothing removed).
    ("user-db:user\nsystem-db:local\nsystem-db:local\n", "user-db:user\nsystem-db:local\nsystem-db:local\n"),
    ("user-db:user\nuser-db:user\n", "user-db:user\nuser-db:user\nsystem-db:local\n"),
    # Whitespace and trailing comments are dconf's to strip; local counts however it is written.
    ("  user-db:user \n\tsystem-db:local\t# ours\n", "  user-db:user \n\tsystem-db:local\t# ours\n"),
])
def test_dconf_profile_merged_from_the_hosts(before: str, after: str) -> None:
    merged = measure.merged_dconf_profile(before)
    assert merged == after
    assert measure.merged_dconf_profile(merged) == merged  # a second deploy changes nothing
    assert measure.dconf_profile_additions(merged) == []
    assert measure.dconf_profile_problems(merged) == []
    # Every line of the host's is kept, in its order (user-db:user may move to the front).
    host_lines = [line for line in before.splitlines() if line != "user-db:user"]
    remaining = iter(merged.splitlines())
    assert all(line in remaining for line in host_lines), merged


def test_dconf_profile_additions_name_what_the_deploy_adds() -> None:
    assert measure.dconf_profile_additions("") == ["user-db:user first", "system-db:local"]
    assert measure.dconf_profile_additions(GDM) == ["system-db:local"]
    assert measure.dconf_profile_additions(FEDORA) == []


def test_dconf_profile_as_dconf_reads_it() -> None:
    listing = "### /usr/share/dconf/profile/user\n" + GDM
    assert measure.read_dconf_profile(listing) == ("/usr/share/dconf/profile/user", GDM)
    assert measure.read_dconf_profile("") == (None, "")
    with pytest.raises(ValueError, match="cannot read the dconf profile listing"):
        measure.read_dconf_profile("user-db:user\n")
    assert measure.dconf_sources(None) == ["user-db:user"]  # no profile file: dconf's default
    assert measure.dconf_sources("# x\n\n  system-db:a # b\n") == ["system-db:a"]
    assert measure.DCONF_PROFILE_READ in measure.observe(None)


@pytest.mark.parametrize("text", [None, "", "user-db:user\n", GDM, "user-db:user\n# system-db:local\n"])
def test_dconf_profile_without_local_is_a_problem(text: str | None) -> None:
    [problem] = measure.dconf_profile_problems(text)
    assert "does not read system-db:local" in problem


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_dconf_profile_read_takes_the_file_dconf_reads(tmp_path: Path) -> None:
    """/etc first, then /usr/local/share, then /usr/share; none: no output; unreadable: fails."""
    paths = [tmp_path / p.lstrip("/") for p in measure.DCONF_PROFILE_PATHS]
    script = measure.DCONF_PROFILE_READ
    for path in measure.DCONF_PROFILE_PATHS:
        script = script.replace(path, str(tmp_path / path.lstrip("/")))

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert (run().returncode, run().stdout) == (0, "")
    for path, text in zip(reversed(paths), ("usr\n", "local\n", "etc\n"), strict=True):
        path.parent.mkdir(parents=True)
        path.write_text(text)
        assert measure.read_dconf_profile(run().stdout) == (str(path), text)
    paths[0].unlink()
    paths[0].mkdir()  # exists, cannot be read as a file: an error, not "absent"
    assert run().returncode != 0


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


# -- convergence: does sshd use the drop-in? (real sshd -T / sshd -ddd -T on a copy) -------------

def _sshd_t(root: Path) -> dict[str, list[str]]:
    out = subprocess.run(["sshd", "-T", "-f", str(root / "sshd_config")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return _sshd.parse_effective(out.stdout)


def _dropins() -> dict[str, str]:
    from hardening.measures import admin, encryption, terminal
    return {"admin": admin.sshd_dropin(admin.Settings(permit_root_login="prohibit-password")),
            "timeouts": measure.sshd_dropin(measure.Settings()),
            "terminal": terminal.sshd_dropin(terminal.Settings(ssh_allow_groups=["sudo", "staff"])),
            "encryption": encryption.sshd_dropin(encryption.Settings())}


def test_expected_is_what_sshd_t_prints(ssh_tree: Path) -> None:
    """For every measure's drop-in, once it wins, sshd -T shows exactly expected(text)."""
    for name, text in _dropins().items():
        (ssh_tree / "sshd_config.d" / f"10-hardening-{name}.conf").write_text(text)
    effective = _sshd_t(ssh_tree)
    for text in _dropins().values():
        want = _sshd.expected(text)
        assert want and _sshd.differences(want, effective) == {}
    assert _sshd.expected(_dropins()["admin"]) == {"permitrootlogin": ["without-password"]}
    assert _sshd.expected(_dropins()["terminal"]) == {"allowgroups": ["sudo", "staff"]}


def test_differences() -> None:
    want = {"clientaliveinterval": ["300"], "allowgroups": ["sudo", "staff"]}
    assert _sshd.differences(want, {"clientaliveinterval": ["300"], "allowgroups": ["staff", "sudo"]}) == {}
    assert _sshd.differences(want, {"clientaliveinterval": ["0"], "allowgroups": ["wheel", "sudo", "staff"]}) == {
        "clientaliveinterval": (["300"], ["0"]), "allowgroups": (["sudo", "staff"], ["wheel", "sudo", "staff"])}
    assert _sshd.differences(want, {}) == {"clientaliveinterval": (["300"], []),
                                           "allowgroups": (["sudo", "staff"], [])}


def _trace(root: Path, name: str, text: str) -> tuple[str, list[_sshd.Setting]]:
    dest = f"{root}/sshd_config.d/10-hardening-{name}.conf"
    out = subprocess.run(["sh", "-c", deploy_sshd.sshd_trace_script(text, dest, str(root))],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "RC=0", out
    return dest, _sshd.parse_trace(out.stdout)


def test_trace_names_the_file_read_first(ssh_tree: Path) -> None:
    """The candidate is only in the copy; a later file (50-cloud-init) is no conflict, an earlier
    one is, and an accumulating keyword conflicts with every other file that sets it."""
    texts = _dropins()
    dest, trace = _trace(ssh_tree, "timeouts", texts["timeouts"])
    assert not Path(dest).exists()
    assert trace[0].file == dest and trace[0].keyword == "ClientAliveInterval"   # the Include comes first
    assert _sshd.conflicts(trace, ["clientaliveinterval", "clientalivecountmax"], dest) == []
    (ssh_tree / "sshd_config.d" / "00-foreign.conf").write_text("ClientAliveInterval 0\nAllowGroups wheel\n"
                                                                "PermitRootLogin yes\n")
    dest, trace = _trace(ssh_tree, "timeouts", texts["timeouts"])
    found = _sshd.conflicts(trace, ["clientaliveinterval", "clientalivecountmax"], dest)
    assert found == [f"{ssh_tree}/sshd_config.d/00-foreign.conf:1 sets ClientAliveInterval 0, read before "
                     f"{dest} (sshd keeps the first value)"]
    dest, trace = _trace(ssh_tree, "admin", texts["admin"])
    assert "00-foreign.conf:3 sets PermitRootLogin yes" in _sshd.conflicts(trace, ["permitrootlogin"], dest)[0]
    dest, trace = _trace(ssh_tree, "terminal", texts["terminal"])
    found = _sshd.conflicts(trace, ["allowgroups"], dest)
    assert len(found) == 1 and "00-foreign.conf:2 sets AllowGroups wheel (sshd adds up" in found[0]


def test_conflicts_when_the_dropin_is_not_read() -> None:
    trace = _sshd.parse_trace("debug3: /etc/ssh/sshd_config:9 setting ClientAliveInterval 5\nnoise\n")
    assert trace == [_sshd.Setting("/etc/ssh/sshd_config", 9, "ClientAliveInterval", "5")]
    found = _sshd.conflicts(trace, ["clientaliveinterval"], "/etc/ssh/sshd_config.d/10-hardening-timeouts.conf")
    assert found and "does not read clientaliveinterval" in found[0]


def test_confirm_script(ssh_tree: Path) -> None:
    """Passes when sshd -T shows the values; fails naming the file that sets them otherwise."""
    text = _dropins()["terminal"]
    (ssh_tree / "sshd_config.d" / "10-hardening-terminal.conf").write_text(text)
    script = deploy_sshd.confirm_script(_sshd.expected(text), str(ssh_tree / "sshd_config"))
    assert subprocess.run(["sh", "-c", script], capture_output=True, text=True).returncode == 0
    (ssh_tree / "sshd_config.d" / "00-foreign.conf").write_text("AllowGroups wheel\n")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert out.returncode == 1
    assert "allowgroups wheel" in out.stderr and "00-foreign.conf:1 setting AllowGroups wheel" in out.stderr


def test_reload_scripts_are_valid_shell() -> None:
    script = deploy_sshd.reload_script(_sshd.expected(_dropins()["timeouts"]))
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    assert script.startswith("systemctl try-reload-or-restart ssh.service")


def test_reload_reason() -> None:
    loaded = _sshd.parse_loaded("MainPID=55\nActiveState=active\nPidFile=55\n")
    assert loaded == _sshd.Loaded(True, "55", "55") and _sshd.reload_reason(loaded) is None
    newer = _sshd.parse_loaded("MainPID=55\nActiveState=active\nPidFile=55\n"
                               "Newer=/etc/ssh/sshd_config.d/10-hardening-timeouts.conf\n")
    assert "10-hardening-timeouts.conf changed after sshd last read" in (_sshd.reload_reason(newer) or "")
    assert "does not name" in (_sshd.reload_reason(_sshd.parse_loaded(
        "MainPID=55\nActiveState=active\nPidFile=\n")) or "")
    assert _sshd.reload_reason(_sshd.parse_loaded("MainPID=0\nActiveState=inactive\nPidFile=\n")) is None


def test_overridden_dropins() -> None:
    """The tool's drop-ins as SSHD_LOADED lists them, against sshd -T: which does sshd not use?"""
    dropins = "\n".join(f"Dropin=/etc/ssh/sshd_config.d/10-hardening-{name}.conf:{line}" for name, line in (
        ("timeouts", "ClientAliveInterval 300"), ("timeouts", "ClientAliveCountMax 1"),
        ("terminal", "AllowGroups sudo staff"), ("admin", "PermitRootLogin prohibit-password")))
    loaded = _sshd.parse_loaded("ActiveState=active\n" + dropins)
    assert [path for path, _ in loaded.dropins] == [
        f"/etc/ssh/sshd_config.d/10-hardening-{n}.conf" for n in ("admin", "terminal", "timeouts")]
    config = {"clientaliveinterval": ["300"], "clientalivecountmax": ["1"], "allowgroups": ["sudo", "staff"],
              "permitrootlogin": ["without-password"]}
    assert _sshd.overridden(loaded, config) == []
    config["clientaliveinterval"] = ["0"]
    assert _sshd.overridden(loaded, config) == [
        "/etc/ssh/sshd_config.d/10-hardening-timeouts.conf (clientaliveinterval)"]


# -- TMOUT convergence: which file holds TMOUT readonly -----------------------------------------

def test_tmout_readings() -> None:
    from deploys import timeouts as deploy
    assert deploy.shell_tmout('declare -rx TMOUT="900"\n') == ("rx", 900)
    assert deploy.tmout_ok('declare -r HOME\ndeclare -rx TMOUT="600"\n', 900)
    assert not deploy.tmout_ok('declare -rx TMOUT="0"\n', 900)
    assert not deploy.tmout_ok('declare -r TMOUT="600"\n', 900)       # not exported
    assert not deploy.tmout_ok("", 900)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_readonly_sources_from_a_traced_shell(tmp_path: Path) -> None:
    """A real bash trace with the PS4 of TMOUT_TRACE: the foreign file is named, ours is not."""
    from deploys import timeouts as deploy
    foreign = tmp_path / "00-tmout.sh"
    foreign.write_text("# site policy\nreadonly TMOUT=0; export TMOUT\n")
    ours = tmp_path / "hardening-timeouts.sh"
    ours.write_text(measure.profile_script(measure.Settings()))
    # TMOUT_TRACE hands PS4 over the environment to nobody's shell; bash run as root (here, maybe)
    # does not import PS4, so it is set first thing instead.
    ps4 = "PS4='+${BASH_SOURCE}:${LINENO}: '"
    for first, second in ((foreign, ours), (ours, foreign)):
        out = subprocess.run(["bash", "-c", f"{ps4}; set -x; . {first}; . {second}; readonly -p"],
                             capture_output=True, text=True)
        found = deploy.readonly_sources(out.stderr, str(ours))
        assert [(t.file, t.line) for t in found] == [(str(foreign), 2)]
        assert str(found[0]) == f"{foreign}:2: readonly TMOUT=0"
    assert ps4 in measure.TMOUT_TRACE
    assert deploy.readonly_sources("++/etc/profile.d/x.sh:3: declare -rx TMOUT=5\n+:1: readonly -p\n", "") == [
        deploy.Traced("/etc/profile.d/x.sh", 3, "declare -rx TMOUT=5")]
    assert deploy.readonly_sources("++/etc/profile.d/x.sh:3: TMOUT=5\n", "") == []   # not readonly: ours wins


def test_confirm_tmout_script_is_valid_shell() -> None:
    from deploys import timeouts as deploy
    script = deploy.confirm_tmout_script(900)
    assert 'declare -rx TMOUT="900"' in script
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0


def test_defaults_are_the_base_profile() -> None:
    """hwprofiles/base.yaml at medium (terminal.yaml does not touch timeouts) = the defaults."""
    assert measure.Settings().screen_lock_delay == 600
    assert Profiles().resolve("terminal").measure("timeouts") == measure.Settings()


# Real output of systemd 252 on a Debian 12 lab container (systemd-analyze cat-config
# systemd/logind.conf, comments of the main file cut) with a foreign drop-in after the tool's.
CAT_CONFIG = """# /etc/systemd/logind.conf
#  This file is part of systemd.
[Login]
#IdleAction=ignore

# /etc/systemd/logind.conf.d/hardening-timeouts.conf
# Managed by hardening (timeouts, 6-15).
[Login]
IdleAction=lock
IdleActionSec=900s

# /usr/lib/systemd/logind.conf.d/unattended-upgrades-logind-maxdelay.conf
[Login]
InhibitDelayMaxSec=30

# /etc/systemd/logind.conf.d/zz-local.conf
[Login]
IdleAction=ignore
"""


def test_logind_overrides_and_running_state() -> None:
    settings = measure.Settings(logind_idle_action="lock", logind_idle_action_sec=900)
    assert measure.logind_overrides(CAT_CONFIG) == [("/etc/systemd/logind.conf.d/zz-local.conf", 2, "IdleAction")]
    configured = measure.parse_logind(CAT_CONFIG)
    assert configured == {"IdleAction": "ignore", "IdleActionSec": "900s", "InhibitDelayMaxSec": "30"}
    assert not measure.logind_config_ok(settings, configured)
    live = measure.parse_logind_live('s "ignore"\nt 1800000000\n')       # busctl, as seen on the lab
    assert live == {"IdleAction": "ignore", "IdleActionSec": "1800s"}
    problems = measure.logind_problems(settings, configured, live)
    assert any("configured IdleAction=ignore" in p for p in problems)
    assert any("stale" in p for p in problems)                          # 1800s running, 900s configured
    ok = {"IdleAction": "lock", "IdleActionSec": "5min"}                  # stricter: passes
    assert measure.logind_problems(settings, ok, {"IdleAction": "lock", "IdleActionSec": "300s"}) == []
    stale = measure.logind_problems(settings, ok, {"IdleAction": "ignore", "IdleActionSec": "300s"})
    assert len(stale) == 1 and "stale" in stale[0]
    assert measure.logind_problems(settings, {}, {"IdleAction": "ignore", "IdleActionSec": "1800s"}) == [
        "configured IdleAction=ignore, wanted lock", "configured IdleActionSec=30min, wanted at most 900s"]
    for text in ("", 's "lock"\n', "Failed to get property IdleAction: Access denied\n"):
        with pytest.raises(ValueError):
            measure.parse_logind_live(text)


def test_logind_reload_confirms_with_busctl() -> None:
    script = measure.logind_reload_script({"IdleAction": "lock", "IdleActionSec": "15min"})
    assert script.startswith("systemctl kill --kill-whom=main -s HUP systemd-logind.service")
    assert "t 900000000" in script and measure.LOGIND_LIVE in script


def test_screen_lock_at_least_as_strict() -> None:
    settings = measure.Settings(screen_lock_delay=600)
    idle, lock = "/org/gnome/desktop/session/idle-delay", "/org/gnome/desktop/screensaver/lock-delay"
    assert measure.dconf_value_ok(settings, idle, "uint32 300")
    assert not measure.dconf_value_ok(settings, idle, "uint32 0")        # never
    assert not measure.dconf_value_ok(settings, idle, "uint32 900")
    assert not measure.dconf_value_ok(settings, idle, "")                 # unset
    assert measure.dconf_value_ok(settings, lock, "uint32 0")
    assert not measure.dconf_value_ok(settings, lock, "uint32 30")
    assert measure.dconf_value_ok(settings, "/org/gnome/desktop/screensaver/lock-enabled", "true")


# -- the check itself, on observations of a desktop whose values are right -----------------------

@pytest.fixture
def screen_lock_check(pytestconfig: pytest.Config) -> Any:
    """The check module's markers (clause) are the evidence plugin's: known here too."""
    pytestconfig.addinivalue_line("markers", "clause(id): the guideline clause a check verifies")
    return _screen_lock_check


def _screen_lock_check(profile_listing: tuple[int, str]) -> tuple[str, dict[str, object]]:
    """checks/test_timeouts.py's test_screen_lock on a host with dconf whose values and locks
    are the profile's, the dconf profile listing given: ("pass" or the failure, its evidence)."""
    import importlib.util

    from hardening import ROOT
    from hardening.observe import Observation, Observations

    spec = importlib.util.spec_from_file_location("check_timeouts", ROOT / "checks" / "test_timeouts.py")
    assert spec and spec.loader
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    resolved = Profiles().resolve("terminal", "high")
    settings = resolved.measure("timeouts")
    results = {measure.DCONF_PRESENT: (0, "/usr/bin/dconf\n"), measure.DCONF_PROFILE_READ: profile_listing}
    for path, value in measure.dconf_values(settings).items():
        results[measure.dconf_read(path)] = (0, value + "\n")
        results[measure.dconf_writable(path)] = (0, "false\n")
    obs = Observations({c: Observation(str(i), c, rc, out, "" if rc == 0 else "cat: denied", 0.0)
                        for i, (c, (rc, out)) in enumerate(results.items())})
    recorded: dict[str, object] = {}

    class Evidence:
        def record(self, expected: object, observed: object) -> None:
            recorded.update(expected=expected, observed=observed)

        def not_applicable(self, reason: str) -> None:
            raise AssertionError(reason)

    try:
        check.test_screen_lock(obs, resolved, Evidence())
    except AssertionError as exc:
        return f"fail: {exc}", recorded
    except RuntimeError as exc:
        return f"error: {exc}", recorded
    return "pass", recorded


def test_check_fails_when_the_profile_does_not_read_local(screen_lock_check: Any) -> None:
    etc = f"### {measure.DCONF_PROFILE}\n"
    assert screen_lock_check((0, etc + FEDORA))[0] == "pass"
    assert screen_lock_check((0, etc + GDM + "system-db:local\n"))[0] == "pass"
    for listing in ("", etc + GDM, etc + "user-db:user\n#system-db:local\n"):
        outcome, recorded = screen_lock_check((0, listing))
        assert outcome.startswith("fail: the dconf profile user does not read system-db:local"), outcome
    outcome, recorded = screen_lock_check((0, ""))
    assert recorded["observed"]["profile user"] == {"file": "none (dconf's default)",  # type: ignore[index]
                                                    "reads": ["user-db:user"]}
    assert screen_lock_check((1, ""))[0].startswith("error: cannot read the dconf profile user")
