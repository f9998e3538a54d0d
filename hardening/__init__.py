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


# True in a checkout (development, CI): state such as the lab lives beside the code. Installed
# from a wheel, the package directory is read-only territory: state goes to the user's home.
IN_CHECKOUT = not (_PACKAGE / "checks").is_dir() and (ROOT / "pyproject.toml").is_file()
# Where the tool keeps its own state when it is not run from a checkout.
STATE_DIR = ROOT if IN_CHECKOUT else Path.home() / ".local" / "state" / "hardening"

CHECKS = shipped("checks")
DEPLOYS = shipped("deploys")
HWPROFILES = shipped("hwprofiles")
