#!/usr/bin/python3
"""hardening bulkwatch monitor (6-5): warn when a user reads more personal data than the threshold.

Runs on the watched host with its own python3 (standard library only); the bulkwatch deploy
copies this file to /usr/local/lib/hardening/bulkwatch-monitor.py and runs it as
``hardening-bulkwatch.service``. Reads the kernel's view: the audit records of the watch rules
of the audit measure (key ``hardening-pii-read``), from auditd's af_unix dispatcher socket
(string format, one record a line, the records of one event consecutive). For each successful
open of a regular file under a watched path it adds the file's size to the reading user's sum
(``uid``: the account whose rights opened the file; the login user behind it, ``auid``,
is named in the warning too). A sum over the
threshold within the sliding window raises ONE warning for that user, to standard output with
the journal's ``<4>`` (warning) prefix; the unit's facility (local6) takes it to the log host
with the audit records. The user is warned about again only after the window has emptied.

The config (JSON): ``{"paths": [...], "threshold": bytes, "window": seconds, "socket": path,
"key": "hardening-pii-read"}``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import socket
import stat
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TextIO

WARNING_TAG = "bulkwatch-warning"
_RECORD = re.compile(r"type=(\w+) msg=audit\((\d+\.\d+):(\d+)\): ?(.*)")
_FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')


def fields(body: str) -> dict[str, str]:
    """The ``name=value`` fields of a record (quotes removed; the first of each name)."""
    out: dict[str, str] = {}
    for name, value in _FIELD.findall(body):
        out.setdefault(name, value)
    return out


def audit_name(value: str) -> str:
    """A path field as the kernel logs it: quoted, or hex when it has spaces or other bytes."""
    if value.startswith('"'):
        return value.strip('"')
    if value in ("(null)", "?"):
        return ""
    try:
        return bytes.fromhex(value).decode("utf-8", "surrogateescape")
    except ValueError:
        return value


@dataclass
class Read:
    """One successful open of a file under a watched path by a user."""

    time: float
    uid: int
    path: str
    auid: int | None = None


@dataclass
class Event:
    serial: str
    time: float
    records: dict[str, list[dict[str, str]]] = field(default_factory=dict)


def event_read(event: Event, key: str) -> Read | None:
    """The read an event is, when it is a successful open with our key naming a file."""
    [syscall] = event.records.get("SYSCALL", [{}])[:1] or [{}]
    if syscall.get("key", "").strip('"') != key or syscall.get("success") != "yes":
        return None
    auid, uid = syscall.get("auid", ""), syscall.get("uid", "")
    if not uid.isdigit():
        return None
    login = int(auid) if auid.isdigit() and int(auid) != 4294967295 else None
    cwd = audit_name(event.records.get("CWD", [{}])[0].get("cwd", "")) if "CWD" in event.records else ""
    for record in event.records.get("PATH", []):
        if record.get("nametype") not in ("NORMAL", None):
            continue
        name = audit_name(record.get("name", ""))
        if name:
            path = name if name.startswith("/") else os.path.join(cwd or "/", name)
            return Read(event.time, int(uid), os.path.normpath(path), login)
    return None


class Events:
    """Groups record lines into events (consecutive records with one serial)."""

    def __init__(self) -> None:
        self.current: Event | None = None

    def feed(self, line: str) -> Event | None:
        """Add a record; returns the previous event once a record of another event (or EOE) arrives."""
        match = _RECORD.match(line.strip())
        if not match:
            return None
        kind, stamp, serial, body = match.groups()
        done = None
        if self.current is not None and self.current.serial != serial:
            done, self.current = self.current, None
        if kind == "EOE":
            finished = self.current
            self.current = None
            return finished or done
        if self.current is None:
            self.current = Event(serial, float(stamp))
        self.current.records.setdefault(kind, []).append(fields(body))
        return done

    def flush(self) -> Event | None:
        done, self.current = self.current, None
        return done


@dataclass
class Window:
    """Per user: the reads of the last ``window`` seconds and whether the user was warned about."""

    threshold: int
    window: float
    reads: dict[int, deque[tuple[float, int, str]]] = field(default_factory=dict)
    warned: set[int] = field(default_factory=set)

    def add(self, when: float, uid: int, size: int, path: str) -> tuple[int, list[str]] | None:
        """Count a read; (the user's sum, the files) when it crosses the threshold for the first
        time in the window, else None."""
        queue = self.reads.setdefault(uid, deque())
        while queue and queue[0][0] <= when - self.window:
            queue.popleft()
        if not queue:
            self.warned.discard(uid)
        queue.append((when, size, path))
        total = sum(s for _, s, _ in queue)
        if total > self.threshold and uid not in self.warned:
            self.warned.add(uid)
            return total, list(dict.fromkeys(p for _, _, p in queue))
        return None


def under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def warning_line(uid: int, total: int, files: list[str], config: dict[str, Any], login: int | None = None) -> str:
    """The warning as the journal, the log host, the check and the evidence read it."""
    shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    who = user_name(login) if login is not None else "-"
    return (f"{WARNING_TAG} user={user_name(uid)} uid={uid} login={who} bytes={total} window={int(config['window'])}s "
            f"threshold={config['threshold']} files={shown}")


def size_of(path: str) -> int | None:
    """The size of a regular file, None for anything else (a directory listing is not a read)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


class Monitor:
    def __init__(self, config: dict[str, Any], out: TextIO = sys.stdout) -> None:
        self.config = config
        self.window = Window(int(config["threshold"]), float(config["window"]))
        self.events = Events()
        self.out = out

    def line(self, text: str) -> None:
        event = self.events.feed(text)
        if event is not None:
            self.event(event)

    def event(self, event: Event, size: int | None = None) -> None:
        read = event_read(event, self.config.get("key", "hardening-pii-read"))
        if read is None or not under(read.path, self.config["paths"]):
            return
        size = size if size is not None else size_of(read.path)
        if size is None:
            return
        crossed = self.window.add(read.time, read.uid, size, read.path)
        if crossed:
            self.out.write(f"<4>{warning_line(read.uid, crossed[0], crossed[1], self.config, read.auid)}\n")
            self.out.flush()


def run(config: dict[str, Any]) -> None:  # pragma: no cover - the service's loop, proven on a lab host
    monitor = Monitor(config)
    print(f"<6>watching {', '.join(config['paths'])}: warn over {config['threshold']} bytes read "
          f"per user in {int(config['window'])}s", flush=True)
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(config["socket"])
                buffer = b""
                while True:
                    sock.settimeout(1.0)
                    try:
                        chunk = sock.recv(65536)
                    except TimeoutError:
                        event = monitor.events.flush()
                        if event is not None:
                            monitor.event(event)
                        continue
                    if not chunk:
                        break
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for raw in lines:
                        monitor.line(raw.decode("utf-8", "replace"))
        except OSError as exc:
            print(f"<3>cannot read {config['socket']} ({exc}); retrying", flush=True)
        time.sleep(2)


if __name__ == "__main__":  # pragma: no cover
    with open(sys.argv[1] if len(sys.argv) > 1 else "/etc/hardening/bulkwatch.json", encoding="utf-8") as handle:
        run(json.load(handle))
