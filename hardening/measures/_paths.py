"""Paths a profile names with an owning group: what auth (personal-data directories, 6-1) and
designdocs (design-document directories, 6-18) share.

* :class:`GroupPath`: ``{path, group, mode}`` as a profile writes it; the mode never has world
  (other) bits.
* the observations both read, as the same command strings, so that a directory named by both
  measures is observed once in the host's batch (hardening.observe.unique): ``stat``, ``ls -ld``,
  ``getent group``, ``getent passwd``.
* :func:`group_members`: who belongs to a group as the system resolves it (the group's member
  list and every account whose primary group it is).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from hardening.measures._base import Strict
from hardening.observe import quote

GETENT_PASSWD = "getent passwd"


class GroupPath(Strict):
    path: str = Field(pattern=r"^/")
    group: str = Field(pattern=r"^[a-z_][a-z0-9_-]*$")
    mode: str = Field(default="0750", pattern=r"^0[0-7]{3}$")

    @field_validator("mode")
    @classmethod
    def _no_world_bits(cls, value: str) -> str:
        if int(value, 8) & 0o007:
            raise ValueError("the mode of a directory holding personal data or design documents may not have "
                             "world (other) bits")
        return value


def dir_stat(path: str) -> str:
    return quote("stat -c '%%F|%%U|%%G|%%a' %s", path)


def dir_listing(path: str) -> str:
    """``ls -ld``: its 11th character is ``+`` when the directory has ACL entries."""
    return quote("ls -ld %s", path)


def group_entry(group: str) -> str:
    return quote("getent group %s", group)


def parse_stat(text: str) -> dict[str, str]:
    """``stat -c '%F|%U|%G|%a'`` -> the fields (type, user, group, mode in octal digits)."""
    kind, user, group, mode = text.strip().split("|")
    return {"type": kind, "user": user, "group": group, "mode": mode}


def acl_marker(listing: str) -> str:
    return listing[10:11]


def group_members(group_line: str, passwd_text: str) -> set[str]:
    """Every account in a group: ``getent group G``'s member list and the accounts of
    ``getent passwd`` whose primary group it is (a primary group is not in the member list).

    >>> sorted(group_members("dd:x:990:alice,bob", "carol:x:1003:990::/home/carol:/bin/sh\\n"))
    ['alice', 'bob', 'carol']
    """
    fields = group_line.strip().split(":")
    if len(fields) != 4 or not fields[2].isdigit():
        raise ValueError(f"cannot read the group entry {group_line.strip()!r} (getent group)")
    members = {m for m in fields[3].split(",") if m}
    for line in passwd_text.splitlines():
        account = line.split(":")
        if len(account) >= 4 and account[3] == fields[2]:
            members.add(account[0])
    return members
