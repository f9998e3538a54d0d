"""pytest plugin: lab fixtures. Load with ``pytest_plugins = ["hardening.lab.fixtures"]``.

* ``lab`` (session): a lab directory of the session's own (the built image is shared), set up
  once; every host of it stops at the end of the session, also after a failure or Ctrl-C.
* ``lab_host`` (function): a factory ``lab_host(name, profile=..., sensitivity=..., kind="vm")
  -> LabHost`` (``kind="container"`` for a systemd-nspawn container);
  the hosts it started are stopped when the test ends. For a host shared by several tests, call
  ``lab.start`` in a fixture of wider scope.

Mark tests that need the lab with ``@pytest.mark.lab`` (``-m "not lab"`` skips them).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import hardening
from hardening.lab.lab import Lab
from hardening.lab.vm import LabHost

StartHost = Callable[..., LabHost]
_started_labs: list[Lab] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs the emulated test lab (QEMU hosts; slow)")


def _stop_everything() -> None:
    """Last resort when the interpreter exits without fixture teardown."""
    for lab_ in _started_labs:
        # Exiting: stop what we can, report nothing.
        with contextlib.suppress(Exception):
            lab_.stop_all()
    _started_labs.clear()


atexit.register(_stop_everything)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A lab directory of this session's own, set up once; all its hosts stop at the end.

    The image, golden state and key come from the shared lab (``<repo>/.lab``, or
    HARDENING_LAB_CACHE), so nothing is built twice; the hosts live in a short temporary
    directory (the ssh ControlPath limits its length), so that stopping them at the end never
    stops hosts a person or another session started in the shared lab. HARDENING_LAB_DIR
    chooses the directory instead.
    """
    own = None if os.environ.get("HARDENING_LAB_DIR") else Path(tempfile.mkdtemp(prefix="hl-", dir="/tmp"))
    cache = None if own is None else Path(os.environ.get("HARDENING_LAB_CACHE") or hardening.STATE_DIR / ".lab")
    lab_ = Lab(own, cache=cache)
    _started_labs.append(lab_)
    try:
        lab_.setup()
        yield lab_
    finally:
        lab_.stop_all()
        _started_labs.remove(lab_)
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)


@pytest.fixture()
def lab_host(lab: Lab) -> Iterator[StartHost]:
    """Factory: ``lab_host("t1", profile="server")`` starts a host that this test owns."""
    names: list[str] = []

    def start(name: str, profile: str = "terminal", sensitivity: str = "medium",
              kind: str = "vm") -> LabHost:
        names.append(name)
        return lab.start(name, profile, sensitivity, kind=kind)

    yield start
    for name in reversed(names):
        if (lab.directory / "hosts" / name).exists():
            lab.stop(name)
