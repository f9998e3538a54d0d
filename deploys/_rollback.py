"""Lockout-safe changes: apply now, roll back automatically unless confirmed from a new connection.

A change saves, applies and restores only what the tool owns (the firewall: its own nftables
table, never the whole ruleset), so what other tools (Docker, fail2ban, libvirt) add or remove
meanwhile, also while a rollback is pending, is left as they made it.

A change that could cut the tool off from a host (the firewall now, sshd later) goes live with
a rollback armed, and becomes permanent only when the tool proves, over a NEW ssh connection,
that it can still reach the host. Reusable by any measure: describe the change as a
:class:`Change` (shell snippets) and call :func:`guarded` from the measure's deploy.

Protocol, on the target host (all as root):

1. The deploy writes, under ``/var/lib/hardening/rollback/<name>/`` (mode 0700): the payload
   files (e.g. ``desired``), and three scripts generated from the :class:`Change`:
   ``apply`` (validate, save, arm, apply), ``restore`` and ``commit``. It installs the generic
   ``/usr/local/sbin/hardening-confirm``. These files are idempotent (a second deploy: 0 changes).
2. Only when the change is needed (the measure decides from facts), the deploy runs ``apply``:

   a. ``validate`` (e.g. ``nft -c -f desired``): a broken change never goes live;
   b. under the lock ``/run/hardening/lock``: if no change of that name is pending already, save
      the current state into ``saved/`` (if one is pending, the saved state is the last
      confirmed one and is kept);
   c. write the pending marker ``/run/hardening/pending/<name>`` (unit, time, timeout) and arm
      the rollback: ``systemd-run --unit=hardening-rollback-<name> --on-active=<timeout>s
      .../restore`` (a transient timer; re-arming stops the previous one first);
   d. ``apply`` the change live (e.g. ``nft -f desired``). If that fails, ``restore`` runs at once
      and the operation fails.

   The live change does not touch the boot configuration: a reboot before the confirmation
   comes back in the previous state (the transient timer and the marker in /run vanish with it).
3. After pyinfra has finished for all hosts, the deploy runner (hardening/deploying.py) opens a
   NEW ssh connection to each host (a new TCP connection: not through an ssh ControlMaster, whose
   established connection the new ruleset still accepts) and, when ``/run/hardening/pending/``
   is not empty (the directories are world-listable, the markers hold no secret), runs
   ``sudo -n /usr/local/sbin/hardening-confirm`` (``hardening.measures.firewall.confirm_command()``).
   For each marker it runs the change's ``commit`` (e.g. install ``desired`` as
   ``/etc/nftables.conf``, then start nftables.service, which now loads exactly what is live),
   removes the marker, stops the timer and prints ``confirmed: <name>``.
   Exit status: 0 all confirmed (or nothing pending); 1 a commit failed (marker and timer are
   left, so the rollback still happens); 2 a change had been rolled back before confirmation
   (printed as ``rolled back before confirmation: <name> (<when> <result>)``, and then cleared).
4. If the confirmation cannot connect within ``timeout`` seconds (the change cut SSH), the timer
   starts ``restore``: under the lock, if the marker is still there, it restores ``saved/``,
   removes the marker, records ``/run/hardening/rolled-back/<name>`` and logs to the journal
   (``logger -t hardening``). The host is reachable again with its previous state; the runner
   reports the deploy as failed (the connection or the confirmation failed). Confirm and restore
   take the same lock and both check the marker, so exactly one of them wins.
   If restoring fails, the change's ``fallback`` runs (the firewall: keep, or re-load, the NEW
   table, so that a failed restore never leaves the host with no table, more open than before);
   the record and the log line then say ``RESTORE FAILED, kept the new state: <the error>``, and
   hardening-confirm reports it.

Choose ``timeout`` to cover the rest of the pyinfra run after the change plus the reconnection:
run lockout-prone measures last in deploys/main.py.

Example (the firewall measure)::

    change = Change(
        name="firewall", timeout=60,
        validate='nft -c -f "$DIR/desired"',
        save="nft list table inet hardening > table.nft",   # only the tool's table (or "absent")
        apply='nft -f "$DIR/desired"',                      # replaces that table alone, atomically
        restore="{ printf 'table inet hardening\\ndelete table inet hardening\\n'; cat table.nft; } "
                "> restore.nft; nft -f restore.nft",         # one transaction, that table alone
        fallback='nft list table inet hardening || nft -f "$DIR/desired"',
        commit='install -m 0644 "$DIR/desired" /etc/nftables.conf',
    )
    guarded(change, payload={"desired": ruleset_text}, needed=True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from io import StringIO

from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files, server

from hardening.measures.firewall import CONFIRM_PATH, PENDING_DIR

RUN_DIR = PENDING_DIR.rsplit("/", 1)[0]
STATE_DIR = "/var/lib/hardening/rollback"


@dataclass(frozen=True)
class Change:
    """A change applied with an automatic rollback. Each field but name/timeout is shell (sh),
    run as root with ``$DIR`` = /var/lib/hardening/rollback/<name>; ``save`` and ``restore`` run
    inside ``$DIR/saved``, ``commit`` and ``apply`` inside ``$DIR``."""

    name: str
    timeout: int
    validate: str
    save: str
    apply: str
    restore: str
    commit: str
    # Run (inside $DIR) when ``restore`` failed: must leave the host no more open than the new
    # state (e.g. keep or re-load the new firewall table). Empty: nothing to fall back on.
    fallback: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.name):
            raise ValueError(f"change name {self.name!r}: expected [a-z0-9-]")

    @property
    def unit(self) -> str:
        return f"hardening-rollback-{self.name}"

    @property
    def directory(self) -> str:
        return f"{STATE_DIR}/{self.name}"


_PRELUDE = (
    "#!/bin/sh\n"
    f'RUN="${{HARDENING_RUN:-{RUN_DIR}}}"\n'
    f'STATE="${{HARDENING_STATE:-{STATE_DIR}}}"\n'
)


def confirm_script() -> str:
    """/usr/local/sbin/hardening-confirm: confirms every pending change (see the module doc)."""
    return _PRELUDE + """\
# hardening-confirm: confirm the changes a hardening deploy applied with an automatic rollback.
# Run over a NEW ssh connection after the deploy (reaching the host proves the change did not cut
# it off). Exit 0: all confirmed or nothing pending; 1: a commit failed; 2: something was rolled back.
set -u
mkdir -p "$RUN/pending" "$RUN/rolled-back"
exec 9>"$RUN/lock"
flock 9
status=0
confirmed=0
for marker in "$RUN"/pending/*; do
    [ -f "$marker" ] || continue
    name=${marker##*/}
    if (cd "$STATE/$name" && "$STATE/$name/commit"); then
        rm -f "$marker"
        systemctl stop "hardening-rollback-$name.timer" 2>/dev/null
        rm -rf "$STATE/$name/saved"
        echo "confirmed: $name"
        confirmed=$((confirmed + 1))
    else
        echo "commit failed: $name (left pending: the rollback timer will restore it)" >&2
        status=1
    fi
done
for record in "$RUN"/rolled-back/*; do
    [ -f "$record" ] || continue
    echo "rolled back before confirmation: ${record##*/} ($(cat "$record"))"
    rm -f "$record"
    status=2
done
[ "$status" -ne 0 ] || [ "$confirmed" -ne 0 ] || echo "nothing pending"
exit "$status"
"""


def _fallback(change: Change) -> str:
    """The restore script's branch for a failed restore: run ``fallback``, say what was kept."""
    if not change.fallback:
        return ""
    return f"""\
elif (set -e; cd "$DIR"
{change.fallback}
) 2>>"$DIR/restore.err"; then
    result="RESTORE FAILED, kept the new state: $(head -c 300 "$DIR/restore.err" | tr -s '\\n ' '  ')"
"""


def restore_script(change: Change) -> str:
    """$DIR/restore: started by the rollback timer, or at once when ``apply`` fails."""
    return _PRELUDE + f"""\
# Rollback of "{change.name}": restores the state saved before an unconfirmed change. Started by
# {change.unit}.timer when the change was not confirmed within {change.timeout} s.
set -u
mkdir -p "$RUN/rolled-back"
exec 9>"$RUN/lock"
flock 9
[ -f "$RUN/pending/{change.name}" ] || exit 0
DIR="$STATE/{change.name}"
if (set -e; cd "$DIR/saved"
{change.restore}
) 2>"$DIR/restore.err"; then
    result="restored the previous state"
{_fallback(change)}else
    result="RESTORE FAILED: $(head -c 300 "$DIR/restore.err" | tr -s '\\n ' '  ')"
fi
rm -f "$RUN/pending/{change.name}"
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $result" > "$RUN/rolled-back/{change.name}"
logger -t hardening -p auth.warning "rollback {change.name}: not confirmed, $result" 2>/dev/null
echo "rollback {change.name}: $result" >&2
[ "$result" = "restored the previous state" ]
"""


def commit_script(change: Change) -> str:
    """$DIR/commit: makes the confirmed change permanent (run by hardening-confirm)."""
    return _PRELUDE + f"""\
# Commit of "{change.name}": makes the confirmed change permanent. Run by {CONFIRM_PATH}.
set -eu
DIR="$STATE/{change.name}"
cd "$DIR"
{change.commit}
"""


def apply_script(change: Change) -> str:
    """$DIR/apply: validate, save the current state, arm the rollback, apply live."""
    return _PRELUDE + f"""\
# Apply "{change.name}" live with an automatic rollback in {change.timeout} s unless confirmed.
set -eu
DIR="$STATE/{change.name}"
cd "$DIR"
if ! (set -e
{change.validate}
); then echo "{change.name}: validation failed, nothing applied" >&2; exit 1; fi
mkdir -p "$RUN/pending" "$RUN/rolled-back"
chmod 0755 "$RUN" "$RUN/pending" "$RUN/rolled-back"
exec 9>"$RUN/lock"
flock 9
if [ ! -f "$RUN/pending/{change.name}" ]; then
    rm -rf "$DIR/saved"
    mkdir -m 0700 "$DIR/saved"
    (set -e; cd "$DIR/saved"
{change.save}
)
fi
rm -f "$RUN/rolled-back/{change.name}"
systemctl stop {change.unit}.timer {change.unit}.service 2>/dev/null || true
systemctl reset-failed {change.unit}.timer {change.unit}.service 2>/dev/null || true
printf 'unit=%s\\narmed=%s\\ntimeout=%s\\n' {change.unit}.timer "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    {change.timeout} > "$RUN/pending/{change.name}"
systemd-run --quiet --unit={change.unit} --on-active={change.timeout}s \\
    --timer-property=AccuracySec=1s --description="hardening: roll back {change.name} unless confirmed" \\
    "$DIR/restore"
if ! (set -e
{change.apply}
); then
    echo "{change.name}: applying failed, restoring the previous state" >&2
    flock -u 9
    "$DIR/restore" || true
    systemctl stop {change.unit}.timer 2>/dev/null || true
    rm -f "$RUN/rolled-back/{change.name}"
    exit 1
fi
echo "{change.name}: applied; rollback in {change.timeout} s unless {CONFIRM_PATH} confirms it"
"""


def install_confirm() -> OperationMeta:
    """Install /usr/local/sbin/hardening-confirm (idempotent)."""
    return files.put(
        name=f"Install {CONFIRM_PATH}",
        src=StringIO(confirm_script()),
        dest=CONFIRM_PATH,
        user="root", group="root", mode="755",
    )


def guarded(change: Change, payload: dict[str, str], needed: bool, why: str = "") -> OperationMeta | None:
    """Write the change's scripts and payload; apply it with a rollback armed when ``needed``.

    Returns the apply operation (``None`` when not needed). ``payload`` maps file names in
    ``$DIR`` to their content (mode 0600), e.g. ``{"desired": ruleset}``. ``why``: what the measure
    observed that makes the change needed, shown in the operation's name.
    """
    install_confirm()
    files.directory(name=f"Directory {change.directory}", path=change.directory,
                    user="root", group="root", mode="700")
    scripts = {"apply": apply_script(change), "restore": restore_script(change),
               "commit": commit_script(change)}
    for name, text in scripts.items():
        files.put(name=f"{change.name}: {name} script", src=StringIO(text),
                  dest=f"{change.directory}/{name}", user="root", group="root", mode="700")
    for name, text in payload.items():
        files.put(name=f"{change.name}: {name}", src=StringIO(text),
                  dest=f"{change.directory}/{name}", user="root", group="root", mode="600")
    if not needed:
        return None
    return server.shell(
        name=f"Apply {change.name} live, rollback in {change.timeout} s unless confirmed"
             + (f" ({why[:300]})" if why else ""),
        commands=[f"{change.directory}/apply"],
    )
