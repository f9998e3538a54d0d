"""encryption (6-10): disks, swap, SSH transport and the hardware behind them, verified.

Block devices with ``lsblk -J`` (the device tree the kernel builds: ``/`` encrypted means a
``crypt`` device between the disk and the filesystem); swap with ``/proc/swaps``; SSH algorithms
with ``sshd -T`` (effective after drop-ins and first match) and ``sshd -T -C`` per Match line; the
TPM from ``/sys/class/tpm/tpm0``;
Secure Boot with ``mokutil --sb-state`` or the SecureBoot EFI variable. Hardware that the profile
``expects`` is advisory when absent (shown, not a failure); ``required`` fails when absent.
Personal-data paths (``measures.auth.personal_data``) sit on dm-crypt where the root must.
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
    chains = {s["name"]: measure.describe(measure.device_chain(tree, s["name"])) for s in swaps
              if s["type"] != "file"}
    evidence.record(expected={"every swap encrypted or in RAM": True},
                    observed={"swaps": seen or "no swap", "devices": chains})
    assert all(seen.values()), f"swap not encrypted: {[n for n, ok in seen.items() if not ok]}"


@pytest.mark.clause("6-10")
def test_personal_data_encrypted(obs, profile, evidence):
    """Every personal-data path the profile lists sits on dm-crypt (the device of its filesystem)"""
    settings: measure.Settings = profile.measure("encryption")
    if not measure.personal_data_required(settings):
        evidence.not_applicable("the profile does not require encrypted disks at this sensitivity")
    paths = measure.personal_data_paths(profile)
    if not paths:
        evidence.not_configured("hwprofiles: measures.auth.personal_data (the directories holding "
                                "personal data, which must sit on an encrypted device)")
    tree = _tree(obs)
    seen: dict[str, str] = {}
    plain: list[str] = []
    for path in paths:
        out = obs.run(measure.data_source(path))
        _, _, device = out.stdout.strip().partition("\t")
        if out.rc != 0 or not device:
            raise RuntimeError(f"cannot tell which device holds {path}: {out.stdout!r} {out.stderr!r}")
        chain = measure.device_chain(tree, device)
        seen[path] = measure.describe(chain) or f"{device} (not a block device lsblk knows)"
        if not measure.encrypted(chain):
            plain.append(path)
    evidence.record(expected={p: "on a crypt device" for p in paths}, observed=seen)
    assert not plain, f"personal data not on dm-crypt: {plain}"


def _offers_only(obs: Any, evidence: Any, request: Any, key: str, allowed: list[str]) -> None:
    """sshd's list for ``key`` holds nothing outside ``allowed``, for the default connection and
    every Match block (sshd 9.2 refuses Ciphers and MACs inside Match, so the classes differ
    only if that changes; they are judged all the same)."""
    classes = _sshd.connection_classes(obs, _sshd.host_runner(request))

    def problem(cls: _sshd.ConnectionClass) -> str | None:
        seen = [v for value in cls.value(key) for v in value.split(",") if v]
        extra = sorted(set(seen) - set(allowed))
        if not seen:
            return f"sshd -T prints no {key}"
        return f"offers {', '.join(extra)}, not in the profile" if extra else None

    observed, failing = _sshd.judge(classes, [key], problem)
    evidence.record(expected={f"{key} within": allowed, "for": "the default and every Match block"},
                    observed=observed)
    _sshd.conclude(classes, failing)


@pytest.mark.clause("6-10")
def test_ssh_ciphers(obs, profile, evidence, request):
    """sshd offers only the profile's ciphers (sshd -T, and sshd -T -C per Match line)"""
    _offers_only(obs, evidence, request, "ciphers", profile.measure("encryption").ssh_ciphers)


@pytest.mark.clause("6-10")
def test_ssh_macs(obs, profile, evidence, request):
    """sshd offers only the profile's MACs (sshd -T, and sshd -T -C per Match line)"""
    _offers_only(obs, evidence, request, "macs", profile.measure("encryption").ssh_macs)


def _hardware(evidence: Any, expectation: str, what: str, present: bool, detail: Any) -> None:
    verdict, note = measure.hardware_verdict(expectation, present)
    if verdict == "not_applicable":
        evidence.not_applicable(f"{what}: {note}")
    evidence.record(expected={what: expectation},
                    observed={what: "present" if present else "absent", "detail": detail, "note": note})
    if verdict == "advisory":
        evidence.advisory(f"{what}: {note}")
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
