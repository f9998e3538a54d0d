"""sshd Match blocks: where they are, which connection each applies to, what sshd applies.

The fixtures are real outputs of OpenSSH 9.2 on a Debian 12 lab container
(hardening.measures._sshd.SSHD_MATCHES and class_command), shortened to the lines that matter.
The configuration had, after Debian's sshd_config (Include at line 12):

    123 Match Address 10.9.0.0/16,!10.9.1.0/24      PermitRootLogin yes / ClientAliveInterval 0
    126 Match User ad*,!admin Group staff           PasswordAuthentication yes
    128 Match User !nobody-x                        PermitRootLogin yes (never applies)
    130 Match all                                   X11Forwarding no
    sshd_config.d/05-x.conf:2 Match User bob        ClientAliveCountMax 9
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hardening.measures import _sshd, timeouts
from hardening.observe import Observation, Observations

MATCHES = (
    'debug2: /etc/ssh/sshd_config line 12: including /etc/ssh/sshd_config.d/05-x.conf\n'
    "debug3: checking syntax for 'Match User bob'\n"
    'debug2: /etc/ssh/sshd_config line 12: including /etc/ssh/sshd_config.d/10-hardening-admin.conf\n'
    'debug2: /etc/ssh/sshd_config line 12: including /etc/ssh/sshd_config.d/10-hardening-encryption.conf\n'
    'debug2: /etc/ssh/sshd_config line 12: including /etc/ssh/sshd_config.d/10-hardening-terminal.conf\n'
    'debug2: /etc/ssh/sshd_config line 12: including /etc/ssh/sshd_config.d/10-hardening-timeouts.conf\n'
    'debug2: /etc/ssh/sshd_config line 12: including /etc/ssh/sshd_config.d/lab.conf\n'
    "debug3: checking syntax for 'Match Address 10.9.0.0/16,!10.9.1.0/24'\n"
    "debug3: checking syntax for 'Match User ad*,!admin Group staff'\n"
    "debug3: checking syntax for 'Match User !nobody-x'\n"
    "debug3: checking syntax for 'Match all'\n"
    'MATCHLINE /etc/ssh/sshd_config:123:Match Address 10.9.0.0/16,!10.9.1.0/24\n'
    'MATCHLINE /etc/ssh/sshd_config:126:Match User ad*,!admin Group staff\n'
    'MATCHLINE /etc/ssh/sshd_config:128:Match User !nobody-x\n'
    'MATCHLINE /etc/ssh/sshd_config:130:Match all\n'
    'MATCHLINE /etc/ssh/sshd_config.d/05-x.conf:2:Match User bob\n'
    'PASSWD root:x:0:0:root:/root:/bin/bash\n'
    'PASSWD adm1:x:1001:1001::/home/adm1:/bin/sh\n'
    'GROUP root:x:0:\n'
    'GROUP staff:x:50:adm1\n'
    'GROUP adm1:x:1001:\n'
)
ADDR_CLASS = (
    'clientaliveinterval 0\n'
    'clientalivecountmax 1\n'
    'permitrootlogin yes\n'
    'passwordauthentication yes\n'
    'ciphers'
    ' chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,a'
    'es128-ctr\n'
    'allowgroups sudo\n'
    'HARDENING-SSHD-STDERR\n'
    "debug3: checking match for 'User bob' user hardening-probe host hardening-probe.invalid addr"
    " 10.9.0.1 laddr 192.0.2.2 lport 22\n"
    'debug3: match not found\n'
    "debug3: checking match for 'Address 10.9.0.0/16,!10.9.1.0/24' user hardening-probe host"
    " hardening-probe.invalid addr 10.9.0.1 laddr 192.0.2.2 lport 22\n"
    "debug1: connection from 10.9.0.1 matched 'Address 10.9.0.0/16,!10.9.1.0/24' at line 123\n"
    'debug3: match found\n'
    'debug3: reprocess config:124 setting PermitRootLogin yes\n'
    'debug3: reprocess config:125 setting ClientAliveInterval 0\n'
    "debug3: checking match for 'User ad*,!admin Group staff' user hardening-probe host"
    " hardening-probe.invalid addr 10.9.0.1 laddr 192.0.2.2 lport 22\n"
    "debug1: Can't match group at line 126 because user hardening-probe does not exist\n"
    'debug3: match not found\n'
    "debug3: checking match for 'User !nobody-x' user hardening-probe host hardening-probe.invalid addr"
    " 10.9.0.1 laddr 192.0.2.2 lport 22\n"
    'debug3: match not found\n'
    "debug3: checking match for 'all' user hardening-probe host hardening-probe.invalid addr 10.9.0.1"
    " laddr 192.0.2.2 lport 22\n"
    'debug3: reprocess config:131 setting X11Forwarding no\n'
    'RC=0\n'
)
BOB_CLASS = (
    'clientaliveinterval 120\n'
    'clientalivecountmax 9\n'
    'permitrootlogin no\n'
    'passwordauthentication yes\n'
    'ciphers'
    ' chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,a'
    'es128-ctr\n'
    'allowgroups sudo\n'
    'HARDENING-SSHD-STDERR\n'
    "debug3: checking match for 'User bob' user bob host hardening-probe.invalid addr 192.0.2.1 laddr"
    " 192.0.2.2 lport 22\n"
    "debug1: user bob matched 'User bob' at line 2\n"
    'debug3: match found\n'
    'debug3: /etc/ssh/sshd_config.d/05-x.conf:3 setting ClientAliveCountMax 9\n'
    "debug3: checking match for 'Address 10.9.0.0/16,!10.9.1.0/24' user bob host hardening-probe.invalid"
    " addr 192.0.2.1 laddr 192.0.2.2 lport 22\n"
    'debug3: match not found\n'
    "debug3: checking match for 'User ad*,!admin Group staff' user bob host hardening-probe.invalid addr"
    " 192.0.2.1 laddr 192.0.2.2 lport 22\n"
    "debug1: Can't match group at line 126 because user bob does not exist\n"
    'debug3: match not found\n'
    "debug3: checking match for 'User !nobody-x' user bob host hardening-probe.invalid addr 192.0.2.1"
    " laddr 192.0.2.2 lport 22\n"
    'debug3: match not found\n'
    "debug3: checking match for 'all' user bob host hardening-probe.invalid addr 192.0.2.1 laddr 192.0.2.2 lport 22\n"
    'debug3: reprocess config:131 setting X11Forwarding no\n'
    'RC=0\n'
)
ALL_CLASS = (
    'clientaliveinterval 120\n'
    'clientalivecountmax 1\n'
    'permitrootlogin no\n'
    'passwordauthentication yes\n'
    'ciphers'
    ' chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,a'
    'es128-ctr\n'
    'allowgroups sudo\n'
    'HARDENING-SSHD-STDERR\n'
    "debug3: checking match for 'User bob' user hardening-probe host hardening-probe.invalid addr"
    " 192.0.2.1 laddr 192.0.2.2 lport 22\n"
    'debug3: match not found\n'
    "debug3: checking match for 'Address 10.9.0.0/16,!10.9.1.0/24' user hardening-probe host"
    " hardening-probe.invalid addr 192.0.2.1 laddr 192.0.2.2 lport 22\n"
    'debug3: match not found\n'
    "debug3: checking match for 'User ad*,!admin Group staff' user hardening-probe host"
    " hardening-probe.invalid addr 192.0.2.1 laddr 192.0.2.2 lport 22\n"
    "debug1: Can't match group at line 126 because user hardening-probe does not exist\n"
    'debug3: match not found\n'
    "debug3: checking match for 'User !nobody-x' user hardening-probe host hardening-probe.invalid addr"
    " 192.0.2.1 laddr 192.0.2.2 lport 22\n"
    'debug3: match not found\n'
    "debug3: checking match for 'all' user hardening-probe host hardening-probe.invalid addr 192.0.2.1"
    " laddr 192.0.2.2 lport 22\n"
    'debug3: reprocess config:131 setting X11Forwarding no\n'
    'RC=0\n'
)


def _line(criteria: str, file: str = "/etc/ssh/sshd_config", line: int = 1) -> _sshd.MatchLine:
    return _sshd.MatchLine(file, line, criteria)


NOBODY = _sshd.Accounts({}, {})


def test_match_lines_in_sshd_order_with_file_and_line() -> None:
    matches = _sshd.parse_matches(MATCHES)
    assert [str(m) for m in matches.lines] == [
        "Match User bob (line 2 of /etc/ssh/sshd_config.d/05-x.conf)",
        "Match Address 10.9.0.0/16,!10.9.1.0/24 (line 123 of /etc/ssh/sshd_config)",
        "Match User ad*,!admin Group staff (line 126 of /etc/ssh/sshd_config)",
        "Match User !nobody-x (line 128 of /etc/ssh/sshd_config)",
        "Match all (line 130 of /etc/ssh/sshd_config)",
    ]
    assert matches.accounts.groups_of("adm1") == {"staff", "adm1"}
    assert _sshd.parse_matches("").lines == ()


def test_nested_include_order() -> None:
    text = ("debug2: /etc/ssh/sshd_config line 12: including /etc/ssh/a.conf\n"
            "debug2: /etc/ssh/a.conf line 3: including /etc/ssh/b.conf\n"
            "debug3: checking syntax for 'Match User b'\n"
            "debug3: checking syntax for 'Match User a'\n"
            "debug3: checking syntax for 'Match User main'\n"
            "MATCHLINE /etc/ssh/sshd_config:40:Match User main\n"
            "MATCHLINE /etc/ssh/a.conf:9:match=User a\n"
            "MATCHLINE /etc/ssh/b.conf:1:Match User b\n")
    assert [(m.file, m.line) for m in _sshd.parse_matches(text).lines] == [
        ("/etc/ssh/b.conf", 1), ("/etc/ssh/a.conf", 9), ("/etc/ssh/sshd_config", 40)]


def test_files_and_sshd_disagree_is_an_error() -> None:
    with pytest.raises(_sshd.MatchError, match="do not agree"):
        _sshd.parse_matches("debug3: checking syntax for 'Match User a'\n")


def test_connection_specs() -> None:
    matches = _sshd.parse_matches(MATCHES)
    bob, addr, group, negated, every = (_sshd.connection_spec(m, matches.accounts) for m in matches.lines)
    assert bob and bob["user"] == "bob"
    assert addr and addr["addr"] == "10.9.0.1"
    assert group and group["user"] == "adm1"          # a real account in staff matching ad*, not admin
    assert negated is None                            # negations alone never match (ssh_config(5))
    assert every == _sshd.DEFAULT_SPEC


@pytest.mark.parametrize(("criteria", "field", "value"), [
    ("Address 10.9.0.0/16,!10.9.0.0/24", "addr", "10.9.255.254"),  # outside the hole
    ("Address 10.0.0.*", "addr", "10.0.0.1"),
    ("Address 2001:db8::/64", "addr", "2001:db8::1"),
    ("LocalAddress 127.0.0.2", "laddr", "127.0.0.2"),
    ("LocalPort 2222", "lport", "2222"),
    ("User *", "user", "x"),
    ("User ad?in,!admin", "user", "adxin"),
    ("Host *.example.org", "host", ".example.org"),
    ("user=bob", "user", "bob"),
])
def test_spec_satisfies_the_criteria(criteria: str, field: str, value: str) -> None:
    spec = _sshd.connection_spec(_line(criteria), NOBODY)
    assert spec is not None and spec[field] == value


@pytest.mark.parametrize("criteria", [
    "Address 10.9.0.0/16,!10.9.0.0/16",     # the hole is the whole network
    "Group staff",                          # no account in staff
    "Version 9",                            # not a criterion sshd 9.2 knows
    "User",                                 # no value
    "LocalPort ssh",
    "Address 10.999.0.0/16",
])
def test_unsatisfiable_is_an_error(criteria: str) -> None:
    with pytest.raises(_sshd.MatchError):
        _sshd.connection_spec(_line(criteria), NOBODY)


def test_class_output_and_applied_directives() -> None:
    out = _sshd.parse_class_output(ADDR_CLASS)
    assert out.rc == 0 and "permitrootlogin yes" in out.stdout
    blocks = _sshd.matched_blocks(out.stderr)
    assert [(c, hit) for c, hit, _ in blocks] == [
        ("User bob", False), ("Address 10.9.0.0/16,!10.9.1.0/24", True),
        ("User ad*,!admin Group staff", False), ("User !nobody-x", False), ("all", True)]
    assert [str(s) for s in blocks[1][2]] == ["/etc/ssh/sshd_config:124 sets PermitRootLogin yes",
                                              "/etc/ssh/sshd_config:125 sets ClientAliveInterval 0"]
    assert [str(s) for s in blocks[4][2]] == ["/etc/ssh/sshd_config:131 sets X11Forwarding no"]
    bob = _sshd.matched_blocks(_sshd.parse_class_output(BOB_CLASS).stderr)
    assert [str(s) for s in bob[0][2]] == ["/etc/ssh/sshd_config.d/05-x.conf:3 sets ClientAliveCountMax 9"]
    with pytest.raises(_sshd.MatchError):
        _sshd.parse_class_output("ciphers aes128-ctr\n")


DEFAULT_T = "clientaliveinterval 120\nclientalivecountmax 1\npermitrootlogin no\nallowgroups sudo\n"


def _obs(matches: str, default: str = DEFAULT_T, rc: int = 0, stderr: str = "") -> Observations:
    return Observations({_sshd.SSHD_T: Observation("o0", _sshd.SSHD_T, rc, default, stderr, 0),
                         _sshd.SSHD_MATCHES: Observation("o1", _sshd.SSHD_MATCHES, 0, matches, "", 0)})


def _runner(calls: list[str]) -> _sshd.Runner:
    by_user = {"user=bob,": BOB_CLASS, "addr=10.9.0.1,": ADDR_CLASS}

    def run(command: str) -> str:
        calls.append(command)
        return next((out for key, out in by_user.items() if key in command), ALL_CLASS)
    return run


def test_no_match_lines_cost_nothing() -> None:
    calls: list[str] = []
    trace = "debug2: /etc/ssh/sshd_config line 12: including /etc/ssh/sshd_config.d/a.conf\n"
    classes = _sshd.connection_classes(_obs(trace), _runner(calls))
    assert [c.name for c in classes] == ["default"] and calls == []


def test_every_class_is_judged() -> None:
    calls: list[str] = []
    classes = _sshd.connection_classes(_obs(MATCHES), _runner(calls))
    assert len(calls) == 4                    # bob, address, group, all; not the negated-only one
    settings = timeouts.Settings(ssh_client_alive_interval=120)
    observed, failing = _sshd.judge(classes, ["clientaliveinterval", "clientalivecountmax"],
                                    lambda c: timeouts.client_alive_problem(settings, c.config or {}))
    assert failing == [
        "Match User bob (line 2 of /etc/ssh/sshd_config.d/05-x.conf): clientalivecountmax 9 (wanted 1..1)",
        "Match Address 10.9.0.0/16,!10.9.1.0/24 (line 123 of /etc/ssh/sshd_config): "
        "clientaliveinterval 0 (wanted 1..120)"]
    assert observed["Match User bob (line 2 of /etc/ssh/sshd_config.d/05-x.conf)"]["set by"] == [
        "/etc/ssh/sshd_config.d/05-x.conf:3 sets ClientAliveCountMax 9"]
    # the group class was asked with adm1, but this runner answers ALL_CLASS where
    # 'User ad*,!admin Group staff' did not match: sshd's own answer makes it an error, not a pass
    assert "sshd does not apply Match User ad*" in _sshd.unreadable(classes)


def test_localport_default_asks_for_an_ordinary_connection() -> None:
    calls: list[str] = []
    why = "'Match LocalPort' in configuration but 'lport' not in connection test specification.\n"
    classes = _sshd.connection_classes(_obs("", default="", rc=255, stderr=why), _runner(calls))
    assert classes[0].config and classes[0].spec == _sshd.spec_text(_sshd.DEFAULT_SPEC)


def test_class_command_refuses_odd_values() -> None:
    assert "sshd -ddd -T -C user=bob,addr=10.0.0.1" in _sshd.class_command({"user": "bob", "addr": "10.0.0.1"})
    with pytest.raises(ValueError):
        _sshd.class_command({"user": "bob;reboot"})


def test_stricter_timeouts_pass() -> None:
    settings = timeouts.Settings(ssh_client_alive_interval=300, ssh_client_alive_count_max=2)
    problem = timeouts.client_alive_problem
    assert problem(settings, {"clientaliveinterval": ["60"], "clientalivecountmax": ["1"]}) is None
    assert problem(settings, {"clientaliveinterval": ["301"], "clientalivecountmax": ["1"]})
    assert problem(settings, {"clientaliveinterval": ["0"], "clientalivecountmax": ["1"]})
    assert problem(settings, {"clientaliveinterval": ["60"], "clientalivecountmax": ["0"]})
    with pytest.raises(ValueError):
        problem(settings, {"clientaliveinterval": ["5m"], "clientalivecountmax": ["1"]})


def _settings(path: str, *lines: tuple[int, str]) -> list[_sshd.Setting]:
    return [_sshd.Setting(path, number, keyword, "") for number, keyword in lines]


def test_disable_script_comments_out_in_place(tmp_path: Path) -> None:
    """The deploy's repair, run for real with sh and GNU sed on a copy (sshd -t replaced by
    ``true``/``false``: the validator's verdict is what matters here)."""
    from deploys import _sshd as deploy_sshd
    conf = tmp_path / "sshd_config"
    text = "Port 22\nMatch Address 10.9.0.0/16\n\tclientaliveinterval 0\n\tPermitRootLogin yes\n"
    conf.write_text(text)
    script = deploy_sshd.disable_script("timeouts", _settings(str(conf), (3, "ClientAliveInterval")), "true")
    assert subprocess.run(["sh", "-c", script], capture_output=True, text=True).returncode == 0
    assert conf.read_text().splitlines()[2] == "\t# disabled by hardening (timeouts): clientaliveinterval 0"
    assert len(list(tmp_path.glob("sshd_config.hardening-*.bak"))) == 1
    # a second deploy finds nothing to disable; a line that moved is refused and restored
    conf.write_text(text)
    moved = deploy_sshd.disable_script("timeouts", _settings(str(conf), (2, "ClientAliveInterval")), "true")
    out = subprocess.run(["sh", "-c", moved], capture_output=True, text=True)
    assert out.returncode == 1 and "no longer what sshd read" in out.stderr and conf.read_text() == text
    failing = deploy_sshd.disable_script("timeouts", _settings(str(conf), (3, "ClientAliveInterval")), "false")
    out = subprocess.run(["sh", "-c", failing], capture_output=True, text=True)
    assert out.returncode == 1 and "restored" in out.stderr and conf.read_text() == text


def test_overriding_directives() -> None:
    own = "/etc/ssh/sshd_config.d/10-hardening-timeouts.conf"
    trace = [_sshd.Setting("/etc/ssh/sshd_config.d/00-vendor.conf", 2, "ClientAliveInterval", "7200"),
             _sshd.Setting(own, 3, "ClientAliveInterval", "120"),
             _sshd.Setting("/etc/ssh/sshd_config", 130, "ClientAliveInterval", "0"),   # read after: loses
             _sshd.Setting("/etc/ssh/sshd_config.d/10-hardening-terminal.conf", 3, "AllowGroups", "sudo"),
             _sshd.Setting("/etc/ssh/sshd_config.d/50-users.conf", 1, "AllowGroups", "users")]
    found, unfixable = _sshd.overriding(trace, ["clientaliveinterval"], own)
    assert [str(s) for s in found] == ["/etc/ssh/sshd_config.d/00-vendor.conf:2 sets ClientAliveInterval 7200"]
    assert not unfixable
    found, _ = _sshd.overriding(trace, ["allowgroups"], "/etc/ssh/sshd_config.d/10-hardening-terminal.conf")
    assert [s.file for s in found] == ["/etc/ssh/sshd_config.d/50-users.conf"]    # accumulating: every other
    _, unfixable = _sshd.overriding(trace, ["clientalivecountmax"], own)
    assert unfixable and "does not read clientalivecountmax" in unfixable[0]


def test_class_repairs_keep_stricter_values() -> None:
    classes = _sshd.connection_classes(_obs(MATCHES), _runner([]))
    settings = timeouts.Settings(ssh_client_alive_interval=120)
    want = {"clientaliveinterval": ["120"], "clientalivecountmax": ["1"]}
    found, unfixable = _sshd.class_repairs(classes, want, timeouts.sshd_value_ok(settings))
    assert [str(s) for s in found] == ["/etc/ssh/sshd_config.d/05-x.conf:3 sets ClientAliveCountMax 9",
                                       "/etc/ssh/sshd_config:125 sets ClientAliveInterval 0"]
    assert len(unfixable) == 1 and "Match User ad*" in unfixable[0]   # the runner's wrong answer


def test_class_repairs_a_class_inheriting_a_bad_global_value_is_repaired_by_the_global() -> None:
    config = {"clientaliveinterval": ["7200"], "clientalivecountmax": ["1"]}
    inheriting = _sshd.ConnectionClass("Match Address 10.0.0.0/8 (line 125 of /etc/ssh/sshd_config)", "addr=10.0.0.1",
                                       dict(config))
    want = {"clientaliveinterval": ["120"]}
    accept = timeouts.sshd_value_ok(timeouts.Settings(ssh_client_alive_interval=120))
    bad_default = _sshd.ConnectionClass("default", "", dict(config))
    assert _sshd.class_repairs([bad_default, inheriting], want, accept) == ([], [])
    good_default = _sshd.ConnectionClass("default", "", {"clientaliveinterval": ["120"]})
    found, unfixable = _sshd.class_repairs([good_default, inheriting], want, accept)
    assert found == [] and "sets no clientaliveinterval itself" in unfixable[0]


def test_conclude_an_unreadable_class_is_an_error_a_failing_one_a_failure() -> None:
    good = _sshd.ConnectionClass("default", "", {"x": ["1"]})
    bad = _sshd.ConnectionClass("Match Group nobody-here", "", None, "no member")
    with pytest.raises(_sshd.MatchError, match="no member"):
        _sshd.conclude([good, bad], ["default: x 1"])
    with pytest.raises(AssertionError, match="default: x 1"):
        _sshd.conclude([good], ["default: x 1"])
    _sshd.conclude([good], [])
