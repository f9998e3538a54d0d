"""encryption (6-10): desired state, lockout refusal and the block-device readings, without a host."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from hardening import ROOT
from hardening.measures import encryption as measure
from hardening.profiles import Profiles
from tests.helpers import cli, one_line_error

LUKS_ROOT = [{"name": "vda", "path": "/dev/vda", "type": "disk", "fstype": None, "mountpoint": None,
              "children": [
                  {"name": "vda1", "path": "/dev/vda1", "type": "part", "fstype": "ext4", "mountpoint": "/boot"},
                  {"name": "vda2", "path": "/dev/vda2", "type": "part", "fstype": "crypto_LUKS",
                   "mountpoint": None, "children": [
                       {"name": "root_crypt", "path": "/dev/mapper/root_crypt", "type": "crypt",
                        "fstype": "ext4", "mountpoint": "/"}]},
                  {"name": "vda3", "path": "/dev/vda3", "type": "part", "fstype": "swap",
                   "mountpoint": "[SWAP]"}]}]
PLAIN_ROOT = [{"name": "vda", "path": "/dev/vda", "type": "disk", "fstype": "ext4", "mountpoint": "/"}]


def test_sshd_dropin() -> None:
    text = measure.sshd_dropin(measure.Settings(ssh_ciphers=["aes256-gcm@openssh.com", "aes256-ctr"],
                                                ssh_macs=["hmac-sha2-512-etm@openssh.com"]))
    assert "Ciphers aes256-gcm@openssh.com,aes256-ctr\n" in text
    assert text.endswith("MACs hmac-sha2-512-etm@openssh.com\n")


@pytest.mark.parametrize("bad", [{"ssh_ciphers": []}, {"ssh_ciphers": ["aes256-ctr\nCiphers 3des-cbc"]},
                                 {"ssh_macs": ["hmac sha1"]}, {"root": "yes"}])
def test_invalid_values_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        measure.Settings(**bad)  # type: ignore[arg-type]


def test_lockout_refused_when_the_client_cannot_speak_the_algorithms() -> None:
    assert measure.lockout_reason(measure.Settings()) is None
    assert measure.lockout_reason(measure.Settings(ssh_ciphers=["chacha20-poly1305@openssh.com"]))
    assert measure.lockout_reason(measure.Settings(ssh_macs=["umac-128-etm@openssh.com"]))


def test_profiles() -> None:
    assert Profiles().resolve("terminal").measure("encryption").root == "required"
    assert Profiles().resolve("server").measure("encryption").root == "optional"
    assert Profiles().resolve("server", "high").measure("encryption").swap == "required"


def test_root_chain() -> None:
    chain = measure.chain_to(LUKS_ROOT, "/")
    assert [n["name"] for n in chain] == ["vda", "vda2", "root_crypt"]
    assert measure.encrypted(chain)
    assert measure.describe(chain) == "vda [disk] > vda2 (crypto_LUKS) [part] > root_crypt (ext4) [crypt]"
    assert not measure.encrypted(measure.chain_to(PLAIN_ROOT, "/"))
    assert measure.chain_to([], "/") == []


def test_swaps() -> None:
    swaps = measure.parse_swaps("Filename Type Size Used Priority\n/dev/vda3 partition 1 0 -2\n"
                                "/dev/zram0 partition 1 0 100\n/swapfile file 1 0 -3\n")
    assert [s["name"] for s in swaps] == ["/dev/vda3", "/dev/zram0", "/swapfile"]
    assert not measure.swap_ok("/dev/vda3", "partition", LUKS_ROOT)
    assert measure.swap_ok("/dev/zram0", "partition", LUKS_ROOT)
    root_chain = measure.chain_to(LUKS_ROOT, "/dev/mapper/root_crypt", "path")
    assert measure.swap_ok("/swapfile", "file", LUKS_ROOT, root_chain)
    assert not measure.swap_ok("/swapfile", "file", PLAIN_ROOT, measure.chain_to(PLAIN_ROOT, "/dev/vda", "path"))


def test_hardware_verdicts() -> None:
    assert measure.hardware_verdict("ignore", False)[0] == "not_applicable"
    assert measure.hardware_verdict("required", False)[0] == "fail"
    assert measure.hardware_verdict("required", True) == ("pass", "")
    verdict, note = measure.hardware_verdict("expected", False)
    assert verdict == "advisory" and "absent" in note    # expected: shown, never a pass


def test_secure_boot_reading() -> None:
    assert measure.secure_boot_enabled("SecureBoot enabled\n", "") is True
    assert measure.secure_boot_enabled("SecureBoot disabled\n", "") is False
    assert measure.secure_boot_enabled("", "   6   0   0   0   1\n") is True
    assert measure.secure_boot_enabled("", "   6   0   0   0   0\n") is False
    assert measure.secure_boot_enabled("", "") is None


def test_lsblk_unreadable_is_an_error() -> None:
    assert measure.parse_lsblk(0, '{"blockdevices": []}') == []
    for rc, out in ((0, ""), (0, "lsblk: unknown column"), (0, "[]"), (0, '{"devices": []}'), (1, "{}")):
        with pytest.raises(ValueError):
            measure.parse_lsblk(rc, out)


def test_commands_of_this_machine() -> None:
    """The declared commands run here (read-only) and their output parses."""
    import shutil
    import subprocess
    if shutil.which("lsblk") is None:
        pytest.skip("no lsblk here")
    out = subprocess.run(["sh", "-c", measure.LSBLK], capture_output=True, text=True)
    assert isinstance(measure.parse_lsblk(out.returncode, out.stdout), list)
    out = subprocess.run(["sh", "-c", measure.SWAP_FILE_SOURCES], capture_output=True, text=True)
    assert out.returncode == 0 and isinstance(measure.parse_swap_sources(out.stdout), dict)


def test_swap_sources() -> None:
    assert measure.parse_swap_sources("/swapfile\t/dev/mapper/root_crypt\n/other\t\n") == {
        "/swapfile": "/dev/mapper/root_crypt", "/other": ""}


def test_observe_follows_the_profile() -> None:
    from hardening.measures import _sshd
    terminal = measure.observe(Profiles().resolve("terminal"))
    assert terminal[:len(_sshd.OBSERVE)] == _sshd.OBSERVE
    assert {measure.LSBLK, measure.ROOT_SOURCE, measure.TPM_PRESENT, measure.MOKUTIL} <= set(terminal)
    assert measure.SWAPS not in terminal                         # swap optional at medium
    server = measure.observe(Profiles().resolve("server"))
    assert server == _sshd.OBSERVE                               # root optional, hardware ignored
    high = measure.observe(Profiles().resolve("server", "high"))
    assert {measure.LSBLK, measure.SWAPS, measure.SWAP_FILE_SOURCES} <= set(high)
    assert measure.TPM_PRESENT not in high


def test_defaults_are_the_base_profile() -> None:
    """base.yaml names no encryption settings: the defaults are the baseline (server: no override)."""
    assert Profiles().resolve("server").measure("encryption") == measure.Settings()


# Real outputs of a lab VM (Debian 12): a plain dm-crypt swap on the data disk and a dm-crypt
# filesystem on a loop device mounted at /srv/pii. /proc/swaps names the swap /dev/dm-0, lsblk's
# PATH is /dev/mapper/swapc (KNAME dm-0); findmnt names the data device /dev/mapper/piic.
DM_LSBLK_TEXT = (
    '{"blockdevices": [{"name": "fd0", "kname": "fd0", "path": "/dev/fd0", "type": "disk", "fstype": '
    'null, "mountpoint": null}, {"name": "loop0", "kname": "loop0", "path": "/dev/loop0", "type": '
    '"loop", "fstype": null, "mountpoint": null, "children": [{"name": "piic", "kname": "dm-1", '
    '"path": "/dev/mapper/piic", "type": "crypt", "fstype": "ext4", "mountpoint": "/srv/pii"}]}, '
    '{"name": "sr0", "kname": "sr0", "path": "/dev/sr0", "type": "rom", "fstype": null, "mountpoint":'
    ' null}, {"name": "vda", "kname": "vda", "path": "/dev/vda", "type": "disk", "fstype": "ext4", '
    '"mountpoint": "/"}, {"name": "vdb", "kname": "vdb", "path": "/dev/vdb", "type": "disk", '
    '"fstype": null, "mountpoint": null, "children": [{"name": "swapc", "kname": "dm-0", "path": '
    '"/dev/mapper/swapc", "type": "crypt", "fstype": "swap", "mountpoint": "[SWAP]"}]}]}'
)
DM_SWAPS = ("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
            "/dev/dm-0                               partition\t1048572\t\t0\t\t-2\n")


def test_swap_on_device_mapper_is_read_by_kname() -> None:
    tree = measure.parse_lsblk(0, DM_LSBLK_TEXT)
    swaps = measure.parse_swaps(DM_SWAPS)
    assert swaps == [{"name": "/dev/dm-0", "type": "partition"}]
    assert measure.chain_to(tree, "/dev/dm-0", "path") == []     # the old, false reading
    assert measure.describe(measure.device_chain(tree, "/dev/dm-0")) == "vdb [disk] > swapc (swap) [crypt]"
    assert measure.swap_ok("/dev/dm-0", "partition", tree)
    assert measure.swap_ok("/dev/mapper/swapc", "partition", tree)
    assert not measure.swap_ok("/dev/vda", "partition", tree)   # the plain root disk
    assert measure.device_chain(tree, "/dev/dm-9") == []


def test_personal_data_devices() -> None:
    tree = measure.parse_lsblk(0, DM_LSBLK_TEXT)
    assert measure.encrypted(measure.device_chain(tree, "/dev/mapper/piic"))
    assert measure.encrypted(measure.device_chain(tree, "/dev/mapper/piic[/sub]"))   # bind mount
    assert not measure.encrypted(measure.device_chain(tree, "/dev/vda"))
    assert measure.personal_data_required(measure.Settings(root="required"))
    assert not measure.personal_data_required(measure.Settings())
    command = measure.data_source("/srv/pii data")
    assert "'/srv/pii data'" in command and "findmnt -n -o SOURCE -T" in command


def test_personal_data_paths_come_from_auth() -> None:
    high = Profiles().resolve("server", "high")
    assert measure.personal_data_paths(high) == []              # shipped: not configured
    assert not any(c.startswith("p=") for c in measure.observe(high))


# -- swap with a random key, the data disk, the operator's flag ------------------------------------

PLAIN_SWAP = [{"name": "vda", "kname": "vda", "path": "/dev/vda", "type": "disk", "fstype": "ext4", "mountpoint": "/"},
              {"name": "vdc", "kname": "vdc", "path": "/dev/vdc", "type": "disk", "fstype": None, "mountpoint": None,
               "children": [{"name": "vdc1", "kname": "vdc1", "path": "/dev/vdc1", "type": "part",
                             "fstype": "swap", "mountpoint": "[SWAP]"}]}]
IDS = [{"path": "/dev/vdc", "kname": "vdc", "type": "disk", "fstype": None, "uuid": None, "partuuid": None,
        "children": [{"path": "/dev/vdc1", "kname": "vdc1", "type": "part", "fstype": "swap",
                      "uuid": "1ba66885-99e3-41e0-ac57-2366c48bafd6", "partuuid": "1a2b3c4d-01"}]},
       {"path": "/dev/vdd", "kname": "vdd", "type": "disk", "fstype": "swap", "uuid": "u-vdd", "partuuid": None}]
BY_ID = {"/dev/disk/by-id/virtio-raid-a": "/dev/vdc", "/dev/disk/by-id/virtio-raid-a-part1": "/dev/vdc1",
         "/dev/disk/by-id/wwn-0x5000": "/dev/vdd", "/dev/disk/by-id/virtio-raid-b": "/dev/vdd"}
FSTAB_RAW = [{"source": "/dev/vda", "target": "/", "fstype": "ext4", "options": "defaults"},
             {"source": "UUID=1ba66885-99e3-41e0-ac57-2366c48bafd6", "target": "none", "fstype": "swap",
              "options": "sw"}]
FSTAB_EVAL = [FSTAB_RAW[0], {**FSTAB_RAW[1], "source": "/dev/vdc1"}]
FSTAB_TEXT = "/dev/vda / ext4 defaults 0 1\nUUID=1ba66885-99e3-41e0-ac57-2366c48bafd6 none swap sw 0 0\n"
SWAPS = [{"name": "/dev/vdc1", "type": "partition"}]
RANDOM_UNIT = ("/lib/systemd/systemd-cryptsetup attach 'cswap-1a2b3c4d-01' '/dev/disk/by-partuuid/1a2b3c4d-01' "
               "'/dev/urandom' 'swap,cipher=aes-xts-plain64,size=512'")
DISK = measure.DataDisk(device="/dev/disk/by-id/virtio-spare", mount_point="/srv/pii")


def _plan(swaps=SWAPS, tree=PLAIN_SWAP, raw=FSTAB_RAW, evaluated=FSTAB_EVAL, units=None, files=None,
          fstab_files=None) -> measure.SwapPlan:  # type: ignore[no-untyped-def]
    return measure.swap_plan(swaps, tree, IDS, BY_ID, raw, evaluated, units or {}, files or {}, fstab_files or {})


def test_a_plain_swap_partition_is_named_by_its_partuuid_never_its_swap_uuid() -> None:
    plan = _plan()
    assert plan.refusals == []
    [change] = plan.changes
    assert change == measure.SwapChange("/dev/vdc1", "PARTUUID=1a2b3c4d-01", "cswap-1a2b3c4d-01",
                                        "1ba66885-99e3-41e0-ac57-2366c48bafd6", True,
                                        ("UUID=1ba66885-99e3-41e0-ac57-2366c48bafd6",))
    assert change.crypttab_line() == ("cswap-1a2b3c4d-01 PARTUUID=1a2b3c4d-01 /dev/urandom "
                                      "swap,cipher=aes-xts-plain64,size=512")
    assert change.fstab_line() == "/dev/mapper/cswap-1a2b3c4d-01 none swap sw 0 0"
    assert "UUID=1ba6" not in change.crypttab_line()


def test_a_whole_disk_swap_without_partuuid_is_named_by_id_not_wwn() -> None:
    assert measure.stable_source("/dev/vdd", IDS, BY_ID) == "/dev/disk/by-id/virtio-raid-b"
    assert measure.swap_name("/dev/disk/by-id/virtio-raid-b") == "cswap-virtio-raid-b"
    assert measure.stable_source("/dev/sdz", IDS, BY_ID) is None


def test_a_swap_without_any_stable_name_is_refused() -> None:
    tree = [{"name": "sdz", "kname": "sdz", "path": "/dev/sdz", "type": "disk", "fstype": "swap",
             "mountpoint": "[SWAP]"}]
    plan = _plan(swaps=[{"name": "/dev/sdz", "type": "partition"}], tree=tree, raw=[], evaluated=[])
    assert plan.changes == []
    assert "no PARTUUID and no /dev/disk/by-id link" in plan.refusals[0]


def test_swap_already_encrypted_or_in_ram_or_absent_needs_nothing() -> None:
    assert _plan(swaps=[], raw=FSTAB_RAW[:1], evaluated=FSTAB_EVAL[:1]) == measure.SwapPlan()
    zram = _plan(swaps=[{"name": "/dev/zram0", "type": "partition"}], raw=[], evaluated=[])
    assert zram.changes == [] and zram.refusals == [] and zram.kept == ["/dev/zram0: in RAM"]
    done_tree = [{**PLAIN_SWAP[1], "children": [{**PLAIN_SWAP[1]["children"][0], "mountpoint": None,  # type: ignore[index]
                                                  "children": [{"name": "cswap-1a2b3c4d-01", "kname": "dm-0",
                                                                "path": "/dev/mapper/cswap-1a2b3c4d-01",
                                                                "type": "crypt", "fstype": "swap",
                                                                "mountpoint": "[SWAP]"}]}]}]
    units = measure.parse_crypt_units(RANDOM_UNIT)
    raw = [{"source": "/dev/mapper/cswap-1a2b3c4d-01", "target": "none", "fstype": "swap", "options": "sw"}]
    done = _plan(swaps=[{"name": "/dev/dm-0", "type": "partition"}], tree=done_tree, raw=raw, evaluated=raw,
                 units=units)
    assert done.changes == [] and done.refusals == []


def test_an_fstab_swap_not_active_now_is_converted_too() -> None:
    [change] = _plan(swaps=[]).changes
    assert change.device == "/dev/vdc1" and not change.active


def test_a_swap_file_on_a_plain_filesystem_is_refused_naming_it() -> None:
    plan = _plan(swaps=[{"name": "/swapfile", "type": "file"}], raw=FSTAB_RAW[:1], evaluated=FSTAB_EVAL[:1],
                 files={"/swapfile": "/dev/vda"})
    assert plan.changes == []
    assert plan.refusals[0].startswith("swap file /swapfile (active) is on an unencrypted filesystem (/dev/vda)")
    only_fstab = _plan(swaps=[], raw=[{"source": "/swapfile", "target": "none", "fstype": "swap", "options": "sw"}],
                       evaluated=[{"source": "/swapfile", "target": "none", "fstype": "swap", "options": "sw"}],
                       fstab_files={"/swapfile": "/dev/vda"})
    assert "swap file /swapfile (in fstab)" in only_fstab.refusals[0]
    on_luks = _plan(swaps=[{"name": "/swapfile", "type": "file"}], tree=LUKS_ROOT, raw=[], evaluated=[],
                    files={"/swapfile": "/dev/mapper/root_crypt"})
    assert on_luks.refusals == [] and on_luks.kept[0].startswith("swap file /swapfile: on vda")


def test_fstab_and_crypttab_edits_replace_the_old_swap_line_and_converge() -> None:
    [change] = _plan().changes
    fstab = measure.fstab_with(FSTAB_TEXT, [change.fstab_line()], swap_sources=change.fstab_sources)
    assert fstab == ("/dev/vda / ext4 defaults 0 1\n"
                     "# replaced by hardening (encryption): "
                     "UUID=1ba66885-99e3-41e0-ac57-2366c48bafd6 none swap sw 0 0\n"
                     "/dev/mapper/cswap-1a2b3c4d-01 none swap sw 0 0\n")
    assert measure.fstab_with(fstab, [change.fstab_line()], swap_sources=change.fstab_sources) == fstab
    crypttab = measure.crypttab_with("# <target name>\told 1\nother /dev/sdq none luks\n", [change.crypttab_line()])
    assert crypttab.endswith("other /dev/sdq none luks\n" + change.crypttab_line() + "\n")
    assert measure.crypttab_with(crypttab, [change.crypttab_line()]) == crypttab
    stale = measure.crypttab_with("cswap-1a2b3c4d-01 /dev/vdc1 /dev/urandom swap\n", [change.crypttab_line()])
    assert stale.startswith("# replaced by hardening (encryption): cswap-1a2b3c4d-01 /dev/vdc1")


def test_the_swap_script_restores_the_old_swap_when_a_step_fails() -> None:
    [change] = _plan().changes
    script = measure.swap_script([change], "F", "C")
    assert "swapoff /dev/vdc1" in script.replace('"$d"', "/dev/vdc1") or "for d in /dev/vdc1;" in script
    assert "mkswap -U 1ba66885-99e3-41e0-ac57-2366c48bafd6 /dev/vdc1" in script
    assert 'systemd-cryptsetup@$(systemd-escape cswap-1a2b3c4d-01).service' in script
    assert "swapon /dev/mapper/cswap-1a2b3c4d-01 || undo" in script


def test_swap_at_boot() -> None:
    units = measure.parse_crypt_units(RANDOM_UNIT)
    [unit] = units.values()
    assert unit.random_key and unit.device == "/dev/disk/by-partuuid/1a2b3c4d-01" and "swap" in unit.options
    plain = measure.swap_at_boot(FSTAB_EVAL, {}, PLAIN_SWAP, {})
    assert plain == {"/dev/vdc1": (False, "vdc [disk] > vdc1 (swap) [part]")}
    fixed = [{"source": "/dev/mapper/cswap-1a2b3c4d-01", "target": "none", "fstype": "swap", "options": "sw"},
             {"source": "/dev/vdc1", "target": "none", "fstype": "swap", "options": "sw,noauto"}]
    [(ok, why)] = measure.swap_at_boot(fixed, units, PLAIN_SWAP, {}).values()
    assert ok and "a random key at each boot" in why
    assert measure.swap_at_boot([], units, PLAIN_SWAP, {}) == {}
    with pytest.raises(ValueError):
        measure.parse_crypt_units("garbage")
    assert measure.parse_fstab(1, "") == []
    with pytest.raises(ValueError):
        measure.parse_fstab(0, "not json")


def test_data_disk_lines_and_validation() -> None:
    assert measure.data_crypttab_line(DISK) == ("hardening-data /dev/disk/by-id/virtio-spare "
                                                "/etc/cryptsetup-keys.d/hardening-data.key luks")
    assert measure.data_fstab_line(DISK) == "/dev/mapper/hardening-data /srv/pii ext4 defaults,nodev,nosuid 0 2"
    for bad in ({"device": "/dev/sdb"}, {"mount_point": "/"}, {"mount_point": "relative"}, {"name": "a b"},
                {"device": "/dev/disk/by-id/../sdb"}):
        with pytest.raises(ValidationError):
            measure.DataDisk(**{"device": DISK.device, "mount_point": "/srv/pii", **bad})
    fstab = measure.fstab_with("/dev/vdb1 /srv/pii ext4 defaults 0 2\n", [measure.data_fstab_line(DISK)],
                               target="/srv/pii")
    assert fstab.startswith("# replaced by hardening (encryption): /dev/vdb1 /srv/pii")


def test_a_disk_is_formatted_only_blank_and_with_the_flag() -> None:
    blank = measure.data_disk_decision("pii1", DISK, "/dev/vdb", [], has_key=False, allowed=True)
    assert blank.action == "format" and "FORMAT as LUKS2" in blank.message
    refused = measure.data_disk_decision("pii1", DISK, "/dev/vdb", [], has_key=False, allowed=False)
    assert refused.action == "refuse"
    assert "--format-data-disk pii1:/dev/disk/by-id/virtio-spare" in refused.message
    ext4 = measure.Signature("ext4", "0x438", "c0ffee", "")
    for allowed in (True, False):
        decision = measure.data_disk_decision("pii1", DISK, "/dev/vdb", [ext4], has_key=False, allowed=allowed)
        assert decision.action == "refuse"
        assert decision.message.startswith("pii1: data disk /dev/disk/by-id/virtio-spare (/dev/vdb) is not empty: "
                                           "it carries ext4 at offset 0x438 (UUID c0ffee)")
    assert "never overrides" in measure.data_disk_decision("h", DISK, "/dev/vdb", [ext4], False, True).message
    luks = measure.Signature("crypto_LUKS", "0x0", "u-1")
    assert measure.data_disk_decision("h", DISK, "/dev/vdb", [luks], has_key=True, allowed=False).action == "keep"
    luks2 = [luks, measure.Signature("crypto_LUKS", "0x4000", "u-1")]  # LUKS2: two headers, seen on the lab VM
    assert measure.data_disk_decision("h", DISK, "/dev/vdb", luks2, has_key=True, allowed=False).action == "keep"
    mixed = [luks, measure.Signature("ext4", "0x438", "u-2")]
    assert measure.data_disk_decision("h", DISK, "/dev/vdb", mixed, has_key=True, allowed=True).action == "refuse"
    foreign = measure.data_disk_decision("h", DISK, "/dev/vdb", [luks], has_key=False, allowed=True)
    assert foreign.action == "refuse" and "key file" in foreign.message
    assert measure.data_disk_decision("h", DISK, "", [], False, True).action == "refuse"


def test_wipefs_reading() -> None:
    assert measure.parse_wipefs(0, '{"signatures": []}') == []
    [sig] = measure.parse_wipefs(0, '{"signatures": [{"device": "vdb", "offset": "0x438", "type": "ext4", '
                                    '"uuid": "u", "label": null}]}')
    assert sig == measure.Signature("ext4", "0x438", "u", "")
    for rc, out in ((1, ""), (0, "{}"), (0, "nope")):
        with pytest.raises(ValueError):
            measure.parse_wipefs(rc, out)


def test_the_mount_point_must_hold_personal_data() -> None:
    assert measure.mount_point_problem(DISK, ["/srv/pii"]) is None
    assert measure.mount_point_problem(DISK, ["/srv/pii/cases"]) is None
    assert "holds none of the personal-data paths" in (measure.mount_point_problem(DISK, ["/srv/piix"]) or "")
    assert measure.mount_point_problem(DISK, []) is not None


class _Profile:
    def __init__(self, disk: measure.DataDisk | None, paths: list[str]) -> None:
        self.settings = measure.Settings(data_disk=disk)
        self.paths = paths

    def measure(self, name: str) -> object:
        if name == "auth":
            return type("Auth", (), {"personal_data": [type("P", (), {"path": p}) for p in self.paths]})
        return self.settings


def test_format_flag() -> None:
    assert measure.parse_format_flag("pii1:/dev/disk/by-id/virtio-spare") == ("pii1", "/dev/disk/by-id/virtio-spare")
    for bad in ("pii1", ":/dev/x", "pii1:sdb", "pii1:"):
        with pytest.raises(ValueError, match="expected HOST:DEVICE"):
            measure.parse_format_flag(bad)
    profiles = {"pii1": _Profile(DISK, ["/srv/pii"]), "term": _Profile(None, [])}
    assert measure.format_consent(["pii1:/dev/disk/by-id/virtio-spare"], profiles) == {
        "pii1": ["/dev/disk/by-id/virtio-spare"]}
    cases = {"nohost:/dev/disk/by-id/virtio-spare": "no host 'nohost' among the hosts selected (pii1, term)",
             "term:/dev/disk/by-id/virtio-spare": "the profile of term names no data disk",
             "pii1:/dev/disk/by-id/virtio-backup": "names /dev/disk/by-id/virtio-spare as its data disk, not "}
    for value, message in cases.items():
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            measure.format_consent([value], profiles)
    with pytest.raises(ValueError, match="holds none of the personal-data paths"):
        measure.format_consent(["pii1:/dev/disk/by-id/virtio-spare"], {"pii1": _Profile(DISK, [])})


def test_format_script_checks_blank_again_and_keeps_the_directories() -> None:
    script = measure.format_script(DISK)
    assert script.index("wipefs --no-act") < script.index("luksFormat")
    # wipefs's -o is --offset: the columns are --output, and a wipefs that fails stops the format.
    assert "wipefs --no-act --noheadings --output TYPE,OFFSET /dev/disk/by-id/virtio-spare) || {" in script
    assert ("cryptsetup luksFormat --type luks2 --batch-mode --key-file "
            "/etc/cryptsetup-keys.d/hardening-data.key") in script
    assert "--pbkdf" not in script  # cryptsetup's default (argon2id), lab or not
    assert "cp -a /srv/pii/. " in script and "chmod 0400" in script


def test_observe_reads_the_disks_only_where_the_profile_judges_them() -> None:
    plain = Profiles().resolve("server")
    assert measure.LSBLK_IDS not in measure.observe(plain)
    assert measure.FSTAB_EVALUATED in measure.observe(Profiles().resolve("server", "high"))


def test_format_flag_errors_on_the_command_line(tmp_path: Path) -> None:
    """Bad --format-data-disk values stop the deploy before any host is reached: one line, exit 2."""
    profiles = tmp_path / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", profiles)
    server = profiles / "server.yaml"
    server.write_text(server.read_text().replace("\nmeasures:\n", """
measures:
  auth:
    personal_data: [{path: /srv/pii, group: pii, mode: "0750"}]
  encryption:
    data_disk: {device: /dev/disk/by-id/virtio-spare, mount_point: /srv/pii}
""", 1))
    inv = tmp_path / "inv.py"
    inv.write_text("servers = [('pii1', {'profile': 'server'}), ('term1', {'profile': 'terminal'})]\n")
    # The other refusals (a device the profile does not name, no data disk, a bad value) are
    # format_consent's, tested above; on the command line they take the same way out.
    proc = cli("deploy", inv, "--dry", "--profiles", profiles,
               "--format-data-disk", "pii1:/dev/disk/by-id/virtio-backup")
    assert proc.returncode == 2
    assert ("--format-data-disk: 'pii1:/dev/disk/by-id/virtio-backup': the profile of pii1 names "
            "/dev/disk/by-id/virtio-spare as its data disk, not /dev/disk/by-id/virtio-backup") in one_line_error(proc)
    proc = cli("deploy", inv, "--dry", "--profiles", profiles, "-l", "term1", "--format-data-disk",
               "pii1:/dev/disk/by-id/virtio-spare")
    assert "no host 'pii1' among the hosts selected (term1)" in one_line_error(proc)
    proc = cli("deploy", inv, "--dry", "--profiles", profiles, "-m", "tmpdata", "--format-data-disk",
               "pii1:/dev/disk/by-id/virtio-spare")
    assert "the encryption measure is not deployed" in one_line_error(proc)
