"""``hardening lab ...``: the lab from the command line.

Hosts keep running between invocations (QEMU is daemonized; its pidfile and QMP socket are in
the lab directory), so ``start`` in one shell and ``run`` or ``stop`` in another work.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hardening.lab.errors import LabError
from hardening.lab.lab import PROFILES, SENSITIVITIES, Lab

F = TypeVar("F", bound=Callable[..., Any])


def _errors(func: F) -> F:
    """Lab failures become one line on stderr and exit code 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LabError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None

    return wrapper  # type: ignore[return-value]


def _lab(ctx: click.Context) -> Lab:
    return Lab(ctx.obj) if ctx.obj else Lab()


@click.group()
@click.option("--lab-dir", type=click.Path(file_okay=False, path_type=Path), envvar="HARDENING_LAB_DIR",
              help="Lab directory (default: .lab in the checkout; env HARDENING_LAB_DIR).")
@click.pass_context
def lab(ctx: click.Context, lab_dir: Path | None) -> None:
    """Disposable Debian 12 hosts (emulated with QEMU) to try deploys and checks on."""
    ctx.obj = lab_dir


@lab.command()
@click.pass_context
@_errors
def setup(ctx: click.Context) -> None:
    """Install QEMU and debootstrap if missing, build the image and golden state if needed."""
    _lab(ctx).setup()


@lab.command()
@click.argument("name")
@click.option("--profile", type=click.Choice(PROFILES), default="terminal", show_default=True)
@click.option("--sensitivity", type=click.Choice(SENSITIVITIES), default="medium", show_default=True)
@click.option("--container", is_flag=True,
              help="A systemd-nspawn container (about 1 s; no USB, audit or LUKS) instead of a VM.")
@click.pass_context
@_errors
def start(ctx: click.Context, name: str, profile: str, sensitivity: str, container: bool) -> None:
    """Start host NAME (a VM from the golden state, a few seconds) and print how to reach it."""
    lab_ = _lab(ctx)
    host = lab_.start(name, profile, sensitivity, kind="container" if container else "vm")
    click.echo(f"{host.name}: ssh -F {lab_.ssh_config()} {host.name}   ({host.address}:{host.ssh_port})")


@lab.command()
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Stop every host of the lab.")
@click.pass_context
@_errors
def stop(ctx: click.Context, name: str | None, all_: bool) -> None:
    """Stop host NAME (or --all) and delete its disks."""
    if bool(name) == all_:
        raise click.UsageError("give a host NAME or --all")
    lab_ = _lab(ctx)
    if all_:
        lab_.stop_all()
    else:
        lab_.stop(str(name))


@lab.command("list")
@click.pass_context
@_errors
def list_(ctx: click.Context) -> None:
    """Running hosts: name, kind, profile, sensitivity, SSH address, MAC, machine-id."""
    for host in _lab(ctx).hosts():
        click.echo(f"{host.name}\t{host.kind}\t{host.profile}\t{host.sensitivity}"
                   f"\t{host.address}:{host.ssh_port}\t{host.mac}\t{host.machine_id}")


@lab.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write it (default: <labdir>/inventory.py).")
@click.pass_context
@_errors
def inventory(ctx: click.Context, out: Path | None) -> None:
    """Write the pyinfra inventory of the running hosts and print its path."""
    lab_ = _lab(ctx)
    lab_.ssh_config()
    click.echo(str(lab_.write_inventory(out)))


@lab.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--timeout", type=float, default=600, show_default=True)
@click.pass_context
@_errors
def run(ctx: click.Context, name: str, cmd: tuple[str, ...], timeout: float) -> None:
    """Run CMD on host NAME as the hardening account (prefix sudo yourself); exits with its code."""
    proc = _lab(ctx).host(name).run(" ".join(cmd), check=False, timeout=timeout)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    ctx.exit(proc.returncode)


@lab.group()
def usb() -> None:
    """Hot-plug USB devices into a host (QEMU's xhci controller)."""


@usb.command()
@click.argument("name")
@click.argument("device_id")
@click.option("--keyboard", is_flag=True, help="A USB keyboard instead of a storage stick.")
@click.option("--size-mb", type=int, default=16, show_default=True)
@click.pass_context
@_errors
def plug(ctx: click.Context, name: str, device_id: str, keyboard: bool, size_mb: int) -> None:
    """Plug a USB stick (or keyboard) with id and serial DEVICE_ID into host NAME."""
    host = _lab(ctx).host(name)
    if keyboard:
        host.usb_plug_keyboard(device_id)
    else:
        click.echo(str(host.usb_plug_storage(device_id, size_mb)))


@usb.command()
@click.argument("name")
@click.argument("device_id")
@click.pass_context
@_errors
def unplug(ctx: click.Context, name: str, device_id: str) -> None:
    """Unplug USB device DEVICE_ID from host NAME."""
    _lab(ctx).host(name).usb_unplug(device_id)


@lab.command()
@click.argument("name")
@click.pass_context
@_errors
def reboot(ctx: click.Context, name: str) -> None:
    """Reboot host NAME and wait until SSH works again."""
    seconds = _lab(ctx).host(name).reboot()
    click.echo(f"{name}: back after {seconds:.0f} s")


@lab.command()
@click.argument("name")
@click.argument("guest_port", type=int)
@click.pass_context
@_errors
def forward(ctx: click.Context, name: str, guest_port: int) -> None:
    """Forward a port on 127.0.0.1 to GUEST_PORT on host NAME; prints the host port."""
    click.echo(str(_lab(ctx).host(name).forward(guest_port)))


@lab.command()
@click.pass_context
@_errors
def leftovers(ctx: click.Context) -> None:
    """List what the lab would leave behind (processes, host disks, sockets); exit 1 if any."""
    found = _lab(ctx).leftovers()
    for item in found:
        click.echo(item)
    ctx.exit(1 if found else 0)
