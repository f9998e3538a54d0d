"""auth (6-1, 6-2): PAM read with its full grammar and judged through libpam's dispatch.

The host files are Debian 12's as pam-auth-update writes them on the lab with the measure's
profiles (``/etc/pam.d`` of a deployed lab container); each test breaks them one way (an
``optional`` control, a jump, ``enforcing=0``, ``nullok``, ``@include``, a substack...) and asks
the same functions the check and the deploy use. The last test runs the real pam-auth-update in
a scratch root to show that the deploy's ``hardening-unix`` profile gives a stack without nullok.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from hardening.measures import auth as measure

AUTH = """\
# /etc/pam.d/common-auth - authentication settings common to all services
# here are the per-package modules (the "Primary" block)
auth\trequisite\t\t\tpam_faillock.so preauth
auth\t[success=2 default=ignore]\tpam_unix.so try_first_pass
auth\t[default=die]\t\t\tpam_faillock.so authfail
# here's the fallback if no module succeeds
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
# and here are more per-package modules (the "Additional" block)
# end of pam-auth-update config
"""
ACCOUNT = """\
account\trequired\t\t\tpam_faillock.so
account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so
account\trequisite\t\t\tpam_deny.so
account\trequired\t\t\tpam_permit.so
"""
PASSWORD = """\
password\trequisite\t\t\tpam_pwquality.so retry=3
password\t[success=1 default=ignore]\tpam_unix.so obscure use_authtok try_first_pass yescrypt
password\trequisite\t\t\tpam_deny.so
password\trequired\t\t\tpam_permit.so
"""
SESSION = "session\trequired\tpam_unix.so\n"
SERVICES = {
    "sshd": "@include common-auth\naccount    required     pam_nologin.so\n@include common-account\n"
            "session    required     pam_loginuid.so\n@include common-session\n@include common-password\n",
    "login": "auth       optional   pam_faildelay.so  delay=3000000\nauth       requisite  pam_nologin.so\n"
             "@include common-auth\nauth       optional   pam_group.so\n@include common-account\n"
             "@include common-session\n@include common-password\n",
    "sudo": "session    required   pam_limits.so\n@include common-auth\n@include common-account\n"
            "@include common-session-noninteractive\n",
    "su": "auth       sufficient pam_rootok.so\nsession    required   pam_limits.so\n@include common-auth\n"
          "@include common-account\n@include common-session\n",
    "passwd": "@include common-password\n",
}
MODULES = frozenset({"pam_deny.so", "pam_permit.so", "pam_unix.so", "pam_faillock.so", "pam_pwquality.so",
                     "pam_faildelay.so", "pam_nologin.so", "pam_group.so", "pam_rootok.so", "pam_limits.so",
                     "pam_loginuid.so", "pam_succeed_if.so", "pam_env.so"})


def tree(**changes: str) -> dict[str, str]:
    """The deployed lab's /etc/pam.d, with files replaced (``common_auth=...``) or added."""
    files = {"common-auth": AUTH, "common-account": ACCOUNT, "common-password": PASSWORD,
             "common-session": SESSION, "common-session-noninteractive": SESSION, **SERVICES}
    files.update({k.replace("_", "-"): v for k, v in changes.items()})
    return {f"/etc/pam.d/{k}": v for k, v in files.items()}


def view(**changes: str) -> measure.PamView:
    return measure.PamView(tree(**changes), MODULES)


# -- the grammar -----------------------------------------------------------------------------------

def test_logical_lines_cut_comments_and_join_continuations():
    text = "auth required \\\n   pam_unix.so nullok # a comment\n# whole line\n\n  account optional pam_x.so\n"
    assert measure.pam_logical_lines(text) == [(1, "auth required     pam_unix.so nullok"),
                                               (5, "account optional pam_x.so")]


def test_tokens_keep_brackets_with_spaces():
    line = "auth [success=1 default=ignore] pam_exec.so [quiet arg=a b\\]c] x"
    assert measure.pam_tokens(line) == ["auth", "[success=1 default=ignore]", "pam_exec.so",
                                        "[quiet arg=a b\\]c]", "x"]
    with pytest.raises(measure.PamError):
        measure.pam_tokens("auth [success=1 pam_unix.so")


def test_controls_expand_like_libpam():
    assert dict(measure.pam_control("Required")) == {"success": "ok", "new_authtok_reqd": "ok",
                                                     "ignore": "ignore", "default": "bad"}
    assert dict(measure.pam_control("[success=2 default=ignore]")) == {"success": "2", "default": "ignore"}
    assert dict(measure.pam_control("[success=ok]"))["default"] == "bad"   # what brackets leave open fails
    for bad in ("[succes=ok]", "[success=maybe]", "[success]", "mandatory"):
        with pytest.raises(measure.PamError):
            measure.pam_control(bad)


def test_include_substack_and_dash_lines_expand_in_place():
    files = tree(sshd="-auth optional pam_missing.so\nauth substack common-auth\n"
                      "auth include extra\n@include common-account\n",
                 extra="auth optional pam_group.so\naccount required pam_permit.so\n")
    stack = measure.pam_stack(files, "sshd", "auth")
    assert [(e.module, e.level) for e in stack] == [
        ("pam_missing.so", 0), ("", 0), ("pam_faillock.so", 1), ("pam_unix.so", 1), ("pam_faillock.so", 1),
        ("pam_deny.so", 1), ("pam_permit.so", 1), ("pam_group.so", 0)]
    assert stack[3].where == "/etc/pam.d/common-auth:4"
    # "auth include extra" takes only extra's auth lines; @include takes every type
    assert [e.module for e in measure.pam_stack(files, "sshd", "account")] == [
        "pam_faillock.so", "pam_unix.so", "pam_deny.so", "pam_permit.so"]


@pytest.mark.parametrize(("files", "message"), [
    ({"sshd": "@include common-missing\n"}, "not there"),
    ({"sshd": "auth required\n"}, "not 'type control module'"),
    ({"sshd": "authentication required pam_unix.so\n"}, "unknown module type"),
    ({"sshd": "auth [success=ok pam_unix.so\n"}, "unclosed"),
    ({"sshd": "@include sshd\n"}, "nest deeper"),
])
def test_what_libpam_would_not_read_is_an_error(files, message):
    with pytest.raises(measure.PamError, match=message):
        measure.pam_stack(tree(**files), "sshd", "auth")


def test_pam_tree_observation_reads_back(tmp_path: Path):
    (tmp_path / "a").write_text("auth required pam_unix.so")          # no final newline
    (tmp_path / "b").write_text("@include a\n")
    command = measure.PAM_TREE.replace(measure.PAM_DIR, str(tmp_path))
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    files = measure.parse_pam_tree(out.stdout)
    assert set(files) == {f"{tmp_path}/a", f"{tmp_path}/b"}
    assert files[f"{tmp_path}/a"].strip() == "auth required pam_unix.so"


# -- the dispatch: faillock --------------------------------------------------------------------------

def test_the_deployed_lab_stacks_are_sound():
    v = view()
    assert measure.faillock_stacks(v) == {}
    assert measure.pwquality_stacks(v) == {}
    assert measure.nullok_stacks(v) == {}
    assert measure.common_drift(v, measure.Settings()) == []
    assert measure.service_conflicts(v, measure.Settings()) == []


@pytest.mark.parametrize(("auth", "expected"), [
    # the preauth line made optional: a locked account still logs in
    (AUTH.replace("requisite\t\t\tpam_faillock.so preauth", "optional pam_faillock.so preauth"),
     "pam_faillock.so preauth failing does not fail the stack"),
    # [default=ignore] on preauth: the same in bracket form
    (AUTH.replace("requisite\t\t\tpam_faillock.so preauth", "[success=ok default=ignore] pam_faillock.so preauth"),
     "failing does not fail the stack"),
    # a jump that skips preauth for a group
    ("auth [success=1 default=ignore] pam_succeed_if.so user ingroup staff\n" + AUTH,
     "pam_faillock.so preauth is skipped on a way to success (by /etc/pam.d/common-auth:1"),
    # sufficient pam_unix before preauth
    ("auth sufficient pam_unix.so\n" + AUTH, "skipped on a way to success"),
    # the authfail line removed: failures are never counted
    (AUTH.replace("auth\t[default=die]\t\t\tpam_faillock.so authfail\n", "").replace("success=2", "success=1"),
     "no pam_faillock.so authfail"),
    # a module that may end the stack between pam_unix and authfail
    (AUTH.replace("auth\t[default=die]\t\t\tpam_faillock.so authfail",
                  "auth [default=die] pam_env.so\nauth\t[default=die]\t\t\tpam_faillock.so authfail")
         .replace("success=2", "success=3"),
     "authfail does not always run after pam_unix.so returned auth_err"),
    # a jump past the end of the stack is "bad jump": no success, but authfail is skipped
    (AUTH.replace("[success=2 default=ignore]", "[success=2 default=4]"), "authfail does not always run"),
    # the module is missing on the host: module_unknown through requisite fails every login,
    # through optional it is ignored
    (AUTH.replace("requisite\t\t\tpam_faillock.so preauth", "optional pam_faillock2.so preauth"),
     "no pam_faillock.so preauth"),
])
def test_faillock_that_does_not_gate_fails(auth, expected):
    found = measure.faillock_stacks(view(common_auth=auth))
    assert "common-auth (auth)" in found and "sshd (auth)" in found
    assert any(expected in p for p in found["common-auth (auth)"]), found
    assert any(expected in p for p in measure.common_drift(view(common_auth=auth), measure.Settings()))


def test_a_jump_that_lands_on_the_same_place_is_fine_and_reset_counts():
    # success=ok on a module before preauth: nothing is skipped
    assert measure.faillock_stacks(view(common_auth="auth optional pam_env.so\n" + AUTH)) == {}
    # a later sufficient module cannot take back preauth's failure (impression stays negative)
    later = AUTH.replace("auth\trequired\t\t\tpam_permit.so", "auth sufficient pam_permit.so")
    assert measure.faillock_stacks(view(common_auth=later)) == {}
    # reset after preauth forgets its failure: a later success wins
    reset = AUTH.replace("requisite\t\t\tpam_faillock.so preauth",
                         "required pam_faillock.so preauth\nauth [default=reset] pam_env.so")
    assert "failing does not fail the stack" in " ".join(
        measure.faillock_stacks(view(common_auth=reset)).get("common-auth (auth)", []))


def test_a_service_that_jumps_over_the_common_file_fails_and_is_a_conflict():
    sshd = "auth [success=done default=ignore] pam_succeed_if.so user = backup\n" + SERVICES["sshd"]
    v = view(sshd=sshd)
    found = measure.faillock_stacks(v)
    assert list(found) == ["sshd (auth)"]
    assert measure.common_drift(v, measure.Settings()) == []
    conflicts = measure.service_conflicts(v, measure.Settings())
    assert len(conflicts) == 1 and conflicts[0].startswith("/etc/pam.d/sshd: pam_faillock.so preauth is skipped")


def test_a_second_password_module_that_succeeds_after_pam_unix_is_fine():
    """pam-auth-update with libpam-sss: pam_sss between pam_unix and authfail, its success jumps
    over authfail (no failure to count); its failure reaches authfail."""
    sss = AUTH.replace("[success=2 default=ignore]\tpam_unix.so try_first_pass",
                       "[success=3 default=ignore]\tpam_unix.so try_first_pass\n"
                       "auth\t[success=2 default=ignore]\tpam_sss.so use_first_pass")
    assert measure.faillock_stacks(measure.PamView(tree(common_auth=sss), MODULES | {"pam_sss.so"})) == {}


def test_su_root_bypass_is_not_a_finding_and_substack_die_stays_inside():
    assert "su (auth)" not in measure.faillock_stacks(view())   # pam_rootok: only root, judged as failing
    # in a substack, die ends only the substack: the service's later lines still decide
    sshd = "auth substack common-auth\nauth optional pam_permit.so\n" + SERVICES["sshd"].split("\n", 1)[1]
    assert measure.faillock_stacks(view(sshd=sshd)) == {}


def test_account_faillock_must_run():
    account = "account sufficient pam_permit.so\n" + ACCOUNT
    found = measure.faillock_stacks(view(common_account=account))
    assert found["common-account (account)"] == [
        "pam_faillock.so is skipped on a way to success (by /etc/pam.d/common-account:1: sufficient pam_permit.so)"]


def test_faillock_arguments_per_stack():
    v = view(common_auth=AUTH.replace("authfail", "authfail deny=0"))
    conf = "deny = 3\nunlock_time = 900\nfail_interval = 900\n"
    values = {n: measure.effective_faillock(conf, a) for n, a in measure.faillock_args(v).items()}
    assert values["sshd"]["deny"] == "0" and values["common-auth"]["deny"] == "0"
    assert measure.faillock_problems(values["sshd"], measure.Settings()) == ["deny=0, the profile wants 1..5"]
    assert any("deny=0" in p for p in measure.common_drift(v, measure.Settings()))


@pytest.mark.parametrize(("conf", "arguments", "exempt"), [
    ("admin_group = sudo\n", {}, True),
    ("", {"admin_group": "sudo"}, True),
    ("admin_group = sudo\neven_deny_root\n", {}, False),    # members locked like root, then
    ("# admin_group = sudo\n", {}, False),
])
def test_faillock_admin_group_exempts_its_members(conf, arguments, exempt):
    values = measure.effective_faillock("deny = 3\nunlock_time = 900\n" + conf, arguments)
    found = measure.faillock_problems(values, measure.Settings())
    assert found == (["admin_group=sudo: its members are never locked (like root)"] if exempt else [])


# -- pwquality and nullok ------------------------------------------------------------------------------

@pytest.mark.parametrize("password", [
    PASSWORD.replace("requisite\t\t\tpam_pwquality.so", "optional pam_pwquality.so"),
    PASSWORD.replace("requisite\t\t\tpam_pwquality.so", "[success=ok default=ignore] pam_pwquality.so"),
    "password sufficient pam_permit.so\n" + PASSWORD,
    PASSWORD.split("\n", 1)[1],
])
def test_pwquality_that_does_not_gate_fails(password):
    v = view(common_password=password)
    assert set(measure.pwquality_stacks(v)) == {"common-password (password)", "passwd (password)"}
    assert measure.common_drift(v, measure.Settings())


def test_pwquality_argument_switching_it_off_is_drift():
    v = view(common_password=PASSWORD.replace("retry=3", "retry=3 enforcing=0"))
    assert measure.pwquality_args(v)["passwd"] == {"retry": "3", "enforcing": "0"}
    assert any("enforcing=0" in p for p in measure.common_drift(v, measure.Settings()))
    weak = view(common_password=PASSWORD.replace("yescrypt", "md5"))
    assert any("hashes with md5" in p for p in measure.common_drift(weak, measure.Settings()))


def test_nullok_found_through_includes():
    v = view(common_auth=AUTH.replace("try_first_pass", "nullok try_first_pass"))
    found = measure.nullok_stacks(v)
    assert set(found) == {"common-auth", "sshd", "login", "sudo", "su"}
    assert found["sshd"] == ["/etc/pam.d/common-auth:4: [success=2 default=ignore] pam_unix.so nullok try_first_pass"]
    assert measure.nullok_lines(measure.pam_stack(tree(), "sshd", "auth")) == []


DEBIAN_UNIX = """\
Name: Unix authentication
Default: yes
Priority: 256
Auth-Type: Primary
Auth:
\t[success=end default=ignore]\tpam_unix.so nullok try_first_pass
Auth-Initial:
\t[success=end default=ignore]\tpam_unix.so nullok
Account-Type: Primary
Account:
\t[success=end new_authtok_reqd=done default=ignore]\tpam_unix.so
Account-Initial:
\t[success=end new_authtok_reqd=done default=ignore]\tpam_unix.so
Session-Type: Additional
Session:
\trequired\tpam_unix.so
Session-Initial:
\trequired\tpam_unix.so
Password-Type: Primary
Password:
\t[success=end default=ignore]\tpam_unix.so obscure use_authtok try_first_pass yescrypt
Password-Initial:
\t[success=end default=ignore]\tpam_unix.so obscure yescrypt
"""


def test_unix_profile_without_nullok():
    own = measure.unix_without_nullok(DEBIAN_UNIX)
    assert own is not None and "nullok" not in own
    assert "\tpam_unix.so try_first_pass\n" in own and "\tpam_unix.so\nAccount-Type" in own
    assert measure.unix_without_nullok(own) is None
    assert own.count("\n") == DEBIAN_UNIX.count("\n") and own.startswith("Name: Unix authentication without")


def test_observe_declares_the_pam_tree():
    commands = measure.observe(SimpleNamespace(measure=lambda name: measure.Settings()))
    assert {measure.PAM_TREE, measure.PAM_MODULES, measure.UNIX_PROFILE} <= set(commands)


@pytest.mark.skipif(not shutil.which("pam-auth-update") or not Path("/usr/share/pam/common-auth").exists()
                    or not Path("/usr/share/pam-configs/unix").exists(),
                    reason="needs Debian's pam-auth-update (libpam-runtime)")
def test_real_pam_auth_update_with_hardening_unix_drops_nullok_and_force_repairs(tmp_path: Path):
    """pam-auth-update --root in a scratch tree with its own debconf database (nothing of the
    machine's PAM state is read or written): the deploy's profiles, unix replaced by hardening-unix,
    then a hand edit (preauth optional), then --force as the deploy runs it on drift."""
    root = tmp_path / "root"
    (root / "etc/pam.d").mkdir(parents=True)
    (root / "var/lib/pam").mkdir(parents=True)
    configs = root / "usr/share/pam-configs"
    configs.mkdir(parents=True)
    for name in ("common-auth", "common-account", "common-password", "common-session",
                 "common-session-noninteractive"):
        shutil.copy(f"/usr/share/pam/{name}", root / "etc/pam.d" / name)
    unix = Path("/usr/share/pam-configs/unix").read_text()
    shutil.copy("/usr/share/pam-configs/unix", configs / "unix")
    own = measure.unix_without_nullok(unix)
    assert own is not None
    (configs / measure.UNIX_OWN).write_text(own)
    for name, text in measure.pam_profiles().items():
        (configs / name).write_text(text)
    rc = tmp_path / "debconf.conf"
    rc.write_text(f"Config: c\nTemplates: t\n\nName: c\nDriver: File\nFilename: {tmp_path}/c.dat\n\n"
                  f"Name: t\nDriver: File\nMode: 644\nFilename: {tmp_path}/t.dat\n")
    env = {**os.environ, "DEBCONF_SYSTEMRC": str(rc), "DEBIAN_FRONTEND": "noninteractive"}

    def update(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["pam-auth-update", "--root", str(root), "--package", *extra], env=env,
                              capture_output=True, text=True, timeout=60)

    assert update("--force", "--enable", *measure.pam_profiles(), measure.UNIX_OWN, "--disable", "unix").returncode == 0
    pam = root / "etc/pam.d"

    def judged() -> measure.PamView:
        files = {f"/etc/pam.d/{p.name}": p.read_text() for p in pam.iterdir()}
        return measure.PamView({**files, "/etc/pam.d/sshd": SERVICES["sshd"]}, None)
    assert measure.common_drift(judged(), measure.Settings()) == [] or all(
        "pwquality" in p for p in measure.common_drift(judged(), measure.Settings()))  # no pwquality profile here
    assert measure.nullok_stacks(judged()) == {}
    assert measure.faillock_stacks(judged()) == {}
    auth = (pam / "common-auth").read_text()
    (pam / "common-auth").write_text(auth.replace("requisite\t\t\tpam_faillock.so preauth",
                                                  "optional\t\t\tpam_faillock.so preauth"))
    assert measure.faillock_stacks(judged())
    kept = update("--enable", *measure.pam_profiles())
    assert "Local modifications" in kept.stdout + kept.stderr                  # without --force: kept
    assert update("--force", "--enable", *measure.pam_profiles()).returncode == 0
    assert (pam / "common-auth").read_text() == auth                          # --force: rewritten
    assert update().returncode == 0 and (pam / "common-auth").read_text() == auth   # an upgrade keeps it
    # an option added by hand is merged back even with --force, unless the saved state is gone
    # (what the enable script does on drift)
    (pam / "common-auth").write_text(auth.replace("authfail", "authfail deny=0"))
    assert update("--force", "--enable", *measure.pam_profiles()).returncode == 0
    assert "authfail deny=0" in (pam / "common-auth").read_text()
    for kind in ("auth", "account", "password", "session", "session-noninteractive"):
        (root / "var/lib/pam" / kind).unlink()
    assert update("--force", "--enable", *measure.pam_profiles()).returncode == 0
    assert (pam / "common-auth").read_text() == auth
    assert "(cd /var/lib/pam && rm -f auth account password session session-noninteractive)" in measure.enable_script()
