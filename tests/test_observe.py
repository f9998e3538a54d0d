"""The observation batch: one shell script, framed results, nothing unreadable passes."""

from __future__ import annotations

import subprocess

import pytest

from hardening import observe


def run_batch(commands: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", observe.remote_command(commands)], capture_output=True, text=True,
                          check=False)


def test_each_command_keeps_its_exit_code_output_and_errors() -> None:
    commands = ["echo hi; echo err >&2; exit 3", "printf 'a\\nb'", "exit 5", "true # a comment",
                "printf '\\000\\377binary'", "echo \"$((1 + 1))\""]
    proc = run_batch(commands)
    obs = observe.parse(commands, proc.stdout, exit_code=proc.returncode, stderr=proc.stderr)
    first = obs.run(commands[0])
    assert (first.rc, first.stdout, first.stderr) == (3, "hi\n", "err\n")
    assert obs.run(commands[1]).stdout == "a\nb"
    assert obs.run(commands[2]).rc == 5 and obs.run(commands[3]).rc == 0
    assert obs.run(commands[4]).stdout.endswith("binary")
    assert obs.run(commands[5]).stdout == "2\n"
    assert [o.id for o in obs.all()] == [f"o{i}" for i in range(len(commands))]
    assert all(o.duration >= 0 for o in obs.all())


def test_a_command_that_exits_does_not_end_the_batch() -> None:
    commands = ["exit 1", "echo still here"]
    proc = run_batch(commands)
    assert observe.parse(commands, proc.stdout).run("echo still here").stdout == "still here\n"


def test_arguments_are_quoted_as_testinfra_quotes_them() -> None:
    command = observe.quote("cat %s", "/tmp/a b; rm -rf /")
    assert command == "cat '/tmp/a b; rm -rf /'"
    proc = run_batch([command])
    assert observe.parse([command], proc.stdout).run("cat %s", "/tmp/a b; rm -rf /").rc != 0


def test_an_undeclared_command_is_a_defect() -> None:
    obs = observe.parse(["true"], run_batch(["true"]).stdout)
    with pytest.raises(observe.NotObserved, match="declare it in the measure's observe"):
        obs.run("false")


def test_a_cut_or_unreadable_batch_is_an_error_never_a_pass() -> None:
    commands = ["true", "echo x"]
    out = run_batch(commands).stdout
    cut = "\n".join(line for line in out.splitlines() if not line.startswith(observe.PACKED))
    with pytest.raises(observe.ObservationError, match=r"did not finish \(2 of 2 commands ran\): Connection closed"):
        observe.parse(commands, cut, exit_code=255, stderr="Connection closed")
    assert observe.progress(cut) == 2 and observe.progress("") is None
    with pytest.raises(observe.ObservationError, match="cannot be read"):
        observe.parse(commands, out.replace(observe.PACKED + " ", observe.PACKED + " !!", 1))
    with pytest.raises(observe.ObservationError, match=r"observation 2 \('echo y'\) is missing"):
        observe.parse([*commands, "echo y"], out)


def test_without_bash_the_batch_still_runs_durations_unknown() -> None:
    commands = ["echo a", "exit 4"]
    proc = subprocess.run(["dash", "-c", observe.script(commands)], capture_output=True, text=True, check=False)
    obs = observe.parse(commands, proc.stdout)
    assert obs.run("echo a").stdout == "a\n" and obs.run("exit 4").rc == 4
    assert {o.duration for o in obs.all()} == {0.0}


def test_reads_are_reported_to_the_listener() -> None:
    obs = observe.parse(["echo a", "echo b"], run_batch(["echo a", "echo b"]).stdout)
    seen: list[str] = []
    obs.listener = lambda o: seen.append(o.id)
    obs.run("echo b")
    obs.run("echo a")
    assert seen == ["o1", "o0"]
