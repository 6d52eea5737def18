"""Fixtures for the model tests: a tiny ONNX model, and real cells of a bundled sample field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_factory import make_tiny_classifier

from leukview.core.cells import Cell
from leukview.core.io import read_image
from leukview.core.paths import resources_dir
from leukview.core.segment import segment

SAMPLE = "BloodImage_00056.jpg"  # bundled BCCD field with white cells, red cells and platelets


@pytest.fixture(scope="session")
def field() -> tuple[np.ndarray, list[Cell]]:
    """A bundled BCCD field and the cells the app's segmentation finds in it."""
    image = read_image(resources_dir() / "samples" / SAMPLE)
    cells = segment(image).cells
    assert len(cells) >= 8 and len({c.kind for c in cells}) >= 2
    return image, cells


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A working three-class model (lymphocyte, monocyte, neutrophil) in ``tmp_path/tiny``."""
    return make_tiny_classifier(tmp_path / "tiny", ["lymphocyte", "monocyte", "neutrophil"])
