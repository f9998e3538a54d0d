"""terminal (6-12, 6-13, 6-14): desired state, lockout refusal and the readings, without a host."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import ValidationError

from hardening.inventory import Asset
from hardening.measures import _sshd
from hardening.measures import terminal as measure

IP_ADDR = [
    {"ifname": "lo", "addr_info": [{"local": "127.0.0.1", "scope": "host"}]},
    {"ifname": "eth0", "addr_info": [{"local": "10.1.2.3", "scope": "global"},
                                     {"local": "fe80::1", "scope": "link"},
                                     {"local": "2001:db8::5", "scope": "global"}]},
]


def test_sshd_dropin_allow_groups() -> None:
    text = measure.sshd_dropin(measure.Settings(ssh_allow_groups=["sudo", "staff"]))
    assert text.endswith("AllowGroups sudo staff\n")
    assert text.startswith("# Managed by hardening (terminal")


@pytest.mark.parametrize("groups", [[], ["sudo\nPermitRootLogin yes"], ["sudo staff"], ["a#b"]])
def test_invalid_groups_refused(groups: list[str]) -> None:
    with pytest.raises(ValidationError):
        measure.Settings(ssh_allow_groups=groups)


def test_render_refuses_injection_even_without_the_model() -> None:
    with pytest.raises(ValueError):
        _sshd.render("terminal", "6-12", {"AllowGroups": ["sudo\nPermitRootLogin yes"]})
    with pytest.raises(ValueError):
        _sshd.render("terminal", "6-12", {"Allow Groups": "sudo"})


def test_lockout_refused() -> None:
    settings = measure.Settings(ssh_allow_groups=["admins"])
    reason = measure.lockout_reason(settings, "hardening", ["hardening", "sudo"])
    assert reason and "hardening" in reason
    assert measure.lockout_reason(settings, "hardening", ["admins"]) is None
    assert measure.lockout_reason(settings, "", []) is not None


def test_default_is_a_dedicated_group_not_the_admin_group() -> None:
    settings = measure.Settings()
    assert settings.ssh_allow_groups == [measure.SSH_GROUP] == ["ssh-users"]
    assert "sudo" not in settings.ssh_allow_groups and settings.ssh_allow_groups_confirmed is False
    assert measure.sshd_dropin(settings).endswith("AllowGroups ssh-users\n")


def test_the_deploy_adds_only_its_own_account_to_the_dedicated_group() -> None:
    """A fresh host: the deploy account is in sudo only; the membership the deploy adds counts for
    the lockout guard (else it would refuse every fresh host)."""
    default = measure.Settings()
    assert measure.membership_to_add(default, ["hardening", "sudo"]) == "ssh-users"
    assert measure.lockout_reason(default, "hardening", ["hardening", "sudo"]) is None
    assert measure.membership_to_add(default, ["hardening", "ssh-users"]) is None
    # a profile naming its own groups keeps them: nothing is added, the guard judges as it is
    explicit = measure.Settings(ssh_allow_groups=["sshlogin", "sudo"])
    assert measure.membership_to_add(explicit, ["hardening", "sudo"]) is None
    assert measure.lockout_reason(explicit, "hardening", ["hardening", "sudo"]) is None
    assert measure.lockout_reason(measure.Settings(ssh_allow_groups=["sshlogin"]), "hardening",
                                  ["hardening", "sudo"]) is not None
    assert measure.membership_to_add(measure.Settings(ssh_allow_groups=["sudo", "ssh-users"]),
                                     ["sudo"]) == "ssh-users"
    assert measure.group_exists("sudo:x:27:hardening\nssh-users:x:998:\n", "ssh-users")
    assert not measure.group_exists("ssh-users-old:x:997:\n", "ssh-users")


# -- who logs in over SSH today ------------------------------------------------------------------

PASSWD = """\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
hardening:x:1000:1000::/home/hardening:/bin/bash
alice:x:1001:1001::/home/alice:/bin/bash
bob:x:1002:1002::/home/bob:/bin/sh
carol:x:1003:1003::/home/carol:/bin/bash
svc:x:999:999::/srv/svc:/bin/false
"""
GROUP = """\
root:x:0:
sudo:x:27:hardening,carol
hardening:x:1000:
alice:x:1001:
bob:x:1002:
carol:x:1003:
svc:x:999:
staff:x:50:bob
"""
STATUS = """\
root L 2026-12-01 0 99999 7 -1
daemon L 2026-12-01 0 99999 7 -1
hardening L 2026-12-01 0 99999 7 -1
alice L 2026-12-01 0 99999 7 -1
bob P 2026-12-01 0 99999 7 -1
carol L 2026-12-01 0 99999 7 -1
svc P 2026-12-01 0 99999 7 -1
"""
KEYS = """\
KEYS hardening /home/hardening/.ssh/authorized_keys
KEYS alice /home/alice/.ssh/authorized_keys
KEYS svc /srv/svc/.ssh/authorized_keys
DONE
"""
LASTLOG = "Username\ncarol\n"
LAST = "reboot\nwtmp\n"
SSHD_T = "permitrootlogin without-password\npubkeyauthentication yes\n"


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str = ""


def readings(**changes: Result) -> dict[str, Result]:
    out = {_sshd.SSHD_T: Result(0, SSHD_T), measure.GETENT_PASSWD: Result(0, PASSWD),
           measure.GETENT_GROUP: Result(0, GROUP), measure.PASSWORD_STATUS: Result(0, STATUS),
           measure.AUTHORIZED_KEYS: Result(0, KEYS), measure.LASTLOG: Result(0, LASTLOG),
           measure.LAST: Result(0, LAST)}
    names = {"sshd": _sshd.SSHD_T, "passwd": measure.GETENT_PASSWD, "group": measure.GETENT_GROUP,
             "status": measure.PASSWORD_STATUS, "keys": measure.AUTHORIZED_KEYS,
             "lastlog": measure.LASTLOG, "last": measure.LAST}
    out.update({names[k]: v for k, v in changes.items()})
    return out


def logins(**changes: Result) -> list[measure.Login]:
    return measure.logins_today(readings(**changes).__getitem__)


def test_logins_today_need_a_login_shell_and_a_way_in() -> None:
    found = {login.name: login for login in logins()}
    # svc has keys and a password but /bin/false; daemon nologin; root neither key nor password
    assert sorted(found) == ["alice", "bob", "carol", "hardening"]
    assert found["alice"].why == ("authorized keys /home/alice/.ssh/authorized_keys",)
    assert found["bob"].why == ("a usable password",) and found["bob"].groups == ("bob", "staff")
    assert found["carol"].why == ("a login in lastlog",) and "sudo" in found["carol"].groups
    wtmp = {login.name: login for login in logins(last=Result(0, "daemon\nreboot\nroot\nwtmp\n"))}
    assert wtmp["root"].why == ("a session in wtmp",) and "daemon" not in wtmp


def test_logins_today_are_those_the_running_sshd_admits() -> None:
    def names(sshd_t: str) -> list[str]:
        return sorted(login.name for login in logins(sshd=Result(0, SSHD_T + sshd_t),
                                                      last=Result(0, "root\nwtmp\n")))
    assert names("") == ["alice", "bob", "carol", "hardening", "root"]
    assert names("allowgroups sudo\n") == ["carol", "hardening"]
    assert names("allowgroups st*\n") == ["bob"]
    assert names("allowusers alice\nallowusers bob@10.0.0.0/8\n") == ["alice", "bob"]
    assert names("denyusers alice\ndenyusers bob@192.0.2.1\n") == ["bob", "carol", "hardening", "root"]
    assert names("denygroups staff\nallowgroups sudo\nallowgroups alice\n") == ["alice", "carol", "hardening"]
    no_root = sorted(login.name for login in logins(sshd=Result(0, "permitrootlogin no\n"),
                                                    last=Result(0, "root\nwtmp\n")))
    assert "root" not in no_root


def test_refused_when_the_groups_hold_none_of_those_who_log_in() -> None:
    default = measure.Settings()
    found = logins()
    reason = measure.access_refusal(default, "srv1", "hardening", found)
    assert reason is not None
    for word in ("srv1", "AllowGroups ssh-users", "alice", "bob", "carol", "gpasswd -a ACCOUNT ssh-users",
                 "ssh_allow_groups_confirmed: true"):
        assert word in reason, word
    assert "hardening (groups" not in reason                       # the deploy account is not counted
    # one of them in the group: applied (the others are named by shut_out, for a warning)
    alice_in = [measure.Login(x.name, (*x.groups, "ssh-users") if x.name == "alice" else x.groups, x.why)
                for x in found]
    assert measure.access_refusal(default, "srv1", "hardening", alice_in) is None
    assert [x.name for x in measure.shut_out(default, alice_in, "hardening")] == ["bob", "carol"]
    # the profile says so explicitly
    confirmed = measure.Settings(ssh_allow_groups_confirmed=True)
    assert measure.access_refusal(confirmed, "srv1", "hardening", found) is None
    # the admin group is allowed as a profile's choice: carol (a sudoer) logs in today
    assert measure.access_refusal(measure.Settings(ssh_allow_groups=["sudo"]), "srv1", "hardening", found) is None
    # patterns, as sshd reads them
    assert measure.access_refusal(measure.Settings(ssh_allow_groups=["st?ff"]), "srv1", "hardening", found) is None
    # nobody but the deploy account logs in: nothing to shut out
    only_deploy = [x for x in found if x.name == "hardening"]
    assert measure.access_refusal(default, "srv1", "hardening", only_deploy) is None
    assert measure.access_refusal(default, "srv1", "hardening", []) is None


@pytest.mark.parametrize("change", [
    {"sshd": Result(255, "", "/etc/ssh/sshd_config: line 3: Bad configuration option: Nonsense")},
    {"sshd": Result(127, "", "sshd: command not found")},
    {"passwd": Result(2, "", "")},
    {"passwd": Result(0, "")},
    {"passwd": Result(0, "alice:x:1001\n")},
    {"passwd": Result(0, PASSWD.replace("root:", "toor:"))},
    {"group": Result(0, "")},
    {"group": Result(0, "sudo:x:twenty-seven:\n")},
    {"status": Result(1, "", "passwd: Permission denied.")},
    {"status": Result(0, "root L\nalice ??\n")},
    {"status": Result(0, "alice P\n")},
    {"keys": Result(1, "", "sshd -T printed no authorizedkeysfile")},
    {"keys": Result(0, "KEYS alice /home/alice/.ssh/authorized_keys\n")},   # cut before DONE
    {"keys": Result(0, "KEYS alice\nDONE\n")},
    {"keys": Result(2, "", "bash: ${p//%h/$home}: bad substitution")},
    {"lastlog": Result(127, "", "lastlog: not found")},
    {"lastlog": Result(0, "")},
    {"lastlog": Result(0, "Benutzername Port Von Letzter\n")},
    {"last": Result(1, "", "last: cannot open /var/log/wtmp: No such file or directory")},
    {"last": Result(0, "")},
])
def test_unreadable_is_a_refusal_never_a_pass(change: dict[str, Result]) -> None:
    with pytest.raises(measure.ReadingError):
        logins(**change)
    text = measure.unreadable_refusal("srv1", measure.ReadingError("lastlog failed"))
    assert "srv1" in text and "lastlog failed" in text and "ssh_allow_groups_confirmed" in text


def test_login_shells() -> None:
    assert measure.login_shell("/bin/bash") and measure.login_shell("") and measure.login_shell("/usr/bin/zsh")
    assert not measure.login_shell("/usr/sbin/nologin") and not measure.login_shell("/bin/false")
    assert not measure.login_shell("/sbin/nologin")


def test_reading_commands_of_this_machine() -> None:
    """lastlog, last and passwd -S as this machine prints them (Debian: login, util-linux, passwd)."""
    import os
    import shutil
    import subprocess
    for tool, command, parse in (("lastlog", measure.LASTLOG, measure.parse_lastlog),
                                 ("last", measure.LAST, measure.parse_last),
                                 ("passwd", measure.PASSWORD_STATUS, measure.parse_password_status)):
        if shutil.which(tool) is None or (tool == "passwd" and os.geteuid() != 0):
            continue
        out = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
        if out.returncode == 0:
            assert parse(out.stdout) is not None
    assert measure.parse_lastlog("Username\n") == set()


def test_logins_are_observed_with_the_sshd_readings() -> None:
    from hardening.profiles import Profiles
    commands = measure.observe(Profiles().resolve("server"))
    assert set(measure.LOGINS) <= set(commands) and _sshd.SSHD_T in commands


def test_parse_effective_accumulates_allowgroups() -> None:
    parsed = _sshd.parse_effective("port 22\nallowgroups sudo\nallowgroups staff\nciphers a,b\n")
    assert parsed["allowgroups"] == ["sudo", "staff"]
    assert parsed["ciphers"] == ["a,b"]


def test_asset_fields_only_those_in_the_register() -> None:
    asset = Asset(machine_id="0" * 32, mac="52:54:00:12:34:56")
    assert measure.asset_fields(asset, measure.Settings()) == {
        "machine_id": "0" * 32, "mac": "52:54:00:12:34:56"}
    assert measure.asset_fields(asset, measure.Settings(match_asset_register=False)) == {}
    assert measure.asset_fields(None, measure.Settings()) == {}


def test_network_readings() -> None:
    assert measure.parse_addresses(IP_ADDR) == ["10.1.2.3", "2001:db8::5"]
    links = [{"ifname": "lo", "link_type": "loopback", "address": "00:00:00:00:00:00"},
             {"ifname": "eth0", "link_type": "ether", "address": "52:54:00:AA:BB:CC"}]
    assert measure.parse_macs(links) == ["52:54:00:aa:bb:cc"]
    assert measure.parse_gateways([{"dst": "default", "gateway": "10.1.2.1"}, {"dst": "default"}]) == ["10.1.2.1"]
    assert measure.outside(["10.1.2.3", "2001:db8::5", "192.0.2.9"], ["10.0.0.0/8", "2001:db8::/32"]) == [
        "192.0.2.9"]


def test_link_local_gateways_name_no_network() -> None:
    """QEMU's user network (like most IPv6 networks) advertises its router as fe80::2: valid on
    any link, so it is not judged against the expected networks; a global address is."""
    assert measure.link_local("fe80::2") and measure.link_local("169.254.1.1")
    assert not measure.link_local("10.0.2.2") and not measure.link_local("2001:db8::1")


def test_expected_networks_validated() -> None:
    with pytest.raises(ValidationError):
        measure.Settings(expected_networks=["10.0.0.0/33"])


def test_ip_json_unreadable_is_an_error() -> None:
    """ip -j output that is not a JSON list is an error, never an empty network (it was [])."""
    assert measure.parse_ip_json(0, '[{"ifname": "lo"}]', "ip -j link") == [{"ifname": "lo"}]
    assert measure.parse_ip_json(0, "[]", "ip -j route show default") == []
    for rc, out in ((0, ""), (0, "Object \"link\" is unknown"), (0, '{"ifname": "lo"}'), (0, "[1, 2]"),
                    (255, "[]")):
        with pytest.raises(ValueError):
            measure.parse_ip_json(rc, out, "ip -j link")


def test_ip_json_of_this_machine() -> None:
    import shutil
    import subprocess
    if shutil.which("ip") is None:
        pytest.skip("no iproute2 here")
    for command in (measure.IP_LINK, measure.IP_ADDR, *measure.IP_ROUTES):
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
        assert isinstance(measure.parse_ip_json(out.returncode, out.stdout, command), list)


def test_observe_follows_the_profile() -> None:
    from hardening.profiles import Profiles
    profile = Profiles().resolve("terminal")
    commands = measure.observe(profile)
    assert commands[:len(_sshd.OBSERVE)] == _sshd.OBSERVE
    assert measure.MACHINE_ID in commands and measure.IP_LINK in commands
    assert measure.IP_ADDR not in commands                       # no expected networks in the profile
    settings = measure.Settings(expected_networks=["10.0.0.0/8"], match_asset_register=False)

    class Narrowed:
        def measure(self, name: str) -> measure.Settings:
            return settings

    commands = measure.observe(Narrowed())
    assert measure.IP_LINK not in commands and [measure.IP_ADDR, *measure.IP_ROUTES] == commands[-3:]


def test_defaults_are_the_base_profile() -> None:
    from hardening.profiles import Profiles
    assert Profiles().resolve("terminal").measure("terminal") == measure.Settings()
