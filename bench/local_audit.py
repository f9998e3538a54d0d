"""Benchmark: `hardening verify --local` against Lynis on the same machine, in one run.

Both are read-only audits of the machine they run on. Lynis (Debian's package) runs its whole
`audit system`; hardening runs the checks of one profile. Each tool runs REPEAT times,
alternating, so that load on the machine falls on both alike; the report gives medians and the
ratio. No test asserts on these numbers: they are measurements, printed and written to JSON.

    python bench/local_audit.py [--repeat 5] [--out bench/results/local_audit.json]

Installs lynis with apt if it is missing (root). What is compared is wall time per audit and
the number of findings each reports; they do not verify the same things (Lynis knows nothing of
the MIC guideline), which the report says.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure_lynis() -> str:
    if not shutil.which("lynis"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "lynis"], check=True,
                       env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return shutil.which("lynis") or "lynis"


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start, proc


def hardening_run(tmp: Path) -> tuple[float, int]:
    seconds, proc = timed([sys.executable, "-m", "hardening", "verify", "--local", "--profile", "server",
                           "--evidence", str(tmp / "ev")], ROOT)
    if proc.returncode not in (0, 1, 4):
        raise SystemExit(f"hardening verify failed: {proc.stderr[-500:]}")
    index = max((tmp / "ev").glob("*/index.json"))
    summary = json.loads(index.read_text())["hosts"][0]["summary"]
    return seconds, int(summary["total"])


def lynis_run(lynis: str, tmp: Path) -> tuple[float, int]:
    report = tmp / "lynis-report.dat"
    seconds, proc = timed([lynis, "audit", "system", "--quick", "--no-colors", "--quiet",
                           "--report-file", str(report), "--log-file", str(tmp / "lynis.log")], ROOT)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"lynis failed: {proc.stderr[-500:]}")
    tests = [line for line in report.read_text().splitlines() if line.startswith("tests_executed=")]
    executed = len(tests[0].split("=", 1)[1].split("|")) if tests else 0
    return seconds, executed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "local_audit.json")
    args = parser.parse_args()
    lynis = ensure_lynis()
    ours: list[float] = []
    theirs: list[float] = []
    counts = {"hardening_checks": 0, "lynis_tests": 0}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for _ in range(args.repeat):
            seconds, counts["hardening_checks"] = hardening_run(tmp)
            ours.append(seconds)
            seconds, counts["lynis_tests"] = lynis_run(lynis, tmp)
            theirs.append(seconds)
    result = {
        "what": "local read-only audit of the same machine, wall seconds per audit",
        "repeat": args.repeat,
        "hardening_verify_local_median_s": round(statistics.median(ours), 3),
        "lynis_audit_system_median_s": round(statistics.median(theirs), 3),
        "ratio_lynis_over_hardening": round(statistics.median(theirs) / statistics.median(ours), 2),
        **counts,
        "note": "Lynis audits general hardening, not the MIC guideline; hardening runs one profile's checks.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
