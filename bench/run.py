"""Benchmarks of issue 8 ("one measure, one object; resolve once, observe once"), in one run.

    .venv/bin/python bench/run.py                      # everything: about an hour on 2 cores
    .venv/bin/python bench/run.py --repeat 1 --counts 1,4 --skip-vm   # a smoke test

1. One emulated lab VM: ``hardening verify`` of this checkout (new) against the same command as
   it was before the change (BEFORE, from a git worktree, same interpreter), OpenSCAP
   (``oscap xccdf eval`` on the guest, see bench/guest.py) and Lynis (``lynis audit system``).
2. 1, 4, 16, 64 lab containers from this control node: new against before; wall time and the
   control node's CPU seconds (descendants included, see bench/measure.py) per host.
3. Where the time goes, from the evidence documents (bench/timing.py).

Sides alternate within each repetition (the first side rotates), so that load on this shared
machine falls on all alike; the report gives medians and ratios. Hosts are started once and
stopped at the end, also on Ctrl-C or SIGTERM. Writes bench/results/issue8.json and renders
bench/RESULTS.md (bench/report.py). Nothing asserts on these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import guest  # noqa: E402
import report  # noqa: E402
import timing  # noqa: E402
from measure import measured  # noqa: E402

from hardening.lab import Lab, LabError  # noqa: E402
from hardening.lab.inventory import inventory_text  # noqa: E402

BEFORE = "729e44d"
VM = "bench-vm"
OK_EXITS = (0, 1, 4)  # verified (compliant, not compliant, regressed); 2 and 3 mean not verified
Sample = dict[str, Any]


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    """Lab hosts, the BEFORE worktree and a scratch directory, all cleaned up by close()."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="hardening-bench-"))
        self.lab = Lab(args.lab_dir, args.lab_cache)
        self.env = {**os.environ, "HARDENING_LAB_DIR": str(self.lab.directory),
                    "HARDENING_LAB_CACHE": str(self.lab.cache), "HARDENING_KEY_DIR": str(self.work / "keys")}
        self.env.pop("PYTHONPATH", None)
        self.started: list[str] = []
        self.worktree = Path(args.before_worktree)
        self.made_worktree = False
        self.runs = 0

    # -- setup and cleanup ----------------------------------------------------------------------
    def setup(self) -> None:
        self.cli(["lab", "setup"], timeout=7200)
        self.cli(["keys", "init", "--dir", str(self.work / "keys")])
        if not (self.worktree / "hardening" / "__init__.py").is_file():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(self.worktree), BEFORE],
                           check=True, capture_output=True)
            self.made_worktree = True

    def close(self) -> None:
        for name in reversed(self.started):
            try:
                self.lab.stop(name)
            except LabError as exc:
                say(f"stopping {name}: {exc}")
        left = [x for x in self.lab.leftovers() if "bench-" in x]
        if left:
            say("LEFT BEHIND: " + "; ".join(left))
        if self.made_worktree:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.worktree)],
                           check=False, capture_output=True)
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def cli(self, args: list[str], timeout: float = 600) -> str:
        proc = subprocess.run([sys.executable, "-m", "hardening", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"hardening {' '.join(args[:3])}: {proc.stderr.strip()[-400:]}")
        return proc.stdout

    # -- hosts ----------------------------------------------------------------------------------
    def start(self, names: list[str], container: bool) -> float:
        """Start hosts (in parallel for containers); seconds it took."""
        began = time.monotonic()
        self.started += names

        def one(index_name: tuple[int, str]) -> None:
            index, name = index_name
            profile = "server" if not container or index % 2 else "terminal"
            self.cli(["lab", "start", name, "--profile", profile, *(["--container"] if container else [])])

        workers = self.args.start_parallel if container else 1
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, enumerate(names)))
        return round(time.monotonic() - began, 1)

    def stop(self, names: list[str]) -> None:
        for name in names:
            self.lab.stop(name)
            self.started.remove(name)

    def inventory(self, names: list[str]) -> Path:
        hosts = {h.name: h for h in self.lab.hosts()}
        missing = [n for n in names if n not in hosts]
        if missing:
            raise RuntimeError(f"lab hosts not running: {', '.join(missing)}")
        path = self.work / f"inventory-{len(names)}.py"
        path.write_text(inventory_text(self.lab.directory, [hosts[n] for n in names]), encoding="utf-8")
        return path

    # -- one verify run -------------------------------------------------------------------------
    def verify(self, side: str, inventory: Path) -> Sample:
        """`hardening verify` of this checkout (new) or of BEFORE (old), timed by measure.py."""
        self.runs += 1
        evidence = self.work / "ev" / f"{self.runs:04d}-{side}"
        cmd = [sys.executable, "-m", "hardening", "verify", str(inventory), "--evidence", str(evidence)]
        if self.args.parallel:
            cmd += ["-p", str(self.args.parallel)]
        env, cwd = dict(self.env), ROOT
        if side == "old":
            env["PYTHONPATH"], cwd = str(self.worktree), self.worktree
        out, log = self.work / f"measure-{self.runs}.json", self.work / f"verify-{self.runs}.log"
        with log.open("w") as fh:
            sample, _ = measured(cmd, out, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, timeout=3600)
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        if sample["rc"] not in OK_EXITS:
            raise RuntimeError(f"verify ({side}) exited {sample['rc']}: {' | '.join(tail)}")
        return self._read_run(sample, evidence, side)

    def _read_run(self, sample: Sample, evidence: Path, side: str) -> Sample:
        run_dir = next(p.parent for p in evidence.glob("*/index.json"))
        index = json.loads((run_dir / "index.json").read_text())
        lost = [h["name"] for h in index["hosts"] if h["verdict"] == "unreachable"]
        if lost:
            raise RuntimeError(f"verify ({side}) could not verify {', '.join(lost)}")
        profiles = [timing.host_profile(d) for d in timing.run_documents(run_dir)]
        sample["hosts"] = len(index["hosts"])
        sample["checks"] = sum(h["summary"].get("total", 0) for h in index["hosts"])
        sample["verdicts"] = {v: sum(1 for h in index["hosts"] if h["verdict"] == v)
                              for v in sorted({h["verdict"] for h in index["hosts"]})}
        sample["profiles"] = profiles
        if not self.args.keep:
            shutil.rmtree(evidence, ignore_errors=True)
        return sample


# -- alternating repetitions -------------------------------------------------------------------

def alternate(sides: dict[str, Callable[[], Sample]], repeat: int, what: str,
              limit: dict[str, int] | None = None) -> dict[str, list[Sample]]:
    """Each repetition runs every side once; the side that goes first rotates. ``limit`` caps the
    repetitions of a slow side (Lynis takes 15-30 min on the emulated guest)."""
    names = list(sides)
    samples: dict[str, list[Sample]] = {n: [] for n in names}
    for rep in range(repeat):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            if limit and rep >= limit.get(name, repeat):
                continue
            sample = sides[name]()
            samples[name].append(sample)
            say(f"{what} rep {rep + 1}/{repeat} {name}: {sample['wall']:.1f} s wall, {sample['cpu']:.2f} s CPU")
    return samples


def summary(samples: list[Sample]) -> dict[str, Any]:
    walls = [s["wall"] for s in samples]
    out: dict[str, Any] = {"n": len(samples), "wall_median": round(statistics.median(walls), 3),
                           "wall_min": round(min(walls), 3), "wall_max": round(max(walls), 3),
                           "cpu_median": round(statistics.median(s["cpu"] for s in samples), 3),
                           "lingering_median": statistics.median(len(s.get("ended", [])) for s in samples)}
    for key in ("scan_seconds", "hosts", "checks"):
        if key in samples[0]:
            out[f"{key}_median"] = round(statistics.median(s[key] for s in samples), 3)
    if "profiles" in samples[0]:
        observe = [p["observe_seconds"] for s in samples for p in s["profiles"] if p["observe_seconds"] is not None]
        out["observe_seconds_median"] = round(statistics.median(observe), 3) if observe else None
    if "counts" in samples[0]:
        out["counts"] = samples[-1]["counts"]
    return out


def strip_profiles(samples: dict[str, list[Sample]]) -> dict[str, list[Sample]]:
    return {k: [{x: y for x, y in s.items() if x != "profiles"} for s in v] for k, v in samples.items()}


def timings(samples: dict[str, list[Sample]], top: int) -> dict[str, Any]:
    return {side: timing.summarize([p for s in v for p in s["profiles"]], top)
            for side, v in samples.items() if v and "profiles" in v[0]}


# -- phases ------------------------------------------------------------------------------------

def vm_phase(bench: Bench) -> dict[str, Any]:
    args, config = bench.args, bench.lab.directory / "ssh_config"
    result: dict[str, Any] = {"start_seconds": bench.start([VM], container=False)}
    began = time.monotonic()
    result["guest"] = guest.prepare(config, VM)
    result["guest"]["prepare_seconds"] = round(time.monotonic() - began, 1)
    result["oscap_profile"] = args.oscap_profile
    result["oscap_datastream"] = guest.DATASTREAM + " (from " + guest.SOURCE_DS + ")"
    inventory = bench.inventory([VM])
    sides: dict[str, Callable[[], Sample]] = {
        "new": lambda: bench.verify("new", inventory),
        "old": lambda: bench.verify("old", inventory),
        "oscap": lambda: guest.audit(config, VM, "oscap", bench.work, args.oscap_profile),
        "lynis": lambda: guest.audit(config, VM, "lynis", bench.work),
    }
    chosen = {k: v for k, v in sides.items() if k not in args.skip_side}
    samples = alternate(chosen, args.repeat, "vm", {"lynis": args.lynis_repeat})
    observed = [p["observations"] for s in samples.get("new", []) for p in s["profiles"]]
    if observed:
        result["framing"] = guest.framing_probe(config, VM, int(statistics.median(observed)), args.repeat)
    bench.stop([VM])
    result["summary"] = {k: summary(v) for k, v in samples.items()}
    result["timing"] = timings(samples, args.top)
    result["samples"] = strip_profiles(samples)
    return result


def verify_sides(bench: Bench, inventory: Path) -> dict[str, Callable[[], Sample]]:
    return {"new": lambda: bench.verify("new", inventory), "old": lambda: bench.verify("old", inventory)}


def container_phase(bench: Bench) -> dict[str, Any]:
    args = bench.args
    names = [f"bench-c{i:02d}" for i in range(1, max(args.counts) + 1)]
    result: dict[str, Any] = {"start_seconds": bench.start(names, container=True), "by_count": {}}
    for count in args.counts:
        inventory = bench.inventory(names[:count])
        samples = alternate(verify_sides(bench, inventory), args.repeat, f"{count} container(s)")
        result["by_count"][str(count)] = {
            "summary": {k: summary(v) for k, v in samples.items()},
            "timing": timings(samples, args.top),
            "samples": strip_profiles(samples),
        }
    bench.stop(names)
    return result


# -- facts about the machine -------------------------------------------------------------------

def first_line(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "missing"
    return ((proc.stdout or proc.stderr).strip().splitlines() or ["?"])[0]


def machine(args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import version

    cpu = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
           if ln.startswith("model name")]
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    rev = first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.split("\n")
    changed = sorted(line[3:] for line in dirty if line.strip())
    return {
        "cpus": os.cpu_count(), "cpu_model": cpu[0] if cpu else "?", "memory_mib": mem,
        "kernel": platform.release(), "debian": Path("/etc/debian_version").read_text().strip(),
        "python": platform.python_version(),
        "checkout": rev + (f" + uncommitted changes in {', '.join(changed)}" if changed else ""),
        "before": BEFORE + " " + first_line(["git", "-C", str(ROOT), "log", "-1", "--format=%s", BEFORE]),
        "qemu": first_line(["qemu-system-x86_64", "--version"]),
        "nspawn": first_line(["systemd-nspawn", "--version"]), "openssh": first_line(["ssh", "-V"]),
        "pytest": version("pytest"), "testinfra": version("pytest-testinfra"),
        "inotify_max_user_instances": Path("/proc/sys/fs/inotify/max_user_instances").read_text().strip(),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/run.py", *sys.argv[1:]]),
        "parallel": args.parallel or "each side's default (new 8, before 4)",
    }


# -- command line ------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="repetitions of every side (default 3)")
    p.add_argument("--counts", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16, 64],
                   help="container host counts (default 1,4,16,64)")
    p.add_argument("--skip-vm", action="store_true", help="leave out the VM comparison (1)")
    p.add_argument("--skip-containers", action="store_true", help="leave out the container fleet (2)")
    p.add_argument("--lynis-repeat", type=int, default=1,
                   help="repetitions of Lynis, in the first repetitions only (default 1: 15-30 min each)")
    p.add_argument("--skip-side", action="append", default=[], choices=["old", "oscap", "lynis"],
                   help="leave a side out of the VM comparison (repeatable)")
    p.add_argument("--parallel", type=int, default=0, help="-p for both verifies (default: each one's own)")
    p.add_argument("--oscap-profile", default=guest.PROFILE)
    p.add_argument("--start-parallel", type=int, default=4, help="containers started at once")
    p.add_argument("--top", type=int, default=8, help="slowest checks and commands listed")
    p.add_argument("--lab-dir", type=Path,
                   default=Path(os.environ.get("HARDENING_LAB_DIR", "/var/tmp/hardening-bench-lab")))
    p.add_argument("--lab-cache", type=Path, default=Path(os.environ.get("HARDENING_LAB_CACHE", ROOT / ".lab")))
    p.add_argument("--before-worktree", default=f"/tmp/hardening-bench-{BEFORE}")
    p.add_argument("--json", type=Path, default=BENCH / "results" / "issue8.json")
    p.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory and evidence")
    args = p.parse_args(argv)
    if args.lab_dir.resolve() == (ROOT / ".lab").resolve():
        p.error("--lab-dir must not be the shared lab cache (.lab): give the benchmark its own")
    return args


@contextmanager
def interrupts_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so that every started host is stopped."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    results: dict[str, Any] = {"machine": machine(args), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                               "repeat": args.repeat, "lynis_repeat": args.lynis_repeat}
    bench = Bench(args)
    with interrupts_unwind():
        try:
            bench.setup()
            for phase, run_phase, skip in (("vm", vm_phase, args.skip_vm),
                                           ("containers", container_phase, args.skip_containers)):
                if not skip:
                    began_phase = time.monotonic()
                    results[phase] = run_phase(bench)
                    results[phase]["phase_seconds"] = round(time.monotonic() - began_phase, 1)
        finally:
            bench.close()
    results["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    results["total_seconds"] = round(time.monotonic() - began, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    args.out.write_text(report.render(results), encoding="utf-8")
    say(f"done in {results['total_seconds']:.0f} s: {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
