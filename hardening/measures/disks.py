"""disks (7-5, technical side): RAID arrays and disks healthy where the hardware has them.

Clause 7-5 asks that servers survive disasters and failures; of that, a host can show whether its
redundant storage still is redundant and whether its disks report themselves healthy. This
measure only checks (``no_deploy``): an array or a disk is repaired by a person replacing
hardware, which no deploy can do; how an agency wants to be alerted is its own choice.

* **md RAID** (:func:`judge_arrays`): the kernel's list of arrays (``/proc/mdstat``) and, per
  array, ``mdadm --detail`` and ``mdadm --detail --export``, parsed strictly (anything not
  understood is an error, never a pass). An array passes when it is active, its state is clean
  or active without ``degraded``, ``FAILED`` or ``Not Started``, every slot holds an
  ``active sync`` member and none is faulty. Degraded, failed, removed or rebuilding members
  fail, naming the array and the member (its serial from lsblk; for a removed one, the disk
  whose superblock still names the array, from ``mdadm --examine --scan --verbose``, or else
  the empty slot).

  Synchronisation in progress, decided by what it means for redundancy:

  - ``recovery`` (a member being rebuilt after a failure or a replacement): the array is
    degraded until it ends: **fail**, with the progress.
  - ``resync`` (after creation or an unclean shutdown) and ``reshape``: every member is present
    but the copies or the parity are not yet known to agree, so a disk lost now can lose data;
    it ends by itself: **advisory** (shown, not a failure).
  - ``check`` and ``repair`` (the periodic scrub, Debian's ``checkarray``/``mdcheck``): routine,
    redundancy intact: **pass**, recorded.

* **the profile's requirement** ``hardware.raid`` (hwprofiles, :class:`hardening.profiles.Hardware`):
  ``true`` and no redundant md array (none, or only raid0/linear, which have no redundancy) is
  a **failure**; ``false`` and no array is **not applicable**, with that reason. A hardware RAID
  controller's volumes are not md arrays and are not read (its vendor tool would be needed).
* **SMART** (:func:`judge_smart`): every non-removable disk lsblk lists, plus what
  ``smartctl --scan-open`` finds behind controllers, read with ``smartctl --json -H -i``. The
  overall health must be PASSED; FAILED fails naming the disk; SMART present but disabled fails
  (the disk's own health check is off). A disk whose transport has no SMART (virtio, Xen) is
  reported as "no SMART", never as a pass of SMART; when no disk has SMART the check is not
  applicable, naming them. No profile key requires SMART: what a host's disks can report is a
  fact of its hardware, and whole classes of servers (VMs) have none.
* **alerts** (:func:`judge_monitor`): where arrays exist, ``mdadm --monitor`` must run and have
  somewhere to send an alert: ``PROGRAM`` (executable) or ``MAILADDR`` with a mailer
  (``/usr/sbin/sendmail``) installed, read from the files mdadm reads (Debian: ``/etc/mdadm/
  mdadm.conf`` and ``mdadm.conf.d``, else ``/etc/mdadm.conf``) or from the monitor's command
  line (``--mail``, ``--program``). Debian's default ``MAILADDR root`` on a host without a
  mailer sends nothing: a failure nobody hears of.
* **containers**: ``/proc/mdstat`` and the disks seen inside a container are the machine's,
  judged on the machine: not applicable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from hardening.measures._base import Measure, Strict
from hardening.observe import json_output


class Settings(Strict):
    """No settings: the requirement is the hardware profile's ``hardware.raid``; what the disks
    report is judged wherever they report it."""


CONTAINER = "systemd-detect-virt --container"
MDSTAT = "cat /proc/mdstat"
ARRAY_MARK = "HARDENING-MD"
SMART_MARK = "HARDENING-SMART"
CONF_MARK = "HARDENING-MDCONF"
# Per array the kernel lists, mdadm's own two views, each framed by marker lines with its exit code.
MD_DETAILS = (
    "for a in $(awk '$2 == \":\" && $1 ~ /^md/ {print $1}' /proc/mdstat 2>/dev/null); do "
    f"echo \"{ARRAY_MARK} $a detail\"; mdadm --detail \"/dev/$a\"; echo \"{ARRAY_MARK}-RC $?\"; "
    f"echo \"{ARRAY_MARK} $a export\"; mdadm --detail --export \"/dev/$a\"; echo \"{ARRAY_MARK}-RC $?\"; "
    "done")
# Superblocks on every device: names the disk that still belongs to an array it was removed from.
# Read only when an array misses a member ("_" in its [UU_] map): it opens every block device.
MD_EXAMINE = "if grep -q '\\[U*_' /proc/mdstat 2>/dev/null; then mdadm --examine --scan --verbose; fi"
LSBLK = "lsblk -J -d -o NAME,PATH,TYPE,TRAN,RM,SERIAL,MODEL,SIZE"
# Every non-removable disk lsblk lists (auto-detected type), then what smartctl finds behind
# controllers that lsblk does not list as such (megaraid,N on /dev/bus/N ...), each read once.
# Not in a container: the disks it sees are the machine's (the checks say not applicable there).
SMART = (
    "systemd-detect-virt -q --container || "
    "{ { lsblk -dnpo PATH,TYPE,RM | awk '$2 == \"disk\" && $3 == \"0\" {print $1, \"auto\"}'; "
    "smartctl --scan-open | awk '$1 ~ /^\\// && $2 == \"-d\" {print $1, $3}'; } | "
    "awk '$2 == \"auto\" {d[$1] = 1; print; next} !($1 in d)' | "
    f"while read -r dev type; do echo \"{SMART_MARK} $dev $type\"; "
    f"smartctl --json -H -i -d \"$type\" \"$dev\"; echo \"{SMART_MARK}-RC $?\"; done; }}")
MONITOR = "pgrep -a -x mdadm"
# The files mdadm --monitor reads (Debian's mdadm 4.2: /etc/mdadm/mdadm.conf, else /etc/mdadm.conf,
# each with its .d directory), each framed; then whether each PROGRAM is executable and a mailer exists.
MDADM_CONF = (
    "c=/etc/mdadm/mdadm.conf; d=/etc/mdadm/mdadm.conf.d; "
    "if [ ! -e $c ] && [ -e /etc/mdadm.conf ]; then c=/etc/mdadm.conf; d=/etc/mdadm.conf.d; fi; "
    f"for f in $c $d/*.conf; do [ -f \"$f\" ] && {{ echo \"{CONF_MARK} file $f\"; cat \"$f\"; }}; done; "
    "for p in $(cat $c $d/*.conf 2>/dev/null | awk 'tolower(substr($1, 1, 3)) == \"pro\" {print $2}'); do "
    f"if [ -x \"$p\" ]; then echo \"{CONF_MARK} program-ok $p\"; "
    f"else echo \"{CONF_MARK} program-missing $p\"; fi; done; "
    f"if [ -x /usr/sbin/sendmail ]; then echo \"{CONF_MARK} sendmail yes\"; else echo \"{CONF_MARK} sendmail no\"; fi; "
    "true")

# Levels whose arrays survive the loss of a member.
REDUNDANT = frozenset({"raid1", "raid4", "raid5", "raid6", "raid10", "multipath"})
SHOWN = 8


# -- /proc/mdstat --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    name: str        # kernel name: vdc, sda1, nvme0n1p2
    slot: int        # the number in brackets (descriptor index, not the role)
    flags: str       # "F" faulty, "S" spare, "W" write-mostly, "R" replacement, "J" journal


@dataclass(frozen=True)
class Sync:
    action: str      # resync, recovery, check, repair, reshape
    progress: str    # "19.9%" or "DELAYED" / "PENDING"


@dataclass(frozen=True)
class MdstatArray:
    name: str
    active: bool
    read_only: str           # "", "read-only" or "auto-read-only"
    level: str               # "" for an inactive array
    members: tuple[Member, ...]
    raid_disks: int | None   # [n/m]: n
    working: int | None      # [n/m]: m
    map: str                 # [UU_]
    sync: Sync | None
    metadata: str = ""       # "1.2", "external:imsm" (a container), "external:/md127/0" (its volume)

    @property
    def container(self) -> bool:
        """An external-metadata container (Intel RST/IMSM, DDF): always inactive, its volumes are
        the arrays."""
        return self.metadata.startswith("external:") and "/" not in self.metadata


_ARRAY_LINE = re.compile(r"^(md\w+) : (active|inactive)(?: \((read-only|auto-read-only)\))?(.*)$")
_MEMBER = re.compile(r"^([^\s\[\]]+)\[(\d+)\]((?:\([FSWRJ]\))*)$")
_STATUS = re.compile(r"\[(\d+)/(\d+)\] \[([U_]+)\]\s*$")
_SYNC = re.compile(r"^(?:\[[=>.]+\]\s+)?(resync|recovery|check|repair|reshape)\s*=\s*"
                   r"(\d+(?:\.\d+)?%|DELAYED|PENDING)")
_BLOCKS = re.compile(r"^\d+ blocks\b")


def parse_mdstat(stdout: str, rc: int, stderr: str = "") -> list[MdstatArray]:
    """``cat /proc/mdstat`` -> its arrays. No /proc/mdstat (the md driver not loaded) is no array;
    any line not understood is a ValueError."""
    if rc != 0:
        if "No such file" in stderr:
            return []
        raise ValueError(f"cannot read /proc/mdstat (exit {rc}): {stderr.strip()[:200]}")
    lines = stdout.splitlines()
    if not lines or not lines[0].startswith("Personalities :"):
        raise ValueError(f"/proc/mdstat does not start with 'Personalities :': {stdout[:200]!r}")
    arrays: list[MdstatArray] = []
    index = 1
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip() or line.startswith("unused devices:"):
            continue
        match = _ARRAY_LINE.match(line)
        if not match:
            raise ValueError(f"/proc/mdstat line {index} not understood: {line!r}")
        body: list[str] = []
        while index < len(lines) and lines[index].startswith((" ", "\t")):
            body.append(lines[index].strip())
            index += 1
        arrays.append(_array(match, body, index))
    return arrays


def _array(match: re.Match[str], body: list[str], where: int) -> MdstatArray:
    name, state, read_only, rest = match.groups()
    tokens = rest.split()
    level = ""
    if state == "active":
        if not tokens or _MEMBER.match(tokens[0]):
            raise ValueError(f"/proc/mdstat: {name} is active but names no personality: {match.group(0)!r}")
        level = tokens.pop(0)
    members = []
    for token in tokens:
        member = _MEMBER.match(token)
        if not member:
            raise ValueError(f"/proc/mdstat: {name}: member {token!r} not understood")
        members.append(Member(member.group(1), int(member.group(2)), member.group(3).replace("(", "").replace(")", "")))
    raid_disks = working = None
    status_map, sync, metadata = "", None, ""
    for text in body:
        if not text:
            continue
        if _BLOCKS.match(text):
            super_match = re.search(r"\bsuper (\S+)", text)
            metadata = super_match.group(1) if super_match else metadata
            status = _STATUS.search(text)
            if status:
                raid_disks, working, status_map = int(status.group(1)), int(status.group(2)), status.group(3)
            continue
        progress = _SYNC.match(text)
        if progress:
            sync = Sync(progress.group(1), progress.group(2))
            continue
        if text.startswith("bitmap:"):
            continue
        raise ValueError(f"/proc/mdstat: {name}: line not understood near line {where}: {text!r}")
    return MdstatArray(name, state == "active", read_only or "", level, tuple(members), raid_disks, working,
                       status_map, sync, metadata)


# -- mdadm --detail and --detail --export ---------------------------------------------------------

@dataclass(frozen=True)
class Slot:
    number: str        # mdadm's "Number" (or "-")
    role: str          # "RaidDevice": the slot in the array, "-" for spares and faulty members
    state: tuple[str, ...]
    device: str        # /dev/vdc, "" for a removed slot


@dataclass(frozen=True)
class Detail:
    fields: dict[str, str]
    slots: tuple[Slot, ...]

    @property
    def state(self) -> tuple[str, ...]:
        """The words of ``State :``, e.g. ("clean", "degraded", "recovering")."""
        return tuple(w.strip() for w in self.fields.get("State", "").split(",") if w.strip())

    def count(self, key: str) -> int:
        value = self.fields.get(key)
        if value is None or not value.isdigit():
            raise ValueError(f"mdadm --detail gives no number for {key!r} (got {value!r})")
        return int(value)


_TABLE_HEAD = re.compile(r"^\s*Number\s+Major\s+Minor\s+RaidDevice\s+State\s*$")
_FIELD = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s+:\s?(.*)$")
_ROW = re.compile(r"^\s*(\d+|-)\s+(\d+)\s+(\d+)\s+(\d+|-)\s+(.*?)\s*$")


def parse_detail(text: str) -> Detail:
    """``mdadm --detail /dev/mdN`` -> its fields and its device table; ValueError otherwise."""
    lines = text.splitlines()
    if not lines or not re.match(r"^/dev/\S+:$", lines[0].strip()):
        raise ValueError(f"mdadm --detail does not start with the array's path: {text[:200]!r}")
    fields: dict[str, str] = {}
    slots: list[Slot] = []
    table = False
    for line in lines[1:]:
        if not line.strip():
            continue
        if _TABLE_HEAD.match(line):
            table = True
            continue
        if table:
            row = _ROW.match(line)
            if not row:
                raise ValueError(f"mdadm --detail: device row not understood: {line!r}")
            words = row.group(5).split()
            device = words.pop() if words and words[-1].startswith("/") else ""
            if not words:
                raise ValueError(f"mdadm --detail: device row without a state: {line!r}")
            slots.append(Slot(row.group(1), row.group(4), tuple(words), device))
            continue
        match = _FIELD.match(line)
        if not match:
            raise ValueError(f"mdadm --detail: line not understood: {line!r}")
        fields[match.group(1).strip()] = match.group(2).strip()
    for key in ("Raid Level", "State"):
        if key not in fields:
            raise ValueError(f"mdadm --detail gives no {key!r}")
    if not table:
        raise ValueError("mdadm --detail prints no device table")
    return Detail(fields, tuple(slots))


def parse_export(text: str) -> dict[str, str]:
    """``mdadm --detail --export`` -> its KEY=VALUE lines; ValueError for anything else."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"MD_[A-Za-z0-9_]+", key):
            raise ValueError(f"mdadm --detail --export: line not understood: {line!r}")
        out[key] = value
    if "MD_LEVEL" not in out:
        raise ValueError("mdadm --detail --export gives no MD_LEVEL")
    return out


@dataclass(frozen=True)
class ArrayViews:
    """mdadm's two views of one array, as the batch gave them (exit code, output)."""

    detail: tuple[int, str]
    export: tuple[int, str]


def framed_blocks(stdout: str, mark: str, what: str) -> list[tuple[tuple[str, str], int, str]]:
    """``MARK a b`` … ``MARK-RC n`` blocks -> ((a, b), n, the lines between); ValueError for a
    block without an end, an end without a start or a line outside any block (``what`` names the
    program in the message)."""
    out: list[tuple[tuple[str, str], int, str]] = []
    current: tuple[str, str] | None = None
    body: list[str] = []
    for line in stdout.splitlines():
        head = re.fullmatch(rf"{mark} (\S+) (\S+)", line)
        end = re.fullmatch(rf"{mark}-RC (\d+)", line)
        if head:
            if current is not None:
                raise ValueError(f"{what} output of {current[0]} ({current[1]}) has no end")
            current, body = (head.group(1), head.group(2)), []
        elif end:
            if current is None:
                raise ValueError(f"{what} output: an end without a start")
            out.append((current, int(end.group(1)), "\n".join(body)))
            current = None
        elif current is None:
            raise ValueError(f"{what} output: line outside a block: {line!r}")
        else:
            body.append(line)
    if current is not None:
        raise ValueError(f"{what} output of {current[0]} ({current[1]}) was cut")
    return out


def parse_details(stdout: str) -> dict[str, ArrayViews]:
    """:data:`MD_DETAILS` output -> per array name its detail and export (exit code, text)."""
    out: dict[str, dict[str, tuple[int, str]]] = {}
    for (name, view), rc, text in framed_blocks(stdout, ARRAY_MARK, "mdadm"):
        if not re.fullmatch(r"md\w+", name) or view not in ("detail", "export"):
            raise ValueError(f"mdadm output: unexpected block {name} {view}")
        out.setdefault(name, {})[view] = (rc, text)
    views = {}
    for name, parts in out.items():
        if set(parts) != {"detail", "export"}:
            raise ValueError(f"mdadm output of {name} lacks {', '.join({'detail', 'export'} - set(parts))}")
        views[name] = ArrayViews(parts["detail"], parts["export"])
    return views


def parse_examine(stdout: str) -> dict[str, list[str]]:
    """``mdadm --examine --scan --verbose`` -> array UUID: the devices carrying its superblock."""
    out: dict[str, list[str]] = {}
    uuid = ""
    for line in stdout.splitlines():
        words = line.split()
        if words[:1] == ["ARRAY"]:
            uuid = next((w.split("=", 1)[1] for w in words if w.startswith("UUID=")), "")
        elif words[:1] and words[0].startswith("devices=") and uuid:
            out.setdefault(uuid, []).extend(d for d in words[0].split("=", 1)[1].split(",") if d)
    return out


# -- disks (lsblk) -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Disk:
    name: str
    path: str
    type: str
    tran: str
    removable: bool
    serial: str
    model: str
    size: str

    def shown(self) -> str:
        """``/dev/vdc (serial raid-a)``: what a person finds the disk by in the rack."""
        extra = [f"serial {self.serial}"] if self.serial else []
        extra += [self.model] if self.model else []
        return f"{self.path} ({', '.join(extra)})" if extra else self.path


def parse_lsblk(stdout: str, rc: int) -> list[Disk]:
    """:data:`LSBLK` -> every whole device lsblk lists; ValueError for output it cannot read."""
    data = json_output(rc, stdout, "lsblk")
    devices = data.get("blockdevices") if isinstance(data, dict) else None
    if not isinstance(devices, list):
        raise ValueError(f"lsblk printed no blockdevices list: {stdout[:200]!r}")
    disks = []
    for entry in devices:
        try:
            disks.append(Disk(str(entry["name"]), str(entry["path"]), str(entry["type"]), str(entry.get("tran") or ""),
                              entry.get("rm") in (True, "1", 1), str(entry.get("serial") or "").strip(),
                              str(entry.get("model") or "").strip(), str(entry.get("size") or "")))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"lsblk entry without {exc}: {entry!r}") from None
    return disks


def by_name(disks: list[Disk]) -> dict[str, Disk]:
    return {d.name: d for d in disks} | {d.path: d for d in disks}


def member_shown(device: str, disks: dict[str, Disk]) -> str:
    """A member named by its path and, when it is a whole disk lsblk knows, its serial."""
    disk = disks.get(device) or disks.get(device.removeprefix("/dev/"))
    path = device if device.startswith("/") else f"/dev/{device}"
    return disk.shown() if disk else path


# -- judging arrays ------------------------------------------------------------------------------

@dataclass
class ArrayReport:
    name: str
    level: str
    verdict: str = "pass"            # pass | advisory | fail
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    observed: dict[str, Any] = field(default_factory=dict)

    def fail(self, text: str) -> None:
        self.verdict = "fail"
        self.problems.append(text)

    def advise(self, text: str) -> None:
        if self.verdict == "pass":
            self.verdict = "advisory"
        self.notes.append(text)


HEALTHY_STATES = frozenset({"clean", "active", "active-idle", "write-pending", "read-auto", "readonly"})
ACTIVE_SYNC_EXTRAS = frozenset({"writemostly", "failfast", "replacement"})


def judge_array(md: MdstatArray, views: ArrayViews | None, disks: dict[str, Disk],
                superblocks: dict[str, list[str]]) -> ArrayReport:
    """One array, from the kernel's line and mdadm's two views; ValueError when mdadm's output
    cannot be read (an error, never a pass)."""
    label = f"/dev/{md.name}"
    report = ArrayReport(label, md.level)
    if md.container:
        report.notes.append(f"{label} is an external metadata container ({md.metadata}): its volumes are judged")
        report.observed = {"kernel": f"container ({md.metadata})", "members": [m.name for m in md.members]}
        return report
    if not md.active:
        members = ", ".join(member_shown(m.name, disks) for m in md.members) or "none"
        report.fail(f"{label} is inactive (assembled but not started; members: {members})")
        report.observed = {"kernel": "inactive", "members": [m.name for m in md.members]}
        return report
    if views is None:
        raise ValueError(f"{label}: /proc/mdstat lists it but mdadm printed nothing for it")
    rc, text = views.detail
    if rc != 0:
        raise ValueError(f"mdadm --detail {label} failed (exit {rc}): {text[:200]!r}")
    detail = parse_detail(text)
    export_rc, export_text = views.export
    if export_rc != 0:
        raise ValueError(f"mdadm --detail --export {label} failed (exit {export_rc})")
    export = parse_export(export_text)
    if export.get("MD_DEVNAME"):
        label = f"/dev/md/{export['MD_DEVNAME']} ({label})"
        report.name = label
    if export["MD_LEVEL"] != md.level or detail.fields["Raid Level"] != md.level:
        raise ValueError(f"{label}: the kernel says {md.level}, mdadm says {detail.fields['Raid Level']} and "
                         f"{export['MD_LEVEL']}")
    report.observed = {
        "level": md.level, "state": ", ".join(detail.state), "uuid": export.get("MD_UUID", ""),
        "kernel": f"[{md.working}/{md.raid_disks}] [{md.map}]" if md.map else "active",
        "members": [f"{member_shown(s.device, disks) if s.device else '(none)'}: slot {s.role}, {' '.join(s.state)}"
                    for s in detail.slots],
        **({"read-only": md.read_only} if md.read_only else {}),
        **({"sync": f"{md.sync.action} {md.sync.progress}"} if md.sync else {}),
    }
    _judge_state(report, label, md, detail)
    _judge_members(report, label, md, detail, disks, superblocks.get(export.get("MD_UUID", ""), []))
    _judge_sync(report, label, md, detail)
    return report


def _judge_state(report: ArrayReport, label: str, md: MdstatArray, detail: Detail) -> None:
    words = detail.state
    if not words or words[0] not in HEALTHY_STATES:
        report.fail(f"{label}: state {', '.join(words) or 'empty'} (expected clean or active)")
    for bad in ("degraded", "FAILED", "Not Started"):
        if bad in words:
            report.fail(f"{label}: {bad}")
    if md.map and (md.working != md.raid_disks or "_" in md.map):
        missing = [str(i) for i, c in enumerate(md.map) if c == "_"]
        report.fail(f"{label}: the kernel has {md.working} of {md.raid_disks} members working "
                    f"[{md.map}]; missing slot(s) {', '.join(missing) or '?'}")
    active, raid = detail.count("Active Devices"), detail.count("Raid Devices")
    if active != raid:
        report.fail(f"{label}: {active} of {raid} members active")


def _judge_members(report: ArrayReport, label: str, md: MdstatArray, detail: Detail,
                   disks: dict[str, Disk], carrying: list[str]) -> None:
    current = {s.device for s in detail.slots if s.device}
    faulty = {s.device.removeprefix("/dev/") for s in detail.slots if "faulty" in s.state}
    for slot in detail.slots:
        state = set(slot.state)
        shown = member_shown(slot.device, disks) if slot.device else ""
        if "removed" in state:
            gone = [member_shown(d, disks) for d in carrying if d not in current]
            who = (f"; {', '.join(gone)} still carries its superblock (removed from it)" if gone
                   else "; no disk on this host carries its superblock any more")
            report.fail(f"{label}: slot {slot.role} is empty (member removed){who}")
        elif "faulty" in state:
            report.fail(f"{label}: member {shown} is faulty")
        elif "rebuilding" in state:
            report.fail(f"{label}: member {shown} is being rebuilt into slot {slot.role}")
        elif state == {"spare"}:
            report.notes.append(f"{label}: {shown} is a hot spare")
        elif {"active", "sync"} <= state and state - {"active", "sync"} <= ACTIVE_SYNC_EXTRAS:
            continue
        else:
            report.fail(f"{label}: member {shown or '(none)'} in slot {slot.role} is {' '.join(slot.state)}")
    for member in md.members:
        if "F" in member.flags and member.name not in faulty:
            report.fail(f"{label}: member {member_shown(member.name, disks)} is faulty (kernel)")


def _judge_sync(report: ArrayReport, label: str, md: MdstatArray, detail: Detail) -> None:
    sync = md.sync
    if sync is None:
        return
    status = next((v for k, v in detail.fields.items() if k.endswith("Status")), "")
    progress = f"{sync.progress}" + (f" (mdadm: {status})" if status else "")
    if sync.action == "recovery":
        report.fail(f"{label}: recovery {progress}: a member is being rebuilt, the array is degraded until it ends")
    elif sync.action in ("resync", "reshape"):
        report.advise(f"{label}: {sync.action} {progress}: every member is present, but until it ends the "
                      "members are not known to agree (a disk lost now can lose data); it ends by itself")
    else:
        report.notes.append(f"{label}: {sync.action} {progress} (a periodic scrub; redundancy intact)")


@dataclass
class RaidJudgement:
    verdict: str                 # pass | advisory | fail | not_applicable
    message: str
    arrays: list[ArrayReport]


def judge_arrays(arrays: list[MdstatArray], views: dict[str, ArrayViews], disks: list[Disk],
                 superblocks: dict[str, list[str]], raid_required: bool) -> RaidJudgement:
    """Every array the kernel lists, and the profile's ``hardware.raid``."""
    extra = sorted(set(views) - {a.name for a in arrays})
    if extra:
        raise ValueError(f"mdadm printed arrays /proc/mdstat does not list: {', '.join(extra)}")
    known = by_name(disks)
    reports = [judge_array(md, views.get(md.name), known, superblocks) for md in arrays]
    redundant = [r for r in reports if r.level in REDUNDANT]
    problems = [p for r in reports for p in r.problems]
    if raid_required and not redundant:
        listed = ", ".join(f"{r.name} ({r.level or 'inactive'})" for r in reports)
        have = f"only {listed}, without redundancy" if reports else "no md RAID array"
        problems.insert(0, f"the hardware profile requires RAID (hardware.raid: true), but the host has {have}")
    if problems:
        return RaidJudgement("fail", "; ".join(problems), reports)
    if not reports:
        return RaidJudgement("not_applicable", "no md RAID array on this host, and its hardware profile does not "
                             "require one (hardware.raid: false)", reports)
    notes = [n for r in reports if r.verdict == "advisory" for n in r.notes]
    if notes:
        return RaidJudgement("advisory", "; ".join(notes), reports)
    return RaidJudgement("pass", "", reports)


# -- SMART ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmartReading:
    device: str
    type: str           # the -d type asked for ("auto", "megaraid,0" ...)
    rc: int
    doc: dict[str, Any]


def parse_smart(stdout: str) -> list[SmartReading]:
    """:data:`SMART` output -> one reading per device; ValueError when a block is cut or not JSON."""
    out: list[SmartReading] = []
    for (device, kind), rc, text in framed_blocks(stdout, SMART_MARK, "smartctl"):
        if rc == 127 and not text.strip():
            raise ValueError("smartctl is not installed (Debian: apt-get install smartmontools)")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"smartctl --json printed no JSON for {device} ({exc})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("smartctl"), dict):
            raise ValueError(f"smartctl --json for {device} has no 'smartctl' section")
        out.append(SmartReading(device, kind, rc, doc))
    return out


# smartctl's words for a device whose transport passes no SMART command (virtio, Xen, a USB bridge
# it cannot drive): no SMART on this path, not an unreadable disk.
NO_SMART_MESSAGES = ("Unable to detect device type", "Unknown USB bridge")


def smart_state(reading: SmartReading) -> tuple[str, str]:
    """(state, detail) of one disk: "passed", "failed", "disabled", "no SMART" or "unreadable"."""
    doc = reading.doc
    messages = [str(m.get("string", "")) for m in doc["smartctl"].get("messages", []) if isinstance(m, dict)]
    if reading.rc & 1:
        if any(text in m for m in messages for text in NO_SMART_MESSAGES):
            return "no SMART", "; ".join(messages) or "smartctl knows no SMART for this device type"
        return "unreadable", f"smartctl could not parse its command line (exit {reading.rc}): {'; '.join(messages)}"
    status = doc.get("smart_status")
    support: dict[str, Any] = doc["smart_support"] if isinstance(doc.get("smart_support"), dict) else {}
    if isinstance(status, dict) and isinstance(status.get("passed"), bool):
        return ("passed", "SMART overall-health PASSED") if status["passed"] else (
            "failed", "SMART overall-health FAILED: the disk predicts its own failure")
    if support.get("available") is False:
        return "no SMART", "the device reports no SMART support"
    if support.get("available") is True and support.get("enabled") is False:
        return "disabled", "SMART is supported but disabled: the disk's own health check is off (smartctl -s on)"
    if reading.rc & 2 and not doc.get("device"):
        return "unreadable", f"smartctl could not open the device (exit {reading.rc}): {'; '.join(messages)}"
    if isinstance(doc.get("device_type"), dict) and doc["device_type"].get("name") == "CD/DVD":
        return "no SMART", "an optical drive"
    return "unreadable", (f"smartctl gave no overall health (exit {reading.rc})"
                          + (f": {'; '.join(messages)}" if messages else ""))


@dataclass
class SmartJudgement:
    verdict: str             # pass | fail | error | not_applicable
    message: str
    disks: dict[str, str]    # shown name -> state: detail
    unreadable: list[str]


def judge_smart(readings: list[SmartReading], disks: list[Disk]) -> SmartJudgement:
    """Every disk read: FAILED or disabled fail; unreadable is an error (raised by the check);
    none with SMART is not applicable, naming them."""
    known = by_name(disks)
    expected = {d.path for d in disks if d.type == "disk" and not d.removable}
    missing = sorted(expected - {r.device for r in readings})
    if missing:
        raise ValueError(f"smartctl was not run for {', '.join(missing)} (listed by lsblk)")
    shown: dict[str, str] = {}
    failing, unreadable, with_smart = [], [], []
    for reading in readings:
        state, detail = smart_state(reading)
        name = member_shown(reading.device, known) + (f" -d {reading.type}" if reading.type != "auto" else "")
        shown[name] = f"{state}: {detail}"
        if state in ("failed", "disabled"):
            failing.append(f"{name}: {detail}")
        elif state == "unreadable":
            unreadable.append(f"{name}: {detail}")
        if state in ("passed", "failed", "disabled"):
            with_smart.append(name)
    if failing:
        return SmartJudgement("fail", "; ".join(failing), shown, unreadable)
    if not with_smart and not unreadable:
        names = ", ".join(shown) or "none"
        return SmartJudgement("not_applicable", f"no disk reports SMART (no SMART: {names})", shown, unreadable)
    if unreadable:
        return SmartJudgement("error", "smartctl could not read: " + "; ".join(unreadable), shown, unreadable)
    return SmartJudgement("pass", "", shown, unreadable)


# -- alerts --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MonitorConfig:
    files: tuple[str, ...]
    mailaddr: tuple[str, ...]
    programs: dict[str, bool]      # path -> executable
    sendmail: bool


def _keyword(word: str, keyword: str) -> bool:
    """mdadm's match_keyword: at least three letters, a case-insensitive prefix of the keyword."""
    return len(word) >= 3 and keyword.startswith(word.upper())


def parse_mdadm_conf(stdout: str) -> MonitorConfig:
    """:data:`MDADM_CONF` output -> where mdadm --monitor's alerts go."""
    files: list[str] = []
    mail: list[str] = []
    programs: dict[str, bool] = {}
    checked: dict[str, bool] = {}
    sendmail: bool | None = None
    for line in stdout.splitlines():
        if line.startswith(CONF_MARK + " "):
            kind, _, value = line[len(CONF_MARK) + 1:].partition(" ")
            if kind == "file":
                files.append(value)
            elif kind in ("program-ok", "program-missing"):
                checked[value] = kind == "program-ok"
            elif kind == "sendmail":
                sendmail = value == "yes"
            else:
                raise ValueError(f"mdadm configuration listing: line not understood: {line!r}")
            continue
        words = line.split("#", 1)[0].split()
        if not words or line[:1].isspace():
            continue
        # MAILADDR is matched before MAILFROM, as mdadm does ("mail" and "mai" are MAILADDR).
        if _keyword(words[0], "MAILADDR") and len(words) > 1:
            mail.append(words[1])
        elif _keyword(words[0], "PROGRAM") and len(words) > 1:
            programs[words[1]] = False
    if sendmail is None:
        raise ValueError("mdadm configuration listing was cut (no sendmail line)")
    for path in programs:
        programs[path] = checked.get(path, False)
    return MonitorConfig(tuple(files), tuple(mail), programs, sendmail)


def parse_monitor(stdout: str, rc: int) -> list[str]:
    """``pgrep -a -x mdadm`` -> the command lines of running ``mdadm --monitor`` processes."""
    if rc == 1 and not stdout.strip():
        return []
    if rc != 0:
        raise ValueError(f"pgrep failed (exit {rc})")
    out = []
    for line in stdout.splitlines():
        pid, _, args = line.strip().partition(" ")
        if not pid.isdigit():
            raise ValueError(f"pgrep: line not understood: {line!r}")
        words = args.split()
        if any(w in ("--monitor", "-F", "--follow") for w in words[1:]):
            out.append(args)
    return out


def judge_monitor(monitors: list[str], config: MonitorConfig) -> list[str]:
    """What keeps a failing array from being noticed (empty: alerts go somewhere)."""
    if not monitors:
        return ["no mdadm --monitor is running (Debian starts mdmonitor.service when an array appears; "
                "it exits at once when it has neither MAILADDR nor PROGRAM)"]
    words = " ".join(monitors).split()
    on_line_mail = any(w in ("-m", "--mail") or w.startswith("--mail=") for w in words)
    on_line_program = any(w in ("-p", "--program", "--alert") or w.startswith(("--program=", "--alert="))
                          for w in words)
    if on_line_program or any(config.programs.values()):
        return []
    problems = [f"PROGRAM {p} is not executable" for p, ok in config.programs.items() if not ok]
    if config.mailaddr or on_line_mail:
        if config.sendmail:
            return []
        to = ", ".join(config.mailaddr) or "the --mail address"
        problems.append(f"alerts are mailed to {to}, but there is no mailer (/usr/sbin/sendmail): they are lost")
    elif not config.programs:
        problems.append(f"no MAILADDR or PROGRAM in {', '.join(config.files) or 'any mdadm configuration file'}")
    return problems


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks read, in the host's one observation batch."""
    return [CONTAINER, MDSTAT, MD_DETAILS, MD_EXAMINE, LSBLK, SMART, MONITOR, MDADM_CONF]


MEASURE = Measure(
    name="disks",
    title="RAID arrays and disks healthy where the hardware has them, and their failures alerted",
    clauses=("7-5",),
    order=90,
    settings=Settings,
    observe=observe,
    no_deploy=("checks only: a degraded array or a failing disk is repaired by a person replacing hardware, "
               "and where alerts go (a mail address, a program) is the agency's choice; the checks say what "
               "is wrong and where"),
)
