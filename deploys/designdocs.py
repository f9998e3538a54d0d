"""designdocs (6-18): design documents not readable beyond their group, enforced; never moved.

Decides from the host's observations (the same the checks judge, hardening.measures.designdocs):

* the owning group is created when missing (a system group); a named path that is missing is
  created as a directory owned by root and the group, with the entry's mode;
* in the tree, exactly what the check finds is removed, path by path (``chmod o-rwx``,
  ``setfacl -n -x`` of the named entries and of default entries, ``setfacl -m d:o::---``,
  ``chgrp`` of a file whose own group is another group); ``-n`` keeps the mask, so the owning
  group never gets more than it had; a path that turned into a symbolic link since it was
  observed is refused, not followed. Nothing else changes, so a second deploy changes nothing.
* ``acl`` is installed when getfacl is missing; the tree is then judged by the next deploy
  (this one could not observe it), which the host's refusal says.

What it never does: move a document, or change what a web server serves. A named path under (or
holding) a directory an installed web server serves is left exactly as it is and the host is
refused at the end, naming the path, the root and the server's configuration line; so is every
path when a web server's configuration cannot be read (whether they are served is unknown), a
named path that is a symbolic link, and a file whose name cannot be written back (not UTF-8).
The other measures still run (deploys/_support.refuse_at_end).
"""

from __future__ import annotations

import shlex

from pyinfra.api import deploy
from pyinfra.operations import apt, files, server

from hardening.measures import designdocs as measure
from hardening.observe import Observations
from hardening.profiles import Resolved

from ._support import refuse_at_end, supported


@deploy("designdocs")
def apply(profile: Resolved, obs: Observations) -> None:
    """Protect each design-document path the profile names; refuse the served ones."""
    settings: measure.Settings = profile.measure("designdocs")
    if not settings.paths:
        return  # nothing named: the checks say "not configured"
    if not supported("designdocs"):
        return
    tools = obs.run(measure.ACL_TOOLS).stdout
    acl_missing = not ("getfacl" in tools and "setfacl" in tools)
    if acl_missing:
        apt.update(name="Update the package lists (getfacl/setfacl missing)", cache_time=3600)
        apt.packages(name="Install acl (getfacl, setfacl: the ACLs as the kernel holds them)", packages=["acl"])
    served = measure.web_roots(obs.run)
    if served.errors:
        refuse_at_end("designdocs: cannot tell whether the design documents are served, so none of them was changed: "
                      + "; ".join(f"{s}: {e}" for s, e in served.errors.items())
                      + " (fix the server's configuration, then deploy again)")
        return
    for entry in settings.paths:
        _protect(entry, served.roots, obs, acl_missing)


def _protect(entry: measure.DesignDocuments, roots: list[measure.WebRoot], obs: Observations,
             acl_missing: bool) -> None:
    overlaps = measure.served_overlaps(entry, measure.real_path(obs.run, entry), roots)
    if overlaps:
        refuse_at_end(f"designdocs: {measure.describe(overlaps)}. The deploy neither moves design documents "
                      f"nor changes what a web server serves, and left {entry.path} as it is: move the documents "
                      "out of the served tree (or stop serving it), then deploy again")
        return
    try:
        members = measure.members_of(obs.run, entry)
        stat = measure.stat_of(obs.run, entry)
    except ValueError as exc:  # getent or stat printed something the measure cannot read
        refuse_at_end(f"designdocs: cannot read the state of {entry.path}, so it was not changed: {exc}")
        return
    if members is None:
        server.group(name=f"designdocs: group {entry.group} (owns {entry.path})", group=entry.group, system=True)
    if stat is None:
        files.directory(name=f"designdocs: {entry.path}: directory root:{entry.group} {entry.mode}", path=entry.path,
                        user="root", group=entry.group, mode=entry.mode)
        return
    if stat["type"] == "symbolic link":
        refuse_at_end(f"designdocs: {entry.path} is a symbolic link: name the directory it points to in "
                      "measures.designdocs.paths (links are not followed)")
        return
    if stat["group"] != entry.group:
        server.shell(name=f"designdocs: {entry.path}: group {entry.group} (was {stat['group']})",
                     commands=[f"chgrp {shlex.quote(entry.group)} -- {shlex.quote(entry.path)}"])
    if acl_missing:
        refuse_at_end(f"designdocs: getfacl was missing (acl is installed by this deploy), so the permissions and ACLs "
                      f"under {entry.path} could not be judged: deploy again")
        return
    try:
        tree = measure.tree_of(obs.run, entry)
    except ValueError as exc:
        refuse_at_end(f"designdocs: cannot read the ACLs under {entry.path}, so they were not changed: {exc}")
        return
    exposed = measure.exposures(tree, entry.group, members or set(), entry.path)
    unnamable = [e for e in exposed if "\ufffd" in e.path]
    if unnamable:
        refuse_at_end(f"designdocs: {len(unnamable)} file(s) under {entry.path} give access beyond {entry.group} but "
                      f"their names are not UTF-8, so the deploy cannot name them: {measure.summary(unnamable, 3)}")
    exposed = [e for e in exposed if e not in unnamable]
    parts = measure.chunks(measure.repairs(exposed, entry.group))
    for number, part in enumerate(parts, start=1):
        which = f" (part {number} of {len(parts)})" if len(parts) > 1 else ""
        server.shell(name=f"designdocs: {entry.path}: remove access beyond group {entry.group}{which}: "
                          f"{measure.summary([e for r in part for e in r.exposures])}",
                     commands=["\n".join(r.line for r in part)])
