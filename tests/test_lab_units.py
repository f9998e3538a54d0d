"""Lab helpers that need no lab host."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardening.lab import LabError
from hardening.lab.container import ensure_inotify_instances


def test_inotify_limit_is_raised_only_when_lower(tmp_path: Path) -> None:
    limit = tmp_path / "max_user_instances"
    limit.write_text("128\n")
    ensure_inotify_instances(limit, 1024)
    assert limit.read_text() == "1024\n"
    limit.write_text("8192\n")
    ensure_inotify_instances(limit, 1024)
    assert limit.read_text() == "8192\n"  # never lowered


def test_inotify_limit_that_cannot_be_raised_names_the_sysctl(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    limit = tmp_path / "max_user_instances"
    limit.write_text("128\n")

    def refuse(self: Path, *args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_text", refuse)
    with pytest.raises(LabError, match=r"sysctl -w fs\.inotify\.max_user_instances=1024"):
        ensure_inotify_instances(limit, 1024)
