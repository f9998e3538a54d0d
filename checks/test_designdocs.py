"""designdocs (6-18): design documents are not readable beyond their group and not served.

Every value comes from the host's one observation batch (hardening.measures.designdocs.observe):
the tree of each named path as the kernel holds it (``getfacl -R -P``: owner, group, permissions
and ACL entries, default ACLs of directories; links not followed), the owning group's members
(``getent group``, ``getent passwd``), and the configuration of each installed web server read
the way the server reads it (``nginx -T``, ``apache2ctl -S``/``-M``/``-t -D DUMP_INCLUDES``,
``lighttpd -p``). No paths in the profile: not configured. Output that cannot be read (getfacl
missing or failing, a web server's configuration that does not load) is an error, never a pass.
"""

from __future__ import annotations

from typing import Any

import pytest

from hardening.measures import designdocs as measure

NOT_CONFIGURED = ("the profile names no design-document paths: fill measures.designdocs.paths in the host's "
                  "profile (e.g. [{path: /srv/design-documents, group: design-docs}])")
SHOWN = 50  # entries of a list kept in the evidence


def _paths(profile: Any, evidence: Any) -> list[measure.DesignDocuments]:
    settings: measure.Settings = profile.measure("designdocs")
    if not settings.paths:
        # Only the agency knows where its design documents are: an empty list is missing data.
        evidence.not_configured(NOT_CONFIGURED)
    return list(settings.paths)


def _shown(items: list[str]) -> list[str]:
    return items[:SHOWN] + ([f"... and {len(items) - SHOWN} more"] if len(items) > SHOWN else [])


@pytest.mark.clause("6-18")
def test_not_readable_beyond_group(obs, profile, evidence):
    """Design documents give nothing to others nor to anyone outside their group (permissions and ACLs, whole tree)"""
    paths = _paths(profile, evidence)
    observed: dict[str, Any] = {}
    problems: list[str] = []
    unreadable: list[str] = []
    for entry in paths:
        stat = measure.stat_of(obs.run, entry)
        members = measure.members_of(obs.run, entry)
        found = measure.path_problems(entry, stat, members is not None)
        seen: dict[str, Any] = {"type": stat["type"] if stat else "absent", "group": stat["group"] if stat else None,
                                "group members": sorted(members) if members is not None else "no such group"}
        if stat is not None and stat["type"] != "symbolic link":
            try:
                tree = measure.tree_of(obs.run, entry)
            except ValueError as exc:
                unreadable.append(f"{entry.path}: {exc}")
                seen["tree"] = {"unreadable": str(exc)}
            else:
                exposed = measure.exposures(tree, entry.group, members or set(), entry.path)
                seen["files and directories judged"] = len(tree)
                found += [str(e) for e in exposed]
        observed[entry.path] = seen
        problems += found
    evidence.record(expected={e.path: f"exists, group {e.group}; in the whole tree no permission for others, no ACL "
                                      f"entry for a user outside {e.group} or another group, no default ACL "
                                      "giving either to new files" for e in paths},
                    observed={**observed, "findings": _shown(problems), "unreadable": unreadable})
    assert not problems, f"{len(problems)} finding(s): " + "; ".join(problems[:8]) + (
        f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
    if unreadable:
        raise RuntimeError("; ".join(unreadable))


@pytest.mark.clause("6-18")
def test_not_under_web_root(obs, profile, evidence):
    """No design-document path lies under, or holds, a directory an installed web server serves"""
    paths = _paths(profile, evidence)
    served = measure.web_roots(obs.run)
    found: list[str] = []
    real: dict[str, str | None] = {}
    for entry in paths:
        real[entry.path] = measure.real_path(obs.run, entry)
        overlaps = measure.served_overlaps(entry, real[entry.path], served.roots)
        if overlaps:
            found.append(measure.describe(overlaps))
    roots: dict[str, list[str]] = {}
    for root in served.roots:
        roots.setdefault(root.server, []).append(f"{root.root} ({root.source})")
    evidence.record(expected={"paths": [e.path for e in paths],
                              "not under or holding": "a directory nginx, apache2 or lighttpd serves"},
                    observed={"web servers installed": served.servers or "none",
                              "served": {s: _shown(r) for s, r in roots.items()},
                              "configuration unreadable": served.errors,
                              "paths as they really are (readlink -f)": real,
                              "served design documents": found})
    assert not found, "; ".join(found)
    if served.errors:
        raise RuntimeError("cannot tell what is served: " + "; ".join(f"{s}: {e}" for s, e in served.errors.items()))
