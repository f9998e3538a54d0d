"""backup (6-17): the profile, the desired state and the readers of restic's output, no host.

The restic texts are what Debian 12's restic 0.14.0 printed on a lab VM (a local repository on
the second disk, an SFTP repository on a lab container): ``snapshots --json``, the errors of a
missing repository, of a missing password file and of an SFTP target that does not answer,
``check`` of a sound repository and of one with a pack file removed, ``restore`` of a sample.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pydantic
import pytest

from hardening.measures import backup as measure
from hardening.profiles import Profiles

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHYiWCD6+UAKt3p0awNqVhMTGU41JFQtil1fOoH/XIRc"
LOCAL = measure.Repository(name="backup-disk", location="/srv/backup/restic")
SFTP = measure.Repository(name="offsite", location="sftp:backup@10.233.2.2:/home/backup/restic/web1",
                          host_keys=[KEY], identity_file="/etc/secrets/key")
SETTINGS = measure.Settings(repositories=[LOCAL, SFTP], password_file="/etc/secrets/pw")

SNAPSHOTS = ('[{"time":"2026-12-02T05:21:43.308106408Z","tree":"71c46ea0","paths":["/srv/pii"],'
             '"hostname":"bk-vm","username":"root","tags":["hardening"],"id":"c07e9593aa","short_id":"c07e9593"}]\n')
MISSING_LOCAL = ("Fatal: unable to open config file: stat /srv/backup/restic/config: no such file or directory\n"
                 "Is there a repository at the following location?\n/srv/backup/restic\n")
MISSING_SFTP = ("Fatal: unable to open config file: Lstat: file does not exist\n"
                "Is there a repository at the following location?\n"
                "sftp:backup-lab@10.233.2.2:/home/backup-lab/restic/bk-vm\n")
NO_PASSWORD = "Resolving password failed: Fatal: /etc/hardening/backup/password does not exist\n"
UNREACHABLE = ("Fatal: unable to open repository at sftp:pii-backup@10.233.1.2:/home/pii-backup/restic/bk-host: "
               "unable to start the sftp session, error: EOF\n")  # the target's sshd stopped
CHECK_OK = ("using temporary cache in /tmp/restic-check-cache-1677039833\ncreate exclusive lock for repository\n"
            "load indexes\ncheck all packs\ncheck snapshots, trees and blobs\n[0:00] 100.00%  1 / 1 snapshots\n\n"
            "no errors were found\n")
CHECK_PACK = ("using temporary cache in /tmp/restic-check-cache-1236733215\ncreate exclusive lock for repository\n"
              "load indexes\ncheck all packs\npack b057d29a8fed: does not exist\ncheck snapshots, trees and blobs\n"
              "[0:00] 100.00%  1 / 1 snapshots\n\nFatal: repository contains errors\n")
RESTORING = ("restoring <Snapshot c07e9593 of [/srv/pii] at 2026-12-02 05:21:43.308106408 +0000 UTC by root@bk-vm> "
             "to /tmp/tmp.x/r\n")


def b64(text: str) -> str:
    import base64
    return base64.b64encode(text.encode()).decode()


# -- the profile ---------------------------------------------------------------------------------

def test_shipped_profiles_name_no_repository_so_nothing_is_observed() -> None:
    for name in ("terminal", "server", "server-room"):
        profile = Profiles().resolve(name)
        assert not measure.configured(profile.measure("backup"))
        assert measure.MEASURE.observe(profile) == []


def test_sftp_needs_pinned_host_keys_and_a_key_and_repositories_need_a_password() -> None:
    with pytest.raises(pydantic.ValidationError, match="needs host_keys"):
        measure.Repository(name="x", location="sftp:u@h:/p", identity_file="/k")
    with pytest.raises(pydantic.ValidationError, match="needs identity_file"):
        measure.Repository(name="x", location="sftp:u@h:/p", host_keys=[KEY])
    with pytest.raises(pydantic.ValidationError, match="not a public host key"):
        measure.Repository(name="x", location="sftp:u@h:/p", host_keys=["10.0.0.1 " + KEY], identity_file="/k")
    with pytest.raises(pydantic.ValidationError, match="for SFTP repositories only"):
        measure.Repository(name="x", location="/srv/b", host_keys=[KEY])
    with pytest.raises(pydantic.ValidationError, match="expected an absolute directory"):
        measure.Repository(name="x", location="s3:bucket/x")
    with pytest.raises(pydantic.ValidationError, match="password_file"):
        measure.Settings(repositories=[LOCAL])
    with pytest.raises(pydantic.ValidationError, match="used twice"):
        measure.Settings(repositories=[LOCAL, LOCAL], password_file="/p")
    with pytest.raises(pydantic.ValidationError, match="keeps nothing"):
        measure.Keep(daily=0, weekly=0, monthly=0)
    with pytest.raises(pydantic.ValidationError, match="OnCalendar"):
        measure.Settings(schedule="daily; rm -rf /")


def test_a_bad_repository_in_a_profile_names_the_file_and_the_key(tmp_path: Path) -> None:
    from hardening.errors import ConfigError

    (tmp_path / "site.yaml").write_text("name: site\nextends: server\nmeasures:\n  backup:\n    password_file: /p\n"
                                        "    repositories: [{name: offsite, location: 'sftp:u@h:/p'}]\n")
    with pytest.raises(ConfigError) as info:
        Profiles(tmp_path).resolve("site")
    assert "site.yaml" in str(info.value) and "measures.backup.repositories" in str(info.value)
    assert "host_keys" in str(info.value)


def test_paths_default_to_the_personal_data_paths() -> None:
    auth = SimpleNamespace(personal_data=[SimpleNamespace(path="/srv/pii"), SimpleNamespace(path="/srv/hr")])
    profile = SimpleNamespace(measure=lambda n: {"backup": SETTINGS, "auth": auth}[n])
    assert measure.data_paths(profile) == ["/srv/pii", "/srv/hr"]
    own = SETTINGS.model_copy(update={"paths": ["/data"]})
    profile = SimpleNamespace(measure=lambda n: {"backup": own, "auth": auth}[n])
    assert measure.data_paths(profile) == ["/data"]
    commands = measure.observe(profile)
    assert measure.snapshots_command(SFTP) in commands and any("find /data" in c for c in commands)


# -- the desired state ---------------------------------------------------------------------------

def test_sftp_never_accepts_an_unknown_host_key() -> None:
    command = measure.ssh_command(SFTP)
    assert "-o StrictHostKeyChecking=yes" in command and "-o BatchMode=yes" in command
    assert "-o UserKnownHostsFile=/etc/hardening/backup/offsite.known_hosts" in command
    assert "-o GlobalKnownHostsFile=/dev/null" in command and "-F /dev/null" in command
    assert measure.known_hosts(SFTP) == f"10.233.2.2 {KEY}\n"
    other = SFTP.model_copy(update={"port": 2222})
    assert measure.known_hosts(other) == f"[10.233.2.2]:2222 {KEY}\n"
    assert "-p 2222 backup@10.233.2.2 -s sftp" in measure.ssh_command(other)


def test_the_script_backs_up_to_every_repository_with_the_retention() -> None:
    text = measure.script(SETTINGS, ["/srv/pii", "/srv/hr"])
    assert "--keep-daily=7 --keep-weekly=4 --keep-monthly=12" in text
    assert "backup --tag hardening --host \"$host\" -- /srv/pii /srv/hr" in text
    assert "to backup-disk -r /srv/backup/restic\n" in text
    assert "to offsite -r sftp:backup@10.233.2.2:/home/backup/restic/web1 -o 'sftp.command=ssh -i " in text
    assert f"export RESTIC_PASSWORD_FILE={measure.PASSWORD}" in text


@pytest.mark.skipif(not shutil.which("sh"), reason="sh missing")
def test_the_script_goes_on_after_a_failed_repository_and_fails_naming_it(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "restic").write_text('#!/bin/sh\necho "restic $*" >> "$LOG"\ncase "$*" in *offsite*) exit 1;; esac\n')
    (bin_dir / "restic").chmod(0o755)
    script = tmp_path / "job"
    script.write_text(measure.script(SETTINGS, ["/srv/pii"]))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(tmp_path / "log")}
    proc = subprocess.run(["sh", str(script)], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 1 and "backup failed for: offsite" in proc.stderr
    log = (tmp_path / "log").read_text()
    assert "-r /srv/backup/restic forget --prune" in log  # the local one ran to the end


def test_timer_unit_follows_the_schedule() -> None:
    text = measure.timer_unit(SETTINGS.model_copy(update={"schedule": "*-*-* 02:30"}))
    assert "OnCalendar=*-*-* 02:30\n" in text and "Persistent=true" in text


# -- reading restic ------------------------------------------------------------------------------

def test_snapshots_missing_unreachable_and_unreadable() -> None:
    opened = measure.parse_snapshots(SNAPSHOTS, "", 0)
    assert opened.state == "ok" and opened.newest == datetime(2026, 12, 2, 5, 21, 43, 308106, UTC)
    assert measure.parse_snapshots("[]", "", 0).newest is None
    assert measure.parse_snapshots("", MISSING_LOCAL, 1).state == "missing"
    assert measure.parse_snapshots("", MISSING_SFTP, 1).state == "missing"
    unreachable = measure.parse_snapshots("", UNREACHABLE, 1)
    assert unreachable.state == "error" and "unable to open repository" in unreachable.error
    assert measure.parse_snapshots("", NO_PASSWORD, 1).state == "error"
    assert "timed out" in measure.parse_snapshots("", "", 124).error
    with pytest.raises(ValueError):
        measure.parse_snapshots("Fatal: nonsense", "", 0)
    with pytest.raises(ValueError):
        measure.parse_snapshots('[{"time": "yesterday"}]', "", 0)


def test_freshness_names_the_repository() -> None:
    opened = measure.parse_snapshots(SNAPSHOTS, "", 0)
    soon = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    assert measure.freshness_problem(LOCAL, opened, soon, 3600) is None
    late = measure.freshness_problem(LOCAL, opened, datetime(2026, 12, 3, 12, 0, tzinfo=UTC), 26 * 3600)
    assert late and late.startswith("repository backup-disk (/srv/backup/restic): the newest snapshot is")
    gone = measure.freshness_problem(SFTP, measure.parse_snapshots("", UNREACHABLE, 1), soon, 3600)
    assert gone and gone.startswith("repository offsite (sftp:") and "cannot be opened" in gone
    assert "holds no snapshot" in str(measure.freshness_problem(LOCAL, measure.Opened("ok"), soon, 3600))


def verify_output(check: str, rc: int, files: list[tuple[int, float, str]] | None = None) -> str:
    out = f"{check}CHECK {rc}\n"
    if rc:
        return out + "RESTORE skipped\n"
    out += RESTORING + "RESTORE 0\n"
    for cmp, ctime, path in files or []:
        out += f"FILE {cmp} {ctime} 12 {b64(path)}\n"
    return out


def test_check_and_restore_are_read_and_name_the_repository() -> None:
    taken = datetime(2026, 12, 2, 5, 21, 43, tzinfo=UTC).timestamp()
    good = measure.parse_verify(verify_output(CHECK_OK, 0, [(0, taken - 99, "/srv/pii/住民票 2024.csv"),
                                                           (0, taken + 5, "/srv/pii/new.csv")]), 0)
    assert measure.check_problem(LOCAL, good) is None
    assert good.snapshot == "c07e9593" and good.snapshot_time == datetime(2026, 12, 2, 5, 21, 43, 308106, UTC)
    problems, compared, changed = measure.restore_problems(LOCAL, good)
    assert problems == [] and [f.path for f in compared] == ["/srv/pii/住民票 2024.csv"]
    assert [f.path for f in changed] == ["/srv/pii/new.csv"]

    differs = measure.parse_verify(verify_output(CHECK_OK, 0, [(1, taken - 9, "/srv/pii/a"), (2, taken - 9, "/b")]), 0)
    problems, _, _ = measure.restore_problems(SFTP, differs)
    assert problems[0].startswith("repository offsite (sftp:") and "/srv/pii/a" in problems[0]
    assert "differs" in problems[0] and "missing from the restore" in problems[1]

    broken = measure.parse_verify(verify_output(CHECK_PACK, 1), 0)
    problem = measure.check_problem(LOCAL, broken)
    assert problem and problem.startswith("repository backup-disk (/srv/backup/restic): restic check failed")
    assert "pack b057d29a8fed: does not exist" in problem
    assert measure.restore_problems(LOCAL, broken)[0] == [
        "repository backup-disk (/srv/backup/restic): no restore test: restic check failed"]

    stale = measure.parse_verify(verify_output(CHECK_OK, 0, [(0, taken + 1, "/srv/pii/a")]), 0)
    assert "nothing could be compared" in measure.restore_problems(LOCAL, stale)[0][0]
    empty = measure.parse_verify(f"{CHECK_OK}CHECK 0\nRESTORE nothing\n", 0)
    assert measure.restore_problems(LOCAL, empty) == ([], [], [])
    failed = measure.parse_verify(f"{CHECK_OK}CHECK 0\nFatal: no snapshot found\nRESTORE 1\n", 0)
    assert "restore of the latest snapshot failed" in measure.restore_problems(LOCAL, failed)[0][0]


def test_a_cut_or_garbled_verification_is_an_error_not_a_pass() -> None:
    with pytest.raises(ValueError, match="did not finish"):
        measure.parse_verify(CHECK_OK, 0)
    with pytest.raises(ValueError, match="unreadable line"):
        measure.parse_verify(verify_output(CHECK_OK, 0) + "FILE zero\n", 0)


@pytest.mark.skipif(not shutil.which("bash"), reason="bash missing")
def test_the_verification_script_compares_the_oldest_files(tmp_path: Path) -> None:
    """The observed command itself, against a fake restic that 'restores' a changed copy of one file."""
    data = tmp_path / "pii"
    data.mkdir()
    for name in ("a b.csv", "c.csv", "d*.csv"):
        (data / name).write_text(name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "restic").write_text(
        '#!/bin/bash\ncase "$*" in *check*) echo "no errors were found"; exit 0;; esac\n'
        't=""; prev=""; for a in "$@"; do [ "$prev" = --target ] && t=$a; prev=$a; done\n'
        f'echo "{RESTORING.strip()}"; mkdir -p "$t{data}"; cp -a {data}/. "$t{data}/"; '
        f'echo changed > "$t{data}/c.csv"\n')
    (bin_dir / "restic").chmod(0o755)
    command = measure.verify_command(LOCAL, [str(data)], 5)
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=False,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    verified = measure.parse_verify(proc.stdout, proc.returncode)
    assert verified.check_rc == 0 and verified.restore == "0"
    assert {f.path: f.cmp for f in verified.files} == {f"{data}/a b.csv": 0, f"{data}/c.csv": 1}


# -- the job, the secrets, the places ---------------------------------------------------------------

def test_systemctl_cat_sections_and_drop_ins() -> None:
    text = f"# {measure.SERVICE_PATH}\n{measure.service_unit()}"
    sections = measure.parse_cat(text, 0, measure.SERVICE)
    assert measure.unit_problems(sections, measure.SERVICE_PATH, measure.service_unit()) == []
    dropped = text + "\n# /etc/systemd/system/hardening-backup.service.d/x.conf\n[Service]\nExecStart=\n"
    problems = measure.unit_problems(measure.parse_cat(dropped, 0, measure.SERVICE), measure.SERVICE_PATH,
                                     measure.service_unit())
    assert problems == ["the drop-in /etc/systemd/system/hardening-backup.service.d/x.conf changes the unit"]
    assert "not loaded" in measure.unit_problems(measure.parse_cat("", 1, measure.SERVICE), measure.SERVICE_PATH,
                                                 "x")[0]


def test_a_changed_retention_is_named() -> None:
    wanted = measure.script(SETTINGS, ["/srv/pii"])
    changed = wanted.replace("--keep-daily=7", "--keep-daily=1")
    [problem] = measure.script_problems(changed, 0, SETTINGS, ["/srv/pii"])
    assert "--keep-daily=1" in problem and "line" in problem


def test_secret_files_must_be_roots_alone() -> None:
    stats = measure.parse_stats(f"{measure.DIRECTORY}|directory|root|root|700\n"
                                f"{measure.PASSWORD}|regular file|root|root|644\n"
                                f"{measure.DIRECTORY}/offsite.key|absent\n")
    problems = measure.secret_problems(stats, measure.secret_files(SETTINGS))
    assert problems == [f"{measure.PASSWORD} has mode 0644: readable beyond root",
                        f"{measure.DIRECTORY}/offsite.key does not exist"]
    with pytest.raises(ValueError):
        measure.parse_stats("garbage")


def test_places_are_separate_devices_or_hosts() -> None:
    devices = {"/srv/pii": "/dev/vda", "/srv/backup/restic": "/dev/vde"}
    assert measure.separation_problems(SETTINGS, devices, ["/srv/pii"]) == []
    same = {"/srv/pii": "/dev/vda", "/srv/backup/restic": "/dev/vda"}
    [problem] = measure.separation_problems(SETTINGS, same, ["/srv/pii"])
    assert problem.startswith("repository backup-disk (/srv/backup/restic) is on /dev/vda")
    one = SETTINGS.model_copy(update={"repositories": [LOCAL]})
    assert "not in two separate places" in measure.separation_problems(one, devices, ["/srv/pii"])[0]
    assert measure.parse_source("/srv/backup/restic\t/dev/vde[/sub]\n") == ("/srv/backup/restic", "/dev/vde")
