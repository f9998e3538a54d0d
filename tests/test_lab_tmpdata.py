"""tmpdata (6-9) on a real Debian 12 lab container, through the real command line (shipped
"terminal" profile, sensitivity medium: /tmp aged after 3d, /var/tmp after 14d, /tmp noexec).

1. A fresh host: Debian ages neither /tmp nor /var/tmp (tmp.conf's ``D /tmp ... -``) and
   systemd-nspawn mounts /tmp as its own tmpfs with nosuid,nodev but not noexec: the ageing and
   the mount checks fail, the timer and old-file checks pass, staging is not configured. ``--dry``
   lists the changes and changes nothing; ``hardening deploy -m tmpdata`` makes every check pass
   (the container's /tmp is remounted noexec from inside: a program copied there no longer runs);
   a second deploy changes nothing.
2. Old files: with a profile of one-minute ages and a staging directory, files planted in /tmp
   and in the staging directory, then a clean-up run under the host's old (3d) configuration,
   are named by the check as missed; a file planted after that run is recorded as due, one under
   a directory with a tmpfiles line of its own as kept. The deploy writes the short ages and runs
   the clean-up: the missed and due files are gone, the kept one stays, every check passes, a
   second deploy changes nothing. File times cannot be faked (ctime is the kernel's), so the test
   waits for them to age: about two and a half minutes.
3. A /tmp that is a plain directory of the root file system (a Debian 12 VM's): with the
   container's tmpfs unmounted, the deploy bind-mounts /tmp on itself with the flags.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost
from hardening.measures import tmpdata as measure
from tests.helpers import cli, lab_hosts

pytestmark = pytest.mark.lab

HOST = "td-lab"
STAGING = "/srv/pii-staging"
FINGERPRINT = ("sudo sh -c 'cat /etc/tmpfiles.d/* 2>/dev/null; findmnt -n -o OPTIONS -T /tmp; "
               "ls /etc/systemd/system' | sha256sum")


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (HOST, "terminal", "medium"), kind="container") as started:
        yield started[HOST]


def verify(inventory: Path, evidence: Path, *args: str | Path) -> dict[str, dict[str, object]]:
    """Check id -> {status, message, observed} of one verify of the tmpdata measure."""
    before = set(evidence.glob("*/index.json"))
    start = time.monotonic()
    proc = cli("verify", inventory, "-l", HOST, "-m", "tmpdata", "--evidence", evidence, *args, timeout=900)
    print(f"verify: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode in (0, 1, 5), proc.stdout + proc.stderr
    [index] = set(evidence.glob("*/index.json")) - before
    [entry] = json.loads(index.read_text())["hosts"]
    doc = json.loads((index.parent / entry["json"]).read_text())
    return {c["id"]: {"status": c["status"], "message": c.get("message") or "", "observed": c.get("observed")}
            for c in doc["checks"]}


def statuses(checks: dict[str, dict[str, object]]) -> dict[str, object]:
    return {k: v["status"] for k, v in checks.items()}


def deploy(inventory: Path, *args: str | Path) -> tuple[str, int]:
    """Output and the host's number of changes (or would-be changes with --dry)."""
    start = time.monotonic()
    proc = cli("deploy", inventory, "-l", HOST, "-m", "tmpdata", *args, timeout=1800)
    print(f"deploy {' '.join(map(str, args))}: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    [row] = [line.split() for line in proc.stdout.splitlines() if line.startswith(HOST + " ")]
    return proc.stdout + proc.stderr, int(row[1])


def test_fresh_host_fails_then_deploy_passes_and_repeats_nothing(host: LabHost, inventory: Path,
                                                                 tmp_path: Path) -> None:
    mount = host.run("findmnt -n -o FSTYPE,OPTIONS -T /tmp").stdout.split()
    assert mount[0] == "tmpfs" and "noexec" not in mount[1].split(",")  # systemd-nspawn's own /tmp
    fresh = verify(inventory, tmp_path)
    assert statuses(fresh) == {"tmpdata.tmp_ageing": "fail", "tmpdata.staging_ageing": "not_configured",
                               "tmpdata.cleanup_timer": "pass", "tmpdata.tmp_mount_options": "fail",
                               "tmpdata.stale_files": "pass"}, fresh
    assert "/usr/lib/tmpfiles.d/tmp.conf:11: D /tmp 1777 root root -" in str(fresh["tmpdata.tmp_ageing"]["message"])
    assert "lacks noexec" in str(fresh["tmpdata.tmp_mount_options"]["message"])

    print_before = host.run(FINGERPRINT).stdout
    output, would = deploy(inventory, "--dry")
    assert would >= 4 and measure.TMPFILES_CONF in output and "+ D /tmp 1777 root root 3d" in output, output
    assert host.run(FINGERPRINT).stdout == print_before

    output, changed = deploy(inventory)
    assert changed >= 5, output
    after = verify(inventory, tmp_path)
    assert statuses(after) == {**statuses(fresh), "tmpdata.tmp_ageing": "pass", "tmpdata.tmp_mount_options": "pass"}
    assert "noexec" in host.run("findmnt -n -o OPTIONS -T /tmp").stdout.split(",")
    ran = host.run("cp /bin/true /tmp/t && /tmp/t; echo rc=$?; rm -f /tmp/t", check=False)
    assert "Permission denied" in ran.stdout + ran.stderr and "rc=126" in ran.stdout, ran
    assert host.run(f"systemctl is-enabled {measure.MOUNT_UNIT}").stdout.strip() == "enabled"

    output, changed = deploy(inventory)
    assert changed == 0, output


def short_ages(tmp_path: Path) -> Path:
    """The shipped profiles with one-minute ages and a staging directory for the terminal."""
    out = tmp_path / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", out)
    text = (out / "terminal.yaml").read_text()
    text = text.replace("measures:\n", "measures:\n  tmpdata:\n    tmp_age: 1min\n    staging_age: 1min\n"
                                       f"    staging_paths: [{STAGING}]\n", 1)
    (out / "terminal.yaml").write_text(text)
    return out


def test_old_files_are_named_then_deleted(host: LabHost, inventory: Path, tmp_path: Path) -> None:
    profiles = short_ages(tmp_path)
    missed = [f"{STAGING}/住民票 2024.csv", "/tmp/export.csv", "/tmp/work/old.xlsx"]
    kept = "/tmp/app-cache/index.dat"
    due = "/tmp/later.csv"
    host.run(f"sudo mkdir -p -m 0750 {STAGING} /tmp/work /tmp/app-cache && "
             "printf 'd /tmp/app-cache 0755 root root -\\n' | sudo tee /etc/tmpfiles.d/app-cache.conf >/dev/null && "
             + " && ".join(f"echo personal data | sudo tee '{p}' >/dev/null" for p in [*missed, kept]))
    time.sleep(65)
    # The host's daily clean-up runs under its configuration (3d): it leaves them all.
    host.run(f"sudo systemctl start {measure.CLEAN_SERVICE}")
    host.run(f"echo personal data > {due}")
    time.sleep(65)
    planted = verify(inventory, tmp_path, "--profiles", profiles)
    assert planted["tmpdata.staging_ageing"]["status"] == "fail", planted
    assert f"{STAGING} is not aged" in str(planted["tmpdata.staging_ageing"]["message"])
    assert planted["tmpdata.tmp_ageing"]["status"] == "fail"  # aged after 3d, the profile says 1min
    stale = planted["tmpdata.stale_files"]
    assert stale["status"] == "fail", stale
    message = str(stale["message"])
    assert all(p in message for p in missed), message
    observed = stale["observed"]
    assert isinstance(observed, dict)
    assert observed["/tmp"]["due at the next clean-up"] == [due], observed
    assert observed["/tmp"]["kept by the host's tmpfiles lines"] == [
        f"{kept} (/etc/tmpfiles.d/app-cache.conf:1: d /tmp/app-cache 0755 root root -)"], observed

    output, changed = deploy(inventory, "--profiles", profiles)
    assert "Delete what is older than its age now" in output and changed >= 2, output
    left = host.run(f"sudo find /tmp {STAGING} -type f").stdout.split("\n")
    assert kept in left and not [p for p in [*missed, due] if p in left], left
    repaired = verify(inventory, tmp_path, "--profiles", profiles)
    assert set(statuses(repaired).values()) == {"pass"}, repaired
    output, changed = deploy(inventory, "--profiles", profiles)
    assert changed == 0, output

    # Back to the shipped profile: 3d again, the staging line gone.
    host.run(f"sudo rm -rf /etc/tmpfiles.d/app-cache.conf /tmp/app-cache {STAGING}")
    deploy(inventory)
    assert f"e {STAGING}" not in host.run(f"cat {measure.TMPFILES_CONF}").stdout


def test_a_plain_tmp_directory_is_bind_mounted_on_itself(host: LabHost, inventory: Path, tmp_path: Path) -> None:
    """A Debian 12 VM has no /tmp mount (a directory on the root file system, no tmp.mount): with
    the container's tmpfs taken away the container is in that state, and the unit bind-mounts /tmp
    on itself before adding the flags (the path the VMs of tests/test_lab_deploy.py take)."""
    host.run("sudo umount -l /tmp")
    assert host.run("findmnt -n -o TARGET -T /tmp").stdout.strip() == "/"
    plain = verify(inventory, tmp_path)
    mount = plain["tmpdata.tmp_mount_options"]
    assert mount["status"] == "fail"
    assert "/tmp is not a mount of its own: it is a directory on /" in str(mount["message"])
    output, changed = deploy(inventory)
    assert changed == 1 and "/tmp gets nodev,nosuid,noexec now" in output, output
    target, source, options = host.run("findmnt -n -o TARGET,SOURCE,OPTIONS -T /tmp").stdout.split()
    assert (target, source) == ("/tmp", "overlay[/tmp]") and {"nodev", "nosuid", "noexec"} <= set(options.split(","))
    assert set(statuses(verify(inventory, tmp_path)).values()) == {"pass", "not_configured"}
    assert deploy(inventory)[1] == 0
