"""The test lab: disposable Debian 12 hosts (emulated with QEMU) for tests, demos and benchmarks.

How it fits together (see docs/lab.md for the numbers):

* :mod:`hardening.lab.image` builds a bookworm disk image from Debian's archive with debootstrap,
  cached under the lab directory and keyed by a hash of its recipe.
* :mod:`hardening.lab.golden` boots that image once and saves the running machine
  (``migrate exec:``) as the *golden state*, keyed by image, QEMU version, arguments and machine.
* :mod:`hardening.lab.vm` starts each host from the golden state on fresh qcow2 overlays and
  gives it its own identity (machine-id, SSH host keys, hostname, clock, MAC).
* :class:`Lab` is the API the tests, the CLI and the demo use.
"""

from hardening.lab.errors import LabError
from hardening.lab.lab import Lab
from hardening.lab.vm import LabHost

__all__ = ["Lab", "LabError", "LabHost"]
