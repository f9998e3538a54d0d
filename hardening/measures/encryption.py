"""encryption (6-10): disks holding personal data, swap, and SSH transport.

What the deploy enforces:

* the SSH transport, ``Ciphers`` and ``MACs`` from the profile in the measure's sshd drop-in;
* ``swap: required``: every swap partition (or whole disk, or LV) the host has, active or named in
  fstab, becomes plain dm-crypt with a random key at each boot (``/etc/crypttab``: ``/dev/urandom``,
  ``swap``), named by its PARTUUID or a ``/dev/disk/by-id`` link, never by the swap UUID (it
  vanishes at the first random-key boot). A swap file on an unencrypted filesystem is refused,
  naming it (crypttab cannot give a file a random key before it is activated; put it on an
  encrypted filesystem, or use a partition). No swap: nothing to do. See :func:`swap_plan`;
* ``data_disk``: the empty disk the profile names becomes LUKS2 (key file, root only, in
  /etc/cryptsetup-keys.d), opened at boot from crypttab and mounted from fstab at its
  ``mount_point`` (where the personal-data paths are). Only with the operator's
  ``hardening deploy --format-data-disk HOST:DEVICE``, and never a disk with any signature
  (``wipefs --no-act``). No TPM enrolment: a key file only (see :class:`DataDisk`).

It never re-encrypts the root filesystem: that is done at installation, and the checks verify it.

What the checks verify:

* ``root: required``: ``/`` sits on a dm-crypt device (a ``crypt`` ancestor in ``lsblk``).
* ``swap: required``: every active swap is on dm-crypt or in RAM (zram), or there is no swap.
* personal data (``measures.auth.personal_data``): where the profile requires an encrypted root,
  every listed path sits on dm-crypt (the device its filesystem is on, e.g. a data disk); no path
  listed there is "not configured".
* swap and data devices are matched by lsblk's PATH or KNAME: ``/proc/swaps`` names a dm-crypt
  swap ``/dev/dm-0`` where lsblk's path is ``/dev/mapper/NAME``.
* swap at boot: every swap fstab activates (``findmnt --fstab``) is in RAM, on a device already
  encrypted, or on a crypttab mapping with a random key (the unit systemd-cryptsetup-generator
  made from crypttab, as systemd will run it).
* the data disk (``data_disk``): its mount point is mounted from a dm-crypt mapping of that disk,
  and fstab and crypttab bring it back at boot with a root-only key file.
* the hardware the profile names (``hardware.tpm``, ``hardware.secure_boot``):
  ``required`` fails when absent; ``expected`` and absent is advisory (shown, not a failure);
  ``ignore`` is not applicable.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator

from hardening.measures import _sshd
from hardening.measures._base import Measure, Strict
from hardening.observe import json_output, quote

Requirement = Literal["required", "optional"]
# What pyinfra's SSH client (paramiko 4) can negotiate: the profile must keep one of each, or the
# next deploy could not connect.
CLIENT_CIPHERS = ("aes128-ctr", "aes192-ctr", "aes256-ctr",
                  "aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
CLIENT_MACS = ("hmac-sha2-256", "hmac-sha2-512",
               "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com")
DEFAULT_CIPHERS = ("chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com",
                   "aes256-ctr", "aes192-ctr", "aes128-ctr")
DEFAULT_MACS = ("hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "umac-128-etm@openssh.com")
TPM_PATH = "/sys/class/tpm/tpm0"
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


STABLE_PREFIXES = ("/dev/disk/by-id/", "/dev/disk/by-path/")
_MAPPER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DataDisk(Strict):
    """An empty disk for personal data: LUKS2, opened at boot with a key file, mounted.

    ``device`` must be a stable name (``/dev/disk/by-id/...`` or ``/dev/disk/by-path/...``): a
    kernel name such as /dev/sdb may name another disk after a reboot. ``mount_point`` is a
    personal-data path (``measures.auth.personal_data``) or a parent of one. Unlocking is by a
    key file, root only, in /etc/cryptsetup-keys.d (TPM enrolment is not done by the deploy).
    """

    device: str
    mount_point: str
    name: str = "hardening-data"
    fstype: Literal["ext4"] = "ext4"

    @field_validator("device")
    @classmethod
    def _stable(cls, value: str) -> str:
        if not value.startswith(STABLE_PREFIXES) or re.search(r"\s", value) or ".." in value:
            raise ValueError(f"{value!r}: a stable device name under {' or '.join(STABLE_PREFIXES)} "
                             "(a kernel name such as /dev/sdb can name another disk after a reboot)")
        return value

    @field_validator("mount_point")
    @classmethod
    def _mount_point(cls, value: str) -> str:
        norm = posixpath.normpath(value)
        if not value.startswith("/") or norm in ("/", "/etc", "/usr", "/var", "/boot") or re.search(r"\s", value):
            raise ValueError(f"{value!r}: an absolute directory for personal data (not /, /etc, /usr, /var, /boot)")
        return norm

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _MAPPER_NAME.match(value):
            raise ValueError(f"{value!r}: a device-mapper name (letters, digits, _ . -)")
        return value


class Settings(Strict):
    root: Requirement = "optional"
    swap: Requirement = "optional"
    data_disk: DataDisk | None = None
    ssh_ciphers: list[str] = Field(default_factory=lambda: list(DEFAULT_CIPHERS))
    ssh_macs: list[str] = Field(default_factory=lambda: list(DEFAULT_MACS))

    @field_validator("ssh_ciphers", "ssh_macs")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one algorithm")
        return [_sshd.check_token(v) for v in value]


def sshd_directives(settings: Settings) -> dict[str, str | list[str]]:
    """The sshd keywords this measure owns (sshd wants comma-separated lists)."""
    return {"Ciphers": ",".join(settings.ssh_ciphers), "MACs": ",".join(settings.ssh_macs)}


def sshd_dropin(settings: Settings) -> str:
    """The text of /etc/ssh/sshd_config.d/10-hardening-encryption.conf."""
    return _sshd.render("encryption", ", ".join(MEASURE.clauses), sshd_directives(settings))


def lockout_reason(settings: Settings) -> str | None:
    """Why the algorithms would shut pyinfra's own SSH client out, or None."""
    if not set(settings.ssh_ciphers) & set(CLIENT_CIPHERS):
        return f"ssh_ciphers keep none the deploy's SSH client speaks ({', '.join(CLIENT_CIPHERS)})"
    if not set(settings.ssh_macs) & set(CLIENT_MACS):
        return f"ssh_macs keep none the deploy's SSH client speaks ({', '.join(CLIENT_MACS)})"
    return None


# -- observed state (checks) -------------------------------------------------------------------

Node = dict[str, Any]


def chain_to(tree: list[Node], match: str, field: str = "mountpoint") -> list[Node]:
    """The devices from the top of ``lsblk -J`` down to the node whose ``field`` is ``match``
    (e.g. ``disk > part > crypt`` for ``/``), or [] when no device has it."""
    for node in tree:
        if node.get(field) == match:
            return [node]
        below = chain_to(node.get("children") or [], match, field)
        if below:
            return [node, *below]
    return []


def encrypted(chain: list[Node]) -> bool:
    """The chain passes through a dm-crypt device."""
    return any(node.get("type") == "crypt" for node in chain)


def describe(chain: list[Node]) -> str:
    """``vda > vda2 (crypto_LUKS) > vda2_crypt [crypt]``."""
    return " > ".join(f"{n.get('name')}" + (f" ({n['fstype']})" if n.get("fstype") else "")
                      + (f" [{n['type']}]" if n.get("type") else "") for n in chain)


def parse_swaps(text: str) -> list[dict[str, str]]:
    """``/proc/swaps`` -> [{"name": "/dev/dm-1", "type": "partition"}, ...]."""
    out = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2:
            out.append({"name": parts[0], "type": parts[1]})
    return out


def device_chain(tree: list[Node], device: str) -> list[Node]:
    """The chain down to a device named as the kernel or lsblk names it: ``/proc/swaps`` and
    ``findmnt`` may say ``/dev/dm-0`` where lsblk's PATH is ``/dev/mapper/swapc`` (its KNAME is
    ``dm-0``); a ``[/subvolume]`` or bind-mount suffix is dropped."""
    name = device.split("[", 1)[0]
    return chain_to(tree, name, "path") or (
        chain_to(tree, name.removeprefix("/dev/"), "kname") if name.startswith("/dev/") else [])


def swap_ok(name: str, kind: str, tree: list[Node], file_chain: list[Node] | None = None) -> bool:
    """A swap is acceptable when in RAM (zram) or on dm-crypt (directly, or for a swap file the
    device holding its filesystem)."""
    if name.startswith("/dev/zram"):
        return True
    if kind == "file":
        return encrypted(file_chain or [])
    return encrypted(device_chain(tree, name))


def hardware_verdict(expectation: str, present: bool) -> tuple[str, str]:
    """("not_applicable" | "pass" | "fail" | "advisory", note) for a TPM or Secure Boot
    expectation: ``expected`` and absent is advisory (shown, not a failure, never a pass)."""
    if expectation == "ignore":
        return "not_applicable", "the hardware profile ignores it"
    if present:
        return "pass", ""
    if expectation == "required":
        return "fail", "required by the profile at this sensitivity, but absent"
    return "advisory", ("absent: the hardware profile expects it but does not require it at this "
                        "sensitivity; check the hardware or the profile")


def personal_data_required(settings: Settings) -> bool:
    """Personal-data paths must be on dm-crypt wherever the profile requires an encrypted root:
    encrypting the system disk while the data sits on a plain data disk would defeat it."""
    return settings.root == "required"


def personal_data_paths(profile: Any) -> list[str]:
    """The personal-data directories the profile lists (``measures.auth.personal_data``)."""
    return [str(entry.path) for entry in profile.measure("auth").personal_data]


def data_source(path: str) -> str:
    """The device holding ``path``'s filesystem (the nearest existing parent when it does not
    exist yet), as ``<path><TAB><device>``."""
    return quote('p=%s; while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done; '
                 "printf '%%s\\t%%s\\n' %s \"$(findmnt -n -o SOURCE -T \"$p\")\"", path, path)


def secure_boot_enabled(mokutil: str, efivar_bytes: str) -> bool | None:
    """From ``mokutil --sb-state`` or the SecureBoot efivar (last byte 1); None = cannot tell."""
    if "SecureBoot enabled" in mokutil:
        return True
    if "SecureBoot disabled" in mokutil:
        return False
    values = efivar_bytes.split()
    if values and values[-1].isdigit():
        return values[-1] == "1"
    return None



# -- swap with a random key at each boot ---------------------------------------------------------

RANDOM_KEYS = ("/dev/urandom", "/dev/random", "/dev/hw_random")
SWAP_CRYPT_OPTIONS = "swap,cipher=aes-xts-plain64,size=512"
SWAP_NAME_PREFIX = "cswap-"
# Stable names and old swap UUIDs; the by-id links of each device.
LSBLK_IDS = "lsblk -J -o PATH,KNAME,TYPE,FSTYPE,UUID,PARTUUID"
BY_ID = ("for l in /dev/disk/by-id/*; do [ -L \"$l\" ] && printf '%s\\t%s\\n' \"$l\" \"$(readlink -f \"$l\")\"; "
         "done; true")
# In a container, /proc/swaps and the disks are the container host's: never changed from inside.
CONTAINER = "systemd-detect-virt --container"
# fstab as util-linux reads it: the lines as written, and with UUID=/PARTUUID=/LABEL= resolved.
FSTAB = "findmnt --fstab -J -o SOURCE,TARGET,FSTYPE,OPTIONS"
FSTAB_EVALUATED = "findmnt --fstab --evaluate -J -o SOURCE,TARGET,FSTYPE,OPTIONS"
FSTAB_TEXT = "cat /etc/fstab"
CRYPTTAB_TEXT = "if [ -e /etc/crypttab ]; then cat /etc/crypttab; fi"
# crypttab as systemd reads it: the units systemd-cryptsetup-generator made from it (last reload/boot).
CRYPT_UNITS = ("for f in /run/systemd/generator/systemd-cryptsetup@*.service; do "
               "[ -e \"$f\" ] && sed -n 's/^ExecStart=//p' \"$f\"; done; true")
# Per swap FILE named in fstab, the device holding its filesystem (``<file><TAB><device>``).
FSTAB_SWAP_FILE_SOURCES = ("findmnt --fstab -n -t swap -o SOURCE | while read -r f; do case \"$f\" in "
                           "/dev/*|*=*) ;; *) printf '%s\\t%s\\n' \"$f\" \"$(findmnt -n -o SOURCE -T \"$f\")\";; "
                           "esac; done")


@dataclass(frozen=True)
class CryptUnit:
    """One crypttab mapping as systemd runs it (``systemd-cryptsetup attach NAME DEV KEY OPTS``)."""

    name: str
    device: str
    key: str
    options: tuple[str, ...]

    @property
    def random_key(self) -> bool:
        return self.key in RANDOM_KEYS

    def describe(self) -> str:
        key = "a random key at each boot" if self.random_key else f"key {self.key or 'asked at boot'}"
        return f"crypttab {self.name}: {self.device}, {key}, options {','.join(self.options) or '-'}"


def parse_crypt_units(text: str) -> dict[str, CryptUnit]:
    """:data:`CRYPT_UNITS` output -> mapping name: unit; ValueError on a line it cannot read."""
    units: dict[str, CryptUnit] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        words = shlex.split(line)
        if len(words) < 4 or words[1] != "attach":
            raise ValueError(f"unreadable systemd-cryptsetup ExecStart: {line!r}")
        name, device = words[2], words[3]
        key = words[4] if len(words) > 4 and words[4] not in ("-", "none") else ""
        options = tuple(o for o in (words[5] if len(words) > 5 else "").split(",") if o)
        units[name] = CryptUnit(name, device, key, options)
    return units


def parse_fstab(rc: int, stdout: str) -> list[dict[str, str]]:
    """``findmnt --fstab -J`` -> its lines; [] when fstab has none (findmnt exits 1, prints nothing)."""
    if rc == 1 and not stdout.strip():
        return []
    data = json_output(rc, stdout, "findmnt --fstab")
    lines = data.get("filesystems") if isinstance(data, dict) else None
    if not isinstance(lines, list):
        raise ValueError(f"findmnt --fstab printed no filesystems list: {stdout[:200]!r}")
    return [{k: str(v or "") for k, v in line.items()} for line in lines]


def _active_at_boot(entry: dict[str, str]) -> bool:
    return entry.get("fstype") == "swap" and "noauto" not in entry.get("options", "").split(",")


def swap_at_boot(fstab: list[dict[str, str]], units: dict[str, CryptUnit], tree: list[Node],
                 file_sources: dict[str, str]) -> dict[str, tuple[bool, str]]:
    """Every swap fstab activates at boot (evaluated sources) -> (acceptable, why): in RAM, on a
    crypttab mapping (a random key, or a persistent one such as LUKS), or on a device already
    encrypted (e.g. an LV inside LUKS); a swap file on an encrypted filesystem."""
    seen: dict[str, tuple[bool, str]] = {}
    for entry in filter(_active_at_boot, fstab):
        source = entry["source"]
        name = source.removeprefix("/dev/mapper/")
        if source.startswith("/dev/zram"):
            seen[source] = (True, "in RAM (zram)")
        elif source.startswith("/dev/mapper/") and name in units:
            seen[source] = (True, units[name].describe())
        elif source.startswith("/dev/"):
            chain = device_chain(tree, source)
            seen[source] = (encrypted(chain), describe(chain) or f"{source}: no such device now")
        elif source in file_sources:
            chain = device_chain(tree, file_sources[source])
            seen[source] = (encrypted(chain), f"swap file on {describe(chain) or file_sources[source]}")
        else:
            seen[source] = (False, "a source fstab names that findmnt cannot resolve to a device")
    return seen


@dataclass(frozen=True)
class SwapChange:
    """One swap device to move onto plain dm-crypt with a random key."""

    device: str  # the kernel's path now, e.g. /dev/vdc1
    source: str  # how crypttab names it: PARTUUID=... or /dev/disk/by-id/...
    name: str  # the mapping, /dev/mapper/NAME
    uuid: str  # its swap UUID now (to restore it if the change fails), "" if none
    active: bool
    fstab_sources: tuple[str, ...]  # the fstab lines (their SOURCE as written) it replaces

    def crypttab_line(self) -> str:
        return f"{self.name} {self.source} /dev/urandom {SWAP_CRYPT_OPTIONS}"

    def fstab_line(self) -> str:
        return f"/dev/mapper/{self.name} none swap sw 0 0"


@dataclass
class SwapPlan:
    changes: list[SwapChange] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # what is already fine, said in the operation


def _flat(tree: list[Node]) -> list[Node]:
    out: list[Node] = []
    for node in tree:
        out += [node, *_flat(node.get("children") or [])]
    return out


def stable_source(device: str, ids: list[Node], by_id: dict[str, str]) -> str | None:
    """How crypttab names ``device`` so that a random-key reformat cannot lose it: its PARTUUID,
    else a /dev/disk/by-id link (never a swap UUID: it is gone after the first such boot)."""
    node = next((n for n in _flat(ids) if n.get("path") == device), None)
    if node and node.get("partuuid"):
        return f"PARTUUID={node['partuuid']}"
    links = sorted(link for link, target in by_id.items() if target == device)
    preferred = [link for link in links if not link.rsplit("/", 1)[-1].startswith("wwn-")]
    choice = preferred or links
    return choice[0] if choice else None


def swap_name(source: str) -> str:
    """The mapping's name from its stable source: ``cswap-1a2b3c4d-01``, ``cswap-virtio-raid-a``."""
    tail = source.removeprefix("PARTUUID=").rsplit("/", 1)[-1]
    return SWAP_NAME_PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", tail)[:56]


def parse_by_id(text: str) -> dict[str, str]:
    """:data:`BY_ID` output -> link: the device it points at."""
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


def swap_plan(swaps: list[dict[str, str]], tree: list[Node], ids: list[Node], by_id: dict[str, str],
              fstab: list[dict[str, str]], fstab_evaluated: list[dict[str, str]], units: dict[str, CryptUnit],
              active_file_sources: dict[str, str], fstab_file_sources: dict[str, str]) -> SwapPlan:
    """What the deploy does for ``swap: required``: the swap devices (active, or activated by
    fstab at boot) not yet encrypted become random-key crypttab mappings; a swap file on an
    unencrypted filesystem is refused, naming it; the rest is kept and said so."""
    plan = SwapPlan()
    devices: dict[str, bool] = {}  # kernel path -> active now
    for swap in swaps:
        name, kind = swap["name"], swap["type"]
        if name.startswith("/dev/zram"):
            plan.kept.append(f"{name}: in RAM")
        elif kind == "file":
            _judge_file(plan, name, active_file_sources.get(name, ""), tree, "active")
        else:
            chain = device_chain(tree, name)
            if encrypted(chain):
                plan.kept.append(f"{name}: {describe(chain)}")
            elif chain:
                devices[chain[-1]["path"]] = True
            else:
                plan.refusals.append(f"swap {name}: lsblk does not know the device; left as it is")
    replaced: dict[str, list[str]] = {}
    for raw, entry in zip(fstab, fstab_evaluated, strict=True):
        if not _active_at_boot(entry):
            continue
        source = entry["source"]
        if source.startswith("/dev/zram") or source.removeprefix("/dev/mapper/") in units:
            continue
        if not source.startswith("/dev/"):
            if "=" not in source and source not in active_file_sources:
                _judge_file(plan, source, fstab_file_sources.get(source, ""), tree, "in fstab")
            continue
        chain = device_chain(tree, source)
        if encrypted(chain) or not chain:
            continue
        device = chain[-1]["path"]
        devices.setdefault(device, False)
        replaced.setdefault(device, []).append(raw["source"])
    for device, active in devices.items():
        _change(plan, device, active, tuple(replaced.get(device, [])), ids, by_id)
    return plan


def _judge_file(plan: SwapPlan, name: str, holder: str, tree: list[Node], where: str) -> None:
    chain = device_chain(tree, holder) if holder else []
    if encrypted(chain):
        plan.kept.append(f"swap file {name}: on {describe(chain)}")
        return
    plan.refusals.append(
        f"swap file {name} ({where}) is on an unencrypted filesystem ({holder or 'unknown device'}): a "
        "file cannot get a random key from crypttab before it is activated; move it onto an encrypted "
        "filesystem, or use a swap partition, or switch it off (swapoff, and remove its fstab line)")


def _change(plan: SwapPlan, device: str, active: bool, fstab_sources: tuple[str, ...], ids: list[Node],
            by_id: dict[str, str]) -> None:
    source = stable_source(device, ids, by_id)
    if source is None:
        plan.refusals.append(f"swap {device} has no PARTUUID and no /dev/disk/by-id link: crypttab could "
                             "not name it safely (a random key reformats what it names at each boot); left "
                             "as it is")
        return
    node = next((n for n in _flat(ids) if n.get("path") == device), {})
    uuid = str(node.get("uuid") or "") if node.get("fstype") == "swap" else ""
    plan.changes.append(SwapChange(device, source, swap_name(source), uuid, active, fstab_sources))


def crypttab_with(text: str, lines: list[str]) -> str:
    """``/etc/crypttab`` with ``lines`` in place: an earlier line for the same mapping name or the
    same source is replaced (commented out when it is not identical)."""
    names = {line.split()[0]: line for line in lines}
    sources = {line.split()[1]: line for line in lines}
    out: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if line in lines or not fields or fields[0].startswith("#"):
            out.append(line)
        elif fields[0] in names or (len(fields) > 1 and fields[1] in sources):
            out.append(f"# replaced by hardening (encryption): {line}")
        else:
            out.append(line)
    out += [line for line in lines if line not in out]
    return "\n".join(out) + "\n"


def fstab_with(text: str, lines: list[str], *, swap_sources: tuple[str, ...] = (), target: str = "") -> str:
    """``/etc/fstab`` with ``lines`` in place: swap lines of ``swap_sources`` and any line mounting
    ``target`` (other than ours) are commented out; ours added once."""
    out: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        ours = line in lines
        replaced = (len(fields) >= 3 and not fields[0].startswith("#") and not ours
                    and ((fields[0] in swap_sources and fields[2] == "swap") or (target and fields[1] == target)))
        out.append(f"# replaced by hardening (encryption): {line}" if replaced else line)
    out += [line for line in lines if line not in out]
    return "\n".join(out) + "\n"


def swap_script(changes: list[SwapChange], fstab: str, crypttab: str) -> str:
    """The one shell run that moves the swap devices onto their random-key mappings: switch them
    off, write fstab and crypttab, let systemd set the mappings up, switch them on. If any step
    fails, the files, the mappings and each device's swap (its old UUID) are restored and
    switched on again as they were, and the run fails saying so: never a host silently left
    without the swap it had."""
    q = shlex.quote
    devices = " ".join(q(c.device) for c in changes if c.active)
    restore_swaps = "\n".join(
        f"  swapoff /dev/mapper/{q(c.name)} 2>/dev/null; cryptsetup close {q(c.name)} 2>/dev/null; "
        f"if [ \"$(blkid -p -s TYPE -o value {q(c.device)})\" != swap ]; then "
        f"mkswap {('-U ' + q(c.uuid)) if c.uuid else ''} {q(c.device)} >/dev/null; fi"
        + (f"; swapon {q(c.device)}" if c.active else "") for c in changes)
    starts = "\n".join(
        f"systemctl start \"systemd-cryptsetup@$(systemd-escape {q(c.name)}).service\" "
        f"|| undo 'cannot set up {c.name}'\n"
        + (f"swapon /dev/mapper/{q(c.name)} || undo 'cannot switch on /dev/mapper/{c.name}'" if c.active
           else f"[ -e /dev/mapper/{q(c.name)} ] || undo 'no /dev/mapper/{c.name}'")
        for c in changes)
    said = "; ".join(f"{c.device} ({c.source}) -> /dev/mapper/{c.name}, random key at each boot"
                     + ("" if c.active else " (not active now: fstab would have activated it at boot)")
                     for c in changes)
    return f"""set -u
B=$(mktemp -d /run/hardening-swap.XXXXXX)
cp -p /etc/fstab "$B/fstab"
if [ -e /etc/crypttab ]; then cp -p /etc/crypttab "$B/crypttab"; fi
undo() {{
  echo "encryption: swap change FAILED ($1): restoring the previous swap" >&2
  cp -p "$B/fstab" /etc/fstab
  if [ -e "$B/crypttab" ]; then cp -p "$B/crypttab" /etc/crypttab; else rm -f /etc/crypttab; fi
  systemctl daemon-reload
{restore_swaps}
  echo "encryption: swap restored as it was: $(tail -n +2 /proc/swaps | awk '{{print $1}}' | tr '\\n' ' ')" >&2
  exit 1
}}
for d in {devices}; do
  swapoff "$d" || undo "swapoff $d failed (not enough memory for its pages?)"
done
printf '%s' {q(fstab)} > /etc/fstab.hardening-new && mv /etc/fstab.hardening-new /etc/fstab \
  || undo "cannot write /etc/fstab"
printf '%s' {q(crypttab)} > /etc/crypttab.hardening-new && mv /etc/crypttab.hardening-new /etc/crypttab \
  || undo "cannot write /etc/crypttab"
chmod 0644 /etc/fstab /etc/crypttab
systemctl daemon-reload || undo "systemctl daemon-reload failed"
{starts}
echo "encryption: swap now: {said}"
"""


# -- the data disk (LUKS2) -----------------------------------------------------------------------

KEY_DIR = "/etc/cryptsetup-keys.d"


def key_file(disk: DataDisk) -> str:
    return f"{KEY_DIR}/{disk.name}.key"


def data_crypttab_line(disk: DataDisk) -> str:
    """Named by its stable device path; opened with the key file (no passphrase at boot)."""
    return f"{disk.name} {disk.device} {key_file(disk)} luks"


def data_fstab_line(disk: DataDisk) -> str:
    return f"/dev/mapper/{disk.name} {disk.mount_point} {disk.fstype} defaults,nodev,nosuid 0 2"


def wipefs(device: str) -> str:
    return quote("wipefs --no-act --json %s", device)


def resolve(device: str) -> str:
    return quote("readlink -e %s", device)


def key_stat(disk: DataDisk) -> str:
    return quote("stat -c '%%a %%U %%G' %s", key_file(disk))


def mounted(mount_point: str) -> str:
    return quote("findmnt -J -o SOURCE,TARGET,FSTYPE --mountpoint %s", mount_point)


def hidden_files(mount_point: str) -> str:
    """Up to 5 entries other than directories under the mount point's own filesystem: they
    would be hidden (left unencrypted underneath) by mounting the data disk there."""
    return quote("find %s -xdev -mindepth 1 ! -type d 2>/dev/null | head -n 5", mount_point)


@dataclass(frozen=True)
class Signature:
    type: str
    offset: str
    uuid: str = ""
    label: str = ""

    def describe(self) -> str:
        extra = ", ".join(x for x in (self.uuid and f"UUID {self.uuid}", self.label and f"label {self.label}") if x)
        return f"{self.type} at offset {self.offset}" + (f" ({extra})" if extra else "")


def parse_wipefs(rc: int, stdout: str) -> list[Signature]:
    """``wipefs --no-act --json`` -> the signatures on the device; ValueError when unreadable."""
    data = json_output(rc, stdout, "wipefs --no-act")
    found = data.get("signatures") if isinstance(data, dict) else None
    if not isinstance(found, list):
        raise ValueError(f"wipefs printed no signatures list: {stdout[:200]!r}")
    return [Signature(str(s.get("type") or "?"), str(s.get("offset") or "?"), str(s.get("uuid") or ""),
                      str(s.get("label") or "")) for s in found]


def luks_only(signatures: list[Signature]) -> Signature | None:
    """The LUKS header when it is all the disk carries (LUKS2 has two copies, at 0 and 0x4000,
    with one UUID), else None."""
    if signatures and all(s.type == "crypto_LUKS" for s in signatures) and len({s.uuid for s in signatures}) == 1:
        return signatures[0]
    return None


@dataclass(frozen=True)
class DiskDecision:
    action: Literal["format", "keep", "refuse"]
    message: str
    uuid: str = ""


def data_disk_decision(host: str, disk: DataDisk, resolved: str, signatures: list[Signature],
                       has_key: bool, allowed: bool) -> DiskDecision:
    """Format only a disk with no signature at all AND the operator's flag; keep a LUKS disk of
    ours (its key file is there); refuse anything else, naming host, device and signatures."""
    where = f"{host}: data disk {disk.device}" + (f" ({resolved})" if resolved else "")
    if not resolved:
        return DiskDecision("refuse", f"{where} does not exist on this host; nothing formatted")
    luks = luks_only(signatures)
    if luks:
        if has_key:
            return DiskDecision("keep", f"{where}: LUKS {luks.uuid}, set up", luks.uuid)
        return DiskDecision("refuse", f"{where} carries a LUKS header ({luks.describe()}) but its key file "
                            f"{key_file(disk)} is missing: not set up by this tool, or its key is lost; left alone")
    if signatures:
        flag = " (--format-data-disk never overrides a signature)" if allowed else ""
        return DiskDecision("refuse", f"{where} is not empty: it carries {'; '.join(s.describe() for s in signatures)}"
                            f" (wipefs --no-act); refused, nothing formatted{flag}. If it is truly the disk for "
                            "personal data and holds nothing of value, erase it yourself (wipefs -a) and "
                            "deploy again with --format-data-disk")
    if not allowed:
        return DiskDecision("refuse", f"{where} is blank and not set up: it is formatted only with "
                            f"`hardening deploy --format-data-disk {host}:{disk.device}`; left alone")
    return DiskDecision("format", f"{where}: FORMAT as LUKS2 (blank: wipefs --no-act shows no signature), "
                        f"key file {key_file(disk)}, {disk.fstype}, mounted at {disk.mount_point}")


def mount_point_problem(disk: DataDisk, personal_paths: list[str]) -> str | None:
    """The data disk must hold personal data: its mount point is a personal-data path or a parent."""
    inside = [p for p in personal_paths
              if posixpath.normpath(p) == disk.mount_point or posixpath.normpath(p).startswith(disk.mount_point + "/")]
    if inside:
        return None
    return (f"data_disk.mount_point {disk.mount_point} holds none of the personal-data paths "
            f"(measures.auth.personal_data: {', '.join(personal_paths) or 'none'})")


def format_script(disk: DataDisk) -> str:
    """Format the blank disk: checked blank again on the host first, a random 512-bit key file
    (root, 0400), LUKS2 with cryptsetup's defaults (argon2id), opened, a file system, and the
    directories already at the mount point (empty: the deploy refuses files there) copied onto it
    with their owner and mode (the personal-data directories the auth measure made)."""
    q = shlex.quote
    dev, name, key, mp = q(disk.device), q(disk.name), q(key_file(disk)), q(disk.mount_point)
    return f"""set -eu
found=$(wipefs --no-act --noheadings --output TYPE,OFFSET {dev}) || {{
  echo "encryption: refused: cannot read the signatures of {disk.device} (wipefs)" >&2; exit 1; }}
if [ -n "$found" ]; then
  echo "encryption: refused: {disk.device} carries a signature now: $found" >&2; exit 1
fi
if [ -d {mp} ] && [ -n "$(find {mp} -xdev -mindepth 1 ! -type d | head -n 1)" ]; then
  echo "encryption: refused: {disk.mount_point} holds files that mounting would hide" >&2; exit 1
fi
umask 077
mkdir -p {q(KEY_DIR)}
chmod 0700 {q(KEY_DIR)}
head -c 64 /dev/urandom > {key}.new
chmod 0400 {key}.new
mv {key}.new {key}
cryptsetup luksFormat --type luks2 --batch-mode --key-file {key} {dev}
cryptsetup open --key-file {key} {dev} {name}
mkfs.{disk.fstype} -q /dev/mapper/{name}
mkdir -p {mp}
T=$(mktemp -d /run/hardening-data.XXXXXX)
mount /dev/mapper/{name} "$T"
cp -a {mp}/. "$T"/
umount "$T"
rmdir "$T"
echo "encryption: {disk.device} formatted: LUKS2 $(cryptsetup luksUUID {dev}), opened as /dev/mapper/{disk.name}"
"""


# -- the operator's consent: hardening deploy --format-data-disk HOST:DEVICE ---------------------

FORMAT_FLAG = "--format-data-disk"


def parse_format_flag(value: str) -> tuple[str, str]:
    """``HOST:DEVICE`` -> (host, device); ValueError saying what is expected."""
    name, sep, device = value.partition(":")
    if not sep or not name or not device.startswith("/dev/"):
        raise ValueError(f"{value!r}: expected HOST:DEVICE, e.g. pii-srv1:/dev/disk/by-id/virtio-spare")
    return name, device


def format_consent(values: tuple[str, ...] | list[str], profiles: dict[str, Any]) -> dict[str, list[str]]:
    """The devices the operator allows the deploy to format, by host. ``profiles``: the selected
    hosts' resolved profiles. ValueError for a host not selected, a device the host's profile
    does not name as its data disk, or a data disk that holds none of the personal-data paths:
    a disk is never formatted by accident."""
    allowed: dict[str, list[str]] = {}
    for value in values:
        name, device = parse_format_flag(value)
        if name not in profiles:
            raise ValueError(f"{value!r}: no host {name!r} among the hosts selected "
                             f"({', '.join(sorted(profiles)) or 'none'})")
        disk: DataDisk | None = profiles[name].measure("encryption").data_disk
        if disk is None:
            raise ValueError(f"{value!r}: the profile of {name} names no data disk "
                             "(measures.encryption.data_disk)")
        if device != disk.device:
            raise ValueError(f"{value!r}: the profile of {name} names {disk.device} as its data disk, not {device}")
        problem = mount_point_problem(disk, personal_data_paths(profiles[name]))
        if problem:
            raise ValueError(f"{value!r}: {problem}")
        allowed.setdefault(name, []).append(device)
    return allowed

LSBLK = "lsblk -J -o NAME,KNAME,PATH,TYPE,FSTYPE,MOUNTPOINT"
ROOT_SOURCE = "findmnt -n -o SOURCE,FSTYPE /"
SWAPS = "cat /proc/swaps"
# Per swap file, the device holding its filesystem (``<file><TAB><device>``); nothing without one.
SWAP_FILE_SOURCES = ("awk 'NR > 1 && $2 == \"file\" {print $1}' /proc/swaps | "
                     "while read -r f; do printf '%s\\t%s\\n' \"$f\" \"$(findmnt -n -o SOURCE -T \"$f\")\"; done")
TPM_PRESENT = quote("test -e %s", TPM_PATH)
TPM_VERSION = quote("cat %s/tpm_version_major", TPM_PATH)
UEFI = "test -d /sys/firmware/efi"
MOKUTIL = "mokutil --sb-state"
SECURE_BOOT_EFIVAR = quote("od -An -tu1 %s", SECURE_BOOT_VAR)


def parse_lsblk(rc: int, stdout: str) -> list[Node]:
    """The device tree of ``lsblk -J``; ValueError when lsblk failed or printed no such tree (an
    unreadable tree must not read as "no encrypted device")."""
    data = json_output(rc, stdout, "lsblk")
    devices = data.get("blockdevices") if isinstance(data, dict) else None
    if not isinstance(devices, list):
        raise ValueError(f"lsblk printed no blockdevices list: {stdout[:200]!r}")
    return devices


def parse_swap_sources(text: str) -> dict[str, str]:
    """:data:`SWAP_FILE_SOURCES` output -> swap file: device holding it ("" when findmnt knew none)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, _, device = line.partition("\t")
        if name:
            out[name] = device.strip()
    return out


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch;
    the disks, the TPM and Secure Boot only where the profile judges them."""
    settings: Settings = profile.measure("encryption")
    disk = settings.data_disk
    commands = list(_sshd.OBSERVE)
    if settings.root == "required" or settings.swap == "required" or disk:
        commands.append(LSBLK)
    if settings.swap == "required" or disk:
        commands += [LSBLK_IDS, BY_ID, FSTAB, FSTAB_EVALUATED, FSTAB_TEXT, CRYPTTAB_TEXT, CRYPT_UNITS, CONTAINER]
    if settings.swap == "required":
        commands.append(FSTAB_SWAP_FILE_SOURCES)
    if disk:
        commands += [resolve(disk.device), wipefs(disk.device), key_stat(disk), mounted(disk.mount_point),
                     hidden_files(disk.mount_point)]
    if personal_data_required(settings):
        commands += [data_source(path) for path in personal_data_paths(profile)]
    if settings.root == "required":
        commands.append(ROOT_SOURCE)
    if settings.swap == "required":
        commands += [SWAPS, SWAP_FILE_SOURCES]
    if profile.hardware.tpm != "ignore":
        commands += [TPM_PRESENT, TPM_VERSION]
    if profile.hardware.secure_boot != "ignore":
        commands += [MOKUTIL, SECURE_BOOT_EFIVAR, UEFI]
    return commands


MEASURE = Measure(
    name="encryption",
    title="disks holding personal data, swap, and SSH transport",
    clauses=('6-10',),
    order=30,
    settings=Settings,
    observe=observe,
)
