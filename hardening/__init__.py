"""hardening: enforce, verify and prove chapters 6-7 of the MIC guideline on personal information."""

from pathlib import Path

__version__ = "0.2.0"

_PACKAGE = Path(__file__).resolve().parent
# A checkout: deploys/, checks/ and hwprofiles/ sit beside the package.
ROOT = _PACKAGE.parent


def shipped(name: str) -> Path:
    """Where the shipped ``checks``, ``deploys`` or ``hwprofiles`` are: inside the package when
    installed from a wheel (``hardening/checks`` ...), beside it in a checkout."""
    inside = _PACKAGE / name
    return inside if inside.is_dir() else ROOT / name


CHECKS = shipped("checks")
DEPLOYS = shipped("deploys")
HWPROFILES = shipped("hwprofiles")
