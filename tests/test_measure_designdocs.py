"""designdocs (6-18): desired state, ACL and web-root reading (hardening.measures._webroots), and
the deploy's repairs, no host.

The texts under tests/data/designdocs/ are real output captured on a Debian 12 lab container
(acl 2.3.1, nginx 1.22.1, apache2 2.4.71, lighttpd 1.4.69 from Debian's archive) with the very
commands the measure observes: ``getfacl -R -P -p`` of a tree with ACLs, default ACLs, a masked
entry, an entry for a removed account and a name with a newline; ``nginx -T``/``-V`` of Debian's
default site and of an added site (a variable root, an alias onto the design documents, a
regex user-directory alias, a quoted root); ``apache2ctl -S``/``-M`` and the files of
``-t -D DUMP_INCLUDES`` for Debian's default and with mod_userdir, mod_vhost_alias and a site
(Alias, AliasMatch, an ``<IfModule>`` of a module that is not loaded, an ``<IfDefine !...>``,
a continued line, VirtualDocumentRoot); ``lighttpd -p`` with debian-doc, userdir, simple-vhost
and a conditional document root built from a variable (its 1,500-line mimetype list shortened).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pydantic
import pytest

from hardening.measures import _paths
from hardening.measures import _webroots as web
from hardening.measures import auth as auth_measure
from hardening.measures import designdocs as measure
from hardening.observe import Observation, Observations
from hardening.profiles import Profiles

DATA = Path(__file__).parent / "data" / "designdocs"
DD = measure.DesignDocuments(path="/srv/dd", group="design-docs")


def data(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def members() -> set[str]:
    return _paths.group_members(data("group-design-docs.txt"), data("passwd.txt"))


def fake(results: dict[str, tuple[int, str, str]]) -> Observations:
    """Observations of a host that gave these (rc, stdout, stderr); others exit 127."""
    out = {c: Observation(f"o{i}", c, rc, so, se, 0.0) for i, (c, (rc, so, se)) in enumerate(results.items())}
    for i, command in enumerate(measure.observe(SimpleNamespace(measure=lambda n: measure.Settings(paths=[DD])))):
        out.setdefault(command, Observation(f"x{i}", command, 127, "", f"{command.split()[0]}: not found", 0.0))
    return Observations(out)


# -- the profile ---------------------------------------------------------------------------------

def test_default_is_empty_and_the_shipped_server_names_the_store() -> None:
    assert measure.Settings().paths == []
    profiles = Profiles()
    for name in ("server", "server-room"):
        [store] = profiles.resolve(name, "high").measure("designdocs").paths
        assert (store.path, store.group, store.mode) == (measure.STORE, "design-docs", "0750")
    assert profiles.resolve("terminal", "high").measure("designdocs").paths == []


@pytest.mark.parametrize(("path", "why"), [
    ("/", "top-level"), ("/srv", "top-level"), ("/etc/design", "system tree"), ("/usr/share/doc", "system tree"),
    ("/srv/../etc/x", "normalised"), ("/srv/docs/", "normalised"), ("srv/docs", "pattern"),
])
def test_paths_the_deploy_must_never_touch_are_refused(path: str, why: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=why):
        measure.DesignDocuments(path=path, group="design-docs")


def test_a_world_mode_nested_or_repeated_paths_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="world"):
        measure.DesignDocuments(path="/srv/dd", group="dd", mode="0755")
    with pytest.raises(pydantic.ValidationError, match="inside /srv/dd"):
        measure.Settings(paths=[DD, measure.DesignDocuments(path="/srv/dd/sub", group="other")])
    with pytest.raises(pydantic.ValidationError, match="named twice"):
        measure.Settings(paths=[DD, DD])


def test_observe_is_empty_without_paths_and_shares_commands_with_auth() -> None:
    assert measure.observe(SimpleNamespace(measure=lambda n: measure.Settings())) == []
    commands = measure.observe(SimpleNamespace(measure=lambda n: measure.Settings(paths=[
        DD, measure.DesignDocuments(path="/srv/dia grams", group="net")])))
    assert len(commands) == len(set(commands))
    assert "getfacl -R -P -p -- '/srv/dia grams'" in commands and "nginx -T" in commands
    # The same strings as auth's: a directory named by both measures is observed once.
    assert {auth_measure.dir_stat("/srv/dd"), auth_measure.group_entry("design-docs"),
            auth_measure.GETENT_PASSWD} <= set(commands)


# -- ACLs as getfacl prints them ---------------------------------------------------------------------

def test_getfacl_output_is_read_with_escapes_defaults_and_effective_rights() -> None:
    tree = {a.path: a for a in measure.parse_getfacl(data("getfacl-dd.txt"))}
    assert next(iter(tree)) == "/srv/dd"
    assert "/srv/dd/we ird\nname\\x.txt" in tree
    sub = tree["/srv/dd/sub"]
    assert str(sub.get("user", "bob")) == "user:bob:r--"
    assert str(sub.get("other", default=True)) == "default:other::r-x"
    net = tree["/srv/dd/net.pdf"]
    alice = net.get("user", "alice")
    assert alice is not None and (alice.perms, net.effective(alice)) == ("rw-", "-w-")
    assert tree["/srv/dd/private.txt"].owner == "bob"


@pytest.mark.parametrize("text", [
    "# file: /srv/dd\n# owner: root\n# group: dd\nuser::rwx\ngroup::r-x\nother::---\nwhat is this\n",
    "# file: /srv/dd\n# owner: root\nuser::rwx\ngroup::r-x\nother::---\n",
    "# file: /srv/dd\n# owner: root\n# group: dd\nuser::rwx\nother::---\n",
    "# file: /srv/dd\n# owner: root\n# group: dd\nuser::rwz\ngroup::r-x\nother::---\n",
    "getfacl: /srv/dd: Permission denied\n",
])
def test_getfacl_output_that_cannot_be_read_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="getfacl output"):
        measure.parse_getfacl(text)


def test_exposures_of_the_real_tree() -> None:
    found = measure.exposures(measure.parse_getfacl(data("getfacl-dd.txt")), "design-docs", members(), "/srv/dd")
    assert [(e.path, e.kind, e.who) for e in found] == [
        ("/srv/dd/we ird\nname\\x.txt", "other", ""),
        ("/srv/dd/private.txt", "user", "4242"),                 # an account that no longer exists
        ("/srv/dd/sub", "user", "bob"),
        ("/srv/dd/sub", "other", ""),
        ("/srv/dd/sub", "default-user", "bob"),
        ("/srv/dd/sub", "default-other", ""),
        ("/srv/dd/sub/copied.odt", "user", "bob"),
        ("/srv/dd/sub/copied.odt", "file-group", "users"),
        ("/srv/dd/net.pdf", "group", "users"),                   # hidden by the mask now, still an entry
        ("/srv/dd/net.pdf", "other", ""),
    ]
    # alice is in design-docs: her entry on net.pdf is the group's business. bob owns private.txt.
    assert not [e for e in found if e.who in ("alice",)]
    assert "the mask hides part of it now: effective ---" in str(found[8])
    assert "files created here would give others r-x" in str(found[5])


def test_members_are_the_list_and_the_primary_group() -> None:
    assert members() == {"alice"}
    passwd = data("passwd.txt") + "carol:x:1005:1001::/home/carol:/bin/sh\n"
    assert _paths.group_members(data("group-design-docs.txt"), passwd) == {"alice", "carol"}
    with pytest.raises(ValueError, match="cannot read the group entry"):
        _paths.group_members("design-docs", "")


def test_path_problems() -> None:
    good = {"type": "directory", "user": "root", "group": "design-docs", "mode": "750"}
    assert measure.path_problems(DD, good, True) == []
    assert measure.path_problems(DD, None, False) == ["group design-docs does not exist", "/srv/dd does not exist"]
    assert measure.path_problems(DD, {**good, "group": "staff"}, True) == [
        "/srv/dd belongs to group staff, not design-docs"]
    assert "symbolic link" in measure.path_problems(DD, {**good, "type": "symbolic link"}, True)[0]


# -- the deploy's repairs, run on real files (a fake setfacl records what it is asked) ----------------

@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("sh") is None, reason="needs root (chgrp) and sh")
def test_repairs_change_exactly_what_was_found_and_never_follow_a_link(tmp_path: Path) -> None:
    top = tmp_path / "dd"
    (top / "sub").mkdir(parents=True)
    doc, sub, outside = top / "net.txt", top / "sub", tmp_path / "outside.txt"
    for path in (doc, outside):
        path.write_text("x")
        path.chmod(0o644)
    sub.chmod(0o755)
    os.chown(doc, 0, 100)  # group users
    found = [measure.Exposure(str(path), kind, who, perms, "") for path, kind, who, perms in (
        (doc, "other", "", "r--"), (doc, "file-group", "users", "r--"), (sub, "user", "bob", "r--"),
        (sub, "default-user", "bob", "r-x"), (sub, "default-other", "", "r-x"), (sub, "other", "", "r-x"))]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "setfacl").write_text('#!/bin/sh\necho "setfacl $*" >> "$LOG"\n')
    (bin_dir / "setfacl").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(tmp_path / "log")}
    script = "\n".join(r.line for r in measure.repairs(found, "root"))
    subprocess.run(["sh", "-c", script], check=True, env=env)
    assert stat.S_IMODE(doc.stat().st_mode) == 0o640 and doc.stat().st_gid == 0
    assert stat.S_IMODE(sub.stat().st_mode) == 0o750
    assert (tmp_path / "log").read_text().splitlines() == [
        f"setfacl -n -x d:u:bob,u:bob -- {sub}", f"setfacl -n -m d:o::--- -- {sub}"]
    # A document replaced by a link to a file outside since it was observed: refused, not followed.
    doc.unlink()
    doc.symlink_to(outside)
    proc = subprocess.run(["sh", "-c", measure.repairs(found[:1], "root")[0].line], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "is now a symbolic link" in proc.stderr
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644


def test_repairs_are_chunked_under_the_argument_limit() -> None:
    found = [measure.Exposure(f"/srv/dd/{i:05d}-{'x' * 100}", "other", "", "r--", "") for i in range(2000)]
    parts = measure.chunks(measure.repairs(found, "dd"))
    assert len(parts) > 1 and sum(len(p) for p in parts) == 2000
    assert all(len("\n".join(r.line for r in part)) < 64_000 for part in parts)
    assert measure.summary(found, 2).endswith("; and 1998 more")


# -- what web servers serve ------------------------------------------------------------------------------

def roots(items: list[web.WebRoot]) -> list[str]:
    return [r.root for r in items]


def test_nginx_debian_default_and_a_site_with_aliases() -> None:
    version = data("nginx-V.txt")
    assert web.nginx_prefix(version) == "/usr/share/nginx"
    assert roots(web.nginx_roots(data("nginx-T-debian.txt"), version)) == ["/var/www/html"]
    found = web.nginx_roots(data("nginx-T-intranet.txt"), version)
    assert roots(found) == ["/var/www/html", "/srv/intranet/*", "/srv/design-documents", "/home", "/srv/quoted dir"]
    assert found[2].source == "/etc/nginx/sites-enabled/intranet: alias /srv/design-documents/"


def test_nginx_root_inheritance_and_its_compiled_in_default() -> None:
    # Synthetic (the same layout as nginx -T prints): no root anywhere in one server.
    dump = ("# configuration file /etc/nginx/nginx.conf:\nhttp {\n include /etc/nginx/conf.d/*.conf;\n}\n\n"
            "# configuration file /etc/nginx/conf.d/a.conf:\nserver { listen 81; location / { } }\n"
            "server { root static; location /x/ { location /x/y/ { } } }\n")
    assert roots(web.nginx_roots(dump, "configure arguments: --prefix=/usr/share/nginx")) == [
        "/usr/share/nginx/html", "/usr/share/nginx/static"]
    assert roots(web.nginx_roots(dump, "configure arguments: --with-debug")) == [
        "/usr/local/nginx/html", "/usr/local/nginx/static"]


@pytest.mark.parametrize(("dump", "match"), [
    ("", "no configuration dump"),
    ("nginx: [emerg] unknown directive \"rooot\"\n", "no configuration dump"),
    ("# configuration file /etc/nginx/nginx.conf:\nhttp { root \"/srv/x; }\n", "unterminated quote"),
    ("# configuration file /etc/nginx/nginx.conf:\nhttp { root /srv/x }\n", "not ended by ';'"),
    ("# configuration file /etc/nginx/nginx.conf:\nhttp { include other.conf; }\n", "does not show"),
    ("# configuration file /etc/nginx/nginx.conf:\nhttp { server { root /a /b; } }\n", "2 arguments"),
])
def test_nginx_output_that_cannot_be_read_is_an_error(dump: str, match: str) -> None:
    with pytest.raises(web.WebConfigError, match=match):
        web.nginx_roots(dump, data("nginx-V.txt"))
    with pytest.raises(web.WebConfigError, match="no configure arguments"):
        web.nginx_prefix("nginx: command not found")


def test_apache_debian_default() -> None:
    found = web.apache_roots(data("apache2ctl-S.txt"), data("apache2ctl-M.txt"), data("apache-files-debian.txt"),
                                 data("passwd.txt"))
    assert sorted(set(roots(found))) == ["/usr/share/apache2/icons", "/var/www/html"]
    # serve-cgi-bin.conf's ScriptAlias is inside <IfDefine ENABLE_USR_LIB_CGI_BIN>: mod_cgi is off.
    assert "/usr/lib/cgi-bin" not in roots(found)


def test_apache_with_a_site_userdir_and_virtual_roots() -> None:
    found = web.apache_roots(data("apache2ctl-S-intranet.txt"), data("apache2ctl-M-intranet.txt"),
                                 data("apache-files-intranet.txt"), data("passwd.txt"))
    served = roots(found)
    for root in ("/srv/intranet/www", "/srv/design-documents", "/srv/manuals", "/srv/defined",
                 "/srv/vhosts/*/htdocs", "/home/alice/public_html", "/home/hardening/public_html"):
        assert root in served, root
    assert "/srv/never-served" not in served      # <IfModule mod_nonexistent.c>
    assert "/root/public_html" not in served      # UserDir disabled root
    alias = next(r for r in found if r.root == "/srv/design-documents")
    assert alias.source == "/etc/apache2/sites-enabled/intranet.conf:5: alias /srv/design-documents"


def test_apache_userdir_keywords_and_defines_read_in_order() -> None:
    files = ("### /etc/apache2/apache2.conf\nDefine DOCS /srv/docs\n<IfDefine DOCS>\nAlias /d ${DOCS}\n</IfDefine>\n"
             "UserDir www\nUserDir disabled\nUserDir enabled alice\n")
    run_cfg = 'ServerRoot: "/etc/apache2"\nMain DocumentRoot: "/var/www/html"\n'
    passwd = "alice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n"
    served = roots(web.apache_roots(run_cfg, "Loaded Modules:\n core_module (static)\n", files, passwd))
    assert served == ["/var/www/html", "/srv/docs", "/home/alice/www"]


@pytest.mark.parametrize(("run_cfg", "modules", "files", "match"), [
    ("AH00526: Syntax error on line 5", "Loaded Modules:\n", "### /etc/apache2/apache2.conf\n", "no ServerRoot"),
    (None, "", "### /etc/apache2/apache2.conf\n", "no module list"),
    (None, "Loaded Modules:\n", "", "printed no configuration files"),
    (None, "Loaded Modules:\n", "### /etc/apache2/apache2.conf\nDocumentRoot ${WEBROOT}/x\n", "cannot resolve"),
    (None, "Loaded Modules:\n", "### /etc/apache2/apache2.conf\n</VirtualHost>\n", "closes no section"),
    (None, "Loaded Modules:\n", "### /etc/apache2/apache2.conf\nAlias /x \"/srv/x\n", "cannot read"),
])
def test_apache_output_that_cannot_be_read_is_an_error(run_cfg: str | None, modules: str, files: str,
                                                       match: str) -> None:
    with pytest.raises(web.WebConfigError, match=match):
        web.apache_roots(run_cfg or data("apache2ctl-S.txt"), modules, files, "")


def test_lighttpd_with_aliases_userdir_and_virtual_hosts() -> None:
    found = web.lighttpd_roots(data("lighttpd-p.txt"), data("passwd.txt"))
    served = roots(found)
    for root in ("/var/www/html", "/srv/intranet/wiki", "/srv/design-documents", "/usr/share/doc",
                 "/home/alice/public_html", "/srv/*/htdocs"):
        assert root in served, root
    assert "/root/public_html" not in served  # userdir.exclude-user root


@pytest.mark.parametrize(("dump", "match"), [
    ("2026-12-02 01:30:00: (configfile.c.1400) source: /etc/lighttpd/lighttpd.conf line: 3 pos: 1 parser failed",
     "printed no configuration"),
    ('config {\n    server.document-root = "/var/www/html\n}\n', "cannot read"),
    ('config {\n    server.document-root = \n', "ends in the middle"),
    ('config {\n    server.document-root = "html"\n}\n', "not an absolute path"),
    ('config {\n    server.document-root = <<< "x"\n}\n', "unexpected"),
])
def test_lighttpd_output_that_cannot_be_read_is_an_error(dump: str, match: str) -> None:
    with pytest.raises(web.WebConfigError, match=match):
        web.lighttpd_roots(dump, "")


@pytest.mark.parametrize(("value", "pattern"), [
    ("/var/www/html/", "/var/www/html"), ("/srv/$host/htdocs", "/srv/*/htdocs"), ("/srv/${host}.d", "/srv/*.d"),
    ("/home/$1/public_html$2", "/home"), ("$document_root/x", "/"), ("/$1", "/"), ("html", "/usr/share/nginx/html"),
])
def test_root_patterns(value: str, pattern: str) -> None:
    assert web.root_pattern(value, "/usr/share/nginx") == pattern


@pytest.mark.parametrize(("path", "root", "relation"), [
    ("/srv/design-documents", "/srv/design-documents", "under"),
    ("/var/www/html/docs", "/var/www/html", "under"),
    ("/srv/intranet", "/srv/intranet/*", "contains"),
    # A vhost directory /srv/HOST/htdocs: the tree /srv/design-documents holds the one for the
    # host name "design-documents" (a person who creates htdocs there publishes it).
    ("/srv/design-documents", "/srv/*/htdocs", "contains"),
    ("/srv/design-documents", "/var/*/htdocs", None),
    ("/srv/web/htdocs/design", "/srv/*/htdocs", "under"),
    ("/srv/design-documents", "/srv/design", None),
    ("/srv/design-documents", "/", "under"),
    ("/home/alice", "/home/alice/public_html", "contains"),
])
def test_overlaps(path: str, root: str, relation: str | None) -> None:
    assert web.overlaps(path, web.WebRoot("nginx", root, "x")) == relation


def test_web_roots_from_the_observations() -> None:
    none = fake({web.WEB_SERVERS: (0, "", ""), measure.GETENT_PASSWD: (0, data("passwd.txt"), "")})
    assert web.web_roots(none.run).servers == []
    nginx = {web.WEB_SERVERS: (0, "/usr/sbin/nginx\n", ""), measure.GETENT_PASSWD: (0, data("passwd.txt"), ""),
             web.NGINX_DUMP: (0, data("nginx-T-intranet.txt"), "nginx: configuration file ... test is successful"),
             web.NGINX_BUILD: (0, "", data("nginx-V.txt"))}
    served = web.web_roots(fake(nginx).run)
    assert served.servers == ["nginx"] and not served.errors and "/srv/design-documents" in roots(served.roots)
    store = measure.DesignDocuments(path=measure.STORE, group="design-docs")
    overlaps = measure.served_overlaps(store, measure.STORE, served.roots)
    assert measure.describe(overlaps) == ("/srv/design-documents is served: under nginx's web root "
                                          "/srv/design-documents (/etc/nginx/sites-enabled/intranet: alias "
                                          "/srv/design-documents/)")
    # Installed, its configuration broken: an error for that server, never "not served".
    broken = {**nginx, web.NGINX_DUMP: (1, "", 'nginx: [emerg] unknown directive "rooot" in /etc/nginx/x:3')}
    served = web.web_roots(fake(broken).run)
    assert served.roots == [] and "nginx -T failed (exit 1)" in served.errors["nginx"]
    # apache2ctl installed, every reading fails (127: the program is there, apache2 is not).
    apache = {web.WEB_SERVERS: (0, "/usr/sbin/apache2ctl\n", ""), measure.GETENT_PASSWD: (0, "", "")}
    assert "apache2ctl -S failed (exit 127)" in web.web_roots(fake(apache).run).errors["apache2"]


def test_a_path_that_really_lives_in_a_web_root_is_caught_through_readlink() -> None:
    roots_ = [web.WebRoot("nginx", "/var/www/html", "x")]
    link = measure.DesignDocuments(path="/srv/docs", group="dd")
    assert measure.served_overlaps(link, "/srv/docs", roots_) == []
    overlaps = measure.served_overlaps(link, "/var/www/html/docs", roots_)
    assert measure.describe(overlaps) == ("/srv/docs is served: under nginx's web root /var/www/html "
                                          "(really /var/www/html/docs) (x)")


def test_tree_of_needs_getfacl_and_its_output() -> None:
    def obs(tools: str, rc: int, out: str) -> Any:
        return fake({measure.ACL_TOOLS: (0 if tools else 1, tools, ""),
                     measure.tree_acl("/srv/dd"): (rc, out, "getfacl: /srv/dd/x: No such file or directory")})
    with pytest.raises(ValueError, match="getfacl is not installed"):
        measure.tree_of(obs("", 0, "").run, DD)
    with pytest.raises(ValueError, match="failed"):
        measure.tree_of(obs("/usr/bin/getfacl\n/usr/bin/setfacl\n", 1, "").run, DD)
    assert len(measure.tree_of(obs("/usr/bin/getfacl\n", 0, data("getfacl-dd.txt")).run, DD)) == 6
