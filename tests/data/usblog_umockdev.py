"""Drive the usblog monitor against umockdev's mocked udev (run by tests/test_measure_usblog.py).

Run with Debian's python3 under ``umockdev-wrapper`` (python3-gi, gir1.2-umockdev-1.0 and
python3-pyudev: what the lab hosts run the monitor with)::

    umockdev-wrapper /usr/bin/python3 tests/data/usblog_umockdev.py MONITOR SCENARIO.json

The scenario names the devices (sysfs attributes, raw descriptors in hex) and a fake ``usbguard``
(a shell script: its ``list-devices``; it can write the device's ``authorized`` in the testbed as
the daemon does). The monitor runs as the service runs it (``python3 -I MONITOR``), in a process of
its own, its journal socket bound here. Each device gets an ``add`` uevent after the monitor says
it started; every journal datagram is decoded and printed as one JSON list.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import tempfile

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402


def decode(data: bytes) -> dict[str, str]:
    """journald's native protocol back into fields."""
    out: dict[str, str] = {}
    i = 0
    while i < len(data):
        end = data.index(b"\n", i)
        line = data[i:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            out[key.decode()] = value.decode()
            i = end + 1
        else:
            (size,) = struct.unpack("<Q", data[end + 1:end + 9])
            out[line.decode()] = data[end + 9:end + 9 + size].decode()
            i = end + 9 + size + 1
    return out


def main() -> int:
    monitor, scenario_path = sys.argv[1:3]
    with open(scenario_path) as handle:
        scenario = json.load(handle)
    testbed = UMockdev.Testbed.new()
    paths = []
    for device in scenario["devices"]:
        attributes = [x for k, v in device["attributes"].items() for x in (k, v)]
        path = testbed.add_device("usb", device["port"], None, attributes, ["DEVTYPE", "usb_device"])
        if device.get("descriptors"):
            testbed.set_attribute_binary(path, "descriptors", list(bytes.fromhex(device["descriptors"])))
        paths.append(path)
    work = tempfile.mkdtemp(prefix="usblog-")
    usbguard = os.path.join(work, "usbguard")
    with open(usbguard, "w") as handle:
        handle.write("#!/bin/sh\n" + scenario["usbguard"])
    os.chmod(usbguard, 0o755)
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(os.path.join(work, "journal"))
    journal.settimeout(float(scenario.get("timeout", 20)))
    env = {**os.environ, "UMOCKDEV_DIR": testbed.get_root_dir()}
    proc = subprocess.Popen(["/usr/bin/python3", "-I", monitor, "--wait", str(scenario.get("wait", 2)),
                             "--usbguard", usbguard, "--socket", os.path.join(work, "journal")], env=env)
    records = []
    try:
        records.append(decode(journal.recv(65536)))  # started
        for path in paths:
            testbed.uevent(path, "add")
            records.append(decode(journal.recv(65536)))
    except TimeoutError:
        records.append({"error": "no journal entry in time"})
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
