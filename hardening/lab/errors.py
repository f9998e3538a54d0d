"""The one exception the lab raises for conditions a user can act on."""

from __future__ import annotations


class LabError(Exception):
    """A lab failure shown to the user as one line (the CLI turns it into a ClickException)."""
