"""Confirmation after a deploy (hardening/deploying.py): all hosts at once, each within its own
deadline. A fake reconnect function stands for SSH; timings are injected (a fake clock, or
real sleeps of milliseconds)."""

from __future__ import annotations

import subprocess
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from deploys import _rollback as rb
from hardening import deploying
from hardening.deploying import Confirmer, DeployResult, Window, live_windows
from hardening.errors import Exit

CONFIRMED = "pending: firewall unit=hardening-rollback-firewall.timer armed={armed} timeout=120 \n" \
            "host-now: {now}\nconfirmed: firewall\n"
UNREACHABLE = "ssh: connect to host 10.0.0.1 port 22: Connection timed out"


def plan(name: str) -> Any:
    """What the confirmation reads of a Plan: its name and whether it uses sudo."""
    return SimpleNamespace(name=name, sudo=True)


def answer(rc: int = 0, stdout: str = "confirmed: firewall\n", stderr: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["ssh"], rc, stdout, stderr)


class FakeClock:
    """A clock that only moves when the fake SSH or the pause say so (one host, no threads)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def real_confirmer(reconnect: Any, windows: dict[str, Window] | None = None, **timing: float) -> Confirmer:
    """A confirmer on the real clock, with every duration scaled down to milliseconds."""
    lines: list[str] = []
    defaults = {"margin": 0.05, "pause": 0.01, "min_attempt": 0.02, "attempt_timeout": 2.0}
    confirmer = Confirmer(reconnect, windows or {}, lines.append, **{**defaults, **timing})
    confirmer.lines = lines  # type: ignore[attr-defined]
    return confirmer


def test_four_hosts_are_confirmed_concurrently() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def reconnect(t: Any, budget: float) -> subprocess.CompletedProcess[str]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.2)
        with lock:
            running -= 1
        return answer()

    now = time.monotonic()
    confirmer = real_confirmer(reconnect, {f"h{i}": Window(now, 5) for i in range(4)})
    begun = time.monotonic()
    outcomes = confirmer.all([plan(f"h{i}") for i in range(4)], parallel=4)
    took = time.monotonic() - begun
    assert most == 4
    assert took < 0.6, f"4 hosts of 0.2 s each took {took:.2f} s: not concurrent"
    assert sorted(c.outcome for c in outcomes) == ["confirmed"] * 4
    assert len(confirmer.lines) == 4  # type: ignore[attr-defined]  # one line per host as it completes


def test_parallelism_bounds_the_connections() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def reconnect(t: Any, budget: float) -> subprocess.CompletedProcess[str]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return answer()

    outcomes = real_confirmer(reconnect).all([plan(f"h{i}") for i in range(6)], parallel=2)
    assert most == 2 and len(outcomes) == 6


def test_with_more_hosts_than_connections_the_earliest_rollback_goes_first() -> None:
    order: list[str] = []
    now = time.monotonic()
    windows = {"late": Window(now + 3, 5), "early": Window(now, 5), "middle": Window(now + 1, 5)}
    real_confirmer(lambda t, budget: order.append(t.name) or answer(), windows).all(
        [plan("none"), plan("late"), plan("early"), plan("middle")], parallel=1)
    assert order == ["early", "middle", "late", "none"]


def test_a_slow_host_does_not_delay_the_others() -> None:
    finished: dict[str, float] = {}
    begun = time.monotonic()

    def reconnect(t: Any, budget: float) -> subprocess.CompletedProcess[str]:
        time.sleep(0.5 if t.name == "slow" else 0.02)
        finished[t.name] = time.monotonic() - begun
        return answer()

    confirmer = real_confirmer(reconnect, {n: Window(begun, 5) for n in ("slow", "a", "b", "c")})
    outcomes = confirmer.all([plan("slow"), plan("a"), plan("b"), plan("c")], parallel=4)
    assert all(finished[n] < 0.3 for n in "abc"), finished
    assert finished["slow"] >= 0.5
    assert [c.host for c in outcomes][-1] == "slow"  # reported as each completes: the slow one last
    assert confirmer.lines[-1].startswith("[4/4] slow: CONFIRMED")  # type: ignore[attr-defined]


def test_no_attempt_is_started_past_the_hosts_deadline() -> None:
    """Rollback at 120 s after going live, margin 10 s: the deadline is 110 s. Attempts of up to
    90 s, 5 s apart, none started with less than 15 s left, none running past the deadline."""
    clock = FakeClock()
    attempts: list[tuple[float, float]] = []

    def reconnect(t: Any, budget: float) -> subprocess.CompletedProcess[str] | None:
        attempts.append((clock.now, budget))
        clock.now += budget  # ssh gives up only at the budget: the host never answers
        return None

    lines: list[str] = []
    confirmer = Confirmer(reconnect, {"h": Window(0.0, 120)}, lines.append, clock=clock, sleep=clock.sleep,
                          reconnect_after_rollback=False)
    outcome = confirmer.host(plan("h"))
    assert attempts == [(0.0, 90.0), (95.0, 15.0)]
    assert all(start + budget <= 110.0 for start, budget in attempts)
    assert outcome.outcome == "unreachable" and outcome.attempts == 2
    assert "no time left for another attempt before its rollback fires" in outcome.detail
    assert clock.now == 110.0  # no pause for an attempt that would not start
    assert len(lines) == 2 and "its rollback fires in 30 s" in lines[0]  # each failed attempt is shown


def test_an_attempt_that_would_start_too_late_is_not_waited_for() -> None:
    """Attempt 1 times out at 90 s; 5 s of pause would leave 10 s (< 15): reported at once."""
    clock = FakeClock()
    clock.now = 5.0

    def reconnect(t: Any, budget: float) -> None:
        clock.now += budget

    outcome = Confirmer(reconnect, {"h": Window(0.0, 120)}, lambda line: None, clock=clock,
                        sleep=clock.sleep, reconnect_after_rollback=False).host(plan("h"))
    assert outcome.attempts == 1 and clock.now == 95.0 and outcome.after == 95.0


def test_a_short_rollback_timeout_still_gets_attempts() -> None:
    """confirm_timeout: 15 (a margin of 10 s and attempts of at least 15 s would leave none)."""
    clock = FakeClock()
    attempts: list[tuple[float, float]] = []

    def reconnect(t: Any, budget: float) -> None:
        attempts.append((clock.now, budget))
        clock.now += budget

    outcome = Confirmer(reconnect, {"h": Window(0.0, 15)}, lambda line: None, clock=clock,
                        sleep=clock.sleep, reconnect_after_rollback=False).host(plan("h"))
    assert attempts and attempts[0] == (0.0, 15 - 15 / 8)
    assert all(start + budget <= 15 - 15 / 8 for start, budget in attempts)
    assert outcome.outcome == "unreachable"


def test_a_host_whose_deadline_passed_gets_no_attempt() -> None:
    clock = FakeClock()
    clock.now = 200.0
    called: list[str] = []
    confirmer = Confirmer(lambda t, b: called.append(t.name), {"late": Window(0.0, 120)}, print,
                          clock=clock, sleep=clock.sleep, reconnect_after_rollback=False)
    outcome = confirmer.host(plan("late"))
    assert called == [] and outcome.outcome == "unreachable" and outcome.attempts == 0


def test_retries_while_time_is_left_then_confirms() -> None:
    """sshd refusing connections while it reloads: retried with its own deadline, not 4 tries."""
    clock = FakeClock()
    answers = [answer(255, "", UNREACHABLE)] * 6 + [answer()]

    def reconnect(t: Any, budget: float) -> subprocess.CompletedProcess[str]:
        clock.now += 1
        return answers.pop(0)

    confirmer = Confirmer(reconnect, {"h": Window(0.0, 120)}, lambda line: None, clock=clock, sleep=clock.sleep)
    outcome = confirmer.host(plan("h"))
    assert outcome.outcome == "confirmed" and outcome.attempts == 7


def test_a_refused_login_is_not_retried_when_nothing_is_pending() -> None:
    calls = []

    def reconnect(t: Any, budget: float) -> subprocess.CompletedProcess[str]:
        calls.append(budget)
        return answer(255, "", "deploy@h: Permission denied (publickey).")

    outcome = real_confirmer(reconnect).host(plan("h"))
    assert len(calls) == 1 and outcome.outcome == "unreachable" and "SSH login refused" in outcome.detail


@pytest.mark.parametrize("refusal", [answer(255, "", "deploy@h: Permission denied (publickey)."),
                                     answer(1, "", "Sorry, user deploy is not allowed to execute "
                                                   "'/usr/local/sbin/hardening-confirm' as root on h.")])
def test_a_refusal_while_a_change_is_pending_waits_for_the_rollback(
        refusal: subprocess.CompletedProcess[str]) -> None:
    """The pending change (AllowUsers, a sudoers rule) may be what refuses: retried until the
    deadline, then the rollback is waited for and the host reached in its previous state."""
    clock = FakeClock()

    def reconnect(t: Any, budget: float) -> subprocess.CompletedProcess[str]:
        clock.now += 1
        return refusal if clock.now < 120 else answer(2, ROLLED_BACK)

    outcome = Confirmer(reconnect, {"h": Window(0.0, 120)}, lambda line: None, clock=clock,
                        sleep=clock.sleep).host(plan("h"))
    assert outcome.outcome == "rolled back" and outcome.attempts > 2, outcome
    assert outcome.detail.startswith("a change rolled back before it could be confirmed: not confirmed in time")


def test_the_result_per_host_and_the_exit_code() -> None:
    replies = {
        "ok": answer(0, CONFIRMED.format(armed="2026-12-01T18:00:00Z", now=1796148037)),
        "late": answer(2, "host-now: 1\nrolled back before confirmation: firewall "
                          "(2026-12-01T18:02:00Z restored the previous state)\n"),
        "broken": answer(1, "", "commit failed: firewall"),
        "gone": answer(255, "", "deploy@gone: Permission denied (publickey)."),
        "plain": answer(0, "host-now: 5\nnothing pending\n"),
    }
    result = DeployResult(0, {}, {})
    lines: list[str] = []
    deploying.confirm([plan(n) for n in replies], result, parallel=4, progress=lines.append,
                      reconnect=lambda t, budget: replies[t.name])
    outcomes = {n: c.outcome for n, c in result.confirmations.items()}
    assert outcomes == {"ok": "confirmed", "late": "rolled back", "broken": "failed", "gone": "unreachable",
                        "plain": "confirmed"}
    assert result.confirmations["ok"].after == 37.0  # by the host's own clock: armed 18:00:00, now 18:00:37
    assert result.confirmed["ok"] == "confirmed: firewall (37 s after going live)"
    assert "2026-12-01T18:02:00Z" in result.failed["late"]  # when it rolled back
    assert set(result.failed) == {"late", "broken"} and set(result.unreachable) == {"gone"}
    assert result.confirmed["plain"] == "nothing pending"
    assert result.exit_code == Exit.UNREACHABLE
    assert len([line for line in lines if line.startswith("[")]) == 5


def test_a_rolled_back_host_fails_the_deploy() -> None:
    result = DeployResult(0, {}, {})
    deploying.confirm([plan("a"), plan("b")], result, progress=lambda line: None,
                      reconnect=lambda t, budget: answer(2 if t.name == "b" else 0,
                                                         "rolled back before confirmation: firewall (x)"))
    assert result.exit_code == Exit.NONCOMPLIANT and set(result.failed) == {"b"}


PYINFRA = """\
--> Starting operation: firewall | firewall: desired
    [c1] Success
--> Starting operation: \x1b[1mfirewall | Apply firewall live, rollback in 120 s unless confirmed (x)\x1b[0m
    [\x1b[1mc2\x1b[0m] Success
    [c1] Success
    [c3] Error
--> Starting operation: firewall | nftables.service: systemctl enable nftables.service
    [c1] Success
"""


def test_live_windows_from_pyinfras_output() -> None:
    timed = [(float(i), line) for i, line in enumerate(PYINFRA.splitlines())]
    windows = live_windows(timed)
    assert windows == {"c2": Window(3.0, 120), "c1": Window(4.0, 120),
                       "c3": Window(2.0, 120)}  # no Success line: the operation's start (earlier: safe)


def test_the_earliest_rollback_counts() -> None:
    timed = [(0.0, "--> Starting operation: sshd | Apply sshd live, rollback in 60 s unless confirmed"),
             (1.0, "    [c1] Success"),
             (30.0, "--> Starting operation: firewall | Apply firewall live, rollback in 120 s unless confirmed"),
             (31.0, "    [c1] Success")]
    assert live_windows(timed) == {"c1": Window(1.0, 60)}


@pytest.mark.parametrize("stdout, expected", [
    (CONFIRMED.format(armed="2026-12-01T18:00:00Z", now=1796148010), 10.0),
    ("host-now: 1796148010\nnothing pending\n", None),
    ("confirmed: firewall\n", None),
])
def test_seconds_after_going_live_by_the_hosts_clock(stdout: str, expected: float | None) -> None:
    assert deploying._after_live(stdout) == expected


def test_the_remote_command_reads_the_markers_before_confirming() -> None:
    command = deploying.confirm_remote(sudo=True)
    assert command.index("/run/hardening/pending/*") < command.index("sudo -n /usr/local/sbin/hardening-confirm")
    proc = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_the_guarded_operation_name_is_what_live_windows_reads() -> None:
    """The deadline comes from pyinfra's line for the operation deploys/_rollback.py names; if that
    name changes, no host gets a deadline (4 attempts of up to 90 s, as before) — keep them in step."""
    change = rb.SSHD.change(60, 900)
    line = f"--> Starting operation: admin | {rb._apply_name(change)} (why)"
    assert live_windows([(0.0, line), (1.0, "    [h] Success")]) == {"h": Window(1.0, 960)}
    end = "--> Starting operation: Apply all live, rollback in 60 s unless confirmed (the watchdogs re-armed)"
    assert live_windows([(0.0, line), (1.0, "    [h] Success"), (30.0, end), (31.0, "    [h] Success")]) == {
        "h": Window(31.0, 60)}  # re-armed at the end of the run: its window is the earliest to fire
    assert live_windows([(0.0, line), (1.0, "    [h] No changes")]) == {}  # nothing armed there


ROLLED_BACK = ("host-now: 300\n"
               "rolled back before confirmation: sshd (2026-12-01T18:02:00Z restored the previous state)\n")


def test_after_the_deadline_the_host_is_reached_again_in_its_previous_state() -> None:
    """No answer before the deadline (the change cut SSH); the runner waits for the host's rollback
    and reconnects: the host answers, says what it restored, and is reported rolled back."""
    clock = FakeClock()
    calls: list[float] = []

    def reconnect(t: Any, budget: float) -> subprocess.CompletedProcess[str] | None:
        calls.append(clock.now)
        if clock.now < 120:  # locked out until the watchdog restores at 120 s
            clock.now += budget
            return None
        clock.now += 2
        return answer(2, ROLLED_BACK)

    lines: list[str] = []
    outcome = Confirmer(reconnect, {"h": Window(0.0, 120)}, lines.append, clock=clock,
                        sleep=clock.sleep).host(plan("h"))
    assert outcome.outcome == "rolled back", outcome
    assert calls[-1] == 135.0  # the rollback time plus AFTER_ROLLBACK, not before
    assert "its watchdog restored the previous state, reachable again 137 s after going live" in outcome.detail
    assert "rolled back before confirmation: sshd" in outcome.detail
    assert any("waiting for its rollback" in line for line in lines)


def test_a_host_that_does_not_come_back_is_unreachable() -> None:
    clock = FakeClock()

    def reconnect(t: Any, budget: float) -> None:
        clock.now += budget

    outcome = Confirmer(reconnect, {"h": Window(0.0, 120)}, lambda line: None, clock=clock,
                        sleep=clock.sleep).host(plan("h"))
    assert outcome.outcome == "unreachable"
    assert "still not reachable" in outcome.detail and "after its rollback time" in outcome.detail
    assert clock.now <= 120 + deploying.AFTER_ROLLBACK + deploying.BACK_WITHIN + deploying.ATTEMPT_TIMEOUT


def test_a_host_whose_run_failed_part_way_is_restored_not_confirmed() -> None:
    seen: list[str] = []

    def reconnect(t: Any, budget: float) -> subprocess.CompletedProcess[str]:
        seen.append(t.name)
        return answer(2, "rolled back: sudoers (2026-12-01T18:02:00Z restored the previous state (the deploy "
                         "failed on this host before it was confirmed: failed: admin | Reload sshd))\n")

    confirmer = real_confirmer(reconnect, aborts={"h": "failed: admin | Reload sshd"})
    outcome = confirmer.host(plan("h"))
    assert outcome.outcome == "rolled back"
    assert outcome.detail.startswith("its deploy failed part-way (failed: admin | Reload sshd); every pending "
                                     "change restored: rolled back: sudoers")


def test_abort_reason_ignores_refusals() -> None:
    refused = deploying.HostChanges(failed=["usb | Refused: usb: / is on a USB disk"])
    assert deploying.abort_reason(refused) == ""
    broken = deploying.HostChanges(failed=["admin | Refused: x", "timeouts | Reload sshd and confirm it uses"])
    assert deploying.abort_reason(broken) == "failed: timeouts | Reload sshd and confirm it uses"
    assert "--abort 'failed: x'" in deploying.confirm_remote(True, "failed: x")


def test_a_change_armed_again_counts_from_its_last_arming() -> None:
    """Two measures change sshd: the second arming restarted the sshd timer. PAM, armed once
    before both, still fires first."""
    def op(name: str, seconds: int) -> str:
        return f"--> Starting operation: x | Apply {name} live, rollback in {seconds} s unless confirmed"

    lines = [(0.0, op("sshd", 100)), (1.0, "    [h] Success"), (50.0, op("sshd", 100)), (51.0, "    [h] Success")]
    assert live_windows(lines) == {"h": Window(51.0, 100)}
    lines = [(0.0, op("pam", 100)), (1.0, "    [h] Success"), *lines[2:]]
    assert live_windows(lines) == {"h": Window(1.0, 100)}
    assert live_windows([*lines, (60.0, op("usb", 10)), (61.0, "    [h] Skipped")]) == {"h": Window(1.0, 100)}


def test_a_host_past_its_deadline_is_still_reached_once_and_may_be_confirmed() -> None:
    """The deploy ran longer than the runner's window: the host is reached once after the rollback
    time; its timers had been re-armed, so it confirms: that is a confirmation, not a failure."""
    clock = FakeClock()
    clock.now = 400.0
    calls: list[float] = []

    def reconnect(t: Any, budget: float) -> subprocess.CompletedProcess[str]:
        calls.append(clock.now)
        return answer(0, "confirmed: sshd\n")

    outcome = Confirmer(reconnect, {"h": Window(0.0, 90)}, lambda line: None, clock=clock,
                        sleep=clock.sleep).host(plan("h"))
    assert calls == [400.0]
    assert outcome.outcome == "confirmed" and outcome.detail.startswith("confirmed: sshd (after its deadline")


def test_an_abort_is_tried_at_once_even_past_the_deadline() -> None:
    """The run failed long after its change went live: the abort is still tried at once."""
    clock = FakeClock()
    clock.now = 500.0
    calls: list[float] = []

    def reconnect(t: Any, budget: float) -> subprocess.CompletedProcess[str]:
        calls.append(clock.now)
        return answer(2, "rolled back: usb (2026-12-01T23:12:41Z restored the previous state)\n")

    confirmer = Confirmer(reconnect, {"h": Window(0.0, 90)}, lambda line: None, clock=clock, sleep=clock.sleep,
                          aborts={"h": "failed: usb | x"})
    outcome = confirmer.host(plan("h"))
    assert calls == [500.0] and outcome.outcome == "rolled back"
    assert outcome.detail.startswith("its deploy failed part-way (failed: usb | x); every pending change restored")


def test_an_abort_that_cannot_reach_the_host_waits_for_its_watchdog_and_says_so() -> None:
    """The run failed part-way AND the host refuses every login (pam_deny in common-account): the
    abort cannot restore at once; the host's timer does, and the report says the watchdog did it
    and when the host was reachable again (the CI run of stop 15 reported only the abort)."""
    clock = FakeClock()

    def reconnect(t: Any, budget: float) -> subprocess.CompletedProcess[str] | None:
        if clock.now < 90:  # locked out until its timer restores PAM at 90 s
            clock.now += 1
            return answer(255, "", "Permission denied (publickey).\n")
        clock.now += 2
        return answer(2, "rolled back before confirmation: pam (2026-12-02T00:19:46Z restored the previous state)\n")

    confirmer = Confirmer(reconnect, {"h": Window(0.0, 90)}, lambda line: None, clock=clock, sleep=clock.sleep,
                          aborts={"h": "failed: auth | x"})
    outcome = confirmer.host(plan("h"))
    assert outcome.outcome == "rolled back", outcome
    assert outcome.detail.startswith("its deploy failed part-way (failed: auth | x); not reachable to restore it "
                                     "at once; its watchdog restored the previous state, reachable again "), outcome
    assert outcome.detail.endswith("every pending change restored: rolled back before confirmation: pam "
                                   "(2026-12-02T00:19:46Z restored the previous state)")


def test_pyinfra_gets_the_inventory_as_an_absolute_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """pyinfra runs in a directory of its own: given `lab.py`, it took it for a host name and
    deployed nothing, exit 0."""
    monkeypatch.chdir(tmp_path)
    cmd = deploying.pyinfra_command(deploying.Path("lab.py"), (), dry=True, parallel=1)
    assert cmd[1] == str(tmp_path / "lab.py")
