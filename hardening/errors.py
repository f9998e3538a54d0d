"""Errors a user can act on, and the exit codes a scheduler sees.

| code | meaning |
|------|---------|
| 0 | every check on every host passed (not applicable and advisory count as passed) |
| 1 | verification ran and at least one check failed or errored: the fleet is not compliant |
| 2 | usage or configuration error (bad flag, broken inventory, profile or catalogue): nothing ran |
| 3 | at least one host could not be verified (unreachable, host key mismatch, sudo refused) |
| 4 | verification ran and a host regressed against its previous run (see `hardening diff`) |
| 5 | verification ran, nothing failed, but checks are not configured: data they need is missing |

When several apply, the highest-priority code wins: 2, then 3, then 4, then 1, then 5.
Code 5 (INCOMPLETE) names hosts whose profile or inventory lacks data a check needs (expected
networks, personal-data paths, asset register fields): never a pass, but nothing found wrong.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    NONCOMPLIANT = 1
    CONFIG = 2
    UNREACHABLE = 3
    REGRESSION = 4
    INCOMPLETE = 5


_PRIORITY = [Exit.CONFIG, Exit.UNREACHABLE, Exit.REGRESSION, Exit.NONCOMPLIANT, Exit.INCOMPLETE, Exit.OK]


def worst(*codes: Exit) -> Exit:
    """The exit code that wins when several conditions hold at once."""
    for code in _PRIORITY:
        if code in codes:
            return code
    return Exit.OK


class HardeningError(Exception):
    """An error shown to the user as one line, with an exit code."""

    exit_code: Exit = Exit.CONFIG


class ConfigError(HardeningError):
    """A broken inventory, profile, catalogue, check or deploy: names the file and the key."""

    def __init__(self, source: str, message: str, key: str | None = None) -> None:
        self.source = source
        self.key = key
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {message}")
