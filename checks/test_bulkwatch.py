"""bulkwatch (6-5): the monitor runs with the profile's paths, threshold and window.

Read from the host: the monitor's configuration, program and unit files as they are, whether
auditd's af_unix dispatcher is on and its socket there, the unit from ``systemctl show`` (running,
enabled, started after its files last changed). The warnings of the last day are read from the
journal (priority warning, identifier hardening-bulkwatch) and recorded with the verdict.
"""

from __future__ import annotations

import pytest

from hardening.measures import audit
from hardening.measures import bulkwatch as measure


@pytest.mark.clause("6-5")
def test_monitor_running(obs, profile, evidence):
    """The bulk-read monitor runs with the profile's paths, threshold and window"""
    status = obs.run(audit.STATUS)
    reason = audit.no_audit(status.stdout, status.stderr)
    if reason:
        evidence.not_applicable(reason)
    want = measure.config(profile)
    if not want["paths"]:
        evidence.not_configured("hwprofiles: measures.auth.personal_data (the personal-data directories) or "
                                "measures.audit.paths: the monitor sums reads of those paths")
    files = measure.parse_files(obs.run(measure.FILES).stdout)
    out = obs.run(measure.UNITS)
    unit = measure.parse_units(out.stdout, out.rc)
    warnings = measure.parse_warnings(obs.run(measure.WARNINGS).stdout)
    problems = measure.problems(profile, files, unit)
    evidence.record(expected={"config": want, "unit": f"{measure.UNIT} active, enabled", "af_unix": "active"},
                    observed={"config": measure.config_summary(files[measure.CONFIG_PATH][1]),
                              "unit": {k: unit.get(k, "") for k in ("ActiveState", "UnitFileState",
                                                                    "ActiveEnterTimestamp")},
                              "socket": files["socket"][0],
                              "warnings of the last day (recorded, not judged)": warnings})
    assert not problems, "; ".join(problems)
