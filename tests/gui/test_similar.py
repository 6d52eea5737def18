"""The Similar cells panel and the occlusion map in the viewer (tiny models, small atlases built here)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt

from leukview.core.analysis import analyze_image
from leukview.core.atlas import Atlas, default_atlas_dir
from leukview.core.models import Classifier
from leukview.core.preprocess import crop_box
from leukview.core.similar import LAB_ATLAS_ENV, NO_ATLAS_FOR_VERSION

pytestmark = pytest.mark.gui

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
SAMPLE_NAMES = ("BloodImage_00214.jpg", "BloodImage_00262.jpg", "BloodImage_00056.jpg", "BloodImage_00305.jpg")
WBC_CLASSES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]
ANALYSIS_TIMEOUT_MS = 60000


def sample_rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2RGB)


@pytest.fixture(autouse=True)
def no_lab_atlas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LAB_ATLAS_ENV, str(tmp_path / "no-lab-atlas"))


@pytest.fixture(scope="module")
def atlas_models(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny models, wbc-type with an atlas of the white cells of three bundled fields."""
    root = tmp_path_factory.mktemp("atlas-models")
    shutil.copytree(models_dir, root, dirs_exist_ok=True)
    classifier = Classifier.load(root / "wbc-type")
    atlas = Atlas.create(default_atlas_dir(root / "wbc-type"), classifier, name="test atlas")
    labels = ["neutrophil", "lymphocyte", "monocyte", "eosinophil"]
    for n, name in enumerate(SAMPLE_NAMES[1:]):
        image = sample_rgb(name)
        white = [c for c in analyze_image(image).cells if c.kind == "wbc"]
        atlas.add_cells(classifier, image, white, [labels[(n + i) % 4] for i in range(len(white))],
                        source="samples", licence="MIT", attribution="BCCD", file=name)  # fmt: skip
    assert len(atlas) >= 3
    return root


def white_cell(window) -> int:  # noqa: ANN001
    return next(c.id for c in window.document.cells if c.kind == "wbc")


def shown(qtbot, window) -> None:  # noqa: ANN001
    qtbot.waitUntil(lambda: window.similar_panel.result is not None, timeout=ANALYSIS_TIMEOUT_MS)


def test_panel_shows_the_nearest_atlas_cells_quickly(qtbot, make_window, analysed, atlas_models: Path, sample: Path):  # noqa: ANN001
    window = make_window(atlas_models)
    analysed(window, sample)
    window.similar_dock.raise_()
    assert window.explain_models.wait(ANALYSIS_TIMEOUT_MS)
    cell_id = white_cell(window)
    cell = window.document.cell(cell_id)
    search = window.explain_models.searches["wbc-type"]
    window.select_cell(None)
    qtbot.waitUntil(lambda: window.similar_panel.result is None)
    search.forget()  # the analysis selected it already: measure a cell never embedded
    assert search is not None and not search.cached(cell)
    start = time.perf_counter()
    window.select_cell(cell_id)
    qtbot.waitUntil(lambda: window.similar_panel.result is not None and len(window.similar_panel.result.cells) > 0,
                    timeout=5000)  # fmt: skip
    elapsed = time.perf_counter() - start
    print(f"\nsimilar cells shown {elapsed * 1000:.0f} ms after selecting a cell (embedding not cached)")
    assert elapsed < 0.5
    result = window.similar_panel.result
    atlas = Atlas.load(default_atlas_dir(atlas_models / "wbc-type"))
    k = min(5, len(atlas))
    assert len(result.cells) == window.similar_panel.list.count() == k
    distances = [c.distance for c in result.cells]
    assert distances == sorted(distances)
    assert all(c.label == atlas.entry(c.atlas_id).label for c in result.cells)
    call = window.document.call(cell).label
    agree = sum(c.label == call for c in result.cells)
    assert result.call == call and result.agree == agree
    assert f"{agree} of {k}" in window.similar_panel.summary.text()
    assert "test atlas" in window.similar_panel.footer.text()
    # a reviewer's label changes the call the cells are compared with
    window.document.review(cell_id, "neutrophil")
    qtbot.waitUntil(lambda: window.similar_panel.result is not None and window.similar_panel.result.call == "neutrophil")
    assert window.similar_panel.result.cached  # embedded once per cell
    # click (or Enter) enlarges one, with its source and terms
    item = window.similar_panel.list.item(0)
    rect = window.similar_panel.list.visualItemRect(item)
    qtbot.mouseClick(window.similar_panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    view = window.similar_panel.open_view
    assert view is not None and view.isVisible()
    assert "samples" in view.text.text() and "MIT" in view.text.text() and "BCCD" in view.text.text()
    view.close()
    # keyboard: Ctrl+Shift+C raises the panel and gives it the keys, Enter enlarges the current cell
    window.actions["similar"].trigger()
    assert window.similar_panel.list.hasFocus() or window.similar_panel.list.currentRow() == 0
    window.similar_panel.open_view = None
    qtbot.keyClick(window.similar_panel.list, Qt.Key.Key_Return)
    assert window.similar_panel.open_view is not None
    window.similar_panel.open_view.close()


def test_an_atlas_of_another_model_version_is_named_and_the_viewer_carries_on(
    qtbot, make_window, analysed, atlas_models: Path, sample: Path, tmp_path: Path  # noqa: ANN001
):
    onnx_factory = pytest.importorskip("onnx_factory")
    stale = tmp_path / "stale-models"
    shutil.copytree(atlas_models, stale)
    onnx_factory.make_tiny_classifier(stale / "wbc-type", WBC_CLASSES, input_size=32, seed=8)  # a new version
    window = make_window(stale)
    analysed(window, sample)
    window.similar_dock.raise_()
    window.select_cell(white_cell(window))
    qtbot.waitUntil(lambda: NO_ATLAS_FOR_VERSION in window.similar_panel.summary.text(), timeout=ANALYSIS_TIMEOUT_MS)
    assert window.similar_panel.list.count() == 0
    window.go_next()  # still reviewing
    window.classify("lymphocyte")
    assert any(c.review.label == "lymphocyte" for c in window.document.cells)


def test_occlusion_map_on_demand_beside_the_cam(qtbot, make_window, analysed, atlas_models: Path, sample: Path):  # noqa: ANN001
    window = make_window(atlas_models)
    analysed(window, sample)
    cell_id = white_cell(window)
    window.select_cell(cell_id)
    window.set_heat_mode("selected")
    assert window.layers.kind == "cam" and window.overlay.options.heat_mode == "selected"
    window.actions["heat_kind"].trigger()  # Shift+H
    assert window.layers.kind == "occlusion"
    assert window.overlay.options.heat_mode == "off" and window.layers.heat_mode == "selected"  # CAM hidden
    assert window.occlusion.wait(ANALYSIS_TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.occlusion.shown is not None, timeout=ANALYSIS_TIMEOUT_MS)
    found = window.occlusion.shown
    cell = window.document.cell(cell_id)
    model = window.overlay.heat_model_for(cell)
    spec = window.explain_models.classifiers[model].spec
    assert found.kind == "occlusion" and found.grid.shape == (spec.input_size, spec.input_size)
    assert found.box == pytest.approx(tuple(float(v) for v in crop_box(cell, spec.crop)))
    assert found.box == pytest.approx(cell.predictions[model].cam_box)  # placed like the CAM
    assert found.grid.min() >= 0.0 and found.grid.max() <= 1.0
    # cached: selecting away and back shows it at once, without computing again
    other = next((c.id for c in window.document.cells if c.kind == "wbc" and c.id != cell_id), None)
    if other is not None:
        window.select_cell(other)
        window.occlusion.wait(ANALYSIS_TIMEOUT_MS)
    window.select_cell(cell_id)
    assert window.occlusion.shown is found
    # off with the heatmap, and back to the CAM
    window.set_heat_mode("off")
    assert window.occlusion.shown is None
    window.set_heat_mode("selected")
    window.layers.set_map_kind("cam")
    assert window.occlusion.shown is None and window.overlay.options.heat_mode == "selected"
