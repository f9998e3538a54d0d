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
    assert verdict == "pass" and "absent" in note


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
    assert terminal[:2] == _sshd.OBSERVE
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
