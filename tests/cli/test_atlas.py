"""``leukview atlas add`` / ``atlas info``: reviewed cells only, tied to the model, dedupe on a second add."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from leukview.__main__ import main
from leukview.cli_atlas import EXIT_FAILED, EXIT_OK, EXIT_USAGE, run_atlas
from leukview.core.analysis import analyze_image
from leukview.core.atlas import Atlas
from leukview.core.io import read_image
from leukview.core.models import Classifier
from leukview.core.session import Session, save_session, session_path
from leukview.core.similar import LAB_ATLAS_ENV

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "resources" / "samples"
CLASSES = ["lymphocyte", "monocyte", "neutrophil"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    onnx_factory = pytest.importorskip("onnx_factory")
    models = tmp_path_factory.mktemp("models")
    onnx_factory.make_tiny_classifier(models / "wbc-type", CLASSES, seed=4)
    return models


@pytest.fixture(autouse=True)
def lab_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab atlases of this test (never the user's)."""
    monkeypatch.setenv(LAB_ATLAS_ENV, str(tmp_path / "lab-atlases"))
    return tmp_path / "lab-atlases"


def reviewed_session(tmp_path: Path, models: Path, name: str, reviews: dict[int, str]) -> tuple[Path, Session]:
    """A bundled field analysed with the tiny model, some white cells reviewed (by position in the list)."""
    image_path = tmp_path / "cases" / name
    image_path.parent.mkdir(exist_ok=True)
    shutil.copy(SAMPLES / name, image_path)
    classifier = Classifier.load(models / "wbc-type")
    analysis = analyze_image(read_image(image_path), [classifier], image_name=str(image_path))
    session = Session.new(analysis, image_path)
    white = [c for c in analysis.cells if c.kind == "wbc"]
    rbc = next(c for c in analysis.cells if c.kind == "rbc")
    assert len(white) >= 1
    for index, label in reviews.items():
        cell = white[index] if index >= 0 else rbc
        session.set_review(cell.id, label, who="jdoe")
    path = session_path(image_path)
    save_session(session, path)
    return path, session


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_atlas(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_add_takes_reviewed_cells_and_dedupes(tmp_path: Path, tiny_models: Path) -> None:
    first, session = reviewed_session(tmp_path, tiny_models, "BloodImage_00214.jpg", {0: "eosinophil", -1: "artefact"})
    second, _ = reviewed_session(tmp_path, tiny_models, "BloodImage_00262.jpg", {0: "neutrophil"})
    unreviewed, _ = reviewed_session(tmp_path, tiny_models, "BloodImage_00056.jpg", {})
    folder = tmp_path / "atlas"
    code, out, err = run("add", str(first), str(second), str(unreviewed), "--atlas", str(folder),
                         "--models-dir", str(tiny_models), "--source", "City lab 2024", "--licence", "internal")  # fmt: skip
    assert code == EXIT_OK, err
    assert "created atlas" in out and "3 reviewed cells" not in out
    assert f"{first}: 2 reviewed cells: 2 added" in out and "no reviewed cell" in out
    atlas = Atlas.load(folder, Classifier.load(tiny_models / "wbc-type"))
    assert len(atlas) == 3
    assert sorted(e.label for e in atlas.entries) == ["artefact", "eosinophil", "neutrophil"]  # the reviews
    assert {e.source for e in atlas.entries} == {"City lab 2024"} and atlas.entries[0].licence == "internal"
    assert {e.group for e in atlas.entries} == {first.name, second.name}
    assert atlas.entries[0].file.endswith("BloodImage_00214.jpg")
    # the same sessions again (an image path works too): nothing is added twice
    code, out, err = run("add", str(first), str(second.with_name("BloodImage_00262.jpg")), "--atlas", str(folder),
                         "--models-dir", str(tiny_models), "--source", "City lab 2024", "--licence", "internal")  # fmt: skip
    assert code == EXIT_OK, err
    assert "0 added, 2 already in the atlas" in out and "0 added, 1 already in the atlas" in out
    assert len(Atlas.load(folder)) == 3 and "created atlas" not in out
    # another licence for the same source is refused, the atlas unchanged
    code, _, err = run("add", str(first), "--atlas", str(folder), "--models-dir", str(tiny_models),
                       "--source", "City lab 2024", "--licence", "CC0")  # fmt: skip
    assert code == EXIT_FAILED and "licence" in err


def test_add_goes_to_the_lab_atlas_by_default_and_info_says_what_is_in_it(
    tmp_path: Path, tiny_models: Path, lab_folder: Path
) -> None:
    path, _ = reviewed_session(tmp_path, tiny_models, "BloodImage_00214.jpg", {0: "monocyte"})
    code, out, err = run("add", str(path), "--models-dir", str(tiny_models))
    assert code == EXIT_OK, err
    assert (lab_folder / "wbc-type" / "atlas.json").is_file()
    code, out, err = run("info", str(lab_folder / "wbc-type"), "--models-dir", str(tiny_models))
    assert code == EXIT_OK, err
    assert "monocyte" in out and "lab review: 1 cells, licence internal use" in out
    assert "(the installed version)" in out and "cells:    1" in out
    code, out, _ = run("info", str(lab_folder / "wbc-type"), "--json")
    info = json.loads(out)
    assert info["count"] == 1 and info["by_label"] == {"monocyte": 1} and info["model"]["name"] == "wbc-type"
    # without DIR: every atlas found for the installed models (here the lab's)
    code, out, _ = run("info", "--models-dir", str(tiny_models))
    assert code == EXIT_OK and str(lab_folder / "wbc-type") in out
    # through the entry point
    assert main(["atlas", "info", str(lab_folder / "wbc-type"), "--json"]) == EXIT_OK


def test_refusals(tmp_path: Path, tiny_models: Path) -> None:
    path, session = reviewed_session(tmp_path, tiny_models, "BloodImage_00214.jpg", {0: "monocyte"})
    folder = tmp_path / "atlas"
    assert run("add", str(path), "--atlas", str(folder), "--models-dir", str(tiny_models))[0] == EXIT_OK
    # the model was replaced: the lab's atlas belongs to the old one and is not mixed
    onnx_factory = pytest.importorskip("onnx_factory")
    newer = tmp_path / "newer"
    onnx_factory.make_tiny_classifier(newer / "wbc-type", CLASSES, seed=11)
    code, _, err = run("add", str(path), "--atlas", str(folder), "--models-dir", str(newer))
    assert code == EXIT_FAILED and "atlas was made with" in err
    code, out, _ = run("info", str(folder), "--models-dir", str(newer))
    assert "no atlas for this model version" in out
    # a changed image is not the one reviewed
    image = Path(session.image_path)
    image.write_bytes(image.read_bytes() + b"\0")
    code, _, err = run("add", str(path), "--atlas", str(folder), "--models-dir", str(tiny_models))
    assert code == EXIT_FAILED and "not the one reviewed" in err
    code, _, err = run("add", str(tmp_path / "missing.leukview.json"), "--atlas", str(folder),
                       "--models-dir", str(tiny_models))  # fmt: skip
    assert code == EXIT_FAILED and "missing.leukview.json" in err
    assert run("add", str(path), "--model", "nope", "--models-dir", str(tiny_models))[0] == EXIT_USAGE
    assert run("info", str(tmp_path / "nothing"))[0] == EXIT_FAILED
    assert run()[0] == EXIT_USAGE
