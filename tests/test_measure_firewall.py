"""firewall (6-7): the desired-state functions alone, no host; and the rollback protocol's
scripts (deploys/_rollback.py) run in a temporary directory with fake systemctl/systemd-run."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from deploys import _rollback as rb
from deploys import firewall as deploy
from hardening.measures import firewall as m
from hardening.observe import Observation
from hardening.profiles import SENSITIVITIES, Profiles

# `nft -j list ruleset` on a lab host (Debian 12, nftables 1.0.6) after the terminal profile's deploy.
LIVE_TERMINAL = json.loads(
    '{"nftables":[{"metainfo":{"version":"1.0.6","release_name":"Lester Gooch #5","json_schema_version":1}},'
    '{"table":{"family":"inet","name":"hardening","handle":3}},'
    '{"chain":{"family":"inet","table":"hardening","name":"input","handle":1,"type":"filter","hook":"input",'
    '"prio":0,"policy":"drop"}},'
    '{"chain":{"family":"inet","table":"hardening","name":"forward","handle":2,"type":"filter","hook":"forward",'
    '"prio":0,"policy":"drop"}},'
    '{"chain":{"family":"inet","table":"hardening","name":"output","handle":3,"type":"filter","hook":"output",'
    '"prio":0,"policy":"accept"}},'
    '{"rule":{"family":"inet","table":"hardening","chain":"input","handle":4,"expr":[{"match":{"op":"in",'
    '"left":{"ct":{"key":"state"}},"right":["established","related"]}},{"accept":null}]}},'
    '{"rule":{"family":"inet","table":"hardening","chain":"input","handle":5,"expr":[{"match":{"op":"in",'
    '"left":{"ct":{"key":"state"}},"right":"invalid"}},{"drop":null}]}},'
    '{"rule":{"family":"inet","table":"hardening","chain":"input","handle":6,"expr":[{"match":{"op":"==",'
    '"left":{"meta":{"key":"iif"}},"right":"lo"}},{"accept":null}]}},'
    '{"rule":{"family":"inet","table":"hardening","chain":"input","handle":8,"expr":[{"match":{"op":"==",'
    '"left":{"payload":{"protocol":"icmp","field":"type"}},"right":{"set":["destination-unreachable",'
    '"echo-request","time-exceeded","parameter-problem"]}}},{"accept":null}]}},'
    '{"rule":{"family":"inet","table":"hardening","chain":"input","handle":10,"expr":[{"match":{"op":"==",'
    '"left":{"payload":{"protocol":"icmpv6","field":"type"}},"right":{"set":["destination-unreachable",'
    '"packet-too-big","time-exceeded","parameter-problem","echo-request","mld-listener-query","nd-router-advert",'
    '"nd-neighbor-solicit","nd-neighbor-advert"]}}},{"accept":null}]}},'
    '{"rule":{"family":"inet","table":"hardening","chain":"input","handle":12,"comment":"ssh","expr":[{"match":'
    '{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"set":[{"prefix":{"addr":'
    '"10.0.0.0","len":8}},{"prefix":{"addr":"172.16.0.0","len":12}},{"prefix":{"addr":"192.168.0.0","len":16}}'
    ']}}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":22}},'
    '{"accept":null}]}}]}'
)


def terminal() -> m.Settings:
    settings: m.Settings = Profiles().resolve("terminal").measure("firewall")
    return settings


def with_rule(document: dict[str, Any], expr: list[dict[str, Any]], comment: str = "extra") -> dict[str, Any]:
    doc = copy.deepcopy(document)
    doc["nftables"].append({"rule": {"family": "inet", "table": "hardening", "chain": "input", "handle": 99,
                                     "comment": comment, "expr": expr}})
    return doc


def dport(port: int, proto: str = "tcp") -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": port}}


def saddr(right: Any, family: str = "ip") -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"payload": {"protocol": family, "field": "saddr"}}, "right": right}}


ACCEPT = {"accept": None}

SETTINGS = [
    ("terminal", terminal()),
    ("v4+v6, rules", m.Settings(management_networks=["10.1.0.0/16", "fd00::/8"], allow=[
        m.Rule(name="web", port=443), m.Rule(name="dns", proto="udp", port=53, sources=["management"]),
        m.Rule(name="nrpe", port=5666, sources=["management", "192.0.2.7", "2001:db8::/32"])])),
    ("ssh port", m.Settings(ssh_port=2222, forwarding=True)),
]


# -- desired state -------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "settings"), SETTINGS)
@pytest.mark.parametrize("role", ["terminal", "server"])
def test_ruleset_passes_nft_check(name: str, settings: m.Settings, role: str, tmp_path: Path) -> None:
    """`nft -c -f` parses and validates without loading anything."""
    if not shutil.which("nft"):
        pytest.skip("nft not installed")
    path = tmp_path / "ruleset.nft"
    path.write_text(m.ruleset(settings, role))
    out = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_ruleset_shape() -> None:
    text = m.ruleset(terminal(), "terminal")
    assert "flush ruleset" not in text
    assert "table inet hardening\ndelete table inet hardening\ntable inet hardening {" in text
    assert "hook input priority filter; policy drop;" in text
    assert "hook forward priority filter; policy drop;" in text
    assert "ip saddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 } tcp dport 22 accept" in text


def test_sources_management_and_anywhere() -> None:
    settings = SETTINGS[1][1]
    assert [s.describe() for s in m.inbound_services(settings)] == [
        "tcp/22 from 10.1.0.0/16, fd00::/8",
        "tcp/443 from anywhere",
        "udp/53 from 10.1.0.0/16, fd00::/8",
        "tcp/5666 from 10.1.0.0/16, 192.0.2.7/32, 2001:db8::/32, fd00::/8",
    ]
    rules = m.input_rules(settings)
    assert 'tcp dport 443 accept comment "web"' in rules
    assert 'ip6 saddr { 2001:db8::/32, fd00::/8 } tcp dport 5666 accept comment "nrpe"' in rules


def test_forwarding_never_on_a_terminal() -> None:
    settings = m.Settings(forwarding=True)
    assert not m.forwarding_allowed(settings, "terminal")
    assert m.forwarding_allowed(settings, "server")
    assert "net.ipv4.ip_forward = 0" in m.sysctl_conf(settings, "terminal")
    assert m.sysctl_conf(settings, "server") == ""
    assert "hook forward priority filter; policy accept;" in m.ruleset(settings, "server")


def test_settings_refuse_what_would_lock_out_or_break_the_file() -> None:
    with pytest.raises(ValidationError, match="SSH would be closed"):
        m.Settings(management_networks=[])
    with pytest.raises(ValidationError):
        m.Settings(management_networks=["not-a-network"])
    with pytest.raises(ValidationError):
        m.Rule(name='web" accept', port=80)
    with pytest.raises(ValidationError):
        m.Rule(name="web", port=80, sources=["everywhere"])


@pytest.mark.parametrize(("name", "level"), [(n, lvl) for n in ("terminal", "server", "server-room")
                                             for lvl in SENSITIVITIES])
def test_every_profile_has_ssh_from_management(name: str, level: str) -> None:
    resolved = Profiles().resolve(name, level)
    settings: m.Settings = resolved.measure("firewall")
    assert m.inbound_services(settings)[0].sources
    if resolved.role == "terminal":
        assert not m.forwarding_allowed(settings, resolved.role)


def test_confirm_command() -> None:
    assert m.confirm_command() == "sudo -n /usr/local/sbin/hardening-confirm"


# -- reading the live ruleset ----------------------------------------------------------------------

def test_live_terminal_ruleset_is_as_desired() -> None:
    assert m.live_problems(LIVE_TERMINAL, terminal(), "terminal") == []
    chain = m.parse_nft_json(LIVE_TERMINAL)["input"]
    assert [a.kind for a in chain.accepts] == ["essential"] * 4 + ["service"]


def test_extra_accept_is_reported() -> None:
    doc = with_rule(LIVE_TERMINAL, [dport(8080), ACCEPT], "web test")
    assert m.live_problems(doc, terminal(), "terminal") == [
        'unexpected: accepts tcp 8080 from anywhere (inet hardening input handle 99 "web test")']


@pytest.mark.parametrize("expr", [
    [saddr("0.0.0.0/0"), dport(22), ACCEPT],                               # SSH from anywhere
    [dport(22), ACCEPT],
    [saddr({"prefix": {"addr": "0.0.0.0", "len": 0}}), dport(22), ACCEPT],
    [saddr("192.0.2.1"), ACCEPT],                                          # any port from a host
    [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}}, ACCEPT],
    [{"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, ACCEPT],
    [{"jump": {"target": "other"}}],
])
def test_wider_accepts_are_unexpected(expr: list[dict[str, Any]]) -> None:
    chain = m.parse_nft_json(with_rule(LIVE_TERMINAL, expr))["input"]
    assert m.unexpected_accepts(chain, terminal())


def test_narrower_ssh_sources_are_fine_and_ranges_are_read() -> None:
    doc = with_rule(LIVE_TERMINAL, [saddr({"range": ["10.0.0.0", "10.0.0.255"]}), dport(22), ACCEPT])
    chain = m.parse_nft_json(doc)["input"]
    assert chain.accepts[-1].sources == ("10.0.0.0/24",)
    assert m.unexpected_accepts(chain, terminal()) == []


def test_policy_and_missing_service_reported() -> None:
    doc = copy.deepcopy(LIVE_TERMINAL)
    doc["nftables"] = [x for x in doc["nftables"] if x.get("rule", {}).get("comment") != "ssh"]
    doc["nftables"][2]["chain"]["policy"] = "accept"
    problems = m.live_problems(doc, terminal(), "terminal")
    assert problems[0] == "input policy accept"
    assert problems[1].startswith("missing ssh:")


def test_service_present_needs_every_source() -> None:
    settings = m.Settings(management_networks=["10.0.0.0/8", "192.168.0.0/16"])
    doc = with_rule({"nftables": [x for x in LIVE_TERMINAL["nftables"] if "rule" not in x or
                                  x["rule"].get("comment") != "ssh"]},
                    [saddr({"set": [{"prefix": {"addr": "10.0.0.0", "len": 8}}]}), dport(22), ACCEPT])
    chain = m.parse_nft_json(doc)["input"]
    assert not m.service_present(chain, m.inbound_services(settings)[0])


def test_other_tables_ignored_no_table_reported() -> None:
    assert m.live_problems({"nftables": [{"chain": {"family": "inet", "table": "filter", "name": "input",
                                                    "hook": "input", "policy": "drop"}}]},
                           terminal(), "terminal") == ["no input chain in table inet hardening"]


# -- deciding from the observation batch ---------------------------------------------------------

def seen(command: str, stdout: str = "", rc: int = 0, stderr: str = "") -> Observation:
    return Observation("o0", command, rc, stdout, stderr, 0.0)


LIVE_TEXT = json.dumps(LIVE_TERMINAL)
EMPTY_RULESET = '{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}]}'


@pytest.mark.parametrize("stdout", ["", "Error: Could not process rule", "[]", '{"nftables": {}}',
                                    '{"other": []}', '{"nftables": [1]}'])
def test_unreadable_listing_raises(stdout: str) -> None:
    with pytest.raises(m.Unreadable):
        m.read_nft_json(stdout)


def test_live_drift_from_the_observation() -> None:
    assert m.live_drift(seen(m.NFT_LIST, LIVE_TEXT), terminal(), "terminal") == []
    assert m.live_drift(seen(m.NFT_LIST, EMPTY_RULESET), terminal(), "terminal") == [
        "no input chain in table inet hardening"]
    failed = m.live_drift(seen(m.NFT_LIST, rc=127, stderr="sh: 1: nft: not found\n"), terminal(), "terminal")
    assert failed == ["nft -j list ruleset failed (exit 127): sh: 1: nft: not found"]
    assert m.live_drift(seen(m.NFT_LIST, "garbage"), terminal(), "terminal")[0].startswith(
        "nft -j list ruleset: not JSON")


def test_reapply_reasons() -> None:
    desired = m.ruleset(terminal(), "terminal")
    conf, live = seen(m.NFTABLES_CONF_TEXT, desired), seen(m.NFT_LIST, LIVE_TEXT)
    assert m.reapply_reasons(conf, live, terminal(), "terminal") == []
    # the table deleted at runtime, the file unchanged: reload
    assert m.reapply_reasons(conf, seen(m.NFT_LIST, EMPTY_RULESET), terminal(), "terminal") == [
        "live ruleset: no input chain in table inet hardening"]
    # the file is Debian's default (or a previous profile's), the live ruleset fine: commit again
    assert m.reapply_reasons(seen(m.NFTABLES_CONF_TEXT, "flush ruleset\n"), live, terminal(), "terminal") == [
        "/etc/nftables.conf is not the profile's ruleset"]
    absent = seen(m.NFTABLES_CONF_TEXT, rc=1, stderr="cat: /etc/nftables.conf: No such file or directory")
    assert m.reapply_reasons(absent, live, terminal(), "terminal") == ["/etc/nftables.conf absent or unreadable"]
    # another profile (a web server allowed) is drift of the live ruleset as well
    web = m.Settings(allow=[m.Rule(name="web", port=443)])
    assert m.reapply_reasons(seen(m.NFTABLES_CONF_TEXT, m.ruleset(web, "server")), live, web, "server") == [
        "live ruleset: missing web: tcp/443 from anywhere"]


def test_forwarding_repairs_only_what_differs() -> None:
    keys = list(m.FORWARD_SYSCTLS)
    off = dict.fromkeys(keys, "0")
    assert m.forwarding_repairs(off, terminal(), "terminal") == {}
    assert m.forwarding_repairs({**off, keys[0]: "1"}, terminal(), "terminal") == {keys[0]: "0"}
    assert m.forwarding_repairs({keys[0]: "0", keys[1]: None}, terminal(), "terminal") == {keys[1]: "0"}
    allowed = m.Settings(forwarding=True)
    assert m.forwarding_repairs({**off, keys[0]: "1"}, allowed, "server") == {}
    assert m.forwarding_repairs({**off, keys[0]: "1"}, allowed, "terminal") == {keys[0]: "0"}


def test_sysctl_value() -> None:
    assert m.sysctl_value(seen(m.sysctl_read("net.ipv4.ip_forward"), "1\n")) == "1"
    assert m.sysctl_value(seen("x", "", rc=255, stderr="sysctl: cannot stat")) is None
    assert m.sysctl_read("net.ipv4.ip_forward") == "sysctl -n net.ipv4.ip_forward"


@pytest.mark.parametrize(("enabled", "active", "reapply", "commands"), [
    ("enabled", "active", False, []),
    ("enabled", "active", True, []),
    ("disabled", "inactive", False, ["systemctl enable nftables.service", "systemctl start nftables.service"]),
    # re-applied: the file is still the previous ruleset until the commit, which starts the service
    ("disabled", "inactive", True, ["systemctl enable nftables.service"]),
    ("enabled", "inactive", True, []),
    ("enabled", "failed", False, ["systemctl start nftables.service"]),
    ("", "", True, ["systemctl enable nftables.service"]),  # not installed when observed
])
def test_service_commands(enabled: str, active: str, reapply: bool, commands: list[str]) -> None:
    assert m.service_commands(enabled, active, reapply) == commands


def _with(profile: Any, settings: m.Settings, role: str | None = None) -> Any:
    measures: Any = profile.measures
    return profile.model_copy(update={"role": role or profile.role,
                                      "measures": measures.model_copy(update={"firewall": settings})})


def test_observe_follows_the_profile() -> None:
    profile = Profiles().resolve("terminal")
    commands = m.observe(profile)
    assert commands[:5] == [m.NFT_PRESENT, m.NFT_LIST, "cat /etc/nftables.conf", m.NFTABLES_ENABLED,
                            m.NFTABLES_ACTIVE]
    assert [c for c in commands if c.startswith("sysctl")] == [
        "sysctl -n net.ipv4.ip_forward", "sysctl -n net.ipv6.conf.all.forwarding"]
    routing = _with(profile, m.Settings(forwarding=True), "server")
    assert not [c for c in m.observe(routing) if c.startswith("sysctl")]
    assert m.observe(_with(profile, m.Settings(enabled=False))) == []


def test_commit_installs_then_starts_the_service() -> None:
    commit = deploy.change(120).commit
    install, start = commit.index("install -m 0644"), commit.index("systemctl start nftables.service")
    assert install < start
    assert subprocess.run(["sh", "-n", "-c", rb.commit_script(deploy.change(120))], check=False).returncode == 0


# hwprofiles/base.yaml's firewall section before the baseline moved into the Settings defaults.
BASE_YAML_FIREWALL: dict[str, Any] = {"management_networks": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
                      "ssh_port": 22, "forwarding": False, "confirm_timeout": 120}


def test_settings_defaults_are_the_baseline() -> None:
    """The Settings defaults are the values hwprofiles/base.yaml used to name (one place now)."""
    assert m.Settings() == m.Settings(**BASE_YAML_FIREWALL)
    for name in ("terminal", "server", "server-room"):
        resolved: m.Settings = Profiles().resolve(name).measure("firewall")
        assert (resolved.management_networks, resolved.confirm_timeout) == (
            BASE_YAML_FIREWALL["management_networks"], 120)


# -- the rollback protocol, run for real in a temporary directory ---------------------------------

FAKES = {
    "systemctl": 'echo "systemctl $*" >> "$HARDENING_LOG"',
    "systemd-run": 'echo "systemd-run $*" >> "$HARDENING_LOG"',
    "logger": 'echo "logger $*" >> "$HARDENING_LOG"',
}


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Any]:
    if not (shutil.which("flock") and shutil.which("sh")):
        pytest.skip("flock or sh missing")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    target = tmp_path / "target.conf"
    target.write_text("old\n")
    change = rb.Change(
        name="demo", timeout=30,
        validate='grep -q "^new" "$DIR/desired"',
        save=f"cp {target} saved.conf",
        apply=f'cp "$DIR/desired" {target}',
        restore=f"cp saved.conf {target}",
        commit='cp "$DIR/desired" "$DIR/committed"',
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HARDENING_RUN": str(tmp_path / "run"),
           "HARDENING_STATE": str(tmp_path / "state"), "HARDENING_LOG": str(tmp_path / "log")}
    directory = tmp_path / "state" / "demo"
    directory.mkdir(parents=True)
    scripts = {"apply": rb.apply_script(change), "restore": rb.restore_script(change),
               "commit": rb.commit_script(change)}
    for name, text in scripts.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o700)
    confirm = tmp_path / "hardening-confirm"
    confirm.write_text(rb.confirm_script())
    confirm.chmod(0o755)
    (directory / "desired").write_text("new\n")
    return {"env": env, "dir": directory, "target": target, "run": tmp_path / "run",
            "confirm": str(confirm), "log": tmp_path / "log"}


def run(sb: dict[str, Any], what: str) -> subprocess.CompletedProcess[str]:
    path = sb["confirm"] if what == "confirm" else str(sb["dir"] / what)
    return subprocess.run([path], env=sb["env"], capture_output=True, text=True, check=False, timeout=30)


@pytest.mark.parametrize("script", ["confirm", "apply", "restore", "commit"])
def test_scripts_are_valid_sh(script: str) -> None:
    change = rb.Change(name="x", timeout=5, validate="true", save="true", apply="true", restore="true",
                       commit="true")
    text = rb.confirm_script() if script == "confirm" else getattr(rb, f"{script}_script")(change)
    assert subprocess.run(["sh", "-n", "-c", text], check=False).returncode == 0


def test_apply_then_confirm(sandbox: dict[str, Any]) -> None:
    out = run(sandbox, "apply")
    assert out.returncode == 0, out.stderr
    assert sandbox["target"].read_text() == "new\n"
    assert (sandbox["run"] / "pending" / "demo").is_file()
    log = sandbox["log"].read_text()
    assert "systemd-run --quiet --unit=hardening-rollback-demo --on-active=30s" in log
    confirmed = run(sandbox, "confirm")
    assert (confirmed.returncode, confirmed.stdout) == (0, "confirmed: demo\n")
    assert (sandbox["dir"] / "committed").read_text() == "new\n"
    assert not (sandbox["run"] / "pending" / "demo").exists()
    assert "systemctl stop hardening-rollback-demo.timer" in sandbox["log"].read_text()
    again = run(sandbox, "confirm")
    assert (again.returncode, again.stdout) == (0, "nothing pending\n")


def test_timer_restores_when_not_confirmed(sandbox: dict[str, Any]) -> None:
    assert run(sandbox, "apply").returncode == 0
    restored = run(sandbox, "restore")  # what the timer starts
    assert restored.returncode == 0, restored.stderr
    assert sandbox["target"].read_text() == "old\n"
    assert not (sandbox["run"] / "pending" / "demo").exists()
    late = run(sandbox, "confirm")
    assert late.returncode == 2
    assert late.stdout.startswith("rolled back before confirmation: demo (")
    assert not (sandbox["dir"] / "committed").exists()
    assert run(sandbox, "confirm").returncode == 0  # reported once


def test_restore_after_confirm_does_nothing(sandbox: dict[str, Any]) -> None:
    assert run(sandbox, "apply").returncode == 0
    assert run(sandbox, "confirm").returncode == 0
    assert run(sandbox, "restore").returncode == 0
    assert sandbox["target"].read_text() == "new\n"


def test_second_apply_keeps_the_last_confirmed_state(sandbox: dict[str, Any]) -> None:
    assert run(sandbox, "apply").returncode == 0
    (sandbox["dir"] / "desired").write_text("newer\n")
    assert run(sandbox, "apply").returncode == 0
    assert sandbox["target"].read_text() == "newer\n"
    assert run(sandbox, "restore").returncode == 0
    assert sandbox["target"].read_text() == "old\n"


def test_invalid_change_never_goes_live(sandbox: dict[str, Any]) -> None:
    (sandbox["dir"] / "desired").write_text("broken\n")
    out = run(sandbox, "apply")
    assert out.returncode == 1
    assert "validation failed" in out.stderr
    assert sandbox["target"].read_text() == "old\n"
    assert not (sandbox["run"] / "pending").exists()


def test_failed_apply_restores_at_once(sandbox: dict[str, Any]) -> None:
    sandbox["target"].chmod(0o444)
    if os.access(sandbox["target"], os.W_OK):  # root writes anyway: make apply fail differently
        text = (sandbox["dir"] / "apply").read_text().replace('cp "$DIR/desired"', "false && cp")
        (sandbox["dir"] / "apply").write_text(text)
    out = run(sandbox, "apply")
    assert out.returncode == 1
    assert "applying failed" in out.stderr
    assert sandbox["target"].read_text() == "old\n"
    assert not (sandbox["run"] / "pending" / "demo").exists()
    assert not (sandbox["run"] / "rolled-back" / "demo").exists()


def test_failed_commit_leaves_the_rollback_armed(sandbox: dict[str, Any]) -> None:
    assert run(sandbox, "apply").returncode == 0
    (sandbox["dir"] / "commit").write_text("#!/bin/sh\nexit 1\n")
    out = run(sandbox, "confirm")
    assert out.returncode == 1
    assert (sandbox["run"] / "pending" / "demo").exists()
    assert "systemctl stop hardening-rollback-demo.timer" not in sandbox["log"].read_text().splitlines()


def test_change_name_checked() -> None:
    with pytest.raises(ValueError, match="change name"):
        rb.Change(name="../x", timeout=5, validate="", save="", apply="", restore="", commit="")


def test_a_failed_service_start_does_not_undo_the_commit(sandbox: dict[str, Any]) -> None:
    """The firewall's commit starts nftables.service; if that fails the change stays confirmed."""
    fake = Path(sandbox["env"]["PATH"].split(":")[0]) / "systemctl"
    fake.write_text('#!/bin/sh\necho "systemctl $*" >> "$HARDENING_LOG"\n[ "$1" != start ]\n')
    commit = sandbox["dir"] / "commit"
    commit.write_text(commit.read_text() + deploy.START_AFTER_COMMIT + "\n")
    assert run(sandbox, "apply").returncode == 0
    out = run(sandbox, "confirm")
    assert (out.returncode, out.stdout) == (0, "confirmed: demo\n")
    assert "nftables.service did not start" in out.stderr
    assert "systemctl start nftables.service" in sandbox["log"].read_text()
    assert not (sandbox["run"] / "pending" / "demo").exists()
