"""designdocs (6-18): design documents and network diagrams kept from being known outside.

6-18 asks the protection manager to keep the design documents and network diagrams (設計書、構成図等)
of the systems holding personal information from becoming known outside, through how they are
stored, copied and disposed of. Paper copies are attested (``design-documents-paper`` in
hwprofiles/base.yaml). On a host the profile names where such documents are kept,
``measures.designdocs.paths``, each with the group that owns them; the desired state, shared by
``deploys/designdocs.py`` and ``checks/test_designdocs.py``:

* **Not readable beyond the group** (:func:`exposures`), over the whole tree as the kernel holds
  it: ``getfacl -R -P`` (Debian's acl package: permissions and ACL entries from the kernel,
  symbolic links not followed). No file or directory gives others any permission; no ACL entry
  names a user outside the owning group (``getent group`` members and the accounts whose primary
  group it is; root and the file's owner have access anyway) or a group other than the owning
  group; a file whose own group is another group gives that group nothing (root's group, which
  a file an administrator copies in gets, counts like root); a directory's default ACL gives none
  of these to the files created in it later. An entry counts with its own
  permissions even while the mask hides them: ``chmod g+r`` raises the mask and revives it.
  The named path itself exists, is not a symbolic link and belongs to the owning group.
* **Not under a web root** (:func:`served_overlaps`): no path lies under a directory an
  installed web server serves, nor holds one, as named and as ``readlink -f`` resolves it. What
  is served is read the way each server reads its configuration (hardening.measures._webroots:
  ``nginx -T``, ``apache2ctl -S``/``-M``/``-t -D DUMP_INCLUDES``, ``lighttpd -p``). A server
  that is not installed is absent; one that is installed but whose configuration cannot be read
  is an error, never "not served". A root built from a variable keeps its fixed part
  (``root /srv/$host/htdocs`` serves ``/srv/*/htdocs``; a capture like ``$1`` may hold a slash,
  so everything below the part before it counts as served). Symbolic links inside a served tree
  that point at the documents are not followed (a known limit, docs/measures.md).

No paths named is "not configured" (only the agency knows where its documents are). The shipped
``server`` profile names the store the deploy provides, ``/srv/design-documents`` (group
``design-docs``): a missing path is created as a directory owned by root and the group with the
entry's ``mode``. The deploy removes what the checks find (``chmod o-rwx``, ``setfacl -x`` of the
entries, ``chgrp`` to the owning group), decided from the observed tree, and installs ``acl``
when getfacl is missing. It never moves a document: a path under a web root (or a web
configuration it cannot read) makes it refuse for the host, naming the path and the root, and
leave that path as it is (what the server serves, and where the documents go, is a person's
decision).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from hardening.measures import _webroots
from hardening.measures._base import Measure, Strict
from hardening.measures._paths import GETENT_PASSWD, GroupPath, dir_stat, group_entry, group_members, parse_stat
from hardening.measures._webroots import Run, WebRoot, overlaps
from hardening.measures._webroots import Served as Served
from hardening.measures._webroots import WebConfigError as WebConfigError
from hardening.measures._webroots import web_roots as web_roots
from hardening.observe import quote

# Where system files live: a design-document path there would make the deploy change the
# permissions of the system itself (the profile refuses it).
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin",
                "/sys", "/usr")

STORE = "/srv/design-documents"  # the store the shipped server profile names (hwprofiles/server.yaml)


class DesignDocuments(GroupPath):
    """A directory (or file) of design documents and network diagrams and the group that owns them.

    ``mode`` is the directory's mode when the deploy creates it (the path is missing); an existing
    one keeps its mode, less any permission for others.
    """

    @field_validator("path")
    @classmethod
    def _not_a_system_tree(cls, value: str) -> str:
        if posixpath.normpath(value) != value or value.startswith("//"):
            raise ValueError(f"{value!r} is not a normalised absolute path (no '..', '.', '//' or trailing '/')")
        if value.count("/") < 2:
            raise ValueError(f"{value!r} is a top-level directory: name the directory that holds the documents")
        if any(value == tree or value.startswith(tree + "/") for tree in SYSTEM_TREES):
            raise ValueError(f"{value!r} is inside a system tree ({', '.join(SYSTEM_TREES)}): the deploy would "
                             "change system files")
        return value


class Settings(Strict):
    # Where this host keeps design documents, each with its owning group, e.g.
    # [{path: /srv/design-documents, group: design-docs}]. Empty: not configured.
    paths: list[DesignDocuments] = Field(default_factory=list)

    @field_validator("paths")
    @classmethod
    def _no_nesting(cls, value: list[DesignDocuments]) -> list[DesignDocuments]:
        for i, a in enumerate(value):
            for j, b in enumerate(value):
                if i != j and (a.path == b.path or b.path.startswith(a.path + "/")):
                    raise ValueError(f"{b.path} is {'named twice' if a.path == b.path else 'inside ' + a.path}: "
                                     "each tree once, with one owning group")
        return value


# -- ACLs as getfacl prints them ------------------------------------------------------------------

PERMS = re.compile(r"^[r-][w-][x-]$")
ENTRY = re.compile(r"^(?P<default>default:)?(?P<tag>user|group|mask|other):(?P<who>[^:]*):(?P<perms>[^\s]+)"
                   r"(?:\s+#effective:(?P<effective>[r-][w-][x-]))?$")


@dataclass(frozen=True)
class AclEntry:
    tag: str          # user, group, mask, other
    who: str          # "" for the owner's, the owning group's, the mask and other
    perms: str        # "r-x"
    default: bool = False

    def __str__(self) -> str:
        return f"{'default:' if self.default else ''}{self.tag}:{self.who}:{self.perms}"


@dataclass(frozen=True)
class FileAcl:
    """One file or directory of ``getfacl -R -P -p`` output."""

    path: str
    owner: str
    group: str
    entries: tuple[AclEntry, ...]

    def get(self, tag: str, who: str = "", default: bool = False) -> AclEntry | None:
        return next((e for e in self.entries if (e.tag, e.who, e.default) == (tag, who, default)), None)

    def effective(self, entry: AclEntry) -> str:
        """What the kernel grants through ``entry`` now (named entries and the group are masked)."""
        mask = self.get("mask", default=entry.default)
        if mask is None or entry.tag in ("mask", "other") or (entry.tag == "user" and not entry.who):
            return entry.perms
        return "".join(p if m != "-" else "-" for p, m in zip(entry.perms, mask.perms, strict=True))


def unescape(name: str) -> str:
    """A name as getfacl prints it (``\\ooo`` for a byte that is not printable or is white space,
    ``\\\\`` for a backslash) -> the name (UTF-8; an undecodable byte becomes U+FFFD)."""
    out = bytearray()
    i = 0
    while i < len(name):
        if name[i] == "\\" and name[i + 1:i + 2] == "\\":
            out += b"\\"
            i += 2
        elif name[i] == "\\" and re.fullmatch(r"[0-7]{3}", name[i + 1:i + 4]):
            out.append(int(name[i + 1:i + 4], 8))
            i += 4
        else:
            out += name[i].encode()
            i += 1
    return out.decode("utf-8", errors="replace")


def parse_getfacl(text: str) -> list[FileAcl]:
    """``getfacl -R -P -p`` output -> one FileAcl per file; ValueError on anything else."""
    found: list[FileAcl] = []
    for number, block in enumerate(b for b in text.split("\n\n") if b.strip()):
        lines = block.strip("\n").splitlines()
        head = {}
        body = []
        for line in lines:
            if line.startswith("# "):
                key, sep, value = line[2:].partition(": ")
                if not sep or key not in ("file", "owner", "group", "flags"):
                    raise ValueError(f"getfacl output, record {number + 1}: unexpected line {line!r}")
                head[key] = value
            else:
                body.append(line)
        if not {"file", "owner", "group"} <= set(head):
            raise ValueError(f"getfacl output, record {number + 1}: no '# file', '# owner' or '# group' line "
                             f"({block[:200]!r})")
        entries = []
        for line in body:
            match = ENTRY.match(line)
            if not match or not PERMS.match(match["perms"]):
                raise ValueError(f"getfacl output for {unescape(head['file'])}: cannot read {line!r}")
            entries.append(AclEntry(match["tag"], unescape(match["who"]), match["perms"], bool(match["default"])))
        acl = FileAcl(unescape(head["file"]), unescape(head["owner"]), unescape(head["group"]), tuple(entries))
        if any(acl.get(tag) is None for tag in ("user", "group", "other")):
            raise ValueError(f"getfacl output for {acl.path}: no user::, group:: or other:: entry")
        found.append(acl)
    return found


@dataclass(frozen=True)
class Exposure:
    """One way a file of the tree is open beyond its owning group, and what removes it."""

    path: str
    kind: str   # other, user, group, file-group, default-other, default-user, default-group
    who: str
    perms: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}: {self.why}"

    @property
    def acl_spec(self) -> str:
        """The ``setfacl -x`` spec of a named entry (``d:u:bob``)."""
        if self.kind not in ("user", "group", "default-user", "default-group"):
            raise ValueError(f"{self.kind} is not a named ACL entry")
        prefix = "d:" if self.kind.startswith("default-") else ""
        return f"{prefix}{'u' if self.kind.endswith('user') else 'g'}:{self.who}"


def _masked(acl: FileAcl, entry: AclEntry) -> str:
    eff = acl.effective(entry)
    return f" (the mask hides part of it now: effective {eff})" if eff != entry.perms else ""


def exposures(tree: list[FileAcl], group: str, members: set[str], top: str) -> list[Exposure]:
    """Everything in the tree that gives a permission beyond the owning group (see the module doc).

    ``top``: the named path, whose own group is judged by :func:`path_problems` instead."""
    found: list[Exposure] = []
    for acl in tree:
        for entry in acl.entries:
            if entry.perms == "---" or entry.tag == "mask":
                continue
            kind = ("default-" if entry.default else "") + entry.tag
            if entry.tag == "other":
                why = (f"default:other::{entry.perms} (files created here would give others {entry.perms})"
                       if entry.default else f"others have {entry.perms} (other::{entry.perms})")
                found.append(Exposure(acl.path, kind, "", entry.perms, why))
            elif entry.tag == "user" and entry.who and entry.who not in members | {"root", acl.owner}:
                why = (f"{entry} ({entry.who} is not in group {group}"
                       + ("; files created here would give it" if entry.default else "") + ")"
                       + ("" if entry.default else _masked(acl, entry)))
                found.append(Exposure(acl.path, kind, entry.who, entry.perms, why))
            elif entry.tag == "group" and entry.who and entry.who not in (group, "root"):
                why = (f"{entry} (a group other than {group}"
                       + ("; files created here would give it" if entry.default else "") + ")"
                       + ("" if entry.default else _masked(acl, entry)))
                found.append(Exposure(acl.path, kind, entry.who, entry.perms, why))
            elif (entry.tag == "group" and not entry.who and not entry.default and acl.group not in (group, "root")
                  and acl.path != top):
                why = f"belongs to group {acl.group}, which has {entry.perms}, not to {group}{_masked(acl, entry)}"
                found.append(Exposure(acl.path, "file-group", acl.group, entry.perms, why))
    return found


def path_problems(entry: DesignDocuments, stat: dict[str, str] | None, group_exists: bool) -> list[str]:
    """The named path itself: the group exists, the path exists, is no symbolic link, belongs to it."""
    problems = [] if group_exists else [f"group {entry.group} does not exist"]
    if stat is None:
        return [*problems, f"{entry.path} does not exist"]
    if stat["type"] == "symbolic link":
        return [*problems, f"{entry.path} is a symbolic link: name the directory it points to (links are not "
                           "followed)"]
    if stat["group"] != entry.group:
        problems.append(f"{entry.path} belongs to group {stat['group']}, not {entry.group}")
    return problems


@dataclass(frozen=True)
class Repair:
    """What the deploy runs for one path: a line of shell removing exactly its exposures."""

    path: str
    exposures: tuple[Exposure, ...]
    line: str


def repairs(found: list[Exposure], group: str) -> list[Repair]:
    """One :class:`Repair` per path, removing what :func:`exposures` found there (nothing else).

    ``setfacl -n`` keeps the mask as it is (removing an entry must not raise what the owning group
    gets). A path that became a symbolic link since it was observed is refused, not followed."""
    per_path: dict[str, list[Exposure]] = {}
    for exposure in found:
        per_path.setdefault(exposure.path, []).append(exposure)
    out = []
    for path, items in per_path.items():
        kinds = {e.kind for e in items}
        steps = []
        if "file-group" in kinds:
            steps.append(f'chgrp {shlex.quote(group)} -- "$p"')
        if "other" in kinds:
            steps.append('chmod o-rwx -- "$p"')
        named = sorted({e.acl_spec for e in items if e.kind in ("user", "group", "default-user", "default-group")})
        if named:
            steps.append(f'setfacl -n -x {shlex.quote(",".join(named))} -- "$p"')
        if "default-other" in kinds:
            steps.append('setfacl -n -m d:o::--- -- "$p"')
        line = (f'p={shlex.quote(path)}; if [ -L "$p" ]; then echo "refused: $p is now a symbolic link" >&2; '
                f"exit 1; fi; {' && '.join(steps)} || exit 1")
        out.append(Repair(path, tuple(items), line))
    return out


def chunks(items: list[Repair], limit: int = 60_000) -> list[list[Repair]]:
    """Repairs grouped so that each group's script stays well under the kernel's 128 KiB limit
    for one argument (pyinfra sends a command as one)."""
    out: list[list[Repair]] = []
    size = 0
    for item in items:
        if not out or size + len(item.line) > limit:
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item.line) + 1
    return out


def summary(found: list[Exposure], limit: int = 8) -> str:
    shown = "; ".join(str(e) for e in found[:limit])
    return shown + (f"; and {len(found) - limit} more" if len(found) > limit else "")


# -- observations (one batch per host; the check and the deploy read the same) -----------------------

ACL_TOOLS = "command -v getfacl setfacl"


def tree_acl(path: str) -> str:
    """Every file and directory of the tree with its owner, group and ACL as the kernel holds
    them; symbolic links are not followed (``-P``)."""
    return quote("getfacl -R -P -p -- %s", path)


def canonical(path: str) -> str:
    return quote("readlink -f -- %s", path)


def observe(profile: Any) -> list[str]:
    """The commands this measure's checks and deploy read, in the host's one observation batch
    (nothing when the profile names no paths: the checks are then not configured)."""
    settings: Settings = profile.measure("designdocs")
    if not settings.paths:
        return []
    per_path = [c for e in settings.paths
                for c in (dir_stat(e.path), canonical(e.path), tree_acl(e.path), group_entry(e.group))]
    return [ACL_TOOLS, GETENT_PASSWD, *per_path, *_webroots.OBSERVE]


# -- reading the observations (the check and the deploy call these) ---------------------------------


@dataclass(frozen=True)
class Overlap:
    path: str
    seen_as: str     # the path compared (the named one, or where it really is)
    root: WebRoot
    relation: str    # under, contains


def describe(overlaps: list[Overlap]) -> str:
    """One path's overlaps for a person: ``P is served: under nginx's root R (file: line); ...``."""
    if not overlaps:
        return ""
    path = overlaps[0].path
    parts = []
    for o in overlaps:
        really = "" if o.seen_as == o.path else f" (really {o.seen_as})"
        verb = "under" if o.relation == "under" else "holds"
        parts.append(f"{verb} {o.root.server}'s web root {o.root.root}{really} ({o.root.source})")
    return f"{path} is served: " + "; ".join(parts)


def served_overlaps(entry: DesignDocuments, real: str | None, roots: Iterable[WebRoot]) -> list[Overlap]:
    """The web roots a named path (and where it really is, ``readlink -f``) lies under or holds."""
    out = []
    for seen in dict.fromkeys(p for p in (entry.path, real) if p):
        for root in roots:
            relation = overlaps(seen, root)
            if relation:
                out.append(Overlap(entry.path, seen, root, relation))
    return out


def real_path(run: Run, entry: DesignDocuments) -> str | None:
    out = run(canonical(entry.path))
    return out.stdout.strip() or None if out.rc == 0 else None


def stat_of(run: Run, entry: DesignDocuments) -> dict[str, str] | None:
    out = run(dir_stat(entry.path))
    return parse_stat(out.stdout) if out.rc == 0 else None


def members_of(run: Run, entry: DesignDocuments) -> set[str] | None:
    """The owning group's members, None when the group does not exist."""
    out = run(group_entry(entry.group))
    return group_members(out.stdout, run(GETENT_PASSWD).stdout) if out.rc == 0 else None


def tree_of(run: Run, entry: DesignDocuments) -> list[FileAcl]:
    """The tree's ACLs; ValueError when getfacl is missing, failed or printed something else."""
    if "getfacl" not in run(ACL_TOOLS).stdout:
        raise ValueError("getfacl is not installed (Debian package acl): the ACLs cannot be read")
    out = run(tree_acl(entry.path))
    if out.rc != 0:
        raise ValueError(f"getfacl -R {entry.path} failed (exit {out.rc}): {out.stderr.strip()[-300:]}")
    tree = parse_getfacl(out.stdout)
    if not tree or tree[0].path != entry.path:
        raise ValueError(f"getfacl -R {entry.path} did not list {entry.path} first: {out.stdout[:200]!r}")
    return tree


MEASURE = Measure(
    name="designdocs",
    title="design documents and network diagrams kept within their group, not served by a web server",
    clauses=("6-18",),
    order=25,
    settings=Settings,
    observe=observe,
)
