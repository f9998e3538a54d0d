"""pytest plugin that turns one pytest run of checks/ against one host into evidence.

Loaded with ``-p hardening.evidence.plugin`` by ``hardening verify`` (one pytest process per
host). It gives checks their fixtures (``profile``, ``inventory_host``, ``evidence``), records
every command a check runs on the host (with exit code, output excerpt and duration), the host's
identity, and writes ``<out>/<host>.json`` (schema: docs/evidence.md) and ``<out>/<host>.html``.
Progress goes to ``--hardening-events`` as JSON lines, read by the verify runner.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hardening import __version__, attestations, catalogue
from hardening.errors import HardeningError
from hardening.evidence import model
from hardening.inventory import Host
from hardening.inventory import load as load_inventory
from hardening.profiles import Profiles, Resolved

OUTPUT_LIMIT = 4000
NOT_APPLICABLE = "not applicable: "
LOST = 3  # pytest exit status when the host went away in the middle of the run
RESULT_KEY = pytest.StashKey["CheckRecord"]()


@dataclass
class CheckRecord:
    id: str
    measure: str
    clauses: list[str]
    title: str
    status: str = "pass"
    expected: Any = None
    observed: Any = None
    message: str = ""
    commands: list[dict[str, Any]] = field(default_factory=list)
    duration: float = 0.0


class Evidence:
    """What a check hands to the report: ``evidence.record(expected=..., observed=...)``.

    Call it before asserting, so that a failing check still shows both sides.
    """

    def __init__(self, record: CheckRecord) -> None:
        self._record = record

    def record(self, expected: Any, observed: Any) -> None:
        self._record.expected = _jsonable(expected)
        self._record.observed = _jsonable(observed)

    @staticmethod
    def not_applicable(reason: str) -> None:
        """Ends the check as 'not applicable' (kept apart from pass, fail and error)."""
        pytest.skip(NOT_APPLICABLE + reason)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hardening")
    group.addoption("--hardening-out", help="directory for <host>.json and <host>.html")
    group.addoption("--hardening-host", help="host name as in the inventory (or the local hostname)")
    group.addoption("--hardening-inventory", help="inventory file giving the host's profile")
    group.addoption("--hardening-profile", help="profile name, when no inventory is given")
    group.addoption("--hardening-sensitivity", help="sensitivity, when no inventory is given")
    group.addoption("--hardening-profiles", help="hardware profile directory")
    group.addoption("--hardening-run-id", help="the run this evidence belongs to")
    group.addoption("--hardening-events", help="JSON-lines progress file")
    group.addoption("--hardening-mode", default="ssh", help="ssh or local")
    group.addoption("--hardening-attestations", help="attestation records (YAML) to include")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(*ids): the guideline clauses a check verifies")
    if config.getoption("--hardening-out"):
        config.pluginmanager.register(Session(config), "hardening-session")


class Session:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.out = Path(config.getoption("--hardening-out"))
        self.host_name = config.getoption("--hardening-host") or "localhost"
        self.records: list[CheckRecord] = []
        self.started = _now()
        self.identity: dict[str, Any] = {}
        self.resolved: Resolved | None = None
        self.host_entry: Host | None = None
        self.setup_error: str | None = None
        self._events = config.getoption("--hardening-events")
        self.mode = config.getoption("--hardening-mode")
        self._load_profile()

    def _load_profile(self) -> None:
        profiles = Profiles(Path(self.config.getoption("--hardening-profiles") or Profiles().directory))
        inventory = self.config.getoption("--hardening-inventory")
        try:
            if inventory:
                inv = load_inventory(inventory)
                self.host_entry = next(h for h in inv.hosts if h.name == self.host_name)
                self.resolved = self.host_entry.resolve(profiles)
            else:
                self.resolved = profiles.resolve(self.config.getoption("--hardening-profile") or "terminal",
                                                self.config.getoption("--hardening-sensitivity"))
        except (HardeningError, StopIteration) as exc:
            self.setup_error = str(exc) or f"host {self.host_name} not in {inventory}"

    def event(self, **data: Any) -> None:
        if self._events:
            with open(self._events, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(data, ensure_ascii=False) + "\n")

    # -- collection: every check names known clauses ------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            ids = [str(a) for m in item.iter_markers("clause") for a in m.args]
            if not ids:
                raise pytest.UsageError(f"{item.nodeid}: a check must be marked @pytest.mark.clause(...)")
            try:
                catalogue.require_known(ids, str(item.path), key=item.name)
            except HardeningError as exc:
                raise pytest.UsageError(str(exc)) from None
        self.event(event="collected", total=len(items))

    # -- per check ------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
        measure = item.path.stem.removeprefix("test_")
        name = getattr(item, "originalname", item.name).removeprefix("test_")
        doc = (getattr(getattr(item, "obj", None), "__doc__", None) or "").strip().splitlines()
        record = CheckRecord(
            id=f"{measure}.{name}",
            measure=measure,
            clauses=sorted({str(a) for m in item.iter_markers("clause") for a in m.args}),
            title=doc[0] if doc else name.replace("_", " "),
        )
        item.stash[RESULT_KEY] = record
        start = time.monotonic()
        result = yield
        record.duration = round(time.monotonic() - start, 3)
        self.records.append(record)
        self.event(event="check", id=record.id, status=record.status)
        return result

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self._current.get(report.nodeid)
        if record is None:
            return
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason.removeprefix("Skipped: ")
            record.status = "not_applicable"
            record.message = reason.removeprefix(NOT_APPLICABLE)
        elif report.failed:
            is_assert = report.when == "call" and "AssertionError" in str(report.longrepr)
            record.status = "fail" if is_assert and record.status != "error" else "error"
            record.message = _short(report)

    @property
    def _current(self) -> dict[str, CheckRecord]:
        return self.__dict__.setdefault("_by_nodeid", {})

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self._current[item.nodeid] = item.stash[RESULT_KEY]
        if self.setup_error:
            raise pytest.UsageError(self.setup_error)

    # -- fixtures -----------------------------------------------------------------------------
    @pytest.fixture(scope="session")
    def profile(self) -> Resolved:
        """The host's resolved hardware profile."""
        assert self.resolved is not None, self.setup_error
        return self.resolved

    @pytest.fixture(scope="session")
    def inventory_host(self) -> Host | None:
        """The host as the inventory describes it (asset register), or None with --local."""
        return self.host_entry

    @pytest.fixture
    def evidence(self, request: pytest.FixtureRequest) -> Evidence:
        return Evidence(request.node.stash[RESULT_KEY])

    @pytest.fixture(autouse=True)
    def _record_commands(self, request: pytest.FixtureRequest) -> Iterator[None]:
        if "host" not in request.fixturenames:
            yield
            return
        host = request.getfixturevalue("host")
        record: CheckRecord = request.node.stash[RESULT_KEY]
        backend = host.backend
        original = backend.run

        def run(command: str, *args: str, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                result = original(command, *args, **kwargs)
            except RuntimeError as exc:  # testinfra's ssh backend raises on ssh's own exit 255
                result = exc.args[0] if exc.args and hasattr(exc.args[0], "rc") else None
                if result is None:
                    raise
                self._lost(record, result, original)
                raise
            if result.rc == 255:
                self._lost(record, result, original)
            record.commands.append({
                "command": backend.quote(command, *args),
                "exit_code": result.rc,
                "stdout": _excerpt(result.stdout),
                "stderr": _excerpt(result.stderr),
                "duration": round(time.monotonic() - start, 3),
            })
            return result

        backend.run = run
        try:
            yield
        finally:
            del backend.run
        if not self.identity:
            self.identity = model.identity(host)

    def _lost(self, record: CheckRecord, result: Any, run: Any) -> None:
        """Stop the run when the host itself went away (not a remote command's own exit 255)."""
        if self.mode != "ssh" or _reachable(run):
            return
        self.setup_error = f"connection lost during the run: {_excerpt(result.stderr).strip()}"
        record.status, record.message = "error", self.setup_error
        pytest.exit(self.setup_error, returncode=LOST)

    # -- end ------------------------------------------------------------------------------------
    def _attestations(self) -> list[dict[str, Any]]:
        path = self.config.getoption("--hardening-attestations")
        if self.resolved is None:
            return []
        records = attestations.load(Path(path)) if path else []
        return attestations.evaluate(self.resolved, records, name=self.host_name, host=self.host_entry)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        doc = model.document(
            run_id=self.config.getoption("--hardening-run-id") or "adhoc",
            host_name=self.host_name,
            mode=self.config.getoption("--hardening-mode"),
            started=self.started,
            finished=_now(),
            tool_version=__version__,
            identity=self.identity,
            profile=self.resolved,
            inventory_host=self.host_entry,
            checks=[r.__dict__ for r in self.records],
            error=self.setup_error,
            attestations=self._attestations(),
        )
        self.out.mkdir(parents=True, exist_ok=True)
        model.write(doc, self.out)
        self.event(event="done", summary=doc["summary"])


def _reachable(run: Any) -> bool:
    """Exit 255 is ssh's own failure, or a remote command's; ask the host once more to tell."""
    try:
        return bool(run("true").rc == 0)
    except RuntimeError:
        return False


def _excerpt(text: str) -> str:
    text = text or ""
    if len(text) <= OUTPUT_LIMIT:
        return text
    return text[:OUTPUT_LIMIT] + f"\n[… {len(text) - OUTPUT_LIMIT} more characters]"


def _short(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return _excerpt(text.strip())


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
