"""``hardening demo``: the whole job on an embedded default, on disposable lab hosts.

Sets up the lab (apt packages, Debian 12 image, golden state) and starts three hosts:

* ``demo-term1`` (emulated, profile ``terminal``, sensitivity high) and ``demo-srv1`` (emulated,
  ``server``, medium): the hosts the demo verifies and deploys;
* ``demo-svc1`` (a container): the agency's separate log host (rsyslog receiving the audit
  records) and off-site backup target (SFTP). It serves the other two and is not deployed.

Then, as an agency would:

1. the operator's part, which no deploy does: the hosts' blank backup disks formatted and
   mounted at /srv/backup, an SFTP account for the backups on demo-svc1, the restic password
   and SFTP key kept on this machine (:data:`SECRETS` in the lab directory);
2. the agency's profiles (:func:`write_profiles`, in ``<lab>/demo-hwprofiles``): the shipped
   ``terminal`` and ``server`` with what only an agency can name (personal-data and staging
   paths, the log host, both backup repositories, the data disk for /srv/pii, the terminals'
   design documents and networks);
3. verify (before), deploy every measure with ``--format-data-disk`` for each host's blank
   ``virtio-spare`` disk (LUKS2 for /srv/pii), put sample personal data in /srv/pii and run the
   nightly backup once, verify again (after), and say what still fails and why.

Nothing outside the lab is touched but the evidence directory and, if there is none, the
evidence signing key.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hardening import HWPROFILES, deploying
from hardening import inventory as inventory_mod
from hardening import verify as verify_mod
from hardening.errors import Exit, worst
from hardening.evidence import keys, model
from hardening.measures import audit, backup
from hardening.profiles import Profiles, merged

HOSTS = (("demo-term1", "terminal", "high"), ("demo-srv1", "server", "medium"))
SERVICE = "demo-svc1"  # log host and SFTP backup target (a container)
BACKUP_ACCOUNT = "pii-backup"
BACKUP_DISK = "/dev/disk/by-id/virtio-backup"  # the lab VM's blank 512 MB disk
DATA_DISK = "/dev/disk/by-id/virtio-spare"  # the lab VM's blank 1 GB disk, LUKS2 for /srv/pii
PII = "/srv/pii"
SECRETS = "demo-secrets"
PROFILES = "demo-hwprofiles"
# Sample personal data, written after the deploy (the data disk must be blank and /srv/pii
# empty when it is formatted): what the backup restores and compares, what audit watches.
SAMPLE = {f"{PII}/住民票 2024.csv": "氏名,住所\n山田太郎,東京都千代田区\n",
          f"{PII}/tax/2025.csv": "id,amount\n1,100\n"}

# Checks that no deploy can make pass on a lab host, and why. The demo lists them after the
# second verification; anything else still failing there is a real problem (exit 1).
NOT_DEPLOYABLE = {
    "encryption.root_encrypted": "the deploy never re-encrypts a disk; the lab's root is a plain image",
    "patching.pending_security_updates": "apply_security_updates is false by default (change management)",
    "patching.no_reboot_pending": "follows pending updates (a newer kernel installed later)",
    "encryption.tpm": "hardware: the terminal profile requires a TPM at sensitivity high; QEMU's lab machine has none",
    "encryption.secure_boot": "hardware: required at sensitivity high; the lab boots its kernel directly, no UEFI",
}


@dataclass(frozen=True)
class Service:
    """What the profiles need to know of the log host and backup target."""

    address: str
    host_key: str  # "ssh-ed25519 AAAA..." as the lab generated it (pinned, never read over the network)
    password_file: Path
    identity_file: Path


def agency_data(role: str, service: Service) -> dict[str, Any]:
    """The ``measures`` an agency adds to the shipped profile of ``role`` for the demo.

    >>> svc = Service("10.233.1.2", "ssh-ed25519 AAAA", Path("/k/password"), Path("/k/sftp-key"))
    >>> agency_data("terminal", svc)["backup"]["repositories"][1]["location"]
    'sftp:pii-backup@10.233.1.2:/home/pii-backup/restic/terminal'
    """
    data: dict[str, Any] = {
        "auth": {"personal_data": [{"path": PII, "group": "pii", "mode": "0750"}]},
        "encryption": {"data_disk": {"device": DATA_DISK, "mount_point": PII}},
        "audit": {"log_host": service.address},
        "tmpdata": {"staging_paths": ["/srv/pii-staging"]},
        "terminal": {"expected_networks": ["10.0.2.0/24"]},  # QEMU's user network, where the lab's VMs are
        "backup": {
            "password_file": str(service.password_file),
            "keep": {"last": 3, "daily": 7},
            "repositories": [
                {"name": "backup-disk", "location": "/srv/backup/restic"},
                {"name": "offsite", "location": f"sftp:{BACKUP_ACCOUNT}@{service.address}:"
                                                f"/home/{BACKUP_ACCOUNT}/restic/{role}",
                 "host_keys": [service.host_key], "identity_file": str(service.identity_file),
                 # sntrup761 (OpenSSH's default) costs seconds a connection under emulation
                 "kex_algorithms": ["curve25519-sha256"]},
            ],
        },
    }
    if role == "terminal":  # the shipped server profile names a design-document store already
        data["designdocs"] = {"paths": [{"path": "/srv/design-documents", "group": "design-docs"}]}
    return data


def write_profiles(directory: Path, service: Service, shipped: Path = HWPROFILES) -> Path:
    """The agency's profile directory: ``terminal`` and ``server`` as shipped plus
    :func:`agency_data` (the other shipped profiles are found after it). Returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for role in ("terminal", "server"):
        data = yaml.safe_load((shipped / f"{role}.yaml").read_text(encoding="utf-8"))
        data["measures"] = merged(data.get("measures") or {}, agency_data(role, service))
        text = (f"# generated by `hardening demo`: hwprofiles/{role}.yaml with what an agency names\n"
                + yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        (directory / f"{role}.yaml").write_text(text, encoding="utf-8")
    Profiles(directory).resolve("terminal")  # a broken generation is an error here, not in a deploy
    Profiles(directory).resolve("server")
    return directory


def _secrets(directory: Path) -> tuple[Path, Path]:
    """The restic password and the SFTP key, on this machine (the escrow), made once."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    password, key = directory / "restic-password", directory / "sftp-key"
    if not password.exists():
        password.write_text("demo restic password: kept on the control machine\n", encoding="utf-8")
        password.chmod(0o600)
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hardening-demo-backup",
                        "-f", str(key)], check=True)
    return password, key


def _prepare_service(svc: Any, public_key: str) -> None:
    """demo-svc1: rsyslog receiving audit records; an SFTP account holding the backups."""
    svc.run(f"printf %s {shlex.quote(audit.receiver_text())} | sudo tee {audit.RECEIVER_FILE} >/dev/null && "
            "sudo systemctl enable --now rsyslog.service")
    svc.run(f"id {BACKUP_ACCOUNT} >/dev/null 2>&1 || sudo useradd -m -s /bin/sh {BACKUP_ACCOUNT}; "
            f"sudo install -d -m 700 -o {BACKUP_ACCOUNT} -g {BACKUP_ACCOUNT} /home/{BACKUP_ACCOUNT}/.ssh && "
            f"echo {shlex.quote(public_key)} | sudo tee /home/{BACKUP_ACCOUNT}/.ssh/authorized_keys >/dev/null")


def _prepare_host(host: Any) -> None:
    """The host's blank backup disk, formatted and mounted at /srv/backup (the deploy never formats it)."""
    host.run(f"sudo mkfs.ext4 -q -L backup {BACKUP_DISK} && sudo mkdir -p /srv/backup && "
             f"echo 'LABEL=backup /srv/backup ext4 defaults,nofail 0 2' | sudo tee -a /etc/fstab >/dev/null && "
             "sudo mount /srv/backup", timeout=300)


def _operators_part(labdir: Path, service_host: Any, hosts: list[Any]) -> Path:
    """What an agency's operator does before the first deploy; returns the agency's profiles."""
    password, sftp_key = _secrets(labdir / SECRETS)
    _prepare_service(service_host, sftp_key.with_name(sftp_key.name + ".pub").read_text().strip())
    for host in hosts:
        _prepare_host(host)
    [host_key] = [" ".join(k.split()[:2]) for k in service_host.host_keys if k.startswith("ssh-ed25519 ")]
    return write_profiles(labdir / PROFILES, Service(service_host.address, host_key, password, sftp_key))


def _agency_work(host: Any) -> None:
    """After the deploy: personal data arrives in /srv/pii (on the encrypted data disk) and the
    nightly backup runs once, now."""
    writes = " && ".join(f"printf %s {shlex.quote(text)} | sudo tee {shlex.quote(path)} >/dev/null"
                         for path, text in SAMPLE.items())
    host.run(f"sudo install -d -m 0750 -g pii {PII}/tax && {writes} && sudo chgrp -R pii {PII} && "
             f"sudo chmod 0640 {' '.join(shlex.quote(p) for p in SAMPLE)}")
    host.run(f"sudo systemctl start {backup.SERVICE}", timeout=900)


@dataclass
class DemoResult:
    before: verify_mod.RunResult
    after: verify_mod.RunResult
    deploy: deploying.DeployResult

    def remaining(self) -> list[tuple[str, str, str]]:
        """(host, check id, why) for every check still failing after the deploy."""
        out = []
        for host in self.after.hosts:
            if host.json is None:
                continue
            doc = model.read(self.after.run_dir / host.json)
            for check in doc["checks"]:
                if check["status"] in ("fail", "error"):
                    out.append((host.name, check["id"], NOT_DEPLOYABLE.get(check["id"], "")))
        return out

    @property
    def exit_code(self) -> Exit:
        """0 when the demo ran through and only non-deployable findings remain."""
        unexplained = [r for r in self.remaining() if not r[2]]
        codes = [self.deploy.exit_code, self.after.exit_code if unexplained else Exit.OK]
        if self.after.exit_code in (Exit.UNREACHABLE, Exit.CONFIG):
            codes.append(self.after.exit_code)
        return worst(*codes)


def _verify(inventory: Path, evidence: Path, profiles_dir: Path, say: Callable[[str], None]) -> verify_mod.RunResult:
    profiles = Profiles(profiles_dir)
    inv = inventory_mod.load(inventory, profiles)
    plans = verify_mod.plans_from_inventory(inv, (), profiles, verify_mod.selected(()))
    return verify_mod.run(plans, evidence_root=evidence, inventory=inventory, parallel=len(plans),
                          progress=say)


def run(evidence: Path, keep: bool, say: Callable[[str], None]) -> DemoResult:
    from hardening.lab import Lab, LabError

    lab = Lab()
    names = [name for name, _, _ in HOSTS]
    running = [n for n in [*names, SERVICE] if (lab.directory / "hosts" / n).exists()]
    if running:
        raise LabError(f"{', '.join(running)} still running in {lab.directory} (an earlier `hardening demo "
                       "--keep`?): stop them with `hardening lab stop --all`, then run the demo again")
    say(f"[1/7] lab setup in {lab.directory} (first run builds a Debian 12 image: a few minutes)")
    lab.setup()
    if keys.load_private() is None:
        key = keys.init(keys.default_dir())
        say(f"      created the evidence signing key in {keys.default_dir()} ({key.fingerprint})")
    started: list[str] = []
    try:
        say(f"[2/7] starting {', '.join(f'{n} ({p}, sensitivity {s})' for n, p, s in HOSTS)} and {SERVICE} "
            "(log host and backup target, a container)")
        service_host = lab.start(SERVICE, profile="server", sensitivity="medium", kind="container")
        started.append(SERVICE)
        hosts = lab.start_many(HOSTS)
        started += names
        say("[3/7] the operator's part: backup disks formatted and mounted, an SFTP account on "
            f"{SERVICE}, rsyslog receiving there; the agency's profiles")
        profiles_dir = _operators_part(lab.directory, service_host, hosts)
        inventory = lab.write_inventory(names=names)
        say(f"      inventory: {inventory}; profiles: {profiles_dir}")
        say("[4/7] verify before the deploy")
        before = _verify(inventory, evidence, profiles_dir, say)
        disks = tuple(f"{name}:{DATA_DISK}" for name in names)
        say(f"[5/7] deploy every measure (--format-data-disk {' '.join(disks)})")
        deployed = deploying.run(inventory_mod.load(inventory, Profiles(profiles_dir)), limit=(), measures=(),
                                 dry=False, parallel=len(HOSTS), profiles_dir=profiles_dir, format_data_disks=disks)
        say(f"[6/7] the agency's work: sample personal data in {PII}, the nightly backup run once")
        for host in hosts:
            try:
                _agency_work(host)
            except LabError as exc:  # its deploy failed: the verify after says what is missing
                say(f"      {exc}")
        say("[7/7] verify after the deploy")
        after = _verify(inventory, evidence, profiles_dir, say)
    finally:
        if not keep:
            for name in started:
                lab.stop(name)
    return DemoResult(before, after, deployed)
