"""The host's observation batch as a pyinfra fact: what the deploy decides from.

The same commands the checks judge (the plan's ``commands``, hardening.observe) run as ONE
fact on the host, under the deploy's one sudo. Each measure's deploy reads them with
``obs.run(command)`` to see the host's running state (loaded modules, runtime sysctls, files
it does not own, the effective sshd configuration), so that it converges on what the checks
judge instead of trusting the hashes of its own files.
"""

from __future__ import annotations

from pyinfra.api import FactBase

from hardening.observe import Observations, parse, remote_command


class Observed(FactBase[Observations]):
    """``host.get_fact(Observed, commands=plan.commands)`` -> Observations."""

    def command(self, commands: list[str]) -> str:
        self._commands = list(commands)
        return remote_command(self._commands)

    def process(self, output: list[str]) -> Observations:
        return parse(self._commands, output)
