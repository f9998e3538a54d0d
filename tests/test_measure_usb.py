"""usb (6-11): the desired-state functions alone, no host."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from hardening.measures import usb as m
from hardening.observe import Observation, ObservationError, quote
from hardening.profiles import SENSITIVITIES, Profiles

KEYBOARD = m.UsbDevice(port="1-3", vendor="0627", product="0001", interfaces=("03",), name="QEMU USB Keyboard")
STICK = m.UsbDevice(port="2-1", vendor="46f4", product="0001", interfaces=("08",), name="QEMU USB HARDDRIVE")
PHONE_PTP = m.UsbDevice(port="2-2", vendor="18d1", product="4ee1", interfaces=("06",))
PHONE_MTP = m.UsbDevice(port="2-3", vendor="18d1", product="4ee2", interfaces=("ff",))
HUB = m.UsbDevice(port="usb1", vendor="1d6b", product="0002", interfaces=("09",))
READER = m.UsbDevice(port="1-4", vendor="072f", product="90cc", interfaces=("0b",))
KBD_WITH_STORAGE = m.UsbDevice(port="1-5", vendor="1234", product="abcd", interfaces=("03", "08"))


def all_profiles() -> list[tuple[str, str, m.Settings]]:
    profiles = Profiles()
    return [(n, lvl, profiles.resolve(n, lvl).measure("usb"))
            for n in profiles.names() if n != "base" for lvl in SENSITIVITIES]


def test_blocked_modules() -> None:
    assert m.blocked_modules(m.Settings()) == [
        "usb-storage", "uas", "firewire-sbp2", "thunderbolt", "firewire-net", "firewire-ohci", "firewire-core",
        "mmc_block", "sr_mod", "cdrom"]
    assert m.blocked_modules(m.Settings(block_thunderbolt_firewire=False, removable_media="allow")) == [
        "usb-storage", "uas"]
    assert m.blocked_modules(m.Settings(storage="allow", removable_media="allow")) == [
        "firewire-sbp2", "thunderbolt", "firewire-net", "firewire-ohci", "firewire-core"]
    assert m.blocked_modules(m.Settings(storage="allow", block_thunderbolt_firewire=False)) == [
        "mmc_block", "sr_mod", "cdrom"]


@pytest.mark.parametrize(("name", "level", "settings"), all_profiles())
def test_every_shipped_profile_blocks_cards_and_optical(name: str, level: str, settings: m.Settings) -> None:
    """The baseline (Settings default) blocks SD/MMC and optical media; no shipped profile relaxes it."""
    assert settings.removable_media == "block", (name, level)
    assert {"mmc_block", "sr_mod", "cdrom"} <= set(m.blocked_modules(settings))


def test_modprobe_conf_blocks_and_blacklists_each_module() -> None:
    text = m.modprobe_conf(m.Settings())
    for module in m.blocked_modules(m.Settings()):
        assert f"install {module} /bin/false\n" in text
        assert f"blacklist {module}\n" in text
    assert m.modprobe_conf(m.Settings(storage="allow", block_thunderbolt_firewire=False,
                                      removable_media="allow")) == ""


def test_module_blocked_reads_modprobe_output() -> None:
    assert m.module_blocked("install /bin/false")
    assert not m.module_blocked("insmod /lib/modules/6.1.0/kernel/drivers/usb/storage/usb-storage.ko")
    assert not m.module_blocked("")
    assert m.configured_install("install usb_storage /bin/false\n", "usb-storage") == "install usb_storage /bin/false"
    assert m.loaded_modules("usb_storage 81920 0 - Live 0x0\nuas 32768 0 - Live 0x0\n", ["usb-storage", "uas"]) \
        == ["usb-storage", "uas"]


@pytest.mark.parametrize(("name", "level", "settings"), all_profiles())
def test_keyboard_and_hubs_always_allowed(name: str, level: str, settings: m.Settings) -> None:
    rules = m.usbguard_rules(settings)
    assert any(r.startswith("allow with-interface one-of { 03:*:* }") for r in rules), name
    assert any(r.startswith("allow with-interface one-of { 09:*:* }") for r in rules), name
    assert m.verdict(KEYBOARD, settings)[0] == "allow"
    assert m.verdict(HUB, settings)[0] == "allow"
    assert m.lockout_risks([KEYBOARD, HUB], settings) == []


@pytest.mark.parametrize(("name", "level", "settings"), all_profiles())
def test_storage_and_phones_blocked_by_every_profile(name: str, level: str, settings: m.Settings) -> None:
    assert settings.storage == "block"
    for device in (STICK, PHONE_PTP, PHONE_MTP):
        assert m.verdict(device, settings)[0] == "block", (name, device)


def test_keyboard_allowed_even_if_the_profile_forgets_it() -> None:
    settings = m.Settings(allow=[m.Device(name="reader", interface_class="0b")])
    assert m.verdict(KEYBOARD, settings)[0] == "allow"
    assert m.verdict(READER, settings) == ("allow", "reader")
    assert m.usbguard_rules(settings)[1:] == [  # after the block of every other class
        'allow with-interface one-of { 03:*:* } label "HID (keyboard, mouse)"',
        'allow with-interface one-of { 09:*:* } label "hub"',
        'allow with-interface one-of { 0b:*:* } label "reader"',
    ]


@pytest.mark.parametrize("cls", ["03", "09"])
def test_hid_and_hub_cannot_be_blocked(cls: str) -> None:
    with pytest.raises(ValidationError, match="never blocked"):
        m.Settings(block_interface_classes=["08", cls])


def test_device_needs_a_class_or_an_id() -> None:
    with pytest.raises(ValidationError):
        m.Device(name="nothing")
    with pytest.raises(ValidationError):
        m.Device(name="product only", product="0001")
    with pytest.raises(ValidationError):
        m.Device(name='quote " breaks the label', interface_class="03")


def test_first_match_order_block_before_class_allows() -> None:
    settings = m.Settings()
    rules = m.usbguard_rules(settings)
    assert rules[0].startswith('block with-interface one-of { 08:*:* 06:*:* ff:*:* 00:*:* 01:*:* 02:*:* 04:*:*')
    assert rules[0].endswith(' fe:*:* } label "hardening: blocked classes"')
    assert m.verdict(KBD_WITH_STORAGE, settings) == ("block", "hardening: blocked classes")
    assert m.lockout_risks([KBD_WITH_STORAGE], settings) == [KBD_WITH_STORAGE]


def test_device_allowed_by_id_comes_before_the_block() -> None:
    settings = m.Settings(allow=[m.Device(name="keyboard with card slot", vendor="1234", product="abcd")])
    rules = m.usbguard_rules(settings)
    assert rules[0] == 'allow id 1234:abcd label "keyboard with card slot"'
    assert rules[1].startswith("block ")
    assert m.verdict(KBD_WITH_STORAGE, settings) == ("allow", "keyboard with card slot")
    assert m.lockout_risks([KBD_WITH_STORAGE], settings) == []
    assert m.verdict(STICK, settings)[0] == "block"


def test_storage_allowed_profile() -> None:
    settings = m.Settings(storage="allow")
    rules = m.usbguard_rules(settings)
    assert "08:*:*" not in rules[0] and "06:*:*" not in rules[0] and " ff:*:* " in rules[0]
    assert rules[-1].startswith("allow with-interface one-of { 08:*:* 06:*:* }")
    assert m.verdict(STICK, settings)[0] == "allow"
    assert m.verdict(PHONE_MTP, settings)[0] == "block"  # vendor-specific: blocked by class


def test_without_usbguard_only_blocked_classes_are_violations() -> None:
    settings = m.Settings(usbguard=False)
    assert m.verdict(PHONE_MTP, settings)[0] == "allow"
    assert m.violations([STICK, KEYBOARD], settings) == [STICK]
    assert m.lockout_risks([KBD_WITH_STORAGE], settings) == []


def test_daemon_conf() -> None:
    values = m.parse_daemon_conf(m.usbguard_daemon_conf(m.Settings()),
                                 ("ImplicitPolicyTarget", "PresentDevicePolicy", "PresentControllerPolicy",
                                  "InsertedDevicePolicy", "RuleFile", "RuleFolder", "IPCAllowedGroups"))
    assert values == {
        "ImplicitPolicyTarget": "block", "PresentDevicePolicy": "apply-policy",
        "PresentControllerPolicy": "keep", "InsertedDevicePolicy": "apply-policy",
        "RuleFile": m.USBGUARD_RULES, "RuleFolder": "(unset)", "IPCAllowedGroups": "root",
    }


def test_sysfs_listing_and_violations() -> None:
    listing = (
        "1-3|0627|0001|1|QEMU USB Keyboard|03 \n"
        "2-1|46f4|0001|0|QEMU USB HARDDRIVE|\n"        # blocked: no interfaces in sysfs
        "2-2|46F4|0001|1|Stick|08 \n"                  # upper-case hex, as some devices give it
        "usb1|1d6b|0002|1|xHCI Host Controller|09 \n"
    )
    devices = m.parse_sysfs_listing(listing)
    assert [d.port for d in devices] == ["1-3", "2-1", "2-2", "usb1"]
    assert devices[2].vendor == "46f4"
    assert [d.port for d in m.violations(devices, m.Settings())] == ["2-2"]
    assert m.parse_sysfs_listing("") == []


@pytest.mark.parametrize("line", [
    "2-2|46f4|0001|1|stick | with a bar|08 ",   # a field too many: never skipped, never misread
    "2-2|46f4|0001|1|Stick",                      # cut short
    "2-2|46f4||1|Stick|08 ",                      # no product id
    "2-2|46f4|0001|1|Stick|8 ",                   # not an interface class
    "2-2|46f4|0001|yes|Stick|08 ",                # authorized is 0 or 1
])
def test_sysfs_listing_unreadable_line_is_an_error(line: str) -> None:
    with pytest.raises(ObservationError, match="unreadable line"):
        m.parse_sysfs_listing("1-3|0627|0001|1|QEMU USB Keyboard|03 \n" + line + "\n")


def test_sysfs_listing_command_is_valid_sh() -> None:
    assert subprocess.run(["sh", "-n", "-c", m.SYSFS_LISTING_COMMAND], check=False).returncode == 0
    out = subprocess.run(["sh", "-c", m.SYSFS_LISTING_COMMAND], capture_output=True, text=True, check=False)
    assert out.returncode == 0
    assert all(len(line.split("|")) == 6 for line in out.stdout.splitlines())


def test_list_rules_parsing() -> None:
    out = '1: block with-interface one-of { 08:*:* 06:*:* } label "x"\n2: allow with-interface 09:*:*\n\n'
    assert m.parse_list_rules(out) == ['block with-interface one-of { 08:*:* 06:*:* } label "x"',
                                       "allow with-interface 09:*:*"]
    assert m.parse_list_rules("") == []
    with pytest.raises(ObservationError, match="unreadable line"):
        m.parse_list_rules("1: allow with-interface 09:*:*\nallow with-interface 03:*:*\n")


def _rule_parser() -> str | None:
    return os.environ.get("HARDENING_USBGUARD_RULE_PARSER") or shutil.which("usbguard-rule-parser")


@pytest.mark.parametrize(("name", "level", "settings"), [
    *all_profiles()[:1],
    ("by-id", "-", m.Settings(allow=[m.Device(name="k", vendor="1234", product="abcd", interface_class="03"),
                                     m.Device(name="any from vendor", vendor="1050")])),
    ("storage-allow", "-", m.Settings(storage="allow")),
])
def test_rules_parse_with_usbguard_as_written(name: str, level: str, settings: m.Settings, tmp_path: Path) -> None:
    """usbguard-rule-parser accepts the file and prints each rule unchanged (its canonical form,
    the one `usbguard list-rules` shows), so the check can compare strings."""
    parser = _rule_parser()
    if not parser:
        pytest.skip("usbguard-rule-parser not installed (set HARDENING_USBGUARD_RULE_PARSER)")
    path = tmp_path / "rules.conf"
    path.write_text(m.usbguard_rules_conf(settings))
    out = subprocess.run([parser, "-f", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    canonical = [line.removeprefix("OUTPUT: ") for line in out.stdout.splitlines()
                 if line.startswith("OUTPUT: ") and line != "OUTPUT: "]  # comments parse to ""
    assert canonical == m.usbguard_rules(settings)


# -- observations and the deploy's decisions ------------------------------------------------------

PROC = ("usb_storage 81920 1 uas, Live 0x0000000000000000\n"
        "uas 32768 0 - Live 0x0000000000000000\n"
        "scsi_mod 278528 3 uas,usb_storage,sd_mod, Live 0x0000000000000000\n"
        "thunderbolt 393216 0 - Live 0x0000000000000000\n")
BLOCKED = m.modprobe_conf(m.Settings())


def _o(rc: int = 0, stdout: str = "", stderr: str = "", command: str = "c") -> Observation:
    return Observation("o0", command, rc, stdout, stderr, 0.0)


def test_observe_declares_what_checks_and_deploy_read() -> None:
    profile = Profiles().resolve("terminal", "medium")
    commands = m.observe(profile)
    assert len(commands) == len(set(commands))
    for module in m.blocked_modules(profile.measure("usb")):
        assert quote("modprobe -n -v %s", module) in commands
    installs = m.modprobe_installs(m.blocked_modules(profile.measure("usb")))
    for command in (installs, m.PROC_MODULES, m.SYSFS_LISTING_COMMAND, m.USBGUARD_LIST_RULES,
                    m.USBGUARD_ENABLED, m.USBGUARD_ACTIVE, m.DAEMON_CONF_READ, m.RULES_SHA256):
        assert command in commands
    for command in commands:
        assert subprocess.run(["sh", "-n", "-c", command], check=False).returncode == 0, command


def test_observe_without_usbguard_reads_no_usbguard() -> None:
    class Profile:
        @staticmethod
        def measure(name: str) -> m.Settings:
            assert name == "usb"
            return m.Settings(usbguard=False, block_thunderbolt_firewire=False)

    commands = m.observe(Profile())
    assert not [c for c in commands if "usbguard" in c]
    assert quote("modprobe -n -v %s", "thunderbolt") not in commands


@pytest.mark.parametrize(("proc", "rc", "stdout"), [
    ("uas 32768 0 - Live 0x0\n", 0, "install uas /bin/false\n"),
    ("uas 32768 0 - Live 0x0\n", 3, ""),                       # modprobe's own exit code
    ("uasx 1 0 - Live 0x0\nsd_mod 1 0 - Live 0x0\n", 0, m.INSTALLS_NOT_READ + "\n"),
])
def test_modprobe_installs(tmp_path: Path, proc: str, rc: int, stdout: str) -> None:
    """modprobe -c (a stand-in here) is read only when a blocked module is loaded."""
    fake = tmp_path / "modprobe"
    fake.write_text(f"#!/bin/sh\nprintf 'alias x y\\ninstall uas /bin/false\\nblacklist uas\\n'\nexit {rc}\n")
    fake.chmod(0o755)
    (tmp_path / "modules").write_text(proc)
    command = m.modprobe_installs(["usb-storage", "uas"], str(tmp_path / "modules"))
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, check=False)
    assert (out.returncode, out.stdout) == (rc, stdout)


def test_block_seen() -> None:
    installs = _o(stdout="install usb_storage /bin/false\n")
    assert m.block_seen("usb-storage", _o(stdout="install /bin/false \n"), installs) == "install /bin/false"
    loaded = m.block_seen("usb-storage", _o(), installs)
    assert loaded == "loaded now; modprobe -c: install usb_storage /bin/false"
    assert m.module_blocked(loaded)
    assert not m.module_blocked(m.block_seen("uas", _o(), installs))  # loaded, no install line
    missing = m.block_seen("thunderbolt", _o(1, "", "modprobe: FATAL: Module thunderbolt not found"), installs)
    assert missing == "(exit 1) modprobe: FATAL: Module thunderbolt not found"
    assert not m.module_blocked(missing)
    with pytest.raises(ObservationError, match="modprobe -c failed"):
        m.block_seen("uas", _o(), _o(1, "", "boom"))
    with pytest.raises(ObservationError, match="observe again"):
        m.block_seen("uas", _o(), _o(stdout=m.INSTALLS_NOT_READ + "\n"))
    # modprobe -c is only needed for a loaded module
    assert m.block_seen("uas", _o(stdout="install /bin/false"), _o(1)) == "install /bin/false"


def test_proc_modules() -> None:
    assert m.parse_proc_modules(PROC)["scsi_mod"] == {"uas", "usb_storage", "sd_mod"}
    assert m.parse_proc_modules("x 1 0 [permanent], Live 0x0\n") == {"x": set()}
    assert m.loaded_modules(PROC, ["usb-storage", "uas", "firewire-sbp2"]) == ["usb-storage", "uas"]
    assert m.loaded_modules("", ["uas"]) == []
    with pytest.raises(ObservationError, match="/proc/modules"):
        m.loaded_modules("usb_storage\n", ["uas"])


def test_unload_order_users_first() -> None:
    wanted = m.blocked_modules(m.Settings())
    assert m.unload_order(PROC, wanted) == ["uas", "usb_storage", "thunderbolt"]
    assert m.unload_order(PROC, ["uas", "usb-storage"]) == ["uas", "usb_storage"]
    assert m.unload_order("uas 32768 0 - Live 0x0\n", wanted) == ["uas"]
    assert m.unload_order("", wanted) == []


def test_ineffective_blocks_only_when_the_file_is_already_in_place() -> None:
    settings = m.Settings()
    seen = {mod: "install /bin/false" for mod in m.blocked_modules(settings)}
    assert m.ineffective_blocks(settings, seen, BLOCKED) == []
    overridden = {**seen, "usb-storage": "insmod /x/usb-storage.ko"}
    assert m.ineffective_blocks(settings, overridden, BLOCKED) == ["usb-storage: insmod /x/usb-storage.ko"]
    assert m.ineffective_blocks(settings, overridden, None) == []            # the deploy writes it
    assert m.ineffective_blocks(settings, overridden, BLOCKED + "#\n") == []  # the deploy rewrites it


@pytest.mark.parametrize(("proc", "failing", "rc", "unloaded"), [
    (PROC, "", 0, ["uas", "usb_storage"]),
    ("thunderbolt 1 0 - Live 0x0\n", "", 0, []),
    (PROC, "usb_storage", 1, ["uas", "usb_storage"]),
])
def test_unload_command(tmp_path: Path, proc: str, failing: str, rc: int, unloaded: list[str]) -> None:
    """The shell runs modprobe -r for each loaded module and fails, naming it, when one is in use
    (a stand-in modprobe: this machine's kernel is never touched)."""
    proc_file = tmp_path / "modules"
    proc_file.write_text(proc)
    log = tmp_path / "log"
    fake = tmp_path / "modprobe"
    fake.write_text(f'#!/bin/sh\necho "$2" >> {log}\n[ "$2" != "{failing}" ] || '
                    '{ echo "modprobe: FATAL: Module $2 is in use." >&2; exit 1; }\n')
    fake.chmod(0o755)
    out = subprocess.run(["sh", "-c", m.unload_command(["uas", "usb_storage"], str(proc_file))],
                         capture_output=True, text=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, check=False)
    assert out.returncode == rc, out.stderr
    assert (log.read_text().split() if log.exists() else []) == unloaded
    if rc:
        assert "usb: cannot unload usb_storage: in use" in out.stderr
        assert "usb_storage 81920 1 uas," in out.stderr


def test_restart_reasons() -> None:
    settings = m.Settings()
    rules = _o(stdout="".join(f"{i}: {r}\n" for i, r in enumerate(m.usbguard_rules(settings), 1)))
    assert m.restart_reasons(settings, "active", rules, [KEYBOARD, HUB]) == []
    assert m.restart_reasons(settings, "inactive", _o(1), []) == ["not running (inactive)"]
    assert m.restart_reasons(settings, "", _o(1), []) == ["not running (unknown)"]
    assert m.restart_reasons(settings, "active", _o(stdout="1: allow\n"), []) == [
        "the rules it enforces differ from the profile's"]
    assert m.restart_reasons(settings, "active", _o(1), []) == ["usbguard list-rules failed (exit 1)"]
    assert m.restart_reasons(settings, "active", _o(stdout="junk\n"), []) == [
        "its rules are unreadable (usbguard list-rules)"]
    assert m.restart_reasons(settings, "active", rules, [STICK]) == [
        'authorized against the profile: 2-1 46f4:0001 "QEMU USB HARDDRIVE" [08]']
    blocked_stick = m.UsbDevice(port="2-1", vendor="46f4", product="0001", interfaces=(), authorized=False)
    assert m.restart_reasons(settings, "active", rules, [blocked_stick]) == []


# -- issue 9: judged the way USBGuard and the kernel see it (real outputs from the lab VM) ------

# `usbguard list-devices` on the lab VM (Debian 12, usbguard 1.1.2) with a QEMU keyboard and
# stick plugged, after the deploy: each line is a rule in USBGuard's own grammar.
LIST_DEVICES = """\
5: allow id 1d6b:0002 serial "0000:00:06.0" name "xHCI Host Controller" hash "ZZtycF8IRsssMSsccSwNooehxwmeedWqQnJbm1Z9gF8=" parent-hash "XokStAV3JXWqQkW0l6YD7ZPFcHse1OtwuGmVNBCe46E=" via-port "usb1" with-interface 09:00:00 with-connect-type ""
7: allow id 0627:0001 serial "68284-0000:00:06.0-1" name "QEMU USB Keyboard" hash "FEFGVJPXIBCXc4lccpvRGUu21fIoy49/afk3mkNLG0I=" parent-hash "ZZtycF8IRsssMSsccSwNooehxwmeedWqQnJbm1Z9gF8=" via-port "1-1" with-interface 03:01:01 with-connect-type "unknown"
8: block id 46f4:0001 serial "stick0" name "QEMU USB HARDDRIVE" hash "GUqhbTKsz1aXuOuMVapssJyBlrN9inM77HuMzp+PGvI=" parent-hash "3FlIlMN5/y3leZhokmNB6tNQgOvLI3t3kbF3Ez+2bPw=" via-port "2-2" with-interface 08:06:50 with-connect-type "unknown"
"""  # noqa: E501
# Interfaces of composite devices as `usbguard list-devices` prints them.
COMPOSITES = {
    "keyboard + mass storage (BadUSB-style)": ("1234:5678", ("03:01:01", "08:06:50"), "block"),
    "keyboard + vendor-specific (programmable macro pad)": ("16c0:0486", ("03:01:01", "ff:00:00"), "block"),
    "headset: audio (microphone) + HID buttons":
        ("047f:c056", ("01:01:00", "01:02:00", "01:02:00", "03:00:00"), "block"),
    "Android phone, MTP + ADB": ("18d1:4ee2", ("ff:ff:00", "ff:42:01"), "block"),
    "phone, PTP": ("18d1:4ee6", ("06:01:01",), "block"),
    "Logitech Unifying receiver (three HID interfaces)": ("046d:c52b", ("03:01:01", "03:01:02", "03:00:00"), "allow"),
    "YubiKey 5 NFC: OTP keyboard, FIDO, CCID": ("1050:0407", ("03:01:01", "03:00:00", "0b:00:00"), "allow"),
}
TERMINAL_HIGH = Profiles().resolve("terminal", "high").measure("usb")


def _rules(*texts: str) -> list[m.Rule]:
    return [m.parse_rule(t) for t in texts]


def test_list_devices_lines_parse_in_usbguard_grammar() -> None:
    rules = [m.parse_rule(line.split(": ", 1)[1]) for line in LIST_DEVICES.splitlines()]
    assert [r.target for r in rules] == ["allow", "allow", "block"]
    assert rules[1].attributes["with-interface"] == ("equals", ("03:01:01",))
    assert rules[1].attributes["name"] == ("equals", ('"QEMU USB Keyboard"',))
    assert rules[2].narrowed() and not _rules("allow with-interface one-of { 03:*:* }")[0].narrowed()


@pytest.mark.parametrize("text", [
    "permit with-interface 03:*:*",                     # no such target
    "allow with-interface one-of { 03:*:* ",            # unbalanced
    'allow name "unterminated',
    "allow colour blue",                                 # unknown attribute
    "allow id 1234:5678 id 1234:5679",                   # twice
    "allow with-interface",                              # no value
])
def test_rule_outside_the_grammar_is_an_error(text: str) -> None:
    with pytest.raises(ObservationError, match="USBGuard rule"):
        m.parse_rule(text)


@pytest.mark.parametrize("name", list(COMPOSITES))
def test_composite_devices_against_the_deployed_rules(name: str) -> None:
    device_id, interfaces, expected = COMPOSITES[name]
    rules = _rules(*m.usbguard_rules(TERMINAL_HIGH))
    decided = m.decide(rules, device_id, interfaces)
    assert (decided.target if decided else "block") == expected, (name, decided)
    vendor, product = device_id.split(":")
    device = m.UsbDevice(port="1-1", vendor=vendor, product=product,
                         interfaces=tuple(dict.fromkeys(i[:2] for i in interfaces)))
    assert m.verdict(device, TERMINAL_HIGH)[0] == expected, name


@pytest.mark.parametrize(("rule", "unsafe"), [
    ("allow with-interface one-of { 03:*:* }", "03:00:00 08:00:00"),          # keyboard + stick
    ("allow with-interface all-of { 03:*:* }", "03:00:00 08:00:00"),          # all-of: more is fine for it
    ("allow with-interface equals { 03:*:* 03:*:* }", "08:00:00 03:00:00"),   # sizes equal, both hit the 03
    ("allow with-interface none-of { 08:*:* }", "interfaces 06:00:00"),
    ("allow", "03:00:00 08:00:00"),
    ("allow id 046d:*", "id 046d:0000 interfaces 03:00:00 08:00:00"),
    ("allow with-interface { 03:01:01 08:06:50 }", "03:01:01 08:06:50"),      # generate-policy of a composite
    ("allow with-interface equals { 03:*:* }", None),                         # exactly one HID interface
    ("allow with-interface equals-ordered { 03:*:* 03:*:* }", None),
    ("allow with-interface 03:01:01", None),
    ("block with-interface one-of { 03:*:* }", None),
])
def test_unsafe_allow_rules_alone(rule: str, unsafe: str | None) -> None:
    found = m.unsafe_allow_rules(_rules(rule), ["08", "06", "ff"])
    if unsafe is None:
        assert found == {}
    else:
        assert found[rule].endswith(unsafe), found


def test_unsafe_allow_rules_in_first_match_order() -> None:
    hid = "allow with-interface one-of { 03:*:* }"
    assert m.unsafe_allow_rules(_rules("block with-interface one-of { 08:*:* 06:*:* ff:*:* }", hid),
                                ["08", "06", "ff"]) == {}
    # the old rules: storage and still image blocked first, vendor-specific (ff) got through
    old = m.unsafe_allow_rules(_rules("block with-interface one-of { 08:*:* 06:*:* }", hid), ["08", "06", "ff"])
    assert old == {hid: "interfaces 03:00:00 ff:00:00"}
    # a block narrowed by what a probe cannot know (serial) protects nothing provable
    narrowed = m.unsafe_allow_rules(_rules('block serial "X" with-interface one-of { 08:*:* }', hid), ["08"])
    assert hid in narrowed
    # the deployed rules of every shipped profile are safe for every class they do not allow
    for name, _level, settings in all_profiles():
        assert m.unsafe_allow_rules(_rules(*m.usbguard_rules(settings)), m.blocked_classes(settings)) == {}, name


def test_blocked_classes_are_every_class_not_allowed() -> None:
    classes = m.blocked_classes(TERMINAL_HIGH)
    assert len(classes) == 256 - 3 and not {"03", "09", "0b"} & set(classes)
    assert classes[:3] == ["08", "06", "ff"]
    storage = m.blocked_classes(m.Settings(storage="allow"))
    assert "08" not in storage and "06" not in storage and storage[0] == "ff"


# `usbguard-rule-parser -f /etc/usbguard/rules.conf` on the lab VM (1.1.2), first rule cut.
RULE_PARSER = """\
INPUT: # Managed by hardening (measure usb, clause 6-11). Do not edit: changes are overwritten.
OUTPUT: 
INPUT: block with-interface one-of { 08:*:* 06:*:* } label "hardening: blocked classes"
OUTPUT: block with-interface one-of { 08:*:* 06:*:* } label "hardening: blocked classes"
INPUT: allow with-interface one-of { 03:*:* } label "HID (keyboard, mouse)"
OUTPUT: allow with-interface one-of { 03:*:* } label "HID (keyboard, mouse)"
"""  # noqa: W291


def test_rule_parser_output_and_stale_side() -> None:
    rules = m.parse_rule_parser(RULE_PARSER)
    assert rules == ['block with-interface one-of { 08:*:* 06:*:* } label "hardening: blocked classes"',
                     'allow with-interface one-of { 03:*:* } label "HID (keyboard, mouse)"']
    with pytest.raises(ObservationError, match="unreadable line"):
        m.parse_rule_parser(RULE_PARSER + "ERROR: syntax\n")
    want = ["a", "b"]
    assert m.stale_rules(want, want, want) == ""
    assert "daemon not restarted" in m.stale_rules(["x", *want], want, want)
    assert "the daemon is stale" in m.stale_rules(want, want[:1], want)
    assert "from each other and from the profile" in m.stale_rules(["x"], ["y"], want)


# `usbguard get-parameter NAME` on the lab VM (1.1.2): exit 0 with the value, or exit 1.
UNKNOWN_PARAMETER = "IPC ERROR: request id=1: getParameter: PresentDevicePolicy: unknown parameter"
DAEMON_DOWN = "ERROR: IPC connect: service=usbguard: Connection refused"


def test_running_parameters() -> None:
    assert m.running_value(_o(stdout="block\n")) == "block"
    assert m.running_value(_o(1, stderr=UNKNOWN_PARAMETER)).startswith("(unread: exit 1: IPC ERROR")
    assert m.stale_parameter("ImplicitPolicyTarget", "block", "block", "block") == ""
    assert "set at run time (usbguard set-parameter); the running value is the stale one" in \
        m.stale_parameter("ImplicitPolicyTarget", "allow", "block", "block")
    assert "the file was changed and the daemon not restarted" in \
        m.stale_parameter("InsertedDevicePolicy", "apply-policy", "allow", "apply-policy")
    assert "is usbguard running?" in m.stale_parameter(
        "ImplicitPolicyTarget", m.running_value(_o(1, stderr=DAEMON_DOWN)), "block", "block")


def test_restart_reasons_running_parameters() -> None:
    settings = m.Settings()
    rules = _o(stdout="".join(f"{i}: {r}\n" for i, r in enumerate(m.usbguard_rules(settings), 1)))
    good = {"ImplicitPolicyTarget": _o(stdout="block\n"), "InsertedDevicePolicy": _o(stdout="apply-policy\n")}
    assert m.restart_reasons(settings, "active", rules, [], good) == []
    drift = {**good, "ImplicitPolicyTarget": _o(stdout="allow\n")}
    assert m.restart_reasons(settings, "active", rules, [], drift) == ["it runs with ImplicitPolicyTarget=allow"]


# /proc/modules on the lab VM after `modprobe --ignore-install` of each (addresses as root sees them).
PROC_LOADED = """\
mmc_block 57344 0 - Live 0xffffffffc0e77000
mmc_core 217088 1 mmc_block, Live 0xffffffffc0e41000
firewire_ohci 45056 0 - Live 0xffffffffc0e35000
firewire_core 86016 1 firewire_ohci, Live 0xffffffffc0e1f000
thunderbolt 385024 0 - Live 0xffffffffc0dbb000
sr_mod 28672 0 - Live 0xffffffffc0a14000
cdrom 81920 1 sr_mod, Live 0xffffffffc0bcc000
"""


def test_thunderbolt_firewire_and_removable_media_loaded() -> None:
    assert m.loaded_modules(PROC_LOADED, list(m.THUNDERBOLT_FIREWIRE_MODULES)) == [
        "thunderbolt", "firewire-ohci", "firewire-core"]
    assert m.loaded_modules(PROC_LOADED, list(m.REMOVABLE_MEDIA_MODULES)) == ["mmc_block", "sr_mod", "cdrom"]
    assert m.unload_order(PROC_LOADED, m.blocked_modules(m.Settings())) == [
        "thunderbolt", "firewire_ohci", "firewire_core", "mmc_block", "sr_mod", "cdrom"]


# `lsblk -J -o NAME,TYPE,TRAN,RM,MOUNTPOINTS` on the lab VM (QEMU's IDE CD-ROM with sr_mod loaded),
# plus an SD card with a mounted partition as lsblk prints one.
LSBLK = {"blockdevices": [
    {"name": "fd0", "type": "disk", "tran": None, "rm": True, "mountpoints": [None]},
    {"name": "sr0", "type": "rom", "tran": "ata", "rm": True, "mountpoints": [None]},
    {"name": "vda", "type": "disk", "tran": None, "rm": False, "mountpoints": ["/"]},
    {"name": "mmcblk0", "type": "disk", "tran": None, "rm": True, "mountpoints": [None],
     "children": [{"name": "mmcblk0p1", "type": "part", "tran": None, "rm": True, "mountpoints": ["/media/sd"]}]},
]}


def test_removable_media_devices() -> None:
    assert m.removable_media(LSBLK) == ["sr0 (ata, rom)", "mmcblk0 (-, disk) mounted on /media/sd"]
    assert m.removable_media({"blockdevices": [LSBLK["blockdevices"][2]]}) == []
    with pytest.raises(ObservationError, match="no device tree"):
        m.removable_media([])


def test_observe_reads_the_running_daemon_and_the_media() -> None:
    commands = m.observe(Profiles().resolve("terminal", "high"))
    for command in (m.RULES_AS_PARSED, m.LSBLK_MEDIA, *(m.get_parameter(p) for p in m.RUNNING_PARAMETERS)):
        assert command in commands
    assert m.LSBLK_MEDIA not in m.observe(type("P", (), {"measure": staticmethod(
        lambda name: m.Settings(removable_media="allow"))})())


# -- in use now: what the policy must not cut off ---------------------------------------------------

# Captured on the lab VM (terminal, high; Debian 12, util-linux 2.38.1, iproute2 6.1.0, systemd 252)
# with a QEMU USB stick (partition 1: LUKS, ext4 mounted on /srv/stick; partition 2: swap in use),
# a QEMU usb-net adapter (usb0, up with 10.0.9.15/24) and a QEMU usb-serial (ttyUSB0, with
# serial-getty@ttyUSB0 started).
LSBLK_STICK = (
    '{"blockdevices":[{"path":"/dev/fd0","name":"fd0","type":"disk","tran":null,"subsystems":"block:platform",'
    '"mountpoints":[null]},{"path":"/dev/sda","name":"sda","type":"disk","tran":"usb","subsystems":'
    '"block:scsi:usb:pci","mountpoints":[null],"children":[{"path":"/dev/sda1","name":"sda1","type":"part",'
    '"tran":null,"subsystems":"block:scsi:usb:pci","mountpoints":[null],"children":[{"path":'
    '"/dev/mapper/stickcrypt","name":"stickcrypt","type":"crypt","tran":null,"subsystems":"block",'
    '"mountpoints":["/srv/stick"]}]},{"path":"/dev/sda2","name":"sda2","type":"part","tran":null,"subsystems":'
    '"block:scsi:usb:pci","mountpoints":["[SWAP]"]}]},{"path":"/dev/sr0","name":"sr0","type":"rom","tran":"ata",'
    '"subsystems":"block:scsi:pci","mountpoints":[null]},{"path":"/dev/vda","name":"vda","type":"disk","tran":null,'
    '"subsystems":"block:virtio:pci","mountpoints":["/"]},{"path":"/dev/vdb","name":"vdb","type":"disk",'
    '"tran":null,"subsystems":"block:virtio:pci","mountpoints":[null]}]}')
SYSFS_PATHS = """\
/sys/block/dm-0|/sys/devices/virtual/block/dm-0
/sys/block/fd0|/sys/devices/platform/floppy.0/block/fd0
/sys/block/loop0|/sys/devices/virtual/block/loop0
/sys/block/sda|/sys/devices/pci0000:00/0000:00:06.0/usb2/2-1/2-1:1.0/host2/target2:0:0/2:0:0:0/block/sda
/sys/block/sr0|/sys/devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block/sr0
/sys/block/vda|/sys/devices/pci0000:00/0000:00:03.0/virtio0/block/vda
/sys/block/vdb|/sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vdb
/sys/class/net/eth0|/sys/devices/pci0000:00/0000:00:05.0/virtio2/net/eth0
/sys/class/net/lo|/sys/devices/virtual/net/lo
/sys/class/net/usb0|/sys/devices/pci0000:00/0000:00:06.0/usb1/1-2/1-2:1.1/net/usb0
/sys/class/tty/ttyUSB0|/sys/devices/pci0000:00/0000:00:06.0/usb1/1-4/1-4:1.0/ttyUSB0/tty/ttyUSB0
"""
LISTING = """\
1-2|0525|a4a2|1|RNDIS/QEMU USB Network Device|02 0a
1-4|0403|6001|1|QEMU USB SERIAL|ff
2-1|46f4|0001|1|QEMU USB HARDDRIVE|08
usb1|1d6b|0002|1|xHCI Host Controller|09
usb2|1d6b|0003|1|xHCI Host Controller|09
"""
IP_ADDR = (
    '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":'
    '"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":'
    '"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":'
    '"lo","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"::1",'
    '"prefixlen":128,"scope":"host","noprefixroute":true,"valid_life_time":4294967295,"preferred_life_time":'
    '4294967295}]},{"ifindex":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,'
    '"qdisc":"fq_codel","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":'
    '"52:54:00:a7:8b:66","broadcast":"ff:ff:ff:ff:ff:ff","permaddr":"52:54:00:12:34:56","altnames":["enp0s5",'
    '"ens5"],"addr_info":[{"family":"inet","local":"10.0.2.15","prefixlen":24,"broadcast":"10.0.2.255","scope":'
    '"global","label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6",'
    '"local":"fe80::5054:ff:fe12:3456","prefixlen":64,"scope":"link","valid_life_time":4294967295,'
    '"preferred_life_time":4294967295}]},{"ifindex":3,"ifname":"usb0","flags":["BROADCAST","MULTICAST","UP",'
    '"LOWER_UP"],"mtu":1500,"qdisc":"fq_codel","operstate":"UNKNOWN","group":"default","txqlen":1000,'
    '"link_type":"ether","address":"c2:86:dc:79:37:f9","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":'
    '"inet","local":"10.0.9.15","prefixlen":24,"scope":"global","label":"usb0","valid_life_time":4294967295,'
    '"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::c086:dcff:fe79:37f9","prefixlen":64,'
    '"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]')
# usb0 as it first appears: down, no address.
IP_ADDR_USB0_DOWN = (
    '[{"ifindex":3,"ifname":"usb0","flags":["BROADCAST","MULTICAST"],"mtu":1500,"qdisc":"noop","operstate":'
    '"DOWN","group":"default","txqlen":1000,"link_type":"ether","address":"c2:86:dc:79:37:f9","broadcast":'
    '"ff:ff:ff:ff:ff:ff","addr_info":[]}]')
IP_ROUTE = (
    '[{"dst":"default","gateway":"10.0.2.2","dev":"eth0","protocol":"static","flags":[]},{"dst":"10.0.2.0/24",'
    '"dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.0.2.15","flags":[]},{"dst":"10.0.9.0/24",'
    '"dev":"usb0","protocol":"kernel","scope":"link","prefsrc":"10.0.9.15","flags":[]}]')
IP6_ROUTE = (
    '[{"dst":"fe80::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},{"dst":'
    '"fe80::/64","dev":"usb0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},{"dst":"default",'
    '"gateway":"fe80::2","dev":"eth0","protocol":"ra","metric":1024,"flags":[],"expires":1586,"pref":"medium"}]')
UNITS = ('[{"unit":"serial-getty@ttyS0.service","load":"loaded","active":"active","sub":"running","description":'
         '"Serial Getty on ttyS0"},{"unit":"serial-getty@ttyUSB0.service","load":"loaded","active":"active",'
         '"sub":"running","description":"Serial Getty on ttyUSB0"}]')
LAB_CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet\n"


def _lab() -> tuple[dict[str, str], list[m.UsbDevice]]:
    return m.parse_sysfs_paths(SYSFS_PATHS), m.parse_sysfs_listing(LISTING)


def test_usb_port_from_sysfs_paths() -> None:
    paths, _ = _lab()
    assert m.usb_port(paths["/sys/block/sda"]) == "2-1"
    assert m.usb_port(paths["/sys/class/net/usb0"]) == "1-2"
    assert m.usb_port(paths["/sys/class/tty/ttyUSB0"]) == "1-4"
    for link in ("/sys/block/vda", "/sys/block/sr0", "/sys/block/dm-0", "/sys/class/net/eth0", "/sys/class/net/lo"):
        assert m.usb_port(paths[link]) is None, link
    assert m.usb_port("/sys/devices/pci0000:00/0000:00:14.0/usb3/3-2/3-2.4/3-2.4.1/3-2.4.1:1.0/net/eth1") == "3-2.4.1"
    with pytest.raises(ObservationError, match="unreadable line"):
        m.parse_sysfs_paths("sda /sys/devices/x\n")


def test_mounted_usb_stick_through_crypt_and_swap_is_refused() -> None:
    """The real lab stack: ext4 on LUKS on a partition, and swap on the other partition."""
    paths, devices = _lab()
    found = m.storage_in_use(json.loads(LSBLK_STICK), paths, devices, m.Settings())
    assert len(found) == 2, found
    crypt, swap = found
    assert crypt.startswith("/dev/mapper/stickcrypt mounted on /srv/stick "
                            "(crypt /dev/mapper/stickcrypt on part /dev/sda1 on USB disk /dev/sda): ")
    assert "storage: block" in crypt and "set storage: allow in the profile" in crypt
    assert 'USBGuard would block USB device 2-1 46f4:0001 "QEMU USB HARDDRIVE" [08]' in crypt
    assert 'vendor: "46f4", product: "0001"' in crypt and "unmount it" in crypt
    assert swap.startswith("/dev/sda2 in use as swap (part /dev/sda2 on USB disk /dev/sda): ")
    assert "would not boot" not in crypt + swap


def test_mounted_usb_stick_allowed_by_the_profile_is_not_refused() -> None:
    paths, devices = _lab()
    lsblk = json.loads(LSBLK_STICK)
    allowed = m.Settings(storage="allow", allow=[m.Device(name="stick", vendor="46f4", product="0001")])
    assert m.storage_in_use(lsblk, paths, devices, allowed) == []
    assert m.storage_in_use(lsblk, paths, devices, m.Settings(storage="allow", usbguard=False)) == []
    # Storage allowed but the stick not allowed by id: USBGuard still allows class 08 then.
    assert m.storage_in_use(lsblk, paths, devices, m.Settings(storage="allow")) == []
    # Allowed by id only: the driver block (storage: block) still cuts it off.
    by_id = m.storage_in_use(lsblk, paths, devices, m.Settings(allow=allowed.allow))
    assert by_id and all("USBGuard" not in f and "storage: block" in f for f in by_id)


def test_unmounted_usb_stick_is_not_refused() -> None:
    paths, devices = _lab()
    lsblk = json.loads(LSBLK_STICK.replace('"/srv/stick"', "null").replace('"[SWAP]"', "null"))
    assert m.storage_in_use(lsblk, paths, devices, m.Settings()) == []


# The same stick on the lab VM with LVM inside the LUKS container (a device-mapper linear target with
# an LVM- uuid, as lvm2 creates; the guest has no lvm2): /dev/sda only.
LSBLK_STICK_LVM_SDA = (
    '{"path":"/dev/sda","name":"sda","type":"disk","tran":"usb","subsystems":"block:scsi:usb:pci","mountpoint'
    's":[null],"children":[{"path":"/dev/sda1","name":"sda1","type":"part","tran":null,"subsystems":"block:sc'
    'si:usb:pci","mountpoints":[null],"children":[{"path":"/dev/mapper/sda1_crypt","name":"sda1_crypt","type"'
    ':"crypt","tran":null,"subsystems":"block","mountpoints":[null],"children":[{"path":"/dev/mapper/vgstick-'
    'data","name":"vgstick-data","type":"lvm","tran":null,"subsystems":"block","mountpoints":["/srv/stick"]}]'
    '}]},{"path":"/dev/sda2","name":"sda2","type":"part","tran":null,"subsystems":"block:scsi:usb:pci","mount'
    'points":["[SWAP]"]}]}')


def test_mounted_lvm_on_luks_on_a_usb_stick_is_refused() -> None:
    paths, devices = _lab()
    lsblk = {"blockdevices": [json.loads(LSBLK_STICK_LVM_SDA)]}
    data, swap = m.storage_in_use(lsblk, paths, devices, m.Settings())
    assert data.startswith("/dev/mapper/vgstick-data mounted on /srv/stick (lvm /dev/mapper/vgstick-data on crypt "
                           "/dev/mapper/sda1_crypt on part /dev/sda1 on USB disk /dev/sda): ")
    assert swap.startswith("/dev/sda2 in use as swap")


def _node(path: str, type_: str, mounts: list[str | None], children: list[dict[str, object]] | None = None,
          tran: str | None = None, subsystems: str = "block") -> dict[str, object]:
    node: dict[str, object] = {"path": path, "name": path.rsplit("/", 1)[1], "type": type_, "tran": tran,
                               "subsystems": subsystems, "mountpoints": mounts}
    if children:
        node["children"] = children
    return node


USB = "block:scsi:usb:pci"


def test_root_on_lvm_on_luks_on_a_usb_disk_is_refused() -> None:
    """A host booted from a USB disk: /boot on the first partition, / on LVM inside LUKS."""
    root = _node("/dev/mapper/vg0-root", "lvm", ["/"])
    disk = _node("/dev/sdb", "disk", [None], tran="usb", subsystems=USB, children=[
        _node("/dev/sdb1", "part", ["/boot"], subsystems=USB),
        _node("/dev/sdb2", "part", [None], subsystems=USB, children=[
            _node("/dev/mapper/sdb2_crypt", "crypt", [None], children=[root])])])
    paths = {"/sys/block/sdb": "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-3/2-3:1.0/host3/target3:0:0/"
                               "3:0:0:0/block/sdb"}
    devices = [m.UsbDevice(port="2-3", vendor="0781", product="5581", interfaces=("08",), name="Ultra")]
    found = m.storage_in_use({"blockdevices": [disk]}, paths, devices, m.Settings())
    assert [f.split(" (", 1)[0] for f in found] == ["/dev/sdb1 mounted on /boot", "/dev/mapper/vg0-root mounted on /"]
    assert "(lvm /dev/mapper/vg0-root on crypt /dev/mapper/sdb2_crypt on part /dev/sdb2 on USB disk /dev/sdb)" \
        in found[1]
    assert all("the host would not boot again" in f for f in found)


def test_md_raid_across_a_usb_and_a_sata_disk_is_refused_once_per_usb_disk() -> None:
    """lsblk shows an md array under each of its members; only the USB member's is refused."""
    def member(disk: str, tran: str, subsystems: str) -> dict[str, object]:
        return _node(f"/dev/{disk}", "disk", [None], tran=tran, subsystems=subsystems, children=[
            _node(f"/dev/{disk}1", "part", [None], subsystems=subsystems,
                  children=[_node("/dev/md0", "raid1", ["/srv/data"])])])
    lsblk = {"blockdevices": [member("sda", "sata", "block:scsi:pci"), member("sdc", "usb", USB)]}
    found = m.storage_in_use(lsblk, {}, [], m.Settings())
    assert len(found) == 1
    assert found[0].startswith("/dev/md0 mounted on /srv/data (raid1 /dev/md0 on part /dev/sdc1 on USB disk /dev/sdc)")
    # Unknown USB port: USBGuard's verdict cannot be judged, which is a reason too.
    assert "cannot be judged" in found[0]


def test_firewire_and_thunderbolt_storage() -> None:
    fw = _node("/dev/sdd", "disk", ["/mnt/fw"], tran="sbp", subsystems="block:scsi:firewire:pci")
    tb = _node("/dev/nvme1n1", "disk", ["/mnt/tb"], tran="nvme", subsystems="block:nvme:pci:thunderbolt")
    found = m.storage_in_use({"blockdevices": [fw, tb]}, {}, [], m.Settings())
    assert [f.split(": ", 1)[0] for f in found] == [
        "/dev/sdd mounted on /mnt/fw (firewire disk /dev/sdd)",
        "/dev/nvme1n1 mounted on /mnt/tb (thunderbolt disk /dev/nvme1n1)"]
    assert all("block_thunderbolt_firewire: false" in f for f in found)
    assert m.storage_in_use({"blockdevices": [fw, tb]}, {}, [], m.Settings(block_thunderbolt_firewire=False)) == []


def test_nvme_tunnelled_over_thunderbolt_is_thunderbolt_storage() -> None:
    """lsblk says only block:nvme:pci; the kernel marks the PCI devices behind the external-facing
    (Thunderbolt/USB4) port removable."""
    nvme = _node("/dev/nvme1n1", "disk", [None], tran="nvme", subsystems="block:nvme:pci", children=[
        _node("/dev/nvme1n1p1", "part", ["/srv/archive"], tran="nvme", subsystems="block:nvme:pci")])
    internal = _node("/dev/nvme0n1", "disk", ["/"], tran="nvme", subsystems="block:nvme:pci")
    paths = {"/sys/block/nvme1n1": "/sys/devices/pci0000:00/0000:00:07.0/0000:20:00.0/0000:21:01.0/0000:22:00.0/"
                                   "nvme/nvme1/nvme1n1",
             "/sys/block/nvme0n1": "/sys/devices/pci0000:00/0000:00:06.0/0000:01:00.0/nvme/nvme0/nvme0n1"}
    external = m.parse_external_pci("/sys/devices/pci0000:00/0000:00:07.0/0000:20:00.0\n"
                                    "/sys/devices/pci0000:00/0000:00:07.0/0000:20:00.0/0000:21:01.0\n")
    [found] = m.storage_in_use({"blockdevices": [internal, nvme]}, paths, [], m.Settings(), external)
    assert found.startswith("/dev/nvme1n1p1 mounted on /srv/archive (part /dev/nvme1n1p1 on thunderbolt disk "
                            "/dev/nvme1n1): the profile blocks the thunderbolt drivers")
    assert m.storage_in_use({"blockdevices": [internal, nvme]}, paths, [], m.Settings()) == []
    with pytest.raises(ObservationError, match="removable PCI"):
        m.parse_external_pci("removable\n")


@pytest.mark.parametrize("lsblk", [
    [], {"blockdevices": None}, {"blockdevices": [{"name": "sda"}]},
    {"blockdevices": [{"path": "/dev/sda", "type": "disk", "tran": "usb", "subsystems": USB,
                       "mountpoints": "/srv/stick"}]},
    {"blockdevices": [_node("/dev/sda", "disk", [None], tran="usb", subsystems=USB, children=[{"path": 1}])]},
])
def test_unreadable_lsblk_is_an_error(lsblk: object) -> None:
    with pytest.raises(ObservationError, match="lsblk"):
        m.storage_in_use(lsblk, {}, [], m.Settings())


def test_usb_network_adapter_in_use_is_refused() -> None:
    paths, devices = _lab()
    routes = [json.loads(IP_ROUTE), json.loads(IP6_ROUTE)]
    [found] = m.network_in_use(json.loads(IP_ADDR), routes, paths, devices, m.Settings())
    assert found.startswith("network interface usb0 is up with 10.0.9.15/24 (routes 10.0.9.0/24): USBGuard would "
                            'block USB device 1-2 0525:a4a2 "RNDIS/QEMU USB Network Device" [02 0a]')
    assert 'vendor: "0525", product: "a4a2"' in found and "take the interface down" in found
    allowed = m.Settings(allow=[m.Device(name="usb-net", vendor="0525", product="a4a2")])
    assert m.network_in_use(json.loads(IP_ADDR), routes, paths, devices, allowed) == []
    assert m.network_in_use(json.loads(IP_ADDR), routes, paths, devices, m.Settings(usbguard=False)) == []
    assert m.network_in_use(json.loads(IP_ADDR_USB0_DOWN), routes, paths, devices, m.Settings()) == []


def test_usb_network_adapter_up_with_a_route_only_is_in_use() -> None:
    paths, devices = _lab()
    addr = json.loads(IP_ADDR_USB0_DOWN)
    addr[0]["flags"].append("UP")
    routes = [[{"dst": "192.0.2.0/24", "gateway": "10.0.9.2", "dev": "usb0", "flags": []}]]
    [found] = m.network_in_use(addr, routes, paths, devices, m.Settings())
    assert "usb0 is up with no address (routes 192.0.2.0/24 via 10.0.9.2)" in found
    # Only a link-local address and its fe80::/64 route: not in use.
    addr[0]["addr_info"] = [{"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]
    assert m.network_in_use(addr, [json.loads(IP6_ROUTE)], paths, devices, m.Settings()) == []


@pytest.mark.parametrize("addr", [{}, [{"ifname": "usb0"}], [{"ifname": "usb0", "flags": [], "addr_info": [{}]}],
                                  [{"ifname": "wlan9", "flags": ["UP"], "addr_info": []}]])
def test_unreadable_ip_output_is_an_error(addr: object) -> None:
    paths, devices = _lab()
    with pytest.raises(ObservationError):
        m.network_in_use(addr, [[]], paths, devices, m.Settings())
    with pytest.raises(ObservationError, match="ip -j route"):
        m.network_in_use(json.loads(IP_ADDR), [{"dst": "x"}], paths, devices, m.Settings())


def test_usb_serial_console_in_use_is_refused() -> None:
    paths, devices = _lab()
    [getty] = m.serial_consoles_in_use(LAB_CMDLINE, json.loads(UNITS), [], paths, devices, m.Settings())
    assert getty.startswith("serial console ttyUSB0 (serial-getty@ttyUSB0.service active): USBGuard would block "
                            'USB device 1-4 0403:6001 "QEMU USB SERIAL" [ff]')
    assert 'vendor: "0403", product: "6001"' in getty
    cmdline = "root=/dev/vda console=tty0 console=ttyACM0,115200n8\n"
    [acm] = m.serial_consoles_in_use(cmdline, [], [], paths, devices, m.Settings())
    assert acm.startswith("serial console ttyACM0 (console=ttyACM0 on the kernel command line) is not attached now")
    sessions = m.parse_sessions('[{"session":"3","uid":0,"user":"root","seat":null,"tty":"ttyUSB0"}]')
    [login] = m.serial_consoles_in_use(LAB_CMDLINE, [], sessions, paths, devices, m.Settings())
    assert login.startswith("serial console ttyUSB0 (login session 3 of root): USBGuard would block")
    allowed = m.Settings(allow=[m.Device(name="console", vendor="0403", product="6001")])
    assert m.serial_consoles_in_use(LAB_CMDLINE, json.loads(UNITS), sessions, paths, devices, allowed) == []
    assert m.serial_consoles_in_use(LAB_CMDLINE, json.loads(UNITS), [], paths, devices,
                                    m.Settings(usbguard=False)) == []
    # The lab's own serial console (ttyS0) is not a USB one.
    assert m.serial_consoles_in_use(LAB_CMDLINE, json.loads(UNITS)[:1], [], paths, devices, m.Settings()) == []


def test_sessions_and_units_unreadable_are_errors() -> None:
    assert m.parse_sessions(m.NO_USB_TTY + "\n") == []
    assert m.parse_sessions("[]\n") == []
    for bad in ("SESSION UID USER\n", '{"a": 1}'):
        with pytest.raises(ObservationError, match="loginctl"):
            m.parse_sessions(bad)
    with pytest.raises(ObservationError, match="list-units"):
        m.serial_consoles_in_use("", {"unit": "x"}, [], {}, [], m.Settings())


def test_observe_reads_what_is_in_use() -> None:
    commands = m.observe(Profiles().resolve("terminal", "high"))
    for command in (m.LSBLK_STACK, m.SYSFS_PATHS, m.IP_ADDR, *m.IP_ROUTES, m.KERNEL_CMDLINE, m.SERIAL_GETTYS,
                    m.SESSIONS):
        assert command in commands
        assert subprocess.run(["sh", "-n", "-c", command], check=False).returncode == 0, command
    assert len(commands) == len(set(commands))
    no_guard = m.in_use_observations(m.Settings(usbguard=False))
    assert no_guard == [m.LSBLK_STACK, m.SYSFS_PATHS, m.EXTERNAL_PCI]
    assert subprocess.run(["sh", "-n", "-c", m.EXTERNAL_PCI], check=False).returncode == 0
    assert m.in_use_observations(m.Settings(usbguard=False, storage="allow", block_thunderbolt_firewire=False)) == []


def test_sessions_command_reads_loginctl_only_with_a_usb_tty(tmp_path: Path) -> None:
    ttys, bin_ = tmp_path / "tty", tmp_path / "bin"
    ttys.mkdir()
    bin_.mkdir()
    (bin_ / "loginctl").write_text("#!/bin/sh\necho \"$*\"\n")
    (bin_ / "loginctl").chmod(0o755)
    command = m.SESSIONS.replace("/sys/class/tty", str(ttys))
    env = {"PATH": f"{bin_}:/usr/bin:/bin"}
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=False, env=env)
    assert (out.returncode, out.stdout.strip()) == (0, m.NO_USB_TTY)
    (ttys / "ttyUSB0").touch()
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=False, env=env)
    assert (out.returncode, out.stdout.strip()) == (0, "list-sessions -o json")


class _Obs:
    def __init__(self, results: dict[str, tuple[int, str]]) -> None:
        self.results = results

    def run(self, command: str) -> Observation:
        rc, stdout = self.results[command]
        return _o(rc, stdout, command=command)


def _lab_obs(**changes: tuple[int, str]) -> _Obs:
    results = {m.LSBLK_STACK: (0, LSBLK_STICK), m.SYSFS_PATHS: (0, SYSFS_PATHS), m.IP_ADDR: (0, IP_ADDR),
               m.IP_ROUTES[0]: (0, IP_ROUTE), m.IP_ROUTES[1]: (0, IP6_ROUTE), m.KERNEL_CMDLINE: (0, LAB_CMDLINE),
               m.SERIAL_GETTYS: (0, UNITS), m.SESSIONS: (0, "[]"), m.EXTERNAL_PCI: (0, "")}
    for name, value in changes.items():
        results[getattr(m, name)] = value
    return _Obs(results)


def test_deploy_gathers_every_use_and_refuses_unreadable_output() -> None:
    from deploys import usb as deploy

    _, devices = _lab()
    found = deploy._in_use(m.Settings(), _lab_obs(), devices)  # type: ignore[arg-type]
    assert [f.split(" ", 1)[0] for f in found] == ["/dev/mapper/stickcrypt", "/dev/sda2", "network", "serial"]
    for name, value, error in [("LSBLK_STACK", (0, "lsblk: unknown column"), "lsblk printed no JSON"),
                               ("LSBLK_STACK", (1, ""), "lsblk failed"),
                               ("IP_ADDR", (0, "1: lo: <LOOPBACK>"), "ip -j addr printed no JSON"),
                               ("SYSFS_PATHS", (0, "garbage\n"), "sysfs device paths: unreadable"),
                               ("SESSIONS", (1, ""), "loginctl list-sessions failed"),
                               ("EXTERNAL_PCI", (0, "0000:20:00.0\n"), "removable PCI devices: unreadable"),
                               ("SERIAL_GETTYS", (0, "UNIT LOAD ACTIVE"), "systemctl list-units printed no JSON")]:
        with pytest.raises((ObservationError, ValueError), match=error):
            deploy._in_use(m.Settings(), _lab_obs(**{name: value}), devices)  # type: ignore[arg-type]
