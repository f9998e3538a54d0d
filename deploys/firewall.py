"""firewall (6-7): nftables default-deny inbound with the profile's allow-list, forwarding off.

Decided from the host's observation batch (the same observations the checks judge,
``hardening.measures.firewall.observe``), never from the hashes of the tool's own files alone:

* The ruleset (``hardening.measures.firewall.ruleset``) goes live lockout-safe through
  deploys/_rollback.py: validated with ``nft -c -f`` on the host, applied with ``nft -f`` and an
  automatic rollback armed for ``confirm_timeout`` seconds; it becomes ``/etc/nftables.conf``
  only when the deploy runner reconnects and runs ``hardening-confirm``. Only ``table inet
  hardening`` is ever saved (``nft list table``, or "absent"), replaced (the ruleset file:
  ``table``/``delete table``/definitions, one transaction) and restored (the same, from the
  saved table, or just deleted if there was none): other tables are never listed, flushed or
  reloaded, so what another tool adds or removes while the rollback is pending stays. A restore
  that does not load changes nothing (one transaction), and then the new table is kept (or
  re-loaded if it is gone): never less than either state; the journal (``logger -t hardening``)
  and hardening-confirm's report say so. The run says so too, dry or not: a log line and the
  apply operation's name (:func:`scope_line`) read "replaces table inet hardening only; left
  alone: table ip nat (docker), ..." with the other tables the observed live ruleset holds.
* /etc/nftables.conf is this tool's file, written whole (it holds only its table and no ``flush
  ruleset``, so nftables.service loads exactly the live table and leaves others alone; the
  checks compare the file with the profile's ruleset). A file that today loads other tables
  than Debian's empty default is refused, named, and nothing is applied: writing it would drop
  those tables at the next boot. Otherwise the first commit keeps it as
  ``/etc/nftables.conf.before-hardening``. It is (re)applied when
  the observed ``/etc/nftables.conf`` is not the desired ruleset (first run, a profile change, a
  rollback, a reboot before the confirmation) or when the observed live ruleset (``nft -j list
  ruleset``) lacks or differs from the measure's table, or cannot be read, or when the live table
  is not exactly the one /etc/nftables.conf loads (``hardening.measures.firewall.NFT_BOOT``).
  What re-applying cannot fix is refused at the end of the host's run, named: another table's
  queue/helper/tproxy/xt at input, keys outside nft's JSON grammar, a translation where
  forwarding is allowed, an nftables.service that does not load /etc/nftables.conf. Run this measure LAST
  in deploys/main.py: the timeout has to cover the rest of the pyinfra run plus the reconnection.
* nftables.service ends enabled AND active. Enabling loads nothing, so it happens in the run.
  Starting it runs ``nft -f /etc/nftables.conf``: while a change waits for its confirmation that
  file is still the PREVIOUS ruleset (Debian's default even begins with ``flush ruleset``), so a
  start in the run would replace the pending ruleset. Hence the service is started by the
  change's commit, right after the confirmed ruleset is installed as /etc/nftables.conf (it then
  loads exactly what is live; a failed start does not undo the confirmed ruleset, and the next
  deploy sees the service inactive and starts it), or in the run only when nothing is re-applied
  (then the file already is the live, desired ruleset).
* Forwarding off (terminals, or ``forwarding: false``): ``net.ipv4.ip_forward = 0`` and the IPv6
  equivalent persist in ``/etc/sysctl.d/90-hardening-firewall.conf``; where the observed runtime
  value differs, the deploy sets the measure's own keys with ``sysctl -w`` on the host (so a
  value switched on at runtime, with the file unchanged, is repaired), and only those: no
  ``server.sysctl`` (see the shared pyinfra notes: it always writes live, whatever differs), and
  no restart of systemd-sysctl, which would re-apply every other sysctl.d file as well. These
  keys are per network namespace: in a lab container they change the container's own. Note the
  kernel's own side effect: writing
  ``net.ipv4.ip_forward`` resets ``net.ipv4.conf.all.accept_redirects`` (to 1 when forwarding goes
  off); no measure of this tool sets that key. A line of another sysctl.d file (or
  /etc/sysctl.conf) that would switch forwarding on at boot is commented out in place (named in
  the operation) when it lives in /etc or /run; a vendor file in /usr/lib is refused, named.

Example::

    from deploys import firewall
    firewall.apply(profile, obs)  # inside a pyinfra deploy (deploys/main.py)
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server

from hardening.measures import firewall as measure
from hardening.observe import Observation, Observations
from hardening.profiles import Resolved

from ._rollback import Change, guarded
from ._support import refuse, refuse_at_end, supported

# Run by the commit, after the confirmed ruleset became /etc/nftables.conf (see the module doc).
START_AFTER_COMMIT = ("systemctl start nftables.service || echo 'firewall: committed, but "
                      "nftables.service did not start (the next deploy starts it)' >&2")


# The tool's table alone, in one nft transaction each: ``table`` + ``delete table`` removes it
# whether it exists or not, then the saved definitions (if any) put it back. Foreign tables
# (Docker, fail2ban, libvirt, a table added while the rollback was pending) are never listed,
# flushed or reloaded.
T = f"inet {measure.TABLE}"
# Absent is told by nft's own error (ENOENT); any other failure fails the save, so nothing applies.
SAVE = (f"if LC_ALL=C nft list table {T} > table.nft 2> list.err; then :\n"
        "elif grep -q 'No such file or directory' list.err; then rm -f table.nft; : > absent\n"
        "else cat list.err >&2; exit 1; fi")
RESTORE = (f"{{ printf 'table {T}\\ndelete table {T}\\n'; [ -f absent ] || cat table.nft; }} > restore.nft\n"
           "nft -f restore.nft")
# The saved table did not load (nothing changed: one transaction): keep the new table, or
# re-load it if it is gone, never leave the host with no table of this tool.
FALLBACK = f'nft list table {T} > /dev/null 2>&1 || nft -f "$DIR/desired"'
# Before the first commit, the file nftables.service loads is kept aside (the deploy refuses a
# file that loads other tables than Debian's empty default, see measure.boot_foreign_tables).
COMMIT = (f"if [ -f {measure.NFTABLES_CONF} ] && ! grep -qF {shlex.quote(measure.HEADER.strip())} "
          f"{measure.NFTABLES_CONF}; then cp -p {measure.NFTABLES_CONF} {measure.NFTABLES_CONF}.before-hardening; fi\n"
          f'install -m 0644 -o root -g root "$DIR/desired" {measure.NFTABLES_CONF}\n')


def change(timeout: int) -> Change:
    """The firewall as a lockout-safe change: the payload file is ``$DIR/desired``, the
    ruleset that replaces table inet hardening alone (``measure.ruleset``)."""
    return Change(
        name="firewall",
        timeout=timeout,
        validate='nft -c -f "$DIR/desired"',
        save=SAVE,
        apply='nft -f "$DIR/desired"',
        restore=RESTORE,
        fallback=FALLBACK,
        commit=COMMIT + START_AFTER_COMMIT,
    )


def scope_line(live: Observation, what: str, most: int = 6) -> str:
    """``what`` the deploy does to its table and the other live tables it leaves alone (from the
    observation of ``nft -j list ruleset``), for the log and the apply operation's name:
    ``firewall: replaces table inet hardening only; left alone: table ip nat (docker), ...``."""
    head = f"firewall: {what}"
    try:
        if live.rc != 0:
            raise measure.Unreadable(f"exit {live.rc}: {live.stderr.strip()[:120]}")
        tables = measure.foreign_tables(measure.read_nft_json(live.stdout))
    except measure.Unreadable as exc:
        return f"{head}; left alone: every other table (the live ruleset could not be listed: {str(exc)[:160]})"
    if not tables:
        return f"{head}; no other table live"
    shown = tables[:most] + ([f"{len(tables) - most} more"] if len(tables) > most else [])
    return f"{head}; left alone: {', '.join(shown)}"


def _forwarding_file(settings: measure.Settings, role: str) -> None:
    content = measure.sysctl_conf(settings, role)
    if not content:
        files.file(name="Forwarding allowed: remove the forwarding sysctl file",
                   path=measure.SYSCTL_CONF, present=False)
        return
    files.put(name="Forwarding off (net.ipv4.ip_forward = 0) in /etc/sysctl.d",
              src=StringIO(content), dest=measure.SYSCTL_CONF, user="root", group="root", mode="644")


def _forwarding_runtime(settings: measure.Settings, role: str, obs: Observations) -> None:
    """sysctl -w of the measure's keys whose observed runtime value differs (the file persists them)."""
    if measure.forwarding_allowed(settings, role):
        return
    runtime = {key: measure.sysctl_value(obs.run(measure.sysctl_read(key))) for key in measure.FORWARD_SYSCTLS}
    for key, value in measure.forwarding_repairs(runtime, settings, role).items():
        server.shell(name=f"Forwarding off now: {key} is {runtime[key] or 'unreadable'}, set {value}",
                     commands=[f"sysctl -w {shlex.quote(f'{key}={value}')}"])


def _service(obs: Observations, reapply: bool) -> None:
    """nftables.service enabled and active (started here only when nothing is re-applied)."""
    enabled = obs.run(measure.NFTABLES_ENABLED).stdout.strip()
    if enabled == "masked":
        refuse(f"firewall: nftables.service is masked, so {measure.NFTABLES_CONF} would not load at boot: "
               "unmask it (systemctl unmask nftables.service) or disable the firewall measure")
        return
    active = obs.run(measure.NFTABLES_ACTIVE).stdout.strip()
    for command in measure.service_commands(enabled, active, reapply):
        server.shell(name=f"nftables.service ({enabled or 'unknown'}, {active or 'unknown'}): {command}",
                     commands=[command])


@deploy("firewall")
def apply(profile: Resolved, obs: Observations) -> None:
    """Ruleset (lockout-safe), nftables.service, forwarding off: from the observed state."""
    settings: measure.Settings = profile.measure("firewall")
    if not settings.enabled or not supported("firewall"):
        return
    if obs.run(measure.NFT_PRESENT).rc != 0:
        apt.update(name="Update the package lists (nftables missing)", cache_time=3600)
        apt.packages(name="Install nftables", packages=["nftables"], present=True)
    _forwarding_file(settings, profile.role)
    reasons = measure.reapply_reasons(obs.run(measure.NFTABLES_CONF_TEXT), obs.run(measure.NFT_LIST),
                                      settings, profile.role, obs.run(measure.NFT_BOOT))
    foreign = measure.boot_foreign_tables(obs.run(measure.NFTABLES_CONF_TEXT), obs.run(measure.NFT_BOOT))
    if foreign and reasons:
        refuse_at_end(f"firewall: {measure.NFTABLES_CONF} also loads {', '.join(foreign)}; the tool writes that "
                      "file whole (it holds only table inet hardening), so those tables would not load at the "
                      "next boot: move them to a file of their own, or remove them; nothing applied")
    # Nor is nftables.service started then (reapply=True): it would load that file.
    needed = bool(reasons) and not foreign
    what = (f"replaces table inet {measure.TABLE} only" if needed else
            f"table inet {measure.TABLE} not replaced ({'refused' if reasons else 'as desired'})")
    # Shown by --dry as well: what the change touches, what it leaves alone. The operation's name
    # (cut at 300 characters) names fewer tables, to leave room for the reasons.
    host.log(scope_line(obs.run(measure.NFT_LIST), what), logger.info)
    short = scope_line(obs.run(measure.NFT_LIST), what, most=3).removeprefix("firewall: ")
    guarded(change(settings.confirm_timeout), payload={"desired": measure.ruleset(settings, profile.role)},
            needed=needed, why="; ".join([short, *reasons]))
    _service(obs, reapply=bool(reasons))
    _foreign(obs, settings, profile.role)
    _forwarding_runtime(settings, profile.role, obs)
    _forwarding_boot(settings, profile.role, obs)


def _foreign(obs: Observations, settings: measure.Settings, role: str) -> None:
    """What this tool does not own and cannot settle by re-applying its table: refused at the end,
    named (another table's queue/helper/tproxy, keys outside the grammar, a changed ExecStart)."""
    live = obs.run(measure.NFT_LIST)
    if live.rc == 0:
        try:
            document = measure.read_nft_json(live.stdout)
        except measure.Unreadable:
            document = None
        for problem in measure.foreign_problems(document, settings, role) if document else []:
            refuse_at_end(f"firewall: {problem}: remove it (it is not this tool's table)")
    runs = measure.exec_start_problem(obs.run(measure.NFTABLES_EXEC))
    if runs:
        refuse_at_end(f"firewall: {runs}: {measure.NFTABLES_CONF} would not be what loads at boot; "
                      "remove the override (systemctl revert nftables.service)")


def _forwarding_boot(settings: measure.Settings, role: str, obs: Observations) -> None:
    """Comment out the sysctl.d lines (in /etc or /run) that would switch forwarding on at boot;
    a vendor file (/usr/lib/sysctl.d) is refused, naming it: override it in /etc/sysctl.d."""
    if measure.forwarding_allowed(settings, role):
        return
    config = obs.run(measure.SYSCTL_CONFIG)
    if config.rc != 0:
        return
    for line in measure.forwarding_persist_repairs(measure.sysctl_assignments(config.stdout), settings, role):
        if not line.path.startswith(("/etc/", "/run/")):
            refuse_at_end(f"firewall: {line.where} sets {line.key} = {line.value} at boot: override that file "
                          f"in /etc/sysctl.d (a file of the same name) without the line")
            continue
        edit = f"{line.line}s/^/# disabled by hardening (firewall, 6-7): /"
        server.shell(name=f"Forwarding off at boot: comment out {line.key} = {line.value} in {line.where}",
                     commands=[f"sed -i --follow-symlinks {shlex.quote(edit)} {shlex.quote(line.path)}"])
