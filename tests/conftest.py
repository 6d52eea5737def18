"""Shared fixtures: where the real data live, and small helpers.

Tests that need the large real data sets (``../shared/data`` or
``$LEUKVIEW_DATA``) say so by taking the ``data_dir`` fixture or by the
``real_data`` marker; a test that takes the fixture is marked automatically.
Without the data those tests are deselected, not skipped, and the run says how
many: the rest of the suite stands on the bundled samples, images the tests
make and small fixtures.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LEUKVIEW_DATA", ROOT.parent / "shared" / "data"))
_DESELECTED: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "data_dir" in getattr(item, "fixturenames", ()) and item.get_closest_marker("real_data") is None:
            item.add_marker(pytest.mark.real_data)
    if DATA.is_dir():
        return
    keep = [item for item in items if item.get_closest_marker("real_data") is None]
    dropped = [item for item in items if item.get_closest_marker("real_data") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
        _DESELECTED.extend(item.nodeid for item in dropped)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001 - pytest hook
    if _DESELECTED:
        terminalreporter.write_line(
            f"{len(_DESELECTED)} real-data tests deselected: no data at {DATA} (set LEUKVIEW_DATA to run them)"
        )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real microscope images (../shared/data); tests taking it are deselected without them."""
    if not DATA.is_dir():  # only reached when a test is selected by hand
        pytest.skip(f"real data not found at {DATA} (set LEUKVIEW_DATA)")
    return DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
