"""encryption (6-10): disks, swap, SSH transport and the hardware behind them, verified.

Block devices with ``lsblk -J`` (the device tree the kernel builds: ``/`` encrypted means a
``crypt`` device between the disk and the filesystem); swap with ``/proc/swaps``; SSH algorithms
with ``sshd -T`` (effective after drop-ins and first match); the TPM from ``/sys/class/tpm/tpm0``;
Secure Boot with ``mokutil --sb-state`` or the SecureBoot EFI variable. Hardware that the profile
``expects`` passes when absent, with a note in the evidence; ``required`` fails when absent.
Every reading comes from the host's observation batch (hardening.measures.encryption.observe);
an ``lsblk`` tree that cannot be read is an error, never "no encrypted device".
"""

from __future__ import annotations

from typing import Any

import pytest

from hardening.measures import _sshd
from hardening.measures import encryption as measure


def _tree(obs: Any) -> list[dict[str, Any]]:
    out = obs.run(measure.LSBLK)
    return measure.parse_lsblk(out.rc, out.stdout)


@pytest.mark.clause("6-10")
def test_root_encrypted(obs, profile, evidence):
    """The root filesystem is on dm-crypt (LUKS)"""
    settings: measure.Settings = profile.measure("encryption")
    if settings.root != "required":
        evidence.not_applicable("the profile does not require an encrypted root at this sensitivity")
    chain = measure.chain_to(_tree(obs), "/")
    source = obs.run(measure.ROOT_SOURCE).stdout.strip()
    seen = measure.describe(chain) or f"not on a block device lsblk knows ({source})"
    evidence.record(expected={"/": "on a crypt device"}, observed={"/": seen})
    assert measure.encrypted(chain), "the root filesystem is not on dm-crypt"


@pytest.mark.clause("6-10")
def test_swap_encrypted(obs, profile, evidence):
    """Every swap is on dm-crypt or in RAM, or there is none"""
    settings: measure.Settings = profile.measure("encryption")
    if settings.swap != "required":
        evidence.not_applicable("the profile does not require encrypted swap at this sensitivity")
    swaps = measure.parse_swaps(obs.run(measure.SWAPS).stdout)
    tree = _tree(obs) if swaps else []
    sources = measure.parse_swap_sources(obs.run(measure.SWAP_FILE_SOURCES).stdout)
    seen: dict[str, bool] = {}
    for swap in swaps:
        file_chain = None
        if swap["type"] == "file":
            file_chain = measure.chain_to(tree, sources.get(swap["name"], ""), "path")
        seen[swap["name"]] = measure.swap_ok(swap["name"], swap["type"], tree, file_chain)
    evidence.record(expected={"every swap encrypted or in RAM": True},
                    observed={"swaps": seen or "no swap"})
    assert all(seen.values()), f"swap not encrypted: {[n for n, ok in seen.items() if not ok]}"


def _sshd_list(obs: Any, key: str) -> tuple[list[str], str]:
    config, why = _sshd.effective(obs.run(_sshd.SSHD_T))
    values = (config or {}).get(key, [""])[0]
    return [v for v in values.split(",") if v], why


def _offers_only(obs: Any, evidence: Any, key: str, allowed: list[str]) -> None:
    """sshd -T's list for `key` holds nothing outside `allowed` (and is readable at all)."""
    seen, why = _sshd_list(obs, key)
    extra = sorted(set(seen) - set(allowed))
    evidence.record(expected={f"{key} within": allowed},
                    observed={key: seen or why, "not in the profile": extra})
    assert seen, why
    assert not extra


@pytest.mark.clause("6-10")
def test_ssh_ciphers(obs, profile, evidence):
    """sshd offers only the profile's ciphers (sshd -T)"""
    _offers_only(obs, evidence, "ciphers", profile.measure("encryption").ssh_ciphers)


@pytest.mark.clause("6-10")
def test_ssh_macs(obs, profile, evidence):
    """sshd offers only the profile's MACs (sshd -T)"""
    _offers_only(obs, evidence, "macs", profile.measure("encryption").ssh_macs)


def _hardware(evidence: Any, expectation: str, what: str, present: bool, detail: Any) -> None:
    verdict, note = measure.hardware_verdict(expectation, present)
    if verdict == "not_applicable":
        evidence.not_applicable(f"{what}: {note}")
    evidence.record(expected={what: expectation},
                    observed={what: "present" if present else "absent", "detail": detail, "note": note})
    assert verdict == "pass", f"{what}: {note}"


@pytest.mark.clause("6-10")
def test_tpm(obs, profile, evidence):
    """A TPM is present where the hardware profile expects or requires one"""
    expectation = profile.hardware.tpm
    if expectation == "ignore":
        evidence.not_applicable("the hardware profile ignores the TPM")
    out = obs.run(measure.TPM_VERSION)
    present = obs.run(measure.TPM_PRESENT).rc == 0
    _hardware(evidence, expectation, "tpm", present, {"tpm_version_major": out.stdout.strip() or None})


@pytest.mark.clause("6-10")
def test_secure_boot(obs, profile, evidence):
    """Secure Boot is on where the hardware profile expects or requires it"""
    expectation = profile.hardware.secure_boot
    if expectation == "ignore":
        evidence.not_applicable("the hardware profile ignores Secure Boot")
    mok = obs.run(measure.MOKUTIL)
    var = obs.run(measure.SECURE_BOOT_EFIVAR)
    state = measure.secure_boot_enabled(mok.stdout, var.stdout if var.rc == 0 else "")
    efi = obs.run(measure.UEFI).rc == 0
    detail = {"mokutil": mok.stdout.strip() or f"exit {mok.rc}", "uefi": efi,
              "efivar": var.stdout.strip() or None}
    _hardware(evidence, expectation, "secure_boot", bool(state), detail)
