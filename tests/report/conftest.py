"""The fake study, built once per session and copied for each test that changes it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fake_study import make_study


@pytest.fixture(scope="session")
def fake_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fake study of ``fake_study.py`` (read only: tests use a copy, :func:`repo`)."""
    return make_study(tmp_path_factory.mktemp("fake_study") / "repo")


@pytest.fixture
def repo(fake_study: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A fresh copy of the fake study for each test (tests delete and rewrite files)."""
    root = tmp_path / "repo"
    shutil.copytree(fake_study["root"], root, symlinks=True)
    return {**fake_study, "root": root}
