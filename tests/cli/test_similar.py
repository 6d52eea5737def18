"""``leukview analyze --similar K``: each white cell's K nearest atlas cells in cells.json, nearest first."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from leukview.cli import EXIT_OK, EXIT_USAGE, run_analyze
from leukview.core.analysis import analyze_image
from leukview.core.atlas import Atlas, default_atlas_dir
from leukview.core.io import read_image
from leukview.core.models import Classifier
from leukview.core.similar import LAB_ATLAS_ENV, NO_ATLAS_FOR_VERSION

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "resources" / "samples"
CLASSES = ["lymphocyte", "monocyte", "neutrophil"]
ATLAS_FIELDS = ("BloodImage_00262.jpg", "BloodImage_00056.jpg", "BloodImage_00305.jpg")


@pytest.fixture(autouse=True)
def no_lab_atlas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LAB_ATLAS_ENV, str(tmp_path / "no-lab-atlas"))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny type model with an atlas of the white cells of three bundled fields, labelled in turn."""
    onnx_factory = pytest.importorskip("onnx_factory")
    root = tmp_path_factory.mktemp("models")
    folder = onnx_factory.make_tiny_classifier(root / "wbc-type", CLASSES, seed=6)
    classifier = Classifier.load(folder)
    atlas = Atlas.create(default_atlas_dir(folder), classifier, name="test atlas")
    for name in ATLAS_FIELDS:
        image = read_image(SAMPLES / name)
        white = [c for c in analyze_image(image).cells if c.kind == "wbc"]
        atlas.add_cells(classifier, image, white, [CLASSES[(c.id + len(name)) % 3] for c in white],
                        source="samples", licence="MIT", file=name)  # fmt: skip
    assert len(atlas) >= 3
    return root


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_analyze(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_similar_field_is_nearest_first_with_atlas_labels(tmp_path: Path, models: Path) -> None:
    field = tmp_path / "BloodImage_00214.jpg"
    shutil.copy(SAMPLES / field.name, field)
    again = tmp_path / ATLAS_FIELDS[0]
    shutil.copy(SAMPLES / again.name, again)  # a field whose cells are in the atlas
    out_dir = tmp_path / "out"
    code, _, err = run(str(field), str(again), "--models-dir", str(models), "--similar", "3", "--out", str(out_dir))
    assert code == EXIT_OK, err
    atlas = Atlas.load(default_atlas_dir(models / "wbc-type"))
    k = min(3, len(atlas))
    for stem, in_atlas in (("BloodImage_00214", False), (Path(ATLAS_FIELDS[0]).stem, True)):
        doc = json.loads((out_dir / f"{stem}.cells.json").read_text())
        assert doc["similar_atlas"]["model"] == "wbc-type" and doc["similar_atlas"]["k"] == 3
        white = [c for c in doc["cells"] if c["kind"] == "wbc"]
        assert white and all("similar" not in c for c in doc["cells"] if c["kind"] != "wbc")
        for cell in white:
            similar = cell["similar"]
            assert len(similar) == k
            assert [list(s) for s in similar] == [["atlas_id", "label", "source", "distance"]] * k
            distances = [s["distance"] for s in similar]
            assert distances == sorted(distances) and all(0 <= d <= 2 for d in distances)
            assert all(s["label"] == atlas.entry(s["atlas_id"]).label and s["source"] == "samples" for s in similar)
        if in_atlas:  # each cell finds itself first (float16 embeddings: distance ~0)
            assert all(c["similar"][0]["distance"] < 2e-3 for c in white)


def test_no_usable_atlas_is_a_note_not_a_failure(tmp_path: Path, models: Path) -> None:
    onnx_factory = pytest.importorskip("onnx_factory")
    stale = tmp_path / "models"
    shutil.copytree(models, stale)
    onnx_factory.make_tiny_classifier(stale / "wbc-type", CLASSES, seed=7)  # a new version, the old atlas kept
    field = tmp_path / "BloodImage_00214.jpg"
    shutil.copy(SAMPLES / field.name, field)
    code, _, err = run(str(field), "--models-dir", str(stale), "--similar", "2", "--out", str(tmp_path / "out"))
    assert code == EXIT_OK, err
    assert NO_ATLAS_FOR_VERSION in err
    doc = json.loads((tmp_path / "out" / "BloodImage_00214.cells.json").read_text())
    assert "similar_atlas" not in doc and all("similar" not in c for c in doc["cells"])
    assert run(str(field), "--similar", "0", "--out", str(tmp_path / "o2"))[0] == EXIT_USAGE


def test_shipped_model_and_atlas(tmp_path: Path) -> None:
    """The shipped wbc-type model with its default atlas, where both are installed and match."""
    folder = ROOT / "models" / "wbc-type"
    try:
        classifier = Classifier.load(folder)
        Atlas.load(default_atlas_dir(folder), classifier)
    except Exception as exc:  # noqa: BLE001 - absent, being replaced, or another version
        pytest.skip(f"shipped wbc-type and its atlas not usable here: {exc}")
    field = tmp_path / "BloodImage_00214.jpg"
    shutil.copy(SAMPLES / field.name, field)
    code, _, err = run(str(field), "--model", "wbc-type", "--similar", "5", "--out", str(tmp_path / "out"))
    assert code == EXIT_OK, err
    doc = json.loads((tmp_path / "out" / "BloodImage_00214.cells.json").read_text())
    white = [c for c in doc["cells"] if c["kind"] == "wbc"]
    assert white and all(len(c["similar"]) == 5 and c["similar"][0]["source"] == "pbc" for c in white)
