"""Lockout-safe changes: apply now, roll back automatically unless confirmed from a new connection.

Every change that can cut the tool off from a host or break its logins goes live under a
watchdog ON THE HOST: the firewall (its own nftables table), sshd (its configuration files),
PAM (the common-* files and what pam-auth-update keeps), sudoers, and the USB policy (modprobe
block, USBGuard). Each is a :class:`Change` named after the resource. It becomes permanent only
when the tool proves, over a NEW ssh connection as the deploy account, with sudo (and for PAM
a fresh authentication through the new stack, the change's ``probe``), that the host is still
reachable; otherwise the host restores the state it had before, by itself.

Two shapes:

* a **guarded change** (:func:`guarded`; the firewall): the change is one script, applied by
  ``apply`` under the watchdog, and made permanent by ``commit`` (the boot configuration is
  written only then);
* a **watched region** (:func:`watch`; sshd, PAM, sudoers, USB): the measure's own pyinfra
  operations make the change; :func:`watch` first saves the files the resource lives in (and
  its running state, ``save_extra``) and arms the watchdog, only when an operation of the
  region will change something (decided from pyinfra's plan, so a compliant host reports "no
  change"). Those files change on disk before the confirmation, so the change is
  ``persistent``: a host that restarts before it was confirmed restores them at boot
  (``hardening-rollback-boot.service``, before sshd and logins start).

A change saves, applies and restores only what the tool owns or edits (the firewall: its own
nftables table, never the whole ruleset; sshd: /etc/ssh/sshd_config and sshd_config.d), so what
other tools add meanwhile elsewhere is left as they made it.

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

   A guarded change does not touch the boot configuration before its commit: a reboot before
   the confirmation comes back in the previous state (the transient timer and the marker in /run
   vanish with it). A persistent change (a watched region) also leaves
   ``<STATE>/<name>/pending-at-boot``: at the next boot, ``hardening-confirm --boot`` (run by
   ``hardening-rollback-boot.service``, before sshd, nftables, usbguard and logins) restores it.
   While the host's deploy still runs, the timer is armed for ``timeout + allowance`` (later
   measures may install packages for minutes); the last operation of the host's run
   (:func:`finish`, ``hardening-confirm --rearm``) re-arms every pending timer to ``timeout``
   from that moment: the confirmation window is counted from the end of the host's run.
3. After pyinfra has finished for all hosts, the deploy runner (hardening/deploying.py) opens a
   NEW ssh connection to each host (a new TCP connection: not through an ssh ControlMaster, whose
   established connection the new ruleset still accepts) and, when ``/run/hardening/pending/``
   is not empty (the directories are world-listable, the markers hold no secret), runs
   ``sudo -n /usr/local/sbin/hardening-confirm`` (``hardening.measures.firewall.confirm_command()``).
   For each marker it first runs the change's ``probe`` if it has one (PAM: a fresh
   authentication through the new stack); a probe that fails restores the change AT ONCE and is
   reported as rolled back. Then it runs ``commit`` (e.g. install ``desired`` as
   ``/etc/nftables.conf``, then start nftables.service, which now loads exactly what is live),
   removes the markers, stops the timer and prints ``confirmed: <name>``.
   Exit status: 0 all confirmed (or nothing pending); 1 a commit failed (marker and timer are
   left, so the rollback still happens); 2 a change had been rolled back before confirmation
   (printed as ``rolled back before confirmation: <name> (<when> <result>)``, and then cleared)
   or its probe failed. A host whose pyinfra run failed part-way (an operation of a watched
   region failed, or its connection was lost) is never confirmed: the runner runs
   ``hardening-confirm --abort`` there, which restores every pending change at once (never
   half of each), or, when it cannot reach the host, the timer does.
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

The runner's deadline for a host is the earliest moment one of its timers fires, read from
pyinfra's progress lines for the operations named ``Apply NAME live, rollback in N s``.
When that deadline passes unconfirmed, the runner waits for the rollback and reconnects once
more to show the host reachable in its previous state (``rolled back before confirmation``).

Fault injection for the lab (tests/test_lab_faults.py): ``HARDENING_LAB_FAULT=<name>:<fault>``
in the deploy's environment adds one faulty operation inside the watched region ``<name>`` on
hosts whose inventory data has ``lab_host: True`` (see :data:`FAULTS`); never on other hosts.

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

import os
import re
import shlex
from dataclasses import dataclass, field
from io import StringIO

from pyinfra import host, logger, state
from pyinfra.api.operation import OperationMeta
from pyinfra.context import ctx_host
from pyinfra.operations import files, server

from hardening.measures.firewall import CONFIRM_PATH, PENDING_DIR

RUN_DIR = PENDING_DIR.rsplit("/", 1)[0]
STATE_DIR = "/var/lib/hardening/rollback"
BOOT_UNIT = "hardening-rollback-boot.service"
BOOT_UNIT_PATH = f"/etc/systemd/system/{BOOT_UNIT}"


@dataclass(frozen=True)
class Change:
    """A change applied with an automatic rollback. Each field but name/timeout/allowance/
    persistent is shell (sh), run as root with ``$DIR`` = /var/lib/hardening/rollback/<name>;
    ``save`` and ``restore`` run inside ``$DIR/saved``, ``commit``, ``apply`` and ``probe``
    inside ``$DIR``."""

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
    # Run by hardening-confirm before the commit: failing restores the change at once.
    probe: str = ""
    # The change is on disk before its confirmation: restored at boot when still pending.
    persistent: bool = False
    # Seconds added to the timer while the host's deploy runs (re-armed to ``timeout`` at its end).
    allowance: int = 0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.name):
            raise ValueError(f"change name {self.name!r}: expected [a-z0-9-]")

    @property
    def unit(self) -> str:
        return f"hardening-rollback-{self.name}"

    @property
    def directory(self) -> str:
        return f"{STATE_DIR}/{self.name}"

    @property
    def armed_for(self) -> int:
        return self.timeout + self.allowance


_PRELUDE = (
    "#!/bin/sh\n"
    f'RUN="${{HARDENING_RUN:-{RUN_DIR}}}"\n'
    f'STATE="${{HARDENING_STATE:-{STATE_DIR}}}"\n'
)

# Arm (or re-arm) the rollback timer of change "$name" for "$secs" seconds (shell function).
_ARM = """\
arm() {  # arm NAME SECONDS
    systemctl stop "hardening-rollback-$1.timer" "hardening-rollback-$1.service" 2>/dev/null || true
    systemctl reset-failed "hardening-rollback-$1.timer" "hardening-rollback-$1.service" 2>/dev/null || true
    systemd-run --quiet --unit="hardening-rollback-$1" --on-active="$2s" \\
        --timer-property=AccuracySec=1s --description="hardening: roll back $1 unless confirmed" \\
        "$STATE/$1/restore"
}
"""


def confirm_script() -> str:
    """/usr/local/sbin/hardening-confirm: confirms every pending change (see the module doc).

    ``--rearm``: re-arm every pending timer to its change's timeout from now (end of the run);
    ``--abort REASON``: restore every pending change now (the host's run failed part-way);
    ``--boot``: restore what a restart left unconfirmed (hardening-rollback-boot.service)."""
    return _PRELUDE + _ARM + """\
# hardening-confirm: confirm the changes a hardening deploy applied with an automatic rollback.
# Run over a NEW ssh connection after the deploy (reaching the host proves the change did not cut
# it off). Exit 0: all confirmed or nothing pending; 1: a commit failed; 2: something was rolled back.
set -u
mode=${1:-confirm}
mkdir -p "$RUN/pending" "$RUN/rolled-back"
chmod 0755 "$RUN" "$RUN/pending" "$RUN/rolled-back" 2>/dev/null
if [ "$mode" = --boot ]; then
    for mark in "$STATE"/*/pending-at-boot; do
        [ -f "$mark" ] || continue
        name=${mark%/pending-at-boot}; name=${name##*/}
        cp "$mark" "$RUN/pending/$name"
        HARDENING_BOOT=1 HARDENING_WHY="the host restarted before the change was confirmed" \\
            "$STATE/$name/restore" || true
    done
    exit 0
fi
exec 9>"$RUN/lock"
flock 9
status=0
confirmed=0
for marker in "$RUN"/pending/*; do
    [ -f "$marker" ] || continue
    name=${marker##*/}
    case "$mode" in
    --rearm)
        secs=$(sed -n 's/^timeout=//p' "$marker")
        arm "$name" "${secs:-120}"
        sed -i "s/^armed=.*/armed=$(date -u +%Y-%m-%dT%H:%M:%SZ)/" "$marker"
        echo "re-armed: $name, rollback in ${secs:-120} s unless confirmed"
        continue ;;
    --abort)
        HARDENING_LOCKED=1 HARDENING_WHY="the deploy failed on this host before it was confirmed: ${2:-}" \\
            "$STATE/$name/restore"
        echo "rolled back: $name ($(cat "$RUN/rolled-back/$name" 2>/dev/null))"
        rm -f "$RUN/rolled-back/$name"
        status=2
        continue ;;
    esac
    if [ -x "$STATE/$name/probe" ] && ! out=$(cd "$STATE/$name" && "$STATE/$name/probe" 2>&1); then
        HARDENING_LOCKED=1 HARDENING_WHY="its probe failed: $(printf '%s' "$out" | tr -s '\\n ' '  ' | head -c 300)" \\
            "$STATE/$name/restore"
        echo "rolled back at confirmation: $name ($(cat "$RUN/rolled-back/$name" 2>/dev/null))"
        rm -f "$RUN/rolled-back/$name"
        status=2
        continue
    fi
    if (cd "$STATE/$name" && "$STATE/$name/commit"); then
        rm -f "$marker" "$STATE/$name/pending-at-boot"
        systemctl stop "hardening-rollback-$name.timer" 2>/dev/null
        rm -rf "$STATE/$name/saved"
        echo "confirmed: $name"
        confirmed=$((confirmed + 1))
    else
        echo "commit failed: $name (left pending: the rollback timer will restore it)" >&2
        status=1
    fi
done
case "$mode" in confirm|--abort) ;; *) exit "$status" ;; esac
for record in "$RUN"/rolled-back/*; do
    [ -f "$record" ] || continue
    echo "rolled back before confirmation: ${record##*/} ($(cat "$record"))"
    rm -f "$record"
    status=2
done
[ "$status" -ne 0 ] || [ "$confirmed" -ne 0 ] || echo "nothing pending"
exit "$status"
"""


def boot_unit() -> str:
    """The unit that restores, at boot, what a restart left unconfirmed (persistent changes)."""
    return f"""\
# Managed by hardening (deploys/_rollback.py): a change a deploy left unconfirmed when the host
# stopped (killed, rebooted) is restored before sshd, the firewall, USBGuard and logins start.
[Unit]
Description=hardening: restore changes a deploy left unconfirmed
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target ssh.service nftables.service usbguard.service systemd-user-sessions.service
ConditionPathExists={STATE_DIR}

[Service]
Type=oneshot
ExecStart={CONFIRM_PATH} --boot

[Install]
WantedBy=sysinit.target
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
    """$DIR/restore: started by the rollback timer, by hardening-confirm (a failed probe,
    ``--abort``, ``--boot``), or at once when ``apply`` fails."""
    return _PRELUDE + f"""\
# Rollback of "{change.name}": restores the state saved before an unconfirmed change. Started by
# {change.unit}.timer when the change was not confirmed within {change.timeout} s.
set -u
mkdir -p "$RUN/rolled-back"
if [ -z "${{HARDENING_LOCKED:-}}" ]; then exec 9>"$RUN/lock"; flock 9; fi
[ -f "$RUN/pending/{change.name}" ] || exit 0
DIR="$STATE/{change.name}"
if (set -e; cd "$DIR/saved"
{change.restore}
) 2>"$DIR/restore.err"; then
    result="restored the previous state"
{_fallback(change)}else
    result="RESTORE FAILED: $(head -c 300 "$DIR/restore.err" | tr -s '\\n ' '  ')"
fi
why=${{HARDENING_WHY:-}}
rm -f "$RUN/pending/{change.name}" "$DIR/pending-at-boot"
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $result${{why:+ ($why)}}" > "$RUN/rolled-back/{change.name}"
logger -t hardening -p auth.warning "rollback {change.name}: ${{why:-not confirmed}}, $result" 2>/dev/null
echo "rollback {change.name}: $result${{why:+ ($why)}}" >&2
case "$result" in "restored the previous state") ;; *) exit 1 ;; esac
"""


def _in_dir(change: Change, title: str, flags: str, body: str) -> str:
    return _PRELUDE + f"""\
# {title}
set {flags}
DIR="$STATE/{change.name}"
cd "$DIR"
{body}
"""


def commit_script(change: Change) -> str:
    """$DIR/commit: makes the confirmed change permanent (run by hardening-confirm)."""
    return _in_dir(change, f'Commit of "{change.name}": makes the confirmed change permanent. Run by '
                           f"{CONFIRM_PATH}.", "-eu", change.commit)


def probe_script(change: Change) -> str:
    """$DIR/probe: run by hardening-confirm before the commit; exit 0 when the change is sound."""
    return _in_dir(change, f'Probe of "{change.name}": the fresh proof, on the host, that the change keeps '
                           "logins working.", "-u", change.probe)


def apply_script(change: Change) -> str:
    """$DIR/apply: validate, save the current state, arm the rollback, apply live."""
    boot = (f'cp "$RUN/pending/{change.name}" "$DIR/pending-at-boot"\n'
            f"systemctl enable --quiet {BOOT_UNIT} 2>/dev/null || true\nsync\n") if change.persistent else ""
    return _PRELUDE + _ARM + f"""\
# Apply "{change.name}" live with an automatic rollback in {change.armed_for} s unless confirmed.
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
    : > "$DIR/saved/complete"
    sync  # on disk before anything changes: a power cut must not leave a half-written saved state
fi
rm -f "$RUN/rolled-back/{change.name}"
printf 'unit=%s\\narmed=%s\\ntimeout=%s\\n' {change.unit}.timer "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \\
    {change.timeout} > "$RUN/pending/{change.name}"
{boot}arm {change.name} {change.armed_for}
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
echo "{change.name}: applied; rollback in {change.armed_for} s unless {CONFIRM_PATH} confirms it"
"""


def install_confirm() -> OperationMeta:
    """Install /usr/local/sbin/hardening-confirm and the boot unit (idempotent)."""
    op = files.put(name=f"Install {CONFIRM_PATH}", src=StringIO(confirm_script()), dest=CONFIRM_PATH,
                   user="root", group="root", mode="755")
    files.put(name=f"Install {BOOT_UNIT} (restores unconfirmed changes at boot)", src=StringIO(boot_unit()),
              dest=BOOT_UNIT_PATH, user="root", group="root", mode="644")
    return op


def _scripts(change: Change, payload: dict[str, str]) -> None:
    install_confirm()
    files.directory(name=f"Directory {change.directory}", path=change.directory,
                    user="root", group="root", mode="700")
    scripts = {"apply": apply_script(change), "restore": restore_script(change),
               "commit": commit_script(change)}
    if change.probe:
        scripts["probe"] = probe_script(change)
    for name, text in scripts.items():
        files.put(name=f"{change.name}: {name} script", src=StringIO(text),
                  dest=f"{change.directory}/{name}", user="root", group="root", mode="700")
    if not change.probe:
        files.file(name=f"{change.name}: no probe", path=f"{change.directory}/probe", present=False)
    for name, text in payload.items():
        files.put(name=f"{change.name}: {name}", src=StringIO(text),
                  dest=f"{change.directory}/{name}", user="root", group="root", mode="600")


def _apply_name(change: Change) -> str:
    # hardening/deploying.py reads this name (and the seconds) from pyinfra's progress lines.
    return f"Apply {change.name} live, rollback in {change.armed_for} s unless confirmed"


def guarded(change: Change, payload: dict[str, str], needed: bool, why: str = "") -> OperationMeta | None:
    """Write the change's scripts and payload; apply it with a rollback armed when ``needed``.

    Returns the apply operation (``None`` when not needed). ``payload`` maps file names in
    ``$DIR`` to their content (mode 0600), e.g. ``{"desired": ruleset}``. ``why``: what the measure
    observed that makes the change needed, shown in the operation's name.
    """
    _scripts(change, payload)
    if not needed:
        return None
    op = server.shell(name=_apply_name(change) + (f" ({why[:300]})" if why else ""),
                      commands=[f"{change.directory}/apply"])
    _ARMED.setdefault(host.name, []).append((op, change.timeout))
    return op


# -- watched regions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Watched:
    """A resource whose files a measure's own operations change (see :func:`watch`).

    ``paths``: files or directories restored exactly as they were (a path absent before is
    removed); ``reload``: shell run after a restore (not at boot, where nothing runs yet);
    ``save_extra``/``restore_extra``: shell for running state (inside ``$DIR/saved``);
    ``probe``: see :class:`Change`."""

    name: str
    paths: tuple[str, ...]
    reload: str = ""
    probe: str = ""
    save_extra: str = ""
    restore_extra: str = ""

    def change(self, timeout: int, allowance: int) -> Change:
        quoted = " ".join(shlex.quote(p) for p in self.paths)
        # cp --parents with an absolute source fails on the parents' attributes: copy from /
        save = (f"here=$(pwd); mkdir tree; : > absent\nfor p in {quoted}; do\n"
                '    if [ -e "$p" ] || [ -L "$p" ]; then (cd / && cp -a --parents -- "${p#/}" "$here/tree/")\n'
                "    else printf '%s\\n' \"$p\" >> absent; fi\ndone\n" + self.save_extra)
        restore = ("[ -f complete ] || { echo 'the saved state is incomplete (the host stopped while saving it): "
                   "nothing restored' >&2; exit 1; }\n"
                   f"for p in {quoted}; do\n"
                   '    if grep -qxF -- "$p" absent; then rm -rf -- "$p"\n'
                   '    else rm -rf -- "$p.hardening-restore"; cp -a -- "tree$p" "$p.hardening-restore"\n'
                   '         rm -rf -- "$p"; mv -- "$p.hardening-restore" "$p"; fi\ndone\n'
                   + self.restore_extra
                   + (f'if [ -z "${{HARDENING_BOOT:-}}" ]; then\n{self.reload}\nfi\n' if self.reload else ""))
        return Change(name=self.name, timeout=timeout, validate=":", save=save, apply=":",
                      restore=restore, commit=":", probe=self.probe, persistent=True, allowance=allowance)


@dataclass
class Region:
    """The operations of one watched region on one host (see :func:`watch`)."""

    change: Change
    before: set[str]
    arm: OperationMeta | None = None
    ops: list[str] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)

    def needed(self) -> bool:
        """True when an operation of the region will change something (it yields commands against
        the host's state now, before the region runs: pyinfra's ``will_change``; an operation run
        only under a condition ``_if`` counts through the operations it depends on, which are in
        the region too) or a reason was given (:meth:`force`)."""
        if self.forced:
            return True
        current = ctx_host.get()
        diff, state.config.DIFF = state.config.DIFF, False  # the operations show their diff when they run
        try:
            return any(not data.global_arguments.get("_if") and data.operation_meta.will_change
                       for data in (state.get_op_data_for_host(current, h) for h in self.ops))
        finally:
            state.config.DIFF = diff

    def force(self, why: str) -> None:
        """The region must be armed even if its operations look unchanged (e.g. a forced rewrite)."""
        if why:
            self.forced.append(why)

    def close(self) -> None:
        """End of the region: its operations are known; the arm runs only when one changes."""
        _fault(self.change.name)  # a lab fault belongs to the region: added before its operations are known
        self.ops = [h for h in state.ops[ctx_host.get()] if h not in self.before and
                    (self.arm is None or h != self.arm._hash)]
        if self.arm is not None and state.should_check_for_changes():
            # --dry: the plan lists the arm only where it will run (without --dry, pyinfra checks
            # no operation for changes before running it: needed() decides when the arm runs)
            self.arm._maybe_is_change = self.needed()


# Per host: the arm operations of this run and their confirmation timeouts (for :func:`finish`).
_ARMED: dict[str, list[tuple[OperationMeta, int]]] = {}
# Per host: the watchdog settings (``configure``), and the regions open now.
_SETTINGS: dict[str, tuple[int, int]] = {}


def configure(confirm_timeout: int, run_allowance: int) -> None:
    """This host's watchdog settings (the profile's ``deploy`` section); called by deploys/main.py."""
    _SETTINGS[host.name] = (confirm_timeout, run_allowance)


def watch(resource: Watched) -> Region:
    """Open a watched region for ``resource``: call before the measure's operations that change
    it, and :meth:`Region.close` after them. Writes the change's scripts, then an arm operation
    (``Apply NAME live, rollback in N s``) that runs first and only if an operation of the
    region changes something.

    >>> region = watch(SSHD)
    >>> files.put(...); server.shell(...)   # the measure's own operations
    >>> region.close()
    """
    timeout, allowance = _SETTINGS.get(host.name, (120, 900))
    change = resource.change(timeout, allowance)
    _scripts(change, {})
    current = ctx_host.get()
    region = Region(change, set(state.ops[current]))
    region.arm = server.shell(name=_apply_name(change) + " (saved before the change, restored unless confirmed)",
                              commands=[f"{change.directory}/apply"], _if=region.needed)
    _ARMED.setdefault(host.name, []).append((region.arm, change.timeout))
    return region


def finish() -> OperationMeta | None:
    """The host's last operation: re-arm every pending timer to its timeout, counted from now
    (the end of the host's run), when this run armed one."""
    armed = _ARMED.pop(host.name, [])
    if not armed:
        return None
    seconds = min(timeout for _, timeout in armed)
    op = server.shell(name=f"Apply all live, rollback in {seconds} s unless confirmed "
                           "(the watchdogs re-armed at the end of the host's run)",
                      commands=[f"{CONFIRM_PATH} --rearm"],
                      _if=lambda: any(op.did_change() for op, _ in armed))
    if state.should_check_for_changes():  # --dry: listed only where an arm is
        op._maybe_is_change = any(arm._maybe_is_change for arm, _ in armed)
    return op


# -- the resources -----------------------------------------------------------------------------

SSHD = Watched(
    name="sshd",
    paths=("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d"),
    reload="systemctl try-reload-or-restart ssh.service",
)

SUDOERS = Watched(name="sudoers", paths=("/etc/sudoers", "/etc/sudoers.d"))

PAM_PROBE_SERVICE = "/etc/pam.d/hardening-probe"
PAM_PROBE_USER = "hardening-probe"
PAM_PROBE_TEXT = """\
# Managed by hardening (deploys/_rollback.py): the fresh authentication that confirms a PAM
# change. hardening-confirm authenticates the locked system account hardening-probe through
# the same common-* stacks every login uses, with a one-time password set and locked again.
@include common-auth
@include common-account
@include common-session-noninteractive
"""
# A random password for the locked probe account, a real pam_authenticate + acct_mgmt +
# session through the new stack, and the account locked again whatever happened.
PAM_PROBE = f"""\
command -v pamtester >/dev/null || {{ echo "pamtester is not installed" >&2; exit 1; }}
u={PAM_PROBE_USER}
id "$u" >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \\
    --shell /usr/sbin/nologin --comment "hardening PAM probe (locked)" "$u"
pw="$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')Aa1-"
salt="$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 16)"
hash=$(perl -e 'print crypt($ARGV[0], "\\$6\\$" . $ARGV[1] . "\\$")' "$pw" "$salt")
case "$hash" in '$6$'*) ;; *) echo "cannot hash a probe password" >&2; exit 1 ;; esac
usermod -p "$hash" "$u"
out=$(printf '%s\\n' "$pw" | pamtester -v hardening-probe "$u" authenticate acct_mgmt open_session close_session 2>&1)
rc=$?
usermod -p '!' "$u"
faillock --user "$u" --reset 2>/dev/null || true
[ "$rc" -eq 0 ] || {{ printf 'a fresh PAM authentication failed: %s\\n' "$out" | tr -s '\\n' ' ' >&2; exit 1; }}
"""


# USB: the tool's modprobe block and USBGuard's configuration, and the running state they change:
# which devices the kernel authorizes, whether usbguard runs, which drivers are loaded. A restore
# re-authorizes what was authorized (a USB network adapter, a keyboard), restarts or stops the
# daemon as it was, loads again the drivers the deploy unloaded, and puts back the running
# kernel's initramfs as it was before update-initramfs (the usb deploy refuses outright a root,
# /boot or any mount on storage the policy blocks).
USB_SAVE = """\
for f in /sys/bus/usb/devices/*/authorized /sys/bus/usb/devices/*/authorized_default; do
    if [ -f "$f" ]; then printf '%s %s\\n' "$f" "$(cat "$f")"; fi
done > usb-authorized
systemctl is-active usbguard.service > usbguard-active 2>/dev/null || true
systemctl is-enabled usbguard.service > usbguard-enabled 2>/dev/null || true
cut -d' ' -f1 /proc/modules > modules 2>/dev/null || true
k=$(uname -r); if [ -f "/boot/initrd.img-$k" ]; then cp -a "/boot/initrd.img-$k" initrd.img; echo "$k" > kernel; fi
"""
USB_RESTORE = """\
if [ -f initrd.img ]; then cp -a initrd.img "/boot/initrd.img-$(cat kernel)"; fi
if [ -z "${HARDENING_BOOT:-}" ]; then
    udevadm control --reload 2>/dev/null || true
    case "$(cat usbguard-enabled)" in enabled) systemctl enable --quiet usbguard.service ;;
        masked) ;; *) systemctl disable --quiet usbguard.service 2>/dev/null || true ;; esac
    if [ "$(cat usbguard-active)" = active ]; then systemctl restart usbguard.service
    else systemctl stop usbguard.service 2>/dev/null || true; fi
    while read -r f v; do
        if [ "$v" = 1 ] && [ -f "$f" ]; then echo 1 > "$f" 2>/dev/null || true; fi
    done < usb-authorized
    for m in $(cat modules); do
        grep -q "^$m " /proc/modules || modprobe "$m" 2>/dev/null || true
    done
fi
"""
USB = Watched(name="usb", paths=("/etc/modprobe.d/hardening-usb.conf", "/etc/usbguard"),
              save_extra=USB_SAVE, restore_extra=USB_RESTORE)


def pam(paths: tuple[str, ...]) -> Watched:
    """PAM: ``paths`` are what the auth measure writes (the common-* files, its pam-auth-update
    profiles, pam-auth-update's state, faillock.conf); confirmed by a fresh authentication."""
    return Watched(name="pam", paths=paths, probe=PAM_PROBE)


# -- fault injection (lab only) ------------------------------------------------------------------

# name:fault -> shell run inside the region, as root, on a lab host. Each passes the tool's own
# validators (sshd -t, visudo -c) and breaks access the way a careless change would.
FAULTS: dict[str, str] = {
    "sshd:deny-deploy": ("u=\"${SUDO_USER:-$(id -un)}\"; printf '# lab fault\\nDenyUsers %s\\n' \"$u\" "
                         "> /etc/ssh/sshd_config.d/00-lab-fault.conf && sshd -t && "
                         "systemctl reload ssh.service"),
    "sshd:allowusers-nobody": ("printf '# lab fault\\nAllowUsers nobody\\n' > /etc/ssh/sshd_config.d/00-lab-fault.conf "
                               "&& sshd -t && systemctl reload ssh.service"),
    "sudoers:revoke-deploy": ("u=\"${SUDO_USER:-$(id -un)}\"; printf '# lab fault\\n%s ALL=(ALL:ALL) !ALL\\n' \"$u\" "
                              "> /etc/sudoers.d/zz-lab-fault && chmod 0440 /etc/sudoers.d/zz-lab-fault && "
                              "visudo -c >/dev/null"),
    "pam:deny-auth": "sed -i '1i auth requisite pam_deny.so # lab fault' /etc/pam.d/common-auth",
    "pam:deny-account": "sed -i '1i account requisite pam_deny.so # lab fault' /etc/pam.d/common-account",
    "sshd:hang": "touch /run/hardening/lab-fault-hang; sleep 600",
    # the USB policy is live (block file, initramfs, USBGuard), then the run fails
    "usb:fail": "echo 'lab fault: the usb measure fails after its changes went live' >&2; exit 1",
}


def _fault(name: str) -> None:
    wanted = os.environ.get("HARDENING_LAB_FAULT", "")
    if not wanted.startswith(f"{name}:") or not host.data.get("lab_host"):
        return
    if wanted not in FAULTS:
        raise ValueError(f"HARDENING_LAB_FAULT={wanted}: unknown fault (known: {', '.join(sorted(FAULTS))})")
    logger.warning(f"[{host.name}] lab fault injected in the {name} region: {wanted}")
    server.shell(name=f"LAB FAULT {wanted}", commands=[FAULTS[wanted]])

