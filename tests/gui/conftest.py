"""Fixtures of the viewer's tests: an offscreen window, tiny models, fields made from the bundled samples."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
SAMPLE_NAMES = ("BloodImage_00214.jpg", "BloodImage_00262.jpg", "BloodImage_00056.jpg", "BloodImage_00305.jpg")
WBC_CLASSES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]
ANALYSIS_TIMEOUT_MS = 60000


def sample_rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny working models shaped like the shipped ones (type, and blast with a positive class)."""
    onnx_factory = pytest.importorskip("onnx_factory")
    root = tmp_path_factory.mktemp("models")
    onnx_factory.make_tiny_classifier(root / "wbc-type", WBC_CLASSES, input_size=32, seed=3)
    onnx_factory.make_tiny_classifier(root / "all-blast", ["blast", "normal"], input_size=32, seed=5, positive_class="blast")
    return root


@pytest.fixture()
def no_models(tmp_path: Path) -> Path:
    empty = tmp_path / "no-models"
    empty.mkdir(exist_ok=True)
    return empty


@pytest.fixture()
def field(tmp_path: Path) -> Path:
    """Two bundled BCCD fields side by side (1280x480, two white cells), written where sessions may go."""
    path = tmp_path / "images" / "two-fields.png"
    path.parent.mkdir(exist_ok=True)
    image = np.hstack([sample_rgb(SAMPLE_NAMES[0]), sample_rgb(SAMPLE_NAMES[1])])
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture()
def sample(tmp_path: Path) -> Path:
    """A bundled sample copied beside nothing else (sessions are written beside it)."""
    import shutil

    path = tmp_path / "images" / SAMPLE_NAMES[0]
    path.parent.mkdir(exist_ok=True)
    shutil.copy(SAMPLES / SAMPLE_NAMES[0], path)
    return path


@pytest.fixture()
def dialogs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Message boxes are recorded instead of blocking the test."""
    seen: list[tuple[str, str, str]] = []

    def recorder(kind: str, answer: QMessageBox.StandardButton):
        def show(parent, title, text, *args, **kwargs):  # noqa: ANN001
            seen.append((kind, title, text))
            return answer

        return show

    monkeypatch.setattr(QMessageBox, "critical", recorder("critical", QMessageBox.StandardButton.Ok))
    monkeypatch.setattr(QMessageBox, "warning", recorder("warning", QMessageBox.StandardButton.Ok))
    monkeypatch.setattr(QMessageBox, "question", recorder("question", QMessageBox.StandardButton.Yes))
    monkeypatch.setattr(QMessageBox, "information", recorder("information", QMessageBox.StandardButton.Ok))
    return seen


@pytest.fixture()
def make_window(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable:  # noqa: ANN001
    """``make_window(models_dir)``: a shown window with settings of its own and its own fallback folder."""
    from leukview.gui import mainwindow
    from leukview.gui.mainwindow import MainWindow
    from leukview.gui.settings import AppSettings

    monkeypatch.setattr(mainwindow, "sessions_folder", lambda: tmp_path / "fallback-sessions")

    def make(models: Path | None, **kwargs) -> MainWindow:  # noqa: ANN003
        store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(AppSettings(store), models, **kwargs)
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.show()
        window.activateWindow()
        qtbot.waitExposed(window)
        return window

    return make


@pytest.fixture()
def analysed(qtbot) -> Callable:  # noqa: ANN001
    """``analysed(window, path)``: open an image and wait for its analysis."""

    def run(window, path: Path) -> None:  # noqa: ANN001
        assert window.open_image(path)
        qtbot.waitUntil(lambda: window.session is not None and not window.runner.busy, timeout=ANALYSIS_TIMEOUT_MS)

    return run


@pytest.fixture(scope="session")
def mosaic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 3x3 mosaic of the bundled fields as a tiled, pyramidal TIFF (1920x1440, 3 levels, 0.5 µm/px)."""
    tifffile = pytest.importorskip("tifffile")
    fields = [sample_rgb(name) for name in SAMPLE_NAMES]
    rows = [np.hstack([fields[(r + c) % len(fields)] for c in range(3)]) for r in range(3)]
    image = np.ascontiguousarray(np.vstack(rows))
    path = tmp_path_factory.mktemp("tiff") / "mosaic.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(256, 256), photometric="rgb", compression="zlib", subifds=2,
                  resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")  # fmt: skip
        for factor in (2, 4):
            small = cv2.resize(image, (image.shape[1] // factor, image.shape[0] // factor), interpolation=cv2.INTER_AREA)
            tif.write(small, tile=(256, 256), photometric="rgb", compression="zlib", subfiletype=1)
    return path, image
