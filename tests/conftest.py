"""Project tests. Lab tests (marked `lab`) run on emulated Debian 12 hosts from hardening.lab."""

from pathlib import Path

import pytest

from hardening.lab import Lab, LabHost

pytest_plugins = ["hardening.lab.fixtures"]


@pytest.fixture(scope="module")
def inventory(lab: Lab, host: LabHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab inventory of a lab test module's one ``host`` fixture (a module may define its own)."""
    return lab.write_inventory(tmp_path_factory.mktemp("inv") / "lab.py")
