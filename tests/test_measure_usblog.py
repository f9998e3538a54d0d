"""usblog (6-11): the monitor's pieces, its event handling on umockdev's mocked udev, and the
measure's reading of systemd and the journal."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.measures import _usblog_monitor as mon
from hardening.measures import usblog as measure
from hardening.measures.usb import Settings as UsbSettings

STICK_DESCRIPTORS = ("12010002000000402706010000000102030109022000010100c032"
                     "0904000002080650000705810200020007050202000200")
KEYBOARD_DESCRIPTORS = ("12010002000000082706010000000102030109022200010100a032"
                        "09040000010301010009211101000122410007058103080007")
STICK = mon.Connected(port="1-1", vendor="0627", product="0001", name="QEMU USB HARDDRIVE", serial="stick1",
                      interfaces=("08:06:50",))


# -- the monitor ------------------------------------------------------------------------------------

def test_interfaces_from_descriptors() -> None:
    assert mon.interfaces_from_descriptors(bytes.fromhex(STICK_DESCRIPTORS)) == ("08:06:50",)
    assert mon.interfaces_from_descriptors(bytes.fromhex(KEYBOARD_DESCRIPTORS)) == ("03:01:01",)
    assert mon.interfaces_from_descriptors(b"") == ()
    assert mon.interfaces_from_descriptors(b"\x00\x04") == ()  # a zero length ends the walk


def test_list_devices_by_port_and_id() -> None:
    out = ('1: allow id 1d6b:0002 serial "0000:00:04.0" name "xHCI Host Controller" hash "x" parent-hash "y" '
           'via-port "usb1" with-interface 09:00:00 with-connect-type ""\n'
           '5: block id 0627:0001 serial "stick1" name "QEMU USB HARDDRIVE" hash "h" parent-hash "p" '
           'via-port "1-1" with-interface 08:06:50 with-connect-type "hotplug"\n'
           'garbage\n')
    assert mon.parse_list_devices(out) == {("usb1", "1d6b:0002"): "allow", ("1-1", "0627:0001"): "block"}


def clock_and_sleep() -> tuple[list[float], object, object]:
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    return now, (lambda: now[0]), sleep


@pytest.mark.parametrize(("states", "lists", "want"), [
    (["1"], [{("1-1", "0627:0001"): "allow"}], ("allowed", "1", "allow")),
    (["0"], [{("1-1", "0627:0001"): "block"}], ("blocked", "0", "block")),
    # not yet decided, then allowed: the monitor waits for the kernel to agree
    (["0", "0", "1"], [{}, {("1-1", "0627:0001"): "allow"}, {("1-1", "0627:0001"): "allow"}],
     ("allowed", "1", "allow")),
    # rejected: USBGuard removes the device, which leaves its list
    (["0", "gone"], [{("1-1", "0627:0001"): "reject"}, {}], ("blocked", "0", "reject")),
    (["1"], ["usbguard is not answering (exit 1: IPC connection failure)"], ("no policy", "1", "")),
])
def test_decide(states: list[str], lists: list[object], want: tuple[str, str, str]) -> None:
    _, clock, sleep = clock_and_sleep()
    s, li = iter(states), iter(lists)
    last: dict[str, object] = {}

    def state() -> str:
        last["s"] = next(s, last.get("s"))
        return str(last["s"])

    def targets() -> object:
        last["l"] = next(li, last.get("l"))
        return last["l"]

    got = mon.decide(STICK, state, targets, wait=5, sleep=sleep, clock=clock)  # type: ignore[arg-type]
    assert (got.decision, got.authorized, got.target) == want


def test_decide_times_out_undecided() -> None:
    now, clock, sleep = clock_and_sleep()
    got = mon.decide(STICK, lambda: "0", lambda: {}, wait=2, sleep=sleep, clock=clock)  # type: ignore[arg-type]
    assert got.decision == "undecided" and "within 2 s" in got.detail
    assert 2 <= now[0] < 3


def test_decide_disagreement_is_said() -> None:
    _, clock, sleep = clock_and_sleep()
    got = mon.decide(STICK, lambda: "1", lambda: {("1-1", "0627:0001"): "block"}, wait=1,  # type: ignore[arg-type]
                     sleep=sleep, clock=clock)
    assert got.decision == "blocked" and "authorized is 1" in got.detail


def test_fields_and_encoding() -> None:
    entry = mon.fields(STICK, mon.Decision("blocked", "0", "block"), "2026-12-02T05:00:00Z")
    assert entry["PRIORITY"] == "4" and entry["SYSLOG_IDENTIFIER"] == "hardening-usblog"
    assert entry["MESSAGE"] == ('USB device 0627:0001 "QEMU USB HARDDRIVE" serial stick1 interface classes 08 '
                                'connected on port 1-1 at 2026-12-02T05:00:00Z: blocked (USBGuard: block), '
                                'authorized=0')
    assert entry["USB_CLASSES"] == "08" and entry["USB_SERIAL"] == "stick1"
    allowed = mon.fields(STICK, mon.Decision("allowed", "1", "allow"), "t")
    assert allowed["PRIORITY"] == "6"
    raw = mon.encode({"A": "x", "B": "two\nlines"})
    assert raw == b"A=x\nB\n" + (9).to_bytes(8, "little") + b"two\nlines\n"


def test_journal_send_falls_back_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mon.Journal(str(tmp_path / "absent")).send({"PRIORITY": "4", "MESSAGE": "hello"})
    assert "<4>hello" in capsys.readouterr().err


def test_monitor_imports_only_stdlib_and_pyudev() -> None:
    """The host runs the file alone with Debian's python3: no import of this package."""
    text = measure.program_text()
    assert "from hardening" not in text and "import hardening" not in text
    assert "import pyudev" in text


# -- the monitor on umockdev (Debian's python3, python3-pyudev, mocked sysfs and uevents) ------------

DEBIAN_PYTHON = "/usr/bin/python3"
NEEDS = "apt-get install -y --no-install-recommends umockdev gir1.2-umockdev-1.0 python3-gi python3-pyudev"


def umockdev(tmp_path: Path, scenario: dict[str, object]) -> list[dict[str, str]]:
    """Run the monitor file under umockdev with ``scenario`` (see tests/data/usblog_umockdev.py)."""
    probe = subprocess.run([DEBIAN_PYTHON, "-c", "import gi, pyudev; gi.require_version('UMockdev', '1.0')"],
                           capture_output=True, text=True, check=False) if Path(DEBIAN_PYTHON).exists() else None
    if not shutil.which("umockdev-wrapper") or probe is None or probe.returncode != 0:
        pytest.fail(f"umockdev, Debian's python3-gi and python3-pyudev are needed (.ci/setup: {NEEDS})")
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    proc = subprocess.run(["umockdev-wrapper", DEBIAN_PYTHON, str(ROOT / "tests" / "data" / "usblog_umockdev.py"),
                           str(Path(mon.__file__)), str(path)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    records: list[dict[str, str]] = json.loads(proc.stdout)
    return records


def stick(port: str = "1-1", authorized: str = "0") -> dict[str, object]:
    return {"port": port, "descriptors": STICK_DESCRIPTORS,
            "attributes": {"idVendor": "0627", "idProduct": "0001", "product": "QEMU USB HARDDRIVE",
                           "manufacturer": "QEMU", "serial": "stick1", "authorized": authorized}}


def keyboard(port: str = "1-2") -> dict[str, object]:
    return {"port": port, "descriptors": KEYBOARD_DESCRIPTORS,
            "attributes": {"idVendor": "0627", "idProduct": "0001", "product": "QEMU USB Keyboard",
                           "serial": "68284-0000:00:04.0-1", "authorized": "0"}}


# The fake usbguard authorizes the keyboard as the daemon does (writes 1 to its authorized, in the
# testbed's sysfs), then lists it allowed; it lists the stick blocked.
USBGUARD = (
    'echo 1 > "$UMOCKDEV_DIR/sys/devices/1-2/authorized" 2>/dev/null\n'
    'echo \'5: block id 0627:0001 serial "stick1" name "QEMU USB HARDDRIVE" via-port "1-1" '
    'with-interface 08:06:50\'\n'
    'echo \'6: allow id 0627:0001 serial "68284-0000:00:04.0-1" name "QEMU USB Keyboard" via-port "1-2" '
    'with-interface 03:01:01\'\n'
)


def test_monitor_on_umockdev_logs_blocked_and_allowed(tmp_path: Path) -> None:
    records = umockdev(tmp_path, {"devices": [stick(), keyboard()], "usbguard": USBGUARD})
    started, blocked, allowed = records
    assert started["USBLOG_EVENT"] == "started", records
    assert blocked["USBLOG_EVENT"] == "connected", records
    assert {k: blocked[k] for k in ("USB_ID", "USB_CLASSES", "USB_SERIAL", "USB_DECISION", "USB_AUTHORIZED",
                                    "PRIORITY", "SYSLOG_IDENTIFIER", "USB_PORT")} == {
        "USB_ID": "0627:0001", "USB_CLASSES": "08", "USB_SERIAL": "stick1", "USB_DECISION": "blocked",
        "USB_AUTHORIZED": "0", "PRIORITY": "4", "SYSLOG_IDENTIFIER": "hardening-usblog", "USB_PORT": "1-1"}
    assert "serial stick1 interface classes 08" in blocked["MESSAGE"] and ": blocked" in blocked["MESSAGE"]
    assert allowed["USB_DECISION"] == "allowed" and allowed["USB_AUTHORIZED"] == "1", allowed
    assert allowed["USB_CLASSES"] == "03" and allowed["PRIORITY"] == "6"


def test_monitor_on_umockdev_without_usbguard_says_no_policy(tmp_path: Path) -> None:
    records = umockdev(tmp_path, {"devices": [stick(authorized="1")],
                                  "usbguard": "echo 'IPC connection failure!' >&2; exit 1\n"})
    entry = records[1]
    assert entry["USB_DECISION"] == "no policy" and entry["USB_AUTHORIZED"] == "1", entry
    assert entry["PRIORITY"] == "5" and "usbguard is not answering (exit 1: IPC connection failure!)" in \
        entry["MESSAGE"]


def test_monitor_on_umockdev_undecided(tmp_path: Path) -> None:
    records = umockdev(tmp_path, {"devices": [stick()], "usbguard": "exit 0\n", "wait": 1})
    assert records[1]["USB_DECISION"] == "undecided" and records[1]["PRIORITY"] == "4", records


# -- the measure: systemd's view ------------------------------------------------------------------

def show(**props: str) -> dict[str, str]:
    base = {"Id": measure.UNIT, "LoadState": "loaded", "ActiveState": "active", "SubState": "running",
            "UnitFileState": "enabled", "FragmentPath": measure.UNIT_PATH, "DropInPaths": "",
            "NeedDaemonReload": "no", "MainPID": "321", "ExecMainStartTimestamp": "@2000",
            "ExecStart": "{ path=/usr/bin/python3 ; argv[]=" + " ".join(measure.ARGV) + " ; ignore_errors=no ; "
                         "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }"}
    return {**base, **props}


def test_parse_show_and_a_good_service() -> None:
    text = "\n".join(f"{k}={v}" for k, v in show().items()) + "\n"
    props = measure.parse_show(text, 0)
    assert measure.service_problems(props) == []
    assert measure.program_problems(props, (1000, measure.program_sha256())) == []


def test_parse_show_unreadable() -> None:
    with pytest.raises(ValueError):
        measure.parse_show("garbage\n", 0)
    with pytest.raises(ValueError):
        measure.parse_show("Id=other.service\n", 0)


@pytest.mark.parametrize(("props", "want"), [
    ({"ActiveState": "inactive", "SubState": "dead"}, "not running (inactive/dead)"),
    ({"UnitFileState": "disabled"}, "not enabled at boot (disabled)"),
    ({"LoadState": "masked", "UnitFileState": "masked-runtime"}, "is masked"),
    ({"LoadState": "not-found", "UnitFileState": ""}, "not installed"),
])
def test_service_problems(props: dict[str, str], want: str) -> None:
    assert want in "; ".join(measure.service_problems(show(**props)))


@pytest.mark.parametrize(("props", "state", "want"), [
    ({}, None, "is absent"),
    ({}, (1000, "0" * 64), "not this version's monitor"),
    ({"DropInPaths": "/etc/systemd/system/hardening-usblog.service.d/x.conf"}, "ok", "drop-ins change it"),
    ({"FragmentPath": "/etc/systemd/system/hardening-usblog.service"}, "ok", "systemd loads"),
    ({"ExecStart": "{ path=/bin/true ; argv[]=/bin/true ; ignore_errors=no }"}, "ok", "it runs /bin/true"),
    ({"NeedDaemonReload": "yes"}, "ok", "daemon-reload pending"),
    ({"ExecMainStartTimestamp": "@500"}, "ok", "runs an older program"),
])
def test_program_problems(props: dict[str, str], state: object, want: str) -> None:
    real = (1000, measure.program_sha256()) if state == "ok" else state
    assert want in "; ".join(measure.program_problems(show(**props), real))  # type: ignore[arg-type]


def test_program_state() -> None:
    sha = "a" * 64
    assert measure.parse_program_state(f"1700000000\n{sha}  {measure.PROGRAM}\n", 0) == (1700000000, sha)
    assert measure.parse_program_state("", 1) is None
    with pytest.raises(ValueError):
        measure.parse_program_state("what\n", 0)
    with pytest.raises(ValueError):
        measure.parse_program_state("stat: permission denied", 1)


def test_usb_bus() -> None:
    assert measure.usb_bus("present\n", 0) and not measure.usb_bus("absent\n", 0)
    with pytest.raises(Exception, match="USB bus probe"):
        measure.usb_bus("", 127)


def test_unit_runs_the_program_with_debian_python() -> None:
    text = measure.unit_text()
    assert f"ExecStart=/usr/bin/python3 -I {measure.PROGRAM} --wait 5\n" in text
    assert "SyslogIdentifier=hardening-usblog\n" in text and "WantedBy=multi-user.target" in text


# -- the measure: the journal ---------------------------------------------------------------------

def entry(**fields: object) -> str:
    base: dict[str, object] = {"__REALTIME_TIMESTAMP": "1764651600000000", "SYSLOG_IDENTIFIER": "hardening-usblog",
                               "PRIORITY": "4", "USBLOG_EVENT": "connected", "USB_ID": "0627:0001",
                               "USB_CLASSES": "08", "USB_DECISION": "blocked", "USB_AUTHORIZED": "0",
                               "USB_SERIAL": "stick1", "USB_NAME": "QEMU USB HARDDRIVE", "USB_PORT": "1-1",
                               "USBGUARD_TARGET": "block", "MESSAGE": "USB device ..."}
    return json.dumps({**base, **fields})


def test_parse_journal() -> None:
    text = "\n".join([
        entry(USBLOG_EVENT="started", MESSAGE="USB connection monitor started"),
        entry(),
        entry(USB_CLASSES="03", USB_DECISION="allowed", USB_AUTHORIZED="1", USB_SERIAL=[107, 98, 100]),
        json.dumps({"__REALTIME_TIMESTAMP": "1764651600000000", "MESSAGE": "Traceback ...", "PRIORITY": "3"}),
    ]) + "\n"
    connections, other = measure.parse_journal(text, 0)
    assert [(c.decision, c.classes, c.serial) for c in connections] == [
        ("blocked", ("08",), "stick1"), ("allowed", ("03",), "kbd")]
    assert connections[0].time == "2025-12-02T05:00:00Z"
    assert other == ["2025-12-02T05:00:00Z USB connection monitor started", "2025-12-02T05:00:00Z Traceback ..."]
    assert measure.parse_journal("", 0) == ([], [])


@pytest.mark.parametrize("text", [
    "not json\n",
    "[1, 2]\n",
    entry(USB_ID="nothing") + "\n",
    entry(USB_DECISION="maybe") + "\n",
    json.dumps({"MESSAGE": "no timestamp"}) + "\n",
])
def test_parse_journal_unreadable_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="unreadable"):
        measure.parse_journal(text, 0)


def test_parse_journal_failed_command() -> None:
    with pytest.raises(ValueError, match="exit 1"):
        measure.parse_journal("", 1)


def test_let_through_judges_by_the_usb_profile() -> None:
    text = "\n".join([entry(), entry(USB_DECISION="allowed", USB_AUTHORIZED="1"),
                      entry(USB_DECISION="no policy", USB_AUTHORIZED="1"),
                      entry(USB_DECISION="no policy", USB_AUTHORIZED="0"),
                      entry(USB_CLASSES="03", USB_DECISION="allowed", USB_AUTHORIZED="1")])
    connections, _ = measure.parse_journal(text, 0)
    through = measure.let_through(connections, UsbSettings())
    assert [c.decision for c in through] == ["allowed", "no policy"]
    assert measure.let_through(connections, UsbSettings(storage="allow", usbguard=False)) == []


def test_settings_days_bounds() -> None:
    assert measure.Settings().days == 7
    with pytest.raises(ValueError):
        measure.Settings(days=0)


def test_journal_command() -> None:
    assert measure.journal_command(7) == ("journalctl --quiet --no-pager -o json -n 5000 --since=-7d "
                                          "SYSLOG_IDENTIFIER=hardening-usblog")
