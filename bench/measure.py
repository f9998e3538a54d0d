"""Run one command and report its wall time and the CPU seconds of everything it started.

    python bench/measure.py OUT.json -- COMMAND [ARG ...]

`getrusage(RUSAGE_CHILDREN)` counts only descendants that were waited for. OpenSSH's
``ControlPersist`` masters fork into the background, so around a plain ``subprocess.run`` their
CPU (the encryption of every multiplexed session) would be lost, or land in a later measurement
when they finally exit. This process therefore makes itself a child subreaper (prctl): orphaned
descendants are re-parented to it; once COMMAND has exited it waits briefly for them, ends those
still running (SIGTERM, by pid: only processes COMMAND started), reaps them all and then reads
RUSAGE_CHILDREN. The wall time is COMMAND's alone (until its own exit).

COMMAND's stdout and stderr are inherited. OUT.json gets ``{"rc", "wall", "user", "sys", "cpu",
"maxrss_kb", "adopted", "ended"}`` (names of the adopted processes, and of those still running
after the grace period); this script's own start-up is not counted.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
GRACE = 2.0  # seconds adopted processes get to exit on their own (verify closes its masters)


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def children() -> list[int]:
    """Pids whose parent is this process (adopted orphans, or COMMAND's zombie)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            found.append(int(entry.name))
    return found


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def reap_all() -> tuple[list[str], list[str]]:
    """Wait for every adopted descendant; end those still running after GRACE.

    Returns the names of all adopted processes and of those this had to end."""
    names: dict[int, str] = {}
    ended: list[str] = []
    deadline, signalled = time.monotonic() + GRACE, 0
    while True:
        for pid in children():
            names.setdefault(pid, comm(pid))
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return sorted(names.values()), sorted(ended)
        if pid:
            continue
        if time.monotonic() > deadline and signalled < 2:
            sig = signal.SIGTERM if signalled == 0 else signal.SIGKILL
            for child in children():
                ended.append(names.get(child, comm(child)))
                os.kill(child, sig)
            signalled += 1
            deadline = time.monotonic() + 5
        time.sleep(0.05)


def measured(command: list[str], out: Path, *, input_text: str | None = None, timeout: float = 7200,
             **popen: Any) -> tuple[dict[str, Any], str]:
    """Parent side: run COMMAND under this script; its sample and (when captured) its stdout.

    The wrapper gets a process group of its own; if the caller is interrupted, the whole group
    (the wrapper, the verify or ssh under it) gets SIGTERM, so nothing keeps running against
    hosts that are being stopped.
    """
    cmd = [sys.executable, __file__, str(out), "--", *command]
    stdin = subprocess.PIPE if input_text is not None else subprocess.DEVNULL
    with subprocess.Popen(cmd, stdin=stdin, text=True, start_new_session=True, **popen) as proc:
        try:
            stdout, _ = proc.communicate(input_text, timeout=timeout)
        except BaseException:
            os.killpg(proc.pid, signal.SIGTERM)
            raise
    if proc.returncode != 0:
        raise RuntimeError(f"bench/measure.py exited {proc.returncode} for {' '.join(command[:4])}")
    sample: dict[str, Any] = json.loads(out.read_text())
    return sample, stdout or ""


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    out, command = Path(argv[0]), argv[2:]
    become_subreaper()
    start = time.perf_counter()
    rc = subprocess.Popen(command).wait()
    wall = time.perf_counter() - start
    adopted, ended = reap_all()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.write_text(json.dumps({
        "rc": rc, "wall": round(wall, 4), "user": round(usage.ru_utime, 4),
        "sys": round(usage.ru_stime, 4), "cpu": round(usage.ru_utime + usage.ru_stime, 4),
        "maxrss_kb": usage.ru_maxrss, "adopted": adopted, "ended": ended}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
