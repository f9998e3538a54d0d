"""pytest plugin that judges every planned host in ONE pytest run of checks/ and writes evidence.

Loaded with ``-p hardening.evidence.plugin`` by ``hardening verify``, which hands it the plans
(``--hardening-plans``: hardening.plan, resolved once by the parent). Before the checks run,
each host is observed once (hardening.observe): one SSH session and one sudo per host, through
testinfra's backend, in parallel. Every check is then parametrized over the hosts that answered
and judges the observations (fixture ``obs``); a check that must make a call of its own uses the
``host`` fixture (testinfra), and those calls are recorded and counted apart.

Per host it writes ``<out>/<host>.json`` (schema: docs/evidence.md) and ``<out>/<host>.html``,
with every observation once and, per check, the observations it read. ``<out>/.results.json``
gives the parent a typed result per host; progress goes to ``--hardening-events`` as JSON lines.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import testinfra

from hardening import __version__, catalogue
from hardening.evidence import model
from hardening.observe import ObservationError, Observations, excerpt, parse, progress, remote_command
from hardening.plan import Plan
from hardening.plan import read as read_plans
from hardening.transport import classify_ssh_failure, sudo_refused

NOT_APPLICABLE = "not applicable: "
NOT_CONFIGURED = "not configured: "
ADVISORY = "advisory: "
# How a check ends when it gives no pass or fail: the prefix of its skip reason -> its status.
ENDINGS = {NOT_APPLICABLE: "not_applicable", NOT_CONFIGURED: "not_configured", ADVISORY: "advisory"}
RESULTS = ".results.json"
RESULT_KEY = pytest.StashKey["CheckRecord"]()
OBSERVE_TIMEOUT = 300


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
    observations: list[str] = field(default_factory=list)
    own_commands: list[dict[str, Any]] = field(default_factory=list)
    duration: float = 0.0
    assertion_failed: bool = field(default=False, repr=False)

    def used(self, observation_id: str) -> None:
        if observation_id not in self.observations:
            self.observations.append(observation_id)


@dataclass
class HostState:
    """One host of the run: its plan, its observations or why there are none."""

    plan: Plan
    started: str = ""
    finished: str = ""
    observations: Observations | None = None
    failure: tuple[str, str] | None = None  # (reason, message) when it could not be observed
    observe_seconds: float = 0.0
    records: list[CheckRecord] = field(default_factory=list)
    _testinfra: Any = None

    def testinfra_host(self, ssh_config: str | None) -> Any:
        """testinfra's host for this plan (the transport of the batch and of a check's own calls)."""
        if self._testinfra is None:
            if self.plan.local:
                self._testinfra = testinfra.get_host("local://", sudo=self.plan.sudo)
            else:
                self._testinfra = testinfra.get_host(f"ssh://{self.plan.name}", ssh_config=ssh_config,
                                                     sudo=self.plan.sudo)
        return self._testinfra


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
        """Ends the check as 'not applicable': the role or the hardware has no such thing."""
        pytest.skip(NOT_APPLICABLE + reason)

    @staticmethod
    def not_configured(reason: str) -> None:
        """Ends the check as 'not configured': the role needs data that the profile or the
        inventory lacks (say which key). Never counted as passed."""
        pytest.skip(NOT_CONFIGURED + reason)

    @staticmethod
    def advisory(reason: str) -> None:
        """Ends the check as 'advisory': something the profile expects but does not require is
        missing. Shown in the evidence and the summary, not counted as a failure. Call
        ``record`` first so that both sides are kept."""
        pytest.skip(ADVISORY + reason)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hardening")
    group.addoption("--hardening-out", help="directory for <host>.json and <host>.html")
    group.addoption("--hardening-plans", help="the plans the parent resolved (hardening.plan)")
    group.addoption("--hardening-ssh-config", help="OpenSSH client config for the hosts")
    group.addoption("--hardening-run-id", help="the run this evidence belongs to")
    group.addoption("--hardening-events", help="JSON-lines progress file")
    group.addoption("--hardening-parallel", type=int, default=8, help="hosts observed at once")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(*ids): the guideline clauses a check verifies")
    if config.getoption("--hardening-out"):
        config.pluginmanager.register(Session(config), "hardening-session")


class Session:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.out = Path(config.getoption("--hardening-out"))
        plans = read_plans(config.getoption("--hardening-plans"))
        self.hosts = {name: HostState(plan) for name, plan in plans.items()}
        self.ssh_config = config.getoption("--hardening-ssh-config")
        self._events = config.getoption("--hardening-events")
        self._lock = threading.Lock()

    def event(self, **data: Any) -> None:
        if self._events:
            with self._lock, open(self._events, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(data, ensure_ascii=False) + "\n")

    # -- observe every host once, before anything is judged --------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        parallel = max(1, int(self.config.getoption("--hardening-parallel") or 1))
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(self._observe, self.hosts.values()))

    def _observe(self, state: HostState) -> None:
        state.started = _now()
        start = time.monotonic()
        command = remote_command(state.plan.commands)
        if state.plan.sudo:
            command = f"sudo -n sh -c {shlex.quote(command)}"
        backend = state.testinfra_host(self.ssh_config).backend
        try:
            result = backend.run(command)
        except RuntimeError as exc:  # testinfra's ssh backend raises on ssh's own exit 255
            result = exc.args[0] if exc.args and hasattr(exc.args[0], "rc") else None
            if result is None:
                state.failure = ("crashed", f"observation failed: {exc}")
        except Exception as exc:  # any transport failure is this host's, not the run's
            state.failure = ("crashed", f"observation failed: {type(exc).__name__}: {exc}")
            result = None
        state.observe_seconds = round(time.monotonic() - start, 3)
        if result is not None:
            self._read_batch(state, result)
        self.event(event="observed", host=state.plan.name, seconds=state.observe_seconds,
                   failure=list(state.failure) if state.failure else None)

    def _read_batch(self, state: HostState, result: Any) -> None:
        if result.rc == 255 and not state.plan.local:
            delivered = progress(result.stdout or "")
            if delivered is not None:
                last = (result.stderr or "").strip().splitlines()[-1:] or ["ssh exit 255"]
                state.failure = ("connection-lost", f"connection lost during the run: the observation batch "
                                 f"stopped after {delivered} of {len(state.plan.commands)} commands ({last[0]})")
            else:
                state.failure = classify_ssh_failure(result.rc, result.stderr, state.plan.sudo)
            return
        try:
            state.observations = parse(state.plan.commands, result.stdout, exit_code=result.rc,
                                       stderr=result.stderr)
        except ObservationError as exc:
            if state.plan.sudo and result.rc != 0 and sudo_refused(result.stderr):
                state.failure = classify_ssh_failure(result.rc, result.stderr, True)
            else:
                state.failure = ("crashed", f"observation unreadable: {exc}")

    # -- collection: every check names known clauses, and runs once per observed host ------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "hardening_host" in metafunc.fixturenames:
            names = [n for n, s in self.hosts.items() if s.observations is not None]
            metafunc.parametrize("hardening_host", names, ids=names, indirect=True)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        # With no host observed, pytest keeps one placeholder per check ("empty parameter set").
        unplaced = [i for i in items if _host_param(i) not in self.hosts and "hardening_host" in
                    getattr(i, "fixturenames", ())]
        if unplaced:
            config.hook.pytest_deselected(items=unplaced)
            items[:] = [i for i in items if i not in unplaced]
        for item in items:
            ids = [str(a) for m in item.iter_markers("clause") for a in m.args]
            if not ids:
                raise pytest.UsageError(f"{item.nodeid}: a check must be marked @pytest.mark.clause(...)")
            if "hardening_host" not in getattr(item, "fixturenames", ()):
                raise pytest.UsageError(f"{item.nodeid}: a check must use the obs, host, plan, profile or "
                                        "evidence fixture (it is judged per host)")
            try:
                catalogue.require_known(ids, str(item.path), key=item.name)
            except Exception as exc:
                raise pytest.UsageError(str(exc)) from None
        self.event(event="collected", total=len(items))

    # -- per check ------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
        state = self.hosts[str(_host_param(item))]
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
        record.duration = round(time.monotonic() - start, 4)
        state.records.append(record)
        self.event(event="check", host=state.plan.name, id=record.id, status=record.status)
        return result

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self._current.get(report.nodeid)
        if record is None:
            return
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason.removeprefix("Skipped: ")
            prefix = next((p for p in ENDINGS if reason.startswith(p)), NOT_APPLICABLE)
            record.status = ENDINGS[prefix]
            record.message = reason.removeprefix(prefix)
        elif report.failed:
            is_assert = report.when == "call" and record.assertion_failed
            record.status = "fail" if is_assert and record.status != "error" else "error"
            record.message = _short(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> None:
        """A failed assertion is a verdict (fail); any other exception is an error. Decided by the
        exception's type: pytest's report text omits "AssertionError" for some comparisons."""
        if call.when == "call" and call.excinfo is not None and RESULT_KEY in item.stash:
            item.stash[RESULT_KEY].assertion_failed = call.excinfo.errisinstance(AssertionError)

    @property
    def _current(self) -> dict[str, CheckRecord]:
        return self.__dict__.setdefault("_by_nodeid", {})

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self._current[item.nodeid] = item.stash[RESULT_KEY]

    # -- fixtures -----------------------------------------------------------------------------
    @pytest.fixture
    def hardening_host(self, request: pytest.FixtureRequest) -> HostState:
        return self.hosts[request.param]

    @pytest.fixture
    def plan(self, hardening_host: HostState) -> Plan:
        """The host's plan: resolved profile, asset register entry, measures."""
        return hardening_host.plan

    @pytest.fixture
    def profile(self, hardening_host: HostState) -> Any:
        """The host's resolved hardware profile."""
        return hardening_host.plan.profile

    @pytest.fixture
    def inventory_host(self, hardening_host: HostState) -> Plan | None:
        """The host as the inventory describes it (``.asset``, ``.groups``), or None with --local."""
        return None if hardening_host.plan.local else hardening_host.plan

    @pytest.fixture
    def evidence(self, request: pytest.FixtureRequest, hardening_host: HostState) -> Evidence:
        return Evidence(request.node.stash[RESULT_KEY])

    @pytest.fixture
    def obs(self, request: pytest.FixtureRequest, hardening_host: HostState) -> Observations:
        """The host's observation batch; each read is recorded with the check."""
        record: CheckRecord = request.node.stash[RESULT_KEY]
        assert hardening_host.observations is not None
        return Observations(hardening_host.observations.results, listener=lambda o: record.used(o.id))

    @pytest.fixture
    def host(self, request: pytest.FixtureRequest, hardening_host: HostState) -> Iterator[Any]:
        """testinfra's host, for a check that must make a call of its own (recorded and counted)."""
        record: CheckRecord = request.node.stash[RESULT_KEY]
        testinfra_host = hardening_host.testinfra_host(self.ssh_config)
        backend = testinfra_host.backend
        original = backend.run

        def run(command: str, *args: str, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                result = original(command, *args, **kwargs)
            except RuntimeError as exc:
                result = exc.args[0] if exc.args and hasattr(exc.args[0], "rc") else None
                if result is None:
                    raise
            record.own_commands.append({
                "command": backend.quote(command, *args), "exit_code": result.rc,
                "stdout": excerpt(result.stdout), "stderr": excerpt(result.stderr),
                "duration": round(time.monotonic() - start, 3)})
            return result

        backend.run = run
        try:
            yield testinfra_host
        finally:
            del backend.run

    # -- end ------------------------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        results = []
        for state in self.hosts.values():
            results.append(self._write_host(state))
        (self.out / RESULTS).write_text(json.dumps(results, ensure_ascii=False), encoding="utf-8")

    def _write_host(self, state: HostState) -> dict[str, Any]:
        plan = state.plan
        obs = state.observations
        error = state.failure[1] if state.failure else None
        doc = model.document(
            run_id=self.config.getoption("--hardening-run-id") or "adhoc",
            plan=plan,
            mode="local" if plan.local else "ssh",
            started=state.started or _now(),
            finished=_now(),
            tool_version=__version__,
            identity=model.identity(obs) if obs else {},
            checks=[{k: v for k, v in r.__dict__.items() if k != "assertion_failed"} for r in state.records],
            observations=[o.as_evidence() for o in obs.all()] if obs else [],
            observe_seconds=state.observe_seconds,
            error=error,
        )
        path = model.write(doc, self.out)
        self.event(event="done", host=plan.name, summary=doc["summary"])
        return {"name": plan.name, "profile": plan.profile.name, "sensitivity": plan.profile.sensitivity,
                "verdict": "unreachable" if state.failure else doc["verdict"], "summary": doc["summary"],
                "json": path.name, "html": model.host_file(self.out, plan.name, "html").name,
                "message": error or "", "reason": state.failure[0] if state.failure else "",
                "retention_days": plan.retention_days, "attestations": doc["attestation_summary"],
                "expiring": model.expiring(doc)}


def _host_param(item: pytest.Item) -> object:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("hardening_host") if callspec is not None else None


def _short(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return excerpt(text.strip())


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
