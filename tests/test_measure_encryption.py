"""encryption (6-10): desired state, lockout refusal and the block-device readings, without a host."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hardening.measures import encryption as measure
from hardening.profiles import Profiles

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
