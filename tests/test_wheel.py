"""The wheel is the whole tool: built from the checkout, installed into a fresh venv outside it,
it verifies, validates profiles (also an agency's own, extending the shipped ones) and plans a
deploy with the checks, deploys and profiles it carries, never with files of the checkout.

Every Python process of the installed tool (the CLI, its pytest child, its pyinfra child)
records at exit its sys.path and the files of its modules (a .pth file in the fresh venv, active
only when HARDENING_IMPORT_AUDIT names a directory); no entry may lie in the checkout.

Slow: builds the wheel with build isolation and installs the pinned dependencies from the package
index (pip's cache makes a second run quicker). The venv is a plain one: one made with
--system-site-packages would see this checkout's editable install.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import hardening
from hardening import ROOT
from hardening.lab import Lab
from hardening.lab.fixtures import StartHost

pytestmark = pytest.mark.slow

SHIPPED = ("hardening", "checks", "deploys", "hwprofiles")  # checkout directory -> hardening/<name>
TOP_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv*", ".lab", "build", "dist", "evidence")
NOT_SOURCE = shutil.ignore_patterns("*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache",
                                    ".ruff_cache")
AUDIT = "HARDENING_IMPORT_AUDIT"
AUDIT_MODULE = '''\
import atexit, json, os, sys
_OUT = os.environ.get("HARDENING_IMPORT_AUDIT")
def _record():
    files = {n: str(getattr(m, "__file__", None)) for n, m in list(sys.modules.items()) if getattr(m, "__file__", None)}
    with open(os.path.join(_OUT, f"{os.getpid()}.json"), "w") as out:
        json.dump({"argv": sys.argv, "cwd": os.getcwd(), "path": sys.path, "files": files}, out)
if _OUT:
    atexit.register(_record)
'''
AGENCY_PROFILE = """\
name: agency-terminal
extends: terminal
description: An agency's own terminal profile, kept outside the tool
measures:
  timeouts: {shell_tmout: 611}
"""


@dataclass
class Installed:
    venv: Path
    package: Path  # <venv>/lib/pythonX.Y/site-packages/hardening
    workdir: Path  # outside the checkout
    env: dict[str, str]


def _run(cmd: list[str | Path], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout as it is now: the build leaves nothing in the checkout, and the
    installed tool is compared with exactly the source it was built from."""
    src = tmp_path_factory.mktemp("src") / "hardening"
    shutil.copytree(ROOT, src, ignore=_not_source)
    return src


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built like pip or pipx build it (isolated build environment)."""
    dist = tmp_path_factory.mktemp("dist")
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source], cwd=dist)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [built] = dist.glob("hardening-*.whl")
    return built


def _not_source(directory: str, names: list[str]) -> set[str]:
    """What the build must not see: the checkout's venv, lab, evidence and build leftovers."""
    top = TOP_NOT_SOURCE(directory, names) if Path(directory) == ROOT else set()
    return set(top) | set(NOT_SOURCE(directory, names))


def _clean_env() -> dict[str, str]:
    """This environment without anything that points into the checkout or its venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", AUDIT)}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not _in_checkout(Path(p)))
    return env


def _in_checkout(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT.resolve())


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh venv (no system site-packages) with the wheel and its pinned dependencies."""
    venv = tmp_path_factory.mktemp("venv")
    workdir = tmp_path_factory.mktemp("work")
    assert not _in_checkout(venv) and not _in_checkout(workdir)
    env = _clean_env()
    proc = _run([sys.executable, "-m", "venv", "--clear", venv], cwd=workdir, env=env)
    assert proc.returncode == 0, proc.stderr
    # --no-compile: Python compiles each module when it is first imported; only quicker here.
    proc = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile", wheel], cwd=workdir, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = _run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                cwd=workdir, env=env).stdout.strip()
    (Path(site) / "_hardening_import_audit.py").write_text(AUDIT_MODULE)
    (Path(site) / "_hardening_import_audit.pth").write_text("import _hardening_import_audit\n")
    return Installed(venv, Path(site) / "hardening", workdir, env)


def tool(inst: Installed, audit: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """<venv>/bin/hardening ARGS from a directory outside the checkout; checks what it imported."""
    audit.mkdir(parents=True)
    proc = _run([inst.venv / "bin" / "hardening", *args], cwd=inst.workdir, env={**inst.env, AUDIT: str(audit)})
    assert "Traceback" not in proc.stderr, proc.stderr
    assert_outside_checkout(inst, audit)
    return proc


def assert_outside_checkout(inst: Installed, audit: Path) -> list[list[str]]:
    """Every recorded process: no sys.path entry and no module file in the checkout. Returns argvs."""
    records = [json.loads(p.read_text()) for p in sorted(audit.glob("*.json"))]
    assert records, "no process of the installed tool recorded its imports"
    for rec in records:
        inside = [e for e in rec["path"] if _in_checkout(Path(rec["cwd"], e or "."))]
        inside += [f for f in rec["files"].values() if _in_checkout(Path(rec["cwd"], f))]
        assert not inside, f"{rec['argv']} used the checkout: {inside[:5]}"
        if "hardening" in rec["files"]:
            assert Path(rec["files"]["hardening"]) == inst.package / "__init__.py", rec["argv"]
    return [rec["argv"] for rec in records]


def shipped_files() -> set[str]:
    """What the checkout ships, as wheel paths: hardening/..., checks/ -> hardening/checks/, ..."""
    out = set()
    for name in SHIPPED:
        top = ROOT / name
        for path in top.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                rel = path.relative_to(top).as_posix()
                out.add(f"hardening/{rel}" if name == "hardening" else f"hardening/{name}/{rel}")
    return out


def test_wheel_carries_checks_deploys_and_profiles(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = shipped_files() - names
    assert not missing, f"in the checkout but not in the wheel (pyproject.toml packages/package-data): {missing}"
    assert {"hardening/checks/pytest.ini", "hardening/checks/conftest.py", "hardening/deploys/main.py",
            "hardening/hwprofiles/terminal.yaml", "hardening/data/clauses.yaml"} <= names
    strays = {n for n in names if not n.startswith(("hardening/", f"hardening-{hardening.__version__}.dist-info/"))}
    assert not strays, f"the wheel installs more than the package: {strays}"


def test_installed_package_is_the_venvs(installed: Installed, tmp_path: Path) -> None:
    code = ("import json, hardening as h; print(json.dumps({'file': h.__file__, 'checks': str(h.CHECKS), "
            "'deploys': str(h.DEPLOYS), 'hwprofiles': str(h.HWPROFILES), 'version': h.__version__}))")
    proc = _run([installed.venv / "bin" / "python", "-c", code], cwd=installed.workdir, env=installed.env)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    pkg = installed.package
    assert got == {"file": str(pkg / "__init__.py"), "checks": str(pkg / "checks"), "deploys": str(pkg / "deploys"),
                   "hwprofiles": str(pkg / "hwprofiles"), "version": hardening.__version__}
    assert tool(installed, tmp_path / "audit", "--version").returncode == 0


def test_clauses_and_shipped_profiles(installed: Installed, tmp_path: Path) -> None:
    clauses = tool(installed, tmp_path / "a1", "clauses")
    assert clauses.returncode == 0, clauses.stdout + clauses.stderr
    assert "clauses verified by a check" in clauses.stdout
    profiles = tool(installed, tmp_path / "a2", "profiles", "check")
    assert profiles.returncode == 0, profiles.stdout + profiles.stderr
    assert "server, server-room, terminal" in profiles.stdout


def local_verify(evidence: Path, run: Any, *args: str) -> dict[str, Any]:
    """`verify --local` through RUN (the installed tool or the checkout's); the host's evidence."""
    proc = run("verify", "--local", "--evidence", evidence, *args)
    assert proc.returncode in (0, 1, 5), proc.stdout + proc.stderr
    [index] = evidence.glob("*/index.json")
    [host] = json.loads(index.read_text())["hosts"]
    doc: dict[str, Any] = json.loads((index.parent / host["json"]).read_text())
    return doc


def count_checks(checks: Path) -> int:
    return sum(isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
               for path in checks.glob("test_*.py") for node in ast.parse(path.read_text()).body)


def test_local_verify_runs_every_shipped_check(installed: Installed, source: Path, tmp_path: Path) -> None:
    doc = local_verify(tmp_path / "ev", lambda *a: tool(installed, tmp_path / "audit", *a), "--profile", "server")
    argvs = assert_outside_checkout(installed, tmp_path / "audit")
    assert any(str(installed.package / "checks") in " ".join(a) for a in argvs), "no pytest child recorded"
    statuses = {c["id"]: c["status"] for c in doc["checks"]}
    assert len(statuses) == count_checks(installed.package / "checks") > 0
    # This machine verified by the source the wheel was built from: the same verdicts, so nothing
    # the checks need went missing from the wheel.
    from_source = local_verify(tmp_path / "ev-source", lambda *a: _source_cli(source, *a), "--profile", "server")
    assert statuses == {c["id"]: c["status"] for c in from_source["checks"]}


def _source_cli(source: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The tool run from a source tree (ahead of this venv's editable install on sys.path)."""
    env = {**_clean_env(), "PYTHONPATH": str(source)}
    return _run([sys.executable, "-m", "hardening", *args], cwd=source, env=env)


@pytest.fixture()
def agency(tmp_path: Path) -> Path:
    """An agency's profile directory, outside the tool: one profile extending a shipped one."""
    directory = tmp_path / "agency-profiles"
    directory.mkdir()
    (directory / "agency-terminal.yaml").write_text(AGENCY_PROFILE)
    return directory


def test_agency_profiles_extend_the_shipped_ones(installed: Installed, agency: Path, tmp_path: Path) -> None:
    check = tool(installed, tmp_path / "a1", "profiles", "check", "--profiles", agency)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "agency-terminal" in check.stdout and "terminal" in check.stdout.replace("agency-terminal", "")
    doc = local_verify(tmp_path / "ev", lambda *a: tool(installed, tmp_path / "a2", *a),
                       "--profile", "agency-terminal", "--profiles", str(agency), "-m", "timeouts")
    assert doc["profile"]["chain"] == ["base", "terminal", "agency-terminal"]
    assert doc["profile"]["resolved"]["measures"]["timeouts"]["shell_tmout"] == 611


@pytest.fixture()
def lab_inventory(lab: Lab, lab_host: StartHost, tmp_path: Path) -> Iterator[Path]:
    lab_host("w-term1", "terminal", kind="container")
    yield lab.write_inventory(tmp_path / "lab.py")


def dry_deploy(installed: Installed, audit: Path, inventory: Path, *args: str | Path) -> str:
    proc = tool(installed, audit, "deploy", inventory, "--dry", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("w-term1 "))
    assert int(row.split()[1]) > 0, proc.stdout  # "would change" lists changes
    argvs = assert_outside_checkout(installed, audit)
    assert any(Path(a[0]).name == "pyinfra" for a in argvs), "no pyinfra child recorded"
    return proc.stderr  # pyinfra's --diff


@pytest.mark.lab
def test_dry_deploy_to_a_lab_host(installed: Installed, lab_inventory: Path, agency: Path, tmp_path: Path) -> None:
    diff = dry_deploy(installed, tmp_path / "a1", lab_inventory)
    assert "TMOUT=900" in diff
    # The same host under the agency's profile: its own value reaches the deploy.
    inventory = tmp_path / "agency.py"
    inventory.write_text(lab_inventory.read_text().replace("'profile': 'terminal'", "'profile': 'agency-terminal'"))
    assert "agency-terminal" in inventory.read_text()
    diff = dry_deploy(installed, tmp_path / "a2", inventory, "--profiles", agency, "-m", "timeouts")
    assert "TMOUT=611" in diff
