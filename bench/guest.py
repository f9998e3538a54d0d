"""OpenSCAP and Lynis on a lab guest: install Debian's packages there, run each audit, time it.

Debian 12 has no Debian 12 SCAP content: ``ssg-debian`` 0.1.65 (the closest package; the others
are ``ssg-debderived``, Ubuntu, and ``ssg-nondebian``, RHEL and friends) ships data streams for
Debian 10 and 11 only, and the archive this lab uses serves no source package to build newer
content from. The Debian 11 data stream run as it is on Debian 12 reports every rule "not
applicable" (its platform test reads ``^11.[0-9]+$`` from /etc/debian_version). The benchmark
therefore scans with a copy whose platform test accepts 12 (the two occurrences of that pattern
replaced, nothing else changed), and reports the profile and the rule results it got.

Every audit goes over a fresh SSH connection (no ControlMaster: ``hardening verify`` also opens
its own) as the lab's account with ``sudo``; the scan's own time is measured on the guest.
"""

from __future__ import annotations

import shlex
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from measure import measured

PACKAGES = ("openscap-scanner", "ssg-debian", "lynis")
SOURCE_DS = "/usr/share/xml/scap/ssg/content/ssg-debian11-ds.xml"
DATASTREAM = "/var/tmp/bench/ssg-debian12-from-11-ds.xml"
PROFILE = "xccdf_org.ssgproject.content_profile_anssi_np_nt28_high"

PREPARE = r"""set -e
export DEBIAN_FRONTEND=noninteractive
need=""
for p in PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed$' || need="$need $p"
done
if [ -n "$need" ]; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends $need >/dev/null
fi
mkdir -p /var/tmp/bench
python3 - <<'PY'
text = open("SOURCE_DS", encoding="utf-8").read()
old, new = "^11.[0-9]+$", "^12.[0-9]+$"
print("retargeted_patterns=%d" % text.count(old))
open("DATASTREAM", "w", encoding="utf-8").write(text.replace(old, new))
PY
echo "installed=$need"
echo "oscap=$(oscap --version | head -1 | awk '{print $NF}')"
echo "ssg_debian=$(dpkg-query -W -f='${Version}' ssg-debian)"
echo "lynis=$(dpkg-query -W -f='${Version}' lynis)"
echo "guest_kernel=$(uname -r)"
echo "guest_debian=$(cat /etc/debian_version)"
echo "guest_memory_mb=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
"""

# The scan's time is taken on the guest around the tool alone; counting happens after.
TIMED = r"""cd /var/tmp/bench
s=$(date +%s%N)
TOOL > out.txt 2> err.txt
rc=$?
e=$(date +%s%N)
echo "rc=$rc"
echo "scan_seconds=$(( (e - s) / 1000000 ))e-3"
COUNT
"""

OSCAP = ("oscap xccdf eval --profile PROFILE --results /var/tmp/bench/oscap-results.xml DATASTREAM")
OSCAP_COUNT = r"""grep '^Result' out.txt | awk '{print "result_" $2}' | sort | uniq -c | awk '{print $2 "=" $1}'
echo "rules=$(grep -c '^Result' out.txt)"
"""
LYNIS = ("lynis audit system --quick --no-colors --quiet --report-file /var/tmp/bench/lynis-report.dat "
         "--log-file /var/tmp/bench/lynis.log")
LYNIS_COUNT = r"""tests=$(grep '^tests_executed=' lynis-report.dat | cut -d= -f2)
echo "tests_executed=$(echo "$tests" | tr '|' '\n' | grep -c .)"
echo "warnings=$(grep -c '^warning\[\]=' lynis-report.dat)"
echo "suggestions=$(grep -c '^suggestion\[\]=' lynis-report.dat)"
echo "hardening_index=$(grep '^hardening_index=' lynis-report.dat | cut -d= -f2)"
"""


def ssh_command(ssh_config: Path, name: str) -> list[str]:
    return ["ssh", "-F", str(ssh_config), "-o", "ControlMaster=no", "-o", "ControlPath=none", name,
            "sudo sh -s"]


def key_values(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def prepare(ssh_config: Path, name: str) -> dict[str, str]:
    """Install the audits' packages on the guest (if missing) and write the retargeted content."""
    script = (PREPARE.replace("PACKAGES", " ".join(PACKAGES)).replace("SOURCE_DS", SOURCE_DS)
              .replace("DATASTREAM", DATASTREAM))
    proc = subprocess.run(ssh_command(ssh_config, name), input=script, capture_output=True, text=True,
                          timeout=3600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"preparing {name} failed: {proc.stderr.strip()[-500:]}")
    info = key_values(proc.stdout)
    if info.get("retargeted_patterns") != "2":
        raise RuntimeError(f"the Debian 11 data stream changed: {info.get('retargeted_patterns')} patterns")
    return info


def script_for(tool: str, profile: str = PROFILE) -> str:
    if tool == "oscap":
        command = OSCAP.replace("PROFILE", profile).replace("DATASTREAM", DATASTREAM)
        return TIMED.replace("TOOL", command).replace("COUNT", OSCAP_COUNT)
    if tool == "lynis":
        return TIMED.replace("TOOL", LYNIS).replace("COUNT", LYNIS_COUNT)
    raise ValueError(tool)


def audit(ssh_config: Path, name: str, tool: str, workdir: Path, profile: str = PROFILE) -> dict[str, Any]:
    """One audit over SSH, run through bench/measure.py; wall and CPU here, scan time there."""
    out, err = workdir / f"measure-{tool}.json", workdir / f"{tool}.stderr"
    with err.open("w") as fh:
        sample, stdout = measured(ssh_command(ssh_config, name), out, input_text=script_for(tool, profile),
                                  stdout=subprocess.PIPE, stderr=fh)
    info = key_values(stdout)
    ok = {"oscap": ("0", "2"), "lynis": ("0", "1")}[tool]
    if sample["rc"] != 0 or info.get("rc") not in ok:
        raise RuntimeError(f"{tool} on {name} failed (ssh {sample['rc']}, tool {info.get('rc')}): "
                           f"{err.read_text(errors='replace').strip()[-300:]}")
    sample["scan_seconds"] = float(info.pop("scan_seconds"))
    sample["counts"] = {k: int(v) for k, v in info.items() if k != "rc" and v.isdigit()}
    return sample


def framing_probe(ssh_config: Path, name: str, count: int, repeat: int) -> dict[str, Any]:
    """What the observation batch costs beyond its commands: `count` times `true`, three ways.

    ``ssh_sudo``: one SSH connection and ``sudo -n true``; ``framed``: hardening.observe's batch of
    `count` ``true`` (subshell, timestamps and base64 framing per command); ``plain``: the same
    commands in one ``sh -c`` without framing. Medians over `repeat` rounds, each round in turn.
    """
    from hardening.observe import remote_command

    commands = [f"true {i}" for i in range(count)]
    ways = {"ssh_sudo": "sudo -n true",
            "framed": "sudo -n sh -c " + shlex.quote(remote_command(commands)),
            "plain": "sudo -n sh -c " + shlex.quote("; ".join(commands))}
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(repeat):
        for way, remote in ways.items():
            began = time.perf_counter()
            subprocess.run([*ssh_command(ssh_config, name)[:-1], remote], capture_output=True, check=True,
                           stdin=subprocess.DEVNULL, timeout=600)
            seconds[way].append(time.perf_counter() - began)
    result: dict[str, Any] = {"commands": count, "repeat": repeat}
    result.update({f"{way}_median_s": round(statistics.median(v), 3) for way, v in seconds.items()})
    return result
