"""The planted-violation corpus is well formed and covers every measure (no lab needed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hardening import ROOT
from hardening.measures import MEASURES, deploy_order
from tests import violations as corpus

MINIMUM = 40


def check_ids() -> set[str]:
    """Every check id: <measure>.<function without test_>, from checks/test_<measure>.py."""
    ids = set()
    for path in (ROOT / "checks").glob("test_*.py"):
        measure = path.stem.removeprefix("test_")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        ids |= {f"{measure}.{n.name.removeprefix('test_')}" for n in tree.body
                if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    return ids


def test_corpus_is_large_enough_and_covers_every_measure() -> None:
    """Every measure with a deploy: a planted violation must be repaired by the next deploy, which a
    check-only measure (``no_deploy``, e.g. disks: hardware a person replaces) cannot do."""
    violations = corpus.load()
    assert len(violations) >= MINIMUM, f"{len(violations)} violations, want at least {MINIMUM}"
    assert {v.measure for v in violations} >= set(deploy_order())


def test_every_violation_names_existing_checks_of_a_registered_measure() -> None:
    known = check_ids()
    for violation in corpus.load():
        assert violation.measure in MEASURES, violation.path
        unknown = [c for c in violation.fails if c not in known]
        assert not unknown, f"{violation.path}: unknown checks {unknown}"


def test_every_violation_script_is_strict_sh() -> None:
    for violation in corpus.load():
        body = [line for line in violation.script().splitlines() if line and not line.startswith("#")]
        assert violation.script().startswith("#!/bin/sh\n"), violation.path
        assert body and body[0] == "set -eu", f"{violation.path}: the first command must be 'set -eu'"


def _write(root: Path, rel: str, header: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{header}set -eu\ntrue\n", encoding="utf-8")
    return path


GOOD = "# what: x\n# by: admin\n# fails: auth.pwquality\n# host: container\n"


@pytest.mark.parametrize(("header", "message"), [
    (GOOD.replace("# by: admin\n", ""), "key 'by' missing"),
    (GOOD.replace("admin", "cat"), "key 'by' is 'cat'"),
    (GOOD.replace("container", "laptop"), "key 'host' is 'laptop'"),
    (GOOD.replace("auth.pwquality", "pwquality"), "expected <measure>.<check>"),
    (GOOD + "# what: again\n", "given twice"),
    (GOOD + "# order: first\n", "key 'order' is 'first'"),
])
def test_a_bad_header_names_the_file_and_the_key(tmp_path: Path, header: str, message: str) -> None:
    path = _write(tmp_path, "auth/bad.sh", header)
    with pytest.raises(corpus.CorpusError, match=message) as info:
        corpus.load(tmp_path)
    assert str(path) in str(info.value)


def test_groups_never_share_a_target_check_or_a_touched_thing(tmp_path: Path) -> None:
    _write(tmp_path, "auth/a.sh", GOOD)
    _write(tmp_path, "auth/b.sh", GOOD)  # same check as a
    _write(tmp_path, "auth/c.sh", GOOD.replace("auth.pwquality", "auth.password_hash") + "# touches: pam\n")
    _write(tmp_path, "auth/d.sh", GOOD.replace("auth.pwquality", "auth.password_ageing") + "# touches: pam\n")
    _write(tmp_path, "usb/e.sh", GOOD.replace("auth.pwquality", "usb.usbguard_rules").replace("container", "vm"))
    violations = corpus.load(tmp_path)
    packed = dict(corpus.groups(violations))
    assert [[v.id for v in g] for g in packed.values()] == [
        ["auth/a", "auth/c"], ["auth/b", "auth/d"], ["usb/e"]]
    assert list(packed) == ["container-1", "container-2", "vm-1"]
    assert len(corpus.groups(violations, alone=True)) == 5
    assert [v.id for v in corpus.select(violations, "auth/[ab], usb/*")] == ["auth/a", "auth/b", "usb/e"]


def test_order_last_is_planted_after_the_rest(tmp_path: Path) -> None:
    _write(tmp_path, "auth/a.sh", GOOD + "# order: last\n")
    _write(tmp_path, "auth/b.sh", GOOD.replace("auth.pwquality", "auth.password_hash"))
    [(_, group)] = corpus.groups(corpus.load(tmp_path))
    assert [v.id for v in corpus.planting_order(group)] == ["auth/b", "auth/a"]
