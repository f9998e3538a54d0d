"""admin (6-6): desired state, and the sudoers policy read from REAL cvtsudoers output.

The policy tests write sudoers files under tmp, run the measure's own observation commands on
them (through the observation batch, as on a host) and judge the result with fixed accounts:
sudo's parser is the real one, only the accounts are made up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from hardening import HWPROFILES
from hardening.measures import admin as measure
from hardening.observe import Observation, parse, remote_command
from hardening.profiles import Profiles

PASSWD = """\
root:x:0:0:root:/root:/bin/bash
alice:x:1000:1000::/home/alice:/bin/bash
bob:x:1001:1001::/home/bob:/bin/bash
eve:x:1002:1002::/home/eve:/bin/bash
dba:x:1003:1003::/home/dba:/bin/bash
backup:x:1004:1004::/home/backup:/bin/bash
hardening:x:1005:1005::/home/hardening:/bin/bash
postgres:x:110:110::/var/lib/postgresql:/bin/bash
operator:x:37:37::/var:/usr/sbin/nologin
"""
GROUP = "root:x:0:\nsudo:x:27:alice,hardening\nwheel:x:10:eve\npostgres:x:110:\n"
DEBIAN = 'Defaults\tenv_reset\nDefaults\tuse_pty\nroot\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n'
LOGGED = DEBIAN + 'Defaults logfile="/var/log/sudo.log"\n'
SETTINGS = measure.Settings()

needs_cvtsudoers = pytest.mark.skipif(
    shutil.which("cvtsudoers") is None or shutil.which("sudo") is None or shutil.which("visudo") is None,
    reason="sudo (cvtsudoers, visudo) is not installed here")


def batch(*commands: str) -> dict[str, Observation]:
    """Run commands through the real observation batch (as root here, as on a host)."""
    out = subprocess.run(["sh", "-c", remote_command(list(commands))], capture_output=True, text=True)
    return parse(list(commands), out.stdout, exit_code=out.returncode, stderr=out.stderr).results


def tree(tmp: Path, main: str, files: dict[str, str]) -> Path:
    """A sudoers tree under tmp: ``main`` then ``@includedir tmp/d``; files 0440 like sudo wants."""
    (tmp / "d").mkdir(parents=True)
    for name, text in files.items():
        (tmp / "d" / name).write_text(text)
        os.chmod(tmp / "d" / name, 0o440)
    (tmp / "sudoers").write_text(main + f"@includedir {tmp}/d\n")
    os.chmod(tmp / "sudoers", 0o440)
    return tmp / "sudoers"


def context(path: Path, host: str = "lab") -> measure.Context:
    policy = measure.read_policy(batch(measure.policy_command(str(path)))[measure.policy_command(str(path))])
    assert policy is not None
    return measure.Context(policy, measure.Accounts.parse(PASSWD, GROUP), measure.HostInfo(host, ("10.0.0.5",)))


def judge(tmp: Path, main: str, files: dict[str, str] | None = None, **kw: Any) -> measure.Context:
    return context(tree(tmp, main, files or {}), **kw)


def logging_gaps(ctx: measure.Context) -> dict[str, list[str]]:
    return measure.missing_logging(ctx, SETTINGS, sorted(measure.accounts_with_rights(ctx)) or ["root"])


# -- desired state ---------------------------------------------------------------------------------

def test_sudoers_names_group_logging_and_exception() -> None:
    text = measure.sudoers(measure.Settings(nopasswd_exceptions=["hardening"]))
    assert "Defaults use_pty\n" in text
    assert 'Defaults logfile="/var/log/sudo.log"\n' in text
    assert "%sudo ALL=(ALL:ALL) ALL\n" in text
    assert "hardening ALL=(ALL:ALL) NOPASSWD: ALL\n" in text
    assert text.count("NOPASSWD") == 1


@pytest.mark.parametrize("bad", [
    {"admin_group": "sudo ALL=(ALL) NOPASSWD: ALL"},
    {"admin_group": "wheel\nDefaults !use_pty"},
    {"nopasswd_exceptions": ["ALL"]},
    {"nopasswd_exceptions": ["deploy, %users"]},
    {"sudo_logfile": "/var/log/sudo log"},
    {"sudo_logfile": 'x"\nDefaults !use_pty'},
    {"permit_root_login": "yes"},
])
def test_invalid_values_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        measure.Settings(**bad)  # type: ignore[arg-type]


def test_base_profile_names_the_lab_deploy_account_as_exception() -> None:
    settings = Profiles().resolve("terminal").measure("admin")
    assert settings.nopasswd_exceptions == ["hardening"]
    assert measure.sshd_dropin(settings).endswith("PermitRootLogin no\n")


def test_defaults_equal_what_base_yaml_still_repeats() -> None:
    """Every admin key base.yaml names has the Settings default (so base.yaml can drop them)."""
    base = (yaml.safe_load((HWPROFILES / "base.yaml").read_text()).get("measures") or {}).get("admin", {})
    defaults = measure.Settings().model_dump()
    assert {k: defaults[k] for k in base} == base


def test_lockout_refused_when_deploy_connects_as_root() -> None:
    assert measure.lockout_reason(measure.Settings(), "root")
    assert measure.lockout_reason(measure.Settings(permit_root_login="prohibit-password"), "root") is None
    assert measure.lockout_reason(measure.Settings(), "hardening") is None


@pytest.mark.skipif(shutil.which("visudo") is None, reason="visudo is not installed here")
def test_visudo_accepts_rendered_and_refuses_broken(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text(measure.sudoers(measure.Settings(nopasswd_exceptions=["hardening"])))
    broken = tmp_path / "broken"
    broken.write_text(measure.sudoers(measure.Settings()).replace("(ALL:ALL)", "(ALL:ALL"))
    assert subprocess.run(["visudo", "-cf", str(good)], capture_output=True).returncode == 0
    assert subprocess.run(["visudo", "-cf", str(broken)], capture_output=True).returncode != 0


# -- rights, from real cvtsudoers output -------------------------------------------------------------

@needs_cvtsudoers
def test_aliases_runas_and_nopasswd_on_one_command(tmp_path: Path) -> None:
    main = LOGGED + (
        "User_Alias ADMINS = alice, %wheel\n"
        "Runas_Alias OP = root, operator\n"
        "Runas_Alias DB = postgres\n"
        "Cmnd_Alias BACKUP = /usr/bin/restic, /usr/bin/borg\n"
        "ADMINS ALL=(OP) ALL\n"                                         # eve (wheel) gets ALL as root
        "dba ALL=(DB) ALL\n"                                            # ALL, but as postgres only
        "backup ALL=(root) NOPASSWD: BACKUP\n"                          # NOPASSWD on a narrow alias
        "bob ALL=(root) NOPASSWD: /usr/bin/restic, PASSWD: ALL\n"       # NOPASSWD on one command
    )
    ctx = judge(tmp_path, main, {"hardening": "hardening ALL=(ALL) NOPASSWD: ALL\n"})
    rights = measure.accounts_with_rights(ctx)
    assert rights["dba"] == ["(DB) ALL"] and rights["backup"] == ["(root) NOPASSWD: BACKUP"]
    assert rights["bob"] == ["(root) NOPASSWD: /usr/bin/restic", "(root) PASSWD: ALL"]
    found = measure.violations(ctx, SETTINGS)
    assert found == {"bob": ["ALL rights outside group sudo: (root) PASSWD: ALL"],
                     "eve": ["ALL rights outside group sudo: (OP) ALL"]}
    assert not logging_gaps(ctx)


@needs_cvtsudoers
@pytest.mark.parametrize(("rule", "who", "why"), [
    ("bob ALL=(ALL) NOPASSWD: ALL, !/usr/bin/su\n", "bob", "blanket NOPASSWD"),   # negation does not narrow ALL
    ("alice ALL=(ALL:ALL) NOPASSWD: ALL\n", "alice", "blanket NOPASSWD"),         # admin, but no password
    ("Defaults:backup !authenticate\nbackup ALL=(root) /usr/bin/restic\n", "backup", "!authenticate"),
    ("ALL ALL=(ALL) ALL\n", "dba", "ALL rights"),
    ("+admins ALL=(ALL) ALL\n", "+admins", "getent cannot list"),
    ("bob lab=(ALL) ALL\n", "bob", "ALL rights"),                                 # this host by name
    ("bob 10.0.0.0/8=(ALL) ALL\n", "bob", "ALL rights"),                          # by network
    ("#1001 ALL=(#0) ALL\n", "bob", "ALL rights"),                                # by uid, as uid 0
])
def test_violations(tmp_path: Path, rule: str, who: str, why: str) -> None:
    found = measure.violations(judge(tmp_path, LOGGED + rule), SETTINGS)
    assert who in found and any(why in v for v in found[who]), found


@needs_cvtsudoers
@pytest.mark.parametrize("rule", [
    "bob otherhost=(ALL) ALL\n",               # another host's rule
    "bob ALL=(ALL, !root) ALL\n",              # everyone but root
    "bob ALL=(:ALL) ALL\n",                    # groups only: still bob himself
    "ALL, !bob ALL=(root) /usr/bin/id\n",      # narrow
    "hardening ALL=(ALL) NOPASSWD: ALL\n",     # the documented exception
    "%sudo ALL=(ALL) NOPASSWD: /usr/bin/apt-get update\n",   # fixed arguments: no escape
    "bob ALL=(root) NOPASSWD: /usr/bin/find /srv -name x\n",
    "bob ALL=(root) NOPASSWD: sudoedit /etc/hosts\n",        # edits a copy as bob
    "bob ALL=(postgres) NOPASSWD: /bin/bash\n",              # a shell, but not as root
    "bob ALL=(root) NOPASSWD: /usr/bin/env \"\"\n",           # "": no arguments at all
])
def test_no_violation(tmp_path: Path, rule: str) -> None:
    assert measure.violations(judge(tmp_path, LOGGED + rule), SETTINGS) == {}


@needs_cvtsudoers
@pytest.mark.parametrize(("rule", "who", "why"), [
    ("bob ALL=(root) NOPASSWD: /bin/bash\n", "bob", "root shell: /bin/bash"),
    ("bob ALL=(ALL) NOPASSWD: /usr/bin/vi /etc/motd\n", "bob", "(vi)"),        # an editor: :!sh
    ("bob ALL=NOPASSWD: /usr/bin/find\n", "bob", "(find)"),                     # no run-as list: root
    ("bob ALL=(root) NOPASSWD: /usr/bin/find /srv -name *\n", "bob", "(find)"), # * lets -exec in
    ("bob ALL=(ALL:ALL) NOPASSWD: /usr/bin/env\n", "bob", "(env)"),
    ("bob ALL=(root) NOPASSWD: /usr/bin/python3.11\n", "bob", "(python)"),
    ("bob ALL=(root) NOPASSWD: /usr/bin/*\n", "bob", "/usr/bin/* matches"),
    ("Cmnd_Alias PAGER = /usr/bin/less\nbob ALL=(root) NOPASSWD: PAGER\n", "bob", "(less)"),
    ("Runas_Alias R = root\nbob ALL=(R) NOPASSWD: /usr/bin/less /var/log/syslog\n", "bob", "(less)"),
    ("bob ALL=(root) /bin/sh\n", "bob", "ALL rights outside group sudo"),       # with a password too
    ("alice ALL=(root) NOPASSWD: /bin/bash\n", "alice", "blanket NOPASSWD"),     # admin, no password
])
def test_one_command_that_gives_a_root_shell(tmp_path: Path, rule: str, who: str, why: str) -> None:
    """NOPASSWD (or any rule outside the admin group) on ONE command that gives a root shell is
    as good as ALL: the real cvtsudoers JSON of each rule, judged."""
    found = measure.violations(judge(tmp_path, LOGGED + rule), SETTINGS)
    assert who in found and any(why in v for v in found[who]), found


# -- logging Defaults, bound per user, run-as user, host, command ------------------------------------

@needs_cvtsudoers
@pytest.mark.parametrize(("extra", "missing"), [
    ("", {}),
    ("Defaults:bob !use_pty\nbob ALL=(root) /usr/bin/id\n", {"bob": ["use_pty"]}),
    # in file order: a later global entry wins over an earlier per-user one (sudo 1.9.13, seen)
    ("Defaults:bob !use_pty\nDefaults use_pty\nbob ALL=(root) /usr/bin/id\n", {}),
    ("Defaults:%sudo logfile=/tmp/x.log\n", {"alice": ["logfile=/var/log/sudo.log"],
                                             "hardening": ["logfile=/var/log/sudo.log"]}),
    ("Defaults@lab !use_pty\n", "everyone:use_pty"),
    ("Defaults@otherhost !use_pty\n", {}),
    ("Defaults!/usr/bin/less !use_pty\n", "everyone:not in effect for commands /usr/bin/less"),
    ("Cmnd_Alias LOGS = /usr/bin/journalctl\nDefaults!LOGS !logfile\n", "everyone:for commands LOGS"),
    ("Defaults!/bin/sh !logfile\n", "everyone:for commands /bin/sh"),
    ("Defaults:bob !logfile\nbob ALL=(root) /usr/bin/id\n", {"bob": ["logfile=/var/log/sudo.log"]}),
    ("Defaults:alice !syslog\n", {"alice": ["syslog (not !syslog)"]}),
    ("Defaults:%sudo !log_allowed\n", {"alice": ["log_allowed (not !log_allowed)"],
                                        "hardening": ["log_allowed (not !log_allowed)"]}),
    ("Defaults>root !log_allowed\n", "everyone:log_allowed"),
    ("Defaults syslog=auth\n", {}),                                            # another facility: still logged
])
def test_logging_defaults(tmp_path: Path, extra: str, missing: Any) -> None:
    gaps = logging_gaps(judge(tmp_path, LOGGED, {"zz": extra} if extra else {}))
    if isinstance(missing, str):
        text = missing.split(":", 1)[1]
        assert set(gaps) == {"root", "alice", "hardening"} | ({"bob"} if "bob" in extra else set())
        assert all(any(text in g for g in v) for v in gaps.values()), gaps
    else:
        assert gaps == missing


@needs_cvtsudoers
def test_runas_and_user_defaults_told_apart(tmp_path: Path) -> None:
    """``Defaults>root`` and ``Defaults:root`` give the same JSON; the run-as pass tells them apart."""
    as_root = judge(tmp_path / "a", LOGGED + "Defaults>root !use_pty\n")
    assert [sorted(d.kinds) for d in as_root.policy.defaults][-1] == ["runas"]
    assert set(logging_gaps(as_root)) == {"root", "alice", "hardening"}   # everyone running as root
    for_root = judge(tmp_path / "b", LOGGED + "Defaults:root !use_pty\n")
    assert [sorted(d.kinds) for d in for_root.policy.defaults][-1] == ["user"]
    assert logging_gaps(for_root) == {"root": ["use_pty"]}
    as_postgres = judge(tmp_path / "c", LOGGED + "Defaults>postgres !use_pty\ndba ALL=(postgres) ALL\n")
    assert list(logging_gaps(as_postgres)) == ["alice", "dba", "hardening", "root"]
    assert "when running as postgres" in logging_gaps(as_postgres)["dba"][0]


@needs_cvtsudoers
def test_identical_user_and_runas_entries_count_the_worse_way(tmp_path: Path) -> None:
    ctx = judge(tmp_path, DEBIAN + "Defaults:alice logfile=/var/log/sudo.log\n"
                                   "Defaults>alice logfile=/var/log/sudo.log\n")
    assert [sorted(d.kinds) for d in ctx.policy.defaults][-2:] == [["runas", "user"], ["runas", "user"]]
    assert "logfile=/var/log/sudo.log" in logging_gaps(ctx)["alice"]  # switching it on is not assumed


# -- the include directory, the files behind a finding, the deploy's decision ------------------------

@needs_cvtsudoers
def test_includedir_followed_dotted_files_skipped_and_file_named(tmp_path: Path) -> None:
    path = tree(tmp_path, LOGGED, {"hardening": "hardening ALL=(ALL) NOPASSWD: ALL\n",
                                   "old.bak": "eve ALL=(ALL) NOPASSWD: ALL\n",            # sudo skips it
                                   "zz-extra": "Defaults:bob !use_pty\nbob ALL=(ALL) NOPASSWD: ALL\n"})
    ctx = context(path)
    found = measure.violations(ctx, SETTINGS)
    assert set(found) == {"bob"}
    files_cmd = measure.files_command(str(path))
    files = measure.parse_files(batch(files_cmd)[files_cmd].stdout)
    assert list(files) == [str(path), f"{tmp_path}/d/hardening", f"{tmp_path}/d/zz-extra"]
    named = measure.files_behind(ctx, files, SETTINGS, found, logging_gaps(ctx))
    assert list(named) == [f"{tmp_path}/d/zz-extra"]
    assert any("Defaults:bob !use_pty" in why for why in named[f"{tmp_path}/d/zz-extra"])


@needs_cvtsudoers
@pytest.mark.parametrize(("files", "moved"), [
    ({}, None),                                                             # Debian's file, no logfile: ours fixes it
    ({"hardening-admin": "mallory ALL=(ALL) ALL\n"}, None),                 # ours, hand-edited: rewritten
    ({"hardening-admin": measure.sudoers(SETTINGS)}, None),                 # in place: the live policy
    ({"hardening-admin": measure.sudoers(SETTINGS), "zz-extra": "bob ALL=(ALL) ALL\n"}, "zz-extra"),
    ({"zz-extra": "bob ALL=(ALL) NOPASSWD: ALL\n"}, "zz-extra"),            # another file's rule
    ({"zz-extra": "bob ALL=(root) NOPASSWD: /usr/bin/vi\n"}, "zz-extra"),   # one root-shell command
    ({"zz-extra": "Defaults !use_pty\n"}, "zz-extra"),                      # read after ours: wins
    ({"aa-early": "Defaults !use_pty\n"}, None),                            # read before ours: ours wins
    ({"aa-early": "Defaults:alice !use_pty\n"}, None),
    ({"zz-extra": "Defaults:alice !use_pty\n"}, "zz-extra"),
    ({"zz-extra": "Defaults:alice !logfile\n"}, "zz-extra"),
    ({"zz-extra": "Defaults!/bin/sh !logfile\n"}, "zz-extra"),              # per command: read after all
    ({"aa-early": "Defaults!/bin/sh !logfile\n"}, "aa-early"),
    ({"zz-extra": "Defaults>root !use_pty\n", "zz-fine": "bob ALL=(root) /usr/bin/id\n"}, "zz-extra"),
])
def test_deploy_sets_aside_the_files_behind_a_finding(tmp_path: Path, files: dict[str, str],
                                                      moved: str | None) -> None:
    path = tree(tmp_path, DEBIAN, files)
    repair = plan(tmp_path, path)
    assert repair.conflicts == ()
    assert repair.quarantine == ((f"{tmp_path}/d/{moved}",) if moved else ())
    assert (tmp_path / "d" / "hardening-admin").exists() == ("hardening-admin" in files)  # live tree untouched


def plan(tmp_path: Path, path: Path) -> measure.SudoRepair:
    after_cmd = measure.policy_after_command(SETTINGS, str(path), str(tmp_path / "d"))
    files_cmd, live_cmd = measure.files_command(str(path)), measure.policy_command(str(path))
    seen = batch(after_cmd, files_cmd, live_cmd)
    after, included = measure.read_after(seen[after_cmd], seen[live_cmd])
    assert after is not None and included
    ctx = measure.Context(after, measure.Accounts.parse(PASSWD, GROUP), measure.HostInfo("lab", None))
    return measure.deploy_plan(ctx, included, measure.parse_files(seen[files_cmd].stdout), SETTINGS,
                               own=str(tmp_path / "d" / "hardening-admin"), directory=str(tmp_path / "d"))


@needs_cvtsudoers
@pytest.mark.parametrize("directive", ["#includedir", "@includedir", "#include", "@include"])
def test_old_and_new_include_forms_are_followed(tmp_path: Path, directive: str) -> None:
    """sudo reads ``#includedir`` (the old spelling, not a comment) like ``@includedir``, and a
    single file through ``#include``/``@include``: cvtsudoers follows all four."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "zz").write_text("bob ALL=(root) NOPASSWD: /usr/bin/less\nDefaults:bob !logfile\n")
    os.chmod(tmp_path / "d" / "zz", 0o440)
    target = tmp_path / "d" if directive.endswith("dir") else tmp_path / "d" / "zz"
    (tmp_path / "sudoers").write_text(LOGGED + f"{directive} {target}\n")
    os.chmod(tmp_path / "sudoers", 0o440)
    ctx = context(tmp_path / "sudoers")
    assert "bob" in measure.violations(ctx, SETTINGS)
    assert logging_gaps(ctx)["bob"] == ["logfile=/var/log/sudo.log"]


@needs_cvtsudoers
def test_deploy_refuses_what_is_in_the_main_file(tmp_path: Path) -> None:
    path = tree(tmp_path, DEBIAN + "bob ALL=(root) NOPASSWD: /bin/bash\n", {"zz-extra": "Defaults:bob !use_pty\n"})
    repair = plan(tmp_path, path)
    assert repair.quarantine == (f"{tmp_path}/d/zz-extra",)
    assert len(repair.conflicts) == 1 and f"{path} [bob:" in repair.conflicts[0]


@needs_cvtsudoers
def test_quarantine_renames_and_puts_back_when_sudoers_breaks(tmp_path: Path) -> None:
    """The real command on a scratch tree: visudo -c reads /etc/sudoers, so only the renaming and
    the put-back are shown here (the lab shows visudo's side)."""
    (tmp_path / "a").write_text("x")
    cmd = measure.quarantine_command([str(tmp_path / "a"), str(tmp_path / "missing")])
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True)
    assert out.returncode == 1 and "could not rename" in out.stderr
    assert (tmp_path / "a").read_text() == "x" and not (tmp_path / ("a" + measure.QUARANTINE_SUFFIX)).exists()


@needs_cvtsudoers
def test_deploy_refuses_when_sudoers_d_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "sudoers").write_text(DEBIAN)
    (tmp_path / "d").mkdir()
    cmd = measure.policy_after_command(SETTINGS, str(tmp_path / "sudoers"), str(tmp_path / "d"))
    live = measure.policy_command(str(tmp_path / "sudoers"))
    seen = batch(cmd, live)
    after, included = measure.read_after(seen[cmd], seen[live])
    assert after is not None and not included
    ctx = measure.Context(after, measure.Accounts.parse(PASSWD, GROUP), measure.HostInfo("lab", None))
    assert "does not read" in measure.deploy_plan(ctx, included, {}, SETTINGS).conflicts[0]


# -- output that cannot be read is an error -----------------------------------------------------------

@pytest.mark.parametrize("text", [
    '{"User_Specs": [], "Sudoers_Version": 2}',                                       # unknown section
    '{"User_Specs": [{"User_List": [{"uid_range": "1-9"}], "Host_List": [{"hostname": "ALL"}], '
    '"Cmnd_Specs": [{"Commands": [{"command": "ALL"}]}]}]}',                          # unknown member
    '{"User_Specs": [{"User_List": [{"username": "bob"}], "Host_List": [{"hostname": "ALL"}], '
    '"Cmnd_Specs": [{"Commands": [{"command": "ALL"}], "Chroot": "/"}]}]}',           # unknown key
    '{"Defaults": [{"Options": [{"env_keep": ["A"], "operation": "list_merge"}]}]}',  # unknown list op
    '{"Defaults": [{"Options": [{"use_pty": true, "logfile": "/x"}]}]}',              # two in one
    "[]",
    "not json",
])
def test_json_not_understood_is_an_error(text: str) -> None:
    with pytest.raises(measure.PolicyError):
        measure.parse_json(text)


def test_failed_or_incomplete_observations_are_errors() -> None:
    def result(rc: int, stdout: str, stderr: str = "") -> Observation:
        return Observation("o0", "cvtsudoers", rc, stdout, stderr, 0.0)
    assert measure.read_policy(result(127, measure.NOT_INSTALLED + "\n")) is None
    with pytest.raises(measure.PolicyError, match="syntax error"):
        measure.read_policy(result(1, "", "/etc/sudoers.d/x:1:5: syntax error"))
    with pytest.raises(measure.PolicyError, match="run-as"):
        measure.read_policy(result(0, "{}\n"))
    with pytest.raises(measure.PolicyError):
        measure.Accounts.parse("bob:x:1001:1001::/h:/bin/sh\n", "")   # no root: not the real database
    assert measure.sudoers_sources("files sss\n") == ["files", "sss"]
    assert measure.sudoers_sources("") == ["files"]


def test_root_login_at_least_as_strict_as_the_profile() -> None:
    no = measure.Settings(permit_root_login="no")
    keys = measure.Settings(permit_root_login="prohibit-password")
    assert measure.root_login_problem(no, ["no"]) is None
    assert "PermitRootLogin without-password" in str(measure.root_login_problem(no, ["without-password"]))
    assert measure.root_login_problem(keys, ["without-password"]) is None   # sshd -T's spelling
    assert measure.root_login_problem(keys, ["no"]) is None                 # stricter passes
    assert measure.root_login_problem(keys, ["forced-commands-only"]) is None
    assert "yes" in str(measure.root_login_problem(keys, ["yes"]))
    assert "(not printed)" in str(measure.root_login_problem(no, []))


def test_files_output_not_understood_names_every_file() -> None:
    found = measure.parse_files(f"### 1 /etc/sudoers\n### 2 /etc/sudoers.d/x\n{measure.JSON_MARK}\nnot json\n")
    assert set(found) == {"/etc/sudoers", "/etc/sudoers.d/x"}
    assert all(isinstance(v, str) and v.startswith("not converted") for v in found.values())
