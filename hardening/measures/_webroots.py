"""What the web servers installed on a host serve, read the way each reads its configuration.

For designdocs (6-18: design documents not under a served directory). Each server's roots come
from its own reading of its configuration, never from our guess of where its files are:

* **nginx**: ``nginx -T`` (every file it read, in order) and ``nginx -V`` (its prefix): the
  effective ``root``/``alias`` of every server, location and ``if`` (inherited together, as
  ngx_http_core_merge_loc_conf does), its compiled-in ``html`` under the prefix where none is set.
* **Apache**: ``apache2ctl -S`` (ServerRoot, the main DocumentRoot, Defines), ``apache2ctl -M``
  (loaded modules) and the files ``apache2ctl -t -D DUMP_INCLUDES`` lists: DocumentRoot, Alias,
  ScriptAlias, their Match forms, VirtualDocumentRoot and UserDir, with ``<IfModule>`` and
  ``<IfDefine>`` evaluated (``Define`` lines read in order); other conditions count as true.
* **lighttpd**: ``lighttpd -p`` (its configuration after includes and variables, which also runs
  its ``include_shell`` lines, as lighttpd does when it starts): every ``server.document-root``
  and, where their module is loaded, ``alias.url``, ``userdir`` per account, simple-vhost and
  evhost host directories; under every condition.

A root built from a variable keeps its fixed part (:func:`root_pattern`). A server that is not
installed is absent; one that is installed but whose configuration cannot be read is in
``Served.errors``, never "serves nothing". Output that cannot be parsed is a
:class:`WebConfigError`.
"""

from __future__ import annotations

import fnmatch
import glob
import posixpath
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hardening.measures._paths import GETENT_PASSWD
from hardening.observe import quote


class WebConfigError(ValueError):
    """A web server's configuration output that cannot be read: an error, never "not served"."""


@dataclass(frozen=True)
class WebRoot:
    server: str
    root: str        # an absolute path; a component may hold fnmatch wildcards (one per host, user...)
    source: str      # where it comes from, for a person

    def __str__(self) -> str:
        return f"{self.server} serves {self.root} ({self.source})"


def components(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


def overlaps(path: str, root: WebRoot) -> str | None:
    """How ``path`` and a web root overlap ("under" the root, or "contains" it), or None."""
    p, r = components(path), components(root.root)
    if not all(fnmatch.fnmatchcase(a, b) for a, b in zip(p, r, strict=False)):
        return None
    return "under" if len(p) >= len(r) else "contains"


# Variables that hold one path component (no slash): a host name.
ONE_COMPONENT = ("host", "server_name", "hostname")


VARIABLE = re.compile(r"\$\{?([A-Za-z0-9_]+)\}?")


def root_pattern(value: str, base: str) -> str:
    """A root or alias value with variables -> the absolute pattern of what it may serve (a
    relative one is under ``base``). A host-name variable becomes ``*`` in its component; any
    other variable (a regex capture, the URI, a header) may hold a slash, so the root ends before
    its component: everything below may be served; a value that starts with one may be anything
    ("/")."""
    out: list[str] = []
    for part in value.split("/"):
        if any(n not in ONE_COMPONENT for n in VARIABLE.findall(part)):
            if not out:
                return "/"
            break
        out.append(VARIABLE.sub("*", part))
    path = "/".join(out)
    if value.startswith("/"):
        return posixpath.normpath(path or "/")
    return posixpath.normpath(posixpath.join(base, path))


def _absolute(value: str, base: str) -> str:
    return posixpath.normpath(value if value.startswith("/") else posixpath.join(base, value))


# -- nginx: ``nginx -T`` ------------------------------------------------------------------------------

NGINX_HEADER = re.compile(r"^# configuration file (/[^\n]*):$", re.M)


def split_nginx_dump(text: str) -> dict[str, str]:
    """``nginx -T``'s standard output -> {file: text}, in the order nginx read them."""
    heads = list(NGINX_HEADER.finditer(text))
    if not heads or text[:heads[0].start()].strip():
        raise WebConfigError(f"nginx -T printed no configuration dump: {text[:200]!r}")
    return {m.group(1): text[m.end() + 1:(heads[i + 1].start() if i + 1 < len(heads) else len(text))]
            for i, m in enumerate(heads)}


def nginx_tokens(text: str, where: str) -> list[str]:
    """nginx's lexer: words, quoted strings (quotes removed), ``{``, ``}``, ``;``; ``#`` comments."""
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "{};":
            tokens.append(c)
            i += 1
        elif c in "\"'":
            j, word = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                word.append(text[j])
                j += 1
            if j >= n:
                raise WebConfigError(f"nginx -T: {where}: unterminated quote")
            tokens.append("".join(word))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};":
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                j += 1
            tokens.append(text[i:j].replace("\\", ""))
            i = j
    return tokens


@dataclass
class Directive:
    name: str
    args: list[str]
    source: str
    block: list[Directive] | None = None


def nginx_tree(files: dict[str, str]) -> list[Directive]:
    """The main file's directives with every ``include`` replaced by the files it names (matched
    among the files nginx -T dumped; relative to the main file's directory)."""
    main = next(iter(files))
    base = posixpath.dirname(main)

    def parse(name: str, depth: int) -> list[Directive]:
        if depth > 20:
            raise WebConfigError(f"nginx -T: includes nested too deep at {name}")
        tokens = nginx_tokens(files[name], name)
        pos = 0

        def block() -> list[Directive]:
            nonlocal pos
            out: list[Directive] = []
            words: list[str] = []
            while pos < len(tokens):
                token = tokens[pos]
                pos += 1
                if token == ";":
                    if words:
                        out += expand(Directive(words[0], words[1:], name))
                    words = []
                elif token == "{":
                    if not words:
                        raise WebConfigError(f"nginx -T: {name}: a block without a name")
                    out.append(Directive(words[0], words[1:], name, block()))
                    words = []
                elif token == "}":
                    if words:
                        raise WebConfigError(f"nginx -T: {name}: directive {words[0]!r} not ended by ';'")
                    return out
                else:
                    words.append(token)
            if words:
                raise WebConfigError(f"nginx -T: {name}: directive {words[0]!r} not ended by ';'")
            return out

        def expand(directive: Directive) -> list[Directive]:
            if directive.name != "include":
                return [directive]
            if len(directive.args) != 1:
                raise WebConfigError(f"nginx -T: {name}: include with {len(directive.args)} arguments")
            pattern = _absolute(directive.args[0], base)
            matched = sorted(f for f in files if fnmatch.fnmatchcase(f, pattern)) if glob.has_magic(pattern) \
                else [pattern]
            out = []
            for path in matched:
                if path not in files:
                    raise WebConfigError(f"nginx -T: {name} includes {path}, which the dump does not show")
                out += parse(path, depth + 1)
            return out

        return block()

    return parse(main, 0)


def nginx_prefix(version: str) -> str:
    """The installation prefix from ``nginx -V`` (its standard error), relative roots' base."""
    if "configure arguments:" not in version:
        raise WebConfigError(f"nginx -V printed no configure arguments: {version[:200]!r}")
    match = re.search(r"--prefix=(\S+)", version)
    return match.group(1).rstrip("/") if match else "/usr/local/nginx"


def nginx_roots(dump: str, version: str) -> list[WebRoot]:
    """What nginx serves: the effective ``root``/``alias`` of every server and location (they are
    inherited together, ngx_http_core_merge_loc_conf), nginx's compiled-in ``html`` under its
    prefix where none is set."""
    prefix = nginx_prefix(version)
    roots: dict[str, WebRoot] = {}

    def add(value: str | None, source: str) -> None:
        path = root_pattern(value, prefix) if value else _absolute("html", prefix)
        roots.setdefault(path, WebRoot("nginx", path, source if value else "nginx's default root html"))

    def own(block: list[Directive]) -> tuple[str, str] | None:
        found = None
        for d in block:
            if d.name in ("root", "alias"):
                if len(d.args) != 1:
                    raise WebConfigError(f"nginx -T: {d.source}: {d.name} with {len(d.args)} arguments")
                found = (d.args[0], f"{d.source}: {d.name} {d.args[0]}")
        return found

    def walk(block: list[Directive], inherited: tuple[str, str] | None) -> None:
        for d in block:
            if d.block is None or d.name not in ("server", "location", "if"):
                continue
            current = own(d.block) or inherited
            add(current[0] if current else None, current[1] if current else "")
            walk(d.block, current)

    for d in nginx_tree(split_nginx_dump(dump)):
        if d.name == "http" and d.block is not None:
            walk(d.block, own(d.block))
    return list(roots.values())


# -- Apache: ``apache2ctl -S``, ``-M`` and the files ``-t -D DUMP_INCLUDES`` lists ------------------------

def apache_run_cfg(text: str) -> tuple[str, str, dict[str, str]]:
    """``apache2ctl -S`` -> (ServerRoot, main DocumentRoot, {Define: value})."""
    server_root = re.search(r'^ServerRoot: "(.*)"$', text, re.M)
    doc_root = re.search(r'^Main DocumentRoot: "(.*)"$', text, re.M)
    if not server_root or not doc_root:
        raise WebConfigError(f"apache2ctl -S printed no ServerRoot or Main DocumentRoot: {text[:300]!r}")
    defines = dict((m.group(1), m.group(2) or "") for m in re.finditer(r"^Define: ([^=\s]+)(?:=(.*))?$", text, re.M))
    return server_root.group(1), doc_root.group(1), defines


def apache_modules(text: str) -> set[str]:
    """``apache2ctl -M`` -> the loaded modules' identifiers (``alias_module``)."""
    if "Loaded Modules:" not in text:
        raise WebConfigError(f"apache2ctl -M printed no module list: {text[:200]!r}")
    return set(re.findall(r"^ (\w+) \((?:static|shared)\)$", text, re.M))


def split_files(text: str, what: str) -> dict[str, str]:
    """``### PATH`` then the file's text, per file (APACHE_FILES)."""
    if not text.startswith("### /"):
        raise WebConfigError(f"{what} printed no configuration files: {text[:200]!r}")
    out = {}
    for chunk in text[4:].split("\n### /"):
        name, _, body = chunk.partition("\n")
        out[name if name.startswith("/") else "/" + name] = body
    return out


def apache_words(line: str, where: str) -> list[str]:
    try:
        return shlex.split(line, posix=True)
    except ValueError as exc:
        raise WebConfigError(f"apache: {where}: cannot read {line!r}: {exc}") from None


def _module_id(name: str) -> str:
    """``<IfModule>``'s argument -> the identifier -M prints (``mod_alias.c`` -> ``alias_module``)."""
    if name.endswith((".c", ".so")):
        return name.rsplit(".", 1)[0].removeprefix("mod_") + "_module"
    return name


# The directives that make Apache serve a directory (mod_alias, mod_userdir, mod_vhost_alias, core).
APACHE_SERVING = ("documentroot", "alias", "aliasmatch", "scriptalias", "scriptaliasmatch", "userdir",
                  "virtualdocumentroot", "virtualscriptalias")


def apache_directives(files: dict[str, str], modules: set[str], defines: dict[str, str]
                      ) -> list[tuple[str, list[str], str]]:
    """(directive in lower case, arguments, "file:line") of the directives in
    :data:`APACHE_SERVING` that Apache applies: continuation lines joined, ``<IfModule>`` and
    ``<IfDefine>`` evaluated (with the Defines of ``-S`` and the ``Define`` lines read so far; a
    false one hides what it holds), other sections (``<If>``, ``<IfVersion>``, ``<VirtualHost>``,
    ...) entered."""
    defines = dict(defines)
    out = []
    for name, text in files.items():
        stack: list[bool] = []
        lines = text.split("\n")
        i = 0
        while i < len(lines):
            number, line = i + 1, lines[i]
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i]
            i += 1
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{name}:{number}"
            if line.startswith("</"):
                if not stack:
                    raise WebConfigError(f"apache: {where}: {line} closes no section")
                stack.pop()
                continue
            if line.startswith("<"):
                if not line.endswith(">"):
                    raise WebConfigError(f"apache: {where}: cannot read {line!r}")
                section = line[1:-1].split(None, 1)[0].lower()
                active = True
                if section in ("ifmodule", "ifdefine"):
                    words = apache_words(line[1:-1], where)
                    arg = words[1] if len(words) > 1 else ""
                    negate = arg.startswith("!")
                    arg = arg.lstrip("!")
                    known = {_module_id(m) for m in modules} if section == "ifmodule" else set(defines)
                    active = ((_module_id(arg) if section == "ifmodule" else arg) in known) != negate
                stack.append(active)
                continue
            name_lower = line.split(None, 1)[0].lower()
            if all(stack) and name_lower == "define":  # read in order, like Apache
                words = apache_words(line, where)
                if len(words) > 1:
                    defines[words[1]] = words[2] if len(words) > 2 else ""
            elif all(stack) and name_lower in APACHE_SERVING:
                words = apache_words(line, where)
                out.append((name_lower, [_apache_vars(w, defines, where) for w in words[1:]], where))
    return out


def _apache_vars(word: str, defines: dict[str, str], where: str) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1) not in defines:
            raise WebConfigError(f"apache: {where}: cannot resolve ${{{match.group(1)}}} (not a Define)")
        return defines[match.group(1)]
    return re.sub(r"\$\{(\w+)\}", value, word)


def accounts(passwd: str) -> list[tuple[str, str]]:
    """(name, home) of every account in ``getent passwd``."""
    out = []
    for line in passwd.splitlines():
        f = line.split(":")
        if len(f) >= 7 and f[5].startswith("/"):
            out.append((f[0], f[5]))
    return out


def userdir_roots(server: str, dirs: list[str], users: list[tuple[str, str]], source: str,
                  basepath: str = "") -> list[WebRoot]:
    """Each account's served directory: relative to its home (or to ``basepath/NAME``), an
    absolute one with ``*`` for the name, or NAME appended to an absolute one."""
    out = []
    for name, home in users:
        for d in dirs:
            if "://" in d:
                continue  # a redirect, nothing served from this host
            if basepath:
                path = posixpath.join(basepath, name, d)
            elif d.startswith("/"):
                path = d.replace("*", name) if "*" in d else posixpath.join(d, name)
            else:
                path = posixpath.join(home, d)
            out.append(WebRoot(server, posixpath.normpath(path), f"{source}, account {name}"))
    return out


def apache_roots(run_cfg: str, modules_text: str, files_text: str, passwd: str) -> list[WebRoot]:
    """What Apache serves: the main DocumentRoot, every DocumentRoot, Alias (and Match),
    ScriptAlias (and Match), VirtualDocumentRoot and UserDir it applies."""
    server_root, main_root, defines = apache_run_cfg(run_cfg)
    directives = apache_directives(split_files(files_text, "apache2ctl -t -D DUMP_INCLUDES"),
                                   apache_modules(modules_text), defines)
    roots = [WebRoot("apache2", posixpath.normpath(main_root), "apache2ctl -S: Main DocumentRoot")]
    userdirs: list[str] = []
    excluded: set[str] = set()
    only: set[str] | None = None
    userdir_source = ""
    for name, args, where in directives:
        if name != "userdir":
            if not args:
                raise WebConfigError(f"apache: {where}: {name} without a path")
            value = args[-1]
            if name.startswith("virtual"):
                value = re.sub(r"%[0-9+.\-pM]+", "*", value)
            roots.append(WebRoot("apache2", root_pattern(value, server_root), f"{where}: {name} {value}"))
        elif name == "userdir":
            if not args:
                raise WebConfigError(f"apache: {where}: UserDir without arguments")
            keyword = args[0].lower()
            if keyword == "disabled":
                if len(args) == 1:
                    only = set()
                excluded |= set(args[1:])
            elif keyword == "enabled":
                only = (only or set()) | set(args[1:])
                excluded -= set(args[1:])
            else:
                userdirs = list(args)
                userdir_source = f"{where}: UserDir {' '.join(args)}"
    users = [(n, h) for n, h in accounts(passwd) if n not in excluded and (only is None or n in only)]
    roots += userdir_roots("apache2", userdirs, users, userdir_source)
    return roots


# -- lighttpd: ``lighttpd -p`` -------------------------------------------------------------------------

LIGHTTPD_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|=>|\+=|:=|==|!=|=~|!~|=\^|=\$|[=(){},\[\]]'
                            r'|[^\s"#=(){},\[\]]+')


def lighttpd_tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        match = LIGHTTPD_TOKEN.match(text, pos)
        if not match:
            raise WebConfigError(f"lighttpd -p: cannot read {text[pos:pos + 60]!r}")
        if match.group(0).strip() and not match.group(0).startswith("#"):
            tokens.append(match.group(0))
        pos = match.end()
    return tokens


def lighttpd_assignments(text: str) -> list[tuple[str, Any]]:
    """``lighttpd -p`` output -> (key, value) of every assignment, under any condition; a value
    is a string, a number, a list or a list of (key, value) pairs."""
    if not text.lstrip().startswith("config {"):
        raise WebConfigError(f"lighttpd -p printed no configuration: {text[:200]!r}")
    tokens = lighttpd_tokens(text)
    out: list[tuple[str, Any]] = []
    pos = 0

    def value() -> Any:
        nonlocal pos
        token = tokens[pos]
        pos += 1
        if token.startswith('"'):
            return re.sub(r"\\(.)", r"\1", token[1:-1])
        if token == "(":
            items: list[Any] = []
            while tokens[pos] != ")":
                if tokens[pos] == ",":
                    pos += 1
                    continue
                item = value()
                if tokens[pos] == "=>":
                    pos += 1
                    item = (item, value())
                items.append(item)
            pos += 1
            return items
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if token in ("enable", "disable"):
            return token
        raise WebConfigError(f"lighttpd -p: unexpected value {token!r}")

    try:
        while pos < len(tokens):
            token = tokens[pos]
            if token in ("{", "}") or token == "config":
                pos += 1
            elif token.startswith("$") or token == "else":
                while tokens[pos] != "{":  # a condition: $HTTP["host"] == "x" {
                    pos += 1
            elif pos + 1 < len(tokens) and tokens[pos + 1] in ("=", "+=", ":="):
                pos += 2
                out.append((token, value()))
            else:
                raise WebConfigError(f"lighttpd -p: unexpected {token!r}")
    except IndexError:
        raise WebConfigError("lighttpd -p: output ends in the middle of a statement") from None
    return out


def lighttpd_roots(dump: str, passwd: str) -> list[WebRoot]:
    """What lighttpd serves: every ``server.document-root``, and where their module is loaded the
    targets of ``alias.url``, the accounts' ``userdir`` directories, simple-vhost's and evhost's
    host directories (one ``*`` per host name)."""
    assigned = lighttpd_assignments(dump)
    values: dict[str, list[Any]] = {}
    for key, value in assigned:
        values.setdefault(key, []).append(value)
    modules = {m for v in values.get("server.modules", []) for m in (v if isinstance(v, list) else [v])}
    roots: list[WebRoot] = []

    def absolute(path: Any, key: str) -> str:
        if not isinstance(path, str) or not path.startswith("/"):
            raise WebConfigError(f"lighttpd -p: {key} = {path!r} is not an absolute path")
        return posixpath.normpath(path)

    for value in values.get("server.document-root", []):
        roots.append(WebRoot("lighttpd", absolute(value, "server.document-root"), "server.document-root"))
    if "mod_alias" in modules:
        for mapping in values.get("alias.url", []):
            for url, target in mapping:
                roots.append(WebRoot("lighttpd", absolute(target, "alias.url"), f"alias.url {url}"))
    if "mod_userdir" in modules:
        path = (values.get("userdir.path") or [""])[-1]
        base = (values.get("userdir.basepath") or [""])[-1]
        excluded = {u for v in values.get("userdir.exclude-user", []) for u in v}
        included = {u for v in values.get("userdir.include-user", []) for u in v}
        users = [(n, h) for n, h in accounts(passwd) if n not in excluded and (not included or n in included)]
        roots += userdir_roots("lighttpd", [path or "."], users, f"userdir.path {path!r}", basepath=base)
    if "mod_simple_vhost" in modules and values.get("simple-vhost.server-root"):
        server_root = absolute(values["simple-vhost.server-root"][-1], "simple-vhost.server-root")
        doc = (values.get("simple-vhost.document-root") or [""])[-1]
        roots.append(WebRoot("lighttpd", posixpath.normpath(posixpath.join(server_root, "*", doc)),
                             "simple-vhost.server-root and document-root"))
    if "mod_evhost" in modules:
        for pattern in values.get("evhost.path-pattern", []):
            path = re.sub(r"%(?:\{[^}]*\}|[0-9_])", "*", absolute(pattern, "evhost.path-pattern"))
            roots.append(WebRoot("lighttpd", path, f"evhost.path-pattern {pattern}"))
    return roots


# -- observations --------------------------------------------------------------------------------------

# Installed servers: one line per program found (none: exit 0, nothing printed).
WEB_SERVERS = 'for c in nginx apache2 apache2ctl lighttpd; do command -v "$c"; done; true'
NGINX_DUMP = "nginx -T"
NGINX_BUILD = "nginx -V"
APACHE_RUN_CFG = "apache2ctl -S"
APACHE_MODULES = "apache2ctl -M"
# The files Apache reads, in its order (``### PATH`` then the text); a file it lists but cannot be
# read fails the command.
APACHE_FILES = ('list=$(apache2ctl -t -D DUMP_INCLUDES) || exit 1; '
                'printf \'%s\\n\' "$list" | sed -n \'s/^ *([*0-9]*) //p\' | '
                'while IFS= read -r f; do printf \'### %s\\n\' "$f"; cat -- "$f" || exit 1; done')
LIGHTTPD_CONF = "/etc/lighttpd/lighttpd.conf"
LIGHTTPD_DUMP = quote("lighttpd -p -f %s", LIGHTTPD_CONF)


OBSERVE = (WEB_SERVERS, NGINX_DUMP, NGINX_BUILD, APACHE_RUN_CFG, APACHE_MODULES, APACHE_FILES, LIGHTTPD_DUMP)

Run = Callable[[str], Any]  # obs.run: command -> an observation (rc, stdout, stderr)


def installed(run: Run) -> list[str]:
    """The web servers installed: nginx, apache2, lighttpd (by their programs)."""
    found = {line.rsplit("/", 1)[-1] for line in run(WEB_SERVERS).stdout.split()}
    return [s for s in ("nginx", "apache2", "lighttpd") if s in found or (s == "apache2" and "apache2ctl" in found)]


def _ok(out: Any, what: str) -> str:
    if out.rc != 0:
        tail = (out.stderr.strip() or out.stdout.strip())[-300:]
        raise WebConfigError(f"{what} failed (exit {out.rc}): {tail}")
    return str(out.stdout)


def _build(out: Any) -> str:
    if out.rc != 0:
        raise WebConfigError(f"{NGINX_BUILD} failed (exit {out.rc}): {out.stderr.strip()[-300:]}")
    return str(out.stderr)


@dataclass
class Served:
    """What the installed web servers serve, and the servers whose configuration was unreadable."""

    servers: list[str] = field(default_factory=list)
    roots: list[WebRoot] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def web_roots(run: Run) -> Served:
    """Every installed server's roots (:class:`Served`); an unreadable one is in ``errors``."""
    served = Served(servers=installed(run))
    passwd = run(GETENT_PASSWD).stdout
    readers: dict[str, Callable[[], list[WebRoot]]] = {
        "nginx": lambda: nginx_roots(_ok(run(NGINX_DUMP), NGINX_DUMP), _build(run(NGINX_BUILD))),
        "apache2": lambda: apache_roots(_ok(run(APACHE_RUN_CFG), APACHE_RUN_CFG),
                                        _ok(run(APACHE_MODULES), APACHE_MODULES),
                                        _ok(run(APACHE_FILES), "apache2ctl -t -D DUMP_INCLUDES and its files"),
                                        passwd),
        "lighttpd": lambda: lighttpd_roots(_ok(run(LIGHTTPD_DUMP), LIGHTTPD_DUMP), passwd),
    }
    for server in served.servers:
        try:
            served.roots += readers[server]()
        except WebConfigError as exc:
            served.errors[server] = str(exc)
    first: dict[tuple[str, str], WebRoot] = {}
    for root in served.roots:
        first.setdefault((root.server, root.root), root)
    served.roots = list(first.values())
    return served
