"""bulkwatch (6-5): a warning when a user reads more personal data than the profile allows.

6-5 asks for a warning when more information that may contain personal data than a set amount
is taken (downloaded), and for that setting to be checked. The host runs a monitor
(:mod:`hardening.measures._bulkwatch_monitor`, copied to :data:`MONITOR_PATH`, run by
:data:`UNIT` with the host's own python3) that sums, per user and sliding window
(``window_seconds``), the sizes of the personal-data files the user opened for reading, and
raises one warning per user and window once the sum passes ``threshold_mib``.

Why audit records: the kernel already tells the audit measure's watch rules (key
``hardening-pii-read``) who opened which file under the personal-data paths, for every process
and whatever tool (cp, scp/sftp, a desktop application), with the login user behind a sudo.
auditd hands each record to its built-in af_unix dispatcher plugin (:data:`AF_UNIX_PATH`), a
local socket the monitor reads; no second kernel interface, no extra package. fanotify would
need privileges and a C binding or a new package, and counts opens the same way; per-process I/O
counters (psutil) cannot tell which file the bytes came from. The size summed is the file's size
at the time of the open: a whole-file copy, the case 6-5 is about, counts exactly; a program that
reads a part of a large file counts as the whole (it could have).

The warning is a line on the unit's standard output with the journal's ``<4>`` prefix: the
journal keeps it at priority warning under the identifier ``hardening-bulkwatch``; the unit's
facility (local6) is the one the audit measure's rsyslog file sends to the log host. The line
(:data:`WARNING_TAG` ``user=... uid=... bytes=... window=...s threshold=... files=...``) is what
the check and the evidence read back from the journal.

Desired state: :data:`CONFIG_PATH` (JSON: the paths, the threshold in bytes, the window, the
socket, the key) equal to :func:`config`; the monitor's file equal to the shipped one; the
af_unix plugin active and its socket present; the unit enabled and running, started after its
configuration last changed. The paths are the audit measure's (``measures.audit.paths`` or the
personal-data directories); none: "not configured".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from hardening.measures import _bulkwatch_monitor as monitor
from hardening.measures import audit
from hardening.measures._base import Measure, Strict
from hardening.measures._systemd import show_units

UNIT = "hardening-bulkwatch.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT}"
MONITOR_PATH = "/usr/local/lib/hardening/bulkwatch-monitor.py"
CONFIG_PATH = "/etc/hardening/bulkwatch.json"
AF_UNIX_PATH = "/etc/audit/plugins.d/af_unix.conf"
SOCKET = "/run/audispd_events"
IDENTIFIER = "hardening-bulkwatch"
WARNING_TAG = monitor.WARNING_TAG
MONITOR_SOURCE = Path(monitor.__file__)


class Settings(Strict):
    # More than this many MiB of personal-data files read by one user within the window: a warning.
    threshold_mib: int = Field(default=100, ge=1)
    # The sliding window the reads are summed over, in seconds.
    window_seconds: int = Field(default=3600, ge=60, le=7 * 86400)


def config(profile: Any) -> dict[str, Any]:
    """The monitor's configuration for this profile."""
    settings: Settings = profile.measure("bulkwatch")
    return {"paths": audit.watched(profile), "threshold": settings.threshold_mib * 1024 * 1024,
            "window": settings.window_seconds, "socket": SOCKET, "key": audit.READ_KEY}


def config_text(profile: Any) -> str:
    return json.dumps(config(profile), indent=1, sort_keys=True) + "\n"


def monitor_text() -> str:
    return MONITOR_SOURCE.read_text(encoding="utf-8")


def unit_text() -> str:
    return ("# Managed by hardening (bulkwatch, 6-5). Changes here are overwritten.\n"
            "[Unit]\n"
            "Description=Warn when a user reads more personal data than the threshold (hardening bulkwatch, 6-5)\n"
            "After=auditd.service\n"
            "Wants=auditd.service\n"
            "\n[Service]\n"
            f"ExecStart=/usr/bin/python3 {MONITOR_PATH} {CONFIG_PATH}\n"
            "Restart=always\n"
            "RestartSec=5\n"
            f"SyslogIdentifier={IDENTIFIER}\n"
            "SyslogFacility=local6\n"
            "SyslogLevelPrefix=yes\n"
            "\n[Install]\n"
            "WantedBy=multi-user.target\n")


def af_unix_text() -> str:
    """auditd's built-in af_unix dispatcher plugin, on, string format."""
    return ("# Managed by hardening (bulkwatch, 6-5). Changes here are overwritten.\n"
            "active = yes\n"
            "direction = out\n"
            "path = builtin_af_unix\n"
            "type = builtin\n"
            f"args = 0600 {SOCKET}\n"
            "format = string\n")


# -- reading the host ----------------------------------------------------------------------------

UNITS = f"systemctl show --timestamp=unix -p Id,LoadState,ActiveState,UnitFileState,ActiveEnterTimestamp {UNIT}"
FILES = (f"for f in {CONFIG_PATH} {MONITOR_PATH} {UNIT_PATH} {AF_UNIX_PATH}; do printf '### %s %s\\n' \"$f\" "
         "\"$(stat -c %Y \"$f\" 2>/dev/null || echo absent)\"; cat \"$f\" 2>/dev/null; done; "
         f"printf '### socket %s\\n' \"$(stat -c %F {SOCKET} 2>/dev/null || echo absent)\"")
WARNINGS = f"journalctl -m -q -o cat -p warning -t {IDENTIFIER} --since -1d --no-pager | tail -n 20"


def parse_files(stdout: str) -> dict[str, tuple[str, str]]:
    """:data:`FILES` -> path -> (mtime or 'absent', text); 'socket' -> (its type, '')."""
    out: dict[str, tuple[str, str]] = {}
    current, stamp, body = "", "", list[str]()
    for line in stdout.splitlines(keepends=True):
        if line.startswith("### "):
            if current:
                out[current] = (stamp, "".join(body))
            parts = line[4:].rstrip("\n").split(" ", 1)
            current, stamp, body = parts[0], parts[1] if len(parts) > 1 else "", []
            continue
        body.append(line)
    if current:
        out[current] = (stamp, "".join(body))
    wanted = [CONFIG_PATH, MONITOR_PATH, UNIT_PATH, AF_UNIX_PATH, "socket"]
    missing = [w for w in wanted if w not in out]
    if missing:
        raise ValueError(f"cannot read the monitor's files: {missing} missing in {stdout[:200]!r}")
    return out


def parse_units(stdout: str, rc: int = 0) -> dict[str, str]:
    return show_units(stdout, rc, (UNIT,), "systemctl show")[UNIT]


def problems(profile: Any, files: dict[str, tuple[str, str]], unit: dict[str, str]) -> list[str]:
    """Why the monitor does not run with the profile's paths and threshold."""
    found = []
    want = {CONFIG_PATH: config_text(profile), MONITOR_PATH: monitor_text(), UNIT_PATH: unit_text()}
    for path, text in want.items():
        stamp, have = files[path]
        if stamp == "absent":
            found.append(f"{path} is missing")
        elif have != text:
            found.append(f"{path} differs from the profile's" + (f" ({config_summary(have)})"
                                                                   if path == CONFIG_PATH else ""))
    plugin = audit.parse_plugin(files[AF_UNIX_PATH][1])
    if plugin.get("active", "").lower() != "yes" or plugin.get("path") != "builtin_af_unix":
        found.append(f"{AF_UNIX_PATH}: the af_unix dispatcher is not active")
    if files["socket"][0] != "socket":
        found.append(f"{SOCKET} is not there: auditd does not hand records to the monitor")
    if unit.get("ActiveState") != "active":
        found.append(f"{UNIT} is {unit.get('ActiveState')}")
    if unit.get("UnitFileState") != "enabled":
        found.append(f"{UNIT} is {unit.get('UnitFileState')} at boot")
    started = unit.get("ActiveEnterTimestamp", "").lstrip("@")
    newest = max((int(files[p][0]) for p in want if files[p][0].isdigit()), default=0)
    if started.isdigit() and newest > int(started):
        found.append(f"the monitor runs with an older configuration (its files changed after it started at @{started})")
    return found


def config_summary(text: str) -> str:
    try:
        data = json.loads(text)
        return f"paths {data.get('paths')}, threshold {data.get('threshold')} bytes, window {data.get('window')} s"
    except ValueError:
        return "not JSON"


def parse_warnings(stdout: str) -> list[dict[str, str]]:
    """The monitor's warning lines -> their fields (user, uid, bytes, window, threshold, files)."""
    out = []
    for line in stdout.splitlines():
        if WARNING_TAG not in line:
            continue
        head, _, files = line.partition(" files=")
        fields = dict(part.split("=", 1) for part in head.split() if "=" in part)
        fields["files"] = files
        out.append(fields)
    return out


def observe(profile: Any) -> list[str]:
    if not audit.watched(profile):
        return [audit.STATUS]
    return [audit.STATUS, UNITS, FILES, WARNINGS]


MEASURE = Measure(
    name="bulkwatch",
    title="a warning when one user reads more personal data than the threshold within the window",
    clauses=("6-5",),
    order=36,
    settings=Settings,
    observe=observe,
)
