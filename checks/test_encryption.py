"""encryption (6-10): disks, swap, SSH transport and the hardware behind them, verified.

Block devices with ``lsblk -J`` (the device tree the kernel builds: ``/`` encrypted means a
``crypt`` device between the disk and the filesystem); swap with ``/proc/swaps``; SSH algorithms
with ``sshd -T`` (effective after drop-ins and first match) and ``sshd -T -C`` per Match line; the
TPM from ``/sys/class/tpm/tpm0``;
Secure Boot with ``mokutil --sb-state`` or the SecureBoot EFI variable. Hardware that the profile
``expects`` is advisory when absent (shown, not a failure); ``required`` fails when absent.
Personal-data paths (``measures.auth.personal_data``) sit on dm-crypt where the root must.
Swap at boot from fstab (``findmnt --fstab --evaluate``) and crypttab as systemd reads it (the
units systemd-cryptsetup-generator made from it); the data disk with ``wipefs --no-act``,
``findmnt`` and the same two tables.
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


@pytest.mark.clause("6-10")
def test_swap_encrypted_at_boot(obs, profile, evidence):
    """Every swap fstab activates at boot is in RAM, on an encrypted device or on a crypttab mapping (random key)"""
    settings: measure.Settings = profile.measure("encryption")
    if settings.swap != "required":
        evidence.not_applicable("the profile does not require encrypted swap at this sensitivity")
    out = obs.run(measure.FSTAB_EVALUATED)
    fstab = measure.parse_fstab(out.rc, out.stdout)
    units = measure.parse_crypt_units(obs.run(measure.CRYPT_UNITS).stdout)
    files = measure.parse_swap_sources(obs.run(measure.FSTAB_SWAP_FILE_SOURCES).stdout)
    seen = measure.swap_at_boot(fstab, units, _tree(obs), files)
    evidence.record(expected={"every swap fstab activates at boot": "encrypted (a crypttab mapping with a random "
                              "key, an encrypted device) or in RAM"},
                    observed={s: why for s, (_, why) in seen.items()} or "no swap in fstab")
    plain = [f"{s} ({why})" for s, (ok, why) in seen.items() if not ok]
    assert not plain, f"swap activated unencrypted at boot: {plain}"


@pytest.mark.clause("6-10")
def test_data_disk_at_boot(obs, profile, evidence):
    """The profile's data disk is LUKS, open and mounted at its mount point; crypttab and fstab bring it back at boot"""
    disk: measure.DataDisk | None = profile.measure("encryption").data_disk
    if disk is None:
        evidence.not_applicable("the profile names no separate data disk (measures.encryption.data_disk); "
                                "personal-data paths are judged by test_personal_data_encrypted")
        return
    found = obs.run(measure.resolve(disk.device))
    resolved = found.stdout.strip() if found.rc == 0 else ""
    problems: list[str] = []
    observed: dict[str, Any] = {"device": resolved or "absent"}
    if resolved:
        out = obs.run(measure.wipefs(disk.device))
        signatures = measure.parse_wipefs(out.rc, out.stdout)
        observed["signatures"] = [s.describe() for s in signatures] or "none (blank)"
        if measure.luks_only(signatures) is None:
            problems.append(f"{disk.device} is not (only) LUKS")
    else:
        problems.append(f"{disk.device} does not exist")
    mount = obs.run(measure.mounted(disk.mount_point))
    source = measure.parse_fstab(mount.rc, mount.stdout)[0]["source"] if mount.rc == 0 else ""
    chain = measure.device_chain(_tree(obs), source) if source else []
    observed["mounted"] = measure.describe(chain) or source or "nothing mounted"
    if not (chain and chain[-1].get("type") == "crypt" and chain[-1].get("name") == disk.name
            and resolved in {n.get("path") for n in chain}):
        problems.append(f"{disk.mount_point} is not mounted from /dev/mapper/{disk.name} on {disk.device}")
    problems += _boot_problems(obs, disk, observed)
    evidence.record(expected={"device": disk.device, "mapping": disk.name, "mount_point": disk.mount_point,
                              "key file": f"{measure.key_file(disk)}, root only", "at boot": "crypttab and fstab"},
                    observed=observed)
    assert not problems, "; ".join(problems)


def _boot_problems(obs: Any, disk: measure.DataDisk, observed: dict[str, Any]) -> list[str]:
    """crypttab (as systemd-cryptsetup-generator made its unit) and fstab bring the disk back at boot."""
    problems = []
    unit = measure.parse_crypt_units(obs.run(measure.CRYPT_UNITS).stdout).get(disk.name)
    observed["crypttab"] = unit.describe() if unit else "no crypttab mapping"
    if unit is None or unit.device != disk.device or unit.key != measure.key_file(disk):
        problems.append(f"crypttab does not open {disk.device} as {disk.name} with {measure.key_file(disk)}")
    out = obs.run(measure.FSTAB_EVALUATED)
    lines = [e for e in measure.parse_fstab(out.rc, out.stdout) if e.get("target") == disk.mount_point]
    observed["fstab"] = lines or "no line"
    if not any(e["source"] == f"/dev/mapper/{disk.name}" and "noauto" not in e["options"].split(",")
               for e in lines):
        problems.append(f"fstab does not mount /dev/mapper/{disk.name} at {disk.mount_point} at boot")
    key = obs.run(measure.key_stat(disk)).stdout.split()
    observed["key file"] = " ".join(key) or "absent"
    if len(key) < 2 or key[1] != "root" or int(key[0], 8) & 0o077:
        problems.append(f"{measure.key_file(disk)} is not a key file readable by root only")
    return problems


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
