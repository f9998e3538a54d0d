"""Shared deploy helpers: validated files (sshd drop-ins, sudoers) that never go live broken.

Each measure owns one sshd drop-in, ``/etc/ssh/sshd_config.d/10-hardening-<measure>.conf``
(text from ``hardening.measures.<measure>.sshd_dropin``). :func:`sshd_dropin` installs it with
:func:`validated_file`:

1. nothing happens when the live file already has the wanted content, owner and mode (a second
   deploy reports 0 changes; ``--dry`` lists only real changes, ``--diff`` shows them);
2. otherwise the text is uploaded beside the target under a name no include matches
   (``.<name>.hardening-new``: sshd includes ``*.conf``, sudo skips names with a dot);
3. the candidate is validated: for sshd, a copy of the whole ``/etc/ssh`` tree gets the candidate
   under its final name and ``sshd -t -f <copy>/sshd_config`` must pass (so the first-match order
   of all drop-ins and the main file is what is tested); for sudoers, ``visudo -cf``;
4. only then it is renamed over the target (same directory: atomic). A candidate that fails is
   removed and the operation fails with the validator's message: the live file is untouched.

After the drop-in changed, :func:`reload_sshd` reloads sshd (``systemctl try-reload-or-restart
ssh.service``: a reload when it runs, nothing when it does not, e.g. socket activation where each
connection reads the configuration anew). A reload does not end open sessions.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
from collections.abc import Generator
from io import StringIO

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import File, FileContents, Sha256File
from pyinfra.facts.server import Command
from pyinfra.operations import server
from pyinfra.operations.util.files import generate_color_diff

from hardening.measures import _sshd

SUFFIX = ".hardening-new"


def candidate_path(dest: str) -> str:
    """Where the new text waits for validation: same directory, a name no include matches."""
    directory, name = posixpath.split(dest)
    return posixpath.join(directory, f".{name}{SUFFIX}")


def sshd_validate_script(candidate: str, dest: str, root: str = "/etc/ssh") -> str:
    """Shell that exits 0 when sshd accepts a copy of ``root`` (/etc/ssh) with the candidate in
    place as ``dest``; Include lines pointing into ``root`` are pointed into the copy."""
    rel = shlex.quote(posixpath.relpath(dest, root))
    return (
        f'T=$(mktemp -d) && trap \'rm -rf "$T"\' EXIT && cp -a {shlex.quote(root)} "$T/ssh" && '
        f'cp {shlex.quote(candidate)} "$T/ssh/"{rel} && '
        f"sed -i -E 's#^([[:space:]]*[Ii]nclude[[:space:]]+){root}/#\\1'\"$T\"'/ssh/#' "
        '"$T/ssh/sshd_config" "$T"/ssh/sshd_config.d/*.conf && '
        # Without an absolute Include of sshd_config.d the candidate would not be read: refuse.
        'if ! grep -qE "^[[:space:]]*[Ii]nclude[[:space:]]+$T/ssh/sshd_config.d/" "$T/ssh/sshd_config"; '
        f'then echo "{root}/sshd_config does not Include {root}/sshd_config.d/*.conf" >&2; false; fi && '
        "install -d -m 0755 /run/sshd && "
        'sshd -t -f "$T/ssh/sshd_config"'
    )


def sudoers_validate_script(candidate: str, dest: str) -> str:
    """Shell that exits 0 when visudo accepts the candidate."""
    return f"visudo -cf {shlex.quote(candidate)}"


def install_script(candidate: str, dest: str, validate: str) -> str:
    """Validate in a subshell; on success rename over ``dest``, else remove the candidate."""
    cand, target = shlex.quote(candidate), shlex.quote(dest)
    return (f"( {validate} ) || {{ rc=$?; rm -f {cand}; "
            f"echo \"refused {dest}: the validator failed (exit $rc), live file unchanged\" >&2; "
            f"exit 1; }}; mv -f {cand} {target}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _show_diff(dest: str, text: str, exists: bool) -> None:
    current = [line + "\n" for line in (host.get_fact(FileContents, path=dest) or [])] if exists else []
    host.log(f"Will {'modify' if exists else 'create'} {dest}", logger.info)
    for line in generate_color_diff(current, text.splitlines(keepends=True)):
        logger.info("  %s", line)


@operation()
def validated_file(text: str, dest: str, kind: str, mode: str = "644",
                   user: str = "root", group: str = "root") -> Generator[object, None, None]:
    """Install ``text`` at ``dest`` only after the validator for ``kind`` (sshd | sudoers)
    accepts it; no change when the live file already matches (content, owner, mode)."""
    validators = {"sshd": sshd_validate_script, "sudoers": sudoers_validate_script}
    live = host.get_fact(File, path=dest)
    same = bool(live) and host.get_fact(Sha256File, path=dest) == _digest(text)
    if same and live and live["user"] == user and live["group"] == group \
            and live["mode"] == int(mode):
        return
    if state.config.DIFF:
        _show_diff(dest, text, bool(live))
    candidate = candidate_path(dest)
    yield FileUploadCommand(StringIO(text), candidate,
                            remote_temp_filename=host.get_temp_filename(candidate))
    yield StringCommand(f"chown {user}:{group} {shlex.quote(candidate)} && "
                        f"chmod {mode} {shlex.quote(candidate)}")
    yield StringCommand(install_script(candidate, dest, validators[kind](candidate, dest)))


def sshd_dropin(measure: str, text: str) -> OperationMeta:
    """Install the measure's sshd drop-in, validated with ``sshd -t`` before it goes live."""
    dest = _sshd.dropin_path(measure)
    return validated_file(name=f"sshd drop-in {dest} (validated with sshd -t)",
                          text=text, dest=dest, kind="sshd", mode="644")


def reload_sshd(measure: str, changed: OperationMeta) -> OperationMeta:
    """Reload sshd only when ``changed`` changed something."""
    return server.shell(name=f"Reload sshd after the {measure} drop-in changed",
                        commands=["systemctl try-reload-or-restart ssh.service"],
                        _if=changed.did_change)


def connecting_user() -> tuple[str, list[str]]:
    """The account the deploy connects as (before sudo) and its groups."""
    out = host.get_fact(Command, 'u="${SUDO_USER:-$(id -un)}"; echo "$u"; id -Gn "$u"') or ""
    lines = out.splitlines()
    user = lines[0].strip() if lines else ""
    groups = lines[1].split() if len(lines) > 1 else []
    return user, groups
