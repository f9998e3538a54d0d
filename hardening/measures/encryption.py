"""encryption (6-10): disks holding personal data, swap, and SSH transport.

What the deploy enforces: only the SSH transport, ``Ciphers`` and ``MACs`` from the profile in
the measure's sshd drop-in. It never (re-)encrypts a disk: the root filesystem and swap are set
up encrypted at installation, and the checks verify them. LUKS on a data disk holding personal
information is later work.

What the checks verify:

* ``root: required``: ``/`` sits on a dm-crypt device (a ``crypt`` ancestor in ``lsblk``).
* ``swap: required``: every active swap is on dm-crypt or in RAM (zram), or there is no swap.
* personal data (``measures.auth.personal_data``): where the profile requires an encrypted root,
  every listed path sits on dm-crypt (the device its filesystem is on, e.g. a data disk); no path
  listed there is "not configured".
* swap and data devices are matched by lsblk's PATH or KNAME: ``/proc/swaps`` names a dm-crypt
  swap ``/dev/dm-0`` where lsblk's path is ``/dev/mapper/NAME``.
* the hardware the profile names (``hardware.tpm``, ``hardware.secure_boot``):
  ``required`` fails when absent; ``expected`` and absent is advisory (shown, not a failure);
  ``ignore`` is not applicable.
"""

from __future__ import annotations

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


class Settings(Strict):
    root: Requirement = "optional"
    swap: Requirement = "optional"
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
    commands = list(_sshd.OBSERVE)
    if settings.root == "required" or settings.swap == "required":
        commands.append(LSBLK)
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
