"""Atomic writes: short temporary names, the user's permissions, no orphans, no half files, no NaN."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leukview.core import atomic
from leukview.core.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    clean_stale_temps,
    is_own_temp,
    json_text,
)
from leukview.core.errors import LeukViewError

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX modes and signals")


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_name_near_the_limit_is_written(tmp_path: Path):
    # a 250-byte target: a temporary name made from it (".<name>.XXXXXXXX.tmp") would pass 255 bytes
    target = tmp_path / ("x" * 245 + ".json")
    assert len(target.name.encode()) == 250
    atomic_write_text(target, "{}")
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


@posix_only
def test_a_new_file_gets_the_umask_like_open(tmp_path: Path, umask_022):
    atomic_write_bytes(tmp_path / "a.csv", b"x")
    with open(tmp_path / "b.csv", "wb"):
        pass
    assert mode(tmp_path / "a.csv") == mode(tmp_path / "b.csv") == 0o644
    os.umask(0o077)
    atomic_write_bytes(tmp_path / "c.csv", b"x")
    assert mode(tmp_path / "c.csv") == 0o600
    assert atomic.new_file_mode() == 0o600


@posix_only
def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask_022):
    target = tmp_path / "shared.json"
    target.write_text("old")
    target.chmod(0o660)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and mode(target) == 0o660


def test_stale_temporary_files_of_ours_are_removed_fresh_and_foreign_ones_kept(tmp_path: Path):
    old = time.time() - 2 * 3600
    stale = tmp_path / ".lv-0123456789abcdef.tmp"
    stale_old_style = tmp_path / ".a.leukview.json.k2j_x9q1.tmp"  # what mkstemp made before
    fresh = tmp_path / ".lv-fedcba9876543210.tmp"
    foreign = tmp_path / ".something-else.tmp"
    other_target = tmp_path / ".b.leukview.json.k2j_x9q1.tmp"
    for p in (stale, stale_old_style, fresh, foreign, other_target):
        p.write_bytes(b"half" * 1000)
    for p in (stale, stale_old_style, foreign, other_target):
        os.utime(p, (old, old))
    atomic_write_text(tmp_path / "a.leukview.json", "{}")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([fresh.name, foreign.name, other_target.name, "a.leukview.json"])


@posix_only
def test_a_link_named_like_a_temporary_file_is_not_followed(tmp_path: Path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    link = tmp_path / ".lv-0123456789abcdef.tmp"
    link.symlink_to(victim)
    old = time.time() - 2 * 3600
    os.utime(link, (old, old), follow_symlinks=False)
    os.utime(victim, (old, old))
    assert clean_stale_temps(tmp_path) == []
    assert victim.read_text() == "keep" and link.is_symlink()


def test_own_temporary_names():
    assert is_own_temp(".lv-0123456789abcdef.tmp")
    assert not is_own_temp(".lv-0123456789abcdeg.tmp")
    assert not is_own_temp("lv-0123456789abcdef.tmp")
    assert is_own_temp(".x.json.abcd_123.tmp", "x.json")
    assert not is_own_temp(".x.json.abcd_123.tmp", "y.json")
    assert not is_own_temp(".x.json.abcd_123.tmp")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch):
    target = tmp_path / "s.json"
    target.write_text("old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        atomic_write_text(target, "new" * 1000)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


KILLED_WRITER = """
import sys
from leukview.core.atomic import atomic_write_bytes
target = sys.argv[1]
payloads = [bytes([65 + i]) * (4 << 20) for i in range(2)]
print("ready", flush=True)
i = 0
while True:
    atomic_write_bytes(target, payloads[i % 2])
    i += 1
"""


@posix_only
def test_a_write_killed_at_any_moment_leaves_a_whole_file(tmp_path: Path):
    target = tmp_path / "session.json"
    target.write_bytes(b"A" * (4 << 20))
    for delay in (0.05, 0.13, 0.21, 0.34):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        data = target.read_bytes()
        assert len(data) == 4 << 20 and data in (b"A" * (4 << 20), b"B" * (4 << 20))
        # what a kill leaves is only ever our own temporary file
        assert all(p == target or is_own_temp(p.name) for p in tmp_path.iterdir())
    clean_stale_temps(tmp_path, older_than=-1)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_text_with_a_lone_surrogate_is_written_escaped(tmp_path: Path):
    # os.fsdecode(b"caf\xe9.jpg") == "caf\udce9.jpg": UTF-8 cannot hold it
    name = os.fsdecode(b"caf\xe9.jpg") if os.name == "posix" else "caf\udce9.jpg"
    target = tmp_path / "x.json"
    atomic_write_json(target, {"image": name})
    assert target.read_bytes() == b'{"image":"caf\\udce9.jpg"}'
    assert json.loads(target.read_text("utf-8"))["image"] == name


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_json_never_holds_nan_or_infinity(tmp_path: Path, bad: float):
    doc = {"cells": [{"id": 1, "m": {"area": 3.0}}, {"id": 2, "m": {"area": bad}}]}
    with pytest.raises(LeukViewError, match=r"cells\[1\]\.m\.area") as info:
        atomic_write_json(tmp_path / "x.json", doc)
    assert "finite" in info.value.reason
    assert not any(tmp_path.iterdir())
    assert json.loads(json_text({"a": [1.5, None]})) == {"a": [1.5, None]}
