"""``leukview analyze`` end to end on the bundled sample fields and on bad files."""

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
from leukview.core.analysis import Analysis
from leukview.core.calls import differential_count, review_classes

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "resources" / "samples"
TWO = ("BloodImage_00056.jpg", "BloodImage_00214.jpg")


@pytest.fixture()
def fields(tmp_path: Path) -> Path:
    folder = tmp_path / "fields"
    folder.mkdir()
    for name in TWO:
        shutil.copy(SAMPLES / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    onnx_factory = pytest.importorskip("onnx_factory")
    models = tmp_path_factory.mktemp("models")
    onnx_factory.make_tiny_classifier(models / "tiny", ["lymphocyte", "neutrophil"])
    return models


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_analyze(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def summary(out_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((out_dir / "summary.csv").open(encoding="utf-8")))


def test_folder_writes_schema_2_json_per_image_and_summary(fields: Path, tmp_path: Path):
    out_dir = tmp_path / "out"
    code, _, err = run(str(fields), "--out", str(out_dir), "--no-models", "--overlay")
    assert code == EXIT_OK, err
    for name in TWO:
        stem = Path(name).stem
        doc = json.loads((out_dir / f"{stem}.cells.json").read_text())
        assert doc["schema_version"] == 2
        assert (doc["width"], doc["height"]) == (640, 480)
        assert (doc["pixel_size_um"], doc["pixel_size_source"]) == (None, None)  # a JPEG says nothing
        assert doc["confidence_threshold"] == 0.7
        kinds = {c["kind"] for c in doc["cells"]}
        assert "wbc" in kinds and "rbc" in kinds
        for cell in doc["cells"]:
            x0, y0, x1, y1 = cell["bbox"]
            assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
            assert x0 <= cell["centroid"][0] <= x1
            assert cell["call"] == {"label": None, "confidence": None, "source": None} and cell["flags"] == []
            assert not any(k.endswith(("_um", "_um2")) for k in cell["measurements"])
        assert (out_dir / f"{stem}.overlay.png").stat().st_size > 10_000
    rows = summary(out_dir)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(int(r["wbc"]) >= 1 and int(r["rbc"]) > 10 for r in rows)
    # no model: every white cell is unclassified, and there is no blast percentage to give
    assert all(r["call:unclassified"] == r["wbc"] and r["leukocytes"] == "0" for r in rows)
    assert all(r["blast_percent"] == "" for r in rows)


def test_pixel_size_gives_micrometres_and_is_recorded_as_the_users(fields: Path, tmp_path: Path):
    out_dir = tmp_path / "out"
    code, _, err = run(str(fields / TWO[1]), "--out", str(out_dir), "--no-models", "--pixel-size", "0.25")
    assert code == EXIT_OK, err
    doc = json.loads((out_dir / "BloodImage_00214.cells.json").read_text())
    assert (doc["pixel_size_um"], doc["pixel_size_source"]) == (0.25, "user")
    wbc = next(c for c in doc["cells"] if c["kind"] == "wbc")
    assert wbc["measurements"]["area_um2"] == pytest.approx(wbc["measurements"]["area"] * 0.0625, rel=1e-3)
    loaded = Analysis.from_dict(doc)
    assert loaded.calibration.source == "user" and "area_um2" not in loaded.cells[0].measurements


def test_bad_files_are_named_and_the_rest_still_analysed(fields: Path, tmp_path: Path):
    (fields / "empty.jpg").write_bytes(b"")
    (fields / "notes.tif").write_text("this is not a TIFF")
    real = (fields / TWO[0]).read_bytes()
    (fields / "truncated.jpg").write_bytes(real[: len(real) // 3])
    out_dir = tmp_path / "out"
    code, _, err = run(str(fields), str(tmp_path / "missing.png"), "--out", str(out_dir), "--no-models")
    assert code == EXIT_FAILED
    for name in ("empty.jpg", "notes.tif", "truncated.jpg", "missing.png"):
        assert name in err
    assert "Traceback" not in err
    assert (out_dir / "BloodImage_00214.cells.json").exists()
    assert not (out_dir / "truncated.cells.json").exists()
    statuses = {Path(r["image"]).name: r["status"] for r in summary(out_dir)}
    assert statuses["BloodImage_00214.jpg"] == "ok"
    assert statuses["empty.jpg"].startswith("error")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--pixel-size", "-1"), "pixel size"),
        (("--pixel-size", "0"), "pixel size"),
        (("--pixel-size", "1e200"), "outside"),
        (("--pixel-size", "nan"), "outside"),
        (("--pixel-size", "inf"), "outside"),
        (("--pixel-size", "abc"), "not a number"),
        (("--confidence-threshold", "1.5"), "between 0 and 1"),
        (("--confidence-threshold", "nan"), "between 0 and 1"),
    ],
)
def test_implausible_settings_are_usage_errors(fields: Path, tmp_path: Path, args: tuple[str, ...], message: str):
    out_dir = tmp_path / "o"
    code, _, err = run(str(fields), "--no-models", "--out", str(out_dir), *args)
    assert code == EXIT_USAGE
    assert message in err and args[0] in err and "Traceback" not in err
    assert not out_dir.exists()  # refused before any work


def test_usage_errors_exit_2(tmp_path: Path, fields: Path):
    assert run()[0] == EXIT_USAGE
    code, _, err = run(str(fields), "--model", "no-such-model", "--out", str(tmp_path / "o"))
    assert code == EXIT_USAGE and "no-such-model" in err


def test_models_run_and_the_summary_counts_their_calls(fields: Path, tmp_path: Path, tiny_models: Path):
    out_dir = tmp_path / "out"
    code, _, err = run(
        str(fields), "--models-dir", str(tiny_models), "--out", str(out_dir), "--confidence-threshold", "0.9"
    )
    assert code == EXIT_OK, err
    rows = {Path(r["image"]).stem: r for r in summary(out_dir)}
    header = (out_dir / "summary.csv").read_text().splitlines()[0].split(",")
    for stem, row in rows.items():
        doc = json.loads((out_dir / f"{stem}.cells.json").read_text())
        assert doc["models"][0]["name"] == "tiny" and doc["models"][0]["provider"] == "CPUExecutionProvider"
        assert doc["confidence_threshold"] == 0.9
        wbcs = [c for c in doc["cells"] if c["kind"] == "wbc"]
        assert wbcs and all(set(c["predictions"]["tiny"]["probabilities"]) == {"lymphocyte", "neutrophil"} for c in wbcs)
        assert all(not c["predictions"] for c in doc["cells"] if c["kind"] == "rbc")
        assert all(c["call"]["source"] == "tiny" for c in wbcs)
        # the call: columns are the differential of those calls
        analysis = Analysis.from_dict(doc)
        diff = differential_count(analysis.cells, analysis.models, 0.9)
        for name in review_classes(analysis.models):
            assert int(row[f"call:{name}"]) == diff.counts[name]
            assert int(row[f"call:{name}"]) == sum(c["call"]["label"] == name for c in wbcs)
        assert int(row["leukocytes"]) == diff.leukocytes
        assert int(row["flagged"]) == diff.flagged == sum(bool(c["flags"]) for c in wbcs)
        # the model's own labels, apart from the call
        for name in ("lymphocyte", "neutrophil"):
            assert int(row[f"model:tiny:{name}"]) == sum(c["predictions"]["tiny"]["label"] == name for c in wbcs)
    assert not any(c.endswith("_fraction") or c.startswith("tiny:") for c in header)


def test_console_script_runs_headless(fields: Path, tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "leukview", "analyze", str(fields / TWO[0]),
         "--out", str(tmp_path / "o"), "--no-models"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o" / "BloodImage_00056.cells.json").exists()
