"""``hardening deploy``: apply the measures with pyinfra's CLI, then confirm lockout-safe changes.

pyinfra runs as a subprocess (its CLI plans hosts concurrently and keeps per-host branching
correct; importing it here would also monkey-patch this process with gevent). After it has
finished, every host is reached again over a NEW SSH connection: changes that could cut the
tool off (firewall, sshd) are armed with an automatic rollback on the host and only made
permanent by ``hardening-confirm`` over that fresh connection. A host that cannot be reached
again rolls itself back, and the deploy reports it as failed.

Confirmation runs for all hosts at once (as many at a time as the deploy's ``--parallel``), each
host against its OWN deadline: the moment pyinfra's progress showed its change live (this
machine's clock, so no skew with the host's) plus the change's timeout, minus SAFETY_MARGIN.
An attempt never starts with less than MIN_ATTEMPT seconds left and never runs past the
deadline. How long after going live a host was confirmed is measured on the host itself (its
pending marker against its clock). Each host's outcome is printed as it completes, and the
hosts still waited for every PROGRESS_EVERY seconds.

While a change is pending, a refused login or a refused sudo is retried like a lost connection
(the pending change may be what refuses). A host not confirmed by its deadline is waited for:
AFTER_ROLLBACK seconds after its rollback time it is reached again (for up to BACK_WITHIN s), to
show it back in its previous state ("rolled back", exit 1) or report it unreachable (exit 3). A
host whose pyinfra run failed part-way (an operation other than a refusal failed, or the run
stopped) is never confirmed: ``hardening-confirm --abort`` restores every pending change there
at once (:func:`abort_reason`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hardening import DEPLOYS, IN_CHECKOUT, ROOT
from hardening import measures as registry
from hardening import plan as plan_mod
from hardening import rooms as rooms_mod
from hardening.errors import ConfigError, Exit, worst
from hardening.inventory import Inventory
from hardening.measures import encryption as encryption_measure
from hardening.measures import firewall as firewall_measure
from hardening.plan import Plan
from hardening.profiles import Profiles
from hardening.transport import classify_ssh_failure, ssh_config, sudo_refused

# Exit statuses of hardening-confirm (deploys/_rollback.py): 0 confirmed or nothing pending,
# 1 a commit failed, 2 a change had already rolled back before it could be confirmed.
CONFIRM_FAILED = {1: "a pending change could not be made permanent; it will roll back",
                  2: "a change rolled back before it could be confirmed"}
RECONNECT_ATTEMPTS = 4  # a host with nothing pending seen in the deploy's output (no deadline)
RECONNECT_PAUSE = 5.0  # sshd refuses connections while it reloads
ATTEMPT_TIMEOUT = 90.0  # one SSH connection running the confirmation, at most
MIN_ATTEMPT = 15.0  # an attempt with less time than this before the deadline is not started
SAFETY_MARGIN = 10.0  # the deadline, this much before the host's rollback timer fires
PROGRESS_EVERY = 10.0  # while confirming, a line naming the hosts still waited for
RETRIED = ("unreachable", "connection-lost")  # ssh failures worth another attempt while time is left
AFTER_ROLLBACK = 15.0  # after a host's rollback time, wait this long before reconnecting to see it back
BACK_WITHIN = 120.0  # ... and keep trying this long: a host not back by then is reported unreachable
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_GUARDED_OP = re.compile(r"Apply (\S+) live, rollback in (\d+) s")
_HOST_LINE = re.compile(r"^\s*\[([^\]\s]+)\]\s+(Success|No changes|Error|Skipped)")


@dataclass(frozen=True)
class Window:
    """When a host's guarded change went live (this machine's monotonic clock) and its timeout."""

    live: float
    timeout: int

    def deadline(self, margin: float) -> float:
        return self.live + self.timeout - margin


@dataclass(frozen=True)
class Confirmation:
    """The outcome of one host's confirmation: confirmed, failed, rolled back or unreachable."""

    host: str
    outcome: str
    detail: str
    attempts: int
    after: float | None  # seconds after its change went live (host clock when it answered)

    def line(self, index: int, total: int) -> str:
        when = f", {self.after:.0f} s after going live" if self.after is not None else ""
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        detail = "; ".join(self.detail.splitlines()) or "nothing pending"
        return f"[{index}/{total}] {self.host}: {self.outcome.upper()} ({tries}{when}): {detail}"


Reconnect = Callable[[Plan, float], "subprocess.CompletedProcess[str] | None"]


def available() -> list[str]:
    """The measures with a deploy, in the order they run (from the registry)."""
    return registry.deploy_order()


@dataclass
class HostChanges:
    """What pyinfra did (or, with --dry, would do) on one host, by operation name."""

    changed: list[str] = field(default_factory=list)
    maybe: list[str] = field(default_factory=list)  # --dry: depends on an earlier change (_if)
    failed: list[str] = field(default_factory=list)
    unchanged: int = 0


@dataclass
class DeployResult:
    pyinfra_exit: int
    confirmed: dict[str, str]
    unreachable: dict[str, str]
    failed: dict[str, str] = field(default_factory=dict)
    hosts: dict[str, HostChanges] = field(default_factory=dict)
    confirmations: dict[str, Confirmation] = field(default_factory=dict)

    @property
    def exit_code(self) -> Exit:
        codes = [Exit.OK]
        if self.pyinfra_exit != 0 or self.failed or any(h.failed for h in self.hosts.values()):
            codes.append(Exit.NONCOMPLIANT)
        if self.unreachable:
            codes.append(Exit.UNREACHABLE)
        return worst(*codes)


def pyinfra_command(inventory: Path, limit: tuple[str, ...], dry: bool, parallel: int) -> list[str]:
    # --json: the plan and results on stdout for us; progress and --diff output on stderr for the user.
    # pyinfra runs in a directory of its own: a relative inventory path would not be found there,
    # and pyinfra would take it for a host name and deploy nothing.
    cmd = [str(Path(sys.executable).with_name("pyinfra")), str(inventory.resolve()), str(DEPLOYS / "main.py"),
           "--parallel", str(parallel), "--diff", "--json"]
    cmd.append("--dry" if dry else "-y")
    for item in limit:
        cmd += ["--limit", item]
    return cmd


def run(inventory: Inventory, *, limit: tuple[str, ...], measures: tuple[str, ...], dry: bool,
        parallel: int, profiles_dir: Path, format_data_disks: tuple[str, ...] = ()) -> DeployResult:
    names = available()
    for name in measures:
        if name not in names:
            raise ConfigError("--measure", f"no deploy for measure {name!r} (have: {', '.join(names)})")
    chosen = [m for m in names if not measures or m in measures]
    hosts = inventory.select(limit)
    if not hosts:
        raise ConfigError(str(inventory.path), "no host selected")
    profiles = Profiles(profiles_dir)
    found = rooms_mod.beside(inventory.path)
    rooms = rooms_mod.load(found, inventory, profiles) if found else rooms_mod.EMPTY
    plans = [plan_mod.for_host(h, rooms_mod.overlay(h.resolve(profiles), rooms.ups_for(h.name)), chosen)
             for h in hosts]
    plans = with_format_consent(plans, format_data_disks, chosen)
    with tempfile.TemporaryDirectory(prefix="hardening-deploy-") as tmp:
        env = {**os.environ, "HARDENING_PLANS": str(plan_mod.write(plans, Path(tmp) / "plans.json"))}
        if IN_CHECKOUT:  # deploys/ is a top-level package only in a checkout
            env["PYTHONPATH"] = str(ROOT)
        returncode, stdout, lines = run_pyinfra(pyinfra_command(inventory.path, limit, dry, parallel), tmp, env)
    result = DeployResult(returncode, {}, {}, hosts=parse_pyinfra_json(stdout, dry))
    for plan in plans:  # a host whose run stopped (pyinfra: "No hosts remaining!") still gets its row
        if plan.name not in result.hosts and returncode != 0:
            result.hosts[plan.name] = HostChanges(failed=["its run stopped before pyinfra reported results "
                                                          "(see pyinfra's messages above)"])
        elif plan.name not in result.hosts:  # no operation at all (nothing differed): a row of zeros
            result.hosts[plan.name] = HostChanges()
    if dry:
        return result
    aborts = {name: why for name, changes in result.hosts.items() if (why := abort_reason(changes))}
    confirm(plans, result, windows=live_windows(lines), parallel=parallel, aborts=aborts)
    return result


def with_format_consent(plans: list[Plan], values: tuple[str, ...], chosen: list[str]) -> list[Plan]:
    """The plans with the devices the operator allows to format (``--format-data-disk``), checked
    against the hosts selected and what their profiles name (a ConfigError otherwise)."""
    if not values:
        return plans
    if "encryption" not in chosen:
        raise ConfigError(encryption_measure.FORMAT_FLAG, "the encryption measure is not deployed (--measure)")
    try:
        allowed = encryption_measure.format_consent(values, {p.name: p.profile for p in plans})
    except ValueError as exc:
        raise ConfigError(encryption_measure.FORMAT_FLAG, str(exc)) from None
    return [p.model_copy(update={"format_devices": allowed.get(p.name, [])}) for p in plans]


_REFUSAL = re.compile(r"(^|\| )Refused: ")


def abort_reason(changes: HostChanges) -> str:
    """Why the host's pending changes must be restored instead of confirmed: an operation failed
    (inside a watched region the change may be half made) or the run stopped. A refusal is not
    such a failure: it runs before anything of its measure changes, or after every measure."""
    broken = [name for name in changes.failed if not _REFUSAL.search(name)]
    return f"failed: {broken[0]}" + (f" (and {len(broken) - 1} more)" if len(broken) > 1 else "") if broken else ""


def run_pyinfra(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[int, str, list[tuple[float, str]]]:
    """pyinfra's exit status, its stdout (JSON), and its stderr lines, each with the moment it was
    read (passed on to our stderr as they come: the user sees pyinfra's progress live)."""
    lines: list[tuple[float, str]] = []
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1)

    def forward() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.monotonic(), line))
            sys.stderr.write(line)
            sys.stderr.flush()

    reader = threading.Thread(target=forward, daemon=True)
    reader.start()
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    returncode = proc.wait()
    reader.join()
    return returncode, stdout, lines


def parse_pyinfra_json(stdout: str, dry: bool) -> dict[str, HostChanges]:
    """Per host, the operations that changed (or would change) and those that failed."""
    try:
        payload = json.loads(stdout[stdout.index("{"):]) if "{" in stdout else {}
    except ValueError:
        return {}
    hosts: dict[str, HostChanges] = {}
    if dry or not payload.get("results"):
        for op in payload.get("plan") or []:
            for name in op.get("hosts_with_change", []):
                hosts.setdefault(name, HostChanges()).changed.append(op["name"])
            for name in op.get("hosts_with_conditional_change", []):
                hosts.setdefault(name, HostChanges()).maybe.append(op["name"])
        return hosts
    for op in payload["results"].get("operations", []):
        for name in op.get("success", []):
            hosts.setdefault(name, HostChanges()).changed.append(op["name"])
        for name in op.get("error", []):
            hosts.setdefault(name, HostChanges()).failed.append(op["name"])
        for name in op.get("no_change", []):
            hosts.setdefault(name, HostChanges()).unchanged += 1
    return hosts


def live_windows(lines: Iterable[tuple[float, str]]) -> dict[str, Window]:
    """Per host, when its watched changes went live, from pyinfra's progress lines as they came.

    ``lines``: (monotonic time the line was read, the line). pyinfra prints ``--> Starting operation:
    ... Apply NAME live, rollback in N s ...`` once, then ``[host] Success`` as each host finishes
    it; the apply script arms the timer just before applying, so the moment its Success line
    arrives is that host's arming plus the change's own duration (about a second: covered by the
    safety margin). A host seen in the operation without a Success line (an error, a changed
    output format) gets the operation's start: earlier than its real arming, so a safe deadline;
    "No changes" or "Skipped": nothing was armed there.

    A change armed again (a second measure changing sshd) counts from its LAST arming (its timer
    was restarted); ``Apply all live`` (deploys/_rollback.finish, the end of the host's run)
    re-armed every pending timer, so it replaces what came before. Of several changes, the one
    that rolls back first counts.
    """
    armed: dict[str, dict[str, Window]] = {}  # host -> change name -> its last arming
    current: tuple[float, int, str] | None = None  # (operation start, its timeout, change name)
    for seen, raw in lines:
        line = _ANSI.sub("", raw)
        if "Starting" in line and "operation:" in line:
            match = _GUARDED_OP.search(line)
            current = (seen, int(match.group(2)), match.group(1)) if match else None
            continue
        host = _HOST_LINE.match(line)
        if current is None or host is None or host.group(2) in ("No changes", "Skipped"):
            continue
        window = Window(seen if host.group(2).startswith("Success") else current[0], current[1])
        changes = armed.setdefault(host.group(1), {})
        if current[2] == "all":
            changes.clear()
        changes[current[2]] = window
    return {name: min(changes.values(), key=lambda w: w.deadline(0)) for name, changes in armed.items() if changes}


def confirm_remote(sudo: bool, abort: str = "") -> str:
    """Run hardening-confirm wherever it is installed: it confirms what is pending, and also
    reports (exit 2) a change that already rolled back before this connection came. First, what
    is pending and the host's own clock: how long after going live it was confirmed, with no
    clock skew between the host and this machine. With ``abort`` (why the host's deploy failed
    part-way), every pending change is restored instead (``hardening-confirm --abort``)."""
    command = firewall_measure.confirm_command() if sudo else firewall_measure.CONFIRM_PATH
    if abort:
        command += " --abort " + shlex.quote(abort[:300])
    pending = firewall_measure.PENDING_DIR
    return (f"for m in {pending}/*; do [ -r \"$m\" ] && echo \"pending: ${{m##*/}} $(tr '\\n' ' ' < \"$m\")\"; "
            f"done; echo \"host-now: $(date -u +%s)\"; "
            f"if [ -x {firewall_measure.CONFIRM_PATH} ]; then {command}; "
            f"else echo 'nothing pending'; fi")


def ssh_reconnect(config: Path, aborts: dict[str, str] | None = None) -> Reconnect:
    """One new SSH connection (no shared master) running the confirmation, bounded by ``budget``;
    on the hosts in ``aborts`` (host -> why its deploy failed part-way), the abort instead."""
    def attempt(t: Plan, budget: float) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(["ssh", "-F", str(config), "-o", "ControlMaster=no", "-o",
                                   "ControlPath=none", t.name,
                                   confirm_remote(t.sudo, (aborts or {}).get(t.name, ""))],
                                  capture_output=True, text=True, timeout=budget,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            return None
    return attempt


def _after_live(stdout: str) -> float | None:
    """Seconds between going live and this confirmation, by the host's own clock (the earliest
    pending marker: unit=..., armed=ISO time, timeout=N)."""
    now = re.search(r"^host-now: (\d+)$", stdout, re.M)
    armed = [datetime.strptime(m, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
             for m in re.findall(r"^pending: \S+ .*?armed=(\S+)", stdout, re.M)]
    if now is None or not armed:
        return None
    return int(now.group(1)) - min(armed)


def _confirm_output(stdout: str) -> str:
    """hardening-confirm's own lines, without the preamble of :func:`confirm_remote`."""
    return "\n".join(line for line in stdout.strip().splitlines()
                     if not line.startswith(("pending: ", "host-now: ")))


@dataclass
class Confirmer:
    """Confirms every host at once, each within its own deadline (see :func:`confirm`)."""

    reconnect: Reconnect
    windows: dict[str, Window]
    progress: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    margin: float = SAFETY_MARGIN
    pause: float = RECONNECT_PAUSE
    min_attempt: float = MIN_ATTEMPT
    attempt_timeout: float = ATTEMPT_TIMEOUT
    started: float = field(default_factory=time.monotonic)
    state: dict[str, str] = field(default_factory=dict)  # host -> what it is doing now (progress)
    aborts: dict[str, str] = field(default_factory=dict)  # host -> why its pending changes are restored
    after_rollback: float = AFTER_ROLLBACK
    back_within: float = BACK_WITHIN
    reconnect_after_rollback: bool = True  # False: report "unreachable" at the deadline (unit tests)

    def host(self, t: Plan) -> Confirmation:
        """Attempts until one answers, or the next could not finish before the rollback fires."""
        window = self.windows.get(t.name)
        margin, min_attempt, pause = self.limits(window)
        # An abort restores at once: tried whatever the deadline (the timer is the fallback).
        deadline = window.deadline(margin) if window and t.name not in self.aborts else None
        last = "no attempt"
        attempt = 0
        while deadline is not None or attempt < RECONNECT_ATTEMPTS:
            attempt += 1
            budget = self.attempt_timeout if deadline is None else min(self.attempt_timeout, deadline - self.clock())
            if budget < min_attempt:
                return self._after_rollback(t, window, attempt - 1, last)
            self.state[t.name] = f"attempt {attempt}"
            begun = self.clock()
            proc = self.reconnect(t, budget)
            if proc is None:
                last = f"no answer within {budget:.0f} s"
            else:
                refused = t.sudo and proc.returncode == 1 and sudo_refused(proc.stderr)
                reason, message = (classify_ssh_failure(proc.returncode, proc.stderr, t.sudo)
                                   if proc.returncode and (refused or proc.returncode not in CONFIRM_FAILED)
                                   else ("", ""))
                # While a change is pending, a refused login or sudo may be that change: retried
                # until the deadline, then the host's rollback is waited for.
                if reason not in RETRIED + (("auth", "sudo") if window else ()):
                    return self._answered(t, window, attempt, proc, message)
                last = message
            failed = f"{t.name}: attempt {attempt} failed after {self.clock() - begun:.1f} s ({last})"
            if deadline is not None and deadline - self.clock() - pause < min_attempt:
                self.progress(failed)
                return self._after_rollback(t, window, attempt, last)
            self.progress(f"{failed}; {self._left(window, pause)}")
            self.state[t.name] = f"attempt {attempt + 1} in {pause:.0f} s"
            self.sleep(pause)
        if window is not None and t.name in self.aborts:
            return self._after_rollback(t, window, attempt, last)
        return Confirmation(t.name, "unreachable", last, attempt, self._since(window))

    def limits(self, window: Window | None) -> tuple[float, float, float]:
        """(safety margin, shortest attempt, pause between attempts) for a host: the configured
        ones, scaled down for a short rollback timeout (confirm_timeout can be 5 s), which would
        otherwise leave no attempt at all."""
        if window is None:
            return self.margin, self.min_attempt, self.pause
        return (min(self.margin, window.timeout / 8), min(self.min_attempt, window.timeout / 4),
                min(self.pause, window.timeout / 10))

    def _left(self, window: Window | None, pause: float) -> str:
        if window is None:
            return f"retrying in {pause:.0f} s (no pending change was seen in the deploy's output)"
        return (f"retrying in {pause:.0f} s, its rollback fires in "
                f"{window.live + window.timeout - self.clock():.0f} s")

    def _since(self, window: Window | None) -> float | None:
        return None if window is None else self.clock() - window.live

    def _too_late(self, t: Plan, window: Window | None, attempts: int, last: str) -> Confirmation:
        assert window is not None
        fires = datetime.now(UTC) + timedelta(seconds=window.live + window.timeout - self.clock())
        return Confirmation(t.name, "unreachable",
                            f"{last}; no time left for another attempt before its rollback fires "
                            f"(about {fires:%H:%M:%S} UTC, {window.timeout} s after going live)",
                            attempts, self._since(window))

    def _after_rollback(self, t: Plan, window: Window | None, attempts: int, last: str) -> Confirmation:
        """No confirmation in time: wait until the host's watchdog has restored the previous state,
        then reconnect to show it reachable again (or report that it is not)."""
        gave_up = self._too_late(t, window, attempts, last)
        if not self.reconnect_after_rollback:
            return gave_up
        assert window is not None
        fires = window.live + window.timeout
        until = fires + self.after_rollback + self.back_within
        self.progress(f"{t.name}: not confirmed in time; waiting for its rollback "
                      f"(in {max(0.0, fires - self.clock()):.0f} s) to reconnect")
        self.state[t.name] = "waiting for its rollback"
        wait_for = fires + self.after_rollback - self.clock()
        if wait_for > 0:
            self.sleep(wait_for)
        tries = 0
        while tries == 0 or self.clock() < until:
            tries += 1
            self.state[t.name] = f"reconnecting after its rollback ({tries})"
            proc = self.reconnect(t, max(self.min_attempt, min(self.attempt_timeout, until - self.clock())))
            if proc is not None and proc.returncode in (0, 2) and t.name in self.aborts:
                back = f"reachable again {self.clock() - window.live:.0f} s after going live"
                return self._answered(t, window, attempts + tries, proc, "", restored_by=(
                    f"not reachable to restore it at once; its watchdog restored the previous state, {back}: "))
            if proc is not None and proc.returncode == 0:  # its timers had not fired: confirmed now
                return Confirmation(t.name, "confirmed", _confirm_output(proc.stdout) + " (after its deadline: "
                                    f"{last})", attempts + tries, self._since(window))
            if proc is not None and proc.returncode == 2:
                back = f"reachable again {self.clock() - window.live:.0f} s after going live"
                detail = (f"{CONFIRM_FAILED[2]}: not confirmed in time ({last}); its watchdog restored the "
                          f"previous state, {back}: {_confirm_output(proc.stdout)}")
                return Confirmation(t.name, "rolled back", detail, attempts + tries, self._since(window))
            self.sleep(min(self.pause, max(0.0, until - self.clock())))
        return Confirmation(t.name, "unreachable", f"{gave_up.detail}; still not reachable "
                            f"{self.clock() - fires:.0f} s after its rollback time", attempts + tries,
                            self._since(window))

    def _answered(self, t: Plan, window: Window | None, attempts: int, proc: subprocess.CompletedProcess[str],
                  message: str, restored_by: str = "") -> Confirmation:
        output = _confirm_output(proc.stdout)
        after = _after_live(proc.stdout)
        if after is None:
            after = self._since(window)
        if t.name in self.aborts and proc.returncode in (0, 2):
            what = (restored_by + "every pending change restored: " + output if proc.returncode == 2
                    else "nothing was pending to restore")
            return Confirmation(t.name, "rolled back" if proc.returncode == 2 else "failed",
                                f"its deploy failed part-way ({self.aborts[t.name]}); {what}", attempts, after)
        if proc.returncode == 0:
            return Confirmation(t.name, "confirmed", output, attempts, after)
        if proc.returncode == 2:
            return Confirmation(t.name, "rolled back", f"{CONFIRM_FAILED[2]}: {output}", attempts, after)
        if proc.returncode in CONFIRM_FAILED:
            return Confirmation(t.name, "failed", f"{CONFIRM_FAILED[proc.returncode]}: {output}", attempts, after)
        return Confirmation(t.name, "unreachable", message, attempts, after)

    def all(self, targets: list[Plan], parallel: int) -> list[Confirmation]:
        """Every host at once (at most ``parallel``), one progress line per host as it completes,
        and one every PROGRESS_EVERY seconds naming the hosts still waited for."""
        done: list[Confirmation] = []
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(targets)))) as pool:
            # Earliest rollback first: with more hosts than connections, a queued host waits.
            ordered = sorted(targets, key=lambda t: self.windows[t.name].deadline(0)
                             if t.name in self.windows else float("inf"))
            waiting = {pool.submit(self.host, t): t for t in ordered}
            while waiting:
                finished, _ = wait(waiting, timeout=PROGRESS_EVERY, return_when=FIRST_COMPLETED)
                for future in finished:
                    waiting.pop(future)
                    done.append(future.result())
                    self.progress(done[-1].line(len(done), len(targets)))
                if waiting and not finished:
                    names = ", ".join(f"{t.name} ({self.state.get(t.name, 'queued')})"
                                      for t in waiting.values())
                    self.progress(f"confirming, {self.clock() - self.started:.0f} s: waiting for {names}")
        return done


def confirm(targets: list[Plan], result: DeployResult, *, windows: dict[str, Window] | None = None,
            parallel: int = 4, progress: Callable[[str], None] | None = None,
            reconnect: Reconnect | None = None, aborts: dict[str, str] | None = None) -> None:
    """Reach every host over a NEW connection (no shared master) and make pending changes permanent.

    All hosts at once (at most ``parallel`` connections), each within its OWN deadline: the moment
    its change went live (``windows``, from pyinfra's output) plus the change's timeout, minus
    SAFETY_MARGIN. No attempt starts that could not finish before that host's rollback fires.
    """
    say = progress or _stderr
    with tempfile.TemporaryDirectory(prefix="hardening-confirm-") as tmp:
        confirmer = Confirmer(reconnect or ssh_reconnect(ssh_config(targets, Path(tmp)), aborts),
                              windows or {}, say, aborts=dict(aborts or {}))
        for name, why in (aborts or {}).items():
            say(f"--> {name}: its deploy failed part-way ({why}): restoring every pending change there")
        say(f"--> Confirming {len(targets)} host(s) over new SSH connections, {parallel} at once")
        outcomes = confirmer.all(targets, parallel)
    counts = {o: sum(c.outcome == o for c in outcomes) for o in ("confirmed", "rolled back", "failed", "unreachable")}
    say(f"--> Confirmation done in {confirmer.clock() - confirmer.started:.1f} s: "
        + ", ".join(f"{n} {o}" for o, n in counts.items()))
    for c in outcomes:
        result.confirmations[c.host] = c
        detail = "; ".join(c.detail.splitlines())
        if c.outcome == "confirmed":
            result.confirmed[c.host] = detail + (f" ({c.after:.0f} s after going live)"
                                                 if c.after is not None and "confirmed:" in detail else "")
        elif c.outcome in ("failed", "rolled back"):
            result.failed[c.host] = detail
        else:
            result.unreachable[c.host] = detail


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
