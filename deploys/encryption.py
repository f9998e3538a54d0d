"""encryption (6-10): swap with a random key, the LUKS2 data disk, SSH transport ciphers and MACs.

Decides from the host's observation batch (``obs``, what the checks judge):

1. ``swap: required``: the swap devices not yet encrypted (active in /proc/swaps, or activated
   by fstab at boot) move onto plain dm-crypt with a random key at each boot, in ONE shell run
   that restores the previous swap if any step fails (hardening.measures.encryption.swap_script).
   A swap file on an unencrypted filesystem is refused at the end, naming it. No swap: nothing.
2. ``data_disk``: a blank disk is formatted only when the operator named it on the command line
   (``hardening deploy --format-data-disk HOST:DEVICE``, passed in the plan as
   ``format_devices``); a disk with any signature is refused whatever the flag, naming host,
   device and signatures. A LUKS disk of ours (its key file present) is kept: crypttab, fstab,
   open and mounted as far as the observation says they are not (no flag needed).
3. sshd ``Ciphers`` and ``MACs`` from the profile (validated, sshd reloaded only when changed),
   refusing algorithm lists the deploy's own SSH client could not speak.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from hardening.measures import encryption as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from . import _sshd as sshd
from ._support import refuse, refuse_at_end, unsupported_reason


@deploy("encryption")
def apply(profile: Resolved, obs: Observations, format_devices: Sequence[str] = ()) -> None:
    """Swap and the data disk (where the profile says so), then sshd Ciphers and MACs."""
    settings: measure.Settings = profile.measure("encryption")
    reason = unsupported_reason() or measure.lockout_reason(settings)
    if reason:
        refuse(reason)
        return
    if settings.swap == "required" or settings.data_disk:
        try:
            _disks(profile, settings, obs, format_devices)
        except ValueError as exc:  # an observation it cannot read: decide nothing from it
            refuse_at_end(f"encryption: {host.name}: cannot read the disks: {exc}")
    dropin = sshd.sshd_dropin("encryption", measure.sshd_dropin(settings), obs)
    sshd.reload_sshd("encryption", dropin)


def _disks(profile: Resolved, settings: measure.Settings, obs: Observations, format_devices: Sequence[str]) -> None:
    container = obs.run(measure.CONTAINER)
    inside = container.stdout.strip() if container.rc == 0 else ""  # its swap and disks are its host's
    if inside and settings.data_disk:
        refuse_at_end(f"encryption: {host.name}: a {inside} container: its data disk {settings.data_disk.device} "
                      "is set up on the container's host, not from inside")
    fstab = obs.run(measure.FSTAB_TEXT).stdout
    crypttab = obs.run(measure.CRYPTTAB_TEXT).stdout
    if settings.swap == "required":
        fstab, crypttab = _swap(obs, fstab, crypttab, inside)
    if settings.data_disk and not inside:
        _data_disk(profile, settings.data_disk, obs, fstab, crypttab, settings.data_disk.device in format_devices)


def _tree(obs: Observations, command: str) -> list[measure.Node]:
    out = obs.run(command)
    return measure.parse_lsblk(out.rc, out.stdout)


def _swap(obs: Observations, fstab: str, crypttab: str, container: str) -> tuple[str, str]:
    """The random-key change of every plain swap device; the fstab and crypttab it leaves."""
    tree = _tree(obs, measure.LSBLK)
    fstab_raw = obs.run(measure.FSTAB)
    fstab_eval = obs.run(measure.FSTAB_EVALUATED)
    plan = measure.swap_plan(
        measure.parse_swaps(obs.run(measure.SWAPS).stdout), tree, _tree(obs, measure.LSBLK_IDS),
        measure.parse_by_id(obs.run(measure.BY_ID).stdout),
        measure.parse_fstab(fstab_raw.rc, fstab_raw.stdout), measure.parse_fstab(fstab_eval.rc, fstab_eval.stdout),
        measure.parse_crypt_units(obs.run(measure.CRYPT_UNITS).stdout),
        measure.parse_swap_sources(obs.run(measure.SWAP_FILE_SOURCES).stdout),
        measure.parse_swap_sources(obs.run(measure.FSTAB_SWAP_FILE_SOURCES).stdout))
    if container and (plan.changes or plan.refusals):
        refuse_at_end(f"encryption: {host.name}: a {container} container sees its host's swap "
                      f"({', '.join(c.device for c in plan.changes) or '; '.join(plan.refusals)}): encrypt it on "
                      "the container's host, not from inside")
        return fstab, crypttab
    for refusal in plan.refusals:
        refuse_at_end(f"encryption: {host.name}: {refusal}")
    if not plan.changes:
        return fstab, crypttab
    for change in plan.changes:
        fstab = measure.fstab_with(fstab, [change.fstab_line()], swap_sources=change.fstab_sources)
    crypttab = measure.crypttab_with(crypttab, [c.crypttab_line() for c in plan.changes])
    said = "; ".join(f"{c.device} -> /dev/mapper/{c.name} ({c.source}, random key at each boot"
                     + (")" if c.active else ", not active now: fstab activates it at boot)") for c in plan.changes)
    kept = f" (kept: {'; '.join(plan.kept)})" if plan.kept else ""
    server.shell(name=f"encryption: swap onto dm-crypt: {said}{kept}",
                 commands=[measure.swap_script(plan.changes, fstab, crypttab)])
    return fstab, crypttab


def _data_disk(profile: Resolved, disk: measure.DataDisk, obs: Observations, fstab: str, crypttab: str,
               allowed: bool) -> None:
    problem = measure.mount_point_problem(disk, measure.personal_data_paths(profile))
    if problem:
        refuse_at_end(f"encryption: {host.name}: {problem}")
        return
    found = obs.run(measure.resolve(disk.device))
    resolved = found.stdout.strip() if found.rc == 0 else ""
    signatures = []
    if resolved:
        out = obs.run(measure.wipefs(disk.device))
        signatures = measure.parse_wipefs(out.rc, out.stdout)
    key = obs.run(measure.key_stat(disk))
    decision = measure.data_disk_decision(host.name, disk, resolved, signatures, key.rc == 0, allowed)
    if decision.action == "refuse":
        refuse_at_end(f"encryption: {decision.message}")
        return
    tree = _tree(obs, measure.LSBLK)
    source = _mounted_source(obs, disk.mount_point)
    ours = bool(source) and _is_ours(tree, source, disk)
    if source and not ours:
        refuse_at_end(f"encryption: {host.name}: {disk.mount_point} is mounted from {source}, not from the "
                      f"data disk {disk.device}; left alone")
        return
    hidden = obs.run(measure.hidden_files(disk.mount_point)).stdout.split()
    if not source and hidden:
        refuse_at_end(f"encryption: {host.name}: {disk.mount_point} holds files on the unencrypted disk "
                      f"beneath it that mounting the data disk would hide: {', '.join(hidden)}; move them "
                      "away first (and onto the data disk once it is mounted)")
        return
    if decision.action == "format":
        server.shell(name=f"encryption: {decision.message}", commands=[measure.format_script(disk)])
    elif key.stdout.split()[:3] != ["400", "root", "root"]:
        server.shell(name=f"encryption: {measure.key_file(disk)} root only (0400)",
                     commands=[f"chown root:root {shlex.quote(measure.key_file(disk))} && "
                               f"chmod 0400 {shlex.quote(measure.key_file(disk))}"])
    tab = files.put(name=f"encryption: crypttab opens {disk.device} as {disk.name} at boot (key file)",
                    src=StringIO(measure.crypttab_with(crypttab, [measure.data_crypttab_line(disk)])),
                    dest="/etc/crypttab", user="root", group="root", mode="644")
    mount = files.put(name=f"encryption: fstab mounts /dev/mapper/{disk.name} at {disk.mount_point}",
                      src=StringIO(measure.fstab_with(fstab, [measure.data_fstab_line(disk)],
                                                      target=disk.mount_point)),
                      dest="/etc/fstab", user="root", group="root", mode="644")
    server.shell(name="encryption: systemctl daemon-reload (crypttab, fstab)", commands=["systemctl daemon-reload"],
                 _if=any_changed(tab, mount))
    if decision.action == "keep" and not _open(tree, resolved, disk.name):
        unit = f"systemd-cryptsetup@$(systemd-escape {shlex.quote(disk.name)}).service"
        server.shell(name=f"encryption: open {disk.device} as /dev/mapper/{disk.name}",
                     commands=[f'systemctl start "{unit}"'])
    if not ours:
        server.shell(name=f"encryption: mount {disk.mount_point} (fstab)",
                     commands=[f"mkdir -p {shlex.quote(disk.mount_point)} && mount {shlex.quote(disk.mount_point)}"])


def _mounted_source(obs: Observations, mount_point: str) -> str:
    """The device mounted at ``mount_point`` ("" when nothing is)."""
    out = obs.run(measure.mounted(mount_point))
    if out.rc != 0:
        return ""
    data = json.loads(out.stdout)
    return str((data.get("filesystems") or [{}])[0].get("source") or "")


def _is_ours(tree: list[measure.Node], source: str, disk: measure.DataDisk) -> bool:
    chain = measure.device_chain(tree, source)
    return bool(chain) and chain[-1].get("type") == "crypt" and chain[-1].get("name") == disk.name


def _open(tree: list[measure.Node], device: str, name: str) -> bool:
    chain = measure.chain_to(tree, device, "path")
    children = (chain[-1].get("children") or []) if chain else []
    return any(c.get("type") == "crypt" and c.get("name") == name for c in children)
