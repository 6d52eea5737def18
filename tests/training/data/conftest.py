"""Small dataset trees the training.data tests write themselves."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


def _disc_cells(root: Path, layouts: list[tuple[str, list[str]]], per_subject: int = 3) -> dict[str, str]:
    """C-NMC style cells (a purple disc on black) under ``root``; returns file name -> subject."""
    rng = np.random.default_rng(1)
    expected = {}
    for folder, subjects in layouts:
        for subject in subjects:
            kind = "hem" if subject.startswith("H") else "all"
            for n in range(per_subject):
                image = np.zeros((90, 90, 3), np.uint8)
                centre = tuple(int(v) for v in rng.integers(35, 55, 2))
                cv2.circle(image, centre, int(rng.integers(15, 25)), (200, 120, 180), -1)
                name = f"UID_{subject}_{n + 1}_{n + 2}_{kind}.bmp"
                path = root / folder / kind / name
                path.parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(path), image)
                expected[name] = subject
    return expected


@pytest.fixture
def cnmc_tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A small C-NMC tree in the official and the Kaggle layouts: (root, file name -> subject)."""
    root = tmp_path / "cnmc"
    expected = _disc_cells(root, [
        ("C-NMC_training_data/fold_0", ["1", "2", "H3"]),
        ("C-NMC_training_data/fold_1", ["4", "H5"]),
        ("C-NMC_Leukemia/training_data/fold_2", ["6", "H7", "H8"]),
    ])
    return root, expected


def _write_image(path: Path, image: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((24, 24, 3), 128, np.uint8) if image is None else image
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture
def write_image():
    """``write_image(path, rgb=None) -> path``: an RGB image (small and grey by default), folder made."""
    return _write_image
