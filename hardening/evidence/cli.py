"""Command-line groups for trustworthy evidence: ``keys``, ``evidence``, ``diff``, ``schedule``.

Registered on the main ``hardening`` group by hardening/cli.py. Errors are HardeningError (one
line, ``hardening: error: …``, exit 2); ``evidence verify`` exits 1 when it finds tampering.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hardening import IN_CHECKOUT, ROOT
from hardening.errors import ConfigError, Exit
from hardening.evidence import chain, fleet, history
from hardening.evidence import diff as diff_mod
from hardening.evidence import keys as keymod
from hardening.evidence import schedule as schedule_mod
from hardening.evidence.store import FILE as STORE_FILE
from hardening.evidence.store import Store, read_index
from hardening.files import write_atomic
from hardening.profiles import SENSITIVITIES

PathType = click.Path(path_type=Path)


def _evidence_option(f: Any) -> Any:
    return click.option("--evidence", "evidence_root", type=PathType, default=Path("evidence"),
                        show_default=True, help="Evidence root: the directory of run directories.")(f)


def _key_dir_option(f: Any) -> Any:
    return click.option("--dir", "key_dir", type=PathType, default=None,
                        help="Key directory (default: $HARDENING_KEY_DIR, else ~/.config/hardening/keys).")(f)


def live_run(root: Path, ref: str) -> Path:
    """A run that still has its documents (not pruned)."""
    run_dir = resolve_run(root, ref)
    if (run_dir / chain.PRUNED).exists():
        raise ConfigError(str(run_dir), "this run was pruned: only its seal is left")
    return run_dir


def resolve_run(root: Path, ref: str) -> Path:
    """A run by path, by run id (or a unique prefix of one) under ``root``, or ``latest``."""
    path = Path(ref)
    if chain.is_run_dir(path):
        return path
    runs = chain.run_dirs(root)
    if ref == "latest" and runs:
        return runs[-1]
    matches = [r for r in runs if r.name == ref] or [r for r in runs if r.name.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(r.name for r in runs[-5:]) or "none"
    what = "is ambiguous" if matches else "not found"
    raise ConfigError(str(root), f"run {ref!r} {what} (latest runs: {known})")


# -- keys ---------------------------------------------------------------------------------------

@click.group()
def keys() -> None:
    """The Ed25519 key that signs each run's seal.

    The private key (signing.key, mode 0600) never leaves the control node; hand the public
    key (signing.pub) or its fingerprint to the audit officer, who checks runs with
    `hardening evidence verify --key signing.pub`.
    """


@keys.command("init")
@_key_dir_option
@click.option("--force", is_flag=True, help="Replace an existing key (the old public key is kept in "
              "retired/ so earlier runs still verify).")
def keys_init(key_dir: Path | None, force: bool) -> None:
    """Create the signing key pair."""
    key = keymod.init(key_dir or keymod.default_dir(), force=force)
    click.echo(f"private key: {key.path} (mode 0600, keep it on this machine)")
    click.echo(f"public key:  {key.path.with_name(keymod.PUBLIC)} (give this to the audit officer)")
    click.echo(f"fingerprint: {key.fingerprint}")


@keys.command("show")
@_key_dir_option
def keys_show(key_dir: Path | None) -> None:
    """Show the signing key's fingerprint and whether it is usable."""
    directory = key_dir or keymod.default_dir()
    private = directory / keymod.PRIVATE
    if not private.exists():
        raise ConfigError(str(private), "no signing key (create one: hardening keys init)")
    try:
        key = keymod.load_private(directory)
        state = "usable (mode 0600)"
    except keymod.SigningKeyError as exc:
        key, state = None, f"REFUSED: {exc}"
    click.echo(f"private key: {private} — {state}")
    if key is not None:
        click.echo(f"fingerprint: {key.fingerprint}")
    for fp in sorted(keymod.trusted(directory)):
        if key is None or fp != key.fingerprint:
            click.echo(f"retired:     {fp}")


# -- evidence -----------------------------------------------------------------------------------

@click.group()
def evidence() -> None:
    """Check, report and prune sealed evidence.

    Every run directory is sealed by `hardening verify`: seal.json lists the sha256 of each
    file and chains the run to the one before it (and each host to its previous run);
    seal.sig signs seal.json with the Ed25519 key of `hardening keys init`.
    """


@evidence.command("verify")
@click.argument("path", required=False, type=PathType)
@_evidence_option
@click.option("--key", "key_files", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Trust only this public key (repeatable); default: the key directory's keys.")
@click.option("--key-dir", type=PathType, default=None, help="Key directory whose public keys to trust.")
@click.option("--allow-unsigned", is_flag=True, help="Report unsigned runs as warnings, not failures.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def evidence_verify(path: Path | None, evidence_root: Path, key_files: tuple[Path, ...],
                    key_dir: Path | None, allow_unsigned: bool, as_json: bool) -> None:
    """Check that evidence is exactly what was sealed.

    PATH is the evidence root (default --evidence), one run directory, or one file of a run.
    Detects changed bytes, removed or inserted files, removed, renamed or reordered runs,
    broken chains, forged or missing signatures, and documents pruned before their retention
    period. Exit 0: intact; 1: tampering found (each problem names the file or run); 2: usage.
    """
    target = path or evidence_root
    if not target.exists():
        raise ConfigError(str(target), "no such evidence root, run or file")
    trusted = keymod.trusted(key_dir, key_files) if not key_files else {
        keymod.fingerprint(k): k for k in (keymod.load_public(p) for p in key_files)}
    policy = chain.Policy(trusted=trusted, allow_unsigned=allow_unsigned)
    report = _verify(target, policy)
    _print_report(report, target, as_json)
    if not report.ok:
        raise SystemExit(int(Exit.NONCOMPLIANT))


def _verify(target: Path, policy: chain.Policy) -> chain.Report:
    if target.is_file():
        target = target.parent
    if chain.is_run_dir(target):
        return chain.verify_single(target, policy)
    indexed = read_index(target)
    report = chain.verify_tree(target, policy, indexed)
    if indexed is None:
        report.add("no-store", target / STORE_FILE, "no readable history store: removal of the "
                   "newest run(s) cannot be detected from the files alone", fatal=False)
    return report


def _print_report(report: chain.Report, target: Path, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "runs": report.runs, "files": report.files,
                               "signed": report.signed, "findings": [f.__dict__ for f in report.findings]},
                              ensure_ascii=False, indent=1))
        return
    for finding in report.findings:
        click.echo(finding.line())
    problems = sum(1 for f in report.findings if f.fatal)
    verdict = "intact" if report.ok else f"TAMPERING FOUND: {problems} problem(s)"
    click.echo(f"{target}: {report.runs} run(s), {report.files} file(s), {report.signed} signed seal(s): "
               f"{verdict}")


@evidence.command("report")
@click.argument("run", default="latest")
@_evidence_option
@click.option("--out", type=PathType, default=None,
              help="Write fleet.html and fleet.csv here instead of into the run directory.")
def evidence_report(run: str, evidence_root: Path, out: Path | None) -> None:
    """(Re)write a run's fleet report: fleet.html (hosts × clauses) and fleet.csv.

    RUN is a run id, a unique prefix of one, a run directory, or `latest` (default). The CSV
    (UTF-8 with BOM, bilingual headers) is the agency's self-inspection sheet. A sealed run's
    report is only rewritten in place when the result is byte-identical to what was sealed;
    otherwise use --out.
    """
    run_dir = live_run(evidence_root, run)
    html, text = fleet.render(run_dir)
    if out is None and (run_dir / chain.SEAL).exists():
        sealed = chain.load_sealed(run_dir).seal.get("files", {})
        for name, data in ((fleet.HTML, html), (fleet.CSV, text)):
            entry = sealed.get(name)
            if entry and entry.get("sha256") != chain.sha256_bytes(data):
                raise ConfigError(str(run_dir / name), "the run is sealed and the report would differ "
                                  "from the sealed one; write it elsewhere with --out DIR")
    target = out or run_dir
    target.mkdir(parents=True, exist_ok=True)
    write_atomic(target / fleet.HTML, html)
    write_atomic(target / fleet.CSV, text)
    click.echo(f"fleet report: {target / fleet.HTML}")
    click.echo(f"inspection sheet (CSV): {target / fleet.CSV}")


@evidence.command("prune")
@_evidence_option
@click.option("--keep", default=1, show_default=True, type=click.IntRange(1),
              help="Always keep this many newest runs.")
@click.option("--dry-run", is_flag=True, help="Say what would be pruned; delete nothing.")
def evidence_prune(evidence_root: Path, keep: int, dry_run: bool) -> None:
    """Delete the documents of runs past their retention period.

    A run beyond the newest --keep runs is pruned only when it is older than the longest
    retention period (profile evidence.retention_days) of the hosts in it. Its seal.json and
    seal.sig stay, with a pruned.json note, so the chain still verifies; the history store
    keeps its per-host summary.
    """
    if not evidence_root.is_dir():
        raise ConfigError(str(evidence_root), "no such evidence root")
    decisions = history.prune(evidence_root, keep, dry_run=dry_run)
    for d in decisions:
        action = ("would prune" if dry_run else "pruned") if d.prune else "kept"
        click.echo(f"{action} {d.run_id}: {d.reason.removeprefix('kept: ')}")
    count = sum(1 for d in decisions if d.prune)
    click.echo(f"{count} run(s) {'to prune' if dry_run else 'pruned'}, {len(decisions) - count} kept "
               f"for retention, newest {keep} kept")


@evidence.command("reindex")
@_evidence_option
def evidence_reindex(evidence_root: Path) -> None:
    """Rebuild history.sqlite from the sealed run directories (the files are the truth)."""
    if not evidence_root.is_dir():
        raise ConfigError(str(evidence_root), "no such evidence root")
    with Store(evidence_root) as store:
        count = store.reindex()
    click.echo(f"indexed {count} sealed run(s) into {evidence_root / STORE_FILE}")


# -- diff ---------------------------------------------------------------------------------------

@click.command("diff")
@click.argument("runs", nargs=-1)
@_evidence_option
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@click.option("--exit-code", is_flag=True, help="Exit 4 when a check got worse.")
def diff(runs: tuple[str, ...], evidence_root: Path, as_json: bool, exit_code: bool) -> None:
    """What changed between two runs, per host and clause.

    \b
    hardening diff                 the last two runs
    hardening diff RUN             RUN against the run before it
    hardening diff RUN_A RUN_B     RUN_A (earlier) against RUN_B (later)

    Lists per host and clause the checks that got worse (pass/n-a/advisory -> fail/error or
    not configured, not configured -> fail/error), better, otherwise changed, new or gone.
    A run is a run id, a unique prefix, a directory or `latest`.
    """
    before, after = _pair(evidence_root, runs)
    diffs = diff_mod.compare_runs(diff_mod.load_run(before), diff_mod.load_run(after))
    if as_json:
        click.echo(diff_mod.to_json(diffs, before.name, after.name))
    else:
        click.echo(diff_mod.render_text(diffs, before.name, after.name), nl=False)
    if exit_code and any(d.of("worse") for d in diffs):
        raise SystemExit(int(Exit.REGRESSION))


def _pair(root: Path, runs: tuple[str, ...]) -> tuple[Path, Path]:
    if len(runs) > 2:
        raise ConfigError("diff", "give at most two runs")
    all_runs = [r for r in chain.run_dirs(root) if not (r / chain.PRUNED).exists()]
    if len(runs) == 2:
        return live_run(root, runs[0]), live_run(root, runs[1])
    later = live_run(root, runs[0]) if runs else (all_runs[-1] if all_runs else None)
    earlier = [r for r in all_runs if later is not None and r.name < later.name]
    if later is None or not earlier:
        raise ConfigError(str(root), "need two runs to compare (found "
                          f"{len(all_runs)}); run `hardening verify` again or name two runs")
    return earlier[-1], later


# -- schedule -----------------------------------------------------------------------------------

@click.group()
def schedule() -> None:
    """Periodic verification on this control node (systemd service + timer).

    The service runs `hardening verify INVENTORY --evidence DIR`, prunes beyond --keep runs
    (never evidence younger than its retention period), logs one summary line to the journal
    and exits with verify's exit code, so a failed unit means not compliant, unreachable or
    regressed.
    """


def _unit_dir_option(f: Any) -> Any:
    return click.option("--unit-dir", type=PathType, default=None,
                        help="Write unit files here instead of systemd's directory; systemctl is then "
                        "not called (for tests and packaging).")(f)


@schedule.command("install")
@click.argument("inventory", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--local", is_flag=True, help="Verify this machine itself instead of an inventory.")
@click.option("--profile", "profile_name", default=None, help="With --local: the hardware profile.")
@click.option("--sensitivity", default=None, type=click.Choice(SENSITIVITIES),
              help="With --local: its sensitivity.")
@_evidence_option
@click.option("--every", default="1d", show_default=True, help="Interval, a systemd time span (12h, 1d, 1w).")
@click.option("--on-calendar", default=None, help="A systemd calendar expression instead of --every "
              "(e.g. 'Mon *-*-* 02:00'); missed runs are made up after downtime.")
@click.option("--keep", default=30, show_default=True, type=click.IntRange(1),
              help="Runs to keep; older ones are pruned once past their retention period.")
@click.option("--name", default=None, help="Schedule name (default: the inventory's file name).")
@click.option("--user", is_flag=True, help="A user unit (~/.config/systemd/user) instead of a system one.")
@click.option("--key-dir", type=PathType, default=None, help="Signing key directory the service uses.")
@click.option("--no-enable", is_flag=True, help="Write the unit files only; do not enable the timer.")
@click.option("--randomized-delay", default="5min", show_default=True,
              help="RandomizedDelaySec= of the timer (spreads the load of many control nodes).")
@click.option("--python", "python", default=None,
              help="Python of the machine the units are for (default: this one's); with --workdir and "
              "--env, to package units for another control node.")
@click.option("--workdir", type=PathType, default=None, help="The hardening checkout on that machine.")
@click.option("--env", "environment", multiple=True, help="Extra NAME=VALUE for the service (repeatable).")
@click.option("--profiles", "profiles_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="The agency's profile directory, passed to verify (default: the shipped one).")
@_unit_dir_option
def schedule_install(inventory: Path | None, local: bool, profile_name: str | None, sensitivity: str | None,
                     evidence_root: Path, every: str, on_calendar: str | None, keep: int,
                     name: str | None, user: bool, key_dir: Path | None, no_enable: bool,
                     randomized_delay: str, python: str | None, workdir: Path | None,
                     environment: tuple[str, ...], profiles_dir: Path | None, unit_dir: Path | None) -> None:
    """Install hardening-verify-NAME.service and .timer for INVENTORY.

    Each run: `hardening verify INVENTORY --evidence DIR` (output to the journal), then prune
    beyond --keep runs (never inside a profile's retention period), then one summary line
    (exit code, run, hosts per verdict, seal hash, signed or UNSIGNED) in the journal. The unit
    exits with verify's code: non-zero leaves it failed for monitoring. Without --unit-dir the
    files go to systemd's directory and the timer is enabled and started.
    """
    if (inventory is None) == (not local):
        raise ConfigError("schedule install", "give an INVENTORY or --local (not both)")
    if on_calendar is None:
        schedule_mod.check_every(every)
    else:
        schedule_mod.check_calendar(on_calendar)
    if randomized_delay != "0":
        schedule_mod.check_every(randomized_delay)
    key_dir = (key_dir or keymod.default_dir()).absolute()
    if python is None and not (key_dir / keymod.PRIVATE).exists():
        click.echo(f"warning: no signing key in {key_dir}: runs will be sealed UNSIGNED "
                   "(hardening keys init)", err=True)
    pairs: list[tuple[str, str]] = []
    for item in environment:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--env", f"expected NAME=VALUE, got {item!r}")
        pairs.append((key, value))
    spec = schedule_mod.Schedule(
        name=schedule_mod.unit_name(inventory, name), inventory=inventory.resolve() if inventory else None,
        evidence=evidence_root.absolute(), every=every, on_calendar=on_calendar, keep=keep, user=user,
        key_dir=key_dir, profile=profile_name, sensitivity=sensitivity, python=python or sys.executable,
        workdir=workdir or (ROOT if IN_CHECKOUT else Path.cwd()), environment=tuple(pairs),
        randomized_delay=randomized_delay, profiles=profiles_dir.resolve() if profiles_dir else None)
    for line in schedule_mod.install(spec, unit_dir, enable=not no_enable):
        click.echo(line)


@schedule.command("remove")
@click.argument("name")
@click.option("--user", is_flag=True, help="A user unit.")
@_unit_dir_option
def schedule_remove(name: str, user: bool, unit_dir: Path | None) -> None:
    """Stop, disable and delete the schedule NAME (see `hardening schedule status`)."""
    for line in schedule_mod.remove(name, unit_dir, user):
        click.echo(line)


@schedule.command("status")
@click.option("--user", is_flag=True, help="User units.")
@_unit_dir_option
def schedule_status(user: bool, unit_dir: Path | None) -> None:
    """List installed schedules, what systemd says about them, and their last run."""
    directory = unit_dir or (schedule_mod.user_dir() if user else schedule_mod.SYSTEM_DIR)
    found = schedule_mod.installed(directory)
    if not found:
        click.echo(f"no hardening schedules in {directory}")
        return
    for info in found:
        click.echo(f"{info['unit']}: {info['when']}, inventory {info['inventory']}, "
                   f"evidence {info['evidence']}")
        live = schedule_mod.live_status(info["unit"], user) if unit_dir is None else ""
        if live:
            click.echo(f"  systemd: {live}")
        runs = chain.run_dirs(Path(info["evidence"])) if info["evidence"] else []
        if runs:
            click.echo(f"  last {schedule_mod.describe_run(runs[-1])}")


__all__ = ["diff", "evidence", "keys", "schedule"]
