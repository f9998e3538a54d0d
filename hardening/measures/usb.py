"""usb (6-11): restrict recording devices (USB memory, smartphones) on terminals and servers.

Two layers, both computed here from the profile so that the deploy and the check agree:

1. Kernel drivers: ``/etc/modprobe.d/hardening-usb.conf`` makes them impossible to load
   (``install <module> /bin/false`` plus a ``blacklist`` line), and the deploy unloads the ones
   loaded now (``modprobe -r``; a module in use fails the deploy, named):

   - ``storage: block`` (default): ``usb-storage``, ``uas``;
   - ``block_thunderbolt_firewire: true`` (default): ``thunderbolt`` and the whole FireWire stack
     (``firewire-core``, ``-ohci``, ``-sbp2``, ``-net``): both give a plugged device DMA;
   - ``removable_media: block`` (default, so every shipped profile at every level, terminals at
     high included, blocks them): SD/MMC cards (``mmc_block``) and optical discs (``sr_mod``,
     ``cdrom``). Not the SD host drivers (``sdhci*``: SDIO Wi-Fi needs them). A host that boots
     from eMMC, or has a card or disc mounted, is refused by the deploy (named), never cut off;
     such a role sets ``removable_media: allow``.

   The checks read what is loaded now (``/proc/modules``) and, for cards and discs, the block
   devices (``lsblk``: an ``mmcblk*`` or ``rom`` device fails even with a built-in driver).
2. USBGuard: a device allow-list (``/etc/usbguard/rules.conf``) evaluated first-match:

   - ``allow`` the devices the profile names by ``id vendor:product`` (a deliberate, per-model
     decision, e.g. a keyboard with a built-in card reader; its storage interface still has no
     driver because of layer 1);
   - ``block`` any device with an interface of ANY class the profile does not allow (all 256
     class codes but the allowed ones: mass storage 08, still image 06, vendor-specific ff,
     audio, video, wireless ...), even a composite device that also has a keyboard interface;
   - ``allow`` HID (03) and hubs (09) always, whatever the profile says: a keyboard is never
     blocked by this tool (``block_interface_classes`` may not name 03 or 09);
   - ``allow`` the profile's other interface classes (e.g. 0b smart card readers);
   - everything else (a device with no interface) is blocked by ``ImplicitPolicyTarget=block``.

   Why a block rule and not ``equals``: USBGuard's ``one-of`` and ``all-of`` match a device with
   more interfaces than the rule names (``allow with-interface one-of { 03:*:* }`` lets a keyboard
   that also carries a storage or vendor interface through), and ``equals`` only compares sizes
   and that each rule value matches some interface (``equals { 03:*:* 03:*:* }`` matches 03+ff;
   ``equals { 03:*:* }`` would block every keyboard with two HID interfaces). The check judges
   the daemon's loaded rules with those semantics (:func:`unsafe_allow_rules`), the rules file
   against them, and the daemon's running parameters against its file.

Lockout of an attached keyboard or console (the choice, and why):
``PresentDevicePolicy=apply-policy`` evaluates the devices already attached when the daemon
starts against the same rules, so a USB stick left in at boot is blocked, and an attached
keyboard stays authorized because HID always matches an ``allow`` rule. ``keep`` would be
lockout-proof but leaves any attached stick authorized at every boot; ``allow`` is the same hole.
The one case apply-policy blocks a keyboard is a composite keyboard that also presents an interface
of a class the profile does not allow (storage, still image, vendor-specific ...):
:func:`lockout_risks` finds such attached devices and the deploy refuses to (re)start USBGuard
while one is attached, rather than cut off the console (allow it by id in the profile).
``PresentControllerPolicy=keep`` keeps the root hubs as they are, and ``AuthorizedDefault=none``
keeps a newly plugged device unauthorized until the daemon has decided (no race at plug time).

What the host uses now is never cut off either (refuse rather than risk it): before anything of
the measure changes, the deploy refuses when the policy would take away a file system mounted (or
swap in use) anywhere on the block stack of a USB disk (:func:`storage_in_use`: partition,
dm-crypt, LVM, md RAID, read from lsblk's JSON tree; FireWire and Thunderbolt storage likewise
with ``block_thunderbolt_firewire``), a USB network interface up with an address or a route
(:func:`network_in_use`), or a USB serial console (:func:`serial_consoles_in_use`). Output it
cannot read is a refusal, never a pass.

Examples::

    >>> s = Settings()
    >>> blocked_modules(s)[:4]
    ['usb-storage', 'uas', 'firewire-sbp2', 'thunderbolt']
    >>> usbguard_rules(s)[0][:60]
    'block with-interface one-of { 08:*:* 06:*:* ff:*:* 00:*:* 01'
    >>> verdict(UsbDevice(port="1-1", vendor="046d", product="c31c", interfaces=("03",)), s)
    ('allow', 'HID (keyboard, mouse)')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hardening.measures._base import Measure, Strict
from hardening.observe import Observation, ObservationError, quote

MODPROBE_CONF = "/etc/modprobe.d/hardening-usb.conf"
USBGUARD_RULES = "/etc/usbguard/rules.conf"
USBGUARD_DAEMON_CONF = "/etc/usbguard/usbguard-daemon.conf"
STORAGE_MODULES = ("usb-storage", "uas")
# The whole FireWire stack, not only its storage protocol (sbp2): an OHCI controller gives a
# device on the bus DMA into memory. Thunderbolt likewise (PCIe tunnelling).
THUNDERBOLT_FIREWIRE_MODULES = ("firewire-sbp2", "thunderbolt", "firewire-net", "firewire-ohci", "firewire-core")
# SD/MMC cards (mmc_block: the block driver of every card reader on the MMC bus) and optical discs
# (sr_mod, cdrom). Not the SD host drivers (sdhci*): SDIO Wi-Fi uses them without mmc_block.
REMOVABLE_MEDIA_MODULES = ("mmc_block", "sr_mod", "cdrom")
HID, HUB = "03", "09"
# The interface class every vendor-specific function uses (MTP phones, debug and flashing ports).
VENDOR = "ff"
# Classes the tool never blocks: keyboards and mice (HID) and hubs (the keyboard sits behind one).
NEVER_BLOCKED = (HID, HUB)
HEADER = "# Managed by hardening (measure usb, clause 6-11). Do not edit: changes are overwritten.\n"

# Shell command printing one line per attached USB device, read from sysfs (no usbguard needed):
#   <port>|<idVendor>|<idProduct>|<authorized>|<product name>|<interface classes, space separated>
SYSFS_LISTING_COMMAND = (
    "for d in /sys/bus/usb/devices/*; do "
    '[ -f "$d/idVendor" ] || continue; '
    "printf '%s|%s|%s|%s|%s|' \"${d##*/}\" \"$(cat \"$d/idVendor\")\" \"$(cat \"$d/idProduct\")\" "
    '"$(cat "$d/authorized" 2>/dev/null)" "$(cat "$d/product" 2>/dev/null | tr "|" "/")"; '
    'cat "$d"/*:*/bInterfaceClass 2>/dev/null | tr "\\n" " "; echo; '
    "done"
)


class Device(Strict):
    """An allowed USB device, by interface class or by vendor:product (hex, as lsusb shows)."""

    name: str = Field(pattern=r'^[^"\\\n]+$')
    interface_class: str | None = Field(default=None, pattern=r"^[0-9a-f]{2}$")
    vendor: str | None = Field(default=None, pattern=r"^[0-9a-f]{4}$")
    product: str | None = Field(default=None, pattern=r"^[0-9a-f]{4}$")

    @model_validator(mode="after")
    def _one_way(self) -> Device:
        if self.interface_class is None and self.vendor is None:
            raise ValueError("an allowed device needs interface_class or vendor (and product)")
        if self.product is not None and self.vendor is None:
            raise ValueError("product needs vendor")
        return self


class Settings(Strict):
    storage: Literal["block", "allow"] = "block"
    usbguard: bool = True
    allow: list[Device] = Field(default_factory=lambda: [
        Device(name="HID (keyboard, mouse)", interface_class=HID),
        Device(name="hub", interface_class=HUB),
    ])
    # Interface classes always blocked: 08 mass storage, 06 still image (PTP, and MTP phones).
    block_interface_classes: list[str] = Field(default_factory=lambda: ["08", "06"])
    block_thunderbolt_firewire: bool = True
    # SD/MMC cards and optical discs: "block" = mmc_block, sr_mod and cdrom cannot be loaded.
    removable_media: Literal["block", "allow"] = "block"

    @field_validator("block_interface_classes")
    @classmethod
    def _never_block_keyboard(cls, value: list[str]) -> list[str]:
        for cls_ in value:
            if not re.fullmatch(r"[0-9a-f]{2}", cls_):
                raise ValueError(f"interface class {cls_!r}: expected two lower-case hex digits")
            if cls_ in NEVER_BLOCKED:
                raise ValueError(f"interface class {cls_} (HID or hub) is never blocked: it would "
                                 "lock out the keyboard")
        return value


@dataclass(frozen=True)
class UsbDevice:
    """A USB device attached to a host, as sysfs shows it."""

    port: str
    vendor: str
    product: str
    interfaces: tuple[str, ...]
    authorized: bool = True
    name: str = ""

    def describe(self) -> str:
        """``1-2 0781:5567 "Cruzer Blade" [08]``"""
        return f'{self.port} {self.vendor}:{self.product} "{self.name}" [{" ".join(self.interfaces)}]'


# -- kernel drivers -------------------------------------------------------------------------------

def blocked_modules(settings: Settings) -> list[str]:
    """Kernel modules made impossible to load.

    >>> blocked_modules(Settings(storage="allow", block_thunderbolt_firewire=False, removable_media="allow"))
    []
    """
    mods: list[str] = []
    if settings.storage == "block":
        mods += STORAGE_MODULES
    if settings.block_thunderbolt_firewire:
        mods += THUNDERBOLT_FIREWIRE_MODULES
    if settings.removable_media == "block":
        mods += REMOVABLE_MEDIA_MODULES
    return mods


def modprobe_conf(settings: Settings) -> str:
    """Content of /etc/modprobe.d/hardening-usb.conf (empty string: no file).

    >>> print(modprobe_conf(Settings(block_thunderbolt_firewire=False, removable_media="allow")), end="")
    # Managed by hardening (measure usb, clause 6-11). Do not edit: changes are overwritten.
    install usb-storage /bin/false
    blacklist usb-storage
    install uas /bin/false
    blacklist uas
    """
    mods = blocked_modules(settings)
    if not mods:
        return ""
    lines = [f"install {m} /bin/false\nblacklist {m}\n" for m in mods]
    return HEADER + "".join(lines)


def module_blocked(modprobe_output: str) -> bool:
    """Whether ``modprobe -n -v MODULE`` output shows the block (``install /bin/false``).

    Also accepts the ``install <module> /bin/false`` line of ``modprobe -c``.

    >>> module_blocked("insmod /lib/modules/x/firewire-core.ko\\ninstall /bin/false")
    True
    >>> module_blocked("loaded now; modprobe -c: install usb_storage /bin/false")
    True
    """
    return bool(re.search(r"(^|: )install\s+(\S+\s+)?/bin/false\b", modprobe_output.strip(), re.MULTILINE))


def configured_install(modprobe_config: str, module: str) -> str | None:
    """The ``install`` line ``modprobe -c`` shows for a module (names use underscores there).

    >>> configured_install("blacklist uas\\ninstall uas /bin/false\\n", "uas")
    'install uas /bin/false'
    """
    for line in modprobe_config.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "install" and kernel_name(parts[1]) == kernel_name(module):
            return line.strip()
    return None


def kernel_name(module: str) -> str:
    """The name /proc/modules uses: ``usb-storage`` is loaded as ``usb_storage``."""
    return module.replace("-", "_")


def parse_proc_modules(proc_modules: str) -> dict[str, set[str]]:
    """/proc/modules: each loaded module and the modules that use it; raises on an unreadable line.

    >>> parse_proc_modules("usb_storage 81920 1 uas, Live 0x0\\nuas 32768 0 - Live 0x0\\n")
    {'usb_storage': {'uas'}, 'uas': set()}
    """
    modules: dict[str, set[str]] = {}
    for line in proc_modules.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 4 or not parts[1].isdigit() or not re.fullmatch(r"-|\d+", parts[2]):
            raise ObservationError(f"/proc/modules: unreadable line {line[:200]!r}")
        modules[parts[0]] = {u for u in parts[3].split(",") if u and u != "-" and not u.startswith("[")}
    return modules


def loaded_modules(proc_modules: str, wanted: list[str]) -> list[str]:
    """The modules of ``wanted`` that /proc/modules lists as loaded."""
    loaded = parse_proc_modules(proc_modules)
    return [m for m in wanted if kernel_name(m) in loaded]


# -- USBGuard -------------------------------------------------------------------------------------

def _label(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _classes(classes: list[str]) -> str:
    return "one-of { " + " ".join(f"{c}:*:*" for c in classes) + " }"


def _allow_rule(device: Device) -> str:
    parts = ["allow"]
    if device.vendor:
        parts.append(f"id {device.vendor}:{device.product or '*'}")
    if device.interface_class:
        parts.append(f"with-interface {_classes([device.interface_class])}")
    parts.append(f"label {_label(device.name)}")
    return " ".join(parts)


def allowed_devices(settings: Settings) -> list[Device]:
    """The profile's allow-list with HID and hubs always present (first, in that order)."""
    by_class = [d for d in settings.allow if d.interface_class and not d.vendor]
    always = []
    for cls_, name in ((HID, "HID (keyboard, mouse)"), (HUB, "hub")):
        named = next((d for d in by_class if d.interface_class == cls_), None)
        always.append(named or Device(name=name, interface_class=cls_))
    rest = [d for d in settings.allow if d not in always]
    return always + rest


def allowed_classes(settings: Settings) -> list[str]:
    """Interface classes a device may carry (all of its interfaces) to be allowed by class."""
    classes = [d.interface_class for d in allowed_devices(settings) if d.interface_class and not d.vendor]
    if settings.storage == "allow":
        classes += settings.block_interface_classes
    return list(dict.fromkeys(classes))


def blocked_classes(settings: Settings) -> list[str]:
    """Every interface class (00-ff) the profile does not allow: the profile's always-blocked
    classes first, then vendor-specific (ff), then the rest in order.

    >>> blocked_classes(Settings())[:4], len(blocked_classes(Settings()))
    (['08', '06', 'ff', '00'], 254)
    """
    allowed = set(allowed_classes(settings))
    first = [*(settings.block_interface_classes if settings.storage == "block" else []), VENDOR]
    rest = [f"{n:02x}" for n in range(256)]
    return [c for c in dict.fromkeys(first + rest) if c not in allowed]


def usbguard_rules(settings: Settings) -> list[str]:
    """The USBGuard rules, first match wins, as ``usbguard list-rules`` prints them.

    A device is allowed by class only if EVERY interface it has is of an allowed class: the
    ``block`` rule lists every other class, so a composite device that carries a keyboard next
    to a storage, vendor-specific (ff), audio or video interface is blocked before it reaches the
    ``allow with-interface one-of { 03:*:* }`` rule. USBGuard has no operator for "all of the
    device's interfaces are among these": ``one-of`` and ``all-of`` match a device that has more
    interfaces than the rule names, and ``equals`` compares sizes, so ``equals { 03:*:* 03:*:* }``
    matches a keyboard with a vendor interface too (see :func:`unsafe_allow_rules`).

    >>> usbguard_rules(Settings(storage="allow", allow=[]))[-1]
    'allow with-interface one-of { 08:*:* 06:*:* } label "hardening: storage allowed by the profile"'
    """
    devices = allowed_devices(settings)
    rules = [_allow_rule(d) for d in devices if d.vendor]
    rules.append(f"block with-interface {_classes(blocked_classes(settings))} label \"hardening: blocked classes\"")
    rules += [_allow_rule(d) for d in devices if not d.vendor]
    if settings.storage == "allow" and settings.block_interface_classes:
        rules.append(f"allow with-interface {_classes(settings.block_interface_classes)} "
                     "label \"hardening: storage allowed by the profile\"")
    return rules


def usbguard_rules_conf(settings: Settings) -> str:
    """Content of /etc/usbguard/rules.conf (mode 0600: the daemon refuses a readable one)."""
    return HEADER + "".join(rule + "\n" for rule in usbguard_rules(settings))


def usbguard_daemon_conf(settings: Settings) -> str:
    """Content of /etc/usbguard/usbguard-daemon.conf: the whole file, managed.

    Differences from Debian's file: no ``RuleFolder`` (only the profile's rules apply, so the
    effective rules equal the desired ones), and IPC for root only: Debian lets the ``plugdev``
    group (desktop users) modify the policy, which would let staff allow their own USB stick.
    """
    del settings  # same daemon configuration for every profile
    return HEADER + (
        f"RuleFile={USBGUARD_RULES}\n"
        "ImplicitPolicyTarget=block\n"
        "PresentDevicePolicy=apply-policy\n"
        "PresentControllerPolicy=keep\n"
        "InsertedDevicePolicy=apply-policy\n"
        "AuthorizedDefault=none\n"
        "RestoreControllerDeviceState=false\n"
        "DeviceManagerBackend=uevent\n"
        "IPCAllowedUsers=root\n"
        "IPCAllowedGroups=root\n"
        "DeviceRulesWithPort=false\n"
        "AuditBackend=FileAudit\n"
        "AuditFilePath=/var/log/usbguard/usbguard-audit.log\n"
        "HidePII=false\n"
    )


def parse_daemon_conf(text: str, keys: tuple[str, ...]) -> dict[str, str]:
    """The values of ``keys`` in a usbguard-daemon.conf (last one wins, "(unset)" if absent).

    >>> parse_daemon_conf("# c\\nImplicitPolicyTarget=allow\\n", ("ImplicitPolicyTarget", "RuleFolder"))
    {'ImplicitPolicyTarget': 'allow', 'RuleFolder': '(unset)'}
    """
    values = dict.fromkeys(keys, "(unset)")
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#") and key in values:
            values[key] = value.strip()
    return values


def parse_list_rules(output: str) -> list[str]:
    """Rules from ``usbguard list-rules`` (``N: rule`` per line), without their numbers.

    Any other non-empty line raises :class:`ObservationError`: a rule the parser skipped could
    hide a difference.

    >>> parse_list_rules('1: allow with-interface 09:*:*\\n')
    ['allow with-interface 09:*:*']
    """
    rules = []
    for line in output.splitlines():
        match = re.match(r"^\s*\d+:\s*(.+?)\s*$", line)
        if match:
            rules.append(match.group(1))
        elif line.strip():
            raise ObservationError(f"usbguard list-rules: unreadable line {line[:200]!r}")
    return rules


# -- USBGuard's rule language, to judge rules the way the daemon evaluates them ------------------

SET_OPERATORS = ("all-of", "one-of", "none-of", "equals", "equals-ordered", "match-all")
TARGETS = ("allow", "block", "reject", "match", "device")
# Attributes the evaluator models; any other known one (serial, name, ...) narrows a rule in a way
# a probe device cannot know, so such a rule is assumed to match only when it is the one judged.
MODELLED = ("id", "with-interface", "label")
KNOWN = (*MODELLED, "name", "hash", "parent-hash", "serial", "via-port", "with-connect-type", "if")
_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|[{}]|[^\s{}"]+')


@dataclass(frozen=True)
class Rule:
    """One USBGuard rule: its target and, per attribute, the set operator and values."""

    text: str
    target: str
    attributes: dict[str, tuple[str, tuple[str, ...]]]

    def narrowed(self) -> bool:
        """Whether an attribute the evaluator does not model narrows the rule."""
        return any(name not in MODELLED for name in self.attributes)


def parse_rule(text: str) -> Rule:
    """A rule as ``usbguard list-rules`` or ``usbguard-rule-parser`` print it; raises
    :class:`ObservationError` on anything outside the grammar (never skips a part).

    >>> parse_rule('allow id 1d6b:* with-interface one-of { 03:*:* 08:06:50 } label "x"').attributes
    {'id': ('equals', ('1d6b:*',)), 'with-interface': ('one-of', ('03:*:*', '08:06:50')), 'label': ('equals', ('"x"',))}
    """
    tokens = _TOKEN.findall(text)
    if not tokens or tokens[0] not in TARGETS or _TOKEN.sub("", text).strip():
        raise ObservationError(f"USBGuard rule: unreadable {text[:300]!r}")
    attributes: dict[str, tuple[str, tuple[str, ...]]] = {}
    i = 1
    while i < len(tokens):
        name = tokens[i]
        if name not in KNOWN or name in attributes or i + 1 >= len(tokens):
            raise ObservationError(f"USBGuard rule: unreadable at {name!r}: {text[:300]!r}")
        i += 1
        operator = "equals"
        if tokens[i] in SET_OPERATORS:
            operator, i = tokens[i], i + 1
        values, i = _values(tokens, i, text)
        attributes[name] = (operator, values)
    return Rule(text=text, target=tokens[0], attributes=attributes)


def _values(tokens: list[str], i: int, text: str) -> tuple[tuple[str, ...], int]:
    if i >= len(tokens) or tokens[i] == "}":
        raise ObservationError(f"USBGuard rule: a value is missing: {text[:300]!r}")
    if tokens[i] != "{":
        return (tokens[i],), i + 1
    end = tokens.index("}", i) if "}" in tokens[i:] else -1
    if end < 0 or "{" in tokens[i + 1:end]:
        raise ObservationError(f"USBGuard rule: unbalanced braces: {text[:300]!r}")
    return tuple(tokens[i + 1:end]), end + 1


def _value_matches(pattern: str, value: str) -> bool:
    """``03:*:*`` against ``03:01:01``; ``1d6b:*`` against ``1d6b:0002`` (fields: ``*`` or equal)."""
    fields, actual = pattern.lower().split(":"), value.lower().split(":")
    return len(fields) == len(actual) and all(f in ("*", a) for f, a in zip(fields, actual, strict=True))


def set_applies(operator: str, rule_values: tuple[str, ...], device_values: tuple[str, ...]) -> bool:
    """USBGuard's set operators (Rule.hpp, ``Attribute::appliesTo``), rule values against a
    device's: ``equals`` = same size and every rule value matches one of the device's.

    >>> set_applies("one-of", ("03:*:*",), ("03:01:01", "ff:00:00"))
    True
    >>> set_applies("equals", ("03:*:*", "03:*:*"), ("03:01:01", "ff:00:00"))
    True
    """
    def hit(value: str) -> bool:
        return any(_value_matches(value, d) for d in device_values)

    if operator == "match-all":
        return True
    if operator == "all-of":
        return all(hit(v) for v in rule_values)
    if operator == "one-of":
        return any(hit(v) for v in rule_values)
    if operator == "none-of":
        return not any(hit(v) for v in rule_values)
    if operator == "equals":
        return len(rule_values) == len(device_values) and all(hit(v) for v in rule_values)
    if operator == "equals-ordered":
        return len(rule_values) == len(device_values) and all(
            _value_matches(v, d) for v, d in zip(rule_values, device_values, strict=True))
    raise ObservationError(f"USBGuard rule: unknown set operator {operator!r}")


def rule_applies(rule: Rule, device_id: str, interfaces: tuple[str, ...]) -> bool:
    """Whether ``rule`` matches a device with this ``vvvv:pppp`` id and these ``cc:ss:pp``
    interfaces, for its modelled attributes (the caller decides about :meth:`Rule.narrowed`)."""
    if "id" in rule.attributes and not set_applies(*rule.attributes["id"], (device_id,)):
        return False
    return "with-interface" not in rule.attributes or set_applies(*rule.attributes["with-interface"], interfaces)


def decide(rules: list[Rule], device_id: str, interfaces: tuple[str, ...],
           judged: Rule | None = None) -> Rule | None:
    """The first rule that matches (``match`` rules do not decide); None: the implicit target.

    A rule narrowed by attributes the evaluator does not model (serial, name, hash, via-port,
    a condition) counts as matching only if it is ``judged``: an earlier ``block`` narrowed that
    way protects nothing we can prove.
    """
    for rule in rules:
        if rule.target in ("match", "device") or (rule.narrowed() and rule is not judged):
            continue
        if rule_applies(rule, device_id, interfaces):
            return rule
    return None


def _concrete(pattern: str, filler: str) -> str:
    return ":".join(filler if f == "*" else f for f in pattern.split(":"))


def _probes(rule: Rule, danger: str) -> list[tuple[str, tuple[str, ...]]]:
    """Devices that carry a ``danger`` class interface and that ``rule`` could match: its own
    interfaces (wildcards filled; dangerous already if it names such a class), those plus the
    dangerous one, the dangerous one alone, and each of its interfaces replaced by it (``equals``
    compares sizes)."""
    operator, ids = rule.attributes.get("id", ("equals", ("*:*",)))
    device_id = _concrete(ids[0], "0000") if operator in ("equals", "one-of") else "0000:0000"
    bad = f"{danger}:00:00"
    own = tuple(_concrete(v, "00") if not v.startswith("*") else bad
                for v in rule.attributes.get("with-interface", ("equals", (f"{HID}:*:*",)))[1])
    sets = [own, (*own, bad), (bad,), *((*own[:i], bad, *own[i + 1:]) for i in range(len(own)))]
    return [(device_id, s) for s in dict.fromkeys(sets) if any(i.startswith(f"{danger}:") for i in s)]


def unsafe_allow_rules(rules: list[Rule], dangerous: list[str]) -> dict[str, str]:
    """Each ``allow`` rule that decides for some device carrying an interface of a ``dangerous``
    class (in first-match order, as the daemon evaluates): rule text -> the device it allows.

    >>> rules = [parse_rule('allow with-interface one-of { 03:*:* }')]
    >>> unsafe_allow_rules(rules, ["08"])
    {'allow with-interface one-of { 03:*:* }': 'interfaces 03:00:00 08:00:00'}
    >>> unsafe_allow_rules([parse_rule('block with-interface one-of { 08:*:* }'), *rules], ["08"])
    {}
    """
    unsafe: dict[str, str] = {}
    for rule in (r for r in rules if r.target == "allow"):
        for danger in dangerous:
            hit = next((p for p in _probes(rule, danger) if decide(rules, *p, judged=rule) is rule), None)
            if hit:
                device = f"id {hit[0]} " if "id" in rule.attributes else ""
                unsafe[rule.text] = f"{device}interfaces {' '.join(hit[1])}"
                break
    return unsafe


# -- attached devices -----------------------------------------------------------------------------

def parse_sysfs_listing(output: str) -> list[UsbDevice]:
    """Devices from the output of :data:`SYSFS_LISTING_COMMAND`; an unreadable line raises
    :class:`ObservationError` (a device the parser skipped would never be judged).

    >>> parse_sysfs_listing("1-1|0781|5567|1|Cruzer Blade|08 \\n")[0].interfaces
    ('08',)
    """
    return [_sysfs_device(line) for line in output.splitlines() if line.strip()]


def _sysfs_device(line: str) -> UsbDevice:
    parts = line.split("|")
    if len(parts) != 6:
        raise ObservationError(f"USB device listing: unreadable line {line[:200]!r}")
    port, vendor, product, authorized, name, classes = (p.strip() for p in parts)
    device = UsbDevice(port=port, vendor=vendor.lower(), product=product.lower(),
                       interfaces=tuple(c.lower() for c in classes.split()),
                       authorized=authorized != "0", name=name)
    ids_ok = all(re.fullmatch(r"[0-9a-f]{4}", x) for x in (device.vendor, device.product))
    classes_ok = all(re.fullmatch(r"[0-9a-f]{2}", c) for c in device.interfaces)
    if not (port and ids_ok and classes_ok and authorized in ("0", "1", "")):
        raise ObservationError(f"USB device listing: unreadable line {line[:200]!r}")
    return device


def _unquote(label: str) -> str:
    return re.sub(r"\\(.)", r"\1", label[1:-1]) if label.startswith('"') else label


def verdict(device: UsbDevice, settings: Settings) -> tuple[Literal["allow", "block"], str]:
    """What the profile's policy does with a device, and the rule (label) that decides.

    Evaluated on :func:`usbguard_rules` the way USBGuard does (:func:`decide`). Without USBGuard
    only the driver block applies: a device is then "not allowed" when it has a blocked
    interface class.

    >>> verdict(UsbDevice(port="1-1", vendor="0781", product="5567", interfaces=("08",)), Settings())
    ('block', 'hardening: blocked classes')
    >>> verdict(UsbDevice(port="1-2", vendor="1234", product="0001", interfaces=("03", "ff")), Settings())
    ('block', 'hardening: blocked classes')
    """
    if not settings.usbguard:
        if settings.storage == "block" and set(settings.block_interface_classes) & set(device.interfaces):
            return "block", "hardening: blocked classes"
        return "allow", "no USBGuard in the profile"
    rules = [parse_rule(r) for r in usbguard_rules(settings)]
    rule = decide(rules, f"{device.vendor}:{device.product}", tuple(f"{c}:00:00" for c in device.interfaces))
    if rule is None:
        return "block", "implicit policy: block"
    label = _unquote(rule.attributes.get("label", ("equals", ("",)))[1][0])
    return ("allow" if rule.target == "allow" else "block"), label


def violations(devices: list[UsbDevice], settings: Settings) -> list[UsbDevice]:
    """Attached devices the profile does not allow that are authorized (usable) now."""
    return [d for d in devices if d.authorized and verdict(d, settings)[0] == "block"]


def lockout_risks(devices: list[UsbDevice], settings: Settings) -> list[UsbDevice]:
    """Attached devices with a keyboard (HID) interface that the policy would block.

    >>> kbd = UsbDevice(port="1-3", vendor="1234", product="0001", interfaces=("03", "08"))
    >>> [d.port for d in lockout_risks([kbd], Settings())]
    ['1-3']
    """
    if not settings.usbguard:
        return []
    return [d for d in devices if HID in d.interfaces and verdict(d, settings)[0] == "block"]


# -- observations: what the checks judge and the deploy decides from (one batch per host) ---------

PROC_MODULES = "cat /proc/modules"
# First line of :func:`modprobe_installs` when no blocked module was loaded (nothing needs it).
INSTALLS_NOT_READ = "# modprobe -c not read: no blocked module loaded"
MODPROBE_CONF_READ = quote("cat %s", MODPROBE_CONF)
INITRAMFS_TOOL = "command -v update-initramfs"
USBGUARD_INSTALLED = "command -v usbguard-daemon"
USBGUARD_ENABLED = "systemctl is-enabled usbguard.service"
USBGUARD_ACTIVE = "systemctl is-active usbguard.service"
USBGUARD_LIST_RULES = "usbguard list-rules"
DAEMON_CONF_READ = quote("cat %s", USBGUARD_DAEMON_CONF)
RULES_SHA256 = quote("sha256sum %s", USBGUARD_RULES)
# The rules file as USBGuard reads it (normalised like list-rules), to compare with the daemon's.
RULES_AS_PARSED = quote("usbguard-rule-parser -f %s", USBGUARD_RULES)
# The daemon parameters usbguard 1.1 exposes over IPC (others: "unknown parameter").
RUNNING_PARAMETERS = ("ImplicitPolicyTarget", "InsertedDevicePolicy")
LSBLK_MEDIA = "lsblk -J -o NAME,TYPE,TRAN,RM,MOUNTPOINTS"


def get_parameter(name: str) -> str:
    """The running daemon's value of a parameter (``usbguard get-parameter``)."""
    return quote("usbguard get-parameter %s", name)


def parse_rule_parser(output: str) -> list[str]:
    """The rules ``usbguard-rule-parser -f FILE`` read (its ``OUTPUT:`` lines; a comment or an
    empty line parses to an empty one); any other line raises :class:`ObservationError`.

    >>> parse_rule_parser('INPUT: # c\\nOUTPUT: \\nINPUT: allow  id 1234:*\\nOUTPUT: allow id 1234:*\\n')
    ['allow id 1234:*']
    """
    rules = []
    for line in output.splitlines():
        if line.startswith("OUTPUT: ") and line.strip() != "OUTPUT:":
            rules.append(line.removeprefix("OUTPUT: ").strip())
        elif not (line.startswith("INPUT:") or line.strip() in ("", "OUTPUT:")):
            raise ObservationError(f"usbguard-rule-parser: unreadable line {line[:200]!r}")
    return rules


def stale_rules(file_rules: list[str], loaded: list[str], wanted: list[str]) -> str:
    """Why the rules file and the daemon's loaded rules differ, naming the stale one; "" if equal.

    >>> stale_rules(["a"], ["b"], ["b"])[:58]
    'the rules file differs from the rules the daemon loaded: t'
    """
    if file_rules == loaded:
        return ""
    if loaded == wanted:
        return ("the rules file differs from the rules the daemon loaded: the file was changed and the "
                "daemon not restarted (the file will take effect at its next start)")
    if file_rules == wanted:
        return ("the daemon's rules differ from its rules file: changed at run time (usbguard "
                "append-rule -t / remove-rule) or the file was restored without a restart; the daemon is stale")
    return "the rules file and the daemon's loaded rules differ from each other and from the profile"


def stale_parameter(name: str, running: str, configured: str, wanted: str) -> str:
    """Why a daemon parameter is not the wanted one, naming the stale side; "" if both are right.

    >>> stale_parameter("ImplicitPolicyTarget", "allow", "block", "block").split(": ")[1]
    'the daemon runs with allow, its file says block'
    """
    if running == configured == wanted:
        return ""
    if running.startswith("(unread"):
        return f"{name}: the daemon's value cannot be read {running}: is usbguard running?"
    if configured == wanted:
        return (f"{name}: the daemon runs with {running}, its file says {configured}: set at run time "
                "(usbguard set-parameter); the running value is the stale one")
    if running == wanted:
        return (f"{name}: the file says {configured}, the daemon runs with {running}: the file was changed "
                "and the daemon not restarted (it takes effect at the next start)")
    return f"{name}: the daemon runs with {running}, the file says {configured}, the profile wants {wanted}"


def removable_media(lsblk: Any) -> list[str]:
    """SD/MMC and optical block devices in ``lsblk -J`` output (``name tran type [mounts]``);
    raises :class:`ObservationError` when it is not lsblk's tree.

    >>> removable_media({"blockdevices": [{"name": "sr0", "tran": "ata", "type": "rom", "mountpoints": [None]},
    ...                                   {"name": "vda", "tran": None, "type": "disk", "mountpoints": ["/"]}]})
    ['sr0 (ata, rom)']
    """
    if not isinstance(lsblk, dict) or not isinstance(lsblk.get("blockdevices"), list):
        raise ObservationError(f"lsblk: no device tree: {str(lsblk)[:200]!r}")
    found = []
    for dev in lsblk["blockdevices"]:
        if not isinstance(dev, dict) or not isinstance(dev.get("name"), str):
            raise ObservationError(f"lsblk: unreadable device {str(dev)[:200]!r}")
        if dev["name"].startswith("mmcblk") or dev.get("tran") == "mmc" or dev.get("type") == "rom":
            mounts = _mounts(dev)
            found.append(f"{dev['name']} ({dev.get('tran') or '-'}, {dev.get('type')})"
                         + (f" mounted on {', '.join(mounts)}" if mounts else ""))
    return found


def _mounts(dev: dict[str, Any]) -> list[str]:
    mounts = [m for m in dev.get("mountpoints") or [] if m]
    for child in dev.get("children") or []:
        mounts += _mounts(child)
    return mounts


def modprobe_installs(modules: list[str], proc_modules: str = "/proc/modules") -> str:
    """The install lines of the configuration modprobe uses, read only if one of ``modules`` is
    loaded (only then does the check need them: ``modprobe -c`` prints about 2 MB and takes
    seconds on a slow host). The exit code is modprobe's own."""
    loaded = "|".join(kernel_name(m) for m in modules)
    return (f"grep -qE '^({loaded}) ' {proc_modules} || {{ echo '{INSTALLS_NOT_READ}'; exit 0; }}; "
            "c=$(modprobe -c) || exit; printf '%s\\n' \"$c\" | grep '^install ' || true")


def modprobe_dry_run(module: str) -> str:
    """What modprobe would do to load ``module`` (``-n``: nothing is loaded)."""
    return quote("modprobe -n -v %s", module)


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch."""
    settings: Settings = profile.measure("usb")
    blocked = blocked_modules(settings)
    commands = [modprobe_dry_run(m) for m in blocked]
    if blocked:
        commands.append(modprobe_installs(blocked))
    commands += [MODPROBE_CONF_READ, PROC_MODULES, INITRAMFS_TOOL, SYSFS_LISTING_COMMAND]
    if settings.removable_media == "block":
        commands.append(LSBLK_MEDIA)
    commands += in_use_observations(settings)
    if settings.usbguard:
        commands += [USBGUARD_INSTALLED, USBGUARD_ENABLED, USBGUARD_ACTIVE, USBGUARD_LIST_RULES,
                     DAEMON_CONF_READ, RULES_SHA256, RULES_AS_PARSED]
        commands += [get_parameter(p) for p in RUNNING_PARAMETERS]
    return commands


def block_seen(module: str, dry_run: Observation, installs: Observation) -> str:
    """What blocks ``module``, as the check reports it (:func:`module_blocked` judges it).

    ``modprobe -n -v`` prints what it would run; for a module loaded now it prints nothing, so
    the install line of ``modprobe -c`` stands in (:func:`modprobe_installs`). Raises
    ObservationError when that is unreadable or was not read.

    >>> o = lambda rc, out: Observation("o0", "c", rc, out, "", 0.0)
    >>> block_seen("uas", o(0, ""), o(0, "install uas /bin/false\\n"))
    'loaded now; modprobe -c: install uas /bin/false'
    """
    if dry_run.rc == 0 and not dry_run.stdout.strip():
        if installs.rc != 0:
            raise ObservationError(f"modprobe -c failed (exit {installs.rc}): {installs.stderr.strip()[:200]}")
        if installs.stdout.startswith(INSTALLS_NOT_READ):
            raise ObservationError(f"{module} was loaded for modprobe -n -v but no blocked module was loaded "
                                   "a moment later (modprobe -c not read): observe again")
        return f"loaded now; modprobe -c: {configured_install(installs.stdout, module) or 'no install line'}"
    return dry_run.stdout.strip() or f"(exit {dry_run.rc}) {dry_run.stderr.strip()}".strip()


# -- deploy decisions from the observations -------------------------------------------------------

def ineffective_blocks(settings: Settings, seen: dict[str, str], conf_on_host: str | None) -> list[str]:
    """Blocks that do not take effect although the modprobe file is already the wanted one.

    Writing the file again would change nothing: another modprobe.d file overrides it (the first
    ``install`` line of a module wins). ``seen`` is :func:`block_seen` per blocked module.

    >>> s = Settings(block_thunderbolt_firewire=False, removable_media="allow")
    >>> ineffective_blocks(s, {"usb-storage": "insmod /x/usb-storage.ko", "uas": "install /bin/false"},
    ...                    modprobe_conf(s))
    ['usb-storage: insmod /x/usb-storage.ko']
    """
    if conf_on_host != modprobe_conf(settings):
        return []
    return [f"{m}: {seen[m]}" for m in blocked_modules(settings) if not module_blocked(seen[m])]


def unload_order(proc_modules: str, modules: list[str]) -> list[str]:
    """The loaded ones of ``modules`` (kernel names), each after the ones among them that use it.

    >>> unload_order("usb_storage 81920 1 uas, Live 0x0\\nuas 32768 0 - Live 0x0\\n", ["usb-storage", "uas"])
    ['uas', 'usb_storage']
    """
    loaded = parse_proc_modules(proc_modules)
    todo = [kernel_name(m) for m in modules if kernel_name(m) in loaded]
    order: list[str] = []
    while todo:
        ready = [m for m in todo if not loaded[m] & (set(todo) - {m})]
        order.append((ready or todo)[0])
        todo.remove(order[-1])
    return order


def unload_command(modules: list[str], proc_modules: str = "/proc/modules") -> str:
    """Shell: unload each of ``modules`` still loaded, in order; fail naming the ones in use.

    A module is checked again just before: unloading one (``uas``) can take an unused dependency
    (``usb_storage``) with it.
    """
    return (
        f"failed=; for m in {' '.join(modules)}; do grep -q \"^$m \" {proc_modules} || continue; "
        'modprobe -r "$m" || failed="$failed $m"; done; [ -z "$failed" ] || { '
        'echo "usb: cannot unload$failed: in use (a mounted USB disk, or a driver that uses it); '
        'unmount or detach it, then deploy again" >&2; '
        f'for m in $failed; do grep "^$m " {proc_modules} >&2; done; exit 1; }}'
    )


def restart_reasons(settings: Settings, active: str, list_rules: Observation,
                    devices: list[UsbDevice], parameters: dict[str, Observation] | None = None) -> list[str]:
    """Why USBGuard must be (re)started although its files may be unchanged; [] if it runs right.

    ``PresentDevicePolicy=apply-policy`` makes a restart re-judge the attached devices, so a
    device allowed at run time (``usbguard allow-device``) is blocked again.
    """
    if active != "active":
        return [f"not running ({active or 'unknown'})"]
    reasons = []
    if list_rules.rc != 0:
        reasons.append(f"usbguard list-rules failed (exit {list_rules.rc})")
    else:
        try:
            if parse_list_rules(list_rules.stdout) != usbguard_rules(settings):
                reasons.append("the rules it enforces differ from the profile's")
        except ObservationError:
            reasons.append("its rules are unreadable (usbguard list-rules)")
    bad = violations(devices, settings)
    if bad:
        reasons.append("authorized against the profile: " + "; ".join(d.describe() for d in bad))
    wanted = parse_daemon_conf(usbguard_daemon_conf(settings), RUNNING_PARAMETERS)
    running = {name: running_value(obs) for name, obs in (parameters or {}).items()}
    differ = [f"{name}={value}" for name, value in running.items() if value != wanted.get(name)]
    if differ:
        reasons.append("it runs with " + ", ".join(differ))
    return reasons


def running_value(observation: Observation) -> str:
    """A parameter's value from ``usbguard get-parameter`` (or why there is none)."""
    if observation.rc != 0:
        return f"(unread: exit {observation.rc}: {observation.stderr.strip()[:200]})"
    return observation.stdout.strip()


# -- in use now: what the policy must not cut off (the deploy refuses before it changes anything) --

# The block stack as lsblk sees it: each disk with its partitions, dm-crypt, LVM and md devices as
# children, and every mount (a file system, or "[SWAP]" for swap in use) on each level.
LSBLK_STACK = "lsblk -J -o PATH,NAME,TYPE,TRAN,SUBSYSTEMS,MOUNTPOINTS"
# The sysfs device path of each block device, network interface and USB tty, as ``<link>|<path>``
# (e.g. ``/sys/class/net/usb0|/sys/devices/pci0000:00/0000:00:06.0/usb1/1-2/1-2:1.1/net/usb0``):
# the USB port in it names the device :data:`SYSFS_LISTING_COMMAND` lists.
SYSFS_PATHS = (
    "for d in /sys/block/* /sys/class/net/* /sys/class/tty/ttyUSB* /sys/class/tty/ttyACM*; do "
    '[ -e "$d" ] || continue; printf \'%s|%s\\n\' "$d" "$(readlink -f "$d")"; done'
)
# PCI devices the kernel marks removable (below an external-facing port: Thunderbolt/USB4 PCIe
# tunnels), as resolved sysfs paths, one a line.
EXTERNAL_PCI = ("for d in /sys/bus/pci/devices/*; do [ \"$(cat \"$d/removable\" 2>/dev/null)\" = removable ] && "
                'readlink -f "$d"; done; true')
IP_ADDR = "ip -j addr"
# IPv6 routes only where the kernel has IPv6 (booted with ipv6.disable=1 it has none: no routes).
IP_ROUTES = ("ip -j route show table main",
             "[ -e /proc/net/if_inet6 ] || { echo '[]'; exit 0; }; ip -6 -j route show table main")
KERNEL_CMDLINE = "cat /proc/cmdline"
SERIAL_GETTYS = "systemctl list-units --all -o json 'serial-getty@*'"
# Login sessions, read only when a USB tty exists (no session can sit on one otherwise).
NO_USB_TTY = "# no USB tty"
SESSIONS = (f"ls /sys/class/tty | grep -qE '^tty(USB|ACM)[0-9]' || {{ echo '{NO_USB_TTY}'; exit 0; }}; "
            "loginctl list-sessions -o json")
USB_TTY = re.compile(r"tty(?:USB|ACM)\d+")
_USB_PORT = re.compile(r"\d+-\d+(?:\.\d+)*")


def in_use_observations(settings: Settings) -> list[str]:
    """The commands :func:`storage_in_use`, :func:`network_in_use` and :func:`serial_consoles_in_use`
    judge (only what the profile's policy could cut off)."""
    commands: list[str] = []
    if settings.storage == "block" or settings.usbguard or settings.block_thunderbolt_firewire:
        commands += [LSBLK_STACK, SYSFS_PATHS]
    if settings.block_thunderbolt_firewire:
        commands.append(EXTERNAL_PCI)
    if settings.usbguard:
        commands += [SYSFS_PATHS, IP_ADDR, *IP_ROUTES, KERNEL_CMDLINE, SERIAL_GETTYS, SESSIONS]
    return list(dict.fromkeys(commands))


def parse_sysfs_paths(output: str) -> dict[str, str]:
    """:data:`SYSFS_PATHS` output: link -> resolved device path; raises on an unreadable line.

    >>> parse_sysfs_paths("/sys/block/sda|/sys/devices/pci0000:00/0000:00:06.0/usb2/2-1/2-1:1.0/host2/block/sda\\n")
    {'/sys/block/sda': '/sys/devices/pci0000:00/0000:00:06.0/usb2/2-1/2-1:1.0/host2/block/sda'}
    """
    paths = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        link, sep, target = line.partition("|")
        if not sep or not link.startswith("/sys/") or not target.startswith("/sys/"):
            raise ObservationError(f"sysfs device paths: unreadable line {line[:200]!r}")
        paths[link] = target
    return paths


def usb_port(sysfs_path: str) -> str | None:
    """The USB device (port, as in /sys/bus/usb/devices) a sysfs device path sits on; None if it is
    not on a USB bus. The last port component wins (a device behind a hub: ``1-2.3``).

    >>> usb_port("/sys/devices/pci0000:00/0000:00:06.0/usb1/1-2/1-2.3/1-2.3:1.1/net/usb0")
    '1-2.3'
    >>> usb_port("/sys/devices/pci0000:00/0000:00:05.0/virtio2/net/eth0") is None
    True
    """
    parts = sysfs_path.split("/")
    if not any(re.fullmatch(r"usb\d+", p) for p in parts):
        return None
    ports = [p for p in parts if _USB_PORT.fullmatch(p)]
    return ports[-1] if ports else None


def _usb_cut_off(port: str | None, devices: list[UsbDevice], settings: Settings) -> str | None:
    """Why USBGuard would block the USB device on ``port`` (None: it would allow it)."""
    if not settings.usbguard:
        return None
    device = next((d for d in devices if d.port == port), None)
    if device is None:
        return (f"USB device {port or '(port unknown)'} is not in the USB device listing: "
                "the policy cannot be judged for it")
    decision, rule = verdict(device, settings)
    if decision == "allow":
        return None
    return f"USBGuard would block USB device {device.describe()} (rule: {rule})"


def _allow_by_id(port: str | None, devices: list[UsbDevice]) -> str:
    device = next((d for d in devices if d.port == port), None)
    if device is None:
        return "allow the device by id in the profile (measures.usb.allow: {name, vendor, product})"
    return (f"allow it by id in the profile (measures.usb.allow: {{name: ..., vendor: \"{device.vendor}\", "
            f"product: \"{device.product}\"}})")


def _block_node(node: Any) -> dict[str, Any]:
    ok = (isinstance(node, dict) and isinstance(node.get("path"), str) and isinstance(node.get("type"), str)
          and isinstance(node.get("mountpoints"), list)
          and all(m is None or isinstance(m, str) for m in node["mountpoints"])
          and isinstance(node.get("children", []), list)
          and all(isinstance(node.get(k), str | None) for k in ("tran", "subsystems")))
    if not ok:
        raise ObservationError(f"lsblk: unreadable device {str(node)[:300]!r}")
    return node


def _stack_mounts(node: dict[str, Any], chain: tuple[str, ...]) -> list[tuple[str, tuple[str, ...], list[str]]]:
    """Every device under ``node`` (itself included) with a mount: (path, chain from the disk, mounts)."""
    chain = (*chain, f"{node['type']} {node['path']}")
    found = []
    mounts = [m for m in node["mountpoints"] if m]
    if mounts:
        found.append((node["path"], chain, mounts))
    for child in node.get("children") or []:
        found += _stack_mounts(_block_node(child), chain)
    return found


def storage_transport(disk: dict[str, Any], sysfs_path: str = "", external_pci: tuple[str, ...] = ()) -> str | None:
    """``usb``, ``firewire`` or ``thunderbolt`` when the disk is attached that way: as lsblk shows
    it (TRAN, SUBSYSTEMS), or, for PCIe tunnelled over Thunderbolt/USB4 (an NVMe disk, whose
    SUBSYSTEMS say only ``block:nvme:pci``), by its sysfs path under a PCI device the kernel marks
    removable (behind an external-facing port: :data:`EXTERNAL_PCI`).

    >>> storage_transport({"tran": "usb", "subsystems": "block:scsi:usb:pci"})
    'usb'
    >>> storage_transport({"tran": "sbp", "subsystems": "block:scsi:firewire:pci"})
    'firewire'
    >>> storage_transport({"tran": "nvme", "subsystems": "block:nvme:pci"},
    ...                   "/sys/devices/pci0000:00/0000:00:07.0/0000:20:00.0/nvme/nvme1/nvme1n1",
    ...                   ("/sys/devices/pci0000:00/0000:00:07.0/0000:20:00.0",))
    'thunderbolt'
    """
    subsystems = (disk.get("subsystems") or "").split(":")
    tran = disk.get("tran") or ""
    if tran == "usb" or "usb" in subsystems:
        return "usb"
    if tran in ("sbp", "firewire") or "firewire" in subsystems:
        return "firewire"
    if "thunderbolt" in subsystems or any(sysfs_path.startswith(p + "/") for p in external_pci):
        return "thunderbolt"
    return None


def parse_external_pci(output: str) -> tuple[str, ...]:
    """:data:`EXTERNAL_PCI` output: sysfs paths of removable PCI devices; raises on anything else."""
    paths = tuple(line.strip() for line in output.splitlines() if line.strip())
    bad = [p for p in paths if not re.fullmatch(r"/sys/devices/\S+", p)]
    if bad:
        raise ObservationError(f"removable PCI devices: unreadable line {bad[0][:200]!r}")
    return paths


def storage_in_use(lsblk: Any, paths: dict[str, str], devices: list[UsbDevice], settings: Settings,
                   external_pci: tuple[str, ...] = ()) -> list[str]:
    """Each mounted file system or swap in use on a USB (FireWire, Thunderbolt) disk that the
    profile would cut off, followed through the whole stack (partition, dm-crypt, LVM, md RAID),
    named with its mounts, its stack and what to do; raises :class:`ObservationError` when
    ``lsblk`` is not lsblk's device tree.

    A USB disk is cut off by ``storage: block`` (no usb-storage/uas driver) or by USBGuard blocking
    its device; a FireWire or Thunderbolt disk by ``block_thunderbolt_firewire: true``.

    >>> disk = {"path": "/dev/sda", "name": "sda", "type": "disk", "tran": "usb", "subsystems": "block:scsi:usb:pci",
    ...         "mountpoints": [None], "children": [{"path": "/dev/sda1", "type": "part", "tran": None,
    ...         "subsystems": "block:scsi:usb:pci", "mountpoints": ["/srv/stick"]}]}
    >>> storage_in_use({"blockdevices": [disk]}, {}, [], Settings(usbguard=False))[0][:74]
    '/dev/sda1 mounted on /srv/stick (part /dev/sda1 on USB disk /dev/sda): the'
    """
    if not isinstance(lsblk, dict) or not isinstance(lsblk.get("blockdevices"), list):
        raise ObservationError(f"lsblk: no device tree: {str(lsblk)[:200]!r}")
    found = []
    for disk in (_block_node(d) for d in lsblk["blockdevices"]):
        sysfs_path = paths.get(f"/sys/block/{disk['path'].removeprefix('/dev/')}", "")
        transport = storage_transport(disk, sysfs_path, external_pci)
        if transport is None:
            continue
        mounted = _stack_mounts(disk, ())
        if not mounted:
            continue
        why, todo = _storage_cut_off(transport, disk, paths, devices, settings)
        if not why:
            continue
        kind = "USB" if transport == "usb" else transport
        for path, chain, mounts in mounted:
            stack = " on ".join([*reversed(chain[1:]), f"{kind} disk {disk['path']}"])
            used = "in use as swap" if mounts == ["[SWAP]"] else "mounted on " + ", ".join(mounts)
            boot = " (the host would not boot again)" if {"/", "/boot"} & set(mounts) else ""
            found.append(f"{path} {used} ({stack}): {'; '.join(why)}{boot}; {todo}")
    return found


def _storage_cut_off(transport: str, disk: dict[str, Any], paths: dict[str, str], devices: list[UsbDevice],
                     settings: Settings) -> tuple[list[str], str]:
    """Why the profile cuts off a disk on ``transport`` ([] if it does not), and what to do."""
    unmount = "or unmount it (swapoff for swap) and deploy again"
    if transport in ("firewire", "thunderbolt"):
        if not settings.block_thunderbolt_firewire:
            return [], ""
        return ([f"the profile blocks the {transport} drivers (block_thunderbolt_firewire: true)"],
                f"what to do: set block_thunderbolt_firewire: false in the profile, {unmount}")
    name = disk["path"].removeprefix("/dev/")
    port = usb_port(paths.get(f"/sys/block/{name}", ""))
    why, todo = [], []
    if settings.storage == "block":
        why.append("the profile blocks the USB storage drivers usb-storage and uas (storage: block)")
        todo.append("set storage: allow in the profile")
    blocked = _usb_cut_off(port, devices, settings)
    if blocked:
        why.append(blocked)
        todo.append(_allow_by_id(port, devices))
    return why, "what to do: " + " and ".join(todo) + f", {unmount}"


def _addresses(iface: dict[str, Any]) -> list[str]:
    info = iface.get("addr_info")
    if not isinstance(info, list) or not all(isinstance(a, dict) and isinstance(a.get("local"), str) for a in info):
        raise ObservationError(f"ip -j addr: unreadable interface {str(iface)[:300]!r}")
    return [f"{a['local']}/{a.get('prefixlen')}" for a in info if a.get("scope") != "link"]


def _routes(routes: Any, ifname: str) -> list[str]:
    if not isinstance(routes, list) or not all(isinstance(r, dict) and isinstance(r.get("dst"), str) for r in routes):
        raise ObservationError(f"ip -j route: unreadable {str(routes)[:300]!r}")
    return [r["dst"] + (f" via {r['gateway']}" if r.get("gateway") else "") for r in routes
            if r.get("dev") == ifname and not r["dst"].startswith(("fe80:", "ff00:", "multicast"))]


def network_in_use(addr: Any, routes: list[Any], paths: dict[str, str], devices: list[UsbDevice],
                   settings: Settings) -> list[str]:
    """Each network interface on a USB device that is up with an address (not link-local) or a
    route, and that USBGuard would block; raises :class:`ObservationError` on unreadable ``ip -j``
    output or an interface sysfs does not show.

    >>> addr = [{"ifname": "usb0", "flags": ["UP"], "addr_info": [{"local": "10.0.9.15", "prefixlen": 24,
    ...          "scope": "global"}]}]
    >>> network_in_use(addr, [[]], {"/sys/class/net/usb0": "/sys/devices/pci0000:00/usb1/1-2/1-2:1.1/net/usb0"},
    ...                [UsbDevice("1-2", "0525", "a4a2", ("02", "0a"))], Settings())[0][:60]
    'network interface usb0 is up with 10.0.9.15/24 (no route): U'
    """
    if not settings.usbguard:
        return []
    if not isinstance(addr, list):
        raise ObservationError(f"ip -j addr: not a list of interfaces: {str(addr)[:200]!r}")
    found = []
    for iface in addr:
        if not isinstance(iface, dict) or not isinstance(iface.get("ifname"), str) \
                or not isinstance(iface.get("flags"), list):
            raise ObservationError(f"ip -j addr: unreadable interface {str(iface)[:300]!r}")
        name = iface["ifname"]
        addresses = _addresses(iface)
        via = [r for table in routes for r in _routes(table, name)]
        path = paths.get(f"/sys/class/net/{name}")
        if path is None:
            raise ObservationError(f"network interface {name}: not in /sys/class/net (sysfs device paths)")
        port = usb_port(path)
        if port is None:
            continue
        if "UP" not in iface["flags"] or not (addresses or via):
            continue
        blocked = _usb_cut_off(port, devices, settings)
        if blocked:
            found.append(f"network interface {name} is up with {', '.join(addresses) or 'no address'} "
                         f"({'routes ' + ', '.join(via) if via else 'no route'}): {blocked}; "
                         f"what to do: {_allow_by_id(port, devices)}, or take the interface down and deploy again")
    return found


def parse_sessions(output: str) -> list[dict[str, Any]]:
    """``loginctl list-sessions -o json`` (or :data:`NO_USB_TTY`: none read, none can be on a USB
    tty); raises :class:`ObservationError` on anything else."""
    if output.strip() == NO_USB_TTY:
        return []
    try:
        sessions = json.loads(output)
    except json.JSONDecodeError as exc:
        raise ObservationError(f"loginctl list-sessions printed no JSON ({exc}): {output[:200]!r}") from None
    if not isinstance(sessions, list) or not all(isinstance(s, dict) for s in sessions):
        raise ObservationError(f"loginctl list-sessions: unreadable {output[:200]!r}")
    return sessions


def serial_consoles_in_use(cmdline: str, units: Any, sessions: list[dict[str, Any]], paths: dict[str, str],
                           devices: list[UsbDevice], settings: Settings) -> list[str]:
    """Each USB serial tty (ttyUSB*, ttyACM*) used as a console (``console=`` on the kernel command
    line, an active ``serial-getty@`` unit, a login session on it) that USBGuard would block, or
    that is not attached now (the policy cannot be judged for it); raises
    :class:`ObservationError` on an unreadable unit listing.

    >>> serial_consoles_in_use("root=/dev/vda console=ttyUSB0,115200", [], [], {}, [], Settings())[0][:56]
    'serial console ttyUSB0 (console=ttyUSB0 on the kernel co'
    """
    if not settings.usbguard:
        return []
    uses: dict[str, list[str]] = {}
    for tty in re.findall(r"(?:^|\s)console=(tty(?:USB|ACM)\d+)", cmdline):
        uses.setdefault(tty, []).append(f"console={tty} on the kernel command line")
    if not isinstance(units, list):
        raise ObservationError(f"systemctl list-units: unreadable {str(units)[:200]!r}")
    for unit in units:
        if not isinstance(unit, dict) or not isinstance(unit.get("unit"), str):
            raise ObservationError(f"systemctl list-units: unreadable unit {str(unit)[:200]!r}")
        match = re.fullmatch(r"serial-getty@(tty(?:USB|ACM)\d+)\.service", unit["unit"])
        if match and unit.get("active") in ("active", "activating", "reloading"):
            uses.setdefault(match.group(1), []).append(f"{unit['unit']} {unit.get('active')}")
    for session in sessions:
        tty = str(session.get("tty") or "")
        if USB_TTY.fullmatch(tty):
            uses.setdefault(tty, []).append(f"login session {session.get('session')} of {session.get('user')}")
    found = []
    for tty, why in uses.items():
        path = paths.get(f"/sys/class/tty/{tty}")
        used = f"serial console {tty} ({'; '.join(why)})"
        if path is None:
            found.append(f"{used} is not attached now: whether the policy blocks its device cannot be judged; "
                         "what to do: attach it and deploy again, or remove it from the console configuration")
            continue
        port = usb_port(path)
        blocked = _usb_cut_off(port, devices, settings)
        if blocked:
            found.append(f"{used}: {blocked}; what to do: {_allow_by_id(port, devices)}, or stop using it as a "
                         "console (stop its getty, remove console= from the kernel command line)")
    return found


MEASURE = Measure(
    name="usb",
    title="restrict recording devices (USB memory, smartphones) on terminals and servers",
    clauses=('6-11', '7-1'),
    order=70,
    settings=Settings,
    observe=observe,
)
