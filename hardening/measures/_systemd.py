"""Reading systemd's own output, shared by the measures that judge units."""

from __future__ import annotations

from collections.abc import Iterable


def show_units(stdout: str, rc: int, wanted: Iterable[str], command: str) -> dict[str, dict[str, str]]:
    """Unit -> properties from ``systemctl show -p Id,...`` (blocks of ``Key=value``, one per unit).

    Raises ValueError, naming ``command``, when the output is not that, systemctl failed, or a
    unit of ``wanted`` is missing: unreadable output is an error, never a pass.
    """
    units: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in [*stdout.splitlines(), ""]:
        if not line.strip():
            if current:
                units[current.get("Id", "")] = current
            current = {}
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{command}: unreadable line {line!r}")
        current[key] = value
    missing = [u for u in wanted if u not in units]
    if rc != 0 or missing:
        raise ValueError(f"{command}: exit {rc}, units missing {missing}: {stdout[:400]!r}")
    return units


def timer_problems(units: dict[str, dict[str, str]], timer: str, service: str, what: str, *,
                   enabled: bool = False) -> list[str]:
    """What keeps ``timer`` from running ``service`` (``what``: the job, for the messages), from
    :func:`show_units` of both. ``enabled``: the timer must be enabled itself (a timer pulled in by
    a target, like Debian's systemd-tmpfiles-clean.timer, is ``static``)."""
    t, unit = units[timer], units[service]
    problems = []
    if t.get("LoadState") != "loaded":
        problems.append(f"{timer} is {t.get('LoadState')}")
    else:
        if enabled and t.get("UnitFileState") != "enabled":
            problems.append(f"{timer} is {t.get('UnitFileState') or 'not enabled'}: it does not start at boot")
        if t.get("ActiveState") != "active":
            problems.append(f"{timer} is {t.get('ActiveState')}, not active (waiting)")
    if unit.get("LoadState") != "loaded":
        problems.append(f"{service} is {unit.get('LoadState')}: the timer cannot start it")
    elif unit.get("Result", "success") != "success":
        status = f", exit status {unit['ExecMainStatus']}" if "ExecMainStatus" in unit else ""
        problems.append(f"the last {what} run failed ({service}: {unit.get('Result')}{status}; "
                        f"journalctl -u {service})")
    return problems
