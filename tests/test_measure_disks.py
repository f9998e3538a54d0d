"""disks (7-5): the readings of the checks on real outputs, captured on a Debian 12 lab VM (mdadm
4.2, smartmontools 7.3) with the measure's own observation commands, as root:
tests/data/disks/<state>/ after ``mdadm --create`` (resync), its end (clean), a scrub started with
``echo check > sync_action`` (check), ``mdadm --fail`` (failed), ``--remove`` (removed), ``--add``
(recovery) and ``--stop`` with the superblocks zeroed (none). The VM's disks are virtio: smartctl
knows no SMART for them. SMART readings of disks that have it (PASSED, FAILED, disabled) are
built from the keys smartctl 7.3 prints (``smart_support``, ``smart_status``): the lab has no such
disk. Unreadable output must be an error, never a pass."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.measures import disks as measure
from hardening.profiles import Profiles

DATA = ROOT / "tests" / "data" / "disks"


def read(state: str, name: str) -> str:
    return (DATA / state / f"{name}.out").read_text()


def judge(state: str, required: bool = False, examine_from: str | None = None) -> measure.RaidJudgement:
    arrays = measure.parse_mdstat(read(state, "mdstat"), 0)
    views = measure.parse_details(read(state, "details"))
    examine_file = DATA / (examine_from or state) / "examine.out"
    superblocks = measure.parse_examine(examine_file.read_text()) if examine_file.exists() else {}
    disks = measure.parse_lsblk(read("clean", "lsblk"), 0)
    return measure.judge_arrays(arrays, views, disks, superblocks, required)


# -- /proc/mdstat -------------------------------------------------------------------------------

def test_mdstat_of_a_clean_mirror() -> None:
    [md] = measure.parse_mdstat(read("clean", "mdstat"), 0)
    assert (md.name, md.active, md.level, md.raid_disks, md.working, md.map, md.sync) == (
        "md127", True, "raid1", 2, 2, "UU", None)
    assert [(m.name, m.slot, m.flags) for m in md.members] == [("vdd", 2, ""), ("vdc", 0, "")]


def test_mdstat_states() -> None:
    [failed] = measure.parse_mdstat(read("failed", "mdstat"), 0)
    assert [(m.name, m.flags) for m in failed.members] == [("vdd", "F"), ("vdc", "")]
    assert (failed.working, failed.map) == (1, "U_")
    assert measure.parse_mdstat(read("recovery", "mdstat"), 0)[0].sync == measure.Sync("recovery", "2.9%")
    assert measure.parse_mdstat(read("resync", "mdstat"), 0)[0].sync == measure.Sync("resync", "1.5%")
    assert measure.parse_mdstat(read("check", "mdstat"), 0)[0].sync == measure.Sync("check", "0.9%")
    assert measure.parse_mdstat(read("none", "mdstat"), 0) == []


def test_mdstat_other_shapes_seen_on_real_hosts() -> None:
    text = ("Personalities : [raid1] [raid6] [raid5] [raid4]\n"
            "md1 : active (auto-read-only) raid5 sdd1[3] sdc1[1](S) sdb1[0] sde1[4](W)\n"
            "      2093056 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/3] [UUU]\n"
            "      \tresync=DELAYED\n"
            "      bitmap: 0/8 pages [0KB], 65536KB chunk\n\n"
            "md0 : inactive sdf[1](S) sdg[0](S)\n"
            "      6306 blocks super external:imsm\n\n"
            "unused devices: <none>\n")
    md1, md0 = measure.parse_mdstat(text, 0)
    assert (md1.read_only, md1.level, md1.sync) == ("auto-read-only", "raid5", measure.Sync("resync", "DELAYED"))
    assert [m.flags for m in md1.members] == ["", "S", "", "W"]
    assert (md0.active, md0.level, md0.map) == (False, "", "")


def test_mdstat_absent_is_no_array_and_anything_unknown_is_an_error() -> None:
    assert measure.parse_mdstat("", 1, "cat: /proc/mdstat: No such file or directory") == []
    with pytest.raises(ValueError, match="cannot read"):
        measure.parse_mdstat("", 1, "cat: /proc/mdstat: Permission denied")
    with pytest.raises(ValueError, match="Personalities"):
        measure.parse_mdstat("md0 : active raid1 sda[0]\n", 0)
    text = read("clean", "mdstat")
    with pytest.raises(ValueError, match="not understood"):
        measure.parse_mdstat(text.replace("md127 : active", "md127 : running"), 0)
    with pytest.raises(ValueError, match="member"):
        measure.parse_mdstat(text.replace("vdc[0]", "vdc<0>"), 0)
    with pytest.raises(ValueError, match="line not understood"):
        measure.parse_mdstat(text.replace("[2/2] [UU]\n", "[2/2] [UU]\n      something new\n"), 0)


# -- mdadm --detail -----------------------------------------------------------------------------

def test_detail_and_export_of_the_failed_member() -> None:
    views = measure.parse_details(read("failed", "details"))["md127"]
    detail = measure.parse_detail(views.detail[1])
    assert detail.state == ("clean", "degraded")
    assert [(s.role, s.state, s.device) for s in detail.slots] == [
        ("0", ("active", "sync"), "/dev/vdc"), ("1", ("removed",), ""), ("-", ("faulty",), "/dev/vdd")]
    export = measure.parse_export(views.export[1])
    # mdadm 4.2 exports a faulty member's role as "spare": the table, not the export, is judged.
    assert export["MD_DEVICE_dev_vdd_ROLE"] == "spare"


def test_unreadable_mdadm_output_is_an_error() -> None:
    text = read("clean", "details")
    with pytest.raises(ValueError, match="was cut"):
        measure.parse_details(text.rsplit("HARDENING-MD-RC", 1)[0])
    with pytest.raises(ValueError, match="lacks export"):
        measure.parse_details(text.split("HARDENING-MD md127 export")[0])
    detail = measure.parse_details(text)["md127"].detail[1]
    with pytest.raises(ValueError, match="device row"):
        measure.parse_detail(detail.replace("active sync   /dev/vdc", "").replace("       0     254", "  x  254"))
    with pytest.raises(ValueError, match="no device table"):
        measure.parse_detail(detail.split("    Number")[0])
    with pytest.raises(ValueError, match="not understood"):
        measure.parse_export("MD_LEVEL=raid1\nsomething\n")
    broken = text.replace("mdadm --detail", "").replace("HARDENING-MD-RC 0\nHARDENING-MD md127 export",
                                                        "HARDENING-MD-RC 1\nHARDENING-MD md127 export", 1)
    with pytest.raises(ValueError, match="failed"):
        judge_text(broken)


def judge_text(details: str) -> measure.RaidJudgement:
    arrays = measure.parse_mdstat(read("clean", "mdstat"), 0)
    return measure.judge_arrays(arrays, measure.parse_details(details), [], {}, False)


# -- judging arrays -----------------------------------------------------------------------------

def test_a_clean_mirror_passes() -> None:
    judged = judge("clean", required=True)
    assert judged.verdict == "pass", judged.message
    [array] = judged.arrays
    assert array.name == "/dev/md/lab (/dev/md127)"
    assert array.observed["members"] == ["/dev/vdc (serial raid-a): slot 0, active sync",
                                         "/dev/vdd (serial raid-b): slot 1, active sync"]


def test_a_failed_member_fails_naming_the_array_and_the_member() -> None:
    judged = judge("failed")
    assert judged.verdict == "fail"
    assert "/dev/md/lab (/dev/md127): member /dev/vdd (serial raid-b) is faulty" in judged.message
    assert "degraded" in judged.message


def test_a_removed_member_fails_naming_the_disk_that_still_carries_the_superblock() -> None:
    judged = judge("removed")
    assert judged.verdict == "fail"
    assert ("/dev/md/lab (/dev/md127): slot 1 is empty (member removed); /dev/vdd (serial raid-b) still "
            "carries its superblock (removed from it)") in judged.message
    gone = judge("removed", examine_from="none")
    assert "slot 1 is empty (member removed); no disk on this host carries its superblock any more" in gone.message


def test_recovery_fails_resync_is_advisory_a_scrub_passes() -> None:
    recovery = judge("recovery")
    assert recovery.verdict == "fail"
    assert "member /dev/vdd (serial raid-b) is being rebuilt into slot 1" in recovery.message
    assert "recovery 2.9%" in recovery.message
    resync = judge("resync")
    assert resync.verdict == "advisory", resync.message
    assert resync.message.startswith("/dev/md/lab (/dev/md127): resync 1.5% (mdadm: ")
    check = judge("check")
    assert check.verdict == "pass", check.message
    assert any("check 0.9%" in n for n in check.arrays[0].notes)


def test_no_array_is_not_applicable_unless_the_profile_requires_raid() -> None:
    none = judge("none")
    assert (none.verdict, none.message) == ("not_applicable", "no md RAID array on this host, and its hardware "
                                            "profile does not require one (hardware.raid: false)")
    required = judge("none", required=True)
    assert (required.verdict, required.message) == ("fail", "the hardware profile requires RAID (hardware.raid: "
                                                    "true), but the host has no md RAID array")


def test_raid0_does_not_meet_the_requirement_and_an_inactive_array_fails() -> None:
    mdstat = ("Personalities : [raid0]\nmd0 : active raid0 vdd[1] vdc[0]\n      522240 blocks super 1.2 512k chunks\n"
              "\nmd1 : inactive vde[0](S)\n      261120 blocks super 1.2\n\nunused devices: <none>\n")
    details = read("clean", "details").replace("md127", "md0").replace("raid1", "raid0")
    judged = measure.judge_arrays(measure.parse_mdstat(mdstat, 0), measure.parse_details(details), [], {}, True)
    assert judged.verdict == "fail"
    assert judged.message.startswith("the hardware profile requires RAID (hardware.raid: true), but the host has "
                                     "only /dev/md/lab (/dev/md0) (raid0), /dev/md1 (inactive), without redundancy")
    assert "/dev/md1 is inactive (assembled but not started; members: /dev/vde)" in judged.message


def test_an_external_metadata_container_is_not_an_inactive_array() -> None:
    """Intel RST (IMSM): the container is always "inactive" in /proc/mdstat; its volume is the array."""
    mdstat = ("Personalities : [raid1]\nmd126 : active raid1 vdd[1] vdc[0]\n"
              "      261120 blocks super external:/md127/0 [2/2] [UU]\n\n"
              "md127 : inactive vdd[1](S) vdc[0](S)\n      10402 blocks super external:imsm\n\n"
              "unused devices: <none>\n")
    arrays = measure.parse_mdstat(mdstat, 0)
    assert [(a.name, a.container) for a in arrays] == [("md126", False), ("md127", True)]
    details = read("clean", "details").replace("md127", "md126")
    judged = measure.judge_arrays(arrays, measure.parse_details(details), [], {}, True)
    assert judged.verdict == "pass", judged.message
    assert judged.arrays[1].notes == ["/dev/md127 is an external metadata container (external:imsm): its volumes are "
                                       "judged"]


def test_mdadm_and_the_kernel_must_agree() -> None:
    with pytest.raises(ValueError, match="the kernel says raid1, mdadm says raid5"):
        judge_text(read("clean", "details").replace("Raid Level : raid1", "Raid Level : raid5"))
    with pytest.raises(ValueError, match="does not list: md9"):
        judge_text(read("clean", "details").replace("md127", "md9"))
    with pytest.raises(ValueError, match="mdadm printed nothing"):
        judge_text("")


def test_examine_names_the_devices_per_array() -> None:
    assert measure.parse_examine(read("removed", "examine")) == {
        "c61abe39:b0401463:20b775a6:24eef75a": ["/dev/vdd", "/dev/vdc"]}
    assert measure.parse_examine("") == {}


# -- SMART --------------------------------------------------------------------------------------

def test_virtio_disks_have_no_smart_and_that_is_not_a_pass() -> None:
    readings = measure.parse_smart(read("clean", "smart"))
    assert [(r.device, r.type, r.rc) for r in readings] == [(f"/dev/vd{c}", "auto", 1) for c in "abcde"]
    judged = measure.judge_smart(readings, measure.parse_lsblk(read("clean", "lsblk"), 0))
    assert judged.verdict == "not_applicable"
    assert judged.message.startswith("no disk reports SMART (no SMART: /dev/vda, /dev/vdb (serial spare), ")
    assert judged.disks["/dev/vdc (serial raid-a)"] == "no SMART: /dev/vdc: Unable to detect device type"


def _reading(**keys: object) -> measure.SmartReading:
    """A SATA disk's reading: the lab's vda block with what smartctl 7.3 prints for such a disk."""
    base = measure.parse_smart(read("clean", "smart"))[0].doc
    doc = copy.deepcopy(base)
    doc["smartctl"].pop("messages")
    doc["smartctl"]["exit_status"] = 0
    doc["device"] = {"name": "/dev/sda", "info_name": "/dev/sda [SAT]", "type": "sat", "protocol": "ATA"}
    doc.update(keys)
    return measure.SmartReading("/dev/sda", "auto", int(doc["smartctl"]["exit_status"]), doc)


SDA = measure.Disk("sda", "/dev/sda", "disk", "sata", False, "WD-LAB0001", "WDC WD40EFRX", "3.6T")


def test_smart_passed_failed_disabled() -> None:
    passed = _reading(smart_support={"available": True, "enabled": True}, smart_status={"passed": True})
    assert measure.judge_smart([passed], [SDA]).verdict == "pass"
    failing = _reading(smart_support={"available": True, "enabled": True}, smart_status={"passed": False})
    failing.doc["smartctl"]["exit_status"] = 8
    judged = measure.judge_smart([passed, failing], [SDA])
    assert judged.verdict == "fail"
    assert judged.message.startswith("/dev/sda (serial WD-LAB0001, WDC WD40EFRX): SMART overall-health FAILED")
    disabled = _reading(smart_support={"available": True, "enabled": False})
    assert measure.judge_smart([disabled], [SDA]).message.endswith("disabled: the disk's own health check is off "
                                                                   "(smartctl -s on)")
    unsupported = _reading(smart_support={"available": False})
    assert measure.judge_smart([unsupported], [SDA]).verdict == "not_applicable"


def test_smart_that_cannot_be_read_is_never_a_pass() -> None:
    silent = _reading(smart_support={"available": True, "enabled": True})
    judged = measure.judge_smart([silent], [SDA])
    assert judged.verdict == "error"
    assert judged.unreadable == ["/dev/sda (serial WD-LAB0001, WDC WD40EFRX): smartctl gave no overall health (exit 0)"]
    text = read("clean", "smart")
    with pytest.raises(ValueError, match="no JSON for /dev/vda"):
        measure.parse_smart(text.replace('"json_format_version"', "json_format_version", 2))
    with pytest.raises(ValueError, match="was cut"):
        measure.parse_smart(text.rsplit("HARDENING-SMART-RC", 1)[0])
    with pytest.raises(ValueError, match="smartctl is not installed"):
        measure.parse_smart("HARDENING-SMART /dev/vda auto\nHARDENING-SMART-RC 127\n")
    with pytest.raises(ValueError, match="not run for /dev/sdz"):
        measure.judge_smart([], [measure.Disk("sdz", "/dev/sdz", "disk", "sata", False, "", "", "1T")])


def test_lsblk_reading() -> None:
    disks = measure.parse_lsblk(read("clean", "lsblk"), 0)
    fd0 = next(d for d in disks if d.name == "fd0")
    assert fd0.removable and fd0.type == "disk"
    with pytest.raises(ValueError):
        measure.parse_lsblk("{}", 0)
    with pytest.raises(ValueError):
        measure.parse_lsblk(json.dumps({"blockdevices": [{"name": "sda"}]}), 0)


# -- alerts -------------------------------------------------------------------------------------

def test_debian_default_mails_root_without_a_mailer() -> None:
    config = measure.parse_mdadm_conf(read("clean", "conf"))
    assert config.files == ("/etc/mdadm/mdadm.conf",)
    assert (config.mailaddr, config.programs, config.sendmail) == (("root",), {}, False)
    monitors = measure.parse_monitor(read("clean", "monitor"), 0)
    assert monitors == ["/sbin/mdadm --monitor --scan"]
    assert measure.judge_monitor(monitors, config) == [
        "alerts are mailed to root, but there is no mailer (/usr/sbin/sendmail): they are lost"]
    with_mailer = measure.parse_mdadm_conf(read("clean", "conf").replace("sendmail no", "sendmail yes"))
    assert measure.judge_monitor(monitors, with_mailer) == []


def test_program_and_missing_monitor() -> None:
    text = (read("clean", "conf").replace("MAILADDR root", "#MAILADDR root\nprog /usr/local/sbin/raid-alert")
            .replace("HARDENING-MDCONF sendmail", "HARDENING-MDCONF program-ok /usr/local/sbin/raid-alert\n"
                     "HARDENING-MDCONF sendmail"))
    config = measure.parse_mdadm_conf(text)
    assert config.programs == {"/usr/local/sbin/raid-alert": True} and config.mailaddr == ()
    assert measure.judge_monitor(["/sbin/mdadm --monitor --scan"], config) == []
    missing = measure.parse_mdadm_conf(text.replace("program-ok", "program-missing"))
    assert measure.judge_monitor(["/sbin/mdadm --monitor --scan"], missing) == [
        "PROGRAM /usr/local/sbin/raid-alert is not executable"]
    assert measure.parse_monitor("", 1) == []
    assert measure.judge_monitor([], config)[0].startswith("no mdadm --monitor is running")
    with pytest.raises(ValueError, match="cut"):
        measure.parse_mdadm_conf("MAILADDR root\n")


# -- the measure --------------------------------------------------------------------------------

def test_the_measure_is_check_only_and_reads_the_profile_requirement() -> None:
    assert not measure.MEASURE.deployable and "replacing hardware" in measure.MEASURE.no_deploy
    profiles = Profiles()
    assert profiles.resolve("server-room").hardware.raid is True
    assert profiles.resolve("server").hardware.raid is False
    commands = measure.observe(profiles.resolve("terminal"))
    assert measure.MDSTAT in commands and measure.SMART in commands


def test_captured_outputs_are_the_commands_of_the_measure() -> None:
    """The capture ran the module's commands: a change to them needs a new capture."""
    names = {p.stem for p in Path(DATA / "clean").glob("*.out")}
    assert names == {"mdstat", "details", "examine", "lsblk", "smart", "monitor", "conf"}
