"""usblog (6-11): the USB connection monitor installed, enabled and running this version.

Decides from the host's observation batch (``obs``, what the checks judge):

1. No USB bus (``/sys/bus/usb`` absent, e.g. a container): nothing to log, nothing changes.
2. ``python3-pyudev`` installed when Debian's python3 cannot import pyudev.
3. What keeps systemd from loading our unit as written goes first: a mask (``systemctl unmask``),
   drop-ins for it and another unit file of the same name in /etc or /run (moved aside as
   ``*.hardening-<time>.bak``, which systemd does not read).
4. The program (:data:`~hardening.measures.usblog.PROGRAM`, this package's monitor) and the unit
   file; ``systemctl daemon-reload`` when the unit or its overrides changed or systemd says one is
   pending; enabled when it is not; (re)started when it does not run, runs an older program
   (started before the file last changed), or a file changed.

Example::

    from deploys import usblog
    usblog.apply(profile, obs)      # inside a pyinfra deploy (deploys/main.py)
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import apt, files, server
from pyinfra.operations.util import any_changed

from hardening.measures import usblog as measure
from hardening.observe import ObservationError, Observations
from hardening.profiles import Resolved

from ._support import refuse_at_end, supported


@deploy("usblog")
def apply(profile: Resolved, obs: Observations) -> None:
    """The monitor program and its service, enabled and running."""
    if not supported("usblog"):
        return
    try:
        bus = obs.run(measure.USB_BUS)
        if not measure.usb_bus(bus.stdout, bus.rc):
            return
        show = obs.run(measure.SHOW)
        props = measure.parse_show(show.stdout, show.rc)
        state_out = obs.run(measure.PROGRAM_STATE)
        state = measure.parse_program_state(state_out.stdout, state_out.rc)
    except (ValueError, ObservationError) as exc:
        refuse_at_end(f"usblog: cannot read the monitor's state ({exc})")
        return
    if obs.run(measure.PYUDEV).rc != 0:
        apt.update(name="Update the package lists (python3-pyudev missing)", cache_time=3600)
        apt.packages(name="Install python3-pyudev (the monitor's udev binding)", packages=[measure.PACKAGE],
                     present=True, no_recommends=True)
    overrides = _overrides(props)
    program = files.put(name="The USB connection monitor (this version's)", src=StringIO(measure.program_text()),
                        dest=measure.PROGRAM, user="root", group="root", mode="644", create_remote_dir=True)
    unit = files.put(name=f"{measure.UNIT}", src=StringIO(measure.unit_text()), dest=measure.UNIT_PATH,
                     user="root", group="root", mode="644", create_remote_dir=True)
    reload_changed: list[OperationMeta] = [unit, *overrides]
    server.shell(name="systemd reads the changed unit", commands=["systemctl daemon-reload"],
                 _if=None if props.get("NeedDaemonReload") == "yes" else any_changed(*reload_changed))
    if props.get("UnitFileState") != "enabled":
        server.shell(name=f"Enable {measure.UNIT} (was: {props.get('UnitFileState') or 'not installed'})",
                     commands=[f"systemctl enable {measure.UNIT}"])
    reasons = _restart_reasons(props, state)
    restart = f"systemctl restart {measure.UNIT}"
    if reasons:
        server.shell(name=f"(Re)start {measure.UNIT}: {'; '.join(reasons)}", commands=[restart])
    else:
        server.shell(name=f"Restart {measure.UNIT} (the monitor or its unit changed)", commands=[restart],
                     _if=any_changed(program, *reload_changed))


def _restart_reasons(props: dict[str, str], state: tuple[int, str] | None) -> list[str]:
    reasons = []
    if props.get("ActiveState") != "active" or props.get("SubState") != "running":
        reasons.append(f"not running ({props.get('ActiveState')}/{props.get('SubState')})")
    started = measure.started_at(props)
    if state is not None and started is not None and started < state[0]:
        reasons.append("it runs an older program")
    return reasons


def _overrides(props: dict[str, str]) -> list[OperationMeta]:
    """Unmask, and move aside drop-ins and other unit files of our name in /etc and /run."""
    done = []
    masked = props.get("LoadState") == "masked" or props.get("UnitFileState", "").startswith("masked")
    if masked:
        done.append(server.shell(name=f"Unmask {measure.UNIT}", commands=[f"systemctl unmask {measure.UNIT}"]))
    paths = props.get("DropInPaths", "").split()
    fragment = props.get("FragmentPath", "")
    if fragment and not masked and fragment != measure.UNIT_PATH:
        paths.append(fragment)
    local = [p for p in paths if p.startswith(("/etc/systemd/", "/run/systemd/"))]
    if local:
        moves = " && ".join(f"mv {shlex.quote(p)} {shlex.quote(p)}.hardening-\"$s\".bak" for p in local)
        done.append(server.shell(name=f"Move aside what overrides {measure.UNIT}: {', '.join(local)}",
                                 commands=[f"s=$(date +%Y%m%dT%H%M%S) && {moves}"]))
    if other := [p for p in paths if p not in local]:
        refuse_at_end(f"usblog: {', '.join(other)} override {measure.UNIT} (a package's file): remove it")
    return done
