"""LeukView promises no network and no file written outside its outputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "samples" / "BloodImage_00214.jpg"
ANALYZE = [sys.executable, "-m", "leukview", "analyze", str(SAMPLE), "--quiet"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), QT_QPA_PLATFORM="offscreen")
    return env


def test_analysis_leaves_nothing_in_an_empty_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "out"
    run = subprocess.run([*ANALYZE, "--out", str(out)], env=_env(home), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (out / "summary.csv").is_file()
    # onnxruntime's telemetry would leave ~/.cache/Microsoft/DeveloperTools behind
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_analysis_opens_no_network_socket(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    trace = tmp_path / "trace.txt"
    cmd = ["strace", "-f", "-qq", "-e", "trace=socket,connect", "-o", str(trace), *ANALYZE, "--out", str(tmp_path / "o")]
    run = subprocess.run(cmd, env=_env(home), capture_output=True, text=True, timeout=300)
    if run.returncode != 0 and "ptrace" in run.stderr:
        pytest.skip(f"strace cannot trace here: {run.stderr.strip()[:200]}")
    assert run.returncode == 0, run.stderr
    lines = trace.read_text().splitlines()
    inet = [line for line in lines if "AF_INET" in line]  # AF_INET6 included
    assert inet == [], inet[:5]


def test_analysis_runs_without_a_network(tmp_path):
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("cannot make a network namespace here")
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "out"
    run = subprocess.run(
        ["unshare", "-rn", *ANALYZE, "--out", str(out)], env=_env(home), capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert (out / "BloodImage_00214.cells.json").is_file()
