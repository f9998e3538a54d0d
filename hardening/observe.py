"""Observe once: every command the checks (and the deploy's decisions) need, in one batch.

A measure declares the commands it reads (``Measure.observe(settings)``). For one host they are
joined into one shell script that runs them one after another, each in its own subshell with
its output captured, and prints one framed line per command::

    HARDENING-OBS <index> <exit code> <start ns> <end ns> <stdout base64> <stderr base64>

The script is sent as ONE remote command (``printf %s <base64> | base64 -d | sh``), so a host
costs one SSH session and one privilege escalation for the whole check set, whatever carries it:
testinfra's backend for verify, a pyinfra fact for deploy, a local shell for ``--local``.

Checks read the batch with ``obs.run(command, *args)``, quoted the way testinfra quotes, so a
check reads exactly like one that ran the command itself; a command that was not declared is a
defect (:class:`NotObserved`), never a silent extra call. Every observation a check read is
recorded with the check, and the evidence keeps each observation once.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MARK = "HARDENING-OBS"
# First line of every batch: a host that printed it was reached, so a batch cut after it is a
# connection lost during the run, not an unreachable host.
STARTED = MARK + "-START"
# Exit status of the whole batch when the host could not even make its scratch directory.
NO_SCRATCH = 97


def quote(command: str, *args: str) -> str:
    """``command % args`` with every argument shell-quoted (testinfra's own rule)."""
    return command % tuple(shlex.quote(str(a)) for a in args) if args else command


@dataclass(frozen=True)
class Observation:
    """One command's result, as the host gave it. ``rc`` and the rest mirror testinfra's result."""

    id: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration: float

    @property
    def rc(self) -> int:
        return self.exit_code

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    @property
    def failed(self) -> bool:
        return self.exit_code != 0

    def as_evidence(self, limit: int = 4000) -> dict[str, Any]:
        return {"id": self.id, "command": self.command, "exit_code": self.exit_code,
                "stdout": excerpt(self.stdout, limit), "stderr": excerpt(self.stderr, limit),
                "duration": self.duration}


class NotObserved(KeyError):
    """A check read a command its measure does not declare: a defect in the measure."""

    def __str__(self) -> str:
        return (f"command not in the observation batch: {self.args[0]!r} (declare it in the measure's "
                "observe() so that it is read once, with the others)")


class ObservationError(Exception):
    """The batch ran but its output cannot be read: never a pass."""


@dataclass
class Observations:
    """The batch of one host, by command text."""

    results: dict[str, Observation] = field(default_factory=dict)
    # Called with each observation a check reads (the evidence records which check used what).
    listener: Callable[[Observation], None] | None = None

    def run(self, command: str, *args: str) -> Observation:
        key = quote(command, *args)
        try:
            result = self.results[key]
        except KeyError:
            raise NotObserved(key) from None
        if self.listener is not None:
            self.listener(result)
        return result

    def __contains__(self, command: object) -> bool:
        return command in self.results

    def all(self) -> list[Observation]:
        return list(self.results.values())


def unique(commands: Iterable[str]) -> list[str]:
    """The commands in first-seen order, each once."""
    return list(dict.fromkeys(commands))


def script(commands: list[str]) -> str:
    """The shell script that runs ``commands`` and frames their results (POSIX sh, coreutils)."""
    lines = [f"echo {STARTED}", 'd=$(mktemp -d) || exit 97', "trap 'rm -rf \"$d\"' EXIT INT TERM"]
    for index, command in enumerate(commands):
        lines += [
            's=$(date +%s%N)',
            f'( {command}\n) >"$d/o" 2>"$d/e" </dev/null; rc=$?',
            'e=$(date +%s%N)',
            f'printf "{MARK} {index} %s %s %s " "$rc" "$s" "$e"; base64 -w0 "$d/o"; printf " "; '
            'base64 -w0 "$d/e"; echo',
        ]
    return "\n".join(lines) + "\n"


def remote_command(commands: list[str]) -> str:
    """ONE command line that runs the whole batch: what goes over SSH (under one sudo)."""
    payload = base64.b64encode(script(commands).encode()).decode()
    return f"printf %s {payload} | base64 -d | sh"


def parse(commands: list[str], output: str | Iterable[str], *, exit_code: int = 0,
          stderr: str = "") -> Observations:
    """Turn the framed output back into observations; anything unreadable is an error."""
    lines = output.splitlines() if isinstance(output, str) else list(output)
    results: dict[str, Observation] = {}
    for line in lines:
        if not line.startswith(MARK + " "):
            continue
        parts = line.split(" ")
        if len(parts) != 7:
            raise ObservationError(f"malformed observation line: {line[:200]!r}")
        _, index, rc, start, end, out, err = parts
        try:
            i = int(index)
            command = commands[i]
            duration = max(0, int(end) - int(start)) / 1e9
            results[command] = Observation(f"o{i}", command, int(rc), _decode(out), _decode(err),
                                           round(duration, 4))
        except (ValueError, IndexError, binascii.Error) as exc:
            raise ObservationError(f"malformed observation line: {line[:200]!r} ({exc})") from None
    if len(results) != len(commands):
        missing = [c for c in commands if c not in results]
        why = stderr.strip().splitlines()[-1] if stderr.strip() else f"batch exit {exit_code}"
        raise ObservationError(f"{len(missing)} of {len(commands)} observations missing "
                               f"(first: {missing[0][:120]!r}): {why}")
    return Observations(results)


def progress(output: str) -> int | None:
    """How many observations a (possibly cut) batch delivered; None when it never started."""
    if STARTED not in output:
        return None
    return sum(1 for line in output.splitlines() if line.startswith(MARK + " "))


def _decode(text: str) -> str:
    return base64.b64decode(text).decode("utf-8", errors="replace") if text else ""


def excerpt(text: str, limit: int = 4000) -> str:
    text = text or ""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit} more characters]"
