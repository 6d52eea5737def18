"""``leukview analyze`` end to end on real BCCD fields and on bad files."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leukview.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, run_analyze


@pytest.fixture()
def fields(data_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "fields"
    folder.mkdir()
    for name in ("BloodImage_00003.jpg", "BloodImage_00214.jpg"):
        shutil.copy(data_dir / "bccd" / "JPEGImages" / name, folder / name)
    return folder


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_analyze(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_folder_writes_json_per_image_and_summary(fields: Path, tmp_path: Path):
    out_dir = tmp_path / "out"
    code, _, err = run(str(fields), "--out", str(out_dir), "--no-models", "--overlay")
    assert code == EXIT_OK, err
    for stem in ("BloodImage_00003", "BloodImage_00214"):
        doc = json.loads((out_dir / f"{stem}.cells.json").read_text())
        assert doc["schema_version"] == 1
        assert (doc["width"], doc["height"]) == (640, 480)
        kinds = {c["kind"] for c in doc["cells"]}
        assert "wbc" in kinds and "rbc" in kinds
        for cell in doc["cells"]:
            x0, y0, x1, y1 = cell["bbox"]
            assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
            assert x0 <= cell["centroid"][0] <= x1
        assert (out_dir / f"{stem}.overlay.png").stat().st_size > 10_000
    rows = list(csv.DictReader((out_dir / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(int(r["wbc"]) >= 1 and int(r["rbc"]) > 10 for r in rows)


def test_bad_files_are_named_and_the_rest_still_analysed(fields: Path, tmp_path: Path):
    (fields / "empty.jpg").write_bytes(b"")
    (fields / "notes.tif").write_text("this is not a TIFF")
    real = (fields / "BloodImage_00003.jpg").read_bytes()
    (fields / "truncated.jpg").write_bytes(real[: len(real) // 3])
    out_dir = tmp_path / "out"
    code, _, err = run(str(fields), str(tmp_path / "missing.png"), "--out", str(out_dir), "--no-models")
    assert code == EXIT_FAILED
    for name in ("empty.jpg", "notes.tif", "truncated.jpg", "missing.png"):
        assert name in err
    assert "Traceback" not in err
    assert (out_dir / "BloodImage_00214.cells.json").exists()
    assert not (out_dir / "truncated.cells.json").exists()
    statuses = {Path(r["image"]).name: r["status"] for r in csv.DictReader((out_dir / "summary.csv").open())}
    assert statuses["BloodImage_00214.jpg"] == "ok"
    assert statuses["empty.jpg"].startswith("error")


def test_usage_errors_exit_2(tmp_path: Path, fields: Path):
    assert run()[0] == EXIT_USAGE
    assert run(str(fields), "--pixel-size", "-1")[0] == EXIT_USAGE
    code, _, err = run(str(fields), "--model", "no-such-model", "--out", str(tmp_path / "o"))
    assert code == EXIT_USAGE and "no-such-model" in err


def test_models_run_and_are_recorded(fields: Path, tmp_path: Path):
    onnx_factory = pytest.importorskip("onnx_factory")
    models = tmp_path / "models"
    onnx_factory.make_tiny_classifier(models / "tiny", ["lymphocyte", "neutrophil"])
    out_dir = tmp_path / "out"
    code, _, err = run(str(fields / "BloodImage_00214.jpg"), "--models-dir", str(models), "--out", str(out_dir))
    assert code == EXIT_OK, err
    doc = json.loads((out_dir / "BloodImage_00214.cells.json").read_text())
    assert doc["models"][0]["name"] == "tiny"
    assert doc["models"][0]["provider"] == "CPUExecutionProvider"
    wbcs = [c for c in doc["cells"] if c["kind"] == "wbc"]
    assert wbcs and all(set(c["predictions"]["tiny"]["probabilities"]) == {"lymphocyte", "neutrophil"} for c in wbcs)
    assert all(not c["predictions"] for c in doc["cells"] if c["kind"] == "rbc")
    header = (out_dir / "summary.csv").read_text().splitlines()[0]
    assert "tiny:lymphocyte" in header


def test_console_script_runs_headless(fields: Path, tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "leukview", "analyze", str(fields / "BloodImage_00003.jpg"),
         "--out", str(tmp_path / "o"), "--no-models"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o" / "BloodImage_00003.cells.json").exists()
