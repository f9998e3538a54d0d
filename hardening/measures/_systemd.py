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
