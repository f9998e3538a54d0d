"""usb (6-11): block USB storage, Thunderbolt/FireWire, SD/MMC and optical drivers; apply the
profile's USBGuard allow-list.

Decides from the host's observation batch (``obs``, the same commands the checks judge), so that
a redeploy repairs the running state and not only its own files:

1. ``/etc/modprobe.d/hardening-usb.conf`` (``install usb-storage /bin/false`` ...); when it
   changes, ``udevadm control --reload`` (udev caches the modprobe configuration until then) and
   ``update-initramfs -u`` (Debian's initramfs carries usb-storage and /etc/modprobe.d). A blocked
   driver that is loaded now (a stick attached before the block, or loaded by hand) is unloaded,
   whether or not the file changed, as the last step (after USBGuard blocked what it can); a
   driver in use cannot be, and the operation then fails naming it. If the file is already the
   wanted one and a block still does not take effect, another modprobe.d file overrides it: the
   deploy refuses, naming the line modprobe uses. With ``removable_media: block``, a mounted
   SD/MMC device (an eMMC root, a card) stops the host before anything is written (the block
   would leave an eMMC root unbootable); a mounted optical disc fails the host at the end, named,
   after everything else (its driver stays loaded until it is unmounted).
2. With ``usbguard: true``: the daemon configuration and the rules, both whole managed files
   (mode 0600, the daemon refuses readable ones), the rules validated with
   ``usbguard-rule-parser`` before they go live; ``usbguard.service`` enabled when it is not, and
   restarted when a file changed or the running daemon differs from the profile (not running,
   other rules enforced, a parameter set at run time such as ``usbguard set-parameter
   ImplicitPolicyTarget allow``, a device authorized against the policy). A masked unit is refused.

In use now (refused before anything of this measure changes, and so before update-initramfs):
a file system mounted (or swap in use) anywhere on the block stack of a USB disk (partition,
dm-crypt, LVM, md RAID, as lsblk shows it) that ``storage: block`` or USBGuard would cut off (or on
FireWire/Thunderbolt storage with ``block_thunderbolt_firewire``); with USBGuard, a USB network
interface that is up with an address or a route, and a USB serial console (``console=ttyUSB*``,
an active ``serial-getty@ttyUSB*``, a login session on it), when the policy would block their
device. The refusal names the device, mount point, interface or tty and what to do (allow the
device by id, ``storage: allow``, unmount). Output that cannot be read is a refusal too.

Lockout (see hardening/measures/usb.py for the policy choice): before anything changes, the
deploy judges the devices attached now (sysfs) and refuses, with the device named,
if the policy would block an attached keyboard. On a host without usbguard yet, the
configuration is written BEFORE the package is installed: Debian's postinst would otherwise
generate a policy allowing whatever is attached (an attached stick too), give the ``plugdev``
group the right to allow devices, and start the daemon with it.

Example::

    from deploys import usb
    usb.apply(profile, obs)      # inside a pyinfra deploy (deploys/main.py)
"""

from __future__ import annotations

import hashlib
from io import StringIO

from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import apt, files, server
from pyinfra.operations.util import any_changed

from hardening.measures import usb as measure
from hardening.observe import ObservationError, Observations, json_output
from hardening.profiles import Resolved

from ._rollback import USB, watch
from ._support import refuse, refuse_at_end, supported

RESTART = "systemctl restart usbguard.service"


def _block_state(settings: measure.Settings, obs: Observations) -> tuple[dict[str, str], list[str]]:
    """Per blocked module what blocks it now, and the loaded ones in unload order."""
    modules = measure.blocked_modules(settings)
    if not modules:
        return {}, []
    installs = obs.run(measure.modprobe_installs(modules))
    seen = {m: measure.block_seen(m, obs.run(measure.modprobe_dry_run(m)), installs) for m in modules}
    proc = obs.run(measure.PROC_MODULES)
    if proc.rc != 0:
        raise ObservationError(f"cannot read /proc/modules (exit {proc.rc}): {proc.stderr.strip()[:200]}")
    return seen, measure.unload_order(proc.stdout, modules)


def _mounted_media(settings: measure.Settings, obs: Observations) -> tuple[list[str], list[str]]:
    """SD/MMC and optical devices with a mounted file system (or swap), when the profile blocks them."""
    if settings.removable_media != "block":
        return [], []
    out = obs.run(measure.LSBLK_MEDIA)
    mounted = [d for d in measure.removable_media(json_output(out.rc, out.stdout, "lsblk")) if " mounted on " in d]
    discs = [d for d in mounted if ", rom)" in d]
    return [d for d in mounted if d not in discs], discs


def _observed(obs: Observations, command: str, what: str) -> str:
    out = obs.run(command)
    if out.rc != 0:
        raise ObservationError(f"{what} failed (exit {out.rc}): {out.stderr.strip()[:200]}")
    return out.stdout


def _in_use(settings: measure.Settings, obs: Observations, devices: list[measure.UsbDevice]) -> list[str]:
    """What is in use now and would be cut off by the profile's policy (see the module docstring)."""
    commands = measure.in_use_observations(settings)
    if not commands:
        return []
    paths = measure.parse_sysfs_paths(_observed(obs, measure.SYSFS_PATHS, "sysfs device paths"))
    found = []
    if measure.LSBLK_STACK in commands:
        out = obs.run(measure.LSBLK_STACK)
        external = (measure.parse_external_pci(_observed(obs, measure.EXTERNAL_PCI, "removable PCI devices"))
                    if measure.EXTERNAL_PCI in commands else ())
        found += measure.storage_in_use(json_output(out.rc, out.stdout, "lsblk"), paths, devices, settings,
                                        external)
    if settings.usbguard:
        out = obs.run(measure.IP_ADDR)
        routes = [json_output(r.rc, r.stdout, "ip -j route") for r in map(obs.run, measure.IP_ROUTES)]
        found += measure.network_in_use(json_output(out.rc, out.stdout, "ip -j addr"), routes, paths, devices,
                                        settings)
        units = obs.run(measure.SERIAL_GETTYS)
        found += measure.serial_consoles_in_use(
            _observed(obs, measure.KERNEL_CMDLINE, "reading /proc/cmdline"),
            json_output(units.rc, units.stdout, "systemctl list-units"),
            measure.parse_sessions(_observed(obs, measure.SESSIONS, "loginctl list-sessions")),
            paths, devices, settings)
    return found


def _refused_in_use(settings: measure.Settings, obs: Observations, devices: list[measure.UsbDevice]) -> bool:
    """Adds the refusing operation and returns True when the policy would cut off what the host
    uses now (a mounted USB disk, a USB network adapter, a USB serial console), or when that
    cannot be read."""
    try:
        found = _in_use(settings, obs, devices)
    except (ObservationError, ValueError) as exc:
        refuse(f"usb: cannot tell what is in use on the host, nothing changed: {exc}")
        return True
    if found:
        refuse("usb: nothing changed: in use now and the profile's policy would cut it off: " + " // ".join(found))
        return True
    return False


def _drivers(settings: measure.Settings, obs: Observations) -> list[str] | None:
    """The driver block; the blocked modules loaded now (to unload), None when it refused."""
    try:
        seen, loaded = _block_state(settings, obs)
        cards, discs = _mounted_media(settings, obs)
    except (ObservationError, ValueError) as exc:
        refuse(f"usb: {exc}")
        return None
    if cards:
        # Stops the host: an eMMC root blocked in the initramfs does not boot again.
        refuse("usb: SD/MMC storage in use: " + "; ".join(cards) + ". Blocking mmc_block would pull "
               "it from under its mounts (and leave an eMMC root unbootable): unmount it, or set "
               "removable_media: allow in the profile")
        return None
    if discs:
        refuse_at_end("usb: an optical disc is mounted: " + "; ".join(discs) + ". Its driver is blocked "
                      "but stays loaded until it is unmounted; unmount it and deploy again")
        loaded = [m for m in loaded if m not in ("sr_mod", "cdrom")]
    on_host = obs.run(measure.MODPROBE_CONF_READ)
    conflicts = measure.ineffective_blocks(settings, seen, on_host.stdout if on_host.rc == 0 else None)
    if conflicts:
        refuse(f"usb: {measure.MODPROBE_CONF} is in place but another modprobe.d file overrides it "
               "(the first install line of a module wins): " + "; ".join(conflicts))
        return None
    content = measure.modprobe_conf(settings)
    if content:
        conf = files.put(
            name="Block USB storage (and Thunderbolt, FireWire, SD/MMC, optical) drivers in /etc/modprobe.d",
            src=StringIO(content), dest=measure.MODPROBE_CONF, user="root", group="root", mode="644",
        )
    else:
        conf = files.file(name="No driver to block: remove the modprobe file",
                          path=measure.MODPROBE_CONF, present=False)
    server.shell(name="Reload udev (it caches the modprobe configuration)",
                 commands=["udevadm control --reload"], _if=conf.did_change)
    if obs.run(measure.INITRAMFS_TOOL).rc == 0:
        server.shell(name="Update the initramfs (it carries usb-storage and /etc/modprobe.d)",
                     commands=["update-initramfs -u"], _if=conf.did_change)
    return loaded


def _rules(settings: measure.Settings, obs: Observations, installed: bool) -> OperationMeta | None:
    text = measure.usbguard_rules_conf(settings)
    on_host = obs.run(measure.RULES_SHA256)
    if on_host.rc == 0 and on_host.stdout.split()[:1] == [hashlib.sha256(text.encode()).hexdigest()]:
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


def _refused_usbguard(enabled: str) -> bool:
    """Adds a failing operation and returns True if USBGuard must not be touched (the attached
    keyboards were judged before anything changed, in :func:`apply`)."""
    if enabled.startswith("masked"):
        refuse(f"usb: usbguard.service is {enabled}: unmask it (systemctl unmask usbguard.service) "
               "or set usbguard: false in the profile")
        return True
    return False


def _usbguard(settings: measure.Settings, obs: Observations, devices: list[measure.UsbDevice]) -> None:
    enabled = obs.run(measure.USBGUARD_ENABLED).stdout.strip()
    if _refused_usbguard(enabled):
        return
    installed = obs.run(measure.USBGUARD_INSTALLED).rc == 0
    files.directory(name="Directory /etc/usbguard", path="/etc/usbguard",
                    user="root", group="root", mode="755")
    daemon = files.put(
        name="USBGuard daemon configuration (block by default, IPC for root only)",
        src=StringIO(measure.usbguard_daemon_conf(settings)), dest=measure.USBGUARD_DAEMON_CONF,
        user="root", group="root", mode="600",
    )
    rules = _rules(settings, obs, installed)
    if not installed:
        apt.update(name="Update the package lists (usbguard missing)", cache_time=3600)
        apt.packages(name="Install usbguard", packages=["usbguard"], present=True, no_recommends=True)
        server.shell(name="Validate the pre-seeded USBGuard rules (usbguard-rule-parser)",
                     commands=[f"usbguard-rule-parser -f {measure.USBGUARD_RULES} >/dev/null"])
    parameters = {name: obs.run(measure.get_parameter(name)) for name in measure.RUNNING_PARAMETERS}
    reasons = measure.restart_reasons(settings, obs.run(measure.USBGUARD_ACTIVE).stdout.strip(),
                                      obs.run(measure.USBGUARD_LIST_RULES), devices, parameters)
    if reasons:
        server.shell(name="Restart usbguard: " + "; ".join(reasons), commands=[RESTART])
    else:
        changed = [op for op in (daemon, rules) if op is not None]
        server.shell(name="Restart usbguard (configuration changed)", commands=[RESTART],
                     _if=any_changed(*changed))
    if enabled != "enabled":
        server.shell(name=f"Enable usbguard at boot (was: {enabled or 'not installed'})",
                     commands=["systemctl enable usbguard.service"])


def _devices(obs: Observations) -> list[measure.UsbDevice]:
    out = obs.run(measure.SYSFS_LISTING_COMMAND)
    if out.rc != 0:
        raise ObservationError(f"USB device listing failed (exit {out.rc}): {out.stderr.strip()[:200]}")
    return measure.parse_sysfs_listing(out.stdout)


@deploy("usb")
def apply(profile: Resolved, obs: Observations) -> None:
    settings: measure.Settings = profile.measure("usb")
    if not supported("usb"):
        return
    try:
        devices = _devices(obs)
    except ObservationError as exc:
        refuse(f"usb: {exc}")
        return
    risks = measure.lockout_risks(devices, settings)
    if risks:
        refuse(f"usb: USBGuard would block the attached keyboard(s) {'; '.join(d.describe() for d in risks)}. "
               "Allow them by id (vendor/product) in the profile, or detach them.")
        return
    if _refused_in_use(settings, obs, devices):
        return
    # From here the USB policy goes live under the watchdog (deploys/_rollback.py): the block,
    # USBGuard's files, the devices' authorization, the daemon and the drivers are restored as
    # they were unless a new connection confirms the host (a USB adapter it is reached through).
    region = watch(USB)
    loaded = _drivers(settings, obs)
    if loaded is None:
        return
    if settings.usbguard:
        _usbguard(settings, obs, devices)
    elif bad := measure.violations(devices, settings):
        refuse("usb: attached and authorized against the profile, and no USBGuard in the profile to "
               f"block them: {'; '.join(d.describe() for d in bad)}. Detach them.")
        return
    if loaded:
        # Last: USBGuard has blocked what it can first (a restart deauthorizes a stick and frees
        # its driver); a driver still in use fails here, named, and never passes silently.
        server.shell(name=f"Unload blocked drivers loaded now: {', '.join(loaded)}",
                     commands=[measure.unload_command(loaded)])
    region.close()
