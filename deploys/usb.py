"""usb (6-11): block USB storage drivers and apply the profile's USBGuard allow-list.

1. ``/etc/modprobe.d/hardening-usb.conf`` (``install usb-storage /bin/false`` ...); when it
   changes, ``udevadm control --reload`` (udev caches the modprobe configuration until then) and
   ``update-initramfs -u`` (Debian's initramfs carries usb-storage and /etc/modprobe.d).
2. With ``usbguard: true``: the daemon configuration and the rules, both whole managed files
   (mode 0600, the daemon refuses readable ones), the rules validated with
   ``usbguard-rule-parser`` before they go live; ``usbguard.service`` enabled, started, and
   restarted when a file changed.

Lockout (see hardening/measures/usb.py for the policy choice): before anything touches
USBGuard, the deploy lists the devices attached now (sysfs) and refuses, with the device named,
if the policy would block an attached keyboard. On a host without usbguard yet, the
configuration is written BEFORE the package is installed: Debian's postinst would otherwise
generate a policy allowing whatever is attached (an attached stick too), give the ``plugdev``
group the right to allow devices, and start the daemon with it.

Example::

    from deploys import usb
    usb.apply(profile)           # inside a pyinfra deploy, profile: hardening.profiles.Resolved
"""

from __future__ import annotations

import hashlib
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import Sha256File
from pyinfra.facts.server import Command, Which
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from hardening.measures import usb as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from ._support import supported


def _drivers(settings: measure.Settings) -> None:
    content = measure.modprobe_conf(settings)
    if content:
        conf = files.put(
            name="Block USB storage (and Thunderbolt, FireWire) drivers in /etc/modprobe.d",
            src=StringIO(content), dest=measure.MODPROBE_CONF, user="root", group="root", mode="644",
        )
    else:
        conf = files.file(name="No driver to block: remove the modprobe file",
                          path=measure.MODPROBE_CONF, present=False)
    server.shell(name="Reload udev (it caches the modprobe configuration)",
                 commands=["udevadm control --reload"], _if=conf.did_change)
    if settings.storage == "block":
        # A stick attached before the block left the drivers loaded; unload them unless in use
        # (a mounted stick): test_storage_driver_not_loaded reports what stays loaded.
        unload = " ".join(measure.kernel_name(m) for m in measure.STORAGE_MODULES)
        server.shell(name="Unload USB storage drivers if loaded and unused",
                     commands=[f"for m in {unload}; do grep -q \"^$m \" /proc/modules && "
                               "modprobe -r \"$m\" 2>/dev/null; true; done"],
                     _if=conf.did_change)
    if host.get_fact(Which, command="update-initramfs"):
        server.shell(name="Update the initramfs (it carries usb-storage and /etc/modprobe.d)",
                     commands=["update-initramfs -u"], _if=conf.did_change)


def _refuse_lockout(settings: measure.Settings) -> bool:
    """Adds a failing operation and returns True if an attached keyboard would be blocked."""
    listing = host.get_fact(Command, command=measure.SYSFS_LISTING_COMMAND) or ""
    risks = measure.lockout_risks(measure.parse_sysfs_listing(listing), settings)
    if not risks:
        return False
    names = "; ".join(d.describe() for d in risks)
    message = (f"usb: refusing to apply USBGuard: it would block the attached keyboard(s) {names}. "
               "Allow them by id (vendor/product) in the profile, or detach them.")
    server.shell(name="usb: refuse (an attached keyboard would be blocked)",
                 commands=[f"echo {shlex.quote(message)} >&2; exit 1"])
    return True


def _rules(settings: measure.Settings, installed: bool) -> OperationMeta | None:
    text = measure.usbguard_rules_conf(settings)
    if host.get_fact(Sha256File, path=measure.USBGUARD_RULES) == hashlib.sha256(text.encode()).hexdigest():
        return None
    if not installed:
        # Pre-seed before the package exists (see the module docstring); validated after install.
        return files.put(name="USBGuard rules (before the package is installed)", src=StringIO(text),
                         dest=measure.USBGUARD_RULES, user="root", group="root", mode="600")
    new = measure.USBGUARD_RULES + ".hardening-new"
    files.put(name="Stage the USBGuard rules", src=StringIO(text), dest=new,
              user="root", group="root", mode="600")
    return server.shell(
        name="Validate the USBGuard rules (usbguard-rule-parser) and install them",
        commands=[f"usbguard-rule-parser -f {new} >/dev/null || {{ rm -f {new}; exit 1; }}",
                  f"mv -f {new} {measure.USBGUARD_RULES}"],
    )


def _usbguard(settings: measure.Settings) -> None:
    if _refuse_lockout(settings):
        return
    installed = bool(host.get_fact(Which, command="usbguard-daemon"))
    files.directory(name="Directory /etc/usbguard", path="/etc/usbguard",
                    user="root", group="root", mode="755")
    daemon = files.put(
        name="USBGuard daemon configuration (block by default, IPC for root only)",
        src=StringIO(measure.usbguard_daemon_conf(settings)), dest=measure.USBGUARD_DAEMON_CONF,
        user="root", group="root", mode="600",
    )
    rules = _rules(settings, installed)
    if not installed:
        apt.update(name="Update the package lists (usbguard missing)", cache_time=3600)
        apt.packages(name="Install usbguard", packages=["usbguard"], present=True, no_recommends=True)
        server.shell(name="Validate the pre-seeded USBGuard rules (usbguard-rule-parser)",
                     commands=[f"usbguard-rule-parser -f {measure.USBGUARD_RULES} >/dev/null"])
    changed = [op for op in (daemon, rules) if op is not None]
    systemd.service(name="Restart usbguard (configuration changed)", service="usbguard.service",
                    running=True, restarted=True, _if=any_changed(*changed))
    systemd.service(name="Enable and start usbguard", service="usbguard.service",
                    running=True, enabled=True)


@deploy("usb")
def apply(profile: Resolved, obs: Observations) -> None:
    settings: measure.Settings = profile.measure("usb")
    if not supported("usb"):
        return
    _drivers(settings)
    if settings.usbguard:
        _usbguard(settings)
