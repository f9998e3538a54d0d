"""auth (6-1, 6-2): desired state and parsers, no host.

The PAM stack rules exist twice, in Python (the check) and in awk (run on the host by the deploy
before it leaves a stack in place); the tests here run both over the same stacks and require the
same answers. pam-auth-update itself is run in a scratch root with its own debconf database, so
the profiles are proven to give the stack the rules expect.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import pydantic
import pytest
import yaml

from hardening import HWPROFILES
from hardening.measures import auth as measure
from hardening.observe import parse, remote_command

STOCK_AUTH = """\
# here are the per-package modules (the "Primary" block)
auth\t[success=1 default=ignore]\tpam_unix.so nullok
# here's the fallback if no module succeeds
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
# and here are more per-package modules (the "Additional" block)
auth\toptional\t\t\tpam_cap.so
"""

# What pam-auth-update 1.5.2 wrote in a scratch root with the two hardening profiles enabled.
FAILLOCK_AUTH = """\
auth\trequisite\t\t\tpam_faillock.so preauth
auth\t[success=2 default=ignore]\tpam_unix.so nullok try_first_pass
auth\t[default=die]\t\t\tpam_faillock.so authfail
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
auth\toptional\t\t\tpam_cap.so
"""

FAILLOCK_ACCOUNT = """\
account\trequired\t\t\tpam_faillock.so
account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so
account\trequisite\t\t\tpam_deny.so
account\trequired\t\t\tpam_permit.so
"""

STOCK_ACCOUNT = FAILLOCK_ACCOUNT.split("\n", 1)[1]

Stack = Literal["auth", "account"]
STACKS: dict[str, tuple[str, Stack]] = {
    "stock auth": (STOCK_AUTH, "auth"),
    "faillock auth": (FAILLOCK_AUTH, "auth"),
    "faillock account": (FAILLOCK_ACCOUNT, "account"),
    "stock account": (STOCK_ACCOUNT, "account"),
    # a line added by hand: pam_unix's success=1 now lands on pam_deny, every login is refused
    "hand-edited": (STOCK_AUTH.replace("nullok\n", "nullok\nauth optional pam_echo.so hi\n"), "auth"),
    "preauth after unix": (FAILLOCK_AUTH.replace("auth\trequisite\t\t\tpam_faillock.so preauth\n", "")
                           .replace("authfail\n", "authfail\nauth requisite pam_faillock.so preauth\n"), "auth"),
    "authfail not die": (FAILLOCK_AUTH.replace("[default=die]", "optional"), "auth"),
    "jump off the end": (FAILLOCK_AUTH.replace("success=2", "success=9"), "auth"),
    "full module path": (FAILLOCK_AUTH.replace("pam_unix.so", "/lib/x86_64-linux-gnu/security/pam_unix.so"),
                         "auth"),
    "empty": ("", "auth"),
}

AWK = shutil.which("awk")


def test_pam_profiles_order_preauth_before_and_authfail_after_pam_unix():
    profiles = measure.pam_profiles()
    assert set(profiles) == {"hardening-faillock-preauth", "hardening-faillock"}
    assert "Priority: 1024" in profiles["hardening-faillock-preauth"]  # above pam_unix (256)
    assert "Priority: 0" in profiles["hardening-faillock"]  # below pam_unix
    assert "pam_faillock.so preauth" in profiles["hardening-faillock-preauth"]
    assert "Account:\n\trequired" in profiles["hardening-faillock-preauth"]
    assert "[default=die]" in profiles["hardening-faillock"]
    assert all("even_deny_root" not in text for text in profiles.values())  # root can always log in


@pytest.mark.parametrize(("text", "stack", "problems"), [
    (FAILLOCK_AUTH, "auth", []),
    (FAILLOCK_ACCOUNT, "account", []),
    (STOCK_AUTH, "auth", ["no pam_faillock.so preauth line", "no pam_faillock.so authfail line"]),
    (STOCK_ACCOUNT, "account", ["no pam_faillock.so line in the account stack"]),
    (STACKS["hand-edited"][0], "auth", ["line 1 (pam_unix.so) success=1 does not land after pam_deny.so",
                                        "no pam_faillock.so preauth line", "no pam_faillock.so authfail line"]),
    (STACKS["full module path"][0], "auth", []),
])
def test_stack_problems(text, stack, problems):
    assert measure.stack_problems(text, stack) == problems


@pytest.mark.skipif(AWK is None, reason="no awk")
@pytest.mark.parametrize("name", sorted(STACKS))
def test_awk_validator_agrees_with_python(tmp_path: Path, name: str):
    text, stack = STACKS[name]
    program = tmp_path / "check.awk"
    program.write_text(measure.STACK_CHECK_AWK)
    pam = tmp_path / "common"
    pam.write_text(text)
    out = subprocess.run([str(AWK), "-v", f"stack={stack}", "-f", str(program), str(pam)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == measure.stack_problems(text, stack)


def test_enable_script_is_valid_sh_and_restores_on_failure(tmp_path: Path):
    script = measure.enable_script()
    path = tmp_path / "enable.sh"
    path.write_text(script)
    subprocess.run(["sh", "-n", str(path)], check=True)
    assert "pam-auth-update --package $FORCE --enable hardening-faillock-preauth hardening-faillock" in script
    assert measure.enable_command(force=True).endswith(" --force") and "--force" not in measure.enable_command()
    assert script.index("restore()") < script.index("pam-auth-update --package")
    assert "exit 1" in script and measure.STACK_CHECK in script


@pytest.mark.skipif(not shutil.which("pam-auth-update") or not Path("/usr/share/pam/common-auth").exists(),
                    reason="needs Debian's pam-auth-update (libpam-runtime)")
def test_real_pam_auth_update_gives_a_sound_stack(tmp_path: Path):
    """pam-auth-update --root in a scratch tree, with its own debconf database: nothing of the
    machine's PAM or debconf state is read or written."""
    root = tmp_path / "root"
    (root / "etc/pam.d").mkdir(parents=True)
    (root / "var/lib/pam").mkdir(parents=True)
    configs = root / "usr/share/pam-configs"
    configs.mkdir(parents=True)
    for name in ("common-auth", "common-account", "common-password", "common-session",
                 "common-session-noninteractive"):
        shutil.copy(f"/usr/share/pam/{name}", root / "etc/pam.d" / name)
    shutil.copy("/usr/share/pam-configs/unix", configs / "unix")
    for name, text in measure.pam_profiles().items():
        (configs / name).write_text(text)
    rc = tmp_path / "debconf.conf"
    rc.write_text(f"Config: c\nTemplates: t\n\nName: c\nDriver: File\nFilename: {tmp_path}/c.dat\n\n"
                  f"Name: t\nDriver: File\nMode: 644\nFilename: {tmp_path}/t.dat\n")
    env = {**os.environ, "DEBCONF_SYSTEMRC": str(rc), "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["pam-auth-update", "--root", str(root), "--force", "--enable", *measure.pam_profiles()],
                   env=env, check=True, capture_output=True, timeout=60)
    auth_text = (root / "etc/pam.d/common-auth").read_text()
    account_text = (root / "etc/pam.d/common-account").read_text()
    assert measure.stack_problems(auth_text, "auth") == []
    assert measure.stack_problems(account_text, "account") == []
    modules = [(ln.control, ln.module, ln.args) for ln in measure.parse_pam_stack(auth_text, "auth")]
    assert modules[:3] == [("requisite", "pam_faillock.so", ("preauth",)),
                           ("[success=2 default=ignore]", "pam_unix.so", ("nullok", "try_first_pass")),
                           ("[default=die]", "pam_faillock.so", ("authfail",))]
    # A package upgrade (libpam-runtime's postinst, a new PAM module) runs `pam-auth-update
    # --package` again: the faillock lines stay, the stack is unchanged.
    subprocess.run(["pam-auth-update", "--root", str(root), "--package"], env=env, check=True,
                   capture_output=True, timeout=60)
    assert (root / "etc/pam.d/common-auth").read_text() == auth_text
    assert (root / "etc/pam.d/common-account").read_text() == account_text


def test_login_defs_last_occurrence_wins_and_quotes_are_stripped():
    text = 'PASS_MAX_DAYS\t99999\n# PASS_MAX_DAYS 10\nENCRYPT_METHOD "SHA512"\nPASS_MAX_DAYS   180\n'
    assert measure.parse_login_defs(text) == {"PASS_MAX_DAYS": "180", "ENCRYPT_METHOD": "SHA512"}


def test_login_defs_values_and_regexes():
    values = measure.login_defs_values(measure.Settings(pass_max_days=180, password_hash="sha512"))
    assert values == {"PASS_MAX_DAYS": "180", "PASS_MIN_DAYS": "1", "PASS_WARN_AGE": "14",
                      "ENCRYPT_METHOD": "SHA512"}
    assert measure.login_defs_regex("PASS_MAX_DAYS") == "^[[:space:]]*PASS_MAX_DAYS[[:space:]]"


def test_ageing_problems():
    settings = measure.Settings(pass_max_days=365)
    assert measure.ageing_problems({"PASS_MAX_DAYS": "365", "PASS_MIN_DAYS": "1", "PASS_WARN_AGE": "14"},
                                   settings) == []
    problems = measure.ageing_problems({"PASS_MAX_DAYS": "99999", "PASS_MIN_DAYS": "0"}, settings)
    assert [p.split("=")[0] for p in problems] == ["PASS_MAX_DAYS", "PASS_MIN_DAYS", "PASS_WARN_AGE"]


def test_faillock_module_arguments_win_over_the_conf():
    conf = "# deny = 3\ndeny = 5\nunlock_time = 900\n"
    auth_text = FAILLOCK_AUTH.replace("authfail", "authfail deny=10")
    values = measure.effective_faillock(conf, args(auth_text, "auth", "pam_faillock.so"))
    assert values == {"deny": "10", "unlock_time": "900", "fail_interval": "900"}
    assert measure.faillock_problems(values, measure.Settings()) == ["deny=10, the profile wants 1..5"]


def test_faillock_defaults_fail_the_baseline_and_zero_unlock_is_strict():
    settings = measure.Settings()
    assert measure.faillock_problems(measure.effective_faillock("", {}), settings) == [
        "unlock_time=600, the profile wants >= 900 (or 0)"]
    assert measure.faillock_problems({"deny": "3", "unlock_time": "0", "fail_interval": "900"}, settings) == []


def args(text: str, kind: str, module: str) -> dict[str, str]:
    """A module's arguments in a common file's stack, through the full PAM reader."""
    name = {"auth": "common-auth", "password": "common-password"}[kind]
    return measure.stack_args(measure.pam_stack({f"/etc/pam.d/{name}": text}, name, kind), module)


def test_pwquality_main_file_and_module_arguments_override_dropins():
    settings = measure.Settings(pass_min_len=12, pass_min_classes=3)
    dropin = "minlen = 12\nminclass = 3\n"
    assert measure.effective_pwquality([("hardening.conf", dropin)], "", {}) == {
        "minlen": "12", "minclass": "3", "enforcing": "1"}
    assert measure.effective_pwquality([("hardening.conf", dropin)], "minlen = 8\n", {})["minlen"] == "8"
    password = "password\trequisite\t\t\tpam_pwquality.so retry=3 minclass=2\n"
    arguments = args(password, "password", "pam_pwquality.so")
    values = measure.effective_pwquality([("hardening.conf", dropin)], "", arguments)
    assert measure.pwquality_problems(values, settings) == ["minclass=2, the profile wants >= 3"]


@pytest.mark.parametrize(("dropins", "main", "arguments", "problem"), [
    ([("/etc/security/pwquality.conf.d/zz.conf", "enforcing = 0\n")], "", {}, "enforcing=0"),
    ([], "enforcing=0\n", {}, "enforcing=0"),
    ([], "enforcing = 1\n", {"enforcing": "0"}, "enforcing=0"),                 # the module argument wins
    ([("/etc/security/pwquality.conf.d/zz.conf", "enforcing = 0\n")], "enforcing = 1\n", {}, None),  # main last
    ([], "enforcing = 2\n", {}, None),
])
def test_pwquality_enforcing(dropins, main, arguments, problem):
    values = measure.effective_pwquality(dropins, main + "minlen = 14\nminclass = 3\n", arguments)
    found = measure.pwquality_problems(values, measure.Settings())
    assert (problem is None and found == []) or (problem is not None and found and problem in found[0]), found


def test_hash_strength():
    yescrypt, sha512 = measure.Settings(password_hash="yescrypt"), measure.Settings(password_hash="sha512")
    assert measure.hash_ok("YESCRYPT", yescrypt) and measure.hash_ok("yescrypt", sha512)
    assert not measure.hash_ok("SHA512", yescrypt) and measure.hash_ok("SHA512", sha512)
    assert not measure.hash_ok(None, sha512) and not measure.hash_ok("md5", sha512)
    password = "password\t[success=1 default=ignore]\tpam_unix.so obscure use_authtok try_first_pass yescrypt\n"
    assert measure.pam_unix_hash(password) == "yescrypt"
    assert measure.pam_unix_hash("password required pam_unix.so\n") is None


SHADOW = """\
root:$y$j9T$abc$def:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
empty::19000:0:99999:7:::
old:$1$salt$hash:19000:0:365:7:::
aged:$6$salt$hash:19000:1:180:14:::
locked:!$y$j9T$abc$def:19000:0:99999:7:::
"""


def test_accounts_from_shadow_and_passwd():
    assert measure.empty_password_accounts(SHADOW) == ["empty"]
    assert measure.weak_hash_accounts(SHADOW) == ["old"]
    assert measure.ageing_exceeding(SHADOW, measure.Settings(pass_max_days=365)) == {"root": "99999"}
    passwd = "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/u:/bin/sh\n"
    assert measure.uid0_accounts(passwd) == ["root", "toor"]


def test_shadow_mode_problems():
    assert measure.shadow_mode_problems("/etc/shadow", 0o640, "root", "shadow") == []
    assert measure.shadow_mode_problems("/etc/shadow", 0o600, "root", "root") == []
    assert measure.shadow_mode_problems("/etc/shadow", 0o000, "root", "root") == []
    assert measure.shadow_mode_problems("/etc/shadow", 0o644, "root", "shadow") == [
        "/etc/shadow mode 0644 has bits beyond 0640"]
    assert len(measure.shadow_mode_problems("/etc/shadow", 0o640, "bin", "adm")) == 2


def test_personal_data_paths():
    entry = measure.PersonalDataPath(path="/srv/pii", group="pii")
    good = {"type": "directory", "user": "root", "group": "pii", "mode": "750", "acl": "."}
    assert measure.personal_data_problems(entry, good, True) == []
    assert measure.personal_data_problems(entry, None, False) == ["group pii does not exist",
                                                                  "/srv/pii does not exist"]
    loose = {**good, "mode": "755", "acl": "+"}
    assert measure.personal_data_problems(entry, loose, True) == [
        "/srv/pii mode 0755, not 0750", "/srv/pii has world (other) bits",
        "/srv/pii has extended ACL entries (getfacl) beyond owner/group/mode"]
    with pytest.raises(pydantic.ValidationError, match="world"):
        measure.PersonalDataPath(path="/srv/pii", group="pii", mode="0754")


# -- observations and the deploy's decisions ---------------------------------------------------------

def test_defaults_equal_what_base_yaml_still_repeats():
    """Every auth key base.yaml names has the Settings default (so base.yaml can drop them)."""
    base = (yaml.safe_load((HWPROFILES / "base.yaml").read_text()).get("measures") or {}).get("auth", {})
    defaults = measure.Settings().model_dump()
    assert {k: defaults[k] for k in base} == base


def test_observe_declares_every_command_once_with_personal_data():
    settings = measure.Settings(personal_data=[measure.PersonalDataPath(path="/srv/p ii", group="pii")])
    commands = measure.observe(SimpleNamespace(measure=lambda name: settings))
    assert len(commands) == len(set(commands))
    assert "stat -c '%F|%U|%G|%a' '/srv/p ii'" in commands and "getent group pii" in commands
    assert "stat -c '%a %U %G' /etc/shadow" in commands


def test_observed_stat_listing_and_dropins_read_back(tmp_path: Path):
    (tmp_path / "a.conf").write_text("minlen = 8\n")
    (tmp_path / "b.conf").write_text("minclass = 4\n")
    dropins = measure.PWQUALITY_DROPINS.replace(measure.PWQUALITY_DIR, str(tmp_path))
    commands = [measure.dir_stat(str(tmp_path)), measure.dir_listing(str(tmp_path)), dropins]
    out = subprocess.run(["sh", "-c", remote_command(commands)], capture_output=True, text=True)
    seen = parse(commands, out.stdout).results
    stat = measure.parse_stat(seen[commands[0]].stdout)
    assert stat["type"] == "directory" and stat["mode"] == f"{tmp_path.stat().st_mode & 0o7777:o}"
    assert measure.acl_marker(seen[commands[1]].stdout) in (" ", ".", "+")
    assert measure.parse_dropins(seen[dropins].stdout) == [(f"{tmp_path}/a.conf", "minlen = 8\n"),
                                                          (f"{tmp_path}/b.conf", "minclass = 4\n")]


def test_account_findings_need_a_person():
    settings = measure.Settings(pass_max_days=365)
    passwd = "root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/root:/bin/sh\n"
    found = measure.account_findings(SHADOW, passwd, settings)
    assert [f.split(":")[0] for f in found] == ["empty password", "UID 0 besides root", "weak stored hash",
                                                "password never expires or too late"]
    assert "toor" in found[1] and "chage -M 365" in found[3]
    clean = "root:!:19000:0:365:7:::\nhardening:*:19000:0:99999:7:::\n"
    assert measure.account_findings(clean, "root:x:0:0::/root:/bin/sh\n", settings) == []


PASSWORD = ("password\trequisite\t\t\tpam_pwquality.so retry=3\n"
            "password\t[success=1 default=ignore]\tpam_unix.so obscure use_authtok try_first_pass yescrypt\n")


def test_enable_script_also_enables_pwquality():
    assert f"{' '.join(measure.pam_profiles())} {measure.PWQUALITY_PROFILE}" in measure.enable_script()
    assert f"{measure.PAM_CONFIGS}/{measure.PWQUALITY_PROFILE}" not in measure.enable_script()  # never removed
