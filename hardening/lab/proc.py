"""Small helpers around subprocess: every failure becomes a one-line LabError."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from hardening.lab.errors import LabError


def say(message: str) -> None:
    """Print one progress line (stderr keeps stdout clean for machine-readable output)."""
    print(f"lab: {message}", file=sys.stderr, flush=True)


def run(cmd: Sequence[str | Path], *, log: Path | None = None, timeout: float = 600,
        input_text: str | None = None) -> str:
    """Run a command, return its stdout; on failure raise LabError with the tail of its output.

    With `log`, stdout and stderr are appended to that file instead of being captured.
    """
    args = [str(c) for c in cmd]
    try:
        if log is not None:
            with log.open("a") as out:
                out.write(f"$ {' '.join(args)}\n")
                out.flush()
                proc = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, text=True,
                                      timeout=timeout, input=input_text, check=False)
            if proc.returncode != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
                raise LabError(f"{args[0]} failed (exit {proc.returncode}): {tail[0]} (log: {log})")
            return ""
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                              input=input_text, check=False)
    except FileNotFoundError:
        raise LabError(f"{args[0]} is not installed (run `hardening lab setup`)") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{args[0]} timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or [""]
        raise LabError(f"{args[0]} failed (exit {proc.returncode}): {detail[0]}")
    return proc.stdout
