"""Design documents (designdocs, 6-18) on a real Debian 12 lab container, through the real command
line (the shipped "server" profile at sensitivity high, copied with its design-document path
replaced by /srv/sekkei, owned by group sekkei, which the host does not have yet).

1. A design-document tree left open: the directory and a diagram readable by others, a
   specification with a named ACL entry for www-data (not in the group), a subdirectory whose
   default ACL gives new files to others and a file of group users. ``hardening verify`` fails
   ``designdocs.not_readable_beyond_group`` naming them; ``deploy --dry`` lists what would
   change and changes nothing; ``hardening deploy -m designdocs`` repairs exactly that (getfacl
   afterwards) and the checks pass; a second deploy changes nothing.
2. A web server: nginx from Debian's archive (downloaded on this machine with ``apt-get
   download``: lab containers cannot reach the archive) is installed in the container and serves
   /srv/sekkei under /sekkei/. ``designdocs.not_under_web_root`` fails naming nginx's alias; the
   deploy refuses, naming the path, the root and the configuration line, and leaves the tree as it
   is (a world-readable document stays so). A site nginx cannot load makes the check an error
   and the deploy refuse for that reason. Without the alias, everything passes again.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.lab import Lab, LabHost
from tests.helpers import cli, lab_hosts

pytestmark = pytest.mark.lab

HOST = "dd-sekkei"
DOCS = "/srv/sekkei"
PERMS = "designdocs.not_readable_beyond_group"
SERVED = "designdocs.not_under_web_root"
SITE = "/etc/nginx/sites-enabled/sekkei"


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    with lab_hosts(lab, (HOST, "server", "high"), kind="container") as started:
        yield started[HOST]


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped profiles, the server's design documents in /srv/sekkei (group sekkei)."""
    out = tmp_path_factory.mktemp("profiles") / "hwprofiles"
    shutil.copytree(ROOT / "hwprofiles", out)
    server = out / "server.yaml"
    text = server.read_text()
    shipped = "      - {path: /srv/design-documents, group: design-docs}\n"
    assert shipped in text
    server.write_text(text.replace(shipped, f"      - {{path: {DOCS}, group: sekkei}}\n"))
    return out


def verify(inventory: Path, profiles: Path, evidence: Path) -> dict[str, dict[str, str]]:
    before = set(evidence.glob("*/index.json"))
    start = time.monotonic()
    proc = cli("verify", inventory, "-l", HOST, "-m", "designdocs", "--profiles", profiles, "--evidence", evidence,
               timeout=600)
    print(f"verify: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    assert proc.returncode in (0, 1, 5), proc.stdout + proc.stderr
    [index] = set(evidence.glob("*/index.json")) - before
    [entry] = json.loads(index.read_text())["hosts"]
    doc = json.loads((index.parent / entry["json"]).read_text())
    return {c["id"]: {"status": c["status"], "message": c.get("message") or "",
                      "findings": "\n".join((c.get("observed") or {}).get("findings") or [])} for c in doc["checks"]}


def deploy(inventory: Path, profiles: Path, *args: str) -> tuple[int, str]:
    start = time.monotonic()
    proc = cli("deploy", inventory, "-l", HOST, "-m", "designdocs", "--profiles", profiles, *args, timeout=900)
    print(f"deploy {' '.join(args)}: exit {proc.returncode} in {time.monotonic() - start:.1f} s")
    return proc.returncode, proc.stdout + proc.stderr


def changed(output: str) -> int:
    [row] = [line for line in output.splitlines() if line.split()[:1] == [HOST]]
    return int(row.split()[1])


def acls(host: LabHost) -> str:
    return host.run(f"sudo getfacl -R -P -p {DOCS}").stdout


LEFT_OPEN = f"""set -e
mkdir -p {DOCS}/diagrams {DOCS}/incoming
chmod 0755 {DOCS} {DOCS}/diagrams
umask 022
echo 'core-sw01 -- fw01 -- 203.0.113.0/26' > {DOCS}/diagrams/network.txt
echo 'juki-db01 REST API, port 8443' > {DOCS}/api-spec.txt
chmod 0640 {DOCS}/api-spec.txt
setfacl -m u:www-data:r {DOCS}/api-spec.txt
setfacl -d -m o::r {DOCS}/incoming
echo 'delivered by the vendor' > {DOCS}/incoming/rack-layout.txt
chgrp users {DOCS}/incoming/rack-layout.txt
chmod 0664 {DOCS}/incoming/rack-layout.txt
"""


def test_an_open_tree_fails_is_repaired_exactly_and_stays(host: LabHost, inventory: Path, profiles: Path,
                                                         tmp_path: Path) -> None:
    host.run(f"sudo sh -c {shlex.quote(LEFT_OPEN)}")
    checks = verify(inventory, profiles, tmp_path)
    assert checks[PERMS]["status"] == "fail", checks[PERMS]
    findings = checks[PERMS]["findings"]
    assert checks[PERMS]["message"].startswith("AssertionError: 10 finding(s): group sekkei does not exist; ")
    for finding in ("group sekkei does not exist", f"{DOCS} belongs to group root, not sekkei",
                    f"{DOCS}: others have r-x", f"{DOCS}/diagrams/network.txt: others have r--",
                    f"{DOCS}/api-spec.txt: user:www-data:r-- (www-data is not in group sekkei)",
                    f"{DOCS}/incoming: default:other::r-- (files created here would give others r--)",
                    f"{DOCS}/incoming/rack-layout.txt: belongs to group users, which has rw-"):
        assert finding in findings, (finding, findings)
    assert checks[SERVED]["status"] == "pass", checks[SERVED]  # no web server in the lab image

    before = acls(host)
    code, output = deploy(inventory, profiles, "--dry")
    assert code == 0, output
    assert f"would: designdocs | designdocs: group sekkei (owns {DOCS})" in output, output
    assert f"would: designdocs | designdocs: {DOCS}: remove access beyond group sekkei: " in output, output
    assert acls(host) == before

    code, output = deploy(inventory, profiles)
    assert code == 0, output
    assert changed(output) == 3, output  # the group, the directory's group, the tree
    after = acls(host)
    print(after)
    assert "other::r" not in after and "www-data" not in after and "group: users" not in after
    assert "default:other::---" in after
    assert {c: v["status"] for c, v in verify(inventory, profiles, tmp_path).items()} == {PERMS: "pass",
                                                                                         SERVED: "pass"}
    code, output = deploy(inventory, profiles)
    assert code == 0 and changed(output) == 0, output
    assert acls(host) == after


def nginx_debs(directory: Path) -> list[Path]:
    """nginx and nginx-common from Debian's archive, fetched on this machine (apt-get download)."""
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["apt-get", "download", "nginx", "nginx-common"], cwd=directory, capture_output=True,
                          text=True, timeout=300, check=False)
    debs = sorted(directory.glob("nginx*.deb"))
    if proc.returncode != 0 or len(debs) != 2:
        pytest.skip(f"nginx cannot be fetched from Debian's archive on this machine: {proc.stderr.strip()[-300:]}")
    return debs


def install_nginx(host: LabHost, debs: list[Path]) -> None:
    for deb in debs:
        subprocess.run([*host.ssh_command(), "--", f"cat > /tmp/{deb.name}"], input=deb.read_bytes(), check=True,
                       timeout=120)
    host.run("sudo env DEBIAN_FRONTEND=noninteractive dpkg -i " + " ".join(f"/tmp/{d.name}" for d in debs),
             timeout=300)


def test_a_served_tree_is_refused_and_left_as_it_is(host: LabHost, inventory: Path, profiles: Path,
                                                    tmp_path: Path) -> None:
    install_nginx(host, nginx_debs(tmp_path / "debs"))
    site = "server {\n\tlisten 8080;\n\tlocation /sekkei/ {\n\t\talias /srv/sekkei/;\n\t\tautoindex on;\n\t}\n}\n"
    host.run(f"printf %s {shlex.quote(site)} | sudo tee {SITE} >/dev/null && sudo systemctl reload nginx")
    host.run(f"sudo sh -c 'umask 022; echo draft > {DOCS}/diagrams/draft.txt'")  # left readable by others
    # What nginx answers (printed, not judged: the check reads the configuration, which says it
    # serves the tree whatever the permissions let through today).
    probe = ("import urllib.request, urllib.error\ntry:\n print(urllib.request.urlopen("
             "'http://127.0.0.1:8080/sekkei/').status)\nexcept urllib.error.HTTPError as e:\n print(e.code)")
    print("GET /sekkei/ on the container:", host.run(f"python3 -c {shlex.quote(probe)}", check=False).stdout.strip())

    checks = verify(inventory, profiles, tmp_path)
    assert checks[SERVED]["status"] == "fail", checks[SERVED]
    assert (f"{DOCS} is served: under nginx's web root {DOCS} ({SITE}: alias /srv/sekkei/)"
            in checks[SERVED]["message"]), checks[SERVED]
    assert checks[PERMS]["status"] == "fail" and f"{DOCS}/diagrams/draft.txt: others have r--" in \
        checks[PERMS]["findings"]

    before = acls(host)
    code, output = deploy(inventory, profiles)
    assert code == 1, output
    assert (f"refused: designdocs: {DOCS} is served: under nginx's web root {DOCS} ({SITE}: alias /srv/sekkei/). "
            "The deploy neither moves design documents nor changes what a web server serves") in output, output
    assert acls(host) == before  # nothing changed: the draft is still readable by others
    assert host.run(f"sudo stat -c %A {DOCS}/diagrams/draft.txt").stdout.strip() == "-rw-r--r--"

    # A site nginx cannot load: nobody can tell what is served (an error), the deploy refuses.
    host.run(f"echo 'server {{ rooot /srv; }}' | sudo tee {SITE}-broken >/dev/null")
    checks = verify(inventory, profiles, tmp_path)
    assert checks[SERVED]["status"] == "error", checks[SERVED]
    assert "nginx -T failed (exit 1)" in checks[SERVED]["message"], checks[SERVED]
    code, output = deploy(inventory, profiles)
    assert code == 1 and "refused: designdocs: cannot tell whether the design documents are served" in output, output
    assert acls(host) == before

    # The person's decision: the documents are no longer served. The deploy then repairs the tree.
    host.run(f"sudo rm {SITE} {SITE}-broken && sudo systemctl reload nginx")
    code, output = deploy(inventory, profiles)
    assert code == 0 and changed(output) == 1, output
    assert {c: v["status"] for c, v in verify(inventory, profiles, tmp_path).items()} == {PERMS: "pass",
                                                                                         SERVED: "pass"}
