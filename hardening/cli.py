"""The `hardening` command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from hardening import HWPROFILES, __version__, catalogue
from hardening import inventory as inventory_mod
from hardening.errors import ConfigError, Exit, HardeningError
from hardening.measures import MEASURES, deploy_order
from hardening.profiles import SENSITIVITIES, Profiles, validate_all

EXIT_CODES_HELP = """
\b
Exit codes (when several apply: 2, 3, 4, 1, then 5):
  0  every check on every host passed (not applicable, advisory and waived count
     as passed) and every attestation item is attested
  1  at least one check failed or errored, or an attestation failed or expired:
     not compliant
  2  usage or configuration error: nothing was verified or changed
  3  at least one host could not be verified (unreachable, host key, sudo)
  4  a host regressed against its previous run
  5  nothing failed, but something was not judged: a check not configured (the
     profile or the inventory lacks data it needs) or an attestation item nobody
     recorded (not evaluated); never counted as passed
See `hardening results` for every result and what it does to the exit code.
"""


class Main(click.Group):
    """Turns every error a user can act on into one line and its exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HardeningError as exc:
            click.echo(f"hardening: error: {exc}", err=True)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("hardening: interrupted", err=True)
            ctx.exit(130)


def _profiles_option(f: Any) -> Any:
    return click.option("--profiles", "profiles_dir", type=click.Path(path_type=Path),
                        default=HWPROFILES, show_default="the shipped hwprofiles/",
                        help="Directory of hardware profiles (YAML).")(f)


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="hardening")
def main() -> None:
    """Enforce, verify and prove the technical measures of the MIC guideline on personal
    information held by administrative agencies (chapters 6 and 7).

    \b
    Typical use:
      hardening verify inventories/agency.py          verify every host, write evidence
      hardening verify --local --profile terminal     verify this machine (read-only)
      hardening deploy inventories/agency.py --dry    show what a deploy would change
      hardening clauses                               coverage of chapters 6-7
      hardening demo                                  the whole job on a disposable lab
    """


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the coverage as JSON.")
@_profiles_option
def clauses(as_json: bool, profiles_dir: Path) -> None:
    """Show every clause of chapters 6-7 and what covers it: deploy, check, attestation."""
    rows = catalogue.coverage(profiles_dir=profiles_dir)
    if as_json:
        click.echo(json.dumps([{"id": r.clause.id, "heading_ja": r.clause.heading_ja,
                                "kind": r.clause.kind, "measures": r.measures,
                                "deploys": r.deploys, "checks": r.checks,
                                "attestations": r.attestations} for r in rows],
                              ensure_ascii=False, indent=2))
        return
    click.echo(f"{'clause':<6} {'kind':<13} {'deploy':<7} {'checks':<7} {'attest':<7} heading / measures")
    for r in rows:
        mark = {True: "yes", False: "-"}
        click.echo(f"{r.clause.id:<6} {'+'.join(r.clause.kind):<13} {mark[bool(r.deploys)]:<7} "
                   f"{len(r.checks) or '-'!s:<7} {mark[bool(r.attestations)]:<7} "
                   f"{r.clause.heading_ja} [{', '.join(r.measures) or _unmeasured(r.clause.kind)}]")
    covered = sum(1 for r in rows if r.checks or r.attestations)
    click.echo(f"\n{covered}/{len(rows)} clauses verified by a check or an attestation item; "
               f"{sum(1 for r in rows if r.deploys)} enforced by a deploy.")


@main.command()
@click.argument("item")
@click.option("--host", "hosts", multiple=True, help="A host it applies to (repeatable).")
@click.option("--group", "groups", multiple=True, help="An inventory group it applies to (repeatable).")
@click.option("--room", "rooms", multiple=True, help="A room of the asset register it applies to (repeatable).")
@click.option("--by", required=True, help="Who checked (name).")
@click.option("--role", required=True, help="In what role, e.g. 保護管理者 総務課.")
@click.option("--result", type=click.Choice(["pass", "fail"]), required=True, help="What the person found.")
@click.option("--date", "on", type=click.DateTime(["%Y-%m-%d"]), help="When it was checked (default: today).")
@click.option("--note", default="", help="What was checked and how (kept in the evidence).")
@click.option("--file", "files", multiple=True, type=click.Path(path_type=Path),
              help="An attached file (photo, entry log, inspection sheet): its SHA-256 is recorded (repeatable).")
@click.option("-i", "--inventory", type=click.Path(path_type=Path),
              help="Inventory: the record goes to attestations.yaml beside it, and the scope is checked against it.")
@click.option("--attestations", "attestations_file", type=click.Path(path_type=Path),
              help="The attestation file to append to (instead of the one beside --inventory).")
@_profiles_option
def attest(item: str, hosts: tuple[str, ...], groups: tuple[str, ...], rooms: tuple[str, ...], by: str, role: str,
           result: str, on: Any, note: str, files: tuple[Path, ...], inventory: Path | None,
           attestations_file: Path | None, profiles_dir: Path) -> None:
    """Record a person's answer for a manual ITEM (an attestation id of the hardware profiles).

    Appends one record (who, role, when, valid until, result, note, the SHA-256 of each
    attached file) to the attestation file; `hardening verify` puts it in the evidence of every
    host it applies to, sealed and signed with the run. The validity runs from --date for the
    item's valid_days (the shortest, if profiles differ). An expired or failed item fails the
    host; one nobody recorded is "not evaluated" (exit 5).

    \b
    Example:
      hardening attest locks-alarms --room "本庁舎B1 サーバ室" --by "山田 太郎" \\
          --role "保護管理者 総務課" --result pass --note "月次点検" \\
          --file photos/b1-door.jpg -i inventories/agency.py
    """
    import datetime as dt

    from hardening import attestations

    target = attestations_file or (inventory.parent / attestations.FILENAME if inventory else None)
    if target is None:
        raise click.UsageError("give --inventory (the file beside it) or --attestations FILE")
    try:
        scope = attestations.Scope(hosts=list(hosts), groups=list(groups), rooms=list(rooms))
    except ValueError:
        raise click.UsageError("name at least one --host, --group or --room") from None
    if inventory is not None:
        _check_scope(inventory_mod.load(inventory, Profiles(profiles_dir)), scope, Profiles(profiles_dir), item)
    day = on.date() if on else dt.date.today()
    if day > dt.date.today():
        raise click.BadParameter(f"{day} is in the future", param_hint="--date")
    valid_days, defined_in = attestations.item_interval(Profiles(profiles_dir), item)
    until = day + dt.timedelta(days=valid_days)
    record = attestations.new_record(item=item, scope=scope, by=by, role=role, date=day, until=until,
                                     result=result, note=note, files=list(files), base=target.resolve().parent)
    attestations.append(target, record)
    where = ", ".join([*hosts, *(f"group {g}" for g in groups), *(f"room {r}" for r in rooms)])
    click.echo(f"{item}: {result} for {where}, by {by} ({role}) on {day}, valid until {until} "
               f"({valid_days} days, profiles: {', '.join(defined_in)}); "
               f"{len(record.get('files', []))} file(s) hashed; appended to {target}")


def _check_scope(inv: Any, scope: Any, profiles: Profiles | None = None, item: str | None = None) -> None:
    """Every host, group and room named exists (rooms: the asset register's and rooms.yaml's); an
    item attested for a room of rooms.yaml must be on that room's checklist."""
    from hardening import rooms as rooms_mod

    names = {h.name for h in inv.hosts}
    groups = set(inv.groups())
    found = rooms_mod.beside(inv.path)
    declared = rooms_mod.load(found, inv, profiles) if found else rooms_mod.EMPTY
    rooms = {h.asset.room for h in inv.hosts if h.asset and h.asset.room} | set(declared.rooms)
    for room in scope.rooms:
        listed = declared.rooms.get(room)
        if item and listed is not None and item not in listed.attestations:
            raise ConfigError(str(declared.path), f"{item} is not on the checklist of room {room!r} "
                              f"(attestations: {', '.join(listed.attestations) or 'none'})", key="--room")
    for kind, given, known in (("host", scope.hosts, names), ("group", scope.groups, groups),
                               ("room", scope.rooms, rooms)):
        unknown = [x for x in given if x not in known]
        if unknown:
            raise ConfigError(str(inv.path), f"unknown {kind} {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(known)) or 'none'})", key=f"--{kind}")


@main.command("report")
@click.option("--room", "room", required=True, help="The server room (as rooms.yaml names it).")
@click.option("--lang", type=click.Choice(["ja", "en"]), default="ja", show_default=True)
@click.option("--evidence", "evidence_root", type=click.Path(path_type=Path), default=Path("evidence"),
              show_default=True, help="Evidence root: the newest run holding the room is shown.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), help="This run directory instead.")
def report(room: str, lang: str, evidence_root: Path, run_dir: Path | None) -> None:
    """Print a server room's report (markdown): members, UPS, RAID and attestations together.

    Read from the room's document in a verified run (`hardening verify --room ROOM`); the run's
    seal covers that document and the two reports written beside it (room-*.ja.md, room-*.en.md).
    Exit 0 when the room passed, 1 failed or errored, 5 incomplete, 2 no such room in the evidence.
    """
    from hardening import roomreport
    from hardening import rooms as rooms_mod
    from hardening.evidence import chain
    from hardening.results import BY_NAME, EXIT_BY_EFFECT

    name = rooms_mod.safe_name(room) + ".json"
    runs = [run_dir] if run_dir else list(reversed(chain.run_dirs(evidence_root)))
    path = next((r / name for r in runs if (r / name).is_file()), None)
    if path is None:
        raise ConfigError(str(run_dir or evidence_root), f"no document of room {room!r} ({name}); "
                          "verify it first: hardening verify INVENTORY --room ROOM")
    doc = rooms_mod.read(path)
    click.echo(roomreport.markdown(doc, lang))
    result = BY_NAME.get(doc["verdict"])
    sys.exit(EXIT_BY_EFFECT[result.effect if result else "failing"])


@main.command("results")
@click.option("--markdown", is_flag=True, help="Print docs/results.md.")
def results_command(markdown: bool) -> None:
    """Every result a check or an attestation can end with, and what it does to the exit code."""
    from hardening import results

    if markdown:
        click.echo(results.markdown(), nl=False)
        return
    for r in results.RESULTS:
        click.echo(f"{r.name:<15} {r.ja:<6} {'/'.join(r.of):<18} {r.effect:<11} exit "
                   f"{results.EXIT_BY_EFFECT[r.effect]}  {r.meaning}")


@main.command("measures")
@click.option("--markdown", is_flag=True, help="Print the reference section of docs/measures.md.")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def measures_command(markdown: bool, as_json: bool) -> None:
    """List the registered measures in deploy order: clauses, deploy, baseline settings."""
    from hardening import measuredocs

    if markdown:
        click.echo(measuredocs.markdown(), nl=False)
        return
    if as_json:
        click.echo(json.dumps(measuredocs.rows(), ensure_ascii=False, indent=2))
        return
    for r in measuredocs.rows():
        click.echo(f"{r['order']:>3} {r['name']:<11} {', '.join(r['clauses']):<17} {r['title']}")


def _unmeasured(kind: Sequence[str]) -> str:
    return "no measure yet" if "tech" in kind else "manual"


@main.group()
def profiles() -> None:
    """Hardware profiles: list, validate and show them resolved for a host."""


@profiles.command("list")
@_profiles_option
def profiles_list(profiles_dir: Path) -> None:
    """List the profiles and what they extend."""
    store = Profiles(profiles_dir)
    for name in store.names():
        data = store.file(name).data
        click.echo(f"{name:<14} role={data.get('role', '(abstract)'):<12} extends={data.get('extends') or '-'}")


@profiles.command("check")
@_profiles_option
def profiles_check(profiles_dir: Path) -> None:
    """Validate every profile at every sensitivity level."""
    names = validate_all(profiles_dir)
    click.echo(f"{len(names)} profiles valid at levels {', '.join(SENSITIVITIES)}: {', '.join(names)}")


@profiles.command("show")
@click.argument("host", required=False)
@click.option("-i", "--inventory", type=click.Path(path_type=Path), help="Inventory naming HOST.")
@click.option("--profile", "profile_name", help="Show this profile instead of a host's.")
@click.option("--sensitivity", type=click.Choice(SENSITIVITIES), help="With --profile.")
@_profiles_option
def profiles_show(host: str | None, inventory: Path | None, profile_name: str | None,
                  sensitivity: str | None, profiles_dir: Path) -> None:
    """Print the resolved profile of HOST (from --inventory), or of --profile, as YAML."""
    store = Profiles(profiles_dir)
    if profile_name:
        resolved = store.resolve(profile_name, sensitivity)
    elif host and inventory:
        inv = inventory_mod.load(inventory)
        match = [h for h in inv.hosts if h.name == host]
        if not match:
            raise ConfigError(str(inventory), f"no host {host!r} (hosts: {', '.join(h.name for h in inv.hosts)})")
        resolved = match[0].resolve(store)
    else:
        raise click.UsageError("give HOST with --inventory, or --profile")
    click.echo(f"# {resolved.name} ({' -> '.join(resolved.chain)}), sensitivity {resolved.sensitivity}, "
               f"{resolved.digest()}")
    click.echo(yaml.safe_dump(resolved.canonical(), allow_unicode=True, sort_keys=False), nl=False)


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("inventory", required=False, type=click.Path(path_type=Path))
@click.option("--local", is_flag=True, help="Verify the machine this runs on (read-only, no SSH).")
@click.option("--profile", "profile_name", default="terminal", show_default=True,
              help="With --local: the profile of this machine.")
@click.option("--sensitivity", type=click.Choice(SENSITIVITIES), help="With --local: its sensitivity.")
@click.option("-l", "--limit", multiple=True, help="Only these hosts or groups (repeatable).")
@click.option("-m", "--measure", "measures", multiple=True, type=click.Choice(MEASURES),
              help="Only the checks of these measures, e.g. -m usb -m firewall.")
@click.option("--evidence", "evidence_root", type=click.Path(path_type=Path), default=Path("evidence"),
              show_default=True, help="Where runs are written (one directory per run).")
@click.option("-p", "--parallel", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Hosts observed at once (one SSH session each).")
@click.option("--attestations", "attestations_file", type=click.Path(path_type=Path),
              help="Attestation records by a person (YAML); default: attestations.yaml beside the inventory.")
@click.option("--waivers", "waivers_file", type=click.Path(path_type=Path),
              help="Waivers of failed checks (YAML); default: waivers.yaml beside the inventory.")
@click.option("--room", "room_names", multiple=True,
              help="Verify this server room (rooms.yaml): its member servers, its UPS and its attestations; "
                   "writes the room's document into the run (repeatable).")
@click.option("--rooms", "rooms_file", type=click.Path(path_type=Path),
              help="Server rooms (YAML); default: rooms.yaml beside the inventory.")
@_profiles_option
def verify(inventory: Path | None, local: bool, profile_name: str, sensitivity: str | None,
           limit: tuple[str, ...], measures: tuple[str, ...], evidence_root: Path, parallel: int,
           attestations_file: Path | None, waivers_file: Path | None, room_names: tuple[str, ...],
           rooms_file: Path | None, profiles_dir: Path) -> None:
    """Verify hosts against their hardware profiles and write evidence.

    Runs the checks in checks/ on each host of INVENTORY over SSH (strict host keys, the
    inventory's known_hosts file, passwordless sudo for a non-root account), or on this machine
    with --local. Writes one JSON and one HTML document per host, and a run index, under
    --evidence/<run id>/. Read-only: a check never changes a host.

    A check ends as pass, fail, error, n/a (not applicable: the role or hardware has no such
    thing), n/c (not configured: the profile or inventory lacks data the check needs; listed
    after the table with the key to fill; never a pass), adv (advisory: expected, not
    required; shown, not a failure) or waived (it failed, and a valid waiver in waivers.yaml
    accepts that until its expiry). Each attestation item of the host's profile ends as
    attested, fail, expired or not evaluated (records in attestations.yaml; `hardening
    attest` writes them). A host's result is the worst of ERROR, FAIL, NOT CONFIGURED, NOT
    EVALUATED and PASS (`hardening results` lists every result).

    With --room (or when every member of a room in rooms.yaml is verified), the room's document
    is written into the run before it is sealed: its members' documents by SHA-256, every member
    powered by a listed UPS, each UPS's state as its members read it, and the room's attestation
    items. A room's result is the worst of these and of its members' (a member not verified
    makes it an error) and counts in the exit code like a host's.
    """
    from hardening import rooms as rooms_mod
    from hardening import verify as verify_mod

    catalogue.coverage(profiles_dir=profiles_dir)  # the registry, the catalogue and the tree agree
    store = Profiles(profiles_dir)
    if local == bool(inventory):
        raise click.UsageError("give an INVENTORY, or --local (not both)")
    chosen = verify_mod.selected(measures)
    records = _attestations_path(attestations_file, inventory)
    waived = _waivers_path(waivers_file, inventory)
    if (room_names or rooms_file) and local:
        raise click.UsageError("--room and --rooms need an INVENTORY (not --local)")
    hook = None
    if local:
        plans = verify_mod.plan_local(store, profile_name, sensitivity, chosen, records, waived)
    else:
        assert inventory is not None
        inv = inventory_mod.load(inventory, store)
        found = rooms_mod.beside(inventory, rooms_file)
        rooms = rooms_mod.load(found, inv, store) if found else rooms_mod.EMPTY
        if room_names and not found:
            raise ConfigError(str(inventory.parent / rooms_mod.FILENAME), "--room needs a rooms file "
                              "(rooms.yaml beside the inventory, or --rooms FILE)")
        if room_names:
            limit = (*limit, *rooms_mod.limit_for(rooms, room_names))
        plans = verify_mod.plans_from_inventory(inv, limit, store, chosen, records, waived, rooms)
        if rooms.rooms:
            hook = rooms_mod.before_seal(rooms, room_names, store, records,
                                         progress=lambda line: click.echo(line, err=True))
    result = verify_mod.run(plans, evidence_root=evidence_root.resolve(),
                            inventory=inventory.resolve() if inventory else None, parallel=parallel,
                            progress=lambda line: click.echo(line, err=True), before_seal=hook)
    _summary(result)
    sys.exit(int(result.exit_code))


@main.command()
@click.argument("inventory", type=click.Path(path_type=Path))
@click.option("-l", "--limit", multiple=True, help="Only these hosts or groups (repeatable).")
@click.option("-m", "--measure", "measures", multiple=True, type=click.Choice(deploy_order()),
              help="Only these measures (repeatable), run in the deploy order whatever the order given.")
@click.option("--dry", is_flag=True, help="Show what would change, with a diff of every file; change nothing.")
@click.option("-p", "--parallel", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Hosts deployed at once.")
@click.option("--format-data-disk", "format_data_disks", multiple=True, metavar="HOST:DEVICE",
              help="Allow the encryption measure to FORMAT this host's data disk as LUKS2 (the device exactly "
                   "as its profile names it in measures.encryption.data_disk; repeatable). Only a disk with no "
                   "signature is ever formatted; --dry says what would be. Not needed to keep a disk set up.")
@_profiles_option
def deploy(inventory: Path, limit: tuple[str, ...], measures: tuple[str, ...], dry: bool, parallel: int,
           format_data_disks: tuple[str, ...], profiles_dir: Path) -> None:
    """Enforce the measures of each host's hardware profile with pyinfra.

    Measures run in a fixed order (packages first; sshd and firewall last). Files are
    validated before they go live (sshd -t, visudo -c, nft -c). Every change that can lock
    the tool out or break logins (firewall, sshd, PAM, sudoers, USB policy) goes live under a
    watchdog on the host: it restores the previous state unless the tool, after the deploy,
    reaches the host over a NEW SSH connection as the deploy account with sudo (for PAM also a
    fresh authentication through the new stack). All hosts are confirmed at once, each within
    its own deadline; a host not confirmed in time is reached again after its rollback to show
    it back in its previous state. A host whose deploy failed part-way has every pending change
    restored at once (never half of each); a host that restarts before the confirmation
    restores them at boot. The window is the profile's deploy.confirm_timeout (firewall:
    measures.firewall.confirm_timeout), counted from the end of the host's run.

    Exit 0: every host done and confirmed. 1: an operation failed, a deploy refused (named), or a
    change was rolled back. 2: bad input. 3: a host not reachable even after its rollback time.
    """
    from hardening import deploying

    catalogue.coverage(profiles_dir=profiles_dir)
    store = Profiles(profiles_dir)
    inv = inventory_mod.load(inventory, store)
    result = deploying.run(inv, limit=limit, measures=measures, dry=dry, parallel=parallel,
                           profiles_dir=profiles_dir.resolve(), format_data_disks=format_data_disks)
    verb = "would change" if dry else "changed"
    click.echo(f"\n{'host':<28} {verb:>12} {'failed':>7} {'unchanged':>10}")
    for name, changes in sorted(result.hosts.items()):
        maybe = f" (+{len(changes.maybe)} if)" if changes.maybe else ""
        click.echo(f"{name:<28} {len(changes.changed):>12}{maybe} {len(changes.failed):>7} {changes.unchanged:>10}")
        if dry:  # what would change, by operation (a file's diff is in pyinfra's output above)
            for op in changes.changed:
                click.echo(f"    would: {op}")
            for op in changes.maybe:
                click.echo(f"    would, if an earlier change happens: {op}")
        for op in changes.failed:
            click.echo(f"    FAILED: {op}")
    for name, text in result.confirmed.items():
        click.echo(f"{name}: reconnected; {text or 'nothing pending'}")
    for name, text in result.failed.items():
        click.echo(f"{name}: FAILED: {text}", err=True)
    for name, text in result.unreachable.items():
        click.echo(f"{name}: NOT REACHABLE after the deploy: {text}", err=True)
    if result.pyinfra_exit != 0:
        click.echo(f"pyinfra reported failed operations (exit {result.pyinfra_exit})", err=True)
    click.echo(f"exit {int(result.exit_code)} ({result.exit_code.name.lower()})")
    sys.exit(int(result.exit_code))


@main.command()
@click.option("--evidence", "evidence_root", type=click.Path(path_type=Path), default=Path("evidence"),
              show_default=True, help="Where the before and after runs are written.")
@click.option("--keep", is_flag=True, help="Leave the lab hosts running (stop them with `hardening lab stop --all`).")
def demo(evidence_root: Path, keep: bool) -> None:
    """The whole job on disposable lab hosts: verify, deploy, verify again.

    Sets up the test lab (apt packages, a Debian 12 image built from Debian's archive, a saved
    golden state) and starts an emulated `terminal` host (sensitivity high), an emulated `server`
    host and a container serving both as the agency's log host and off-site backup target. It
    does the operator's part (backup disks formatted and mounted, an SFTP account, rsyslog
    receiving), writes the agency's profiles (personal-data, staging and design-document paths,
    the log host, two backup repositories, a LUKS2 data disk for /srv/pii), verifies both hosts,
    deploys every measure with --format-data-disk for their blank data disks, puts sample
    personal data in place and runs the nightly backup once, verifies again, and prints where
    the evidence is, with what still fails and why no deploy can fix it (hardware the lab lacks,
    an unencrypted root disk, security updates left to change management). Exit 0 when only
    those remain; 3 when the lab cannot be set up or a host cannot be started (demo hosts left
    running by an earlier --keep are named, never reused or stopped).
    """
    from hardening import demo as demo_mod
    from hardening.lab import LabError

    try:
        result = demo_mod.run(evidence_root.resolve(), keep, say=lambda line: click.echo(line, err=True))
    except LabError as exc:  # the lab could not be set up or a host not started or reached
        click.echo(f"hardening: error: lab: {exc}", err=True)
        sys.exit(int(Exit.UNREACHABLE))
    click.echo("\nbefore the deploy:")
    _summary(result.before)
    click.echo("\nafter the deploy:")
    _summary(result.after)
    remaining = result.remaining()
    if remaining:
        click.echo("\nstill failing after the deploy:")
        for host, check, why in remaining:
            click.echo(f"  {host}: {check} — {why or 'NOT EXPECTED: a deploy should have fixed this'}")
    click.echo(f"\ndemo exit {int(result.exit_code)}: "
               + ("done; what remains needs hardware or a decision, not a deploy" if result.exit_code == 0
                  else result.exit_code.name.lower()))
    sys.exit(int(result.exit_code))


def _attestations_path(given: Path | None, inventory: Path | None) -> Path | None:
    from hardening import attestations

    return _beside(given, inventory, attestations.FILENAME, "attestation file")


def _waivers_path(given: Path | None, inventory: Path | None) -> Path | None:
    from hardening import waivers

    return _beside(given, inventory, waivers.FILENAME, "waiver file")


def _beside(given: Path | None, inventory: Path | None, filename: str, what: str) -> Path | None:
    """The file given (which must exist), else ``filename`` beside the inventory if there is one."""
    if given is not None:
        if not given.is_file():
            raise ConfigError(str(given), f"{what} not found")
        return given.resolve()
    if inventory is None or not (inventory.parent / filename).is_file():
        return None
    return (inventory.parent / filename).resolve()


def _summary(result: Any) -> None:
    from hardening.verify import SHORT, attestations_text, verdict_label

    click.echo("")
    click.echo(f"{'host':<24} {'profile':<12} {'level':<7} {'result':<15} "
               + " ".join(f"{short:>{_WIDTH[s]}}" for s, short in SHORT.items()))
    for h in result.hosts:
        counts = " ".join(f"{h.summary.get(s, '-')!s:>{_WIDTH[s]}}" for s in SHORT)
        click.echo(f"{h.name:<24} {h.profile or '-':<12} {h.sensitivity or '-':<7} "
                   f"{verdict_label(h.verdict):<15} {counts}")
        if h.message:
            click.echo(f"    {h.message}")
        if attestations_text(h.attestations):
            click.echo(f"    attestations: {attestations_text(h.attestations)}")
    for room in getattr(result, "rooms", []):
        click.echo(f"room {room.name}: {verdict_label(room.verdict)} — members {', '.join(room.members)}; "
                   f"room items: {room.summary.get('pass', 0)} pass, {room.summary.get('fail', 0)} fail, "
                   f"{room.summary.get('error', 0)} error"
                   + (f"; attestations: {attestations_text(room.attestations)}"
                      if attestations_text(room.attestations) else "")
                   + f"  ({room.json})")
    _ended(result, "not_configured", "not configured (data the check needs is missing; never a pass)")
    _ended(result, "advisory", "advisory (expected, not required; not a failure)")
    _ended(result, "waived", "waived (failed; accepted by a valid waiver until its expiry)")
    for line in result.regressions:
        click.echo(f"REGRESSION {line}")
    for line in result.notes:
        click.echo(f"note: {line}")
    click.echo(f"\nevidence: {result.run_dir / 'index.html'}")
    click.echo(f"exit {int(result.exit_code)} ({Exit(result.exit_code).name.lower()})")


_WIDTH = {"pass": 4, "fail": 4, "error": 5, "not_applicable": 3, "not_configured": 3, "advisory": 3, "waived": 3}
EXAMPLE_INVENTORY = "inventories/example_agency.py (with its agency profiles in inventories/profiles/)"


def _ended(result: Any, status: str, title: str) -> None:
    """Per host, each check that ended with ``status`` and its message (which names the key)."""
    items = result.ended(status)
    if not items:
        return
    click.echo(f"\n{title}:")
    host = None
    for item in items:
        if item.host != host:
            host = item.host
            click.echo(f"  {host}:")
        click.echo(f"    {item.check} — {' '.join(item.message.split()) or '(no message)'}")
    if status == "not_configured":
        click.echo(f"  fill the keys named above in the host's profile or inventory entry; "
                   f"{EXAMPLE_INVENTORY} shows each one")


def _register_subsystems() -> None:
    """Commands that live beside their subsystem: the lab and the evidence history."""
    from hardening.evidence import cli as evidence_cli
    from hardening.lab.cli import lab

    main.add_command(lab)
    for command in (evidence_cli.keys, evidence_cli.evidence, evidence_cli.diff, evidence_cli.schedule):
        main.add_command(command)


_register_subsystems()
