"""tmpdata (6-9): the desired state without a host, the readings of the check (unreadable output
is an error), the deploy's decisions, and the precedence rules against the real systemd-tmpfiles
of this machine run on a scratch tree (``--root``: nothing outside it is read or touched)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hardening import ROOT
from hardening.measures import tmpdata as measure
from hardening.observe import Observation, Observations
from hardening.profiles import Profiles

# systemd-tmpfiles --cat-config of a fresh Debian 12 lab container (systemd 252), before the deploy.
FRESH = (ROOT / "tests" / "data" / "debian12-tmpfiles-cat-config.txt").read_text()
OURS = f"# {measure.TMPFILES_CONF}\n" + measure.tmpfiles_conf(measure.Settings())
DAY = 86400


def config_with(*sections: tuple[str, str], base: str = FRESH) -> measure.Config:
    """The fresh listing with more files, each put where systemd-tmpfiles reads it."""
    text = base
    for file, body in sections:
        text = _insert(text, file, body)
    return measure.parse_config(text)


def _insert(text: str, file: str, body: str) -> str:
    parts = text.split("\n\n# /")
    blocks = [parts[0].removeprefix("# "), *parts[1:]]
    blocks.append(f"{file.lstrip('/')}\n{body.rstrip()}")
    blocks.sort(key=lambda b: b.split("\n", 1)[0].rsplit("/", 1)[1])
    return "# /" + "\n\n# /".join(b.lstrip("/") for b in blocks) + "\n"


# -- settings and profiles ----------------------------------------------------------------------

def test_defaults_are_the_base_profile() -> None:
    assert Profiles().resolve("terminal").measure("tmpdata") == measure.Settings()


def test_levels_and_roles() -> None:
    high = Profiles().resolve("terminal", "high").measure("tmpdata")
    assert (high.tmp_age, high.var_tmp_age, high.staging_age, high.tmp_noexec) == ("1d", "7d", "1d", True)
    low = Profiles().resolve("terminal", "low").measure("tmpdata")
    assert (low.tmp_age, low.var_tmp_age) == ("10d", "30d")
    # Servers keep exec on /tmp below high; at high every role is noexec; nodev,nosuid always.
    assert Profiles().resolve("server", "medium").measure("tmpdata").mount_options == ["nodev", "nosuid"]
    assert Profiles().resolve("server-room", "low").measure("tmpdata").tmp_noexec is False
    assert Profiles().resolve("server", "high").measure("tmpdata").mount_options == ["nodev", "nosuid", "noexec"]
    assert Profiles().resolve("terminal", "medium").measure("tmpdata").tmp_noexec is True


@pytest.mark.parametrize("bad", [
    {"tmp_age": "30s"}, {"tmp_age": "soon"}, {"var_tmp_age": ""}, {"staging_age": "1M"},
    {"staging_paths": ["srv/staging"]}, {"staging_paths": ["/"]}, {"staging_paths": ["/var/lib/"]},
    {"staging_paths": ["/tmp"]}, {"staging_paths": ["/srv/a b"]}, {"staging_paths": ["/srv/*"]},
    {"staging_paths": ["/srv/%b"]}, {"staging_paths": ["/srv/s", "/srv/s/"]},
])
def test_invalid_values_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        measure.Settings(**bad)


def test_time_spans() -> None:
    assert [measure.profile_seconds(v) for v in ("3d", "36h", "90min", "1d 12h", "2w", "61s")] == [
        3 * DAY, 36 * 3600, 5400, DAY + 12 * 3600, 14 * DAY, 61]
    assert [measure.span(s) for s in (3 * DAY, 36 * 3600, 5400, 61, DAY + 12 * 3600)] == [
        "3d", "36h", "90min", "61s", "36h"]
    # systemd's syntax for the host's lines: a bare number is seconds, "m" minutes, "M" months.
    assert [measure.systemd_seconds(v) for v in ("10d", "30", "5m", "1h 30min", "1.5h", "2weeks")] == [
        10 * DAY, 30, 300, 5400, 5400, 14 * DAY]
    for bad in ("", "1x", "d", "-1d"):
        with pytest.raises(ValueError):
            measure.systemd_seconds(bad)


def test_staging_paths_are_simplified() -> None:
    assert measure.Settings(staging_paths=["/srv//pii-staging/"]).staging_paths == ["/srv/pii-staging"]


# -- the desired state ----------------------------------------------------------------------------

def test_tmpfiles_lines() -> None:
    settings = measure.Settings(tmp_age="1d 12h", staging_paths=["/srv/pii-staging"], staging_age="12h")
    assert measure.tmpfiles_lines(settings) == ["D /tmp 1777 root root 36h", "d /var/tmp 1777 root root 14d",
                                                "e /srv/pii-staging - - - 12h"]
    text = measure.tmpfiles_conf(settings)
    assert text.startswith("# Managed by hardening (tmpdata, 6-9).") and text.endswith("12h\n")
    # The file sorts before every file Debian 12 ships (tmp.conf holds "D /tmp ... -").
    name = measure.TMPFILES_CONF.rsplit("/", 1)[1]
    assert all(name < f.rsplit("/", 1)[1] for f in measure.parse_config(FRESH).files)


def test_mount_unit_and_script() -> None:
    text = measure.mount_unit(measure.Settings(tmp_noexec=False))
    assert "ExecStart=/bin/sh -c 'mountpoint -q /tmp || mount --bind /tmp /tmp; exec mount -o remount,bind," \
           "nodev,nosuid /tmp'\n" in text
    assert "WantedBy=sysinit.target" in text and "DefaultDependencies=no" in text
    script = measure.mount_script(measure.Settings())
    assert script.endswith("remount,bind,nodev,nosuid,noexec /tmp")
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_mount_unit_is_accepted_by_systemd(tmp_path: Path) -> None:
    unit = tmp_path / measure.MOUNT_UNIT
    unit.write_text(measure.mount_unit(measure.Settings()))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                          check=False, cwd=tmp_path)
    mine = [line for line in proc.stderr.splitlines() if measure.MOUNT_UNIT in line]
    assert not mine, proc.stderr


def test_observe_follows_the_profile() -> None:
    resolved = Profiles().resolve("terminal")
    commands = measure.observe(resolved)
    assert commands[:3] == [measure.CAT_CONFIG, measure.FINDMNT_TMP, measure.UNITS]
    assert commands[3:] == [measure.stale_command("/tmp", 3 * DAY), measure.stale_command("/var/tmp", 14 * DAY)]


# -- reading the merged configuration -------------------------------------------------------------

def test_fresh_debian_ages_neither_tmp_nor_var_tmp() -> None:
    config = measure.parse_config(FRESH)
    tmp = measure.effective(config, "/tmp", 3 * DAY)
    assert tmp.age is None and [str(line) for line in tmp.in_force] == [
        "/usr/lib/tmpfiles.d/tmp.conf:11: D /tmp 1777 root root -"]
    assert tmp.problems == ["/tmp is not aged: no line in force gives it an age "
                            "(in force: /usr/lib/tmpfiles.d/tmp.conf:11: D /tmp 1777 root root -)"]
    var = measure.effective(config, "/var/tmp", 14 * DAY)
    assert var.age is None and var.in_force == [] and var.exemptions == []
    # systemd's own exclusions (private /tmp of services, this boot) exempt no ordinary file;
    # boot-only lines (R!, D! of X11) are not read by --clean at all.
    assert not tmp.exemptions
    assert "/tmp/.X11-unix" not in config.items and "/tmp/systemd-private-*" not in config.globs


def test_ours_wins_over_debians_tmp_conf() -> None:
    config = measure.parse_config(measure.with_ours(FRESH, measure.Settings()))
    tmp = measure.effective(config, "/tmp", 3 * DAY)
    assert tmp.age == 3 * DAY and tmp.problems == []
    [(ignored, winner)] = config.ignored
    assert (ignored.where, winner.file) == ("/usr/lib/tmpfiles.d/tmp.conf:11", measure.TMPFILES_CONF)
    assert measure.effective(config, "/var/tmp", 14 * DAY).problems == []
    assert measure.effective(config, "/var/tmp", 7 * DAY).problems == [
        f"/var/tmp is aged after 14d ({measure.TMPFILES_CONF}:5: d /var/tmp 1777 root root 14d), "
        "longer than the profile's 7d"]
    assert measure.conflicts(config, measure.Settings()) == []


def test_a_file_read_before_ours_wins_and_is_named() -> None:
    config = config_with((measure.TMPFILES_CONF, measure.tmpfiles_conf(measure.Settings())),
                         ("/etc/tmpfiles.d/00-aaa-local.conf", "# keep tmp\nD /tmp 1777 root root -\n"))
    [problem] = measure.effective(config, "/tmp", 3 * DAY).problems
    # Debian's identical line applies beside it (compatible lines both stay); ours is dropped.
    assert problem == ("/tmp is not aged: no line in force gives it an age (in force: "
                       "/etc/tmpfiles.d/00-aaa-local.conf:2: D /tmp 1777 root root -; "
                       "/usr/lib/tmpfiles.d/tmp.conf:11: D /tmp 1777 root root -); "
                       f"{measure.TMPFILES_CONF}:4: D /tmp 1777 root root 3d is ignored: "
                       "/etc/tmpfiles.d/00-aaa-local.conf:2: D /tmp 1777 root root - is read first and wins")
    [line] = measure.conflicts(config, measure.Settings())
    assert line.where == "/etc/tmpfiles.d/00-aaa-local.conf:2"


def test_a_stricter_line_of_the_agency_passes() -> None:
    config = config_with((measure.TMPFILES_CONF, measure.tmpfiles_conf(measure.Settings())),
                         ("/etc/tmpfiles.d/00-agency.conf", "D /tmp 1777 root root 12h\n"))
    assert measure.effective(config, "/tmp", 3 * DAY).age == 12 * 3600
    assert measure.conflicts(config, measure.Settings()) == []


def test_a_later_exclusion_of_everything_is_an_exemption() -> None:
    config = config_with((measure.TMPFILES_CONF, measure.tmpfiles_conf(measure.Settings())),
                         ("/etc/tmpfiles.d/zz-keep.conf", "x /tmp/*\nx /var/tmp/app-cache\n"))
    ageing = measure.effective(config, "/tmp", 3 * DAY)
    assert ageing.age == 3 * DAY
    assert ageing.problems == ["/etc/tmpfiles.d/zz-keep.conf:1: x /tmp/* exempts ordinary files such as "
                               "/tmp/report.csv from the clean-up"]
    assert measure.effective(config, "/var/tmp", 14 * DAY).problems == []  # one program's own directory
    assert [line.where for line in measure.conflicts(config, measure.Settings())] == [
        "/etc/tmpfiles.d/zz-keep.conf:1"]


@pytest.mark.parametrize(("line", "aged"), [
    ("D /tmp 1777 root root ~1h", False),        # ~ spares the files right under /tmp
    ("D! /tmp 1777 root root 1h", False),        # boot only: --clean does not read it
    ("e /tmp - - - 1h", True),                   # a glob type: cleans beside Debian's D
    ("x /tmp - - - 1h", True),                   # x with an age cleans too
    ("D %T 1777 root root 1h", True),            # %T is /tmp
    ("q /tmp/ 1777 root root mc:1h", True),      # trailing slash, age-by
    ("z /tmp 1777 root root 1h", False),         # z does not clean
])
def test_which_lines_age_tmp(line: str, aged: bool) -> None:
    config = config_with(("/etc/tmpfiles.d/00-aaa.conf", line + "\n"))
    assert (measure.effective(config, "/tmp", 3 * DAY).age == 3600) is aged


@pytest.mark.parametrize("text", [
    "", "D /tmp 1777 root root 1d\n", "systemd-tmpfiles: command not found\n",
])
def test_unreadable_listing_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        measure.parse_config(text)


def test_an_age_systemd_would_not_read_is_an_error_not_a_guess() -> None:
    config = config_with(("/etc/tmpfiles.d/00-aaa.conf", "D /tmp 1777 root root 3fortnights\n"))
    with pytest.raises(ValueError):
        measure.effective(config, "/tmp", 3 * DAY)
    with pytest.raises(ValueError, match="cannot read"):
        config_with(("/etc/tmpfiles.d/00-aaa.conf", "D '/tmp 1777 root root 1d\n"))


def test_comment_lines_that_look_like_paths_are_not_headers() -> None:
    config = measure.parse_config(FRESH)
    assert "/run/lock/subsys" not in " ".join(config.files)
    assert all(f.endswith(".conf") for f in config.files) and len(config.files) == 20


@pytest.mark.parametrize(("pattern", "path", "match"), [
    ("/tmp/*", "/tmp/report.csv", True),
    ("/tmp/*", "/tmp/.hidden", False),            # FNM_PERIOD: a leading dot needs a dot
    ("/tmp/.*", "/tmp/.hidden", True),
    ("/tmp/*", "/tmp/work/report.csv", False),    # FNM_PATHNAME: * stops at /
    ("/tmp/*/*", "/tmp/work/report.csv", True),
    ("/tmp/tmp.*", "/tmp/tmp.Ab12Cd34Ef", True),
    ("/tmp/[!.]*", "/tmp/report.csv", True),
    ("/tmp/.X[0-9]*-lock", "/tmp/.X0-lock", True),
    ("/tmp/systemd-private-\x00-*", "/tmp/systemd-private-abc-x", False),
])
def test_glob_matching_as_systemd_tmpfiles(pattern: str, path: str, match: bool) -> None:
    assert measure.fnmatch_path(pattern, path) is match


# -- the deploy's reading: our file in place, foreign lines switched off -------------------------------

def test_with_ours_replaces_or_inserts_our_section() -> None:
    text = measure.with_ours(FRESH, measure.Settings(tmp_age="1d"))
    assert text.startswith(f"# {measure.TMPFILES_CONF}\n# Managed by hardening")
    again = measure.with_ours(text, measure.Settings(tmp_age="2d"))
    config = measure.parse_config(again)
    assert measure.effective(config, "/tmp", 2 * DAY).age == 2 * DAY
    assert config.files.count(measure.TMPFILES_CONF) == 1 and len(config.files) == 21
    # A same-named file in /usr/lib is masked by ours in /etc.
    shadow = _insert(FRESH, "/usr/lib/tmpfiles.d/00-hardening-tmpdata.conf", "D /tmp 1777 root root -")
    assert measure.parse_config(measure.with_ours(shadow, measure.Settings())).files.count(
        "/usr/lib/tmpfiles.d/00-hardening-tmpdata.conf") == 0


@pytest.mark.skipif(shutil.which("sed") is None, reason="no sed")
def test_disable_command_comments_out_the_lines_and_keeps_a_copy(tmp_path: Path) -> None:
    (tmp_path / "tmpfiles.d").mkdir()
    conf = tmp_path / "tmpfiles.d" / "zz-keep.conf"
    conf.write_text("# site\nx /tmp/*\nd /run/app 0755 root root -\nx /var/tmp/*\n")
    text = _insert(measure.with_ours(FRESH, measure.Settings()), str(conf), conf.read_text())
    lines = measure.conflicts(measure.parse_config(text), measure.Settings())
    assert [line.number for line in lines] == [2, 4]
    proc = subprocess.run(["sh", "-c", measure.disable_command(lines)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert conf.read_text().splitlines() == [
        "# site", f"{measure.DISABLED_MARK}x /tmp/*", "d /run/app 0755 root root -",
        f"{measure.DISABLED_MARK}x /var/tmp/*"]
    [backup] = (tmp_path / "tmpfiles.d").glob("zz-keep.conf.hardening-*.bak")
    assert backup.read_text().splitlines()[1] == "x /tmp/*"
    fixed = _insert(measure.with_ours(FRESH, measure.Settings()), str(conf), conf.read_text())
    assert measure.conflicts(measure.parse_config(fixed), measure.Settings()) == []


# -- old files ------------------------------------------------------------------------------------

HEAD = "now=1796175000 boot=380f11a6-a4b4-4c99-8eb3-7bebdea527e4 machine=3d12 host=td-probe\n"


def test_parse_stale() -> None:
    out = HEAD + "1.5 2.0 3.25 /tmp/a b\0" + "4 5 6 /tmp/new\nline\0END 0\0"
    listing = measure.parse_stale(out)
    assert listing.host.boot_id.startswith("380f11a6") and listing.now == 1796175000
    assert listing.files == [measure.Stale("/tmp/a b", 3.25), measure.Stale("/tmp/new\nline", 6.0)]
    assert measure.shown("/tmp/new\nline") == "/tmp/new\\nline"
    assert measure.parse_stale(HEAD + "absent\n").absent
    cut = measure.parse_stale(HEAD + "".join(f"1 1 1 /tmp/f{i}\0" for i in range(measure.STALE_LIMIT + 1)))
    assert cut.cut and len(cut.files) == measure.STALE_LIMIT


@pytest.mark.parametrize(("stdout", "rc"), [
    ("", 0), (HEAD, 1), ("garbage\n", 0), (HEAD + "1 2 3 /tmp/a\0", 0),          # no END: cut short
    (HEAD + "1 2 3 /tmp/a\0END 1\0", 0), (HEAD + "x y z /tmp/a\0END 0\0", 0),
    (HEAD + "1 2 /tmp/a\0END 0\0", 0), ("now=1 boot=x machine= host=h\nEND 0\0", 0),
])
def test_unreadable_stale_listing_is_an_error(stdout: str, rc: int) -> None:
    with pytest.raises(ValueError):
        measure.parse_stale(stdout, rc)


def test_judge_stale_missed_due_kept() -> None:
    config = measure.parse_config(measure.with_ours(FRESH, measure.Settings()),
                                  measure.Host(boot_id="380f11a6-a4b4-4c99-8eb3-7bebdea527e4"))
    last = 1_000 * DAY
    listing = measure.Listing(last + 3600, measure.Host(), files=[
        measure.Stale("/tmp/report.csv", last - 4 * DAY),          # past 3d at the last run: missed
        measure.Stale("/tmp/work/export.xlsx", last - 2 * DAY),    # crossed 3d since: due
        measure.Stale("/tmp/systemd-private-380f11a6a4b44c998eb37bebdea527e4-x.service-Ab/tmp/f", last - 9 * DAY),
    ])
    judged = measure.judge_stale("/tmp", 3 * DAY, listing, config, last)
    assert [s.path for s in judged.missed] == ["/tmp/report.csv"]
    assert [s.path for s in judged.due] == ["/tmp/work/export.xlsx"]
    [(kept, line)] = judged.kept
    assert kept.path.endswith("x.service-Ab/tmp/f")
    assert line.where == "/usr/lib/tmpfiles.d/systemd-tmp.conf:11"  # x /tmp/systemd-private-%b-*
    # No clean-up run since boot: nothing can have been missed yet.
    assert measure.judge_stale("/tmp", 3 * DAY, listing, config, None).missed == []


@pytest.mark.skipif(shutil.which("find") is None, reason="no find")
def test_stale_command_lists_by_the_tmpfiles_rule(tmp_path: Path) -> None:
    """The real command on a scratch directory: all three times must be old; sticky files and
    directories are not listed; an absent path says so."""
    (tmp_path / "old.csv").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "old name\nwith newline").write_text("x")
    (tmp_path / "sticky").write_text("x")
    (tmp_path / "sticky").chmod(0o1644)
    time.sleep(2.2)  # date +%s has whole seconds: the cut-off is 1 to 2 s ago
    (tmp_path / "fresh").write_text("x")
    os.utime(tmp_path / "fresh", (0, 0))  # atime and mtime of 1970, ctime now: not old
    out = subprocess.run(["bash", "-c", measure.stale_command(str(tmp_path), 1)], capture_output=True, text=True)
    listing = measure.parse_stale(out.stdout, out.returncode)
    assert sorted(s.path for s in listing.files) == sorted(
        [str(tmp_path / "old.csv"), str(tmp_path / "sub" / "old name\nwith newline")])
    missing = subprocess.run(["sh", "-c", measure.stale_command(str(tmp_path / "none"), 1)],
                             capture_output=True, text=True)
    assert measure.parse_stale(missing.stdout, missing.returncode).absent


# -- units, the mount ------------------------------------------------------------------------------

UNITS = (f"Id={measure.CLEAN_TIMER}\nLoadState=loaded\nActiveState=active\nUnitFileState=static\nResult=success\n"
         "ExecMainStartTimestamp=\n\n"
         f"Id={measure.CLEAN_SERVICE}\nLoadState=loaded\nActiveState=inactive\nUnitFileState=static\n"
         "Result=success\nExecMainStartTimestamp=@1796175082\n\n"
         f"Id={measure.MOUNT_UNIT}\nLoadState=not-found\nActiveState=inactive\nUnitFileState=\nResult=success\n"
         "ExecMainStartTimestamp=\n")


def test_units() -> None:
    units = measure.parse_units(UNITS)
    assert measure.last_run(units) == 1796175082 and measure.timer_problems(units) == []
    assert measure.timer_commands(units) == []
    masked = measure.parse_units(UNITS.replace("LoadState=loaded\nActiveState=active", "LoadState=masked\n"
                                               "ActiveState=inactive", 1))
    assert measure.timer_problems(masked) == [f"{measure.CLEAN_TIMER} is masked"]
    assert measure.timer_commands(masked) == [f"systemctl unmask {measure.CLEAN_TIMER}",
                                              f"systemctl start {measure.CLEAN_TIMER}"]
    failed = measure.parse_units(UNITS.replace("Result=success\nExecMainStartTimestamp=@", "Result=exit-code\n"
                                               "ExecMainStartTimestamp=@"))
    assert measure.timer_problems(failed) == [
        f"the last clean-up run failed ({measure.CLEAN_SERVICE}: exit-code; journalctl -u {measure.CLEAN_SERVICE})"]
    for bad in ("", UNITS.split("\n\n")[0], "garbage"):
        with pytest.raises(ValueError):
            measure.parse_units(bad)
    with pytest.raises(ValueError):
        measure.last_run(measure.parse_units(UNITS.replace("@1796175082", "Wed 2026-12-02")))


def _findmnt(target: str, fstype: str, options: str) -> str:
    return json.dumps({"filesystems": [{"target": target, "source": "tmpfs", "fstype": fstype, "options": options}]})


def test_mount() -> None:
    nspawn = measure.parse_findmnt(_findmnt("/tmp", "tmpfs", "rw,nosuid,nodev,size=2468412k,nr_inodes=409600"))
    assert measure.mount_problems(measure.Settings(tmp_noexec=False), nspawn) == []
    assert measure.mount_problems(measure.Settings(), nspawn) == [
        "/tmp (tmpfs, rw,nosuid,nodev,size=2468412k,nr_inodes=409600) lacks noexec"]
    root = measure.parse_findmnt(_findmnt("/", "ext4", "rw,relatime"))  # Debian 12: /tmp on the root fs
    [problem] = measure.mount_problems(measure.Settings(tmp_noexec=False), root)
    assert problem.startswith("/tmp is not a mount of its own: it is a directory on /")
    for stdout, rc in (("", 0), ("{}", 0), ('{"filesystems": []}', 0), (_findmnt("/tmp", "x", "rw"), 1),
                       ("findmnt: unknown", 0)):
        with pytest.raises(ValueError):
            measure.parse_findmnt(stdout, rc)


def test_confirm_mount_script_is_valid_shell() -> None:
    from deploys import tmpdata as deploy
    script = deploy.confirm_mount_script(measure.Settings())
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    assert "for f in nodev nosuid noexec" in script


# -- the checks themselves on observations --------------------------------------------------------------

@pytest.fixture
def checks(pytestconfig: pytest.Config) -> Any:
    """checks/test_tmpdata.py (its clause marker known here too)."""
    pytestconfig.addinivalue_line("markers", "clause(id): the guideline clause a check verifies")
    spec = importlib.util.spec_from_file_location("check_tmpdata", ROOT / "checks" / "test_tmpdata.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class NotConfigured(Exception):
    pass


class Evidence:
    def __init__(self) -> None:
        self.recorded: dict[str, Any] = {}

    def record(self, expected: Any, observed: Any) -> None:
        self.recorded = {"expected": expected, "observed": observed}

    def not_configured(self, reason: str) -> None:
        raise NotConfigured(reason)


def _observations(results: dict[str, tuple[int, str]]) -> Observations:
    return Observations({c: Observation(f"o{i}", c, rc, out, "", 0.0)
                         for i, (c, (rc, out)) in enumerate(results.items())})


def _run(check: Any, results: dict[str, tuple[int, str]], profile: Any) -> tuple[str, Evidence]:
    evidence = Evidence()
    try:
        check(_observations(results), profile, evidence)
    except AssertionError as exc:
        return f"fail: {exc}", evidence
    except NotConfigured as exc:
        return f"not_configured: {exc}", evidence
    except Exception as exc:  # the plugin's rule: anything but an assertion is an error
        return f"error: {exc}", evidence
    return "pass", evidence


def _host_results(settings: measure.Settings, *, cat: str, stale: dict[str, str] | None = None,
                  units: str = UNITS) -> dict[str, tuple[int, str]]:
    results = {measure.CAT_CONFIG: (0, cat), measure.UNITS: (0, units),
               measure.FINDMNT_TMP: (0, _findmnt("/tmp", "tmpfs", "rw,nosuid,nodev,noexec"))}
    for path, age in settings.ages.items():
        results[measure.stale_command(path, age)] = (0, (stale or {}).get(path, HEAD + "END 0\0"))
    return results


def test_check_ageing_fails_on_a_fresh_host_and_passes_with_ours(checks: Any) -> None:
    resolved = Profiles().resolve("terminal")
    settings = resolved.measure("tmpdata")
    outcome, evidence = _run(checks.test_tmp_ageing, _host_results(settings, cat=FRESH), resolved)
    assert outcome.startswith("fail: /tmp is not aged"), outcome
    assert evidence.recorded["observed"]["/tmp"]["lines in force"] == [
        "/usr/lib/tmpfiles.d/tmp.conf:11: D /tmp 1777 root root -"]
    ours = measure.with_ours(FRESH, settings)
    assert _run(checks.test_tmp_ageing, _host_results(settings, cat=ours), resolved)[0] == "pass"
    outcome, _ = _run(checks.test_tmp_ageing, _host_results(settings, cat="no such command\n"), resolved)
    assert outcome.startswith("error: systemd-tmpfiles --cat-config: a line before any file header"), outcome
    outcome, _ = _run(checks.test_tmp_ageing, _host_results(settings, cat=""), resolved)
    assert outcome.startswith("error: not a systemd-tmpfiles --cat-config listing"), outcome


def test_check_staging_not_configured_without_paths(checks: Any) -> None:
    resolved = Profiles().resolve("terminal")
    outcome, _ = _run(checks.test_staging_ageing, _host_results(resolved.measure("tmpdata"), cat=FRESH), resolved)
    assert outcome.startswith("not_configured: hwprofiles: measures.tmpdata.staging_paths"), outcome


def test_check_stale_files_names_the_missed_and_errs_on_unreadable(checks: Any) -> None:
    resolved = Profiles().resolve("terminal")
    settings = resolved.measure("tmpdata")
    ours = measure.with_ours(FRESH, settings)
    old = 1796175082 - 4 * DAY
    stale = {"/tmp": HEAD + f"{old} {old} {old} /tmp/住民票-export.csv\0{old + 3 * DAY} 1 1 /tmp/due.csv\0END 0\0"}
    outcome, evidence = _run(checks.test_stale_files, _host_results(settings, cat=ours, stale=stale), resolved)
    assert outcome.startswith("fail: files older than their limit that the last clean-up left: "
                              "/tmp/住民票-export.csv (limit 3d)"), outcome
    observed = evidence.recorded["observed"]["/tmp"]
    assert observed["due at the next clean-up"] == ["/tmp/due.csv"]
    assert observed["counts"] == {"missed": 1, "due": 1, "kept": 0}
    assert _run(checks.test_stale_files, _host_results(settings, cat=ours), resolved)[0] == "pass"
    outcome, evidence = _run(checks.test_stale_files, _host_results(settings, cat=ours, stale={"/tmp": "x\n"}),
                             resolved)
    assert outcome.startswith("error: cannot list old files: /tmp: cannot read the listing"), outcome
    assert "unreadable" in evidence.recorded["observed"]["/tmp"]


def test_check_mount_and_timer(checks: Any) -> None:
    resolved = Profiles().resolve("server", "medium")
    settings = resolved.measure("tmpdata")
    results = _host_results(settings, cat=FRESH)
    assert _run(checks.test_tmp_mount_options, results, resolved)[0] == "pass"
    results[measure.FINDMNT_TMP] = (0, _findmnt("/", "ext4", "rw,relatime"))
    assert _run(checks.test_tmp_mount_options, results, resolved)[0].startswith("fail: /tmp is not a mount")
    results[measure.FINDMNT_TMP] = (1, "")
    assert _run(checks.test_tmp_mount_options, results, resolved)[0].startswith("error: findmnt failed")
    assert _run(lambda o, p, e: checks.test_cleanup_timer(o, e), results, resolved)[0] == "pass"
    results[measure.UNITS] = (0, "")
    assert _run(lambda o, p, e: checks.test_cleanup_timer(o, e), results, resolved)[0].startswith("error:")


# -- against the real systemd-tmpfiles of this machine, on a scratch tree (--root) -----------------------

@pytest.fixture
def tmpfiles_root(tmp_path: Path) -> Path:
    if shutil.which("systemd-tmpfiles") is None:
        pytest.skip("systemd-tmpfiles is not installed here")
    root = tmp_path / "root"
    for d in ("etc/tmpfiles.d", "usr/lib/tmpfiles.d", "tmp", "var/tmp"):
        (root / d).mkdir(parents=True)
    (root / "usr/lib/tmpfiles.d/tmp.conf").write_text("# Debian 12\nD /tmp 1777 root root -\n"
                                                      "#q /var/tmp 1777 root root 30d\n")
    (root / "usr/lib/tmpfiles.d/systemd-tmp.conf").write_text("x /tmp/systemd-private-%b-*\n")
    return root


def _real(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-tmpfiles", f"--root={root}", *args], capture_output=True, text=True, timeout=60)


def _unrooted(root: Path, text: str) -> str:
    """cat-config under --root names files with the root in front: as on the host."""
    return text.replace(f"# {root}/", "# /")


@pytest.mark.parametrize("case", ["ours", "foreign-first", "exempt-all"])
def test_the_check_agrees_with_what_systemd_tmpfiles_deletes(tmpfiles_root: Path, case: str) -> None:
    """Our file, Debian's tmp.conf, and (per case) a file read before ours that wins or a later
    glob that exempts everything: the real ``systemd-tmpfiles --clean`` deletes exactly the files
    the check's reading says are aged, and the check's verdict on the configuration matches."""
    root = tmpfiles_root
    settings = measure.Settings(tmp_age="1min")
    text = measure.tmpfiles_conf(settings).replace(" 1min\n", " 1s\n")  # the real run: a 1 s age
    (root / "etc/tmpfiles.d/00-hardening-tmpdata.conf").write_text(text)
    if case == "foreign-first":
        (root / "etc/tmpfiles.d/00-aaa-keep.conf").write_text("D /tmp 1777 root root -\n")
    if case == "exempt-all":
        (root / "etc/tmpfiles.d/zz-keep.conf").write_text("x /tmp/*\n")
    for name in ("report.csv", "work/export.xlsx", "systemd-private-x/tmp/f"):
        (root / "tmp" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "tmp" / name).write_text("personal data\n")
    time.sleep(1.2)
    cat = _real(root, "--cat-config")
    assert cat.returncode == 0, cat.stderr
    config = measure.parse_config(_unrooted(root, cat.stdout))
    ageing = measure.effective(config, "/tmp", 60)
    clean = _real(root, "--clean")
    assert clean.returncode == 0, clean.stderr
    left = sorted(str(p.relative_to(root / "tmp")) for p in (root / "tmp").rglob("*") if p.is_file())
    if case == "ours":
        assert ageing.problems == [] and ageing.age == 1  # the scratch file's age, 1 s
        assert "tmp.conf:2: Duplicate line" in clean.stderr  # Debian's line yields to ours
        assert left == []
    elif case == "foreign-first":
        assert ageing.age is None and "00-aaa-keep.conf:1: D /tmp 1777 root root - is read first and wins" \
        in ageing.problems[0]
        assert left == ["report.csv", "systemd-private-x/tmp/f", "work/export.xlsx"]
    else:
        assert ageing.problems == ["/etc/tmpfiles.d/zz-keep.conf:1: x /tmp/* exempts ordinary files such as "
                                   "/tmp/report.csv from the clean-up"]
        assert left == ["report.csv", "systemd-private-x/tmp/f", "work/export.xlsx"]
