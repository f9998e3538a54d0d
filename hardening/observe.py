"""Observe once: every command the checks (and the deploy's decisions) need, in one batch.

A measure declares the commands it reads (``Measure.observe(profile)``). For one host they are
joined into one shell script (:func:`script`) that runs them one after another, each in its own
subshell, and sends back every command's exit code, output, errors and duration at once.

The script is sent as ONE remote command (``printf %s <base64> | base64 -d | bash``), so a host
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
import io
import json
import shlex
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MARK = "HARDENING-OBS"
# First line of every batch: a host that printed it was reached, so a batch cut after it is a
# connection lost during the run, not an unreachable host.
STARTED = MARK + "-START"
DONE = MARK + "-DONE"
PACKED = MARK + "-PACKED"


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


def json_output(rc: int, stdout: str, what: str) -> Any:
    """The JSON a command printed; ValueError when it failed or printed something else: output a
    check cannot read is an error, never a pass (nor a fail as if it had read it)."""
    if rc != 0:
        raise ValueError(f"{what} failed (exit {rc})")
    try:
        return json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} printed no JSON ({exc}): {stdout[:200]!r}") from None


def unique(commands: Iterable[str]) -> list[str]:
    """The commands in first-seen order, each once."""
    return list(dict.fromkeys(commands))


def script(commands: list[str]) -> str:
    """The shell script that runs ``commands`` and packs their results.

    Each command runs in its own subshell (an ``exit`` in one ends only that one) with its output,
    errors, exit code and start and end times written to a scratch directory by the shell itself:
    no process per command beyond the command's own, which matters under emulation, where every
    exec costs tens of milliseconds. A progress line follows each command (so a cut batch says how
    far it got); at the end the directory goes out once, as a gzipped tar in base64. Times come
    from bash's ``EPOCHREALTIME``; run by another sh they are unknown (0).
    """
    lines = [f"echo {STARTED}", 'd=$(mktemp -d) || exit 97', "trap 'rm -rf \"$d\"' EXIT INT TERM", "cd /"]
    for index, command in enumerate(commands):
        lines += [
            "t=${EPOCHREALTIME:-}",
            f'( {command}\n) >"$d/{index}.o" 2>"$d/{index}.e" </dev/null; '
            f'printf \'%s %s %s\\n\' "$?" "$t" "${{EPOCHREALTIME:-}}" >"$d/{index}.r"',
            f"echo {DONE} {index}",
        ]
    lines.append(f'printf "{PACKED} "; tar -C "$d" -czf - . | base64 -w0; echo')
    return "\n".join(lines) + "\n"


def remote_command(commands: list[str]) -> str:
    """ONE command line that runs the whole batch: what goes over SSH (under one sudo)."""
    payload = base64.b64encode(script(commands).encode()).decode()
    return (f"printf %s {payload} | base64 -d | "
            "{ if command -v bash >/dev/null 2>&1; then bash; else sh; fi; }")


def parse(commands: list[str], output: str | Iterable[str], *, exit_code: int = 0,
          stderr: str = "") -> Observations:
    """Turn the batch's output back into observations; anything unreadable is an error."""
    lines = output.splitlines() if isinstance(output, str) else list(output)
    packed = next((line[len(PACKED) + 1:] for line in lines if line.startswith(PACKED + " ")), None)
    if packed is None:
        why = stderr.strip().splitlines()[-1] if stderr.strip() else f"batch exit {exit_code}"
        done = progress("\n".join(lines))
        raise ObservationError(f"the observation batch did not finish ({done or 0} of {len(commands)} "
                               f"commands ran): {why}")
    try:
        files = _unpack(packed.strip())
    except (ValueError, OSError, tarfile.TarError, binascii.Error) as exc:
        raise ObservationError(f"the observation batch's results cannot be read: {exc}") from None
    results: dict[str, Observation] = {}
    for index, command in enumerate(commands):
        try:
            rc, start, end = files[f"{index}.r"].decode().split(" ")
            results[command] = Observation(f"o{index}", command, int(rc), _text(files[f"{index}.o"]),
                                           _text(files[f"{index}.e"]), _seconds(start, end))
        except (KeyError, ValueError) as exc:
            raise ObservationError(f"observation {index} ({command[:120]!r}) is missing or malformed: "
                                   f"{exc}") from None
    return Observations(results)


def _unpack(packed: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(packed, validate=True)), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                out[member.name.removeprefix("./")] = handle.read() if handle else b""
    return out


def _seconds(start: str, end: str) -> float:
    """Between two EPOCHREALTIME values (a locale may write a comma); 0 when unknown."""
    try:
        return round(max(0.0, float(end.strip().replace(",", ".")) - float(start.replace(",", "."))), 4)
    except ValueError:
        return 0.0


def progress(output: str) -> int | None:
    """How many commands a (possibly cut) batch ran; None when it never started."""
    if STARTED not in output:
        return None
    return sum(1 for line in output.splitlines() if line.startswith(DONE + " "))


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def excerpt(text: str, limit: int = 4000) -> str:
    text = text or ""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit} more characters]"
