"""Periodic verification on the control node: a systemd service and timer per inventory.

``hardening schedule install INVENTORY --every 1d --keep N`` writes
``hardening-verify-<name>.service`` and ``.timer``. The service runs this module's ``run``
command, which runs ``hardening verify INVENTORY --evidence DIR`` (its output goes to the
journal), prunes the evidence beyond the newest N runs (never a run younger than its retention
period), logs a one-line summary and exits with verify's exit code, so that
``systemctl status``/``is-failed`` and the journal show the result to monitoring.

Unit files go to ``/etc/systemd/system`` (``--user``: ``~/.config/systemd/user``); ``--unit-dir``
writes them elsewhere and then never calls systemctl (what the tests do).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hardening import IN_CHECKOUT, ROOT
from hardening.errors import ConfigError, Exit
from hardening.evidence import chain, history
from hardening.evidence import keys as keymod

PREFIX = "hardening-verify-"
SYSTEM_DIR = Path("/etc/systemd/system")
TIMESPAN = re.compile(
    r"^(\s*\d+\s*(usec|us|msec|ms|seconds?|sec|s|minutes?|min|m|hours?|hr|h|days?|d|weeks?|w|"
    r"months?|M|years?|y))+\s*$")


def user_dir() -> Path:
    return Path.home() / ".config" / "systemd" / "user"


@dataclass(frozen=True)
class Schedule:
    """One periodic verification, as the unit files describe it."""

    name: str
    inventory: Path | None  # None: verify this machine itself (--local)
    evidence: Path
    every: str = "1d"
    on_calendar: str | None = None
    keep: int = 0
    user: bool = False
    key_dir: Path | None = None
    profile: str | None = None  # with --local
    sensitivity: str | None = None  # with --local
    python: str = sys.executable  # for units rendered for another machine
    workdir: Path = field(default_factory=lambda: ROOT if IN_CHECKOUT else Path.cwd())
    environment: tuple[tuple[str, str], ...] = ()
    randomized_delay: str = "5min"
    profiles: Path | None = None  # the agency's profile directory (verify --profiles)

    @property
    def unit(self) -> str:
        return PREFIX + self.name

    @property
    def target(self) -> str:
        return self.inventory.name if self.inventory else "this machine (--local)"


def unit_name(inventory: Path | None, name: str | None = None) -> str:
    """A safe unit name part: the given name, the inventory's file name, or ``local``."""
    raw = name or (inventory.stem if inventory else "local")
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", raw).strip("-")
    if not safe:
        raise ConfigError("--name", f"cannot make a unit name from {raw!r}")
    return safe


def check_every(every: str) -> str:
    if not TIMESPAN.match(every):
        raise ConfigError("--every", f"{every!r} is not a systemd time span (e.g. 1d, 12h, 30min, 1w)")
    return every.strip()


def check_calendar(expression: str) -> str:
    """Validate an OnCalendar= expression with systemd-analyze when it is there."""
    if "\n" in expression or not expression.strip():
        raise ConfigError("--on-calendar", "expected one calendar expression")
    if shutil.which("systemd-analyze"):
        proc = subprocess.run(["systemd-analyze", "calendar", expression], capture_output=True, text=True,
                              timeout=30, check=False)
        if proc.returncode != 0:
            raise ConfigError("--on-calendar", f"{expression!r} is not a systemd calendar expression "
                              f"({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'invalid'})")
    return expression.strip()


def quote(arg: str) -> str:
    """One argument for ExecStart= (systemd.service(5) quoting; % and $ escaped)."""
    text = str(arg).replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_start(s: Schedule) -> str:
    args = [s.python, "-m", "hardening.evidence.schedule", "run", "--name", s.name,
            "--evidence", str(s.evidence), "--keep", str(s.keep)]
    if s.inventory is not None:
        args += ["--inventory", str(s.inventory)]
    else:
        args += ["--local", *(["--profile", s.profile] if s.profile else []),
                 *(["--sensitivity", s.sensitivity] if s.sensitivity else [])]
    if s.profiles is not None:
        args += ["--profiles", str(s.profiles)]
    return " ".join(quote(a) for a in args)


def render_service(s: Schedule) -> str:
    key_dir = s.key_dir or keymod.default_dir()
    extra = "".join(f"Environment={quote(f'{k}={v}')}\n" for k, v in s.environment)
    return f"""# Written by `hardening schedule install`; remove with `hardening schedule remove {s.name}`.
[Unit]
Description=hardening: verify {s.target} against the MIC guideline (chapters 6-7)
Documentation=file://{quote_path(s.workdir / "docs" / "evidence-trust.md")}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
WorkingDirectory={quote_path(s.workdir)}
Environment=HARDENING_KEY_DIR={quote_path(key_dir)}
Environment=PYTHONUNBUFFERED=1
{extra}ExecStart={exec_start(s)}
SyslogIdentifier={s.unit}
# Exit codes are verify's: 0 compliant, 1 not compliant, 2 configuration, 3 unreachable,
# 4 regression, 5 checks not configured. Anything but 0 leaves the unit failed, which monitoring sees.
TimeoutStartSec=6h
Nice=10
UMask=0027
"""


def quote_path(path: Path) -> str:
    return str(path).replace("%", "%%").replace(" ", "\\x20")


def render_timer(s: Schedule) -> str:
    when = (f"OnCalendar={s.on_calendar}\nPersistent=true" if s.on_calendar
            else f"OnBootSec=15min\nOnUnitActiveSec={s.every}")
    every = s.on_calendar or f"every {s.every}"
    return f"""# Written by `hardening schedule install`; remove with `hardening schedule remove {s.name}`.
[Unit]
Description=hardening: periodic verification of {s.target} ({every})

[Timer]
{when}
RandomizedDelaySec={s.randomized_delay}
Unit={s.unit}.service

[Install]
WantedBy=timers.target
"""


def _systemctl(user: bool, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = ["systemctl", *(["--user"] if user else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)


def install(s: Schedule, unit_dir: Path | None = None, enable: bool = True) -> list[str]:
    """Write the unit files; enable and start the timer only when writing to systemd's own directory."""
    target = unit_dir or (user_dir() if s.user else SYSTEM_DIR)
    target.mkdir(parents=True, exist_ok=True)
    service, timer = target / f"{s.unit}.service", target / f"{s.unit}.timer"
    chain.write_atomic(service, render_service(s).encode())
    chain.write_atomic(timer, render_timer(s).encode())
    lines = [f"wrote {service}", f"wrote {timer}"]
    if unit_dir is None and enable:
        for args in (("daemon-reload",), ("enable", "--now", timer.name)):
            proc = _systemctl(s.user, *args)
            if proc.returncode != 0:
                raise ConfigError("systemctl", f"systemctl {' '.join(args)} failed: {proc.stderr.strip()}")
        lines.append(f"enabled and started {timer.name}")
    return lines


def remove(name: str, unit_dir: Path | None = None, user: bool = False) -> list[str]:
    """Stop and disable the timer (systemd's own directory only), then delete both unit files."""
    target = unit_dir or (user_dir() if user else SYSTEM_DIR)
    unit = PREFIX + name.removeprefix(PREFIX)
    paths = [target / f"{unit}.timer", target / f"{unit}.service"]
    if not any(p.exists() for p in paths):
        raise ConfigError(str(target), f"no schedule {unit} installed here")
    lines = []
    if unit_dir is None:
        _systemctl(user, "disable", "--now", f"{unit}.timer")
        lines.append(f"stopped and disabled {unit}.timer")
    for path in paths:
        if path.exists():
            path.unlink()
            lines.append(f"removed {path}")
    if unit_dir is None:
        _systemctl(user, "daemon-reload")
    return lines


def installed(unit_dir: Path) -> list[dict[str, str]]:
    """The schedules whose unit files are in ``unit_dir``: name, interval, inventory, evidence."""
    out = []
    for timer in sorted(unit_dir.glob(f"{PREFIX}*.timer")) if unit_dir.is_dir() else []:
        unit = timer.name.removesuffix(".timer")
        info = {"name": unit.removeprefix(PREFIX), "unit": unit, "when": "", "inventory": "", "evidence": ""}
        for line in timer.read_text(encoding="utf-8").splitlines():
            if line.startswith(("OnUnitActiveSec=", "OnCalendar=")):
                info["when"] = line.split("=", 1)[1]
        service = unit_dir / f"{unit}.service"
        text = service.read_text(encoding="utf-8") if service.exists() else ""
        if " --local" in text:
            info["inventory"] = "(this machine, --local)"
        for key in ("inventory", "evidence"):
            found = re.search(rf"--{key} (\"(?:[^\"\\\\]|\\\\.)*\"|\S+)", text)
            if found:
                info[key] = found.group(1).strip('"')
        out.append(info)
    return out


def live_status(unit: str, user: bool) -> str:
    """What systemd says about the timer and the last service run (empty without systemd)."""
    if not shutil.which("systemctl"):
        return ""
    timer = _systemctl(user, "show", f"{unit}.timer", "-p",
                       "ActiveState,NextElapseUSecRealtime,LastTriggerUSec")
    service = _systemctl(user, "show", f"{unit}.service", "-p",
                         "Result,ExecMainStatus,ExecMainExitTimestamp")
    fields = dict(line.split("=", 1) for line in (timer.stdout + service.stdout).splitlines() if "=" in line)
    return ", ".join(f"{k}={v}" for k, v in fields.items() if v)


# -- the service's command ----------------------------------------------------------------------

def describe_run(run_dir: Path) -> str:
    """``run <id>: <n> hosts (<counts>); seal <digest> signed|UNSIGNED``."""
    index = chain.read_json(run_dir / chain.INDEX) if (run_dir / chain.INDEX).exists() else {}
    verdicts = [h.get("verdict") for h in index.get("hosts", [])]
    counts = ", ".join(f"{verdicts.count(v)} {v}"
                       for v in ("pass", "not_configured", "fail", "error", "unreachable"))
    seal = "not sealed"
    if (run_dir / chain.SEAL).exists():
        sealed = chain.load_sealed(run_dir)
        seal = f"seal {sealed.digest} " + ("signed" if sealed.seal.get("key") else "UNSIGNED")
    return f"run {run_dir.name}: {len(verdicts)} hosts ({counts}); {seal}"


def summary_line(name: str, code: int, run_dir: Path | None, pruned: int) -> str:
    """The one line the journal keeps: exit code, run, verdict counts, seal, pruned runs."""
    try:
        label = Exit(code).name.lower()
    except ValueError:
        label = "crashed"
    head = f"{PREFIX}{name}: exit {code} ({label})"
    if run_dir is None:
        return f"{head}; no run was written"
    return f"{head}; {describe_run(run_dir)}; pruned {pruned}"


def verify_command(inventory: Path | None, evidence: Path, profile: str | None = None,
                   sensitivity: str | None = None, profiles: Path | None = None) -> list[str]:
    """``hardening verify`` for an inventory, or for this machine (``--local``), with the agency's
    profile directory when there is one."""
    target = [str(inventory)] if inventory is not None else [
        "--local", *(["--profile", profile] if profile else []),
        *(["--sensitivity", sensitivity] if sensitivity else [])]
    extra = ["--profiles", str(profiles)] if profiles is not None else []
    return [sys.executable, "-m", "hardening", "verify", *target, "--evidence", str(evidence), *extra]


def run(name: str, inventory: Path | None, evidence: Path, keep: int,
        command: list[str] | None = None) -> int:
    """Verify (``command``, default: verify the inventory), prune, log one line; returns verify's
    exit code."""
    before = {p.name for p in chain.run_dirs(evidence)}
    cmd = command or verify_command(inventory, evidence)
    code = subprocess.run(cmd, check=False, stdin=subprocess.DEVNULL).returncode
    new = [p for p in chain.run_dirs(evidence) if p.name not in before]
    pruned = 0
    if keep > 0 and evidence.is_dir():
        decisions = history.prune(evidence, keep)
        pruned = sum(1 for d in decisions if d.prune)
    line = summary_line(name, code, new[-1] if new else None, pruned)
    level = 6 if code == 0 else 4 if code in (Exit.NONCOMPLIANT, Exit.REGRESSION, Exit.INCOMPLETE) else 3
    print(f"<{level}>{line}", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hardening.evidence.schedule",
                                     description="The command a hardening-verify-*.service runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="verify once, prune, log a one-line summary")
    one.add_argument("--name", required=True)
    target = one.add_mutually_exclusive_group(required=True)
    target.add_argument("--inventory", type=Path)
    target.add_argument("--local", action="store_true")
    one.add_argument("--profile")
    one.add_argument("--sensitivity")
    one.add_argument("--evidence", type=Path, required=True)
    one.add_argument("--keep", type=int, default=0)
    one.add_argument("--profiles", type=Path)
    args = parser.parse_args(argv)
    command = verify_command(args.inventory, args.evidence, args.profile, args.sensitivity, args.profiles)
    return run(args.name, args.inventory, args.evidence, args.keep, command)


if __name__ == "__main__":
    sys.exit(main())
