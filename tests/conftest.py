"""Project tests. Lab tests (marked `lab`) run on emulated Debian 12 hosts from hardening.lab."""

from pathlib import Path

import pytest

from hardening.lab import Lab, LabHost

pytest_plugins = ["hardening.lab.fixtures"]


@pytest.fixture(scope="module")
def inventory(lab: Lab, host: LabHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab inventory of a lab test module's one ``host`` fixture (a module may define its own)."""
    return lab.write_inventory(tmp_path_factory.mktemp("inv") / "lab.py")


# CI runs two workers (`pytest -n 2`, pyproject: --dist loadfile --no-loadscope-reorder): a
# module goes whole to one worker, in collection order, as workers free up. The lab modules that
# take many minutes (emulated hosts, measured in CI) go first, so that the two workers finish
# close together instead of one starting the longest module last.
MINUTES = {
    "test_lab_violations.py": 30, "test_lab_deploy.py": 20, "test_lab_faults.py": 16,
    "test_lab_audit.py": 7, "test_lab_encryption.py": 7, "test_lab_backup.py": 6,
    "test_lab_usb_refusals.py": 6, "test_evidence_lab.py": 4,
    "test_lab_verify.py": 4, "test_lab_disks.py": 3, "test_lab.py": 3, "test_lab_tmpdata.py": 3,
    "test_lab_power.py": 2,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def weight(item: pytest.Item) -> float:
        minutes = MINUTES.get(item.path.name)
        if minutes is not None:
            return minutes
        return 1 if item.get_closest_marker("lab") else 0

    items.sort(key=weight, reverse=True)  # stable: a module's tests keep their order
    # xdist starts each worker with two modules (the 1st and 3rd to one, the 2nd and 4th to the
    # other) and never moves one it handed out: a short module third keeps the third-longest from
    # waiting behind the longest while the other worker is free.
    modules = list(dict.fromkeys(item.path for item in items))
    first = {item.path: weight(item) for item in reversed(items)}
    short = next((m for m in modules[3:] if first[m] == 0), None)
    if len(modules) > 3 and short is not None:
        order = [*modules[:2], short, *[m for m in modules[2:] if m != short]]
        rank = {m: i for i, m in enumerate(order)}
        items.sort(key=lambda item: rank[item.path])
