"""audit (6-3, 6-4): the desired state without a host and the readings of the checks (output that
cannot be read is an error, never a pass). Outputs are those of a Debian 12 lab VM (audit 3.0.9)."""

from __future__ import annotations

import subprocess

import pytest
from pydantic import ValidationError

from deploys.audit import conf_command
from hardening.measures import audit as measure
from hardening.profiles import Profiles

STATUS = """enabled 2
failure 1
pid 1661
rate_limit 0
backlog_limit 8192
lost 0
backlog 0
backlog_wait_time 60000
backlog_wait_time_actual 0
loginuid_immutable 0 unlocked
"""
# auditd.conf of a fresh Debian 12 host (comments left out).
FRESH_CONF = """local_events = yes
write_logs = yes
log_file = /var/log/audit/audit.log
log_group = adm
log_format = ENRICHED
flush = INCREMENTAL_ASYNC
max_log_file = 8
num_logs = 5
max_log_file_action = ROTATE
space_left_action = SYSLOG
admin_space_left_action = SUSPEND
disk_full_action = SUSPEND
disk_error_action = SUSPEND
krb5_principal = auditd
"""
DEBIAN_RULES = "## First rule - delete all\n-D\n\n-b 8192\n\n--backlog_wait_time 60000\n\n-f 1\n"


def boot_listing(*files: tuple[str, str]) -> str:
    return "".join(f"### {name}\n{body}\n" for name, body in files) + "### END\n"


def test_shipped_profiles_have_no_paths_and_no_log_host() -> None:
    profiles = Profiles()
    for name in ("terminal", "server", "server-room"):
        resolved = profiles.resolve(name, "high")
        settings = resolved.measure("audit")
        assert settings.log_host == "" and settings.immutable and settings.log_group == "root"
        assert measure.watched(resolved) == []
        assert measure.PLUGIN not in measure.MEASURE.observe(resolved)


def test_bad_settings_name_the_key() -> None:
    for bad in ({"paths": ["relative"]}, {"paths": ["/srv/*"]}, {"paths": ["/"]}, {"log_host": "a b"},
                {"log_port": 0}, {"log_group": "Root!"}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            measure.Settings.model_validate(bad)
    assert measure.Settings(paths=["/srv/pii/"]).paths == ["/srv/pii"]
    assert measure.Settings(log_host="10.233.3.2").log_host == "10.233.3.2"
    assert measure.Settings(log_host="loghost.example.lg.jp").log_host


def test_rules_and_immutable_files() -> None:
    text = measure.rules_text(["/srv/pii", "/srv/kojin"])
    assert text.splitlines()[1:] == ["-w /srv/pii -p r -k hardening-pii-read",
                                     "-w /srv/pii -p wa -k hardening-pii-change",
                                     "-w /srv/kojin -p r -k hardening-pii-read",
                                     "-w /srv/kojin -p wa -k hardening-pii-change"]
    assert measure.immutable_text().splitlines()[-1] == "-e 2"


def test_loaded_rules_in_both_spellings() -> None:
    listed = ("-w /srv/pii -p r -k hardening-pii-read\n-w /srv/pii/ -p wa -k hardening-pii-change\n"
              "-a always,exit -S all -F dir=/srv/x -F perm=r -F key=other\n-a never,task\n")
    assert measure.parse_loaded(listed) == [measure.Watch("/srv/pii", "r", measure.READ_KEY),
                                            measure.Watch("/srv/pii", "wa", measure.CHANGE_KEY),
                                            measure.Watch("/srv/x", "r", "other")]
    assert measure.parse_loaded("No rules\n") == []
    with pytest.raises(ValueError):
        measure.parse_loaded("", rc=1)


def test_status_is_read_and_unreadable_status_is_an_error() -> None:
    assert measure.parse_status(STATUS)["enabled"] == "2"
    for text, rc in (("", 1), ("pid 3\n", 0), ("enabled yes\n", 0)):
        with pytest.raises(ValueError):
            measure.parse_status(text, rc)


def test_a_container_has_no_audit_of_its_own() -> None:
    stderr = "Error - audit support not in kernel\nCannot open netlink audit socket"
    assert "not in kernel" in measure.no_audit("", stderr)
    assert measure.no_audit(STATUS, "") == ""


def test_boot_rules_are_merged_as_augenrules_merges_them() -> None:
    listing = boot_listing(("audit.rules", DEBIAN_RULES),
                           ("60-hardening-audit.rules", measure.rules_text(["/srv/pii"])),
                           ("99-zz-hardening-immutable.rules", measure.immutable_text()))
    boot = measure.boot_rules(listing)
    assert boot.lines[:3] == ["-D", "-b 8192", "-f 1"] and boot.enable == "2"
    assert boot.watches == measure.watch_rules(["/srv/pii"])
    # a later file's -e 1 wins over ours: the last -e read is the one augenrules puts last
    later = measure.boot_rules(listing.replace("### END", "### zz-local.rules\n-e 1\n### END"))
    assert later.enable == "1"
    assert measure.boot_rules(boot_listing(("audit.rules", DEBIAN_RULES))).enable == ""
    with pytest.raises(ValueError):
        measure.boot_rules("### audit.rules\n-D\n")  # cut before END


def test_boot_rules_match_the_real_augenrules_awk(tmp_path) -> None:
    """The merge order against augenrules' own awk program where awk exists (gawk or mawk)."""
    body = DEBIAN_RULES + measure.rules_text(["/srv/pii"]) + "-e 2\n-w /etc/x -p wa -k late\n"
    awk = r'''{ if (length($0) < 1) next; if (match($0, "^[ \t]*#")) next;
      if (match($0, "^[ \t]*-e")) { e = $0; next } if (match($0, "^[ \t]*-D[ \t]*$")) { d = $0; next }
      if (match($0, "^[ \t]*-f")) { f = $0; next } if (match($0, "^[ \t]*-b")) { b = $0; next } r[n++] = $0 }
      END { printf "%s\n%s\n%s\n", d, b, f; for (i = 0; i < n; i++) print r[i]; print e }'''
    try:
        real = subprocess.run(["awk", awk], input=body, capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        pytest.skip("no awk")
    assert measure.boot_rules(boot_listing(("a.rules", body))).lines == real.splitlines()


def test_auditd_conf_as_auditd_reads_it() -> None:
    values = measure.parse_conf("# comment\n\n" + FRESH_CONF + "max_log_file_action=keep_logs\n")
    assert values["max_log_file_action"] == "keep_logs" and values["krb5_principal"] == "auditd"
    with pytest.raises(ValueError, match=r"auditd\.conf:2"):
        measure.parse_conf("log_group = root\nthis is not a key\n")
    settings = measure.Settings()
    wrong = measure.conf_problems(settings, measure.parse_conf(FRESH_CONF))
    assert wrong == {"log_group": "adm", "max_log_file_action": "ROTATE"}
    fixed = FRESH_CONF.replace("= adm\n", "= root\n").replace("ROTATE", "KEEP_LOGS")
    assert measure.conf_problems(settings, measure.parse_conf(fixed)) == {}
    assert measure.conf_problems(settings, {})["log_group"] == "(unset)"


def test_conf_command_rewrites_every_line_of_a_key_or_appends_it(tmp_path) -> None:
    conf = tmp_path / "auditd.conf"
    conf.write_text(FRESH_CONF + "MAX_LOG_FILE_ACTION = rotate\n")
    script = conf_command({"max_log_file_action": "keep_logs", "log_group": "root", "disk_error_action": "suspend",
                           "end_of_event_timeout": "2"})
    subprocess.run(["sh", "-c", script.replace(measure.AUDITD_CONF_PATH, str(conf))], check=True)
    values = measure.parse_conf(conf.read_text())
    assert values["max_log_file_action"] == "keep_logs" and values["log_group"] == "root"
    assert values["end_of_event_timeout"] == "2"
    assert conf.read_text().lower().count("max_log_file_action") == 2


LISTING = """700 root root d /var/log/audit
600 root root f /var/log/audit/audit.log
640 root adm f /var/log/audit/audit.log.1
644 root root f /var/log/audit/audit.log.2
660 syslog root f /var/log/audit/audit.log.3
END 0
"""


def test_log_protection() -> None:
    entries = measure.parse_log_stat(LISTING)
    problems = measure.log_problems(measure.Settings(), entries)
    assert problems == ["/var/log/audit/audit.log.1 (640 root:adm): group adm",
                        "/var/log/audit/audit.log.2 (644 root:root): world access",
                        "/var/log/audit/audit.log.3 (660 syslog:root): owner syslog, group write"]
    assert measure.log_problems(measure.Settings(log_group="adm"), entries[:3]) == []
    for bad in ("", "END 1\n", "700 root root d /var/log/other\nEND 0\n", "rwx root root d /var/log/audit\nEND 0\n"):
        with pytest.raises(ValueError):
            measure.parse_log_stat(bad)


def test_forwarding_problems() -> None:
    settings = measure.Settings(log_host="10.233.3.2")
    plugin = measure.parse_plugin(measure.plugin_text())
    assert measure.plugin_problems(plugin, "/sbin/audisp-syslog LOG_INFO LOG_LOCAL6\n") == []
    off = measure.plugin_problems({"active": "no", "args": "LOG_INFO"}, "")
    assert len(off) == 3 and "active = no" in off[0]
    units = {measure.RSYSLOG: {"ActiveState": "active", "UnitFileState": "enabled", "ActiveEnterTimestamp": "@1000"}}
    text = measure.rsyslog_text(settings)
    assert 'target="10.233.3.2" port="514" protocol="tcp"' in text and text.endswith("& stop\n")
    assert measure.rsyslog_problems(settings, units, f"999\n{text}", 0) == []
    assert "changed after rsyslog started" in measure.rsyslog_problems(settings, units, f"1001\n{text}", 0)[0]
    assert "absent" in measure.rsyslog_problems(settings, units, "", 0)[0]
    assert "rejects" in measure.rsyslog_problems(settings, units, f"999\n{text}", 1)[0]
    down = {measure.RSYSLOG: {"ActiveState": "inactive", "UnitFileState": "disabled"}}
    assert len(measure.rsyslog_problems(settings, down, f"999\n{text}", 0)) == 2


def test_observe_reads_the_forwarding_only_with_a_log_host() -> None:
    resolved = Profiles().resolve("terminal", "medium")
    commands = measure.MEASURE.observe(resolved)
    assert measure.STATUS in commands and measure.BOOT in commands and measure.RSYSLOG_CHECK not in commands


def test_receiver() -> None:
    text = measure.receiver_text(6514)
    assert 'input(type="imtcp" port="6514"' in text and measure.RECEIVED in text
