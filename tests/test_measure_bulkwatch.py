"""bulkwatch (6-5): the monitor's logic alone (records as auditd's af_unix dispatcher sends them,
taken from a Debian 12 lab VM), its configuration from the profile, and the check's readings."""

from __future__ import annotations

import io
import json

import pytest

from hardening.measures import _bulkwatch_monitor as monitor
from hardening.measures import audit
from hardening.measures import bulkwatch as measure
from hardening.profiles import Profiles

MIB = 1024 * 1024


def records(serial: int, uid: int, path: str, *, key: str = audit.READ_KEY, success: str = "yes",
            auid: int = 1000, stamp: float = 1796189787.018, cwd: str = "/home/hardening") -> list[str]:
    msg = f"msg=audit({stamp:.3f}:{serial}):"
    name = f'"{path}"' if " " not in path else path.encode().hex().upper()
    return [
        f"type=SYSCALL {msg} arch=c000003e syscall=257 success={success} exit=3 a0=ffffff9c a1=7ffebad57dad a2=0 "
        f"a3=0 items=1 ppid=1652 pid=1653 auid={auid} uid={uid} gid={uid} euid={uid} suid={uid} fsuid={uid} "
        f'egid={uid} sgid={uid} fsgid={uid} tty=(none) ses=12 comm="cat" exe="/usr/bin/cat" subj=unconfined '
        f'key="{key}"\x1dARCH=x86_64 SYSCALL=openat AUID="hardening" UID="alice"',
        f'type=CWD {msg} cwd="{cwd}"',
        f"type=PATH {msg} item=0 name={name} inode=18884 dev=fe:00 mode=0100644 ouid=0 ogid=0 rdev=00:00 "
        "nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
        f"type=PROCTITLE {msg} proctitle=636174002F7372762F7069692F722E637376",
        f"type=EOE {msg}",
    ]


CONFIG = {"paths": ["/srv/pii"], "threshold": MIB, "window": 60, "socket": measure.SOCKET, "key": audit.READ_KEY}


class Sized(monitor.Monitor):
    """The monitor with file sizes from a table instead of the disk."""

    def __init__(self, sizes: dict[str, int]) -> None:
        super().__init__(CONFIG, io.StringIO())
        self.sizes = sizes

    def event(self, event: monitor.Event, size: int | None = None) -> None:
        read = monitor.event_read(event, audit.READ_KEY)
        super().event(event, self.sizes.get(read.path, 0) if read else None)

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.out.getvalue().splitlines() if monitor.WARNING_TAG in line]  # type: ignore[attr-defined]


def feed(mon: monitor.Monitor, lines: list[str]) -> None:
    for line in lines:
        mon.line(line)


def test_an_event_is_a_read_of_one_file_by_one_user() -> None:
    events = monitor.Events()
    done = [e for line in records(7, 1001, "/srv/pii/a.csv") for e in [events.feed(line)] if e]
    [event] = done
    read = monitor.event_read(event, audit.READ_KEY)
    assert read == monitor.Read(1796189787.018, 1001, "/srv/pii/a.csv", 1000)
    relative = [e for line in records(8, 1001, "../../srv/pii/b.csv") for e in [events.feed(line)] if e]
    assert monitor.event_read(relative[0], audit.READ_KEY).path == "/srv/pii/b.csv"  # type: ignore[union-attr]
    hexed = [e for line in records(9, 1001, "/srv/pii/住民 票.csv") for e in [events.feed(line)] if e]
    assert monitor.event_read(hexed[0], audit.READ_KEY).path == "/srv/pii/住民 票.csv"  # type: ignore[union-attr]
    other = [e for line in records(10, 1001, "/etc/passwd", key="other") for e in [events.feed(line)] if e]
    assert monitor.event_read(other[0], audit.READ_KEY) is None
    failed = [e for line in records(11, 1001, "/srv/pii/a.csv", success="no") for e in [events.feed(line)] if e]
    assert monitor.event_read(failed[0], audit.READ_KEY) is None


def test_events_without_eoe_end_at_the_next_serial() -> None:
    events = monitor.Events()
    lines = [line for line in records(1, 1001, "/srv/pii/a.csv") if "EOE" not in line]
    assert [events.feed(line) for line in lines] == [None] * 4
    finished = events.feed(records(2, 1001, "/srv/pii/b.csv")[0])
    assert finished is not None and finished.serial == "1"
    assert events.flush() is not None and events.flush() is None


def test_more_than_the_threshold_warns_once_naming_the_user() -> None:
    mon = Sized({"/srv/pii/a.csv": 600 * 1024, "/srv/pii/b.csv": 600 * 1024, "/srv/pii/c.csv": 600 * 1024})
    feed(mon, records(1, 1001, "/srv/pii/a.csv", stamp=100.0))
    assert mon.warnings == []
    feed(mon, records(2, 1001, "/srv/pii/b.csv", stamp=110.0))
    feed(mon, records(3, 1001, "/srv/pii/c.csv", stamp=120.0))
    [line] = mon.warnings
    assert line.startswith("<4>")
    [fields] = measure.parse_warnings(line)
    assert fields["uid"] == "1001" and fields["bytes"] == str(1200 * 1024) and fields["threshold"] == str(MIB)
    assert fields["files"] == "/srv/pii/a.csv, /srv/pii/b.csv"
    # another user's reads are their own sum
    feed(mon, records(4, 1002, "/srv/pii/a.csv", stamp=121.0))
    assert len(mon.warnings) == 1
    # once the window has emptied, the user is warned about again
    feed(mon, records(5, 1001, "/srv/pii/a.csv", stamp=300.0))
    feed(mon, records(6, 1001, "/srv/pii/b.csv", stamp=301.0))
    assert len(mon.warnings) == 2


def test_less_than_the_threshold_and_reads_elsewhere_raise_nothing() -> None:
    mon = Sized({"/srv/pii/a.csv": 600 * 1024, "/srv/other/x": 10 * MIB})
    feed(mon, records(1, 1001, "/srv/pii/a.csv", stamp=100.0))
    feed(mon, records(2, 1001, "/srv/other/x", stamp=101.0))
    feed(mon, records(3, 1001, "/srv/pii/a.csv", stamp=170.0))  # the first read left the window
    assert mon.warnings == []


def test_the_window() -> None:
    window = monitor.Window(threshold=10, window=60)
    assert window.add(0, 1, 6, "a") is None
    assert window.add(59, 1, 6, "b") == (12, ["a", "b"])
    assert window.add(61, 1, 6, "c") is None  # still warned: b and c are in the window
    assert window.add(200, 1, 11, "d") == (11, ["d"])


def test_config_from_the_profile() -> None:
    profiles = Profiles()
    assert measure.config(profiles.resolve("terminal", "medium"))["paths"] == []
    assert measure.observe(profiles.resolve("terminal", "medium")) == [audit.STATUS]
    settings = measure.Settings(threshold_mib=5, window_seconds=600)
    assert settings.threshold_mib == 5
    for bad in ({"threshold_mib": 0}, {"window_seconds": 10}, {"other": 1}):
        with pytest.raises(ValueError):
            measure.Settings.model_validate(bad)


def test_the_unit_and_the_dispatcher() -> None:
    unit = measure.unit_text()
    assert f"ExecStart=/usr/bin/python3 {measure.MONITOR_PATH} {measure.CONFIG_PATH}" in unit
    assert "SyslogFacility=local6" in unit and "SyslogIdentifier=hardening-bulkwatch" in unit
    plugin = audit.parse_plugin(measure.af_unix_text())
    assert plugin["active"] == "yes" and plugin["path"] == "builtin_af_unix" and measure.SOCKET in plugin["args"]
    assert "import" in measure.monitor_text() and measure.monitor_text().startswith("#!/usr/bin/python3")


def files_output(config: str, unit: str, stamp: str = "100", socket: str = "socket") -> str:
    return (f"### {measure.CONFIG_PATH} {stamp}\n{config}### {measure.MONITOR_PATH} {stamp}\n{measure.monitor_text()}"
            f"### {measure.UNIT_PATH} {stamp}\n{unit}### {measure.AF_UNIX_PATH} {stamp}\n{measure.af_unix_text()}"
            f"### socket {socket}\n")


class Profile:
    """A resolved profile with watched paths and the default bulkwatch settings."""

    def measure(self, name: str) -> object:
        return audit.Settings(paths=["/srv/pii"]) if name == "audit" else measure.Settings()


def test_problems() -> None:
    profile = Profile()
    running = {"ActiveState": "active", "UnitFileState": "enabled", "ActiveEnterTimestamp": "@200"}
    good = measure.parse_files(files_output(measure.config_text(profile), measure.unit_text()))
    assert measure.problems(profile, good, running) == []
    lowered = json.dumps({**measure.config(profile), "threshold": 1}) + "\n"
    found = measure.problems(profile, measure.parse_files(files_output(lowered, measure.unit_text())), running)
    assert len(found) == 1 and "threshold 1 bytes" in found[0]
    stopped = {"ActiveState": "inactive", "UnitFileState": "disabled", "ActiveEnterTimestamp": ""}
    assert len(measure.problems(profile, good, stopped)) == 2
    newer = measure.parse_files(files_output(measure.config_text(profile), measure.unit_text(), stamp="300"))
    assert "older configuration" in measure.problems(profile, newer, running)[0]
    nosock = measure.parse_files(files_output(measure.config_text(profile), measure.unit_text(), socket="absent"))
    assert "not there" in measure.problems(profile, nosock, running)[0]
    with pytest.raises(ValueError):
        measure.parse_files("### /etc/x 1\n")
