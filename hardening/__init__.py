"""hardening: enforce, verify and prove chapters 6-7 of the MIC guideline on personal information."""

from pathlib import Path

__version__ = "0.1.0"

# The tool runs from its checkout: deploys/, checks/ and hwprofiles/ sit beside the package.
ROOT = Path(__file__).resolve().parent.parent
