"""Session files that are too deep, too large or hold absurd numbers; saves a lab can share."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from leukview.core.analysis import Analysis
from leukview.core.cells import Cell
from leukview.core.errors import SessionError
from leukview.core.session import Session, SessionDamaged, load_session, save_session
from leukview.core.session._session import MAX_SESSION_BYTES


def analysis(area: float = 1600.0) -> Analysis:
    cell = Cell(1, "wbc", np.zeros((0, 2), np.int32), (10, 10, 50, 50), (30.0, 30.0), measurements={"area": area})
    return Analysis(width=64, height=48, cells=[cell], models=[], image="x.jpg")


def saved(tmp_path: Path) -> Path:
    path = tmp_path / "x.jpg.leukview.json"
    save_session(Session.new(analysis(), who="a"), path)
    return path


@pytest.mark.parametrize("where", ["top", "analysis", "audit"])
def test_deeply_nested_json_is_a_damaged_session_not_a_recursion_error(tmp_path: Path, where: str):
    deep = "[" * 200_000 + "]" * 200_000
    if where == "top":
        text = deep
    else:
        doc = json.loads(saved(tmp_path).read_text())
        doc[where] = "DEEP"
        text = json.dumps(doc).replace('"DEEP"', deep)
    path = tmp_path / "deep.leukview.json"
    path.write_text(text)
    with pytest.raises(SessionDamaged, match="nested too deeply"):
        load_session(path)


def test_a_session_larger_than_any_is_refused_before_it_is_read(tmp_path: Path):
    path = tmp_path / "huge.leukview.json"
    with path.open("wb") as fh:  # sparse: costs no disk, and nothing must read it
        fh.truncate(MAX_SESSION_BYTES + 1)
    with pytest.raises(SessionDamaged, match="more than any session"):
        load_session(path)


@pytest.mark.parametrize("value", ["1e400", "-1e400"])
def test_a_number_too_large_for_an_integer_is_a_damaged_session(tmp_path: Path, value: str):
    path = saved(tmp_path)
    doc = json.loads(path.read_text())
    doc["image"]["size_bytes"] = "HUGE"
    path.write_text(json.dumps(doc).replace('"HUGE"', value))
    with pytest.raises(SessionDamaged, match="OverflowError"):
        load_session(path)


def test_a_non_finite_value_is_never_saved_and_the_last_session_stays(tmp_path: Path):
    path = saved(tmp_path)
    before = path.read_bytes()
    with pytest.raises(SessionError, match=r"finite.*cells\[0\]\.measurements\.area"):
        save_session(Session.new(analysis(float("nan")), who="a"), path)
    assert path.read_bytes() == before
    assert b"NaN" not in before and json.loads(before)["format"] == "leukview-session"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_a_saved_session_is_readable_by_the_lab_and_keeps_a_stricter_mode(tmp_path: Path):
    old = os.umask(0o022)
    try:
        path = saved(tmp_path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # 0600 before: a colleague could not open it
        path.chmod(0o640)
        save_session(load_session(path), path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_a_save_removes_an_orphan_left_by_a_killed_save_and_keeps_a_fresh_one(tmp_path: Path):
    orphan = tmp_path / ".x.jpg.leukview.json.a1b2c3d4.tmp"  # the name earlier versions used
    orphan.write_bytes(b'{"format":"leukview-session","sche')  # half written
    fresh = tmp_path / ".lv-00000000000000aa.tmp"  # another save, still running
    fresh.write_bytes(b"{")
    old = time.time() - 3 * 3600
    os.utime(orphan, (old, old))
    path = saved(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, path.name])
    assert load_session(path).analysis.cells[0].measurements["area"] == 1600.0
