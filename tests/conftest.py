"""Shared fixtures: where the real data live, and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LEUKVIEW_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real microscope images (../shared/data); the suite skips what needs them if absent."""
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (set LEUKVIEW_DATA)")
    return DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
